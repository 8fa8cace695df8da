"""ML.HASH_BUCKETIZE(string_expression, hash_bucket_size): a string's hash modulo the number of
buckets, a TRANSFORM step of :mod:`sqlml.ml.features` registered the way a third party's would.

Theory of operation. BigQuery hashes with FarmHash Fingerprint64, which no ONNX operator
computes; sqlml hashes with MurmurHash3_x86_32 (seed 0) of the string's UTF-8 bytes, read as an
unsigned 32-bit number, which onnxruntime computes with its contrib operator
``com.microsoft.MurmurHash3``. The bucket is that number modulo ``hash_bucket_size`` (0 keeps the
hash itself), so bucket numbers differ from BigQuery's, but a model is consistent with itself:
training and scoring hash with the same operator. The training matrix hashes through the very
same operator (a one-node graph run by onnxruntime, :func:`murmur3`), so the two cannot disagree;
the modulo and NULL (NULL in, NULL out, then imputed as any number) are written twice, in numpy
and as ONNX nodes, and the parity check after training compares them.

As in BigQuery the output is an INT64, a numeric feature: imputed with the training mean and
standardized like any number. Neither engine has MurmurHash3, so the SQL compiler has no
translation for the operator: a model that hashes scores with onnxruntime (the runtime path) on
both engines, and ML.TRANSFORM refuses its hashed outputs (0A000).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from sqlml import errors
from sqlml.ml import features
from sqlml.ml.expressions import columns_of
from sqlml.ml.features import NULL_CATEGORY, Array, Step
from sqlml.ml.spec import TransformItem

if TYPE_CHECKING:
    from sqlml.ml.graph import GraphBuilder

FUNCTION = "hash_bucketize"
SEED = 0
# positive=1: the hash as an unsigned 32-bit number (uint32), not int32
ATTRIBUTES: dict[str, Any] = {"seed": SEED, "positive": 1}

_lock = threading.Lock()
_session: Any = None  # the one-node MurmurHash3 graph, built once per process


def _hasher() -> Any:
    global _session
    with _lock:
        if _session is None:
            import onnxruntime as ort
            from onnx import TensorProto, helper

            from sqlml.ml.graph import CONTRIB, CONTRIB_OPSET, IR_VERSION, OPSET

            graph = helper.make_graph(
                [helper.make_node("MurmurHash3", ["x"], ["h"], domain=CONTRIB, **ATTRIBUTES)],
                "sqlml_murmur3",
                [helper.make_tensor_value_info("x", TensorProto.STRING, [None])],
                [helper.make_tensor_value_info("h", TensorProto.UINT32, [None])],
            )
            opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, CONTRIB_OPSET)]
            model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
            _session = ort.InferenceSession(
                model.SerializeToString(), providers=["CPUExecutionProvider"]
            )
        return _session


def murmur3(values: Array) -> Array:
    """MurmurHash3_x86_32 (seed 0) of each string's UTF-8 bytes as uint32, computed by the
    operator the stored graph uses."""
    strings = np.asarray(values, dtype=object).reshape(-1)
    if strings.size == 0:
        return np.zeros(0, dtype=np.uint32)
    return np.asarray(_hasher().run(None, {"x": strings})[0], dtype=np.uint32)


def bucketize(values: Array, size: int) -> Array:
    """ML.HASH_BUCKETIZE of strings (NULL as :data:`NULL_CATEGORY`) as float64, NULL -> NaN."""
    buckets = murmur3(values).astype(np.int64)
    if size:
        buckets = np.mod(buckets, size)
    out = buckets.astype(np.float64)
    out[np.asarray(values, dtype=object).reshape(-1) == NULL_CATEGORY] = np.nan
    return out


def _fit(step: Step, item: TransformItem, x: Array) -> None:
    if step.input_kind == "numeric":
        raise errors.DatatypeMismatch(f"ML.HASH_BUCKETIZE needs a STRING input ({step.alias})")
    if not columns_of(step.expression):
        raise errors.InvalidParameterValue(
            f"ML.HASH_BUCKETIZE of a constant is not a feature ({step.alias}): hash a column"
        )
    size = item.args[0] if item.args else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise errors.InvalidParameterValue(
            f"ML.HASH_BUCKETIZE hash_bucket_size must be an integer >= 0, not {size!r}"
        )
    step.kind = "numeric"  # an INT64 in BigQuery: imputed and standardized as any number
    step.params = {"hash_bucket_size": size, "hash": "murmur3_x86_32", "seed": SEED}


def _numpy(step: Step, x: Array) -> Array:
    return bucketize(x, int(step.params["hash_bucket_size"]))


def _onnx(step: Step, g: GraphBuilder, x: str) -> str:
    from sqlml.ml.graph import CONTRIB

    hashed = g.op("MurmurHash3", x, domain=CONTRIB, **ATTRIBUTES)
    value = g.to_double(hashed)
    size = int(step.params["hash_bucket_size"])
    if size:  # exact: the hash is below 2**32, well inside a double's integers
        value = g.op("Mod", value, g.const([[float(size)]]), fmod=1)
    missing = g.op("Equal", x, g.const(np.array([[NULL_CATEGORY]], dtype=object)))
    return g.op("Where", missing, g.const([[np.nan]]), value)


features._FITTERS[FUNCTION] = _fit
features._STEP_NUMPY[FUNCTION] = _numpy
features._STEP_ONNX[FUNCTION] = _onnx
