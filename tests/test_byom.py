"""Bring your own model (issue 13 point 3): CREATE MODEL ... OPTIONS (model_type = 'onnx',
model_path = ...) with BigQuery's INPUT/OUTPUT clauses, and EXPORT MODEL.

The graphs are what BigQuery's tutorials import: scikit-learn pipelines (a ColumnTransformer over
named columns, then the estimator) converted by skl2onnx with one ``[None, 1]`` input per column,
written to a temp folder. ML.PREDICT is compared with the pipeline's own predict on the same rows
(the graphs compute in float32: 1e-5 relative), compiled to SQL and through onnxruntime.

PostgreSQL: CREATE MODEL runs inside the server, where reading model_path would read the
server's files: 42501 (byom.py); EXPORT MODEL through sqlml.connect writes the client's file.
The gateway over DuckDB follows its file policy: a user without file access gets 42501.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import test_pgprivileges
from conftest import client_module, gateway_parts, serving, sqlml_serve
from test_gateway_hostile import PASSWORD, _connect, _sqlstate
from test_pgprivileges import Roles

import sqlml
from sqlml.wire import auth
from sqlml.wire.backends import duckdb_opener
from sqlml.wire.server import ServerConfig

psycopg2 = client_module("psycopg2")
roles = test_pgprivileges.roles  # the fixture: two ordinary login roles

COLUMNS = ["x1", "x2"]
ROWS = [(0.5, 1.0), (-1.0, 2.0), (2.5, -0.25), (0.0, 0.0), (-3.0, -1.5)]


def _fit(kind: str) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    x = pd.DataFrame(rng.normal(size=(80, 2)), columns=COLUMNS)
    scale = ColumnTransformer([("scale", StandardScaler(), COLUMNS)])
    if kind == "regressor":
        y = x["x1"] * 1.5 - x["x2"] * 2 + 0.3
        return make_pipeline(scale, LinearRegression()).fit(x, y)
    y3 = np.digitize(x["x1"] + x["x2"], [-0.5, 0.5])  # classes 0, 1, 2
    return make_pipeline(scale, LogisticRegression()).fit(x, y3)


def _write(estimator: Any, path: Path, zipmap: bool = True) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    types = [(c, FloatTensorType([None, 1])) for c in COLUMNS]
    options = None if zipmap else {id(estimator): {"zipmap": False}}
    graph = convert_sklearn(estimator, initial_types=types, options=options)
    path.write_bytes(graph.SerializeToString())
    return path


def _frame() -> Any:
    return pd.DataFrame(ROWS, columns=COLUMNS)


def _duckdb(tmp_path: Path) -> sqlml.Connection:
    connection = sqlml.connect(str(tmp_path / "byom.duckdb"), autocommit=True)
    cur = connection.cursor()
    cur.execute("CREATE TABLE rows (id INTEGER, x1 DOUBLE, x2 DOUBLE)")
    for i, (a, b) in enumerate(ROWS):
        cur.execute(f"INSERT INTO rows VALUES ({i}, {a}, {b})")
    return connection


def _predict(connection: Any, model: str, scoring: str = "auto", columns: str = "*") -> Any:
    cur = connection.cursor()
    cur.execute(
        f"SELECT {columns} FROM ML.PREDICT(MODEL {model}, (SELECT * FROM rows),"
        f" STRUCT('{scoring}' AS scoring)) ORDER BY id"
    )
    names = [d[0] for d in cur.description]
    return names, cur.fetchall()


def _version(connection: Any, model: str) -> int:
    cur = connection.cursor()
    cur.execute("SHOW MODELS")
    found = [r for r in cur.fetchall() if r[1] == model]
    return int(found[0][3]) if found else 0


def _state(connection: Any, sql: str) -> str | None:
    try:
        connection.cursor().execute(sql)
    except sqlml.Error as e:
        return e.sqlstate
    return None


def _create(path: Path, name: str = "m", extra: str = "", replace: bool = True) -> str:
    head = "CREATE OR REPLACE MODEL" if replace else "CREATE MODEL"
    return f"{head} {name} {extra} OPTIONS (model_type = 'onnx', model_path = '{path}')"


# -- import and predict ---------------------------------------------------------------------------


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_an_imported_regressor_predicts_as_the_pipeline(tmp_path: Path, scoring: str) -> None:
    estimator = _fit("regressor")
    path = _write(estimator, tmp_path / "reg.onnx")
    connection = _duckdb(tmp_path)
    connection.cursor().execute(_create(path, "reg"))
    names, rows = _predict(connection, "reg", scoring)
    assert names == ["id", "x1", "x2", "variable"]
    expected = estimator.predict(_frame())
    np.testing.assert_allclose([r[3] for r in rows], expected, rtol=1e-5, atol=1e-5)
    cur = connection.cursor()
    cur.execute("SELECT ML.SCORE(MODEL reg) FROM rows ORDER BY id")
    np.testing.assert_allclose([r[0] for r in cur.fetchall()], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("zipmap", [True, False], ids=["zipmap", "no-zipmap"])
@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_an_imported_classifier_predicts_as_the_pipeline(
    tmp_path: Path, zipmap: bool, scoring: str
) -> None:
    estimator = _fit("classifier")
    path = _write(estimator, tmp_path / "clf.onnx", zipmap=zipmap)
    connection = _duckdb(tmp_path)
    connection.cursor().execute(_create(path, "clf"))
    names, rows = _predict(connection, "clf", scoring)
    # (skl2onnx names a pipeline's outputs so; ZipMap's output keeps its name as a tensor)
    outputs = ["output_label", "output_probability"] if zipmap else ["label", "probabilities"]
    assert names == ["id", "x1", "x2", *outputs]
    assert [r[3] for r in rows] == list(estimator.predict(_frame()))
    probabilities = np.array([r[4] for r in rows])
    np.testing.assert_allclose(probabilities, estimator.predict_proba(_frame()), atol=1e-6)


def test_input_and_output_clauses_choose_the_columns(tmp_path: Path) -> None:
    estimator = _fit("classifier")
    path = _write(estimator, tmp_path / "clf.onnx")
    connection = _duckdb(tmp_path)
    clauses = "INPUT (x1 FLOAT64, x2 FLOAT64) OUTPUT (output_probability ARRAY<FLOAT64>)"
    connection.cursor().execute(_create(path, "clf", clauses))
    names, rows = _predict(connection, "clf")
    assert names == ["id", "x1", "x2", "output_probability"]
    np.testing.assert_allclose(
        np.array([r[3] for r in rows]), estimator.predict_proba(_frame()), atol=1e-6
    )


def test_an_imported_model_in_views_and_where_it_does_not_apply(tmp_path: Path) -> None:
    estimator = _fit("classifier")
    connection = _duckdb(tmp_path)
    cur = connection.cursor()
    cur.execute(_create(_write(estimator, tmp_path / "clf.onnx"), "clf"))
    cur.execute("CREATE VIEW scored AS SELECT * FROM ML.PREDICT(MODEL clf, TABLE rows)")
    cur.execute("SELECT output_label FROM scored ORDER BY id")
    assert [r[0] for r in cur.fetchall()] == list(estimator.predict(_frame()))
    assert _state(connection, "SELECT * FROM ML.EVALUATE(MODEL clf)") == "0A000"
    assert _state(connection, "SELECT * FROM ML.EVALUATE(MODEL clf, TABLE rows)") == "0A000"
    text = "SELECT * FROM ML.PREDICT(MODEL clf, (SELECT 'a' AS x1, 1.0 AS x2))"
    assert _state(connection, text) == "42804"
    assert _state(connection, "SELECT * FROM ML.PREDICT(MODEL clf, (SELECT 1.0 AS x2))") == "42703"


def _imported_lifecycle(connection: Any, tmp_path: Path, name: str) -> None:
    """CREATE MODEL's deploy option on an import: 'manual' stores a version that does not serve
    (the first one serves, as any model's first), 'if_better' is 0A000 (an import has no
    metrics of its own to gate on), a bad value 22023."""
    regressor, other = _fit("regressor"), _fit("regressor")
    other.fit(_frame().assign(x1=lambda f: f.x1 * 2), regressor.predict(_frame()) + 1)
    first, second = _write(regressor, tmp_path / "a.onnx"), _write(other, tmp_path / "b.onnx")
    connection.cursor().execute(_create(first, name, replace=False))
    manual = (
        f"CREATE OR REPLACE MODEL {name} OPTIONS (model_type = 'onnx', model_path = '{second}',"
    )
    connection.cursor().execute(manual + " deploy = 'manual')")
    cur = connection.cursor()
    cur.execute(f"SELECT version, status, options FROM ML.VERSIONS(MODEL {name}) ORDER BY 1")
    rows = cur.fetchall()
    assert [r[:2] for r in rows] == [(1, "serving"), (2, "available")]
    assert json.loads(rows[1][2])["deploy"] == "manual"
    _, served = _predict(connection, name, columns="variable")
    expected = regressor.predict(_frame())
    np.testing.assert_allclose([r[0] for r in served], expected, rtol=1e-5, atol=1e-5)
    assert _state(connection, manual + " deploy = 'if_better')") == "0A000"
    assert _state(connection, manual + " deploy = 'sometimes')") == "22023"
    connection.cursor().execute(f"ALTER MODEL {name} DEPLOY VERSION 2")
    _, served = _predict(connection, name, columns="variable")
    expected = other.predict(_frame())
    np.testing.assert_allclose([r[0] for r in served], expected, rtol=1e-5, atol=1e-5)


def test_an_import_deploy_manual_then_deploy(tmp_path: Path) -> None:
    _imported_lifecycle(_duckdb(tmp_path), tmp_path, "reg")


def test_postgres_an_import_deploy_manual_then_deploy(pg_database: str, tmp_path: Path) -> None:
    _pg_rows(pg_database)
    with sqlml.connect(pg_database, autocommit=True) as connection:
        _imported_lifecycle(connection, tmp_path, "public.reg_manual")


# -- export ---------------------------------------------------------------------------------------


def test_export_then_import_round_trip(tmp_path: Path) -> None:
    """A trained model exports as ONNX, imports again and predicts the same; so does an
    imported one, whose export is the very graph it serves."""
    connection = _duckdb(tmp_path)
    cur = connection.cursor()
    cur.execute(
        "CREATE MODEL lin OPTIONS (model_type = 'linear_reg', input_label_cols = ['y'])"
        " AS SELECT x1, x2, 2 * x1 - x2 + 0.5 * id AS y FROM rows"
    )
    cur.execute(f"EXPORT MODEL lin OPTIONS (uri = 'file://{tmp_path}/lin')")
    schema = json.loads((tmp_path / "lin" / "schema.json").read_text())
    assert schema["inputs"] == [
        {"name": "x1", "type": "FLOAT64"},
        {"name": "x2", "type": "FLOAT64"},
    ]
    cur.execute(_create(tmp_path / "lin" / "model.onnx", "again"))
    _, trained = _predict(connection, "lin", columns="id, predicted_y")
    _, again = _predict(connection, "again", columns="id, value")
    np.testing.assert_allclose([r[1] for r in again], [r[1] for r in trained], rtol=1e-12)

    cur.execute(f"EXPORT MODEL again OPTIONS (uri = '{tmp_path}/again')")
    cur.execute(_create(tmp_path / "again" / "model.onnx", "third"))
    exported = (tmp_path / "again" / "model.onnx").read_bytes()
    cur.execute(f"EXPORT MODEL third OPTIONS (uri = '{tmp_path}/third')")
    assert (tmp_path / "third" / "model.onnx").read_bytes() == exported
    schema = json.loads((tmp_path / "third" / "schema.json").read_text())
    assert schema["outputs"] == [{"name": "value", "type": "FLOAT64"}]
    _, third = _predict(connection, "third", columns="id, value")
    assert third == again


# -- errors: nothing stored, the previous version serves -----------------------------------------


def _not_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "text.onnx"
    path.write_text("this is not an ONNX model\n" * 20)
    return path


def _refused_by_onnxruntime(tmp_path: Path) -> Path:
    """A well-formed graph with an operator of a domain onnxruntime does not have."""
    from onnx import TensorProto, helper

    node = helper.make_node("Mystery", ["x1"], ["y"], domain="example.unknown")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x1", TensorProto.DOUBLE, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [None, 1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("example.unknown", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    path = tmp_path / "mystery.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _wide_input(tmp_path: Path) -> Path:
    """skl2onnx's default: one [None, 2] input for both columns (sqlml maps one per column)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LinearRegression

    x = np.array(ROWS)
    model = LinearRegression().fit(x, x[:, 0])
    graph = convert_sklearn(model, initial_types=[("float_input", FloatTensorType([None, 2]))])
    path = tmp_path / "wide.onnx"
    path.write_bytes(graph.SerializeToString())
    return path


def _string_labels(tmp_path: Path) -> Path:
    """A classifier of string classes: its label output is a string tensor."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    x = _frame()
    y = np.where(x["x1"] > 0, "up", "down")
    model = make_pipeline(
        ColumnTransformer([("keep", "passthrough", COLUMNS)]), LogisticRegression()
    ).fit(x, y)
    return _write(model, tmp_path / "strings.onnx", zipmap=False)


ERRORS = {
    "wide-input": (_wide_input, "", "0A000"),
    "string-labels": (_string_labels, "", "0A000"),
    "not-onnx": (_not_onnx, "", "22023"),
    "onnxruntime-refuses": (_refused_by_onnxruntime, "", "22023"),
    "input-missing": (None, "INPUT (x1 FLOAT64)", "42703"),
    "input-unknown": (None, "INPUT (x1 FLOAT64, x2 FLOAT64, x3 FLOAT64)", "42703"),
    "output-unknown": (None, "OUTPUT (score FLOAT64)", "42703"),
    "input-type": (None, "INPUT (x1 STRING, x2 FLOAT64)", "42804"),
    "output-type": (None, "OUTPUT (output_label FLOAT64)", "42804"),
    "output-scalar": (None, "OUTPUT (output_probability FLOAT64)", "42804"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_a_bad_graph_stores_nothing(tmp_path: Path, case: str) -> None:
    make, clauses, state = ERRORS[case]
    estimator = _fit("classifier")
    good = _write(estimator, tmp_path / "clf.onnx")
    connection = _duckdb(tmp_path)
    connection.cursor().execute(_create(good, "clf"))
    _, before = _predict(connection, "clf")
    bad = make(tmp_path) if make is not None else good
    assert _state(connection, _create(bad, "clf", clauses)) == state
    assert _state(connection, _create(bad, "fresh", clauses, replace=False)) == state
    assert _version(connection, "clf") == 1
    assert _version(connection, "fresh") == 0
    assert _predict(connection, "clf") == (_predict(connection, "clf")[0], before)


def test_a_missing_file_and_another_scheme(tmp_path: Path) -> None:
    connection = _duckdb(tmp_path)
    assert _state(connection, _create(tmp_path / "none.onnx")) == "58P01"
    assert _state(connection, _create(Path("gs://bucket/m.onnx"))) == "0A000"  # type: ignore[arg-type]
    assert _version(connection, "m") == 0


# -- PostgreSQL -----------------------------------------------------------------------------------


def _pg_rows(database: str) -> None:
    """Table public.rows (id, x1, x2) with ROWS, as _duckdb makes it."""
    with contextlib.closing(psycopg2.connect(database)) as con, con.cursor() as cur:
        cur.execute(
            "CREATE TABLE public.rows (id integer, x1 double precision, x2 double precision)"
        )
        for i, (a, b) in enumerate(ROWS):
            cur.execute("INSERT INTO public.rows VALUES (%s, %s, %s)", [i, a, b])
        cur.execute("GRANT SELECT ON public.rows TO PUBLIC")
        con.commit()


def _onnxruntime(path: Path) -> dict[str, Any]:
    """The graph run by onnxruntime itself on ROWS (float32 columns, as skl2onnx typed them)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {c: np.array([[r[i]] for r in ROWS], dtype=np.float32) for i, c in enumerate(COLUMNS)}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


@pytest.mark.parametrize("scoring", ["compiled", "runtime"])
def test_postgres_imports_the_clients_file(pg_database: str, tmp_path: Path, scoring: str) -> None:
    """sqlml.connect reads the file and the server checks and stores its bytes; ML.PREDICT and
    ML.SCORE give what onnxruntime gives on the same rows, compiled and at runtime."""
    regressor = _write(_fit("regressor"), tmp_path / "reg.onnx")
    classifier = _write(_fit("classifier"), tmp_path / "clf.onnx", zipmap=False)
    _pg_rows(pg_database)
    with sqlml.connect(pg_database, autocommit=True) as connection:
        connection.cursor().execute(_create(regressor, "public.reg"))
        connection.cursor().execute(_create(classifier, "public.clf", replace=False))
        assert _version(connection, "reg") == 1
        names, rows = _predict(connection, "public.reg", scoring)
        assert names == ["id", "x1", "x2", "variable"]
        expected = _onnxruntime(regressor)["variable"].ravel()
        np.testing.assert_allclose([r[3] for r in rows], expected, rtol=1e-6, atol=1e-6)
        names, rows = _predict(connection, "public.clf", scoring)
        assert names == ["id", "x1", "x2", "label", "probabilities"]
        direct = _onnxruntime(classifier)
        assert [r[3] for r in rows] == list(direct["label"])
        np.testing.assert_allclose([r[4] for r in rows], direct["probabilities"], atol=1e-6)
        cur = connection.cursor()
        cur.execute("SELECT ML.SCORE(MODEL public.reg) FROM rows ORDER BY id")
        np.testing.assert_allclose([r[0] for r in cur.fetchall()], expected, rtol=1e-6, atol=1e-6)
        cur.execute(_create(regressor, "public.reg"))  # OR REPLACE: a new version
        assert _version(connection, "reg") == 2
        cur.execute(_create(classifier, "IF NOT EXISTS public.clf", replace=False))
        assert _version(connection, "clf") == 1


def test_postgres_a_bad_graph_stores_nothing(pg_database: str, tmp_path: Path) -> None:
    """Every refusal of the DuckDB cases, with the same SQLSTATE, checked in the server; the
    serving version stays and no model appears."""
    good = _write(_fit("classifier"), tmp_path / "clf.onnx")
    _pg_rows(pg_database)
    with sqlml.connect(pg_database, autocommit=True) as connection:
        connection.cursor().execute(_create(good, "public.clf"))
        _, before = _predict(connection, "public.clf")
        for case, (make, clauses, state) in ERRORS.items():
            bad = make(tmp_path) if make is not None else good
            assert _state(connection, _create(bad, "public.clf", clauses)) == state, case
            fresh = _create(bad, "public.fresh", clauses, replace=False)
            assert _state(connection, fresh) == state, case
        assert _state(connection, _create(tmp_path / "none.onnx", "public.fresh")) == "58P01"
        assert _version(connection, "clf") == 1
        assert _version(connection, "fresh") == 0
        assert _predict(connection, "public.clf")[1] == before


def test_postgres_plain_sql_import_and_the_servers_own_files(
    pg_database: str, tmp_path: Path
) -> None:
    """From psql-like clients: sqlml.import_model(statement, graph) takes the bytes as a bytea
    parameter (psycopg2; psycopg 3 binds it); the model gets its scoring function. Inside the
    server model_path is never read (sqlml.execute: 42501), and import_model runs nothing else."""
    psycopg = client_module("psycopg")
    path = _write(_fit("regressor"), tmp_path / "reg.onnx")
    data = path.read_bytes()
    _pg_rows(pg_database)
    statement = "CREATE MODEL public.reg OPTIONS (model_type = 'onnx')"
    other = "CREATE MODEL public.other OPTIONS (model_type = 'onnx')"
    with contextlib.closing(psycopg2.connect(pg_database)) as con, con.cursor() as cur:
        con.autocommit = True
        cur.execute("SELECT sqlml.import_model(%s, %s)", [statement, psycopg2.Binary(data)])
        assert cur.fetchall() == [(1,)]
        cur.execute('SELECT sqlml."public.reg"(x1, x2) FROM rows ORDER BY id')
        expected = _onnxruntime(path)["variable"].ravel()
        np.testing.assert_allclose([r[0] for r in cur.fetchall()], expected, rtol=1e-6, atol=1e-6)
        for sql, params, state in (
            ("SELECT sqlml.execute(%s)", [_create(path, "public.other")], "42501"),
            ("SELECT sqlml.import_model(%s, %s)", ["DROP MODEL public.reg", data], "0A000"),
            ("SELECT sqlml.import_model(%s, NULL)", [statement], "22023"),
            ("SELECT sqlml.import_model(%s, %s)", [statement, psycopg2.Binary(data)], "42710"),
            ("SELECT sqlml.import_model(%s, %s)", [other, b"not onnx"], "22023"),
        ):
            with pytest.raises(psycopg2.Error) as caught:
                cur.execute(sql, params)
            assert caught.value.pgcode == state, sql
    with psycopg.connect(pg_database, autocommit=True) as con:
        replace = "CREATE OR REPLACE MODEL public.reg OPTIONS (model_type = 'onnx')"
        found = con.execute("SELECT sqlml.import_model(%s, %b)", [replace, data]).fetchall()
        assert found == [(2,)]
        assert con.execute("SELECT count(*) FROM sqlml.models").fetchall() == [(1,)]


def test_postgres_import_needs_the_rights_of_create_model(roles: Roles, tmp_path: Path) -> None:
    """The client's role imports with CREATE MODEL's rights: CREATE on the schema for a new
    model, MANAGE to replace one; nothing is stored when refused."""
    path = _write(_fit("regressor"), tmp_path / "reg.onnx")
    with sqlml.connect(roles.dsn(roles.a), autocommit=True) as a:
        a.cursor().execute(_create(path, "a_models.reg", replace=False))
    with sqlml.connect(roles.dsn(roles.b), autocommit=True) as b:
        assert _state(b, _create(path, "a_models.other")) == "42501"  # no CREATE there
        assert _state(b, _create(path, "a_models.reg")) == "42501"  # no MANAGE on it
        assert _state(b, _create(path, "b_models.reg")) is None
    with contextlib.closing(roles.connect()) as admin, admin.cursor() as cur:
        cur.execute(
            "SELECT m.schema_name, m.model_name, m.current_version, r.rolname"
            " FROM sqlml.models m JOIN sqlml.model_privileges p USING (schema_name, model_name)"
            " JOIN pg_roles r ON r.oid = p.grantee WHERE p.privilege = 'OWNER' ORDER BY 1"
        )
        assert cur.fetchall() == [
            ("a_models", "reg", 1, roles.a),
            ("b_models", "reg", 1, roles.b),
        ]


def test_postgres_exports_to_the_client(pg_database: str, tmp_path: Path) -> None:
    connection = sqlml.connect(pg_database, autocommit=True)
    try:
        cur = connection.cursor()
        cur.execute(
            "CREATE MODEL public.lin OPTIONS (model_type = 'linear_reg',"
            " input_label_cols = ['spend']) AS SELECT tenure, spend FROM shop.customers"
        )
        cur.execute(f"EXPORT MODEL public.lin OPTIONS (uri = 'file://{tmp_path}/lin')")
        cur.execute(
            "SELECT predicted_spend FROM ML.PREDICT(MODEL public.lin,"
            " (SELECT tenure FROM shop.customers ORDER BY id LIMIT 5))"
        )
        on_postgres = [r[0] for r in cur.fetchall()]
    finally:
        connection.close()
    local = sqlml.connect(str(tmp_path / "local.duckdb"), autocommit=True)
    cur = local.cursor()
    cur.execute(_create(tmp_path / "lin" / "model.onnx", "lin"))
    cur.execute("CREATE TABLE t AS SELECT * FROM range(5) r(i)")
    connection = sqlml.connect(pg_database, autocommit=True)
    pg = connection.cursor()
    pg.execute("SELECT tenure FROM shop.customers ORDER BY id LIMIT 5")
    tenures = [r[0] for r in pg.fetchall()]
    connection.close()
    values = ", ".join(f"({i}, {t})" for i, t in enumerate(tenures))
    cur.execute(
        f"SELECT value FROM ML.PREDICT(MODEL lin, (SELECT * FROM (VALUES {values})"
        " v(i, tenure))) ORDER BY i"
    )
    np.testing.assert_allclose([r[0] for r in cur.fetchall()], on_postgres, rtol=1e-12)


# -- the gateway's file policy --------------------------------------------------------------------

ALLOWED, OTHER = "alice", "bob"


def test_the_gateway_refuses_files_to_a_user_without_file_access(tmp_path: Path) -> None:
    path = _write(_fit("regressor"), tmp_path / "reg.onnx")
    database = str(tmp_path / "served.duckdb")
    _duckdb(tmp_path).close()
    (tmp_path / "byom.duckdb").rename(database)
    users = auth.Users(
        [
            auth.Credential(ALLOWED, auth.scram_secret(PASSWORD), files=True),
            auth.Credential(OTHER, auth.scram_secret(PASSWORD)),
        ]
    )
    config = ServerConfig(port=0, auth_method="scram-sha-256", users=users)
    with serving(config, duckdb_opener(database, users=users)) as port:
        other = _connect(port, OTHER)
        assert _sqlstate(other, _create(path, "reg")) == "42501"
        allowed = _connect(port, ALLOWED)
        assert _sqlstate(allowed, _create(path, "reg")) is None
        assert _sqlstate(other, f"EXPORT MODEL reg OPTIONS (uri = '{tmp_path}/out')") == "42501"
        assert not (tmp_path / "out").exists()
        with other.cursor() as cur:  # scoring needs no file
            cur.execute("SELECT variable FROM ML.PREDICT(MODEL reg, TABLE rows) ORDER BY id")
            assert len(cur.fetchall()) == len(ROWS)
        assert _sqlstate(allowed, f"EXPORT MODEL reg OPTIONS (uri = '{tmp_path}/out')") is None
        assert (tmp_path / "out" / "model.onnx").exists()
        other.close()
        allowed.close()
    with serving(ServerConfig(port=0), duckdb_opener(database)) as port:  # nobody has files
        anyone = psycopg2.connect(host="127.0.0.1", port=port, dbname="served", user="sqlml")
        anyone.autocommit = True
        assert _sqlstate(anyone, _create(path, "reg2")) == "42501"
        anyone.close()


def test_the_postgres_proxy_uses_no_file_of_the_gateway_host(
    pg_database: str, tmp_path: Path
) -> None:
    """Through the gateway's PostgreSQL proxy the engine runs on the gateway host: importing
    and exporting would use that host's files, not the client's (42501)."""
    from gateway_client import GatewayConnection

    path = _write(_fit("regressor"), tmp_path / "reg.onnx")
    with serving(ServerConfig(port=0), *gateway_parts("postgres", pg_database)) as port:
        client = GatewayConnection(port)
        client.execute(
            "CREATE MODEL public.lin OPTIONS (model_type = 'linear_reg',"
            " input_label_cols = ['spend']) AS SELECT tenure, spend FROM shop.customers"
        )
        for sql in (
            _create(path, "public.reg"),
            f"EXPORT MODEL public.lin OPTIONS (uri = '{tmp_path}/out')",
        ):
            with pytest.raises(sqlml.Error) as caught:
                client.execute(sql)
            assert caught.value.sqlstate == "42501"
        assert client.execute("SELECT count(*) FROM sqlml.models").fetchall() == [(1,)]
        client.close()
    assert not (tmp_path / "out").exists()


def test_sqlml_serve_proxy_reads_files_only_when_allowed(roles: Roles, tmp_path: Path) -> None:
    """The real ``sqlml serve`` in front of PostgreSQL: without --allow-file-access an import
    and an export are 42501; with it the gateway reads the file and the server stores it with
    the rights of the client's own role (never the gateway's)."""
    from urllib.parse import urlparse

    path = _write(_fit("regressor"), tmp_path / "reg.onnx")
    dbname = urlparse(roles.database).path.lstrip("/")

    def client(port: int, role: str) -> Any:
        con = psycopg2.connect(host="127.0.0.1", port=port, dbname=dbname, user=role)
        con.autocommit = True
        return con

    with sqlml_serve("-d", roles.database) as port, contextlib.closing(client(port, roles.a)) as a:
        assert _sqlstate(a, _create(path, "a_models.reg")) == "42501"
    with (
        sqlml_serve("-d", roles.database, "--allow-file-access") as port,
        contextlib.closing(client(port, roles.a)) as a,
        contextlib.closing(client(port, roles.b)) as b,
    ):
        assert _sqlstate(b, _create(path, "a_models.reg")) == "42501"  # B's rights
        assert _sqlstate(a, _create(path, "a_models.reg")) is None
        assert _sqlstate(b, f"EXPORT MODEL a_models.reg OPTIONS (uri = '{tmp_path}/b')") == "42704"
        assert _sqlstate(a, f"EXPORT MODEL a_models.reg OPTIONS (uri = '{tmp_path}/out')") is None
    with contextlib.closing(roles.connect()) as admin, admin.cursor() as cur:
        cur.execute("SELECT onnx FROM sqlml.versions WHERE schema_name = 'a_models'")
        assert [bytes(r[0]) for r in cur.fetchall()] == [
            (tmp_path / "out" / "model.onnx").read_bytes()
        ]
    assert not (tmp_path / "b").exists()
