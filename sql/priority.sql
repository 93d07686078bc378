-- What to fix first: the sentiment each cell, cell x KPI, device and vendor cost its subscribers.
--
-- Parameters, in this order (Athena execution parameters; the twin passes the same to DuckDB):
--   ?  first day of the period, 'YYYY-MM-DD'
--   ?  last day of the period, 'YYYY-MM-DD' (inclusive)
-- They are the only predicate on the partition column dt and sit on the union of every table
-- read, so Athena (and DuckDB) read only the partitions of those days.
--
-- One row per breakdown and item, most urgent first within each breakdown:
--   breakdown 'cell'      item = radio cell
--   breakdown 'cell_kpi'  item = radio cell, kpi = the incident type
--   breakdown 'device'    item = device model, ranked net of cell (below)
--   breakdown 'vendor'    item = vendor, ranked net of cell (below)
--
-- The terms of every row:
--   subscribers   distinct subscribers with incidents on the item in the period ("affected")
--   answers       distinct subscribers who rated a call about the item; each one's change is the
--                 sum of the change_sentiment of their rated calls (their net change in the period)
--   change_sentiment, change_low, change_high
--                 the estimated mean change per affected subscriber and its 90% interval
--   estimated_loss = -subscribers x change_sentiment (positive = sentiment lost), with
--                 estimated_loss_low = -subscribers x change_high,
--                 estimated_loss_high = -subscribers x change_low
--
-- Method: Bayesian shrinkage toward the network-wide mean (normal model, plain SQL). For an item
-- with n answers y_1..y_n (sample mean ybar, sample variance s2), where the whole breakdown's
-- answers have mean m and variance S2 (at least MIN_VARIANCE: one rating point moves sentiment
-- by 0.25 at the default sentiment_alpha, so answers are never taken to agree more closely):
--   change     = (n * ybar + K * m) / (n + K)          the network mean counts as K answers
--   spread2    = (K * S2 + (n - 1) * s2) / (K + n - 1) the network's spread pooled with the item's
--   std error  = sqrt(spread2 / (n + K))
--   interval   = change -/+ Z * std error              Z = 1.645: a 90% interval
-- A cell with one or two lucky answers is pulled toward the network and keeps a wide interval; a
-- cell with many answers keeps its own mean. Answers are assumed to speak for the affected
-- subscribers who did not answer (sampled calls, no answer): the estimate is for everyone affected.
--
-- Ranking: rows with at least MIN_ANSWERS answers are ranked ("ranked" true) and sort before
-- every row that is not ("not enough answers yet": a single answer shows no spread at all).
-- Ranked rows sort by the conservative bound estimated_loss_low: the loss we are 95% sure of
-- (the interval's upper end of the change is a one-sided 95% bound). A two-answer cell cannot
-- top the list by luck, because its bound is far below its estimate; an outage cell whose calls
-- were sampled (few answers, many affected) ranks by its estimate for all its subscribers,
-- not by how few were called. Rows whose bound shows no loss (<= 0) follow, by estimated_loss.
-- Rows that are not ranked follow by estimated_loss, then subscribers.
--
-- Device and vendor net of cell: a device common on a bad cell must not be blamed for the cell.
-- Each answer of a device's subscriber on cell c is compared with the mean change of the other
-- devices' subscribers who answered about c; where no subscriber of another device had an
-- incident on c at all, the others' change is 0 (nothing happened to them) - but only when the
-- dimension does vary within cells somewhere (devices do; a radio vendor is one per cell, and then
-- nothing separates the vendor from the cell, so it is compared only where two vendors' answers
-- meet on a cell). net_change is the same shrinkage estimate over these differences, shrunk toward
-- 0 (no device effect); compared = the answers with a comparison (net_* are null without one);
-- net_loss = -subscribers x net_change. Device and vendor rows are ranked on compared >=
-- MIN_ANSWERS and net_loss_low.
--
-- ranked_change is change_sentiment where the row is ranked, else null: the QuickSight map
-- greys cells without enough answers.
-- Lake delivery is at-least-once: every record is deduplicated before it counts.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH settings AS (
    SELECT
        CAST(2 AS DOUBLE) AS prior_answers,  -- K
        2 AS min_answers,  -- MIN_ANSWERS
        CAST(1.645 AS DOUBLE) AS z,  -- Z
        CAST(0.0625 AS DOUBLE) AS min_variance  -- MIN_VARIANCE
),
lake AS (
    SELECT
        'incident' AS source, incident_id AS record_id, subscriber_id, cell, device, vendor,
        event_type, CAST(NULL AS VARCHAR) AS decision, CAST(NULL AS DOUBLE) AS change, dt
    FROM incidents
    UNION ALL
    SELECT
        'engagement', engagement_id, subscriber_id, cell, device, vendor, incident_type,
        decision, CAST(NULL AS DOUBLE), dt
    FROM engagement
    UNION ALL
    SELECT
        'answer', contact_id, subscriber_id, cell, device, vendor, incident_type,
        CAST(NULL AS VARCHAR), change_sentiment, dt
    FROM sentiment
    WHERE change_sentiment IS NOT NULL
),
in_range AS (
    SELECT DISTINCT *
    FROM lake
    WHERE dt BETWEEN ? AND ? AND cell IS NOT NULL
),
breakdowns AS (
    SELECT breakdown FROM (VALUES ('cell'), ('cell_kpi'), ('device'), ('vendor')) AS b (breakdown)
),
keyed AS (
    SELECT
        b.breakdown,
        CASE b.breakdown
            WHEN 'device' THEN COALESCE(r.device, 'unknown')
            WHEN 'vendor' THEN COALESCE(r.vendor, 'unknown')
            ELSE r.cell
        END AS item,
        CASE WHEN b.breakdown = 'cell_kpi' THEN r.event_type ELSE '' END AS kpi,
        r.source, r.record_id, r.subscriber_id, r.cell, r.decision, r.change
    FROM in_range AS r
    CROSS JOIN breakdowns AS b
),
counts AS (
    SELECT
        breakdown, item, kpi,
        COUNT(DISTINCT CASE WHEN source = 'incident' THEN subscriber_id END) AS subscribers,
        COUNT(DISTINCT CASE WHEN source = 'incident' THEN record_id END) AS incidents,
        COUNT(DISTINCT CASE WHEN source = 'engagement' AND decision = 'engage' THEN record_id END)
            AS engagements
    FROM keyed
    GROUP BY breakdown, item, kpi
),
-- One answer per subscriber and item: the subscriber's net change in the period.
answers AS (
    SELECT breakdown, item, kpi, subscriber_id, SUM(change) AS change
    FROM keyed
    WHERE source = 'answer'
    GROUP BY breakdown, item, kpi, subscriber_id
),
-- Net of cell: the same per subscriber, device (vendor) and cell, and what the cell's other
-- devices (vendors) said.
cell_answers AS (
    SELECT breakdown, cell, item, subscriber_id, SUM(change) AS change
    FROM keyed
    WHERE source = 'answer' AND breakdown IN ('device', 'vendor')
    GROUP BY breakdown, cell, item, subscriber_id
),
cell_sums AS (
    SELECT breakdown, cell, SUM(change) AS total, COUNT(*) AS n
    FROM cell_answers
    GROUP BY breakdown, cell
),
item_cell_sums AS (
    SELECT breakdown, cell, item, SUM(change) AS total, COUNT(*) AS n
    FROM cell_answers
    GROUP BY breakdown, cell, item
),
cell_affected AS (
    SELECT breakdown, cell, COUNT(DISTINCT subscriber_id) AS affected
    FROM keyed
    WHERE source = 'incident' AND breakdown IN ('device', 'vendor')
    GROUP BY breakdown, cell
),
item_cell_affected AS (
    SELECT breakdown, cell, item, COUNT(DISTINCT subscriber_id) AS affected
    FROM keyed
    WHERE source = 'incident' AND breakdown IN ('device', 'vendor')
    GROUP BY breakdown, cell, item
),
varies_within_cells AS (
    SELECT breakdown, MAX(items) >= 2 AS varies
    FROM (
        SELECT breakdown, cell, COUNT(DISTINCT item) AS items
        FROM keyed
        WHERE source = 'incident' AND breakdown IN ('device', 'vendor') AND item <> 'unknown'
        GROUP BY breakdown, cell
    ) AS per_cell
    GROUP BY breakdown
),
baselines AS (
    SELECT
        ic.breakdown, ic.cell, ic.item,
        CASE
            WHEN c.n > ic.n THEN (c.total - ic.total) / (c.n - ic.n)
            WHEN v.varies AND COALESCE(ca.affected, 0) = COALESCE(ica.affected, 0)
                THEN CAST(0 AS DOUBLE)
        END AS baseline
    FROM item_cell_sums AS ic
    JOIN cell_sums AS c ON c.breakdown = ic.breakdown AND c.cell = ic.cell
    LEFT JOIN varies_within_cells AS v ON v.breakdown = ic.breakdown
    LEFT JOIN cell_affected AS ca ON ca.breakdown = ic.breakdown AND ca.cell = ic.cell
    LEFT JOIN item_cell_affected AS ica
        ON ica.breakdown = ic.breakdown AND ica.cell = ic.cell AND ica.item = ic.item
),
observations AS (
    SELECT breakdown, item, kpi, 'gross' AS measure, change
    FROM answers
    UNION ALL
    SELECT a.breakdown, a.item, '', 'net', a.change - b.baseline
    FROM cell_answers AS a
    JOIN baselines AS b ON b.breakdown = a.breakdown AND b.cell = a.cell AND b.item = a.item
    WHERE b.baseline IS NOT NULL
),
-- The prior: the whole breakdown's answers (net of cell: centred on no effect).
network AS (
    SELECT
        o.breakdown, o.measure,
        CASE WHEN o.measure = 'net' THEN CAST(0 AS DOUBLE) ELSE AVG(o.change) END AS prior_mean,
        GREATEST(COALESCE(VAR_SAMP(o.change), 0), MAX(s.min_variance)) AS prior_variance
    FROM observations AS o
    CROSS JOIN settings AS s
    GROUP BY o.breakdown, o.measure
),
observed AS (
    SELECT
        breakdown, item, kpi, measure,
        COUNT(*) AS n, SUM(change) AS total, AVG(change) AS mean, VAR_SAMP(change) AS variance
    FROM observations
    GROUP BY breakdown, item, kpi, measure
),
-- Every item and measure, with or without answers (then the estimate is the prior).
estimates AS (
    SELECT
        c.breakdown, c.item, c.kpi, c.subscribers, c.incidents, c.engagements, m.measure,
        COALESCE(o.n, 0) AS n,
        o.mean AS observed_mean,
        (COALESCE(o.total, 0) + s.prior_answers * COALESCE(p.prior_mean, 0))
            / (COALESCE(o.n, 0) + s.prior_answers) AS estimate,
        SQRT(
            (s.prior_answers * COALESCE(p.prior_variance, s.min_variance)
                + COALESCE((o.n - 1) * o.variance, 0))
            / (s.prior_answers + GREATEST(COALESCE(o.n, 0) - 1, 0))
            / (COALESCE(o.n, 0) + s.prior_answers)
        ) AS std_error
    FROM counts AS c
    CROSS JOIN (VALUES ('gross'), ('net')) AS m (measure)
    CROSS JOIN settings AS s
    LEFT JOIN network AS p ON p.breakdown = c.breakdown AND p.measure = m.measure
    LEFT JOIN observed AS o
        ON o.breakdown = c.breakdown AND o.item = c.item AND o.kpi = c.kpi
        AND o.measure = m.measure
),
-- Both measures of an item side by side, from one reference to estimates: Trino inlines a
-- WITH step wherever it is referenced, reading its tables again each time (Athena may too).
both_measures AS (
    SELECT
        breakdown, item, kpi, subscribers, incidents, engagements,
        MAX(CASE WHEN measure = 'gross' THEN n END) AS gross_n,
        MAX(CASE WHEN measure = 'gross' THEN observed_mean END) AS gross_observed_mean,
        MAX(CASE WHEN measure = 'gross' THEN estimate END) AS gross_estimate,
        MAX(CASE WHEN measure = 'gross' THEN std_error END) AS gross_std_error,
        MAX(CASE WHEN measure = 'net' THEN n END) AS net_n,
        MAX(CASE WHEN measure = 'net' THEN estimate END) AS net_estimate,
        MAX(CASE WHEN measure = 'net' THEN std_error END) AS net_std_error
    FROM estimates
    WHERE kpi IS NOT NULL  -- only records written outside the handlers lack a KPI
    GROUP BY breakdown, item, kpi, subscribers, incidents, engagements
),
item_rows AS (
    SELECT
        m.breakdown, m.item, NULLIF(m.kpi, '') AS kpi,
        m.subscribers, m.incidents, m.engagements,
        m.gross_n AS answers,
        m.gross_observed_mean AS observed_change,
        m.gross_estimate AS change_sentiment,
        m.gross_estimate - s.z * m.gross_std_error AS change_low,
        m.gross_estimate + s.z * m.gross_std_error AS change_high,
        CASE WHEN m.breakdown IN ('device', 'vendor') THEN m.net_n END AS compared,
        CASE WHEN m.breakdown IN ('device', 'vendor') AND m.net_n > 0 THEN m.net_estimate END
            AS net_change,
        CASE WHEN m.breakdown IN ('device', 'vendor') AND m.net_n > 0
            THEN m.net_estimate - s.z * m.net_std_error END AS net_change_low,
        CASE WHEN m.breakdown IN ('device', 'vendor') AND m.net_n > 0
            THEN m.net_estimate + s.z * m.net_std_error END AS net_change_high,
        CASE WHEN m.breakdown IN ('device', 'vendor') THEN m.net_n ELSE m.gross_n END
            >= s.min_answers AS ranked
    FROM both_measures AS m
    CROSS JOIN settings AS s
),
losses AS (
    SELECT
        r.*,
        -r.subscribers * r.change_sentiment AS estimated_loss,
        -r.subscribers * r.change_high AS estimated_loss_low,
        -r.subscribers * r.change_low AS estimated_loss_high,
        -r.subscribers * r.net_change AS net_loss,
        -r.subscribers * r.net_change_high AS net_loss_low,
        -r.subscribers * r.net_change_low AS net_loss_high
    FROM item_rows AS r
),
ordered AS (
    SELECT
        l.*,
        CASE WHEN l.breakdown IN ('device', 'vendor') THEN l.net_loss_low
            ELSE l.estimated_loss_low END AS rank_bound,
        CASE WHEN l.breakdown IN ('device', 'vendor') THEN l.net_loss
            ELSE l.estimated_loss END AS rank_estimate
    FROM losses AS l
)
SELECT
    breakdown,
    item,
    kpi,
    ranked,
    subscribers,
    incidents,
    engagements,
    answers,
    ROUND(observed_change, 6) AS observed_change,
    ROUND(change_sentiment, 6) AS change_sentiment,
    ROUND(change_low, 6) AS change_low,
    ROUND(change_high, 6) AS change_high,
    ROUND(estimated_loss, 6) AS estimated_loss,
    ROUND(estimated_loss_low, 6) AS estimated_loss_low,
    ROUND(estimated_loss_high, 6) AS estimated_loss_high,
    compared,
    ROUND(net_change, 6) AS net_change,
    ROUND(net_change_low, 6) AS net_change_low,
    ROUND(net_change_high, 6) AS net_change_high,
    ROUND(net_loss, 6) AS net_loss,
    ROUND(net_loss_low, 6) AS net_loss_low,
    ROUND(net_loss_high, 6) AS net_loss_high,
    CASE WHEN ranked THEN ROUND(change_sentiment, 6) END AS ranked_change
FROM ordered
ORDER BY
    breakdown,
    ranked DESC,
    CASE WHEN ranked THEN GREATEST(rank_bound, 0) END DESC NULLS LAST,
    rank_estimate DESC NULLS LAST,
    subscribers DESC,
    item,
    kpi
