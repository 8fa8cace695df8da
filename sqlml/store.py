"""The model store: tables in schema ``sqlml`` of the same database (DDL: sql/store.sql).

Every successful CREATE MODEL adds a version and points the model at it, in one transaction, so a
failed or interrupted training leaves the previous version serving (unless its ``deploy`` option
keeps the new version stored and not serving: sqlml/lifecycle.py). Every change of the serving
version is a row of ``sqlml.deployments`` written in the same transaction (ML.DEPLOYMENTS). The
ONNX bytes are verified against their sha256 on every load (XX001 when they differ). Nothing is
pickled: the graph is ONNX, everything else is JSON text.
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import hashlib
import importlib.metadata
import importlib.resources
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors
from sqlml.engines.base import Engine, all_or_nothing
from sqlml.grammar.statements import ModelRef
from sqlml.ml import models, nested
from sqlml.ml.features import InputColumn

if TYPE_CHECKING:  # training (scikit-learn, skl2onnx) is imported only to train
    from sqlml.ml.train import TrainResult

STORE_INFO = exp.table_("store_info", db="sqlml", quoted=True)
MODELS = exp.table_("models", db="sqlml", quoted=True)
VERSIONS = exp.table_("versions", db="sqlml", quoted=True)
DEPLOYMENTS = exp.table_("deployments", db="sqlml", quoted=True)
MODEL_SETTINGS = exp.table_("model_settings", db="sqlml", quoted=True)
PREDICTION_LOG = exp.table_("prediction_log", db="sqlml", quoted=True)
# The engines whose prediction log is typed (predlog.py): each model's rows in tables of their
# own columns, read as text through the view sqlml.logged_predictions, with the text log's rows
LOGGED = exp.table_("logged_predictions", db="sqlml", quoted=True)
TYPED_LOG = ("duckdb", "postgres")


def log_rows(dialect: str) -> str:
    """The name, in schema sqlml, of what holds every prediction log row as text."""
    return LOGGED.name if dialect in TYPED_LOG else PREDICTION_LOG.name


STATISTICS = exp.table_("version_statistics", db="sqlml", quoted=True)
STATE = exp.table_("version_state", db="sqlml", quoted=True)
SCHEDULE_RUNS = exp.table_("schedule_runs", db="sqlml", quoted=True)
TRIALS = exp.table_("version_trials", db="sqlml", quoted=True)
BOOSTERS = exp.table_("version_boosters", db="sqlml", quoted=True)
# those of today's store version
STORE_TABLES = (
    STORE_INFO,
    MODELS,
    VERSIONS,
    DEPLOYMENTS,
    MODEL_SETTINGS,
    PREDICTION_LOG,
    STATISTICS,
    STATE,
    SCHEDULE_RUNS,
    TRIALS,
    BOOSTERS,
)
# the audit rows that changed current_version (ROLLBACK walks them); the others change settings
SERVING_ACTIONS = ("create", "deploy", "rollback")
BOOSTER_FORMAT = "xgboost_json"  # sqlml.version_boosters: Booster.save_raw("json")
LIBRARIES = ("scikit-learn", "skl2onnx", "onnx", "onnxruntime", "duckdb", "pyarrow")  # and sqlml


# One CREATE or DROP of a model at a time per database in this process (DuckDB: one process
# owns a database file); the PostgreSQL server takes an advisory lock instead.
_MODEL_LOCKS: dict[tuple[str, str, str], threading.Lock] = {}
_MODEL_LOCKS_GUARD = threading.Lock()


@dataclass(frozen=True)
class ModelVersion:
    """One stored version, as loaded (ONNX verified)."""

    schema: str
    name: str
    version: int
    model_type: str
    onnx: bytes
    sha256: str
    inputs: list[InputColumn]
    label: dict[str, Any] | None  # {"name", "type", "classes"}
    options: dict[str, Any]
    metrics: dict[str, Any]
    training_info: dict[str, Any]
    feature_info: list[dict[str, Any]]
    pinned: bool = False  # addressed as MODEL m VERSION n (not as the version that serves)
    settings_text: str = ""  # the model's sqlml.model_settings JSON when it serves ("": none)
    # STRUCT(n AS trial_id): this is trial n of a version trained with hyperparameter tuning
    # (ml/tuning.py), its own graph; None: the version's (its optimal trial's)
    trial: int | None = None

    @property
    def settings(self) -> dict[str, Any]:
        """The model's serving settings (a traffic split) when loaded as the serving version."""
        return dict(json.loads(self.settings_text)) if self.settings_text else {}

    @property
    def fingerprint(self) -> str:
        """What a kept plan checks before it runs (Store.serving_sha): the graph's sha256 and,
        for the serving version, the settings that route its traffic."""
        if self.pinned or self.trial is not None:
            return self.sha256
        return f"{self.sha256}|{self.settings_text}"

    @property
    def kind(self) -> str:
        return models.get(self.model_type).kind

    @property
    def ref(self) -> ModelRef:
        """The model's name (with its version when pinned: a kept plan checks that version,
        not the serving one); ``str()`` of it reads ``schema.name``."""
        return ModelRef(
            self.schema,
            self.name,
            version=self.version if self.pinned else None,
            trial=self.trial,
        )


@dataclass(frozen=True)
class Deployment:
    """One row of the audit trail (sqlml.deployments)."""

    deployment_id: int
    version: int
    parent_id: int | None  # the deployment ROLLBACK returns to


def ddl() -> list[str]:
    text = importlib.resources.files("sqlml._sql").joinpath("store.sql").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";")]


def _col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def _lower(value: exp.Expr) -> exp.Expr:
    return exp.Lower(this=value)


def _key() -> exp.Expr:
    """WHERE schema_name = ? AND model_name = ? (the values go as parameters, in that order)."""
    return exp.and_(
        _col("schema_name").eq(exp.Placeholder()), _col("model_name").eq(exp.Placeholder())
    )


def present(engine: Engine, names: list[str]) -> set[str]:
    """Which of the tables or views ``names`` schema sqlml of the current database has (read
    as a small result: not a server's chunked query_arrow)."""
    query = (
        exp.select(exp.column("table_name"))
        .from_(exp.table_("tables", db="information_schema"))
        .where(exp.column("table_schema").eq(exp.Literal.string("sqlml")))
        .where(exp.column("table_catalog").eq(exp.func("current_database")))
        .where(exp.column("table_name").isin(*(exp.Literal.string(n) for n in names)))
    )
    found = engine.execute(query.sql(dialect=engine.dialect)).table
    return set() if found is None else {str(name) for name in found.column(0).to_pylist()}


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._ready = False
        # The login an audit row names when the session has one: the gateway's client over
        # DuckDB (wire/backends.py), never the gateway process's own OS user.
        self.role: str | None = None
        # While a lifecycle change runs (names_fixed): each name resolved once, not per query.
        self._resolved: dict[tuple[str, str], tuple[str, str]] | None = None

    def ensure(self) -> None:
        """Creates the store tables on first use, or upgrades a store of an older version (the
        DDL is idempotent: it adds what is missing and stamps store_info's store_version)."""
        if self._ready:
            return
        if not getattr(self.engine, "manages_store", True):  # PostgreSQL: sqlml install made it
            self._ready = True
            return
        tables, view = self._exists()
        if not tables:  # (DDL, even a no-op, makes every session check its plans)
            for statement in ddl():
                self.engine.execute(statement)
        if not view:
            from sqlml import predlog  # (it reads the store: imported when first needed)

            try:
                predlog.make_view(self.engine)
            except errors.Error:
                # A read-only database of an older store: its log cannot be read (42P01)
                # until a session that may write opens it and makes the view.
                if not tables:
                    raise
        self._ready = True

    def _exists(self) -> tuple[bool, bool]:
        """Whether every table of today's store version is there, and the log's view (where
        the engine's log is typed: else True)."""
        found = present(self.engine, [t.name for t in STORE_TABLES] + [LOGGED.name])
        view = LOGGED.name in found or self.engine.dialect not in TYPED_LOG
        return found >= {t.name for t in STORE_TABLES}, view

    @contextlib.contextmanager
    def writing(self, ref: ModelRef) -> Iterator[None]:
        """Held around CREATE MODEL from the existence check to the stored version, so a second
        session creating the same model waits, then replaces it or fails with 42710 before it
        trains (instead of both training and one failing on the primary key). Engines without
        a ``database_key`` (PostgreSQL: the server's advisory lock) take none."""
        key = getattr(self.engine, "database_key", None)
        if key is None:
            yield
            return
        schema, name = self.resolve(ref)
        with _MODEL_LOCKS_GUARD:
            # one lock for every spelling of the name (resolve compares them case-insensitively)
            lock = _MODEL_LOCKS.setdefault((key, schema.lower(), name.lower()), threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def making_log_tables(self) -> Iterator[None]:
        """Held while a session makes typed prediction log tables outside a transaction
        (predlog.prepare): two sessions of one DuckDB database making the same table at once
        conflicted on the catalog (write-write), and the loser's statement failed. One process
        owns a DuckDB file for writing, so a lock of the process's is enough."""
        key = getattr(self.engine, "database_key", None)
        if key is None:
            yield
            return
        with _MODEL_LOCKS_GUARD:  # (no model is named with a NUL)
            lock = _MODEL_LOCKS.setdefault((key, "\0", "prediction_log"), threading.Lock())
        with lock:
            yield

    @contextlib.contextmanager
    def names_fixed(self) -> Iterator[None]:
        """Each model name resolved once while a lifecycle change runs (under the model's
        lock, in one transaction: the name cannot change meanwhile), instead of once per store
        query (a DEPLOY made nine such lookups)."""
        if self._resolved is not None:
            yield
            return
        self._resolved = {}
        try:
            yield
        finally:
            self._resolved = None

    def resolve(self, ref: ModelRef) -> tuple[str, str]:
        """The stored (schema, name) a reference means. Names compare case-insensitively and
        keep the case they were created with (as BigQuery's column names): `` `ds.linU` ``,
        ``ds.linU`` (folded to ``ds.linu``) and ``"ds"."linU"`` are one model, and creating
        ``ds.LINU`` beside it is 42710. An exact match wins; a name no model has is returned
        as written (for CREATE MODEL)."""
        wanted = self._names(ref)
        if self._resolved is not None and wanted in self._resolved:
            return self._resolved[wanted]
        found = self._resolve(wanted)
        if self._resolved is not None:
            self._resolved[wanted] = found
        return found

    def _resolve(self, wanted: tuple[str, str]) -> tuple[str, str]:
        self.ensure()
        query = (
            exp.select(_col("schema_name"), _col("model_name"))
            .from_(MODELS)
            .where(_lower(_col("schema_name")).eq(_lower(exp.Placeholder())))
            .where(_lower(_col("model_name")).eq(_lower(exp.Placeholder())))
        )
        rows = self.engine.query_arrow(self._sql(query), list(wanted)).to_pylist()
        found = [(str(r["schema_name"]), str(r["model_name"])) for r in rows]
        if not found or wanted in found:
            return wanted
        if len(found) > 1:
            raise errors.UndefinedModel(
                f'model "{wanted[0]}.{wanted[1]}" does not exist',
                hint="models that differ from it only in case: "
                + ", ".join(f'"{s}"."{n}"' for s, n in found)
                + " (quote the name as it was created)",
            )
        return found[0]

    def _names(self, ref: ModelRef) -> tuple[str, str]:
        """(schema, name) as written, the schema defaulted: for a stored version's own ref."""
        return (ref.schema or self.engine.default_schema, ref.name)

    def _sql(self, expression: exp.Expr) -> str:
        return expression.sql(dialect=self.engine.dialect)

    def current_version(self, ref: ModelRef) -> int | None:
        self.ensure()
        schema, name = self.resolve(ref)
        query = exp.select(_col("current_version")).from_(MODELS).where(_key())
        table = self.engine.query_arrow(self._sql(query), [schema, name])
        return int(table.column(0)[0].as_py()) if table.num_rows else None

    def current_sha(self, ref: ModelRef) -> str | None:
        """The fingerprint (ModelVersion.fingerprint) of the version the model serves (of the
        version ``ref`` names, if it names one): a cheap check that a plan is current. ``ref``:
        a stored version's own (exact) name."""
        schema, name = self._names(ref)
        query = _sha_query(ref, exp.Placeholder(), exp.Placeholder())
        table = self.engine.query_arrow(self._sql(query), [schema, name])
        return str(table.column(0)[0].as_py()) if table.num_rows else None

    def serving_sha(self, ref: ModelRef) -> exp.Expr:
        """current_sha as a scalar subquery (NULL: no such model or version), to check several
        models in one query; the names go in as literals. ``ref``: a stored version's own name."""
        schema, name = self._names(ref)
        return _sha_query(ref, exp.Literal.string(schema), exp.Literal.string(name)).subquery()

    def load(self, ref: ModelRef, version: int | None = None) -> ModelVersion:
        """The version that serves, or the one ``version`` (else ``ref.version``) names: 42704
        when the model or that version does not exist."""
        current = self.current_version(ref)
        schema, name = self.resolve(ref)
        if current is None:
            raise errors.UndefinedModel(f'model "{schema}.{name}" does not exist')
        version = version if version is not None else ref.version
        wanted = current if version is None else version
        query = (
            exp.select("*")
            .from_(VERSIONS)
            .where(_key())
            .where(_col("version").eq(exp.Placeholder()))
        )
        table = self.engine.query_arrow(self._sql(query), [schema, name, wanted])
        if not table.num_rows:
            raise errors.UndefinedModel(f'model "{schema}.{name}" has no version {wanted}')
        loaded = _version_from_row(table.slice(0, 1).to_pylist()[0])
        if ref.trial is not None:
            return self._trial(dataclasses.replace(loaded, pinned=version is not None), ref.trial)
        if version is not None:
            return dataclasses.replace(loaded, pinned=True)
        return dataclasses.replace(loaded, settings_text=self._settings_text(schema, name))

    def _trial(self, loaded: ModelVersion, trial: int) -> ModelVersion:
        """Trial ``trial`` of ``loaded`` (hyperparameter tuning, ml/tuning.py): its graph, options
        and metrics in place of the version's. 22023 when the version has no such trial (as
        BigQuery's trial_id is a value of the call, not an object's name)."""
        query = (
            exp.select("*")
            .from_(TRIALS)
            .where(_key())
            .where(_col("version").eq(exp.Placeholder()))
            .where(_col("trial_id").eq(exp.Placeholder()))
        )
        params = [loaded.schema, loaded.name, loaded.version, trial]
        found = self.engine.query_arrow(self._sql(query), params)
        model = f'model "{loaded.schema}.{loaded.name}" version {loaded.version}'
        if not found.num_rows:
            tuned = "num_trials" in loaded.options
            raise errors.InvalidParameterValue(
                f"{model} has no trial {trial}"
                if tuned
                else f"{model} was not trained with hyperparameter tuning: it has no trials",
                hint="ML.TRIAL_INFO lists the trials" if tuned else None,
            )
        row = found.slice(0, 1).to_pylist()[0]
        if row["onnx"] is None:
            raise errors.InvalidParameterValue(
                f"trial {trial} of {model} {row['status'].lower()}: it has no model",
                detail=row["error_message"],
                hint="ML.TRIAL_INFO lists the trials and their status",
            )
        onnx = bytes(row["onnx"])
        if hashlib.sha256(onnx).hexdigest() != row["onnx_sha256"]:
            raise errors.CorruptedModel(
                f"trial {trial} of {model} is corrupted: its ONNX bytes do not match their sha256"
            )
        return dataclasses.replace(
            loaded,
            model_type=row["model_type"],
            onnx=onnx,
            sha256=row["onnx_sha256"],
            inputs=[nested.from_json(c) for c in json.loads(row["inputs"])],
            options=json.loads(row["options"]),
            metrics=json.loads(row["metrics"]),
            training_info=json.loads(row["training_info"]),
            feature_info=json.loads(row["feature_info"]),
            trial=trial,
        )

    def trials(self, ref: ModelRef, version: int) -> list[dict[str, Any]]:
        """ML.TRIAL_INFO's rows of ``version`` (without the graphs), in trial order; [] when it
        was not trained with hyperparameter tuning."""
        schema, name = self.resolve(ref)
        columns = (
            "trial_id",
            "status",
            "is_optimal",
            "hyperparameters",
            "tuning_metrics",
            "metrics",
            "training_loss",
            "eval_loss",
            "error_message",
            "model_type",
        )
        query = (
            exp.select(*(_col(c) for c in columns))
            .from_(TRIALS)
            .where(_key())
            .where(_col("version").eq(exp.Placeholder()))
            .order_by(_col("trial_id"))
        )
        found: list[dict[str, Any]]
        found = self.engine.query_arrow(self._sql(query), [schema, name, version]).to_pylist()
        for row in found:
            for column in ("hyperparameters", "tuning_metrics", "metrics"):
                row[column] = json.loads(row[column]) if row[column] is not None else None
        return found

    # -- serving settings: a traffic split (sqlml/lifecycle.py) ---------------------------------

    def _settings_text(self, schema: str, name: str) -> str:
        query = exp.select(_col("settings")).from_(MODEL_SETTINGS).where(_key())
        table = self.engine.query_arrow(self._sql(query), [schema, name])
        return str(table.column(0)[0].as_py()) if table.num_rows else ""

    def settings(self, ref: ModelRef) -> dict[str, Any]:
        """The model's serving settings ({}: none)."""
        text = self._settings_text(*self.resolve(ref))
        return dict(json.loads(text)) if text else {}

    def change_settings(
        self,
        ref: ModelRef,
        settings: dict[str, Any],
        *,
        action: str,
        role: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Replaces the model's serving settings, with an audit row naming ``action``, in one
        transaction (42704: no such model)."""
        self.ensure()
        with self.names_fixed(), all_or_nothing(self.engine):
            current = self._existing(ref, None)
            self._write_settings(ref, settings)
            self._record(ref, current, current, action, role, comment, None, None, settings)

    def _write_settings(self, ref: ModelRef, settings: dict[str, Any]) -> None:
        schema, name = self.resolve(ref)
        self.engine.execute(self._sql(exp.delete(MODEL_SETTINGS, where=_key())), [schema, name])
        if not settings:
            return
        values = [schema, name, json.dumps(settings, sort_keys=True), _now()]
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in values)]),
            MODEL_SETTINGS,
            columns=[
                exp.to_identifier(c, quoted=True)
                for c in ("schema_name", "model_name", "settings", "updated_at")
            ],
        )
        self.engine.execute(self._sql(insert), values)

    def _end_traffic(self, ref: ModelRef) -> dict[str, Any] | None:
        """A change of current_version ends a traffic split and a shadow (both were set around
        the version that served, and checked against it); returns the settings left in
        effect, for the audit row (None: no change)."""
        settings = self.settings(ref)
        if "traffic" not in settings and "shadow" not in settings:
            return None
        settings.pop("traffic", None)
        settings.pop("shadow", None)
        self._write_settings(ref, settings)
        return settings

    def versions(self, ref: ModelRef) -> list[int]:
        """The model's stored version numbers, in order."""
        schema, name = self.resolve(ref)
        query = exp.select(_col("version")).from_(VERSIONS).where(_key()).order_by(_col("version"))
        table = self.engine.query_arrow(self._sql(query), [schema, name])
        return [int(v) for v in table.column(0).to_pylist()]

    def who(self) -> str | None:
        """The role an audit row names: the session's login (the gateway's client), else the OS
        user (DuckDB has no roles; NULL when the OS cannot tell). The PostgreSQL server's
        store names current_user (privileges.py)."""
        if self.role is not None:
            return self.role
        try:
            return getpass.getuser()
        except (OSError, KeyError):
            return None

    def save(
        self,
        ref: ModelRef,
        result: TrainResult,
        *,
        query_sql: str | None,
        transform_sql: str | None,
        replace: bool,
        deploy: bool = True,
        role: str | None = None,
        comment: str | None = None,
    ) -> int:
        """Stores a new version and, with ``deploy`` or when it is the model's first, makes it
        serve (with its audit row, naming ``role``, with ``comment``), in one transaction;
        returns its number."""
        self.ensure()
        role = role if role is not None else self.who()
        with all_or_nothing(self.engine):
            previous = self.current_version(ref)
            serves = deploy or previous is None  # (a model's first version always serves)
            version = self._save(ref, result, query_sql, transform_sql, replace, serves)
            if serves:
                settings = self._end_traffic(ref) if previous is not None else None
                self._record(ref, version, previous, "create", role, comment, None, True, settings)
            return version

    def _save(
        self,
        ref: ModelRef,
        result: TrainResult,
        query_sql: str | None,
        transform_sql: str | None,
        replace: bool,
        serves: bool = True,
    ) -> int:
        schema, name = self.resolve(ref)
        current = self.current_version(ref)
        if current is not None and not replace:
            raise errors.DuplicateModel(f'model "{schema}.{name}" already exists')
        latest = self._latest(schema, name)
        version = latest + 1
        now = datetime.now(UTC).replace(tzinfo=None)
        row = _version_row(schema, name, version, result, query_sql, transform_sql, now)
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in row)]),
            VERSIONS,
            columns=[exp.to_identifier(c, quoted=True) for c in row],
        )
        try:
            self.engine.execute(self._sql(insert), list(row.values()))
        except errors.IntegrityError as e:  # another transaction stored this version first
            raise errors.from_sqlstate(
                "40001",
                f'model "{schema}.{name}" was created or replaced by another session at the'
                " same time",
                hint="roll back and retry the transaction",
            ) from e
        self._save_statistics(schema, name, version, result)
        self._save_state(schema, name, version, result)
        self._save_booster(schema, name, version, result)
        self._save_trials(schema, name, version, result)
        if not serves:
            return version
        self._point(schema, name, result.model_type, version, now, exists=current is not None)
        return version

    def _save_statistics(self, schema: str, name: str, version: int, result: TrainResult) -> None:
        """The training rows' statistics, beside the version (ml/statistics.py)."""
        if result.statistics is None:
            return
        self._insert_beside(
            STATISTICS,
            schema,
            name,
            version,
            statistics=json.dumps(result.statistics, allow_nan=False),
            warnings=json.dumps(result.data_warnings) if result.data_warnings else None,
        )

    def _save_state(self, schema: str, name: str, version: int, result: TrainResult) -> None:
        """Incremental training's statistics and watermark, beside the version."""
        if result.state is None:
            return
        meta = {**result.state.meta(), "watermark": result.watermark}
        self._insert_beside(
            STATE, schema, name, version, state=result.state.to_bytes(), meta=json.dumps(meta)
        )

    def _save_booster(self, schema: str, name: str, version: int, result: TrainResult) -> None:
        """A tree model's XGBoost JSON, beside the version (ML.EXPLAIN_PREDICT's TreeSHAP)."""
        if result.booster is None:
            return
        digest = hashlib.sha256(result.booster).hexdigest()
        self._insert_beside(
            BOOSTERS,
            schema,
            name,
            version,
            format=BOOSTER_FORMAT,
            booster=result.booster,
            sha256=digest,
        )

    def booster_sha(self, version: ModelVersion) -> str | None:
        """The sha256 of the XGBoost model stored with a tree model's ``version`` (None: it has
        none: stored before store version 6, or not a tree model)."""
        found = self._one_version(
            BOOSTERS, version.schema, version.name, version.version, "format", "sha256"
        )
        return None if found is None or found[0] != BOOSTER_FORMAT else str(found[1])

    def booster(self, version: ModelVersion) -> bytes | None:
        """The XGBoost model (its JSON) stored with ``version``, checked against its sha256
        (XX001); None: it has none."""
        found = self._one_version(
            BOOSTERS, version.schema, version.name, version.version, "format", "booster", "sha256"
        )
        if found is None or found[0] != BOOSTER_FORMAT:
            return None
        data = bytes(found[1])
        if hashlib.sha256(data).hexdigest() != found[2]:
            raise errors.CorruptedModel(
                f"the XGBoost model of {version.ref} version {version.version} is corrupted: its"
                " bytes do not match their sha256",
                hint="retrain it with CREATE OR REPLACE MODEL",
            )
        return data

    def _save_trials(self, schema: str, name: str, version: int, result: TrainResult) -> None:
        """The trials of a training with hyperparameter tuning, beside the version."""
        for trial in result.trials or ():
            trained = trial.result
            self._insert_beside(
                TRIALS,
                schema,
                name,
                version,
                trial_id=trial.trial_id,
                status=trial.status,
                is_optimal=trial.optimal,
                hyperparameters=json.dumps(trial.hyperparameters),
                tuning_metrics=_json_or_none(trial.tuning_metrics),
                metrics=_json_or_none(trial.metrics),
                training_loss=trial.training_loss,
                eval_loss=trial.eval_loss,
                error_message=trial.error_message,
                model_type=None if trained is None else trained.model_type,
                onnx=None if trained is None else trained.onnx,
                onnx_sha256=None if trained is None else hashlib.sha256(trained.onnx).hexdigest(),
                inputs=None
                if trained is None
                else json.dumps([nested.to_json(c) for c in trained.inputs]),
                options=None if trained is None else json.dumps(trained.options),
                training_info=None if trained is None else json.dumps(trained.training_info),
                feature_info=None if trained is None else json.dumps(trained.feature_info),
                started_at=trial.started_at,
                ended_at=trial.ended_at,
            )

    def _insert_beside(
        self, table: exp.Table, schema: str, name: str, version: int, **values: Any
    ) -> None:
        """One row of a table kept beside sqlml.versions (keyed by model and version)."""
        row = {"schema_name": schema, "model_name": name, "version": version, **values}
        # (a NULL as a literal: PostgreSQL types an untyped NULL parameter as text, which a
        # number or boolean column refuses)
        insert = exp.insert(
            exp.values(
                [tuple(exp.null() if v is None else exp.Placeholder() for v in row.values())]
            ),
            table,
            columns=[exp.to_identifier(c, quoted=True) for c in row],
        )
        self.engine.execute(self._sql(insert), [v for v in row.values() if v is not None])

    def _one_version(
        self, table: exp.Table, schema: str, name: str, version: int, *columns: str
    ) -> tuple[Any, ...] | None:
        """``columns`` of the row of ``table`` for one version (None: there is none)."""
        query = (
            exp.select(*(_col(c) for c in columns))
            .from_(table)
            .where(_key())
            .where(_col("version").eq(exp.Placeholder()))
        )
        found = self.engine.query_arrow(self._sql(query), [schema, name, version])
        if not found.num_rows:
            return None
        return tuple(found.column(i)[0].as_py() for i in range(len(columns)))

    def state(self, ref: ModelRef, version: int) -> tuple[bytes, dict[str, Any]] | None:
        """The incremental state stored with ``version`` (its .npy bytes and JSON meta); None:
        the version was not trained with incremental = TRUE."""
        found = self._one_version(STATE, *self.resolve(ref), version, "state", "meta")
        if found is None:
            return None
        meta: dict[str, Any] = json.loads(found[1])
        return bytes(found[0]), meta

    def state_meta(self, ref: ModelRef, version: int) -> dict[str, Any] | None:
        """The JSON meta of ``version``'s incremental state without its arrays (None: it has
        none): what decides whether RETRAIN can extend it."""
        found = self._one_version(STATE, *self.resolve(ref), version, "meta")
        return None if found is None else dict(json.loads(found[0]))

    def query_of(self, ref: ModelRef, version: int) -> tuple[str | None, str | None]:
        """The training query and TRANSFORM clause a version was trained with, as written."""
        schema, name = self.resolve(ref)
        found = self._one_version(VERSIONS, schema, name, version, "query_sql", "transform_sql")
        if found is None:
            raise errors.UndefinedModel(f'model "{schema}.{name}" has no version {version}')
        return found[0], found[1]

    def trained_from(self, ref: ModelRef, version: int) -> dict[str, Any]:
        """What a version was trained from (unchanged.py): its query and TRANSFORM clause as
        written, options (JSON), library versions (JSON), the rows' fingerprint and its
        training info (JSON: a search's options as written, ml/tuning.py)."""
        schema, name = self.resolve(ref)
        columns = (
            "query_sql",
            "transform_sql",
            "options",
            "library_versions",
            "data_hash",
            "training_info",
        )
        found = self._one_version(VERSIONS, schema, name, version, *columns)
        if found is None:
            raise errors.UndefinedModel(f'model "{schema}.{name}" has no version {version}')
        return dict(zip(columns, found, strict=True))

    def statistics(self, version: ModelVersion) -> dict[str, Any] | None:
        """The statistics stored with ``version`` at training; None: none were (an imported
        model, or one stored before store version 3)."""
        return self._statistics(version.schema, version.name, version.version)

    def serving_statistics(self, ref: ModelRef) -> tuple[int, dict[str, Any] | None] | None:
        """(the serving version, its statistics) without loading its graph (a retrain must work
        while the stored graph is corrupted); None: no such model."""
        current = self.current_version(ref)
        if current is None:
            return None
        schema, name = self.resolve(ref)
        return current, self._statistics(schema, name, current)

    def _statistics(self, schema: str, name: str, version: int) -> dict[str, Any] | None:
        found = self._one_version(STATISTICS, schema, name, version, "statistics")
        if found is None:
            return None
        loaded: dict[str, Any] = json.loads(found[0])
        return loaded

    def _latest(self, schema: str, name: str) -> int:
        """The highest version number the model has used: stored, or named by its audit trail
        (a dropped version's number is not given again while a deployment row names it)."""
        found = 0
        for table, column in (
            (VERSIONS, "version"),
            (DEPLOYMENTS, "version"),
            (DEPLOYMENTS, "previous_version"),
        ):
            query = exp.select(exp.func("max", _col(column))).from_(table).where(_key())
            value = self.engine.query_arrow(self._sql(query), [schema, name]).column(0)[0].as_py()
            found = max(found, int(value) if value is not None else 0)
        return found

    def _point(
        self, schema: str, name: str, model_type: str, version: int, now: datetime, exists: bool
    ) -> None:
        if exists:
            update = exp.update(
                MODELS,
                {
                    "current_version": exp.Placeholder(),
                    "model_type": exp.Placeholder(),
                    "updated_at": exp.Placeholder(),
                },
                where=_key(),
            )
            self.engine.execute(self._sql(update), [version, model_type, now, schema, name])
            return
        values = [schema, name, model_type, version, now, now]
        columns = ["schema_name", "model_name", "model_type", "current_version"]
        columns += ["created_at", "updated_at"]
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in values)]),
            MODELS,
            columns=[exp.to_identifier(c, quoted=True) for c in columns],
        )
        self.engine.execute(self._sql(insert), values)

    def drop(self, ref: ModelRef, if_exists: bool) -> bool:
        self.ensure()
        schema, name = self.resolve(ref)
        if self.current_version(ref) is None:
            if if_exists:
                return False
            raise errors.UndefinedModel(f'model "{schema}.{name}" does not exist')
        with all_or_nothing(self.engine):
            for table in (
                SCHEDULE_RUNS,
                PREDICTION_LOG,
                DEPLOYMENTS,
                MODEL_SETTINGS,
                STATISTICS,
                STATE,
                TRIALS,
                BOOSTERS,
                VERSIONS,
                MODELS,
            ):
                delete = exp.delete(table, where=_key())
                self.engine.execute(self._sql(delete), [schema, name])
            if self.engine.dialect in TYPED_LOG:  # (the typed log's tables stay, emptied)
                from sqlml import predlog

                for logged in predlog.typed_tables(self.engine):
                    delete = exp.delete(exp.table_(logged, db="sqlml", quoted=True), where=_key())
                    self.engine.execute(self._sql(delete), [schema, name])
        return True

    # -- schedules (sqlml/schedules.py): their runs, and the models that have one -------------

    def scheduled(self) -> list[tuple[str, str, dict[str, Any]]]:
        """(schema, name, schedule) of every model with a retrain_schedule, in name order."""
        self.ensure()
        columns = ("schema_name", "model_name", "settings")
        query = (
            exp.select(*(_col(c) for c in columns))
            .from_(MODEL_SETTINGS)
            .order_by(_col("schema_name"), _col("model_name"))
        )
        found = []
        for row in self.engine.query_arrow(self._sql(query)).to_pylist():
            schedule = json.loads(row["settings"]).get("schedule")
            if schedule:
                found.append((str(row["schema_name"]), str(row["model_name"]), schedule))
        return found

    def last_run(self, ref: ModelRef) -> datetime | None:
        """The firing the model's latest recorded schedule run was for (None: none yet)."""
        query = exp.select(exp.func("max", _col("scheduled_for"))).from_(SCHEDULE_RUNS)
        found = self.engine.query_arrow(self._sql(query.where(_key())), list(self.resolve(ref)))
        value = found.column(0)[0].as_py()
        return value if isinstance(value, datetime) else None

    def record_run(self, ref: ModelRef, run: dict[str, Any]) -> int:
        """One row of sqlml.schedule_runs (its run_id the model's next); returns the run_id."""
        schema, name = self.resolve(ref)
        last = exp.select(exp.func("max", _col("run_id"))).from_(SCHEDULE_RUNS).where(_key())
        found = self.engine.query_arrow(self._sql(last), [schema, name]).column(0)[0].as_py()
        row = {"schema_name": schema, "model_name": name, "run_id": int(found or 0) + 1, **run}
        present = {k: v for k, v in row.items() if v is not None}  # (NULLs: no typed markers)
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in present)]),
            SCHEDULE_RUNS,
            columns=[exp.to_identifier(c, quoted=True) for c in present],
        )
        self.engine.execute(self._sql(insert), list(present.values()))
        return int(row["run_id"])

    # -- the lifecycle: deploy, roll back, drop a version (sqlml/lifecycle.py runs them) ---------

    def deploy(
        self,
        ref: ModelRef,
        version: int,
        *,
        action: str = "deploy",
        role: str | None = None,
        comment: str | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> int | None:
        """Makes ``version`` serve, with its audit row, in one transaction; returns the version
        that served before (None: it serves already, and nothing is written)."""
        self.ensure()
        with self.names_fixed(), all_or_nothing(self.engine):
            current = self._existing(ref, version)
            if current == version:
                return None
            settings = self._serve(ref, version)
            self._record(ref, version, current, action, role, comment, metrics, True, settings)
            return current

    def rollback(
        self,
        ref: ModelRef,
        version: int | None = None,
        *,
        role: str | None = None,
        comment: str | None = None,
    ) -> tuple[int, int | None]:
        """Back to the deployment before the one in effect (or to ``version``): 55000 when
        there is none. Returns (the version serving now, the one that served before; None:
        it served already, and nothing is written)."""
        self.ensure()
        with self.names_fixed(), all_or_nothing(self.engine):
            current = self._existing(ref, version)
            history = self._history(ref)
            latest = history[-1] if history else None
            target = self._rollback_target(ref, history, latest, version)
            if target is None:
                schema, name = self.resolve(ref)
                raise errors.ObjectNotInPrerequisiteState(
                    f'model "{schema}.{name}" has no previous deployment to roll back to',
                    hint="ALTER MODEL ... DEPLOY VERSION n serves a version of your choice",
                )
            wanted, parent = target
            if wanted == current:
                return wanted, None
            settings = self._serve(ref, wanted)
            self._record(ref, wanted, current, "rollback", role, comment, None, parent, settings)
            return wanted, current

    def _rollback_target(
        self,
        ref: ModelRef,
        history: list[Deployment],
        latest: Deployment | None,
        version: int | None,
    ) -> tuple[int, int | None] | None:
        """(version, parent of the new row): the nearest earlier deployment whose version is
        still stored, so that ROLLBACK again goes back one step further."""
        by_id = {d.deployment_id: d for d in history}
        if version is not None:  # TO VERSION n: that version's last deployment's parent
            earlier = [d for d in history if d.version == version]
            if earlier:
                return version, earlier[-1].parent_id
            return version, latest.deployment_id if latest is not None else None
        stored = set(self.versions(ref))
        step = by_id.get(latest.parent_id) if latest and latest.parent_id else None
        while step is not None and step.version not in stored:
            step = by_id.get(step.parent_id) if step.parent_id else None
        return (step.version, step.parent_id) if step is not None else None

    def drop_version(self, ref: ModelRef, version: int, if_exists: bool) -> bool:
        """DROP MODEL m VERSION n: 2BP01 while it serves; 42704 when there is no such version
        (nothing with IF EXISTS). The audit rows that name it stay."""
        self.ensure()
        schema, name = self.resolve(ref)
        with all_or_nothing(self.engine):
            current = self.current_version(ref)
            if current is None and if_exists:
                return False
            if current == version:
                raise errors.DependentObjectsStillExist(
                    f'cannot drop version {version} of model "{schema}.{name}": it serves',
                    hint="deploy another version first (ALTER MODEL ... DEPLOY VERSION n)",
                )
            settings = self.settings(ref)
            split = settings.get("traffic", {})
            if any(owner == version for _, _, owner in split.get("ranges", ())):
                raise errors.DependentObjectsStillExist(
                    f'cannot drop version {version} of model "{schema}.{name}": it serves a share'
                    " of its traffic split",
                    hint="ALTER MODEL ... SET TRAFFIC without it, or CLEAR TRAFFIC, first",
                )
            if settings.get("shadow", {}).get("version") == version:
                raise errors.DependentObjectsStillExist(
                    f'cannot drop version {version} of model "{schema}.{name}": it shadows',
                    hint="ALTER MODEL ... CLEAR SHADOW first",
                )
            if version not in (self.versions(ref) if current is not None else []):
                if if_exists:
                    return False
                self.load(ref, version)  # 42704, with the message load gives
            where = exp.and_(_key(), _col("version").eq(exp.Placeholder()))
            for table in (STATISTICS, STATE, TRIALS, BOOSTERS, VERSIONS):
                self.engine.execute(
                    self._sql(exp.delete(table, where=where)), [schema, name, version]
                )
        return True

    def _existing(self, ref: ModelRef, version: int | None) -> int:
        """The serving version, after checking that the model and ``version`` exist (42704)
        without loading the version (its graph is not needed to serve it)."""
        current = self.current_version(ref)
        schema, name = self.resolve(ref)
        if current is None:
            raise errors.UndefinedModel(f'model "{schema}.{name}" does not exist')
        if version is not None and version != current:
            where = exp.and_(_key(), _col("version").eq(exp.Placeholder()))
            query = exp.select(exp.Literal.number(1)).from_(VERSIONS).where(where)
            if not self.engine.query_arrow(self._sql(query), [schema, name, version]).num_rows:
                raise errors.UndefinedModel(f'model "{schema}.{name}" has no version {version}')
        return current

    def _serve(self, ref: ModelRef, version: int) -> dict[str, Any] | None:
        """Points the model at ``version``; returns the settings left when a traffic split or
        a shadow ended (None: there was none)."""
        schema, name = self.resolve(ref)
        now = datetime.now(UTC).replace(tzinfo=None)
        update = exp.update(
            MODELS,
            {"current_version": exp.Placeholder(), "updated_at": exp.Placeholder()},
            where=_key(),
        )
        self.engine.execute(self._sql(update), [version, now, schema, name])
        return self._end_traffic(ref)

    def _history(self, ref: ModelRef) -> list[Deployment]:
        """The audit rows that changed the serving version, in order."""
        schema, name = self.resolve(ref)
        columns = ("deployment_id", "version", "parent_id")
        actions = _col("action").isin(*(exp.Literal.string(a) for a in SERVING_ACTIONS))
        query = (
            exp.select(*(_col(c) for c in columns))
            .from_(DEPLOYMENTS)
            .where(_key())
            .where(actions)
            .order_by(_col("deployment_id"))
        )
        rows = self.engine.query_arrow(self._sql(query), [schema, name]).to_pylist()
        return [
            Deployment(int(r["deployment_id"]), int(r["version"]), _int(r["parent_id"]))
            for r in rows
        ]

    def _latest_deployment(self, ref: ModelRef) -> Deployment | None:
        history = self._history(ref)
        return history[-1] if history else None

    def _record(
        self,
        ref: ModelRef,
        version: int,
        previous: int | None,
        action: str,
        role: str | None,
        comment: str | None,
        metrics: dict[str, Any] | None,
        parent: int | bool | None = True,
        settings: dict[str, Any] | None = None,
    ) -> None:
        """One audit row; ``parent`` True: the deployment in effect until now; ``settings``:
        the serving settings the change left (None: unchanged)."""
        schema, name = self.resolve(ref)
        if parent is True:
            latest = self._latest_deployment(ref)
            parent = latest.deployment_id if latest is not None else None
        last = exp.select(exp.func("max", _col("deployment_id"))).from_(DEPLOYMENTS).where(_key())
        found = self.engine.query_arrow(self._sql(last), [schema, name]).column(0)[0].as_py()
        row = {
            "schema_name": schema,
            "model_name": name,
            "deployment_id": (int(found) if found is not None else 0) + 1,
            "version": version,
            "previous_version": previous,
            "action": action,
            "deployed_at": datetime.now(UTC).replace(tzinfo=None),
            "role": role,
            "comment": comment,
            "metrics": json.dumps(metrics) if metrics is not None else None,
            "parent_id": parent,
            "settings": json.dumps(settings, sort_keys=True) if settings is not None else None,
        }
        present = {k: v for k, v in row.items() if v is not None}  # (NULLs: no typed markers)
        insert = exp.insert(
            exp.values([tuple(exp.Placeholder() for _ in present)]),
            DEPLOYMENTS,
            columns=[exp.to_identifier(c, quoted=True) for c in present],
        )
        self.engine.execute(self._sql(insert), list(present.values()))

    def list(self, schema: str | None = None) -> pa.Table:
        """SHOW MODELS: one row per model with its current version's headline facts."""
        self.ensure()
        m, v = "m", "v"
        query = exp.select(
            exp.column("schema_name", m, quoted=True).as_("schema_name"),
            exp.column("model_name", m, quoted=True).as_("model_name"),
            exp.column("model_type", m, quoted=True).as_("model_type"),
            exp.column("current_version", m, quoted=True).as_("version"),
            exp.column("row_count", v, quoted=True).as_("training_rows"),
            exp.column("created_at", v, quoted=True).as_("trained_at"),
        )
        query = _serving(query).order_by(exp.column("schema_name", m), exp.column("model_name", m))
        params: list[Any] = []
        if schema is not None:
            query = query.where(exp.column("schema_name", m).eq(exp.Placeholder()))
            params.append(schema)
        s = "s"
        on = exp.and_(
            exp.column("schema_name", m).eq(exp.column("schema_name", s)),
            exp.column("model_name", m).eq(exp.column("model_name", s)),
        )
        # description and labels (ALTER MODEL ... SET OPTIONS), read from the settings' JSON by
        # the engine (-> and ->>, which DuckDB and PostgreSQL both have)
        settings = exp.cast(exp.column("settings", s, quoted=True), exp.DataType.build("JSON"))
        text = exp.DataType.build("VARCHAR" if self.engine.dialect == "duckdb" else "TEXT")
        description = exp.JSONExtractScalar(
            this=settings, expression=exp.Literal.string("description")
        )
        labels = exp.JSONExtract(this=settings.copy(), expression=exp.Literal.string("labels"))
        query = query.select(
            description.as_("description"), exp.cast(labels, text).as_("labels")
        ).join(MODEL_SETTINGS.copy().as_(s), on=on, join_type="left")
        return self.engine.query_arrow(self._sql(query), params)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, allow_nan=False)


def _sha_query(ref: ModelRef, schema: exp.Expr, name: exp.Expr) -> exp.Select:
    """The sha256 of the version a reference means: the serving one, or ``ref.version``; with
    ``ref.trial``, that trial's of it (ml/tuning.py)."""
    m, v = "m", "v"
    if ref.trial is not None:
        t = "t"
        version = (
            exp.Literal.number(ref.version)
            if ref.version is not None
            else exp.column("current_version", m, quoted=True)
        )
        return (
            exp.select(exp.column("onnx_sha256", t, quoted=True))
            .from_(MODELS.copy().as_(m))
            .join(
                TRIALS.copy().as_(t),
                on=exp.and_(
                    exp.column("schema_name", m).eq(exp.column("schema_name", t)),
                    exp.column("model_name", m).eq(exp.column("model_name", t)),
                    exp.column("version", t).eq(version),
                    exp.column("trial_id", t).eq(exp.Literal.number(ref.trial)),
                ),
            )
            .where(exp.column("schema_name", m).eq(schema))
            .where(exp.column("model_name", m).eq(name))
        )
    if ref.version is not None:
        return (
            exp.select(_col("onnx_sha256"))
            .from_(VERSIONS)
            .where(_col("schema_name").eq(schema))
            .where(_col("model_name").eq(name))
            .where(_col("version").eq(exp.Literal.number(ref.version)))
        )
    s = "s"
    settings = exp.func("coalesce", exp.column("settings", s, quoted=True), exp.Literal.string(""))
    fingerprint = exp.DPipe(
        this=exp.DPipe(
            this=exp.column("onnx_sha256", v, quoted=True), expression=exp.Literal.string("|")
        ),
        expression=settings,
    )
    on = exp.and_(
        exp.column("schema_name", m).eq(exp.column("schema_name", s)),
        exp.column("model_name", m).eq(exp.column("model_name", s)),
    )
    return (
        _serving(exp.select(fingerprint))
        .join(MODEL_SETTINGS.copy().as_(s), on=on, join_type="left")
        .where(exp.column("schema_name", m).eq(schema))
        .where(exp.column("model_name", m).eq(name))
    )


def _serving(select: exp.Select) -> exp.Select:
    """FROM sqlml.models AS m JOIN the version each model serves AS v."""
    m, v = "m", "v"
    return select.from_(MODELS.copy().as_(m)).join(
        VERSIONS.copy().as_(v),
        on=exp.and_(
            exp.column("schema_name", m).eq(exp.column("schema_name", v)),
            exp.column("model_name", m).eq(exp.column("model_name", v)),
            exp.column("current_version", m).eq(exp.column("version", v)),
        ),
    )


def _library_versions() -> dict[str, str]:
    import sqlml

    found = {"sqlml": sqlml.__version__}
    for library in LIBRARIES:
        try:
            found[library] = importlib.metadata.version(library)
        except importlib.metadata.PackageNotFoundError:
            found[library] = "unknown"
    return found


def _version_row(
    schema: str,
    name: str,
    version: int,
    result: TrainResult,
    query_sql: str | None,
    transform_sql: str | None,
    now: datetime,
) -> dict[str, Any]:
    label = None
    if result.label is not None:
        label = {"name": result.label, "type": result.label_type, "classes": result.classes}
    return {
        "schema_name": schema,
        "model_name": name,
        "version": version,
        "model_type": result.model_type,
        "onnx": result.onnx,
        "onnx_sha256": hashlib.sha256(result.onnx).hexdigest(),
        "inputs": json.dumps([nested.to_json(c) for c in result.inputs]),
        "label": json.dumps(label) if label else None,
        "options": json.dumps(result.options),
        "transform_sql": transform_sql,
        "query_sql": query_sql,
        "metrics": json.dumps(result.metrics),
        "training_info": json.dumps(result.training_info),
        "feature_info": json.dumps(result.feature_info),
        "row_count": result.row_count,
        "data_hash": result.data_hash,
        "library_versions": json.dumps(_library_versions()),
        "created_at": now,
    }


def _version_from_row(row: dict[str, Any]) -> ModelVersion:
    onnx = bytes(row["onnx"])
    if hashlib.sha256(onnx).hexdigest() != row["onnx_sha256"]:
        raise errors.CorruptedModel(
            f'model "{row["schema_name"]}.{row["model_name"]}" version {row["version"]}'
            " is corrupted:"
            " its ONNX bytes do not match their sha256",
            hint="retrain it with CREATE OR REPLACE MODEL",
        )
    return ModelVersion(
        schema=row["schema_name"],
        name=row["model_name"],
        version=int(row["version"]),
        model_type=row["model_type"],
        onnx=onnx,
        sha256=row["onnx_sha256"],
        inputs=[nested.from_json(c) for c in json.loads(row["inputs"])],
        label=json.loads(row["label"]) if row["label"] else None,
        options=json.loads(row["options"]),
        metrics=json.loads(row["metrics"]),
        training_info=json.loads(row["training_info"]),
        feature_info=json.loads(row["feature_info"]),
    )
