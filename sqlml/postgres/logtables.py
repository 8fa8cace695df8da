"""PostgreSQL's typed prediction log tables (sqlml/predlog.py; docs/design/lifecycle.md, "The
log's storage"), made in the server.

Theory of operation. A model's log rows of one shape of input go to a table of their own
columns, ``sqlml.prediction_log_<16 hex>`` (predlog.pg_table: a hash of the model and the
columns' definitions), read through the view sqlml.logged_predictions. Ordinary roles cannot
create in schema sqlml (sql/postgres/privileges.sql), so the statement that logs a new shape
first CALLs sqlml.log_table(schema, model, table, definitions), which, where the table is
missing, runs ``log_table`` here with the caller's rights:

- the name must be the hash of the model and the definitions given (22023 otherwise), so no
  role can make another shape's table, with other columns, under that shape's name;
- the caller must hold USAGE on the model (42501), as it must to log its predictions;
- each type must be one the log may depend on, spelled as predlog.pg_type_name spells it
  (22023): PostgreSQL's own base types and arrays, sqlml's composites;

then, as the installer (privileges.as_owner), under an advisory lock (two sessions making one
table wait for each other, then find it made), creates the table with the log's row-level
security policies and grants (``secure``: a role reads and adds the rows of the models it may
use, as in sqlml.prediction_log), and makes the view again over every log table
(``make_view``), with ``security_invoker`` so that each table's policies apply to the reader.
``sqlml install`` runs ``secure_all`` (its policies are dropped and made again by every
install).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from sqlml import errors, predlog
from sqlml.postgres import privileges
from sqlml.store import LOGGED

_LOCK = ["sqlml.prediction_log", "tables"]  # (the advisory lock's key)
_USABLE = (
    "(schema_name, model_name) IN (SELECT u.schema_name, u.model_name FROM sqlml.usable_models u)"
)


def log_table(plpy: Any, schema: str, model: str, table: str, definitions: Sequence[str]) -> None:
    """The body of sqlml.log_table_plpy: makes the typed log table ``table`` of the model's
    rows of these columns (``definitions``: name, type, name, type, ...) where it is missing."""
    columns = _columns(definitions)
    if table != predlog.pg_table(schema, model, columns):
        raise errors.InvalidParameterValue(
            f"{table!r} is not the prediction log table of these columns of {schema}.{model}"
        )
    role = privileges.caller(plpy)
    privileges.require(plpy, role, schema, model, "USAGE")
    oids = [_type_oid(plpy, name, given) for name, given in columns]
    privileges.as_owner(plpy, lambda: _make(plpy, table, [n for n, _ in columns], oids))


def _columns(definitions: Sequence[str]) -> list[tuple[str, str]]:
    """The (name, type) pairs of ``definitions``: input and output columns, each once."""
    if definitions is None or len(definitions) % 2 or not definitions:
        raise errors.InvalidParameterValue("the log table's definitions are name, type pairs")
    columns = [
        (str(definitions[i]), str(definitions[i + 1])) for i in range(0, len(definitions), 2)
    ]
    names = [name for name, _ in columns]
    prefixed = all(n.startswith((predlog.INPUT, predlog.OUTPUT)) for n in names)
    if not prefixed or len(set(names)) != len(names):
        raise errors.InvalidParameterValue(
            f"the log table's columns are named {predlog.INPUT}<column> and"
            f" {predlog.OUTPUT}<column>, each once"
        )
    return columns


def _type_oid(plpy: Any, column: str, given: str) -> int:
    """The OID of the type ``given`` names, which must be spelled as pg_type_name spells it
    (in the caller's search_path, where the client spelled it)."""
    rows = plpy.execute(plpy.prepare(predlog.PG_TYPES_BY_NAME, ["text"]), [given])
    if not rows or predlog.pg_type_name(dict(rows[0])) != given:
        raise errors.InvalidParameterValue(
            f"column {column!r} of a prediction log table cannot be of type {given!r}",
            hint="the log's tables take PostgreSQL's own types and sqlml's composites,"
            " each spelled as pg_catalog.format_type spells it without a modifier",
        )
    return int(rows[0]["oid"])


def _make(plpy: Any, table: str, names: list[str], oids: list[int]) -> None:
    """As the installer: the table (unless another session made it meanwhile), its policies,
    the view."""
    privileges.advisory_lock(plpy, _LOCK)
    if _exists(plpy, table):
        return
    types = _type_names(plpy, oids)  # (spelled in the installer's search_path)
    fixed = [f"{_quoted(n)} {t}" for n, t in predlog.PG_FIXED]
    own = [f"{_quoted(n)} {types[oid]}" for n, oid in zip(names, oids, strict=True)]
    # (the types are PostgreSQL's own spelling of each OID, the names quoted identifiers)
    plpy.execute(f"CREATE TABLE {_qualified(table)} ({', '.join(fixed + own)})")
    secure(plpy, table)
    make_view(plpy)


def secure(plpy: Any, table: str) -> None:
    """Row-level security on a log table, as on sqlml.prediction_log: a role reads and adds
    the rows of the models it may use (sqlml.usable_models), nothing else."""
    target = _qualified(table)
    plpy.execute(f"ALTER TABLE {target} ENABLE ROW LEVEL SECURITY")
    plpy.execute(f"DROP POLICY IF EXISTS sqlml_usage ON {target}")
    plpy.execute(f"DROP POLICY IF EXISTS sqlml_log ON {target}")
    plpy.execute(f"CREATE POLICY sqlml_usage ON {target} FOR SELECT TO PUBLIC USING ({_USABLE})")
    plpy.execute(f"CREATE POLICY sqlml_log ON {target} FOR INSERT TO PUBLIC WITH CHECK ({_USABLE})")
    plpy.execute(f"REVOKE ALL ON {target} FROM PUBLIC")
    plpy.execute(f"GRANT SELECT, INSERT ON {target} TO PUBLIC")


def make_view(plpy: Any) -> None:
    """The view sqlml.logged_predictions over the text log and every typed table, read with
    the reader's rights (each table's policies apply)."""
    from sqlml.postgres.server import PlpyEngine

    predlog.make_view(PlpyEngine(plpy))
    view = LOGGED.sql(dialect="postgres")
    plpy.execute(f"ALTER VIEW {view} SET (security_invoker = true)")
    plpy.execute(f"REVOKE ALL ON {view} FROM PUBLIC")
    plpy.execute(f"GRANT SELECT ON {view} TO PUBLIC")


def secure_all(plpy: Any) -> None:
    """The body of sqlml.log_tables_plpy (``sqlml install``): every log table's policies and
    grants, and the view."""
    from sqlml.postgres.server import PlpyEngine

    for table in predlog.typed_tables(PlpyEngine(plpy)):
        secure(plpy, table)
    make_view(plpy)


def _exists(plpy: Any, table: str) -> bool:
    found = plpy.execute(
        plpy.prepare("SELECT pg_catalog.to_regclass($1) IS NOT NULL AS v", ["text"]),
        [_qualified(table)],
    )
    return bool(found[0]["v"])


def _type_names(plpy: Any, oids: list[int]) -> dict[int, str]:
    query = predlog.pg_types_of(oids)
    names = {}
    for row in plpy.execute(query):
        name = predlog.pg_type_name(dict(row))
        if name is None:  # (checked in the caller's rights already: a type changed meanwhile)
            raise errors.InvalidParameterValue(f"type {row['name']} cannot be logged")
        names[int(row["oid"])] = name
    return names


def _quoted(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect="postgres")


def _qualified(table: str) -> str:
    return exp.table_(table, db=predlog.SCHEMA, quoted=True).sql(dialect="postgres")
