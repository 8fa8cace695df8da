"""The PostgreSQL privilege model (docs/postgres.md, "Privileges") with two ordinary login roles,
plus the in-server error format and concurrent CREATE MODEL of one model."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pgcluster
import psycopg2
import pytest
from psycopg2 import sql

import sqlml
from sqlml import errors

_roles = itertools.count(1)
OPTIONS = '{"input_label_cols": ["churned"], "data_split_method": "NO_SPLIT"}'
TRAIN = "SELECT tenure, spend, promo, churned FROM shop.customers WHERE spend IS NOT NULL"


@dataclass
class Roles:
    database: str  # the superuser's DSN
    a: str
    b: str

    def connect(self, role: str | None = None) -> Any:
        con = psycopg2.connect(self.database, **({"user": role} if role else {}))
        con.autocommit = True
        return con

    def dsn(self, role: str) -> str:
        return self.database.replace("postgresql://postgres@", f"postgresql://{role}@")


@pytest.fixture
def roles(pg_database: str) -> Iterator[Roles]:
    """Two login roles: A reads shop.customers and owns schema a_models; B reads only
    shop.new_customers and owns schema b_models. Roles are cluster-wide: new names per test."""
    n = f"{os.getpid()}_{next(_roles)}"
    found = Roles(pg_database, f"alice_{n}", f"bob_{n}")
    con = found.connect()
    with con.cursor() as cur:
        for role, schema in ((found.a, "a_models"), (found.b, "b_models")):
            cur.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
            cur.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(schema), sql.Identifier(role)
                )
            )
            cur.execute(sql.SQL("GRANT USAGE ON SCHEMA shop TO {}").format(sql.Identifier(role)))
            cur.execute(
                sql.SQL("GRANT SELECT ON shop.new_customers TO {}").format(sql.Identifier(role))
            )
        cur.execute(sql.SQL("GRANT SELECT ON shop.customers TO {}").format(sql.Identifier(found.a)))
    try:
        yield found
    finally:
        with con.cursor() as cur:
            cur.execute(
                sql.SQL("DROP OWNED BY {}, {}").format(
                    sql.Identifier(found.a), sql.Identifier(found.b)
                )
            )
            for role in (found.a, found.b):
                cur.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        con.close()


def _run(con: Any, statement: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with con.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description is not None else []


def _fails(con: Any, statement: str, params: list[Any] | None = None) -> psycopg2.Error:
    with pytest.raises(psycopg2.Error) as raised:
        _run(con, statement, params)
    return raised.value


def _train(con: Any, model: str, query: str = TRAIN, replace: bool = False) -> int:
    (row,) = _run(
        con,
        "SELECT sqlml.create_model(%s, 'logistic_reg', %s, %s, NULL, %s)",
        [model, query, OPTIONS, replace],
    )
    return int(row[0])


def _scoring_function(roles: Roles, model: str) -> str:
    """The model's scoring function name, from the catalog view (as the superuser)."""
    schema, name = model.split(".")
    with contextlib.closing(roles.connect()) as con:
        rows = _run(
            con,
            "SELECT scoring_function::oid::regproc::text FROM sqlml.model_functions"
            " WHERE schema_name = %s AND model_name = %s",
            [schema, name],
        )
    assert rows, model
    assert rows[0][0], rows
    return str(rows[0][0])


def _score(con: Any, function: str) -> list[tuple[Any, ...]]:
    return _run(
        con,
        f"SELECT id, {function}(tenure, spend, promo) FROM shop.new_customers"
        " WHERE spend IS NOT NULL ORDER BY id",
    )


PREDICT = "SELECT id, predicted_churned FROM ML.PREDICT(MODEL a_models.churn, TABLE shop.new_customers) ORDER BY id"


def test_a_role_trains_only_on_rows_it_may_read(roles: Roles) -> None:
    a, b = roles.connect(roles.a), roles.connect(roles.b)
    try:
        assert _train(a, "a_models.churn") == 1
        assert (
            _fails(
                b,
                "SELECT sqlml.create_model(%s, 'logistic_reg', %s, %s)",
                ["b_models.churn", TRAIN, OPTIONS],
            ).pgcode
            == "42501"
        )
        # a model in a schema the role may not create in is refused too, as a table would be
        assert (
            _fails(
                b,
                "SELECT sqlml.create_model(%s, 'logistic_reg', %s, %s)",
                [
                    "a_models.other",
                    "SELECT tenure, promo AS churned FROM shop.new_customers",
                    OPTIONS,
                ],
            ).pgcode
            == "42501"
        )
        assert _run(b, "SELECT 1") == [(1,)]  # the session goes on
    finally:
        a.close()
        b.close()


def test_models_are_private_until_granted(roles: Roles) -> None:
    a, b = roles.connect(roles.a), roles.connect(roles.b)
    try:
        _train(a, "a_models.churn")
        function = _scoring_function(roles, "a_models.churn")
        expected = _score(a, function)
        assert len(expected) > 10
        # B sees nothing, scores nothing, and can neither drop nor replace it
        assert _run(b, "SELECT count(*) FROM sqlml.models") == [(0,)]
        assert _run(b, "SELECT count(*) FROM sqlml.versions") == [(0,)]
        assert _run(b, "SELECT count(*) FROM sqlml.model_functions") == [(0,)]
        assert _fails(b, "SELECT * FROM sqlml.evaluate('a_models.churn')").pgcode == "42704"
        assert _fails(b, f"SELECT {function}(1, 2, true)").pgcode == "42501"
        assert _fails(b, "SELECT sqlml.drop_model('a_models.churn')").pgcode == "42501"
        replace = "SELECT tenure, spend, promo, promo AS churned FROM shop.new_customers"
        assert (
            _fails(
                b,
                "SELECT sqlml.create_model('a_models.churn', 'logistic_reg', %s, %s, NULL, true)",
                [replace, OPTIONS],
            ).pgcode
            == "42501"
        )
        assert _fails(b, "SELECT sqlml.execute('DROP MODEL a_models.churn')").pgcode == "42501"
        assert (
            _fails(b, "SELECT sqlml.grant_model('a_models.churn', CURRENT_USER)").pgcode == "42501"
        )
        with sqlml.connect(roles.dsn(roles.b), autocommit=True) as client:
            with pytest.raises(errors.Error) as raised:
                client.execute(PREDICT).fetchall()
            assert raised.value.sqlstate == "42704"

        _run(a, "SELECT sqlml.grant_model('a_models.churn', %s)", [roles.b])
        assert _score(b, function) == expected
        assert _run(b, "SELECT count(*) FROM sqlml.models") == [(1,)]
        evaluated = _run(b, "SELECT metric FROM sqlml.evaluate('a_models.churn')")
        assert len(evaluated) == 6
        with sqlml.connect(roles.dsn(roles.b), autocommit=True) as client:
            predicted = client.execute(PREDICT).fetchall()
        with sqlml.connect(roles.dsn(roles.a), autocommit=True) as client:
            assert client.execute(PREDICT).fetchall() == predicted
        # USAGE is not MANAGE
        assert _fails(b, "SELECT sqlml.drop_model('a_models.churn')").pgcode == "42501"

        (sha,) = _run(roles.connect(), "SELECT onnx_sha256 FROM sqlml.versions")[0]
        batch = (
            "SELECT sqlml.score_batch(%s, array_send(ARRAY[1.0::float8]),"
            " array_send(ARRAY[2.0::float8]), array_send(ARRAY[true]))"
        )
        assert len(_run(b, batch, [sha])[0][0]) == 3  # runtime scoring: label, 2 probabilities
        _run(a, "SELECT sqlml.revoke_model('a_models.churn', %s)", [roles.b])
        # the backend's graph cache does not outlive the privilege
        assert _fails(b, batch, [sha]).pgcode == "42704"
        assert _fails(b, f"SELECT {function}(1, 2, true)").pgcode == "42501"
        assert _run(b, "SELECT count(*) FROM sqlml.models") == [(0,)]
        with sqlml.connect(roles.dsn(roles.b), autocommit=True) as client:
            with pytest.raises(errors.Error) as raised:
                client.execute(PREDICT).fetchall()
            assert raised.value.sqlstate == "42704"
        assert _score(a, function) == expected  # the owner keeps everything
    finally:
        a.close()
        b.close()


def test_manage_lets_a_role_replace_and_drop(roles: Roles) -> None:
    a, b = roles.connect(roles.a), roles.connect(roles.b)
    try:
        _train(a, "a_models.churn")
        _run(a, "SELECT sqlml.grant_model('a_models.churn', %s, 'manage')", [roles.b])
        replace = "SELECT tenure, spend, promo, promo AS churned FROM shop.new_customers"
        assert _train(b, "a_models.churn", replace, replace=True) == 2
        # the replaced scoring function keeps its grants: the owner still scores
        function = _scoring_function(roles, "a_models.churn")
        assert len(_score(a, function)) > 10
        assert len(_score(b, function)) > 10
        # only the owner grants
        assert _fails(b, "SELECT sqlml.grant_model('a_models.churn', 'PUBLIC')").pgcode == "42501"
        assert (
            _fails(a, "SELECT sqlml.grant_model('a_models.churn', 'nobody_at_all')").pgcode
            == "42704"
        )
        assert (
            _fails(a, "SELECT sqlml.grant_model('a_models.churn', 'PUBLIC', 'own')").pgcode
            == "22023"
        )
        assert _run(b, "SELECT sqlml.drop_model('a_models.churn')") == [(True,)]
        assert _run(a, "SELECT count(*) FROM sqlml.models") == [(0,)]
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO sqlml.python_modules VALUES ('sqlml.evil', false, 'import os')",
        "UPDATE sqlml.python_modules SET source = source",
        "UPDATE sqlml.store_info SET value = '[\"/tmp\"]' WHERE key = 'python_path'",
        "INSERT INTO sqlml.store_info VALUES ('x', 'y')",
        "DELETE FROM sqlml.versions",
        "UPDATE sqlml.versions SET metrics = '{}'",
        "DELETE FROM sqlml.models",
        "INSERT INTO sqlml.model_privileges VALUES ('a_models', 'churn', 0, 'OWNER')",
        "CREATE FUNCTION sqlml.evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "CREATE TABLE sqlml.evil (x int)",
        "SELECT sqlml.run_as_owner()",
        "SELECT sqlml.apply_model_grants('a_models', 'churn')",
        "DROP TABLE sqlml.python_modules",
    ],
)
def test_ordinary_roles_cannot_write_the_store_or_the_code(roles: Roles, statement: str) -> None:
    a, b = roles.connect(roles.a), roles.connect(roles.b)
    try:
        _train(a, "a_models.churn")  # even the owner of a model
        _run(a, "SELECT sqlml.grant_model('a_models.churn', %s, 'MANAGE')", [roles.b])
        assert _fails(a, statement).pgcode == "42501"
        assert _fails(b, statement).pgcode == "42501"
        assert _run(roles.connect(), "SELECT count(*) FROM sqlml.versions") == [(1,)]
    finally:
        a.close()
        b.close()


def test_a_superuser_does_everything(roles: Roles) -> None:
    a = roles.connect(roles.a)
    admin = roles.connect()
    try:
        _train(a, "a_models.churn")
        assert _run(admin, "SELECT count(*) FROM sqlml.models") == [(1,)]
        function = _scoring_function(roles, "a_models.churn")
        assert len(_score(admin, function)) > 10
        _run(admin, "SELECT sqlml.grant_model('a_models.churn', 'PUBLIC')")
        assert len(_score(roles.connect(roles.b), function)) > 10
        assert _train(admin, "a_models.churn", replace=True) == 2
        assert _run(admin, "SELECT sqlml.drop_model('a_models.churn')") == [(True,)]
    finally:
        a.close()
        admin.close()


def test_reinstall_applies_the_privileges_to_an_older_install(roles: Roles) -> None:
    """An install made before the privilege model (no row-level security, the models' functions
    executable by PUBLIC, the store writable by a role): the upgrade closes it."""
    admin = roles.connect()
    try:
        _train(admin, "shop.churn")
        _run(admin, "DROP POLICY sqlml_usage ON sqlml.versions")
        _run(admin, "ALTER TABLE sqlml.versions DISABLE ROW LEVEL SECURITY")
        _run(admin, "DELETE FROM sqlml.model_privileges")
        function = _scoring_function(roles, "shop.churn")
        _run(admin, f"GRANT EXECUTE ON FUNCTION {function} TO PUBLIC")
        _run(
            admin,
            sql.SQL("GRANT ALL ON sqlml.python_modules TO {}")
            .format(sql.Identifier(roles.b))
            .as_string(admin),
        )
        b = roles.connect(roles.b)
        # the bootstrap refuses to run code that a role can write (in a new backend)
        assert _fails(b, "SELECT sqlml.version()").pgcode == "42501"
        pgcluster.install(roles.database)
        b.close()
        b = roles.connect(roles.b)
        assert _run(b, "SELECT count(*) FROM sqlml.versions") == [(0,)]
        assert _fails(b, f"SELECT {function}(1, 2, true)").pgcode == "42501"
        assert _fails(b, "DELETE FROM sqlml.python_modules").pgcode == "42501"
        assert _run(b, "SELECT sqlml.version()") == [(sqlml.__version__,)]
        b.close()
    finally:
        admin.close()


def test_python_path_that_others_can_write_is_refused(pg_database: str) -> None:
    """A python_path folder is put first on the server's sys.path: if others than root and the
    server can write it, or a parent of it without the sticky bit, or (checked by install) any
    file under it, a planted module would run as the server. 42501 at install and at the
    first sqlml call of a backend."""
    import json
    import shutil
    import tempfile

    from sqlml.postgres.install import Installer

    parent = tempfile.mkdtemp(prefix="sqlml-open-", dir="/tmp")
    try:
        deps = os.path.join(parent, "deps")
        os.mkdir(deps, 0o755)
        os.chmod(parent, 0o777)  # anyone may rename deps and put another in its place
        admin = psycopg2.connect(pg_database)
        admin.autocommit = True
        _run(
            admin,
            "UPDATE sqlml.store_info SET value = %s WHERE key = 'python_path'",
            [json.dumps([deps, pgcluster.pydeps_folder()])],
        )
        fresh = psycopg2.connect(pg_database)  # a new backend runs the bootstrap
        error = _fails(fresh, "SELECT sqlml.version()")
        assert (error.pgcode, parent in str(error)) == ("42501", True)
        fresh.close()
        os.chmod(parent, 0o1777)  # as /tmp: no one renames what is not theirs
        fresh = psycopg2.connect(pg_database)
        assert _run(fresh, "SELECT sqlml.version()") == [(sqlml.__version__,)]
        fresh.close()
        planted = os.path.join(deps, "sub")
        os.mkdir(planted)
        with open(os.path.join(planted, "evil.py"), "w") as file:
            file.write("")
        os.chmod(os.path.join(planted, "evil.py"), 0o666)
        installer = Installer(pg_database)
        try:
            with pytest.raises(errors.Error) as refused:
                installer.install([deps, pgcluster.pydeps_folder()])
        finally:
            installer.close()
        assert refused.value.sqlstate == "42501"
        assert "evil.py" in refused.value.message
        admin.close()
    finally:
        shutil.rmtree(parent)


def test_errors_from_plpython_have_no_prefix_and_no_none_fields(pg_database: str) -> None:
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    try:
        raised = _fails(con, "SELECT * FROM sqlml.evaluate('shop.missing')")
        assert raised.pgcode == "42704"
        assert raised.diag.message_detail is None
        assert raised.diag.message_hint is None
        assert not raised.diag.message_primary.startswith("plpy.")
        # a sqlml error with a hint keeps it, and nothing else
        raised = _fails(con, "SELECT sqlml.grant_model('shop.missing', 'PUBLIC', 'own')")
        assert raised.pgcode == "22023"
        assert raised.diag.message_detail is None
        assert not raised.diag.message_primary.startswith("plpy.")
    finally:
        con.close()
    from tests.test_postgres import _psql

    shown = _psql(pg_database, "SELECT * FROM sqlml.evaluate('shop.missing')")
    assert shown.returncode != 0
    first = shown.stderr.splitlines()[0]
    assert first.startswith('ERROR:  model "shop.missing"'), shown.stderr
    assert "DETAIL:  None" not in shown.stderr
    assert "HINT:  None" not in shown.stderr


def test_a_training_value_with_the_old_body_delimiter(pg_database: str) -> None:
    con = psycopg2.connect(pg_database)
    con.autocommit = True
    try:
        _run(
            con,
            "CREATE TABLE shop.tags AS SELECT g::float8 AS x,"
            " (ARRAY['low', '$sqlml_body$ it''s', 'high'])[g % 3 + 1] AS tag"
            " FROM generate_series(1, 90) g",
        )
        (row,) = _run(
            con,
            "SELECT sqlml.create_model('shop.tags', 'logistic_reg', 'SELECT x, tag FROM shop.tags',"
            ' \'{"input_label_cols": ["tag"]}\')',
        )
        assert row == (1,)
        (name,) = _run(
            con,
            "SELECT scoring_function::oid::regproc::text FROM sqlml.model_functions"
            " WHERE model_name = 'tags'",
        )[0]
        labels = {r[0] for r in _run(con, f"SELECT {name}(x) FROM shop.tags")}
        assert labels <= {"low", "$sqlml_body$ it's", "high"}
    finally:
        con.close()


@pytest.mark.parametrize("replace", [False, True])
def test_two_sessions_create_one_model_at_once(pg_database: str, replace: bool) -> None:
    """The first session holds its CREATE MODEL uncommitted; the second waits for it (a lock
    taken before training), then replaces the model or fails with 42710 before training."""
    first, second = psycopg2.connect(pg_database), psycopg2.connect(pg_database)
    second.autocommit = True
    outcome: dict[str, Any] = {}

    def create() -> None:
        try:
            outcome["version"] = _train(second, "shop.churn", replace=replace)
        except psycopg2.Error as e:
            outcome["error"] = e

    try:
        assert _train(first, "shop.churn", replace=replace) == 1  # in an open transaction
        (pid,) = _run(second, "SELECT pg_backend_pid()")[0]
        thread = threading.Thread(target=create)
        thread.start()
        waiting = None
        with contextlib.closing(psycopg2.connect(pg_database)) as watcher:
            watcher.autocommit = True
            for _ in range(600):  # until the second waits on a lock (without one: after training)
                rows = _run(
                    watcher,
                    "SELECT wait_event FROM pg_stat_activity"
                    " WHERE pid = %s AND wait_event_type = 'Lock'",
                    [pid],
                )
                if rows:
                    waiting = rows[0][0]
                    break
                time.sleep(0.1)
        assert waiting == "advisory"  # it waits before training, not on the first's version row
        first.commit()
        thread.join(60)
        if replace:
            assert outcome == {"version": 2}
        else:
            assert outcome["error"].pgcode == "42710"
    finally:
        first.close()
        second.close()
