"""Dataclass fields that carry their command-line help, shared by the option dataclasses.

The CLI builds its flags from these fields, so an option's help is written once,
beside its default, wherever the options live.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["option"]


def option(help: str, *, choices: tuple[Any, ...] | None = None, **kw: Any) -> Any:  # noqa: A002 - mirrors argparse
    """A dataclass field whose ``metadata["help"]`` (and ``["choices"]``) become the flag's."""
    metadata: dict[str, Any] = {"help": help}
    if choices is not None:
        metadata["choices"] = choices
    return dataclasses.field(metadata=metadata, **kw)
