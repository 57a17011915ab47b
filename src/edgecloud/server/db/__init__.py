"""edgecloud server/db."""
