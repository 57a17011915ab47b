"""The edgecloud SDK (httpx). Imports only edgecloud.api."""

from edgecloud.client.client import Client, read_auth_file
from edgecloud.client.errors import EdgecloudError

__all__ = ["Client", "EdgecloudError", "read_auth_file"]
