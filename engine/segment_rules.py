"""User-defined segmentations (``method="rules"``): parse a config of groups into rules.

Config: a list of dicts, each with an optional ``name`` and conditions per feature.
An ordered feature (``age``, ``duration``) takes ``[lo, hi]`` (inclusive; ``null``
for unbounded) or ``{"min": lo, "max": hi}``; any other feature takes a list of
allowed values (or a single value). A dict ``{"groups": [...]}`` is also accepted.
Groups are tried in order; a row belongs to the first group it matches.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.segment_tree import Rule


def parse_rules(config: Any, ordered: tuple[str, ...] | list[str]) -> list[tuple[str, Rule]]:
    """Return ``[(name, rule), ...]`` from a rules config, raising :class:`ConfigError` on bad input."""
    if isinstance(config, dict) and "groups" in config:
        config = config["groups"]
    if not isinstance(config, (list, tuple)) or not config:
        raise ConfigError("rules: expected a non-empty list of groups (dicts of feature conditions)")
    out: list[tuple[str, Rule]] = []
    names = set()
    for i, item in enumerate(config):
        if not isinstance(item, dict):
            raise ConfigError(f"rules[{i}]: expected a dict of feature conditions, got {type(item).__name__}")
        name = str(item.get("name", f"G{i + 1}"))
        if name in names:
            raise ConfigError(f"rules[{i}].name: '{name}' is used twice")
        names.add(name)
        rule: Rule = {}
        for f, cond in item.items():
            if f == "name":
                continue
            if f in ordered:
                if isinstance(cond, dict):
                    unknown = set(cond) - {"min", "max"}
                    if unknown:
                        raise ConfigError(f"rules[{i}].{f}: unknown key '{sorted(unknown)[0]}' (use min, max)")
                    lo, hi = cond.get("min"), cond.get("max")
                elif isinstance(cond, (list, tuple)) and len(cond) == 2:
                    lo, hi = cond
                else:
                    raise ConfigError(f"rules[{i}].{f}: expected [lo, hi] (inclusive) for an ordered feature")
                for v in (lo, hi):
                    if v is not None and not isinstance(v, int):
                        raise ConfigError(f"rules[{i}].{f}: bounds must be integers or null, got {v!r}")
                if lo is not None and hi is not None and lo > hi:
                    raise ConfigError(f"rules[{i}].{f}: lower bound {lo} exceeds upper bound {hi}")
                rule[f] = ("range", lo, hi)
            else:
                vals = list(cond) if isinstance(cond, (list, tuple, set)) else [cond]
                if not vals:
                    raise ConfigError(f"rules[{i}].{f}: the list of values is empty")
                rule[f] = ("in", vals)
        out.append((name, rule))
    return out
