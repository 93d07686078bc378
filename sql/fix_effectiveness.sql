-- Did the fix work? Incidents and ratings on each fixed cell before and after its remediation
-- event, against the cells nobody fixed over the same days (difference in differences).
--
-- Parameters, in this order (Athena execution parameters; the twin passes the same to DuckDB):
--   ?  first day of the period, 'YYYY-MM-DD'
--   ?  last day of the period, 'YYYY-MM-DD' (inclusive)
-- They are the only predicate on the partition column dt, so only those days are read; a
-- remediation event counts when its fixed_at falls in the period.
--
-- Remediation events: CSV objects under remediation/ (header cell,fixed_at,note; fixed_at in
-- UTC as YYYY-MM-DDTHH:MM:SSZ, the lake's own time format, so times compare as text).
-- One row per event. "before" = from the first day of the period to fixed_at, "after" = from
-- fixed_at to the end of the last day; control cells = every cell with no remediation event in
-- the period. Incidents are dated by their own timestamp; answers by the time of the incident
-- they answer (the experience being rated), and scored by the rating: score = (rating - 3) / 2.
--
-- Incidents (a difference in differences on the log scale, because incident counts scale with
-- traffic and traffic differs between cells and hours):
--   incident_ratio = (after / before on the fixed cell) / (after / before on the control cells)
--   with 0.5 added to each count (empty windows), and a 90% interval
--   exp(ln(ratio) -/+ 1.645 * sqrt(1/a + 1/b + 1/c + 1/d)) treating the four counts as Poisson.
--   Below 1: the fixed cell lost more incidents than the network did over the same days. Incidents
--   come in bursts (one subscriber's bad session run), so this interval is on the narrow side.
-- Ratings (a difference in differences of means):
--   score_effect = (after - before on the fixed cell) - (after - before on the control cells)
--   with a 90% interval score_effect -/+ 1.645 * sqrt(sum of spread2 / n over the four groups),
--   where each group's spread2 pools its own variance with the period's (all answers, at least
--   MIN_VARIANCE: one rating point) counted as K answers, as in priority.sql. Above 0: the fixed
--   cell's subscribers rate their service better than before, more than elsewhere. Null when a
--   group has no answers (after a fix that worked, few subscribers are called about the cell).
-- Lake delivery is at-least-once: every record is deduplicated before it counts.
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH settings AS (
    SELECT
        CAST(2 AS DOUBLE) AS prior_answers,  -- K
        CAST(1.645 AS DOUBLE) AS z,
        CAST(0.25 AS DOUBLE) AS min_variance,  -- MIN_VARIANCE
        CAST(0.5 AS DOUBLE) AS half  -- added to each incident count
),
lake AS (
    SELECT
        'incident' AS source, incident_id AS record_id, cell, "timestamp" AS event_time,
        CAST(NULL AS DOUBLE) AS score, CAST(NULL AS VARCHAR) AS note, dt
    FROM incidents
    UNION ALL
    SELECT 'answer', contact_id, cell, incident_time, score, CAST(NULL AS VARCHAR), dt
    FROM feedback
    WHERE outcome = 'rated' AND score IS NOT NULL
    UNION ALL
    SELECT 'fix', cell || ' ' || fixed_at, cell, fixed_at, CAST(NULL AS DOUBLE), note,
        SUBSTR(fixed_at, 1, 10)
    FROM remediation
),
in_range AS (
    SELECT DISTINCT *
    FROM lake
    WHERE dt BETWEEN ? AND ? AND cell IS NOT NULL
),
span AS (
    SELECT
        CAST(MIN(dt) AS TIMESTAMP) AS period_start,
        date_diff('second', CAST(MIN(dt) AS TIMESTAMP), CAST(MAX(dt) AS TIMESTAMP)) + 86400
            AS period_seconds
    FROM in_range
),
fixes AS (
    SELECT cell, event_time AS fixed_at, MAX(note) AS note
    FROM in_range
    WHERE source = 'fix'
    GROUP BY cell, event_time
),
fixed_cells AS (
    SELECT DISTINCT cell FROM fixes
),
observations AS (
    SELECT
        f.cell AS fixed_cell, f.fixed_at, r.source, r.record_id, r.cell, r.score,
        CASE WHEN r.cell = f.cell THEN 'fixed' ELSE 'control' END AS grp,
        CASE WHEN r.event_time < f.fixed_at THEN 'before' ELSE 'after' END AS side
    FROM fixes AS f
    CROSS JOIN in_range AS r
    LEFT JOIN fixed_cells AS fc ON fc.cell = r.cell
    WHERE r.source IN ('incident', 'answer') AND (r.cell = f.cell OR fc.cell IS NULL)
),
groups AS (
    SELECT
        fixed_cell, fixed_at, grp, side,
        COUNT(DISTINCT CASE WHEN source = 'incident' THEN record_id END) AS incidents,
        COUNT(CASE WHEN source = 'answer' THEN score END) AS answers,
        AVG(CASE WHEN source = 'answer' THEN score END) AS mean_score,
        VAR_SAMP(CASE WHEN source = 'answer' THEN score END) AS var_score
    FROM observations
    GROUP BY fixed_cell, fixed_at, grp, side
),
control_cells AS (
    SELECT fixed_cell, fixed_at, COUNT(DISTINCT cell) AS cells
    FROM observations
    WHERE grp = 'control' AND source = 'incident'
    GROUP BY fixed_cell, fixed_at
),
period_scores AS (
    SELECT GREATEST(COALESCE(VAR_SAMP(r.score), 0), MAX(s.min_variance)) AS prior_variance
    FROM in_range AS r
    CROSS JOIN settings AS s
    WHERE r.source = 'answer'
),
sides AS (
    SELECT
        g.fixed_cell, g.fixed_at, g.grp, g.side, g.incidents, g.answers, g.mean_score,
        -- spread2 / n: this group's share of the variance of the effect
        (s.prior_answers * p.prior_variance + COALESCE((g.answers - 1) * g.var_score, 0))
            / (s.prior_answers + GREATEST(g.answers - 1, 0)) / NULLIF(g.answers, 0)
            AS score_variance
    FROM groups AS g
    CROSS JOIN settings AS s
    CROSS JOIN period_scores AS p
),
per_fix AS (
    SELECT
        f.cell, f.fixed_at, f.note,
        COALESCE(MAX(cc.cells), 0) AS control_cells,
        COALESCE(MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'before' THEN x.incidents END), 0)
            AS fb,
        COALESCE(MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'after' THEN x.incidents END), 0) AS fa,
        COALESCE(MAX(CASE WHEN x.grp = 'control' AND x.side = 'before' THEN x.incidents END), 0)
            AS cb,
        COALESCE(MAX(CASE WHEN x.grp = 'control' AND x.side = 'after' THEN x.incidents END), 0)
            AS ca,
        COALESCE(MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'before' THEN x.answers END), 0)
            AS fb_answers,
        COALESCE(MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'after' THEN x.answers END), 0)
            AS fa_answers,
        COALESCE(MAX(CASE WHEN x.grp = 'control' AND x.side = 'before' THEN x.answers END), 0)
            AS cb_answers,
        COALESCE(MAX(CASE WHEN x.grp = 'control' AND x.side = 'after' THEN x.answers END), 0)
            AS ca_answers,
        MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'before' THEN x.mean_score END) AS fb_score,
        MAX(CASE WHEN x.grp = 'fixed' AND x.side = 'after' THEN x.mean_score END) AS fa_score,
        MAX(CASE WHEN x.grp = 'control' AND x.side = 'before' THEN x.mean_score END) AS cb_score,
        MAX(CASE WHEN x.grp = 'control' AND x.side = 'after' THEN x.mean_score END) AS ca_score,
        SUM(x.score_variance) AS score_effect_variance
    FROM fixes AS f
    LEFT JOIN sides AS x ON x.fixed_cell = f.cell AND x.fixed_at = f.fixed_at
    LEFT JOIN control_cells AS cc ON cc.fixed_cell = f.cell AND cc.fixed_at = f.fixed_at
    GROUP BY f.cell, f.fixed_at, f.note
),
effects AS (
    SELECT
        p.*,
        date_diff(
            'second', t.period_start,
            CAST(REPLACE(REPLACE(p.fixed_at, 'T', ' '), 'Z', '') AS TIMESTAMP)
        ) / CAST(86400 AS DOUBLE) AS days_before,
        t.period_seconds / CAST(86400 AS DOUBLE) AS period_days,
        LN((p.fa + s.half) / (p.fb + s.half)) - LN((p.ca + s.half) / (p.cb + s.half))
            AS log_ratio,
        SQRT(
            1 / (p.fa + s.half) + 1 / (p.fb + s.half) + 1 / (p.ca + s.half) + 1 / (p.cb + s.half)
        ) AS log_ratio_error,
        (p.fa_score - p.fb_score) - (p.ca_score - p.cb_score) AS score_effect,
        s.z
    FROM per_fix AS p
    CROSS JOIN span AS t
    CROSS JOIN settings AS s
)
SELECT
    cell,
    fixed_at,
    note,
    control_cells,
    fb AS incidents_before,
    fa AS incidents_after,
    ROUND(fb / NULLIF(days_before, 0), 6) AS incidents_per_day_before,
    ROUND(fa / NULLIF(period_days - days_before, 0), 6) AS incidents_per_day_after,
    ROUND(cb / NULLIF(control_cells * days_before, 0), 6) AS control_incidents_per_cell_day_before,
    ROUND(ca / NULLIF(control_cells * (period_days - days_before), 0), 6)
        AS control_incidents_per_cell_day_after,
    CASE WHEN control_cells > 0 THEN ROUND(EXP(log_ratio), 6) END AS incident_ratio,
    CASE WHEN control_cells > 0 THEN ROUND(EXP(log_ratio - z * log_ratio_error), 6) END
        AS incident_ratio_low,
    CASE WHEN control_cells > 0 THEN ROUND(EXP(log_ratio + z * log_ratio_error), 6) END
        AS incident_ratio_high,
    fb_answers AS answers_before,
    fa_answers AS answers_after,
    ROUND(fb_score, 6) AS score_before,
    ROUND(fa_score, 6) AS score_after,
    cb_answers AS control_answers_before,
    ca_answers AS control_answers_after,
    ROUND(cb_score, 6) AS control_score_before,
    ROUND(ca_score, 6) AS control_score_after,
    ROUND(score_effect, 6) AS score_effect,
    ROUND(score_effect - z * SQRT(score_effect_variance), 6) AS score_effect_low,
    ROUND(score_effect + z * SQRT(score_effect_variance), 6) AS score_effect_high
FROM effects
ORDER BY fixed_at, cell
