"""The local twin: the whole loop on one machine, on moto's in-process AWS."""
