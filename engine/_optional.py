"""Optional dependencies: imported only where used, with an error naming the extra to install.

The core install (``pip install fentan``) carries polars, scikit-learn, lifelines, pyarrow, numpy,
scipy, pydantic and rich. Plotting needs matplotlib, from the ``plot`` extra
(``pip install 'fentan[plot]'``); the interactive report needs plotly, from the ``report`` extra
(``pip install 'fentan[report]'``). The Dask engine (``--engine dask``) needs dask and distributed, from
the ``dask`` extra (``pip install 'fentan[dask]'``). The test extra includes all three.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from engine.errors import EngineError

#: import name -> (distribution, extra that provides it)
EXTRAS: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "plot"),
    "plotly": ("plotly", "report"),
    "dask": ("dask", "dask"),
    "distributed": ("distributed", "dask"),
}


class MissingExtraError(EngineError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def available(module: str) -> bool:
    """Whether the optional top-level ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the extra that provides it.

    Parameters
    ----------
    module : a dotted module name, e.g. ``"matplotlib.pyplot"``; its top-level package must be in
        :data:`EXTRAS`.
    purpose : what needs it, for the message (e.g. ``"plotting"``).
    """
    top = module.split(".", 1)[0]
    dist, extra = EXTRAS[top]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and exc.name.split(".", 1)[0] != top:
            raise  # the extra is installed but one of its own dependencies is broken: not ours to relabel
        raise MissingExtraError(
            f"{purpose} needs {dist}, which is not installed: pip install 'fentan[{extra}]'"
        ) from None


def pyplot() -> ModuleType:
    """``matplotlib.pyplot``, or :class:`MissingExtraError` naming the ``plot`` extra."""
    return require("matplotlib.pyplot", "plotting")


def plotly_js() -> str:
    """plotly.js (minified) as shipped inside the plotly package, or :class:`MissingExtraError` naming ``report``."""
    return require("plotly.offline", "the interactive report").get_plotlyjs()
