-- How each cell is doing day by day: affected subscribers, incidents, answers and their change.
--
-- Parameters, in this order (Athena execution parameters; the twin passes the same to DuckDB):
--   ?  first day of the period, 'YYYY-MM-DD'
--   ?  last day of the period, 'YYYY-MM-DD' (inclusive)
-- They are the only predicate on the partition column dt, so only those days are read.
--
-- One row per cell and day (dt, the records' business date) with incidents or answers:
--   subscribers  distinct subscribers with incidents on the cell that day
--   incidents    incidents recorded on the cell that day
--   answers      distinct subscribers who rated a call about the cell that day
--   mean_change  their mean net change in sentiment that day (null without answers); a cell
--                getting better shows fewer subscribers and a mean change rising toward 0
-- The estimate with its interval over the whole period is in priority.sql; this is the shape
-- over time. Lake delivery is at-least-once: every record is deduplicated before it counts.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH lake AS (
    SELECT
        'incident' AS source, incident_id AS record_id, subscriber_id, cell,
        CAST(NULL AS DOUBLE) AS change, dt
    FROM incidents
    UNION ALL
    SELECT 'answer', contact_id, subscriber_id, cell, change_sentiment, dt
    FROM sentiment
    WHERE change_sentiment IS NOT NULL
),
in_range AS (
    SELECT DISTINCT *
    FROM lake
    WHERE dt BETWEEN ? AND ? AND cell IS NOT NULL
),
incident_days AS (
    SELECT
        cell, dt,
        COUNT(DISTINCT subscriber_id) AS subscribers,
        COUNT(DISTINCT record_id) AS incidents
    FROM in_range
    WHERE source = 'incident'
    GROUP BY cell, dt
),
answers AS (
    SELECT cell, dt, subscriber_id, SUM(change) AS change
    FROM in_range
    WHERE source = 'answer'
    GROUP BY cell, dt, subscriber_id
),
answer_days AS (
    SELECT cell, dt, COUNT(*) AS answers, AVG(change) AS mean_change
    FROM answers
    GROUP BY cell, dt
),
cell_days AS (
    SELECT cell, dt FROM incident_days
    UNION
    SELECT cell, dt FROM answer_days
)
SELECT
    d.cell AS cell,
    d.dt AS dt,
    COALESCE(i.subscribers, 0) AS subscribers,
    COALESCE(i.incidents, 0) AS incidents,
    COALESCE(a.answers, 0) AS answers,
    ROUND(a.mean_change, 6) AS mean_change
FROM cell_days AS d
LEFT JOIN incident_days AS i ON i.cell = d.cell AND i.dt = d.dt
LEFT JOIN answer_days AS a ON a.cell = d.cell AND a.dt = d.dt
ORDER BY d.cell, d.dt
