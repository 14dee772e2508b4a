"""Suite-wide settings.

Hypothesis runs derandomised by default, so CI sees the same examples on every run (a failure is
reproducible, never a coin toss). To explore new examples locally, run with a fresh random
stream: ``HYPOTHESIS_PROFILE=explore python -m pytest tests/test_properties.py``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("explore", derandomize=False, deadline=None, max_examples=500, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
