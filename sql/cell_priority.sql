-- Which radio cells to fix first: one row per cell, most urgent first.
--
-- priority = -(sum of change_sentiment of the feedback given about the cell), rounded to 6 places.
--   A cell whose subscribers' sentiment fell a lot ranks high; a cell whose subscribers said they
--   were not bothered (positive change) ranks below cells with no feedback at all, however many
--   incidents it had. Ties (e.g. no feedback yet) are broken by distinct subscribers with
--   incidents, then by cell id, so the order is stable.
-- Lake delivery is at-least-once, so every count and sum deduplicates on the record's own id.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH incident_stats AS (
    SELECT
        cell,
        COUNT(DISTINCT subscriber_id) AS subscribers,
        COUNT(DISTINCT incident_id) AS incidents
    FROM incidents
    WHERE cell IS NOT NULL
    GROUP BY cell
),
engagement_stats AS (
    SELECT cell, COUNT(DISTINCT engagement_id) AS engagements
    FROM engagement
    WHERE cell IS NOT NULL AND decision = 'engage'
    GROUP BY cell
),
feedback_stats AS (
    SELECT
        cell,
        COUNT(DISTINCT contact_id) AS feedback_received,
        COUNT(DISTINCT CASE WHEN outcome = 'rated' THEN contact_id END) AS ratings
    FROM feedback
    WHERE cell IS NOT NULL
    GROUP BY cell
),
sentiment_records AS (
    SELECT DISTINCT contact_id, cell, change_sentiment
    FROM sentiment
    WHERE cell IS NOT NULL AND change_sentiment IS NOT NULL
),
sentiment_stats AS (
    SELECT
        cell,
        SUM(CAST(change_sentiment AS DOUBLE)) AS change_sentiment,
        AVG(CAST(change_sentiment AS DOUBLE)) AS avg_change_sentiment
    FROM sentiment_records
    GROUP BY cell
),
cells AS (
    SELECT cell FROM incident_stats
    UNION
    SELECT cell FROM engagement_stats
    UNION
    SELECT cell FROM feedback_stats
    UNION
    SELECT cell FROM sentiment_stats
)
SELECT
    cells.cell AS cell,
    COALESCE(i.subscribers, 0) AS subscribers,
    COALESCE(i.incidents, 0) AS incidents,
    COALESCE(e.engagements, 0) AS engagements,
    COALESCE(f.feedback_received, 0) AS feedback_received,
    COALESCE(f.ratings, 0) AS ratings,
    ROUND(COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS change_sentiment,
    ROUND(COALESCE(s.avg_change_sentiment, CAST(0 AS DOUBLE)), 6) AS avg_change_sentiment,
    ROUND(CAST(0 AS DOUBLE) - COALESCE(s.change_sentiment, CAST(0 AS DOUBLE)), 6) AS priority
FROM cells
LEFT JOIN incident_stats AS i ON i.cell = cells.cell
LEFT JOIN engagement_stats AS e ON e.cell = cells.cell
LEFT JOIN feedback_stats AS f ON f.cell = cells.cell
LEFT JOIN sentiment_stats AS s ON s.cell = cells.cell
ORDER BY priority DESC, subscribers DESC, cell
