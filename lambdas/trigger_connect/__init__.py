"""Trigger_Connect: places the outbound call for each engagement, once per engagement id."""
