"""A model is a name: builders register under it, and ``create_model`` is the only way in.

In the spirit of timm's registry, so that adding a model is adding one file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

__all__ = ["register_model", "create_model", "list_models", "get_model_builder"]

_BUILDERS: dict[str, Callable[..., Any]] = {}


def register_model(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """File a builder under ``name``; a second builder under one name is a bug."""

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _BUILDERS and _BUILDERS[name] is not builder:
            raise ValueError(f"model {name!r} is already registered")
        _BUILDERS[name] = builder
        return builder

    return decorate


def _load_builtin_models(name: str | None = None) -> None:
    """Import the module of built-in model ``name`` (all of them for None or an unknown name).

    Importing a model module runs its @register_model decorator.
    """
    from deeptao.models._builtin import BUILTIN_MODULES

    for module in [BUILTIN_MODULES[name]] if name in BUILTIN_MODULES else BUILTIN_MODULES.values():
        importlib.import_module(module)


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _load_builtin_models()
    return sorted(_BUILDERS)


def get_model_builder(name: str) -> Callable[..., Any]:
    if name not in _BUILDERS:
        _load_builtin_models(name)
    try:
        return _BUILDERS[name]
    except KeyError:
        known = ", ".join(sorted(_BUILDERS)) or "none"
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None


def create_model(name: str, **kwargs: Any) -> Any:
    """Build the estimator registered as ``name``.

    Keyword arguments left as ``None`` are dropped, so that an unset command-line
    option never overrides the model's own default.
    """
    builder = get_model_builder(name)
    return builder(**{k: v for k, v in kwargs.items() if v is not None})
