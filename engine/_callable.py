"""Modules that are also the function they are named after.

``engine.exposure`` (and ``incidence``, ``decompose``, ``validate``) is both a submodule and
the public function of the same name. Importing the submodule rebinds the package
attribute to the module object, which would hide the function; the module's class is
therefore swapped for one whose ``__call__`` forwards to the function.
"""

from __future__ import annotations

import sys
import types
from typing import Any


def make_callable(module_name: str) -> None:
    """Let ``engine.<name>(...)`` call the function ``<name>`` of the module ``engine.<name>``.

    Parameters
    ----------
    module_name : the full module name, e.g. ``"engine.validate"`` (pass ``__name__``).
    """
    module = sys.modules[module_name]
    name = module_name.rsplit(".", 1)[-1]

    class _CallableModule(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(self, name)(*args, **kwargs)

    _CallableModule.__name__ = f"CallableModule[{name}]"
    module.__class__ = _CallableModule
