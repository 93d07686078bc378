"""Read_after_incident: evaluates new incidents and sends engagement decisions."""
