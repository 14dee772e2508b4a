"""The fentan test suite."""
