"""Wire types of the REST API (pydantic); imports nothing else from edgecloud."""
