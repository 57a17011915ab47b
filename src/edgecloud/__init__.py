"""edgecloud: one front-end that manages many edge clusters of VMs and containers."""

__version__ = "0.1.0"
