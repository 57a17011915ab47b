"""edgecloud cli."""
