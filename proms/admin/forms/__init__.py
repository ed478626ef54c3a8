"""Coordinator workspace forms, one module per area."""
