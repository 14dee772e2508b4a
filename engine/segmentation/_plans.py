"""Turn a fitted segmentation into a plan set: one vertical plan per risk group.

The eligibility of each plan is the group's rules written in the plan
expression language (:mod:`engine.plans.expr`), so the plan file is readable,
editable and evaluated without ``eval``; fee, waiting period, sharing days,
caps, sharing rule and benefit schedule come from a template plan (e.g. the
pooled plan of ``configs/xianghubao.toml``).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from engine.conventions import TARGET_SHARE_CV
from engine.errors import ConfigError, ModelError
from engine.plans.expr import Expression
from engine.plans.planset import Plan, PlanSet

__all__ = ["rule_expression", "segment_plans"]


def _literal(v: Any) -> str:
    if isinstance(v, bool):
        raise ConfigError(f"segment rules: Boolean value {v!r} cannot be written in the plan expression language")
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    raise ConfigError(f"segment rules: value {v!r} ({type(v).__name__}) cannot be written in a plan expression")


def rule_expression(rule: dict[str, tuple], features: list[str] | None = None) -> str | None:
    """One conjunction rule as plan-expression text; ``None`` for the empty rule (everyone).

    ``{"age": ("range", 40, 49), "city_tier": ("in", [4, 5])}`` ->
    ``40 <= age <= 49 and city_tier in {4, 5}``.
    """
    order = [f for f in (features or []) if f in rule] + sorted(f for f in rule if f not in (features or []))
    parts = []
    for f in order:
        cond = rule[f]
        if cond[0] == "range":
            lo, hi = cond[1], cond[2]
            if lo is not None and hi is not None:
                parts.append(f"{f} == {_literal(lo)}" if lo == hi else f"{_literal(lo)} <= {f} <= {_literal(hi)}")
            elif lo is not None:
                parts.append(f"{f} >= {_literal(lo)}")
            elif hi is not None:
                parts.append(f"{f} <= {_literal(hi)}")
        else:
            vals = sorted(cond[1], key=lambda x: (str(type(x)), x))
            parts.append(f"{f} in {{{', '.join(_literal(v) for v in vals)}}}")
    return " and ".join(parts) if parts else None


def _group_text(rules: list[dict[str, tuple]], features: list[str]) -> str | None:
    texts = [rule_expression(r, features) for r in rules]
    if any(t is None for t in texts):
        return None  # one conjunction matches everyone
    return texts[0] if len(texts) == 1 else " or ".join(f"({t})" for t in texts)


def segment_plans(seg: Any, template: Plan, *, prefix: str = "", name: str | None = None,
                  operating_members: float | dict[str, float] | None = None, target_share_cv: float = TARGET_SHARE_CV,
                  max_share_cv: float | None = None) -> PlanSet:
    """One plan per group of a fitted :class:`engine.RiskSegmenter`.

    Parameters
    ----------
    seg : fitted (or loaded) RiskSegmenter whose groups are written as rules
        (``tree`` and ``rules`` always; ``cluster`` when its groups are unions of a
        few rule conjunctions).
    template : plan whose benefit schedule, fee, waiting period, sharing days, caps,
        sharing rule and eligibility (age range, factor values, expression) every
        proposed plan keeps; the group's rules are added to that eligibility.
    prefix : prepended to the group names to form the plan names.
    name : name of the plan set (default ``segments_k<K>``).
    operating_members : members the plans will operate at (platform total, split as the
        data's exposure, or group name -> members). When given, each plan's share CV at
        that size is checked against ``target_share_cv`` (:func:`engine.plans.stability.plan_stability`):
        it is written in the plan's description, and plans missing the target raise a
        ``UserWarning`` with the members each needs. Share stability is a plan-design
        question: the segmentation itself only requires credible groups.
    target_share_cv : share-CV target per sharing period (default 10%: 100 expected claims).
    max_share_cv : deprecated name of ``target_share_cv`` (DeprecationWarning).

    Returns
    -------
    PlanSet
        Plans in group order (group 1 first). With ``method="rules"`` the user's
        groups may overlap and the first matching group wins, so the plan set has
        ``allow_overlap = true`` (first eligible plan in file order), which assigns
        exactly as :meth:`RiskSegmenter.assign`.

    Notes
    -----
    Group g's eligibility is ``template AND (r_g1 or r_g2 ...)`` with each r a
    conjunction of ``lo <= f <= hi`` (ordered features) and ``f in {...}``
    (categorical features); the "other" group of a rules segmentation is
    ``not (any other group)``. Features are read from the members/risk table at
    assignment (``age`` is the attained age); a segmentation adjusted for
    ``adjust_for`` keys still groups only by its features.
    """
    if not hasattr(seg, "groups_"):
        raise ModelError("segment_plans: the segmentation is not fitted; call fit(cells) or RiskSegmenter.load first")
    if not isinstance(template, Plan):
        raise ConfigError("template: must be a Plan (e.g. engine.load_plans('configs/xianghubao.toml')[0])")
    if seg.rules_ is None:
        raise ModelError(
            "segment_plans: the cluster groups cannot be written as a few rules (raise max_rule_terms, "
            "or use method='tree' / contiguous_age=True for marketable plans)"
        )
    feats = list(seg.features_)
    groups = seg.groups_.sort("group")
    names, group_rules = groups.get_column("name").to_list(), groups.get_column("rule").to_list()
    texts: list[str | None] = []
    for rules in seg.rules_:
        texts.append(None if rules is None else _group_text(list(rules), feats))
    known = [t for t, r in zip(texts, seg.rules_) if r is not None]
    plans = []
    t_el = template.eligibility
    for g, (text, rules) in enumerate(zip(texts, seg.rules_)):
        if rules is None:  # "no other group matches"
            if any(k is None for k in known):
                raise ModelError("segment_plans: an 'other' group next to a group matching everyone is empty")
            text = "not (" + " or ".join(f"({k})" for k in known) + ")"
        if t_el.when is not None:
            text = f"({t_el.when.text})" if text is None else f"({t_el.when.text}) and ({text})"
        when = None if text is None else Expression.parse(text)
        plans.append(dataclasses.replace(  # every other term of the template is kept as it is
            template, name=f"{prefix}{names[g]}",
            eligibility=dataclasses.replace(t_el, values=dict(t_el.values), when=when),
            description=f"risk group {g + 1} of {len(names)} ({seg.method}): {group_rules[g]}",
        ))
    if operating_members is not None:
        if max_share_cv is not None:
            from engine._results import warn_renamed

            warn_renamed("segment_plans", "max_share_cv", "target_share_cv")
            target_share_cv = max_share_cv
        plans = _with_stability(seg, plans, template, operating_members, target_share_cv)
    k = len(plans)
    return PlanSet(tuple(plans), name=name or f"segments_k{k}", allow_overlap=seg.method == "rules",
                   description=f"{k} vertical plans, one per risk group of a {seg.method} segmentation "
                               f"(template plan '{template.name}')",
                   source=f"segmentation ({seg.method}, K={k})")


def _with_stability(seg: Any, plans: list[Plan], template: Plan, members: Any, max_cv: float) -> list[Plan]:
    import warnings

    from engine.plans.stability import plan_stability

    st = plan_stability(seg, members, period_months=12.0 / template.periods_per_year, target_share_cv=max_cv)
    out, short = [], []
    for p, r in zip(plans, st.iter_rows(named=True)):
        out.append(dataclasses.replace(p, description=f"{p.description}; share CV {r['share_cv']:.1%} at "
                                                      f"{r['operating_members']:,.0f} members"))
        if not r["meets_target"]:
            short.append(f"{p.name} ({r['share_cv']:.1%}; needs {r['members_needed']:,.0f} members)")
    if short:
        warnings.warn(f"share CV above the target {max_cv:.0%} at the operating membership: " + ", ".join(short),
                      UserWarning, stacklevel=3)
    return out

