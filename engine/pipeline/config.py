"""The run configuration (``fentan run CONFIG.toml``): schema, defaults and loading.

Every section is optional except ``[data]``; unknown keys are errors. Relative
paths are resolved against the configuration file's directory. Errors name the
file and the dotted key, e.g. ``run.toml: study.period: must be one of month,
quarter, year``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.cells._engines import ENGINES, check_engine
from engine.data.remote import is_remote
from engine.errors import ConfigError
from engine.conventions import ANNUAL_CAP_CNY, FEE, FULL_CREDIBILITY_CLAIMS, PER_CLAIMANT_CAP_CNY, REPORTING_LAG_DAYS, SHARING_DAYS, WAITING_DAYS


class _Section(BaseModel):
    # strict: a number must be a TOML number and a boolean a TOML boolean ("90", "no" and
    # true are refused for numbers); dates may be TOML dates or ISO text
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataSection(_Section):
    """Where the platform's files are (file, glob or directory each)."""

    members: str
    claims: str
    as_of: dt.date | None = Field(None, strict=False)
    #: endpoint and credentials of remote paths (s3://...), e.g. { aws_endpoint_url = "http://minio:9000" };
    #: the AWS_* environment variables are read too (engine.data.remote)
    storage_options: dict[str, str | int | bool] = Field(default_factory=dict)


class StudySection(_Section):
    """The experience study window and exposure conventions."""

    start: dt.date | None = Field(None, strict=False)
    end: dt.date | None = Field(None, strict=False)
    period: Literal["month", "quarter", "year"] = "month"
    waiting_days: int = Field(WAITING_DAYS, ge=0, le=3650)
    terminate_on_claim: bool = True
    factors: list[str] = Field(default_factory=lambda: ["city_tier", "channel"])
    duration_bands: list[int] = Field(default_factory=lambda: [0, 3, 6, 12, 24])

    @model_validator(mode="after")
    def _window(self) -> "StudySection":
        if self.start and self.end and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


class IncidenceSection(_Section):
    """Crude incidence against a basis, and the Poisson GLM."""

    basis: str = "ci2020"
    table: str = "CI4"
    level: float = Field(0.95, gt=0, lt=1)
    age: Literal["spline", "factor", "none"] = "spline"
    age_df: int = Field(6, ge=3, le=20)
    interactions: list[list[str]] = Field(default_factory=list)
    holdout_share: float = Field(0.2, gt=0, lt=1)
    seed: int = Field(0, ge=0)
    alpha: float = Field(0.0, ge=0)
    credibility_full_standard: float = Field(FULL_CREDIBILITY_CLAIMS, gt=0)


class SegmentationSection(_Section):
    """How members are split into risk groups."""

    method: Literal["tree", "cluster", "rules"] = "tree"
    max_groups: int = Field(8, ge=1, le=100)
    min_claims: float = Field(50.0, ge=0)
    max_rel_width: float | None = Field(None, gt=0)
    min_expected_claims: float | None = Field(None, ge=0)  # deprecated: use min_claims
    max_clauses: int = Field(3, ge=1)
    search_depth: int = Field(2, ge=0)
    n_folds: int = Field(5, ge=2)
    seed: int = Field(0, ge=0)
    contiguous_age: bool = False
    monotone_age: bool = False
    rules: list[dict[str, Any]] = Field(default_factory=list)
    features: list[str] | None = None
    adjust_for: list[str] = Field(default_factory=list)
    n_groups: int | None = Field(None, ge=1, le=100)


class HistorySection(_Section):
    """Realised share history conventions (defaults: Xianghubao's published rules)."""

    sharing_days: list[int] = Field(default_factory=lambda: list(SHARING_DAYS))
    fee: float = Field(FEE, ge=0, lt=1)
    reporting_lag_days: int = Field(REPORTING_LAG_DAYS, ge=0)
    per_claimant_cap: float | None = Field(PER_CLAIMANT_CAP_CNY, ge=0)  # 0 = no cap
    annual_cap: float | None = Field(ANNUAL_CAP_CNY, ge=0)  # 0 = no cap
    plan_col: str | None = "plan_id"
    decompose: Literal["shapley", "sequential", "lmdi"] = "shapley"


class ProjectionSection(_Section):
    """Stochastic projection assumptions (see docs/projection.md)."""

    horizon: int = Field(120, ge=1, le=1200)
    scenarios: int = Field(1000, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0)
    chunk_size: int = Field(2048, ge=1)
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("extra")
    @classmethod
    def _extra(cls, v: dict[str, Any]) -> dict[str, Any]:
        """Checked with the configuration, before any data is read (the keys of :func:`engine.project`)."""
        bad = sorted(set(v) & {"horizon", "n_scenarios", "seed", "chunk_size"})
        if bad:
            raise ValueError(f"{bad[0]}: set it in [projection] directly")
        from engine.projection.assumptions import make_assumptions

        try:
            make_assumptions(**v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v


class PlansSection(_Section):
    """Plan files to compare (paths to TOML plan sets)."""

    files: list[str] = Field(default_factory=list)
    pooled: str | None = None
    growth_per_period: float = Field(0.0, gt=-1)
    recent_years: float = Field(1.0, gt=0)
    # size-dependent rules: every per-claimant cap (plan files and [history]) is multiplied by
    # PER_CLAIMANT_CAP_DESIGN_MEMBERS / scale_caps_to_members (engine.conventions.per_claimant_cap_scale)
    scale_caps_to_members: int | None = Field(None, gt=0)


class OutputSection(_Section):
    """What is written besides the always-written tables."""

    models: bool = True
    report: bool = True
    title: str = "fentan run report"
    static: bool = False  # PNG figures (print, PDF) instead of interactive plots
    language: Literal["en", "zh"] = "en"  # of every heading, label, caption and table header


class RunSection(_Section):
    """Resources of the run (see docs/batch.md, "Memory")."""

    memory_limit: str | int | None = None  # e.g. "8GB"; default: a fraction of the available memory
    engine: Literal[ENGINES] = "local"  # type: ignore[valid-type]  # see docs/scale.md
    address: str | None = None  # a Dask scheduler, e.g. "tcp://HOST:8786" (engine "dask")
    workers: int | None = Field(None, ge=1)  # threads, processes or local Dask workers
    stream: bool = True  # validate file by file, members never all in memory; false = the in-memory path
    #: where validation's id buckets go when its tasks run off this machine, e.g. "s3://bucket/prefix"
    #: (read with [data] storage_options); default: a local temporary directory (see docs/scale.md)
    scratch: str | None = None

    @model_validator(mode="after")
    def _engine(self) -> "RunSection":
        try:
            check_engine(self.engine, self.address, self.workers, where="")
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return self

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, v: str | int | None) -> str | int | None:
        if v is not None:
            from engine.pipeline.memguard import parse_size

            try:
                parse_size(v)
            except ValueError as exc:
                raise ValueError(str(exc).split(": ", 1)[-1]) from None
        return v


class RunConfig(_Section):
    """A whole run; see docs/batch.md for every key."""

    data: DataSection
    study: StudySection = StudySection()
    incidence: IncidenceSection = IncidenceSection()
    segmentation: SegmentationSection = SegmentationSection()
    history: HistorySection = HistorySection()
    projection: ProjectionSection = ProjectionSection()
    plans: PlansSection = PlansSection()
    output: OutputSection = OutputSection()
    run: RunSection = RunSection()
    source: str | None = None  # the file it came from (set by load_config)


def _fmt(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    elif "input" in err and err.get("type", "").endswith(("_type", "_parsing")):
        msg = f"{msg}, got {err['input']!r} ({_toml_type(err['input'])})"
    return f"{loc}: {msg}" if loc else msg


def _toml_type(v: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def config_from_dict(raw: dict[str, Any], where: str = "<config>", base: Path | None = None) -> RunConfig:
    """Validate a configuration mapping; resolve relative paths against ``base``."""
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {_fmt(exc.errors()[0])}") from None
    if base is not None:
        def res(p: str) -> str:
            return p if Path(p).is_absolute() or is_remote(p) else str((base / p))

        data = cfg.data.model_copy(update={"members": res(cfg.data.members), "claims": res(cfg.data.claims)})
        plans = cfg.plans.model_copy(update={"files": [res(f) for f in cfg.plans.files],
                                             "pooled": res(cfg.plans.pooled) if cfg.plans.pooled else None})
        run = cfg.run.model_copy(update={"scratch": res(cfg.run.scratch)}) if cfg.run.scratch else cfg.run
        cfg = cfg.model_copy(update={"data": data, "plans": plans, "run": run})
        refs = [("plans.pooled", cfg.plans.pooled)] if cfg.plans.pooled else []
        refs += [(f"plans.files[{i}]", f) for i, f in enumerate(cfg.plans.files)]
        for key, f in refs:  # a plan reference is checked before any data is read
            if not Path(f).is_file():
                raise ConfigError(f"{where}: {key}: no such plan file {f}")
    return cfg.model_copy(update={"source": where})


def with_output(cfg: RunConfig, *, static: bool | None = None, language: str | None = None) -> RunConfig:
    """``cfg`` with the report options of the command line (``--static``, ``--lang``) over ``[output]``.

    ``None`` keeps the configuration's value; the result is validated like the file (a bad language
    is a ConfigError naming ``output.language``).
    """
    changes = {k: v for k, v in (("static", static), ("language", language)) if v is not None}
    if not changes:
        return cfg
    where = cfg.source or "<config>"
    try:
        output = OutputSection.model_validate({**cfg.output.model_dump(), **changes})
    except ValidationError as exc:
        raise ConfigError(f"{where}: output.{_fmt(exc.errors()[0])}") from None
    return cfg.model_copy(update={"output": output})


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run configuration TOML file."""
    from engine.data.io import read_toml

    p = Path(path)
    raw = read_toml(p, "configuration")
    return config_from_dict(raw, str(p), p.resolve().parent)


def to_toml(cfg: RunConfig) -> str:
    """Render the resolved configuration as TOML (for the copy kept with the outputs)."""
    data = cfg.model_dump(mode="json", exclude={"source"}, exclude_none=True)
    opts = data["data"].get("storage_options") or {}
    for k in opts:  # credentials never reach the outputs
        if any(w in k.lower() for w in ("secret", "token", "password", "key_id", "credential", "sas")):
            opts[k] = "(hidden)"
    lines: list[str] = [f"# resolved configuration (from {cfg.source})"]

    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f'"{k}" = {val(x)}' for k, x in v.items()) + " }"
        raise TypeError(type(v))  # pragma: no cover

    for section, body in data.items():
        lines.append(f"\n[{section}]")
        for k, v in body.items():
            if not (isinstance(v, dict) and not v):
                lines.append(f"{k} = {val(v)}")
    return "\n".join(lines) + "\n"
