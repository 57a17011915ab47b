"""The edgecloud SDK (httpx). Imports only edgecloud.api."""

from edgecloud.client.client import DEFAULT_URL, Client, default_home, read_auth_file
from edgecloud.client.errors import EdgecloudError

__all__ = ["DEFAULT_URL", "Client", "EdgecloudError", "default_home", "read_auth_file"]
