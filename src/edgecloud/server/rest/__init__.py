"""edgecloud server/rest."""
