"""write_engagement_to_S3: engagement decisions to the lake (engagement/)."""
