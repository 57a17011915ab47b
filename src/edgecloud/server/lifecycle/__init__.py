"""The VM lifecycle: state machine plans, the operation engine, placement."""
