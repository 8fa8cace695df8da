"""The ML core stays pure (issue 13): importing sqlml.ml's modules loads neither the grammar,
the DB-API, the engine path, the gateway nor the model store, so that a model kind or an ML
function can be built, and registered from outside, against sqlml.ml alone."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE = (
    "train",
    "features",
    "options",
    "models",
    "kinds",
    "spec",
    "to_sql",
    "metrics",
    "score",
    "split",
)
OUTSIDE = ("sqlml.grammar", "sqlml.engine", "sqlml.dbapi", "sqlml.wire", "sqlml.store")


def test_importing_the_ml_core_loads_nothing_outside_it() -> None:
    code = (
        "import sys\n"
        + "".join(f"import sqlml.ml.{module}\n" for module in CORE)
        + f"print(sorted(m for m in sys.modules if m.startswith({OUTSIDE!r})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]"


def test_every_model_type_has_a_registered_kind() -> None:
    from sqlml.ml import kinds, models

    for name in models.names():
        model_type = models.get(name)
        assert kinds.kind(model_type.kind).name == model_type.kind


def test_an_unknown_kind_is_an_internal_error() -> None:
    from sqlml import errors
    from sqlml.ml import kinds

    with pytest.raises(errors.InternalError) as caught:
        kinds.kind("forecaster")
    assert caught.value.sqlstate == "XX000"
