"""Collect_feedback_from_Connect: records the IVR answer and updates the subscriber's sentiment."""
