"""edgecloud drivers."""
