"""Plans: plan files, eligibility expressions, pooled vs vertical comparison, sharing rules, migration, optimiser."""

from engine.plans._risk_table import build_risk_table
from engine.plans.compare import ComparisonResult, compare_plans
from engine.plans.migration import MigrationResult, migrate
from engine.plans.optimise import OptimiseResult, optimise_plans
from engine.plans.planset import Plan, PlanSet, assign_plans, load_plans, plans_from_dict, to_toml
from engine.plans.sharing import compare_rules, rules_for_plan, share_rule
from engine.plans.size import PlanSizeResult, plan_size

__all__ = [
    "ComparisonResult",
    "MigrationResult",
    "OptimiseResult",
    "PlanSizeResult",
    "Plan",
    "PlanSet",
    "assign_plans",
    "build_risk_table",
    "compare_plans",
    "compare_rules",
    "load_plans",
    "migrate",
    "optimise_plans",
    "plan_size",
    "plans_from_dict",
    "rules_for_plan",
    "share_rule",
    "to_toml",
]
