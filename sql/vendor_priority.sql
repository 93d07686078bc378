-- Which vendors lose the most subscriber sentiment: one row per vendor, most urgent first.
--
-- Same analysis as cell_priority.sql, by the vendor recorded on incident, engagement and
-- sentiment records (absent vendor = 'unknown'). Feedback records carry no vendor, so they take
-- the vendor of the engagement they answer.
-- priority = -(sum of change_sentiment), rounded to 6 places; ties broken by distinct subscribers
-- with incidents, then by vendor. Counts and sums deduplicate on the record's own id.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH incident_stats AS (
    SELECT
        COALESCE(vendor, 'unknown') AS vendor,
        COUNT(DISTINCT subscriber_id) AS subscribers,
        COUNT(DISTINCT incident_id) AS incidents
    FROM incidents
    GROUP BY COALESCE(vendor, 'unknown')
),
engagement_vendors AS (
    SELECT DISTINCT engagement_id, COALESCE(vendor, 'unknown') AS vendor, decision
    FROM engagement
),
engagement_stats AS (
    SELECT vendor, COUNT(DISTINCT engagement_id) AS engagements
    FROM engagement_vendors
    WHERE decision = 'engage'
    GROUP BY vendor
),
feedback_stats AS (
    SELECT
        COALESCE(e.vendor, 'unknown') AS vendor,
        COUNT(DISTINCT f.contact_id) AS feedback_received,
        COUNT(DISTINCT CASE WHEN f.outcome = 'rated' THEN f.contact_id END) AS ratings
    FROM feedback AS f
    LEFT JOIN engagement_vendors AS e ON e.engagement_id = f.engagement_id
    GROUP BY COALESCE(e.vendor, 'unknown')
),
sentiment_records AS (
    SELECT DISTINCT contact_id, COALESCE(vendor, 'unknown') AS vendor, change_sentiment
    FROM sentiment
    WHERE change_sentiment IS NOT NULL
),
sentiment_stats AS (
    SELECT
        vendor,
        SUM(CAST(change_sentiment AS DOUBLE)) AS change_sentiment,
        AVG(CAST(change_sentiment AS DOUBLE)) AS avg_change_sentiment
    FROM sentiment_records
    GROUP BY vendor
),
vendors AS (
    SELECT vendor FROM incident_stats
    UNION
    SELECT vendor FROM engagement_stats
    UNION
    SELECT vendor FROM feedback_stats
    UNION
    SELECT vendor FROM sentiment_stats
)
SELECT
    vendors.vendor AS vendor,
    COALESCE(i.subscribers, 0) AS subscribers,
    COALESCE(i.incidents, 0) AS incidents,
    COALESCE(e.engagements, 0) AS engagements,
    COALESCE(f.feedback_received, 0) AS feedback_received,
    COALESCE(f.ratings, 0) AS ratings,
    ROUND(COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS change_sentiment,
    ROUND(COALESCE(s.avg_change_sentiment, CAST(0 AS DOUBLE)), 6) AS avg_change_sentiment,
    ROUND(CAST(0 AS DOUBLE) - COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS priority
FROM vendors
LEFT JOIN incident_stats AS i ON i.vendor = vendors.vendor
LEFT JOIN engagement_stats AS e ON e.vendor = vendors.vendor
LEFT JOIN feedback_stats AS f ON f.vendor = vendors.vendor
LEFT JOIN sentiment_stats AS s ON s.vendor = vendors.vendor
ORDER BY priority DESC, subscribers DESC, vendor
