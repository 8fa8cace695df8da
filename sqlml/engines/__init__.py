"""Engines: one interface (base.Engine), one module per database; built-ins register as
plugins would."""

from __future__ import annotations

from collections.abc import Callable

from sqlml import errors
from sqlml.engines.base import Engine

Opener = Callable[[str], Engine]
_OPENERS: dict[str, Opener] = {}


def register(scheme: str, opener: Opener) -> None:
    """``scheme`` is the URL scheme that selects the engine ('' for a file path or :memory:)."""
    _OPENERS[scheme] = opener


def open_engine(database: str) -> Engine:
    scheme = database.split("://", 1)[0] if "://" in database else ""
    opener = _OPENERS.get(scheme)
    if opener is None and scheme == "":
        from sqlml.engines import duckdb as _duckdb  # noqa: F401  (registers itself)

        opener = _OPENERS.get("")
    if opener is None and scheme in ("postgresql", "postgres"):
        from sqlml.engines import postgres as _postgres  # noqa: F401  (registers itself)

        opener = _OPENERS.get(scheme)
    if opener is None:
        raise errors.FeatureNotSupported(f"no sqlml engine for '{scheme}://' databases yet")
    return opener(database)
