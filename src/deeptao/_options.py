"""Dataclass fields that carry their command-line help, shared by the option dataclasses.

The CLI builds its flags from these fields, so an option's help is written once,
beside its default, wherever the options live.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["option"]


def option(help: str, **kw: Any) -> Any:
    """A dataclass field whose ``metadata["help"]`` becomes the flag's help text."""
    return dataclasses.field(metadata={"help": help}, **kw)
