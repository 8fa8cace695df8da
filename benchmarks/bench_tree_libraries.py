"""Which library trains sqlml's boosted trees and random forests (issue 13 point 2): measured.

For each candidate, with BigQuery ML's defaults mapped onto its parameters, on rows x features of
float64 with some NaNs (BigQuery's NULLs), a regression and a binary classification target:

- fit time on the in-memory numpy array (2 threads: n_jobs / nthread = 2);
- ONNX conversion with the library's stock converter (skl2onnx for scikit-learn, onnxmltools for
  XGBoost and LightGBM) and, for XGBoost, sqlml.ml.trees_onnx (float64 graph, ai.onnx.ml v5);
  conversion time and serialized size;
- onnxruntime's predict on all rows (2 threads) against the library's own predict;
- the max abs difference between them (the regression value, the class-1 probability) and
  whether the predicted classes are equal.

Shapes: boosted (BigQuery's defaults: max_iterations 20, max_tree_depth 6, learn_rate 0.3,
l2_reg 1.0; and the issue's benchmark shape, 100 trees of depth 6) and forest (BigQuery's
defaults: num_parallel_tree 100, max_tree_depth 15, subsample 0.8, colsample_bynode 0.8).
scikit-learn's RandomForest builds exact, unbinned trees: at 1M rows it is fitted with
--sklearn-forest-trees trees (10 by default) and its fit time is also shown scaled to 100 trees
(the trees are independent, so fit time is linear in their number).

Needs `pip install lightgbm onnxmltools` besides sqlml's dependencies (neither is one).

    python benchmarks/bench_tree_libraries.py --rows 100000        # development
    python benchmarks/bench_tree_libraries.py                      # 1M rows (several minutes)
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import os

# libgomp's threads spin while they wait: on 2 shared cores, with any other process running, a
# 2-thread XGBoost fit measured 10x slower than 1 thread (3.2 s vs 0.37 s, 100k rows). Passive
# waiting removes that (0.36 s); it must be set before the OpenMP runtime loads.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

THREADS = 2
Array = np.ndarray[Any, Any]


@dataclass
class Row:
    shape: str
    library: str
    task: str
    converter: str
    fit_s: float
    convert_s: float
    onnx_mb: float
    ort_s: float
    lib_predict_s: float
    max_abs_diff: float
    classes_equal: str
    note: str = ""
    fit_scale: float = 1.0  # fit time multiplier to the shape's tree count (sklearn forest)


def make_data(
    rows: int, features: int, null_fraction: float, seed: int = 0
) -> tuple[Array, Array, Array]:
    """Features with NaNs in every other column; a nonlinear regression target; its thresholding."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features))
    clean = x.copy()
    for j in range(0, features, 2):
        x[rng.random(rows) < null_fraction, j] = np.nan
    y = (
        3 * clean[:, 0]
        + 2 * np.sin(clean[:, 1] * 2)
        + clean[:, 2] * clean[:, 3]
        + np.where(clean[:, 4] > 0.5, 2.0, 0.0)
        + rng.normal(scale=0.5, size=rows)
    )
    label = (y > np.median(y)).astype(np.int64)
    return x, y, label


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


# -- candidates: (library, shape) -> estimator factory -----------------------------------------


def xgboost_estimator(shape: str, task: str, rounds: int, forest_trees: int) -> Any:
    import xgboost as xgb

    common = {"n_jobs": THREADS, "tree_method": "hist", "reg_lambda": 1.0}
    if shape == "forest":
        cls = xgb.XGBRFRegressor if task == "regression" else xgb.XGBRFClassifier
        # n_estimators of XGBRF* is num_parallel_tree (one boosting round), learning_rate 1
        return cls(
            n_estimators=forest_trees, max_depth=15, subsample=0.8, colsample_bynode=0.8, **common
        )
    cls = xgb.XGBRegressor if task == "regression" else xgb.XGBClassifier
    return cls(n_estimators=rounds, max_depth=6, learning_rate=0.3, min_child_weight=1, **common)


def lightgbm_estimator(shape: str, task: str, rounds: int, forest_trees: int) -> Any:
    import lightgbm as lgb

    cls = lgb.LGBMRegressor if task == "regression" else lgb.LGBMClassifier
    common = {
        "n_jobs": THREADS,
        "reg_lambda": 1.0,
        "verbose": -1,
        "min_child_samples": 1,
        "min_child_weight": 1.0,
    }
    if shape == "forest":
        return cls(
            boosting_type="rf",
            n_estimators=forest_trees,
            max_depth=15,
            num_leaves=2**15,
            subsample=0.8,
            subsample_freq=1,
            feature_fraction_bynode=0.8,
            **common,
        )
    # depth-wise trees of depth 6 have up to 64 leaves; LightGBM grows leaf-wise within that bound
    return cls(n_estimators=rounds, max_depth=6, num_leaves=64, learning_rate=0.3, **common)


def sklearn_estimator(shape: str, task: str, rounds: int, forest_trees: int) -> Any:
    from sklearn import ensemble

    if shape == "forest":
        cls = (
            ensemble.RandomForestRegressor
            if task == "regression"
            else ensemble.RandomForestClassifier
        )
        return cls(
            n_estimators=forest_trees,
            max_depth=15,
            max_samples=0.8,
            max_features=0.8,
            n_jobs=THREADS,
        )
    cls = (
        ensemble.HistGradientBoostingRegressor
        if task == "regression"
        else ensemble.HistGradientBoostingClassifier
    )
    return cls(
        max_iter=rounds,
        max_depth=6,
        max_leaf_nodes=None,
        learning_rate=0.3,
        l2_regularization=1.0,
        min_samples_leaf=1,
        early_stopping=False,
    )


# -- converters ---------------------------------------------------------------------------------


def _patch_skl2onnx() -> None:
    """skl2onnx 1.20 passes nodes_missing_value_tracks_true as numpy booleans, which onnx 1.23's
    make_attribute refuses (TypeError: Expected an int, got a boolean) for HistGradientBoosting
    fitted on data with NaNs; cast them to int so the conversion can be measured at all."""
    from skl2onnx.common import _container

    original = _container.make_node
    if getattr(original, "patched", False):
        return

    def make_node(*args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if key == "nodes_missing_value_tracks_true":  # a mix of numpy uint8 and bool
                attrs[key] = [int(v) for v in value]
        return original(*args, **attrs)

    make_node.patched = True  # type: ignore[attr-defined]
    _container.make_node = make_node


def convert_stock(library: str, model: Any, features: int) -> Any:
    if library == "sklearn":
        from skl2onnx import to_onnx

        _patch_skl2onnx()
        from skl2onnx.common.data_types import FloatTensorType

        options = {id(model): {"zipmap": False}} if hasattr(model, "predict_proba") else None
        return to_onnx(
            model, initial_types=[("x", FloatTensorType([None, features]))], options=options
        )
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType as MlFloat

    types = [("x", MlFloat([None, features]))]
    if library == "xgboost":
        return onnxmltools.convert_xgboost(model, initial_types=types, target_opset=15)
    return onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=15, zipmap=False)


def session(onnx_bytes: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])


def ort_outputs(sess: ort.InferenceSession, x: Array, task: str) -> tuple[Array, Array | None]:
    """(value or class-1 probability, labels) from a stock or sqlml graph."""
    name = sess.get_inputs()[0].name
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {name: x}), strict=True))
    if task == "regression":
        return np.asarray(next(iter(outs.values()))).ravel(), None
    probs = outs.get("probabilities", outs.get("probability_tensor"))
    label = outs.get("label", outs.get("output_label"))
    if probs is None:
        first, second = list(outs.values())[:2]
        label, probs = first, second
    return np.asarray(probs)[:, 1], np.asarray(label).ravel()


def measure(
    library: str, shape: str, task: str, est: Any, x: Array, y: Array, note: str
) -> list[Row]:
    gc.collect()
    _, fit_s = timed(lambda: est.fit(x, y))
    if task == "regression":
        own, lib_s = timed(lambda: est.predict(x))
        own_labels = None
    else:
        proba, lib_s = timed(lambda: est.predict_proba(x))
        own = proba[:, 1]
        own_labels = est.predict(x)
    rows = []
    x32 = x.astype(np.float32)
    converters: list[tuple[str, Callable[[], Any], Array]] = [
        ("stock", lambda: convert_stock(library, est, x.shape[1]), x32)
    ]
    if library == "xgboost":
        from sqlml.ml.trees_onnx import xgboost_to_onnx

        converters.append(("sqlml", lambda: xgboost_to_onnx(est, ml_opset=5), x))
    for converter, convert, inputs in converters:
        try:
            onnx_model, convert_s = timed(lambda c=convert: c().SerializeToString())
        except Exception as e:  # noqa: BLE001 - a failed conversion is a result
            rows.append(
                Row(
                    shape,
                    library,
                    task,
                    converter,
                    fit_s,
                    0,
                    0,
                    0,
                    lib_s,
                    np.nan,
                    "-",
                    f"FAILED: {type(e).__name__}: {e}"[:120],
                )
            )
            continue
        sess = session(onnx_model)
        (values, labels), ort_s = timed(lambda s=sess, i=inputs: ort_outputs(s, i, task))
        diff = float(np.nanmax(np.abs(values - own)))
        equal = "-" if own_labels is None else f"{np.mean(labels == own_labels):.6f}"
        rows.append(
            Row(
                shape,
                library,
                task,
                converter,
                fit_s,
                convert_s,
                len(onnx_model) / 1e6,
                ort_s,
                lib_s,
                diff,
                equal,
                note,
            )
        )
        del sess, onnx_model
    return rows


def versions() -> str:
    names = [
        "numpy",
        "scikit-learn",
        "xgboost",
        "lightgbm",
        "onnxmltools",
        "skl2onnx",
        "onnx",
        "onnxruntime",
    ]
    return ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names)


def print_rows(rows: list[Row]) -> None:
    head = f"{'shape':<13}{'library':<9}{'task':<15}{'onnx by':<8}{'fit s':>8}{'conv s':>8}{'MB':>8}{'ort s':>8}{'own s':>8}{'ort/own':>8}  {'max|diff|':>10} {'classes eq':>10}  note"
    print(head)
    for r in rows:
        ratio = r.ort_s / r.lib_predict_s if r.ort_s else float("nan")
        print(
            f"{r.shape:<13}{r.library:<9}{r.task:<15}{r.converter:<8}{r.fit_s:8.2f}{r.convert_s:8.2f}{r.onnx_mb:8.2f}"
            f"{r.ort_s:8.2f}{r.lib_predict_s:8.2f}{ratio:8.2f}  {r.max_abs_diff:10.2e} {r.classes_equal:>10}  {r.note}"
        )


def print_ratios(rows: list[Row]) -> None:
    """Fit time of each library against XGBoost's, per shape and task."""
    print("\nfit time vs xgboost (same shape and task; < 1 is faster than xgboost):")
    fits = {(r.shape, r.library, r.task): r for r in rows if r.converter == "stock"}
    for (shape, library, task), r in fits.items():
        base = fits.get((shape, "xgboost", task))
        if base is None or library == "xgboost":
            continue
        scaled = "  (fit time scaled to the shape's tree count)" if r.fit_scale != 1 else ""
        print(
            f"  {shape:<13}{library:<9}{task:<15}{r.fit_s * r.fit_scale / base.fit_s:6.2f}{scaled}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10)
    parser.add_argument("--null-fraction", type=float, default=0.05)
    parser.add_argument("--forest-trees", type=int, default=100)
    parser.add_argument("--sklearn-forest-trees", type=int, default=10)
    parser.add_argument("--libraries", default="xgboost,lightgbm,sklearn")
    parser.add_argument("--shapes", default="boosted-20,boosted-100,forest")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    x, y, label = make_data(args.rows, args.features, args.null_fraction)
    print(
        f"rows {args.rows:,} x {args.features} features, NaN in every other column ({args.null_fraction:.0%}); threads {THREADS}"
    )
    print(versions())
    factories = {
        "xgboost": xgboost_estimator,
        "lightgbm": lightgbm_estimator,
        "sklearn": sklearn_estimator,
    }
    rows: list[Row] = []
    for shape in args.shapes.split(","):
        kind, _, count = shape.partition("-")
        for library in args.libraries.split(","):
            trees, note, scale = args.forest_trees, "", 1.0
            if kind == "forest" and library == "sklearn" and args.sklearn_forest_trees != trees:
                trees = args.sklearn_forest_trees
                scale = args.forest_trees / trees
                note = f"{trees} trees fitted (fit x{scale:g} = {args.forest_trees} trees)"
            for task, target in (("regression", y), ("classification", label)):
                est = factories[library](kind, task, int(count or 0), trees)
                found = measure(library, shape, task, est, x, target, note)
                for r in found:
                    r.fit_scale = scale
                rows.extend(found)
                print(f"  done {shape} {library} {task}: fit {found[0].fit_s:.2f}s", flush=True)
    print()
    print_rows(rows)
    print_ratios(rows)


if __name__ == "__main__":
    main()
