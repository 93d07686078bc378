"""write_incident_to_S3: incident messages to the lake (incidents/)."""
