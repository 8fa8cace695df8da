"""DuckDB's runtime scoring function, registered on every connection sqlml opens.

``sqlml_onnx(key VARCHAR, feature, ...) -> DOUBLE[]`` runs the model version whose graph has
sha256 ``key`` through onnxruntime, one call per DuckDB vector (2,048 rows), and returns the graph's
raw outputs flattened per row: the outputs the model's kind names, in its order (sqlml/ml/kinds.py
``raw_outputs``: ``[label, p0, p1, ...]`` for classifiers, ``[value]`` for regressors and
``[cluster, d0, d1, ...]`` for k-means). The engine path registers each version, with those
names, before a query uses it.

DuckDB carries a Python exception raised in a UDF as text, with the SQLSTATE of invalid input.
So the UDF never lets a bare Python error out: it files the sqlml error it means (an unknown
graph 42704, a graph onnxruntime cannot load XX001, inputs the graph does not take 42804) under
a fresh token and raises with the token in its message; the engine claims the filed error by
its token (engines/duckdb_errors.py). At most ``_FILED_MAX`` errors wait to be claimed.

A traffic split over runtime-scored versions (sqlml/traffic.py) calls it once per vector for
all of them, ``sqlml_onnx(route, owner, feature, ...)``: ``route`` spells out each version's
graph and which of the features it reads (``route:<version>=<graph key>@<positions>;...``,
made by route_key), ``owner`` is the version that owns each row, and each version scores only
its rows with its graph, which the engine registered as any other. One call where a CASE per
version would make one each, on a part of the vector: the call, not the graph, is most of
runtime scoring's cost on DuckDB (~0.5 ms a call; benchmarks/RESULTS.md). A row no version of
the route owns gets an empty list.

``sqlml_treeshap`` (ML.EXPLAIN_PREDICT of a tree model) reads the registry too: the engine
registers a tree version's XGBoost JSON under its sha256 as it registers a graph.
``sqlml_integrated_gradients`` (ML.EXPLAIN_PREDICT of a DNN) reads a DNN's weights from its
graph, registered as for runtime scoring.

The registry is bounded: a graph stays while an engine that registered it is open and still
holds it (each engine holds its last ``engines/duckdb.py`` MAX_SCORERS versions and releases
them when it closes); an engine registers a version again before a query uses it.
"""

from __future__ import annotations

import functools
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from sqlml import errors

_MODELS: dict[str, tuple[bytes, list[Any], tuple[str, ...]]] = {}
_HOLDERS: dict[str, int] = {}  # key -> how many engines hold it
_LOCK = threading.Lock()
FUNCTION = "sqlml_onnx"


def register_model(
    key: str, onnx: bytes, inputs: Sequence[Any], outputs: Sequence[str] = ()
) -> None:
    """One more engine holds the graph ``key`` (call once per engine; see release_models). The
    bytes are checked against their sha256 first (XX001): the registry is keyed by it, so bytes
    that do not match would serve every later version with that key. ``outputs``: the graph
    outputs the UDF returns, in order (the model kind's raw outputs; empty: all of them)."""
    with _LOCK:
        if key not in _MODELS:
            from sqlml.ml.score import verify  # lazy: onnxruntime loads when a model does

            verify(onnx, key)
            _MODELS[key] = (onnx, list(inputs), tuple(outputs))
        _HOLDERS[key] = _HOLDERS.get(key, 0) + 1


ROUTE = "route:"


def route_key(members: dict[int, tuple[str, Sequence[int]]]) -> str:
    """The key of a routed call: for each owner (a version number), the graph key that scores
    its rows and the positions (0-based, after ``owner``) of that graph's inputs among the
    call's features."""
    return ROUTE + ";".join(
        f"{number}={digest}@{','.join(map(str, positions))}"
        for number, (digest, positions) in sorted(members.items())
    )


@functools.lru_cache(maxsize=256)
def _route(key: str) -> dict[int, tuple[str, tuple[int, ...]]]:
    members = {}
    for part in key[len(ROUTE) :].split(";"):
        number, rest = part.split("=", 1)
        digest, positions = rest.split("@", 1)
        members[int(number)] = (digest, tuple(int(p) for p in positions.split(",") if p))
    return members


def release_models(keys: Iterable[str]) -> None:
    """An engine no longer holds these graphs: the ones no engine holds are dropped."""
    with _LOCK:
        for key in keys:
            left = _HOLDERS.get(key, 0) - 1
            if left > 0:
                _HOLDERS[key] = left
            else:
                _HOLDERS.pop(key, None)
                _MODELS.pop(key, None)


def registered() -> int:
    """How many graphs the registry holds (for tests and monitoring)."""
    return len(_MODELS)


# What onnxruntime raises for bytes that are no graph it can load, and for inputs of another
# number or type than the graph takes (the pybind exceptions derive from Exception only).
# (Read when the UDF first scores: onnxruntime takes a third of a second to import, which every
# DuckDB connection would pay, `sqlml models` included.)
@functools.cache
def _ort_errors() -> tuple[tuple[type[Exception], ...], tuple[type[Exception], ...]]:
    from onnxruntime.capi import onnxruntime_pybind11_state as ort_state

    return (
        (ort_state.InvalidProtobuf, ort_state.InvalidGraph, ort_state.Fail, ort_state.NoModel,
         ort_state.NotImplemented),
        (ort_state.InvalidArgument, ort_state.Fail, ort_state.RuntimeException, ValueError,
         TypeError, KeyError, IndexError, pa.ArrowException),
    )  # fmt: skip


_FILED: OrderedDict[str, errors.Error] = OrderedDict()  # token -> the error the UDF meant
_FILED_MAX = 64
_filed_lock = threading.Lock()


class ScoringError(Exception):
    """What the UDF raises: DuckDB keeps its text, which carries the filed error's token."""


def _file(error: errors.Error) -> ScoringError:
    token = f"sqlml-udf-{secrets.token_hex(8)}"
    with _filed_lock:
        _FILED[token] = error
        while len(_FILED) > _FILED_MAX:
            _FILED.popitem(last=False)
    return ScoringError(f"{error.message} [{token}]")


def claim(text: str) -> errors.Error | None:
    """The error the UDF filed under a token that ``text`` (DuckDB's message) carries."""
    with _filed_lock:
        for token in list(_FILED):
            if token in text:
                return _FILED.pop(token)
    return None


def _score(key: pa.Array, *columns: pa.Array) -> pa.Array:
    digest = key[0].as_py() if len(key) else None
    if isinstance(digest, str) and digest.startswith(ROUTE):
        return _routed(_route(digest), columns[0], columns[1:])
    flat = _outputs(digest, len(key), lambda run: run.feed(columns))
    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))


def _routed(
    route: dict[int, tuple[str, tuple[int, ...]]], owner: pa.Array, columns: Sequence[pa.Array]
) -> pa.Array:
    """Each owner's rows scored by its graph, in one list per row (empty: no owner). Each
    feature is made a NumPy array once, and each graph takes its rows of it."""
    from sqlml.ml.features import to_numpy

    owners = np.asarray(owner.to_numpy(zero_copy_only=False), dtype=np.float64)  # (NULL: NaN)
    arrays: dict[tuple[int, str], np.ndarray[Any, Any]] = {}

    def feature(position: int, kind: str) -> np.ndarray[Any, Any]:
        if (position, kind) not in arrays:
            arrays[position, kind] = to_numpy(columns[position], kind)
        return arrays[position, kind]

    rows: list[np.ndarray[Any, Any]] = []
    scored: list[np.ndarray[Any, Any]] = []
    for number, (digest, positions) in route.items():
        mine = np.flatnonzero(owners == number)
        if not len(mine):
            continue
        scored.append(
            _outputs(
                digest,
                len(mine),
                lambda run, mine=mine, positions=positions: {
                    c.name: feature(p, c.kind)[mine]
                    for c, p in zip(run.inputs, positions, strict=True)
                },
            )
        )
        rows.append(mine)
    widths = np.zeros(len(owners), dtype=np.int32)
    for mine, flat in zip(rows, scored, strict=True):
        widths[mine] = flat.shape[1]
    offsets = np.zeros(len(owners) + 1, dtype=np.int32)
    np.cumsum(widths, out=offsets[1:])
    values = np.empty(int(offsets[-1]), dtype=np.float64)
    for mine, flat in zip(rows, scored, strict=True):  # (each row's outputs at its offset)
        starts = offsets[mine]
        values[(starts[:, None] + np.arange(flat.shape[1])).reshape(-1)] = flat.reshape(-1)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _outputs(
    digest: Any, n: int, feed: Callable[[Any], dict[str, np.ndarray[Any, Any]]]
) -> np.ndarray[Any, Any]:
    """The graph ``digest``'s raw outputs for ``n`` rows, a row of numbers each; ``feed``
    gives the graph's inputs (by name) from its scorer (sqlml/ml/score.py)."""
    found = _MODELS.get(digest) if isinstance(digest, str) else None
    if found is None:
        raise _file(errors.UndefinedModel(f"no model version with graph {digest!r} is loaded"))
    onnx, inputs, names = found
    from sqlml.ml.score import scorer

    unloadable, unscorable = _ort_errors()
    try:
        run = scorer(onnx, inputs, key=digest)
    except errors.Error as e:
        raise _file(e) from e
    except unloadable as e:
        raise _file(errors.CorruptedModel(f"model graph {digest} cannot be loaded: {e}")) from e
    try:
        outputs = run.run(feed(run), list(names or run.outputs))
    except errors.Error as e:
        raise _file(e) from e
    except unscorable as e:
        raise _file(
            errors.DatatypeMismatch(f"model graph {digest} cannot score these inputs: {e}")
        ) from e
    parts = [np.asarray(v, dtype=np.float64).reshape(n, -1) for v in outputs.values()]
    return np.hstack(parts)


TREESHAP = "sqlml_treeshap"


def _treeshap(key: pa.Array, approx: pa.Array, which: pa.Array, *features: pa.Array) -> pa.Array:
    """``sqlml_treeshap(key, approx, class, feature, ...) -> DOUBLE[]``: ML.EXPLAIN_PREDICT's
    TreeSHAP (sqlml/ml/treeshap.py) of the XGBoost model whose JSON has sha256 ``key``, which
    the engine registered as it registers a graph (functions/explain_trees.py), over one
    vector of rows as its tree ensemble reads them."""
    from sqlml.ml import treeshap

    if not len(key):
        return pa.array([], type=pa.list_(pa.float64()))
    setting = bool(approx[0].as_py())
    return _explained(key, which, features, "XGBoost model", treeshap.explain, setting)


def _explained(
    key: pa.Array,
    which: pa.Array,
    features: tuple[pa.Array, ...],
    what: str,
    explain: Callable[..., np.ndarray[Any, Any]],
    setting: Any,
) -> pa.Array:
    """An explainer's rows of one vector as DOUBLE[] (treeshap.explain, integrated_gradients.
    explain: (sha256, loader, features, classes, setting) -> one row of values per row), the
    model found in the registry under ``key``'s sha256."""
    digest = key[0].as_py()
    found = _MODELS.get(digest) if isinstance(digest, str) else None
    if found is None:
        raise _file(errors.UndefinedModel(f"no {what} {digest!r} is loaded"))
    x = np.empty((len(key), len(features)), dtype=np.float64)
    for j, column in enumerate(features):  # (NULL: NaN, missing)
        x[:, j] = np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
    classes = np.nan_to_num(np.asarray(which.to_numpy(zero_copy_only=False), dtype=np.float64))
    try:
        flat = explain(digest, lambda: found[0], x, classes.astype(np.int64), setting)
    except errors.Error as e:
        raise _file(e) from e
    offsets = np.arange(0, flat.size + 1, flat.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat.reshape(-1)))


INTEGRATED_GRADIENTS = "sqlml_integrated_gradients"


def _integrated_gradients(
    key: pa.Array, steps: pa.Array, which: pa.Array, *features: pa.Array
) -> pa.Array:
    """``sqlml_integrated_gradients(key, steps, class, feature, ...) -> DOUBLE[]``:
    ML.EXPLAIN_PREDICT's integrated gradients (sqlml/ml/integrated_gradients.py) of the DNN whose
    graph has sha256 ``key``, which the engine registered for runtime scoring
    (functions/explain_dnn.py), over one vector of rows as its perceptron reads them."""
    from sqlml.ml import integrated_gradients

    if not len(key):
        return pa.array([], type=pa.list_(pa.float64()))
    setting = int(steps[0].as_py())
    return _explained(key, which, features, "model graph", integrated_gradients.explain, setting)


def register_udfs(con: duckdb.DuckDBPyConnection) -> None:
    con.create_function(
        TREESHAP,
        _treeshap,
        None,  # varargs: the key, approx, the class, then the features
        "DOUBLE[]",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    con.create_function(
        INTEGRATED_GRADIENTS,
        _integrated_gradients,
        None,  # varargs: the key, the steps, the class, then the features
        "DOUBLE[]",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
    con.create_function(
        FUNCTION,
        _score,
        None,  # varargs: the model's inputs, whatever their types
        "DOUBLE[]",
        type="arrow",
        null_handling="special",
        side_effects=False,
    )
