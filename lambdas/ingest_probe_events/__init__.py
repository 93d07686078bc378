"""Ingest_probe_events: Kinesis probe records to counters, incidents and incident messages."""
