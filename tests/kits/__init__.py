"""Helpers shared by the tests: data builders, oracles and case kits (no tests here)."""
