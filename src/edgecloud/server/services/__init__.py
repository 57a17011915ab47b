"""edgecloud server/services."""
