"""Images edgecloud builds itself: the default "tiny" VM and container images."""

from edgecloud.images.tiny import ImageBuildError, Tiny, cache_dir, ensure_tiny

__all__ = ["ImageBuildError", "Tiny", "cache_dir", "ensure_tiny"]
