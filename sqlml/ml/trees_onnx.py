"""ONNX for XGBoost tree ensembles (boosted trees, DART, random forests), from the model's JSON.

BigQuery ML trains its boosted tree and random forest models with XGBoost, so sqlml does too
(benchmarks/RESULTS.md "Tree libraries (issue 13)", docs/design/trees.md). This module turns a
fitted XGBoost model into an ONNX graph without onnxmltools, for three measured reasons:

- onnxmltools 1.16 cannot convert DART boosters (KeyError 'gbtree_model_param') and writes
  float32 thresholds, leaves and outputs only; sqlml scores in float64 everywhere else;
- the model's own JSON (``Booster.save_raw("json")``) is XGBoost's stable, documented format: this
  module reads it with the standard library and needs neither xgboost nor onnxmltools to run
  (a stored model can be re-converted or inspected anywhere);
- XGBoost 3.x stores ``base_score`` as a vector ('[6.59E-1]'), in probability space for
  binary:logistic and in margin space for multi:softprob; that is handled here in one place.

Fidelity. XGBoost reads every feature as float32 (its DMatrix) and its split thresholds are float32,
with the rule ``x < threshold`` goes left and a missing value (NaN) goes to the node's
``default_left`` side. The graph therefore rounds the float64 input to float32 and back (so each
comparison is exactly XGBoost's), keeps thresholds and leaf values as the float32 numbers XGBoost
holds (widened to float64, which is exact), maps ``default_left`` to
``nodes_missing_value_tracks_true`` and sums the leaves in float64. XGBoost sums them in float32,
so its own predictions carry float32 rounding: the graph's output is the exact sum of XGBoost's
float32 leaves, and differs from ``Booster.predict`` by that rounding only (at most
n_trees * 2^-24 * sum |leaf| per row; measured 2e-7 relative to the largest prediction;
tests/test_trees_onnx.py asserts both).

Outputs follow sqlml's canonical names: ``value`` [N, 1] for regression; ``probabilities`` [N, K]
and ``label`` [N] (int64 class index) for classification, K = 2 for binary models.

The tree operator is the unified TreeEnsemble of ai.onnx.ml v5 by default: its output has its
input's type, so the sum is float64. ``ml_opset=3`` writes TreeEnsembleRegressor v3 instead (for
runtimes older than onnxruntime 1.20): thresholds and leaves are still float64 tensors, but v3's
output is float32 whatever its input (the ONNX spec), so the sum carries float32 rounding, as
XGBoost's own. The paths through each tree, hence labels, are the same with both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sqlml.errors import FeatureNotSupported

OPSET = 19  # main-domain opset (as sqlml.ml.graph)
IDENTITY = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror")
LOGISTIC = ("binary:logistic",)
SOFTMAX = ("multi:softprob", "multi:softmax")
SUPPORTED = IDENTITY + LOGISTIC + SOFTMAX


@dataclass
class Ensemble:
    """Every tree of the model flattened into parallel node lists (ai.onnx.ml v3's layout).

    Node ids are per tree; a leaf carries its value (already scaled by DART's weight) and the
    target (class) its tree adds to.
    """

    n_features: int
    n_targets: int
    base_margin: list[float]
    objective: str
    tree_ids: list[int] = field(default_factory=list)
    node_ids: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    leaf: list[bool] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)  # per node; meaningful for leaves
    weights: list[float] = field(default_factory=list)  # per node; meaningful for leaves
    n_trees: int = 0


def xgboost_to_onnx(
    model: Any, *, input_name: str = "features", ml_opset: int = 5, rounds: int | None = None
) -> onnx.ModelProto:
    """Converts a fitted XGBoost model to ONNX with float64 input and outputs.

    ``model`` is an ``xgboost.Booster``, a scikit-learn wrapper (``XGBRegressor``, ...), the bytes
    of ``Booster.save_raw("json")`` or that JSON already parsed. ``rounds`` keeps the first
    boosting rounds only; by default the model's ``best_iteration`` + 1 when early stopping
    recorded one (as the scikit-learn wrappers' predict does; ``Booster.predict`` uses every
    round), else all. Categorical splits, linear boosters, multi-output trees and objectives other
    than squared/absolute/pseudo-Huber error, binary:logistic and multi:softprob/softmax raise
    FeatureNotSupported (0A000).
    """
    if ml_opset not in (3, 5):
        raise ValueError(f"ml_opset must be 3 or 5, not {ml_opset}")
    ensemble = parse_xgboost(_model_json(model), rounds)
    return _graph(ensemble, input_name, ml_opset)


def _model_json(model: Any) -> Mapping[str, Any]:
    if hasattr(model, "get_booster"):
        model = model.get_booster()
    if hasattr(model, "save_raw"):
        model = model.save_raw(raw_format="json")
    if isinstance(model, (bytes, bytearray, memoryview, str)):
        parsed: Mapping[str, Any] = json.loads(
            bytes(model) if not isinstance(model, str) else model
        )
        return parsed
    if isinstance(model, Mapping):
        return model
    raise TypeError(f"not an XGBoost model: {type(model).__name__}")


def parse_xgboost(doc: Mapping[str, Any], rounds: int | None = None) -> Ensemble:
    """Reads XGBoost's JSON model format (XGBoost 2.x and 3.x) into an Ensemble."""
    learner = doc["learner"]
    objective = str(learner["objective"]["name"])
    if objective not in SUPPORTED:
        raise FeatureNotSupported(f"XGBoost objective {objective} cannot be converted to ONNX")
    params = learner["learner_model_param"]
    if int(params.get("num_target", "1")) > 1:
        raise FeatureNotSupported("multi-output XGBoost models cannot be converted to ONNX")
    n_targets = max(1, int(params.get("num_class", "0")))
    booster = learner["gradient_booster"]
    name = booster["name"]
    if name == "gbtree":
        trees_doc, drop = booster["model"], None
    elif name == "dart":
        trees_doc, drop = booster["gbtree"]["model"], [float(w) for w in booster["weight_drop"]]
    else:
        raise FeatureNotSupported(f"XGBoost booster {name} cannot be converted to ONNX")
    ensemble = Ensemble(
        n_features=int(params["num_feature"]),
        n_targets=n_targets,
        base_margin=_base_margin(str(params["base_score"]), objective, n_targets),
        objective=objective,
    )
    count = _tree_count(learner, trees_doc, rounds)
    pairs = zip(trees_doc["trees"][:count], trees_doc["tree_info"][:count], strict=True)
    for index, (tree, target) in enumerate(pairs):
        _add_tree(ensemble, tree, int(target), 1.0 if drop is None else drop[index])
    return ensemble


def _tree_count(
    learner: Mapping[str, Any], trees_doc: Mapping[str, Any], rounds: int | None
) -> int:
    """How many trees the first ``rounds`` rounds hold (iteration_indptr: where each starts)."""
    best = learner.get("attributes", {}).get("best_iteration")
    if rounds is None and best is None:
        return len(trees_doc["trees"])
    wanted = int(best) + 1 if rounds is None else rounds
    starts = [int(i) for i in trees_doc["iteration_indptr"]]
    if not 0 < wanted < len(starts):
        raise ValueError(f"rounds must be in 1..{len(starts) - 1}, not {wanted}")
    return starts[wanted]


def _base_margin(text: str, objective: str, n_targets: int) -> list[float]:
    """XGBoost's intercept in margin space, one per target.

    2.x writes '5E-1', 3.x '[6.59E-1]' or one value per class. binary:logistic stores a
    probability (margin = logit, as XGBoost's ProbToMargin); the others store the margin itself.
    """
    values = [float(np.float32(v)) for v in text.strip("[]").split(",")]
    if len(values) == 1:
        values = values * n_targets
    if len(values) != n_targets:
        raise FeatureNotSupported(f"XGBoost base_score {text} does not match {n_targets} targets")
    if objective in LOGISTIC:
        return [-math.log(1.0 / v - 1.0) for v in values]
    return values


def _add_tree(ensemble: Ensemble, tree: Mapping[str, Any], target: int, weight: float) -> None:
    """Appends one tree; a leaf's value is split_conditions[i] (XGBoost's JSON stores it there)."""
    if any(int(t) != 0 for t in tree.get("split_type", [])):
        raise FeatureNotSupported("XGBoost categorical splits cannot be converted to ONNX")
    if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
        raise FeatureNotSupported("XGBoost vector-leaf trees cannot be converted to ONNX")
    tree_id = ensemble.n_trees
    ensemble.n_trees += 1
    left = np.asarray(tree["left_children"], dtype=np.int64)
    leaf = left == -1
    split = ~leaf
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)

    def interior(key: str) -> list[int]:
        return np.where(split, np.asarray(tree[key], dtype=np.int64), 0).tolist()  # type: ignore[no-any-return]

    ensemble.tree_ids += [tree_id] * len(left)
    ensemble.node_ids += range(len(left))
    ensemble.leaf += leaf.tolist()
    ensemble.features += interior("split_indices")
    ensemble.thresholds += np.where(split, conditions, 0.0).tolist()
    ensemble.true_ids += np.where(split, left, 0).tolist()
    ensemble.false_ids += interior("right_children")
    ensemble.missing_true += interior("default_left")
    ensemble.targets += [target] * len(left)
    ensemble.weights += np.where(leaf, conditions * weight, 0.0).tolist()


def _graph(ensemble: Ensemble, input_name: str, ml_opset: int) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = [
        helper.make_node("Cast", [input_name], ["x32"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["x32"], ["x"], to=TensorProto.DOUBLE),
    ]
    if ml_opset == 3:  # v3's output is float32 whatever its input (the ONNX spec)
        nodes.append(_ensemble_v3(ensemble, "x", "sum32"))
        nodes.append(helper.make_node("Cast", ["sum32"], ["sum"], to=TensorProto.DOUBLE))
    else:
        nodes.append(_ensemble_v5(ensemble, "x", "sum"))
    base = numpy_helper.from_array(np.asarray([ensemble.base_margin], dtype=np.float64), "base")
    nodes.append(helper.make_node("Add", ["sum", "base"], ["margin"]))
    initializers = [base]
    outputs = _link(ensemble, "margin", nodes, initializers)
    n_features = ensemble.n_features
    graph = helper.make_graph(
        nodes,
        "xgboost",
        [helper.make_tensor_value_info(input_name, TensorProto.DOUBLE, [None, n_features])],
        outputs,
        initializers,
    )
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    model = helper.make_model(graph, opset_imports=opsets, producer_name="sqlml")
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _link(
    ensemble: Ensemble, margin: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]
) -> list[onnx.ValueInfoProto]:
    """The objective's inverse link: identity, sigmoid (two columns) or softmax, and the label."""
    double = TensorProto.DOUBLE
    if ensemble.objective in IDENTITY:
        nodes.append(helper.make_node("Identity", [margin], ["value"]))
        return [helper.make_tensor_value_info("value", double, [None, 1])]
    if ensemble.objective in LOGISTIC:
        inits.append(numpy_helper.from_array(np.asarray([[1.0]]), "one"))
        inits.append(numpy_helper.from_array(np.asarray([[0.5]]), "half"))
        inits.append(numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axis1"))
        nodes += [
            helper.make_node("Sigmoid", [margin], ["p1"]),
            helper.make_node("Sub", ["one", "p1"], ["p0"]),
            helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
            # XGBClassifier.predict: class 1 where the probability is above 0.5
            helper.make_node("Greater", ["p1", "half"], ["positive"]),
            helper.make_node("Squeeze", ["positive", "axis1"], ["positive1d"]),
            helper.make_node("Cast", ["positive1d"], ["label"], to=TensorProto.INT64),
        ]
        classes = 2
    else:
        nodes += [
            helper.make_node("Softmax", [margin], ["probabilities"], axis=1),
            helper.make_node("ArgMax", [margin], ["label"], axis=1, keepdims=0),
        ]
        classes = ensemble.n_targets
    return [
        helper.make_tensor_value_info("probabilities", double, [None, classes]),
        helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
    ]


def _ensemble_v3(ensemble: Ensemble, x: str, out: str) -> onnx.NodeProto:
    """ai.onnx.ml TreeEnsembleRegressor v3, thresholds and weights as float64 tensors."""
    leaves = [i for i, is_leaf in enumerate(ensemble.leaf) if is_leaf]
    return helper.make_node(
        "TreeEnsembleRegressor",
        [x],
        [out],
        domain="ai.onnx.ml",
        n_targets=ensemble.n_targets,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=ensemble.tree_ids,
        nodes_nodeids=ensemble.node_ids,
        nodes_featureids=ensemble.features,
        nodes_modes=["LEAF" if is_leaf else "BRANCH_LT" for is_leaf in ensemble.leaf],
        nodes_values_as_tensor=_doubles(ensemble.thresholds, "nodes_values"),
        nodes_truenodeids=ensemble.true_ids,
        nodes_falsenodeids=ensemble.false_ids,
        nodes_missing_value_tracks_true=ensemble.missing_true,
        target_treeids=[ensemble.tree_ids[i] for i in leaves],
        target_nodeids=[ensemble.node_ids[i] for i in leaves],
        target_ids=[ensemble.targets[i] for i in leaves],
        target_weights_as_tensor=_doubles([ensemble.weights[i] for i in leaves], "target_weights"),
    )


def _ensemble_v5(ensemble: Ensemble, x: str, out: str) -> onnx.NodeProto:
    """ai.onnx.ml TreeEnsemble v5: interior nodes and leaves in separate lists.

    A tree that is a single leaf gets one dummy split whose both branches reach that leaf
    (v5 roots must be interior nodes).
    """
    v5 = _V5()
    start = 0
    for tree in range(ensemble.n_trees):
        end = start
        while end < len(ensemble.tree_ids) and ensemble.tree_ids[end] == tree:
            end += 1
        v5.add_tree(ensemble, start, end)
        start = end
    return helper.make_node(
        "TreeEnsemble",
        [x],
        [out],
        domain="ai.onnx.ml",
        n_targets=ensemble.n_targets,
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE
        tree_roots=v5.roots,
        nodes_featureids=v5.features,
        nodes_splits=_doubles(v5.splits, "nodes_splits"),
        nodes_modes=numpy_helper.from_array(np.asarray(v5.modes, dtype=np.uint8), "nodes_modes"),
        nodes_truenodeids=v5.true_ids,
        nodes_trueleafs=v5.true_leaf,
        nodes_falsenodeids=v5.false_ids,
        nodes_falseleafs=v5.false_leaf,
        nodes_missing_value_tracks_true=v5.missing_true,
        leaf_targetids=v5.leaf_targets,
        leaf_weights=_doubles(v5.leaf_weights, "leaf_weights"),
    )


@dataclass
class _V5:
    roots: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def add_tree(self, ensemble: Ensemble, start: int, end: int) -> None:
        """Renumbers one tree's nodes [start, end) into the interior and leaf lists."""
        interior: dict[int, int] = {}
        leaves: dict[int, int] = {}
        for i in range(start, end):
            local = ensemble.node_ids[i]
            if ensemble.leaf[i]:
                leaves[local] = len(self.leaf_weights)
                self.leaf_targets.append(ensemble.targets[i])
                self.leaf_weights.append(ensemble.weights[i])
            else:
                interior[local] = len(self.features) + len(interior)
        self.roots.append(len(self.features))
        if not interior:  # a single leaf
            self._node(0, 0.0, (leaves[0], 1), (leaves[0], 1), 0)
            return
        for i in range(start, end):
            if ensemble.leaf[i]:
                continue
            true_id, false_id = ensemble.true_ids[i], ensemble.false_ids[i]
            self._node(
                ensemble.features[i],
                ensemble.thresholds[i],
                _target(true_id, interior, leaves),
                _target(false_id, interior, leaves),
                ensemble.missing_true[i],
            )

    def _node(
        self, feature: int, split: float, true: tuple[int, int], false: tuple[int, int], miss: int
    ) -> None:
        self.features.append(feature)
        self.splits.append(split)
        self.modes.append(1)  # BRANCH_LT
        self.true_ids.append(true[0])
        self.true_leaf.append(true[1])
        self.false_ids.append(false[0])
        self.false_leaf.append(false[1])
        self.missing_true.append(miss)


def _target(local: int, interior: Mapping[int, int], leaves: Mapping[int, int]) -> tuple[int, int]:
    return (leaves[local], 1) if local in leaves else (interior[local], 0)


def _doubles(values: Sequence[float], name: str) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=np.float64), name)
