"""edgecloud node."""
