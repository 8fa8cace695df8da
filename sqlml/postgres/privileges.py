"""Who may train, use, replace and drop a model in PostgreSQL (docs/postgres.md, "Privileges").

The PL/Python functions run with the caller's rights (SECURITY INVOKER), so the training query and
ML.EVALUATE's rows are read as the caller: a role trains only on rows it may read. The store
(sqlml.models, sqlml.versions, sqlml.model_privileges) is owned by the installing superuser and
ordinary roles only read it, through row-level security (sql/postgres/privileges.sql). What must
write it runs inside ``sqlml.run_as_owner()``, a SECURITY DEFINER function with a pinned
search_path that runs only work queued here by ``as_owner``: PostgreSQL gives a definer function no
way to learn its caller, so the caller is read before the switch and the check is made in the
queued work, which no SQL that a user wrote can reach (only sqlml's own Python queues work, and
no user SQL runs while it is queued).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlglot import exp

from sqlml import errors
from sqlml.grammar.statements import ModelRef
from sqlml.store import Store

T = TypeVar("T")
PRIVILEGES = ("USAGE", "MANAGE")
GRANTS = exp.table_("model_privileges", db="sqlml", quoted=True)

_pending: list[Callable[[], Any]] = []
_results: list[Any] = []
_depth = 0  # > 0 while queued work runs (already with the owner's rights)


def run_pending(plpy: Any) -> None:
    """The body of sqlml.run_as_owner(): runs the one queued work item. An exception is kept
    for ``as_owner`` to raise in the caller's frame with its SQLSTATE (the statement still fails
    as a whole, so the owner's partial writes roll back with it)."""
    global _depth
    if not _pending:
        plpy.error("sqlml.run_as_owner is called by sqlml's own functions only", sqlstate="42501")
    work = _pending.pop()
    _depth += 1
    try:
        _results.append((True, work()))
    except errors.Error as e:
        _results.append((False, e))
    finally:
        _depth -= 1


def as_owner(plpy: Any, work: Callable[[], T]) -> T:
    """``work()`` with the installer's rights (in sqlml.run_as_owner); the caller's identity
    must be read before (``caller``)."""
    if _depth:
        return work()
    _pending[:] = [work]
    _results.clear()
    try:
        plpy.execute("SELECT sqlml.run_as_owner()")
    finally:
        _pending.clear()
    ok, value = _results.pop()
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def caller(plpy: Any) -> str:
    """The role whose rights the statement runs with (current_user, not session_user: SET ROLE
    and SECURITY DEFINER callers count)."""
    if _depth:
        raise errors.InternalError("caller() with the owner's rights")
    return str(plpy.execute("SELECT CURRENT_USER::text AS u")[0]["u"])


def _value(plpy: Any, sql: str, types: list[str], values: list[Any]) -> Any:
    rows = plpy.execute(plpy.prepare(sql, types), values)
    return rows[0]["v"] if rows else None


def has(plpy: Any, role: str, schema: str, name: str, privilege: str) -> bool:
    return bool(
        _value(
            plpy,
            "SELECT sqlml.has_model_privilege($1, $2, $3, $4) AS v",
            ["name", "text", "text", "text"],
            [role, schema, name, privilege],
        )
    )


def require(plpy: Any, role: str, schema: str, name: str, privilege: str) -> None:
    if not has(plpy, role, schema, name, privilege):
        raise errors.InsufficientPrivilege(
            f'permission denied for model "{schema}.{name}"',
            hint=f"its owner can run SELECT sqlml.grant_model('{schema}.{name}', '{role}',"
            f" '{'USAGE' if privilege == 'USAGE' else 'MANAGE'}')",
        )


def require_create(plpy: Any, role: str, schema: str) -> None:
    """A new model in an existing schema needs CREATE on that schema, as a table would."""
    allowed = _value(
        plpy,
        "SELECT pg_catalog.has_schema_privilege($1, n.oid, 'CREATE') AS v"
        " FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) $2",
        ["name", "text"],
        [role, schema],
    )
    if allowed is False:
        raise errors.InsufficientPrivilege(
            f"permission denied for schema {schema}: creating a model in it needs CREATE"
        )


def lock(plpy: Any, schema: str, name: str) -> None:
    """One CREATE or DROP of a model at a time: a transaction-level advisory lock taken before
    training, so a second session waits, then replaces the model (CREATE OR REPLACE) or fails
    with 42710 (CREATE) before it trains."""
    # (names compare case-insensitively: ds.LinU and ds.linu are one model, one lock)
    advisory_lock(plpy, ["sqlml.model", schema.lower(), name.lower()])


def advisory_lock(plpy: Any, key: list[str]) -> None:
    """PostgreSQL's transaction-level advisory lock on ``key`` (its JSON text, hashed)."""
    plpy.execute(
        plpy.prepare(
            "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtextextended($1, 0))",
            ["text"],
        ),
        [json.dumps(key)],
    )


def check_create(plpy: Any, store: Store, ref: ModelRef) -> None:
    """Before training: the lock, then 42501 unless the caller may create or replace it."""
    schema, name = store.resolve(ref)
    lock(plpy, schema, name)
    role = caller(plpy)
    as_owner(plpy, lambda: _check_write(plpy, store, role, schema, name))


def _check_write(plpy: Any, store: Store, role: str, schema: str, name: str) -> bool:
    """Whether the model exists (seen with the owner's rights), after the privilege check."""
    exists = Store.current_version(store, ModelRef(schema, name)) is not None
    if exists:
        require(plpy, role, schema, name, "MANAGE")
    else:
        require_create(plpy, role, schema)
    return exists


def _role_oid(plpy: Any, role: str) -> int:
    if role.lower() == "public":
        return 0
    oid = _value(
        plpy,
        "SELECT oid AS v FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1",
        ["name"],
        [role],
    )
    if oid is None:
        raise errors.from_sqlstate("42704", f'role "{role}" does not exist')
    return int(oid)


def _key() -> exp.Expr:
    return exp.and_(
        exp.column("schema_name", quoted=True).eq(exp.Placeholder()),
        exp.column("model_name", quoted=True).eq(exp.Placeholder()),
    )


def record_owner(plpy: Any, store: Store, role: str, schema: str, name: str) -> None:
    """A new model: its privileges start as OWNER for its creator (stale rows of a model once
    dropped go first)."""
    forget(store, schema, name)
    insert = exp.insert(
        exp.values([(exp.Placeholder(), exp.Placeholder(), exp.Placeholder(), exp.Placeholder())]),
        GRANTS,
        columns=[
            exp.to_identifier(c, quoted=True)
            for c in ("schema_name", "model_name", "grantee", "privilege")
        ],
    )
    store.engine.execute(
        insert.sql(dialect="postgres"), [schema, name, _role_oid(plpy, role), "OWNER"]
    )


def forget(store: Store, schema: str, name: str) -> None:
    delete = exp.delete(GRANTS, where=_key())
    store.engine.execute(delete.sql(dialect="postgres"), [schema, name])


def apply_grants(plpy: Any, schema: str, name: str) -> None:
    """EXECUTE on the model's scoring function for exactly its USAGE holders (owner's rights)."""
    plpy.execute(
        plpy.prepare("SELECT sqlml.apply_model_grants($1, $2)", ["text", "text"]), [schema, name]
    )


_graph_plan: list[Any] = []


def require_graph(plpy: Any, sha: str) -> None:
    """score_batch keeps graphs per backend, not per role: before each use, the caller must see
    a version with this graph (row-level security), so a revoke or a SET ROLE takes effect."""
    if not _graph_plan:
        _graph_plan.append(
            plpy.prepare(
                "SELECT 1 AS v FROM sqlml.versions"
                " WHERE onnx_sha256 OPERATOR(pg_catalog.=) $1 LIMIT 1",
                ["text"],
            )
        )
    if not plpy.execute(_graph_plan[0], [sha]):
        raise errors.UndefinedModel(f"no model version has graph {sha}")


class OwnedStore(Store):
    """The store as the server's Session sees it: reads with the caller's rights (row-level
    security shows the models it may use), writes with the owner's after a privilege check."""

    def __init__(self, engine: Any, plpy: Any) -> None:
        super().__init__(engine)
        self.plpy = plpy

    def save(self, ref: ModelRef, result: Any, **kwargs: Any) -> int:
        role = caller(self.plpy) if not _depth else None
        schema, name = self.resolve(ref)
        kwargs.setdefault("role", role)  # (the audit row's: read before the owner's rights)

        def work() -> int:
            exists = role is None or _check_write(self.plpy, self, role, schema, name)
            version = Store.save(self, ref, result, **kwargs)
            if not exists and role is not None:
                record_owner(self.plpy, self, role, schema, name)
            return version

        return as_owner(self.plpy, work)

    def who(self) -> str | None:
        """The role an audit row names: current_user, read before any switch to the owner's
        rights (None inside them: the caller read it already)."""
        return caller(self.plpy) if not _depth else None

    def deploy(self, ref: ModelRef, version: int, **kwargs: Any) -> int | None:
        return self._managed(ref, lambda: Store.deploy(self, ref, version, **kwargs))

    def rollback(
        self, ref: ModelRef, version: int | None = None, **kwargs: Any
    ) -> tuple[int, int | None]:
        return self._managed(ref, lambda: Store.rollback(self, ref, version, **kwargs))

    def drop_version(self, ref: ModelRef, version: int, if_exists: bool) -> bool:
        return self._managed(ref, lambda: Store.drop_version(self, ref, version, if_exists))

    def change_settings(self, ref: ModelRef, settings: dict[str, Any], **kwargs: Any) -> None:
        return self._managed(ref, lambda: Store.change_settings(self, ref, settings, **kwargs))

    def _managed(self, ref: ModelRef, work: Callable[[], T]) -> T:
        """A change of a model's versions: the model's lock (so concurrent deploys take turns),
        then, with the owner's rights, 42704 for a missing model and 42501 without MANAGE."""
        schema, name = self.resolve(ref)
        lock(self.plpy, schema, name)
        role = caller(self.plpy) if not _depth else None

        def checked() -> T:
            if role is not None and Store.current_version(self, ref) is not None:
                require(self.plpy, role, schema, name, "MANAGE")
            return work()

        return as_owner(self.plpy, checked)

    def drop(self, ref: ModelRef, if_exists: bool) -> bool:
        schema, name = self.resolve(ref)
        lock(self.plpy, schema, name)
        role = caller(self.plpy) if not _depth else None

        def work() -> bool:
            exists = Store.current_version(self, ref) is not None
            if exists and role is not None:
                require(self.plpy, role, schema, name, "MANAGE")
            job = Store.settings(self, ref).get("schedule", {}).get("job_id") if exists else None
            dropped = Store.drop(self, ref, if_exists)
            if dropped:
                forget(self, schema, name)
            if dropped and job is not None:  # (its pg_cron job: postgres/cron.py)
                from sqlml.postgres import cron

                cron.unschedule(self.plpy, int(job))
            return dropped

        return as_owner(self.plpy, work)

    def record_run(self, ref: ModelRef, run: dict[str, Any]) -> int:
        """A schedule's run (sqlml.schedule_runs), with the owner's rights: the job's role
        reads the store only."""
        return as_owner(self.plpy, lambda: Store.record_run(self, ref, run))


def _privilege(text: str | None) -> str:
    privilege = (text or "USAGE").strip().upper()
    if privilege not in PRIVILEGES:
        raise errors.InvalidParameterValue(
            f"privilege must be one of {', '.join(PRIVILEGES)}, not {text!r}"
        )
    return privilege


def _owned(plpy: Any, store: Store, model: str) -> tuple[str, str, str]:
    """(schema, name, caller) of a model the caller owns, checked with the owner's rights."""
    from sqlml.postgres.server import parse_model

    ref = parse_model(model)
    schema, name = store.resolve(ref)
    role = caller(plpy)

    def check() -> None:
        if Store.current_version(store, ref) is None:
            raise errors.UndefinedModel(f'model "{schema}.{name}" does not exist')
        require(plpy, role, schema, name, "OWNER")

    as_owner(plpy, check)
    return schema, name, role


def grant_model(plpy: Any, model: str, role: str, privilege: str | None) -> None:
    """sqlml.grant_model: only the owner (or a superuser) grants."""
    from sqlml.postgres.server import session

    store = session(plpy).store
    wanted = _privilege(privilege)
    schema, name, _ = _owned(plpy, store, model)

    def work() -> None:
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in range(4))]),
            GRANTS,
            columns=[
                exp.to_identifier(c, quoted=True)
                for c in ("schema_name", "model_name", "grantee", "privilege")
            ],
        )
        insert.set("conflict", exp.OnConflict(action=exp.var("DO NOTHING")))
        store.engine.execute(
            insert.sql(dialect="postgres"), [schema, name, _role_oid(plpy, role), wanted]
        )
        apply_grants(plpy, schema, name)

    as_owner(plpy, work)


def revoke_model(plpy: Any, model: str, role: str, privilege: str | None) -> None:
    """sqlml.revoke_model: USAGE takes MANAGE with it (MANAGE implies USAGE)."""
    from sqlml.postgres.server import session

    store = session(plpy).store
    wanted = _privilege(privilege)
    schema, name, _ = _owned(plpy, store, model)
    revoked = ["USAGE", "MANAGE"] if wanted == "USAGE" else ["MANAGE"]

    def work() -> None:
        delete = exp.delete(
            GRANTS,
            where=exp.and_(
                _key(),
                exp.column("grantee", quoted=True).eq(exp.Placeholder()),
                exp.column("privilege", quoted=True).isin(
                    *(exp.Literal.string(p) for p in revoked)
                ),
            ),
        )
        store.engine.execute(delete.sql(dialect="postgres"), [schema, name, _role_oid(plpy, role)])
        apply_grants(plpy, schema, name)

    as_owner(plpy, work)
