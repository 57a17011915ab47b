"""Helpers shared by the test suite and the bench scripts (throwaway PostgreSQL server, ...)."""
