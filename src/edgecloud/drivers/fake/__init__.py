"""Scriptable fakes of the driver kinds; importing this registers them.

``registry.create("hypervisor", "fake", state_dir=...)`` imports it on first use.
"""

from __future__ import annotations

from edgecloud.drivers.fake.hypervisor import FakeHypervisor, read_deploy_counts
from edgecloud.drivers.registry import register

__all__ = ["FakeHypervisor", "read_deploy_counts"]

register("hypervisor", "fake", FakeHypervisor)
