"""What the benchmarks share: a throwaway database on either engine, and best-of timing.

Imported by the benchmark scripts as a sibling module (they run as ``python benchmarks/x.py``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# tests/ holds the throwaway PostgreSQL cluster (pgcluster) and the graph helpers (graphs)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


@contextlib.contextmanager
def database(engine: str, name: str) -> Iterator[str]:
    """A DuckDB file in a temporary folder, or a PostgreSQL database named ``name`` with sqlml
    installed, on a throwaway cluster (tests/pgcluster.py); yields what sqlml.connect takes."""
    if engine == "duckdb":
        with tempfile.TemporaryDirectory() as folder:
            yield str(Path(folder) / f"{name}.duckdb")
        return
    import pgcluster

    with pgcluster.server() as server:
        dsn = pgcluster.create_database(server, name)
        try:
            pgcluster.install(dsn)
            yield dsn
        finally:
            pgcluster.drop_database(server, name)


def series(engine: str, start: int, stop: int) -> str:
    """The integers start .. stop - 1 as ``g(i)``, in the engine's own table function (DuckDB's
    range is faster than its generate_series)."""
    if engine == "duckdb":
        return f"range({start}, {stop}) AS g(i)"
    return f"generate_series({start}, {stop - 1}) AS g(i)"


def best_of(pairs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Each callable's best time, the callables run in turn ``repeat`` times."""
    times: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(repeat):
        for name, fn in pairs.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: min(t) for name, t in times.items()}
