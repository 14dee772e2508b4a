"""Heavy imports of a run's model and report stages, done on a thread while the member passes run.

``fentan run`` spends its first stages (validate, exposure) in polars' native code, which releases
the GIL; the later stages import scikit-learn, scipy.stats and plotly (seconds of CPU on a small
machine). :class:`Warmup` imports those modules on a daemon thread meanwhile, so the later stages
find them in ``sys.modules``.

Safety
------
* The runner waits for the thread (:meth:`Warmup.wait`) before the first stage that needs the
  modules, so no stage ever imports them concurrently with the thread, and no warning the imports
  emit can land in a stage's ``warnings.catch_warnings`` block.
* An import that fails on the thread is recorded in :attr:`Warmup.errors`, never raised there:
  importlib removes a module that failed to import from ``sys.modules``, so the stage's own import
  runs again and raises its error normally (e.g. the ``report`` extra is missing).
* The thread only imports: outputs are the same bytes with or without it (``tests/test_warmup.py``).
* Only ``fentan run`` (not a dry run) starts it; ``fentan exposure``, ``validate`` and ``--help``
  import no model library (``tests/test_startup.py``).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["Warmup", "MODEL_MODULES", "REPORT_MODULES", "warmup_modules"]

#: what incidence and segmentation import (scikit-learn through the estimator contract, scipy.stats,
#: scipy.optimize, scipy.interpolate); scikit-learn's isotonic regression only for monotone or contiguous age
MODEL_MODULES: tuple[str, ...] = (
    "engine.estimators.crude",
    "engine.estimators.metrics",
    "engine.estimators.select",
    "engine.estimators.credibility",
    "engine.estimators.glm",
    "scipy.stats",
    "scipy.optimize",
    "scipy.interpolate",
    "engine.segmentation.segmenter",
    "engine.segmentation._merge",
    "engine.segmentation._frontier",
)
#: what the report imports (the plotly package is the optional ``report`` extra)
REPORT_MODULES: tuple[str, ...] = ("engine.report.build", "engine.report.interactive", "engine.data.row_hash",
                                   "plotly.offline")


def warmup_modules(cfg: Any) -> tuple[str, ...]:
    """The modules a full run of ``cfg`` imports after the member passes: model, then report ones."""
    seg = getattr(cfg, "segmentation", None)
    iso = ("sklearn.isotonic",) if getattr(seg, "monotone_age", False) or getattr(seg, "contiguous_age", False) else ()
    report = REPORT_MODULES if getattr(getattr(cfg, "output", None), "report", False) else ()
    return (*MODEL_MODULES, *iso, *report)


class Warmup:
    """Import ``modules`` in order on a daemon thread; :meth:`wait` before using them.

    Parameters
    ----------
    modules : dotted module names. A name whose top-level package is not installed is skipped.

    Attributes
    ----------
    imported : the modules imported (or found already imported), in order.
    errors : module name -> the exception its import raised on the thread (not re-raised there).
    seconds : wall seconds the thread took (None until it ends). waited : seconds :meth:`wait` blocked.
    """

    def __init__(self, modules: Sequence[str]) -> None:
        self.modules = tuple(modules)
        self.imported: list[str] = []
        self.errors: dict[str, BaseException] = {}
        self.seconds: float | None = None
        self.waited = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Warmup:
        """Start the thread (once); returns self."""
        if self._thread is None and self.modules:
            self._thread = threading.Thread(target=self._work, name="fentan-warmup", daemon=True)
            self._thread.start()
        return self

    def _work(self) -> None:
        t0 = time.perf_counter()
        try:
            self._import_all()
        finally:
            self.seconds = round(time.perf_counter() - t0, 3)

    def _import_all(self) -> None:
        for name in self.modules:
            if self._stop.is_set():
                return
            try:
                if importlib.util.find_spec(name.split(".", 1)[0]) is None:
                    continue  # an optional extra not installed: the stage that needs it says so
                importlib.import_module(name)
                self.imported.append(name)
            except Exception as exc:  # noqa: BLE001 - kept for the stage's own import to raise again
                self.errors[name] = exc

    def wait(self) -> None:
        """Block until every module is imported (or has failed); no-op if never started."""
        if self._thread is not None:
            t0 = time.perf_counter()
            self._thread.join()
            self.waited += time.perf_counter() - t0

    def record(self) -> dict[str, Any]:
        """What the warm-up did, for ``run.json``: modules, seconds on the thread, seconds the run waited for it."""
        return {"modules": len(self.imported), "failed": sorted(self.errors), "thread_seconds": self.seconds,
                "waited_seconds": round(self.waited, 3)}

    def cancel(self) -> None:
        """Stop after the module being imported (the run ended early); does not wait."""
        self._stop.set()
