"""Host and VM monitoring: probes, heartbeats, reconciliation, failure policy, metrics."""
