"""Providers: where a provision's hosts come from (`local`: network namespaces here)."""
