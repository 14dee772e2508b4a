"""Lazy re-exports for package ``__init__`` modules (PEP 562): a public name imports its module on first use.

``import engine`` then costs almost nothing, and ``fentan --help`` or ``fentan exposure`` never
load scikit-learn, scipy or lifelines. Each package keeps an explicit ``__all__`` and a
``TYPE_CHECKING`` block with the real imports for type checkers and IDEs.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, exports: Mapping[str, str], modules: Iterable[str] = ()
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``: ``exports`` maps a public name to the module defining it.

    A name in ``modules`` is that module itself (``engine.synth``). Any other submodule is
    imported on first access too (``import engine; engine.cells.process_pool``, as when the
    package imported everything eagerly). The value is stored in the package namespace on first
    use, so later look-ups are plain attribute reads.
    """
    mods = set(modules)

    def __getattr__(name: str) -> Any:
        where = exports.get(name)
        if where is None:
            if name.startswith("__") or importlib.util.find_spec(f"{package}.{name}") is None:
                raise AttributeError(f"module {package!r} has no attribute {name!r}")
            return importlib.import_module(f"{package}.{name}")  # a submodule: the import binds it
        module = importlib.import_module(where)
        value = module if name in mods else getattr(module, name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
