"""edgecloud server/auth."""
