"""edgecloud server."""
