-- Which device models lose the most subscriber sentiment: one row per device, most urgent first.
--
-- Same analysis as cell_priority.sql, by the device recorded on incident, engagement and
-- sentiment records (absent device = 'unknown'). Feedback records carry no device, so they take
-- the device of the engagement they answer.
-- priority = -(sum of change_sentiment), rounded to 6 places; ties broken by distinct subscribers
-- with incidents, then by device. Counts and sums deduplicate on the record's own id.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH incident_stats AS (
    SELECT
        COALESCE(device, 'unknown') AS device,
        COUNT(DISTINCT subscriber_id) AS subscribers,
        COUNT(DISTINCT incident_id) AS incidents
    FROM incidents
    GROUP BY COALESCE(device, 'unknown')
),
engagement_devices AS (
    SELECT DISTINCT engagement_id, COALESCE(device, 'unknown') AS device, decision
    FROM engagement
),
engagement_stats AS (
    SELECT device, COUNT(DISTINCT engagement_id) AS engagements
    FROM engagement_devices
    WHERE decision = 'engage'
    GROUP BY device
),
feedback_stats AS (
    SELECT
        COALESCE(e.device, 'unknown') AS device,
        COUNT(DISTINCT f.contact_id) AS feedback_received,
        COUNT(DISTINCT CASE WHEN f.outcome = 'rated' THEN f.contact_id END) AS ratings
    FROM feedback AS f
    LEFT JOIN engagement_devices AS e ON e.engagement_id = f.engagement_id
    GROUP BY COALESCE(e.device, 'unknown')
),
sentiment_records AS (
    SELECT DISTINCT contact_id, COALESCE(device, 'unknown') AS device, change_sentiment
    FROM sentiment
    WHERE change_sentiment IS NOT NULL
),
sentiment_stats AS (
    SELECT
        device,
        SUM(CAST(change_sentiment AS DOUBLE)) AS change_sentiment,
        AVG(CAST(change_sentiment AS DOUBLE)) AS avg_change_sentiment
    FROM sentiment_records
    GROUP BY device
),
devices AS (
    SELECT device FROM incident_stats
    UNION
    SELECT device FROM engagement_stats
    UNION
    SELECT device FROM feedback_stats
    UNION
    SELECT device FROM sentiment_stats
)
SELECT
    devices.device AS device,
    COALESCE(i.subscribers, 0) AS subscribers,
    COALESCE(i.incidents, 0) AS incidents,
    COALESCE(e.engagements, 0) AS engagements,
    COALESCE(f.feedback_received, 0) AS feedback_received,
    COALESCE(f.ratings, 0) AS ratings,
    ROUND(COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS change_sentiment,
    ROUND(COALESCE(s.avg_change_sentiment, CAST(0 AS DOUBLE)), 6) AS avg_change_sentiment,
    ROUND(CAST(0 AS DOUBLE) - COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS priority
FROM devices
LEFT JOIN incident_stats AS i ON i.device = devices.device
LEFT JOIN engagement_stats AS e ON e.device = devices.device
LEFT JOIN feedback_stats AS f ON f.device = devices.device
LEFT JOIN sentiment_stats AS s ON s.device = devices.device
ORDER BY priority DESC, subscribers DESC, device
