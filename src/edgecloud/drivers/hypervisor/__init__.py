"""Hypervisor drivers that act on real hosts through the node code (kvm, lxc, microvm)."""
