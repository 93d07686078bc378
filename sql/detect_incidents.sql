-- Incidents as Ingest_probe_events records them, found again in the probe archive (probes/):
-- one row per failed session, with its KPI's failure rate over the KPI's window at that moment.
--
-- The rule is the handler's (lambdas/feedback_loop/rates.py): sessions are counted in buckets of
-- b = 300 x CEIL(window_minutes / 60) seconds (5 minutes for windows up to an hour, 30 for 6 hours;
-- epoch second - epoch second % b); the window of an incident at time t is the bucket holding t
-- and the n - 1 = CEIL(window_minutes x 60 / b) - 1 buckets before it, all in integer arithmetic
-- with no division (Trino divides decimals at the operands' scale, DuckDB in DOUBLE, so a
-- division could differ: b is 5 x (m + 59 - (m + 59) % 60) and (n - 1) x b is
-- 60m - 1 - (60m + b - 1) % b, for m = window_minutes); the rate counts the same
-- subscriber's sessions of that KPI in those buckets up to and including the incident, in
-- (timestamp, arrival) order. Arrival order is the record's stream position (record_id =
-- <shard>:<sequence>[:<sub-sequence>]; one subscriber's records share a shard because producers
-- key them by phone number). For a feed that reaches each subscriber's shard in timestamp order
-- this is exactly the handler's figure whatever the batching; a record that arrives after a
-- later-stamped one of the same subscriber and KPI is counted by the handler only in its own
-- batch's order (README, "What-if").
--
-- How, with window functions only (no self-join, so the cost is one sort): every session is a
-- +1 row and every failed session adds a marker row at the first second of its window, sorted
-- before any session of that second. A running count per subscriber and KPI in (time, arrival)
-- order, read at the failed session and at its marker, differs by exactly the sessions of the
-- window up to the failure. Records Firehose delivered twice (it retries) count once.
--
-- Parameters, positional, in this order (Athena accepts placeholders only in WHERE clauses, so each
-- one filters; DuckDB gets the same values):
--    1, 2   first and last dt partition to read ('YYYY-MM-DD'), the first one window before 7
--    3 - 6  window_minutes of CALL_DROP, CALL_QUALITY, LOW_BITRATE, VIDEO_STALLING (1 - 99999)
--    7      first dt to return incidents for
--    8 - 11 thresholds of the same KPIs: an incident is returned when failures > sessions x
--           threshold, i.e. its rate is strictly above the threshold (0 returns every incident)
-- Common subset of Athena (Trino) and DuckDB: run unchanged by the named query and by the twin.
WITH archived AS (
    SELECT
        record_id,
        subscriber_id,
        event_type,
        "timestamp",
        timestamp_epoch,
        success,
        cell,
        device,
        vendor,
        dt,
        ROW_NUMBER() OVER (PARTITION BY record_id ORDER BY arrival) AS copy
    FROM probes
    WHERE dt BETWEEN ? AND ?
),
digits AS (
    SELECT d FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9)) AS t (d)
),
minute_values AS (
    SELECT a.d * 10000 + b.d * 1000 + c.d * 100 + e.d * 10 + f.d AS minutes
    FROM digits AS a
    CROSS JOIN digits AS b
    CROSS JOIN digits AS c
    CROSS JOIN digits AS e
    CROSS JOIN digits AS f
),
windows AS (
    SELECT
        k.event_type,
        m.minutes AS window_minutes,
        5 * (m.minutes + 59 - (m.minutes + 59) % 60) AS bucket_seconds
    FROM (
        VALUES ('CALL_DROP'), ('CALL_QUALITY'), ('LOW_BITRATE'), ('VIDEO_STALLING')
    ) AS k (event_type)
    CROSS JOIN minute_values AS m
    WHERE (k.event_type = 'CALL_DROP' AND m.minutes = ?)
       OR (k.event_type = 'CALL_QUALITY' AND m.minutes = ?)
       OR (k.event_type = 'LOW_BITRATE' AND m.minutes = ?)
       OR (k.event_type = 'VIDEO_STALLING' AND m.minutes = ?)
),
placed AS (
    SELECT
        s.record_id,
        s.subscriber_id,
        s.event_type,
        s."timestamp",
        s.timestamp_epoch,
        s.success,
        s.cell,
        s.device,
        s.vendor,
        s.dt,
        w.window_minutes,
        s.timestamp_epoch - s.timestamp_epoch % w.bucket_seconds
            - (60 * w.window_minutes - 1 - (60 * w.window_minutes + w.bucket_seconds - 1)
                % w.bucket_seconds) AS window_start,
        SPLIT_PART(s.record_id, ':', 2) AS seq,
        COALESCE(NULLIF(SPLIT_PART(s.record_id, ':', 3), ''), '0') AS subseq
    FROM archived AS s
    JOIN windows AS w ON w.event_type = s.event_type
    WHERE s.copy = 1
),
marks AS (
    SELECT
        record_id, subscriber_id, event_type, timestamp_epoch AS moment, 1 AS is_session,
        CASE WHEN success THEN 0 ELSE 1 END AS is_failure, seq, subseq
    FROM placed
    UNION ALL
    SELECT record_id, subscriber_id, event_type, window_start AS moment, 0, 0, seq, subseq
    FROM placed
    WHERE NOT success
),
counted AS (
    SELECT
        record_id,
        is_session,
        SUM(is_session) OVER (
            PARTITION BY subscriber_id, event_type
            ORDER BY moment, is_session, LENGTH(seq), seq, LENGTH(subseq), subseq, record_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS sessions_through,
        SUM(is_failure) OVER (
            PARTITION BY subscriber_id, event_type
            ORDER BY moment, is_session, LENGTH(seq), seq, LENGTH(subseq), subseq, record_id
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS failures_through
    FROM marks
),
rated AS (
    SELECT
        p.subscriber_id,
        p.event_type,
        p."timestamp",
        p.record_id,
        p.cell,
        p.device,
        p.vendor,
        f.sessions_through - m.sessions_through AS sessions,
        f.failures_through - m.failures_through AS failures,
        p.window_minutes,
        p.dt
    FROM placed AS p
    JOIN counted AS f ON f.record_id = p.record_id AND f.is_session = 1
    JOIN counted AS m ON m.record_id = p.record_id AND m.is_session = 0
    WHERE NOT p.success
)
SELECT
    subscriber_id,
    event_type,
    "timestamp",
    record_id,
    cell,
    device,
    vendor,
    CAST(failures AS DOUBLE) / sessions AS failure_rate,
    sessions,
    failures,
    window_minutes,
    dt
FROM rated
WHERE dt >= ?
    AND (
        (event_type = 'CALL_DROP' AND failures > sessions * ?)
        OR (event_type = 'CALL_QUALITY' AND failures > sessions * ?)
        OR (event_type = 'LOW_BITRATE' AND failures > sessions * ?)
        OR (event_type = 'VIDEO_STALLING' AND failures > sessions * ?)
    )
