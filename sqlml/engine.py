"""The engine path: the one road every front door (DB-API, CLI, gateway, dbt) takes.

A script is split into statements; a statement that cannot be ML (no ``MODEL`` or ``ML.`` in it)
goes to the engine untouched, unparsed. An ML statement is parsed into a typed statement and run:
CREATE MODEL reads its query as Arrow, trains in the ML core and stores a version; ML.PREDICT and
ML.SCORE are rewritten into the engine's own SQL (compiled or runtime scoring); ML.EVALUATE is
computed from the model's outputs and joined into the query as a registered Arrow table.
An ML query may be any statement around the calls (CREATE TABLE AS, INSERT, UPDATE, CREATE
VIEW, WITH) or sit inside EXPLAIN, DECLARE ... CURSOR FOR or COPY (...) TO, whose wrapping is
kept; in CREATE VIEW the calls name the model's per-model function instead of inlining the
serving version (views.py), so that the view scores with the version serving when queried.

Kept plans: an ML query's rendered SQL is kept per session by its text, and reused while every
model serves the version it was rendered for and every ML.PREDICT input has the same columns.
DuckDB tells when that may have changed (engines/duckdb.py's token) and runs kept plans prepared
(queries only: DuckDB cannot prepare CREATE ... AS, and a failed PREPARE aborts a transaction);
on PostgreSQL one query checks it all on each run. Bind parameters (``?``, numbered ``$1..$n``
in text order first, or ``$n``) stay markers in the rendered SQL, so one plan serves every value;
an input's columns are found with NULL in place of each marker.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
import sqlglot.errors
from sqlglot import exp

from sqlml import (
    bigquery,
    bounded,
    byom,
    errors,
    evaluation,
    functions,
    grammar,
    lifecycle,
    predlog,
    prepared,
    retrain,
    scoring,
    traffic,
    trainings,
    unchanged,
    validation,
    views,
)
from sqlml.engines import open_engine, placeholders
from sqlml.engines.base import (
    Engine,
    InServer,
    KeepsPlans,
    Probes,
    Result,
    all_or_nothing,
)
from sqlml.engines.base import rows as result_rows
from sqlml.functions import literal
from sqlml.grammar import lexer
from sqlml.grammar.dialects import DIALECTS
from sqlml.grammar.statements import (
    AlterModel,
    CreateModel,
    DropModel,
    Evaluate,
    ExportModel,
    Inspect,
    MLCall,
    MLQuery,
    OverData,
    OverRows,
    Passthrough,
    Predict,
    Score,
    ShowModels,
    Statement,
)
from sqlml.ml import automl, incremental, models, tuning, warm_start
from sqlml.ml.checkpoints import budgeted
from sqlml.ml.spec import OptionValue
from sqlml.ml.streamed import Streamed
from sqlml.store import ModelVersion, Store

if TYPE_CHECKING:
    from sqlml.ml.incremental_more import More

Progress = Callable[[str], None]
# Rendered ML queries kept per session, by statement text: rendering a compiled model's SQL costs
# ~20 ms; finding that a kept one is still right costs nothing on DuckDB (the engine's token) and
# one round trip on PostgreSQL.
PLAN_CACHE_SIZE = 64
_names = itertools.count(1)
_SHA, _INPUT = f"{scoring.HIDDEN}sha", f"{scoring.HIDDEN}in"


@dataclass(frozen=True)
class Settings:
    """Session settings; they enter at the edge (connect(), the CLI, the gateway)."""

    scoring: str = "auto"  # 'auto' (compiled where the graph allows) | 'compiled' | 'runtime'
    dialect: str = ""  # '' the engine's own SQL | 'bigquery' (GoogleSQL, see sqlml.bigquery)


_PlanKey = tuple[str, str, str, bool, str]  # sql, dialect, scoring, with parameters, outer query
Outer = Callable[[exp.Expression], exp.Expression]  # a query built around an ML query's tree


@dataclass(eq=False)
class _Plan:
    """An ML query as rendered for the engine, with what it was rendered for: the model versions
    and the columns of each ML.PREDICT input. It is still right while both are the same."""

    versions: tuple[ModelVersion, ...]
    calls: tuple[MLCall, ...]
    sql: str  # parameter markers as $n, numbered as the statement's
    inputs: tuple[pa.Schema | None, ...]  # per call: the columns of an ML.PREDICT input
    probes: tuple[str | None, ...]  # per call: the query that finds them (markers as NULL)
    arity: int = 0  # the parameters it takes
    preparable: bool = True  # a query: DuckDB cannot PREPARE CREATE ... AS, and EXPLAIN of a
    # prepared statement or a prepared INSERT's count would come back as rows
    check: str | None = None  # the one query that checks it all (engines.base.Probes)
    token: Hashable = None  # the engine's token when last found right (engines.base.KeepsPlans)
    prepared: Hashable = None  # the token it was first prepared at (None: not prepared)
    unprepared: Hashable = None  # the token at which preparing it failed
    name: str = field(default_factory=lambda: f"{scoring.HIDDEN}plan_{next(_names)}")
    logs: tuple[predlog.Log, ...] = ()  # what logs ML.PREDICT's samples after it (predlog.py)

    @property
    def shas(self) -> tuple[str, ...]:
        return tuple(v.fingerprint for v in self.versions)


@dataclass(frozen=True)
class Rendered:
    """What Session.ml_plan gives a caller that runs the SQL itself (the gateway's PostgreSQL
    proxy, sqlml.ml): the query, and the statements that log its ML.PREDICT samples."""

    sql: str  # parameter markers as $n, numbered as the statement's
    logs: tuple[predlog.Log, ...] = ()  # (predlog.py; none: the models log nothing)


@dataclass
class _Rendering:
    """What rendering an ML query collects on the way."""

    versions: list[ModelVersion] = field(default_factory=list)
    inputs: list[pa.Schema | None] = field(default_factory=list)
    probes: list[str | None] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # ML.EVALUATE results as tables
    logs: list[predlog.Log] = field(default_factory=list)  # (predlog.py)
    volatile: bool = False  # computed from the data now (ML.DESCRIBE_DATA ...): never kept


class Session:
    """One connection's worth of state over one engine."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings or Settings()
        self.store = Store(engine)
        # whether ML.PREDICT's prediction log is written (predlog.py): not for the gateway's
        # read-only users
        self.logs_predictions = True
        # the typed log tables known to be there, committed (predlog.ensure), as of the
        # engine's token: forgotten after any change to the catalog (predlog.known)
        self.log_tables: set[str] = set()
        self.log_tables_token: Hashable = None
        # PREPARE'd ML queries by name (prepared.py): the engine cannot prepare them itself
        self.prepared: dict[str, prepared.Prepared] = {}
        self._plans: dict[_PlanKey, _Plan] = {}
        self._keeper = engine if isinstance(engine, KeepsPlans) else None
        self._prober = engine if isinstance(engine, Probes) else None
        # Before any transaction: a rolled-back one must not take the store tables away.
        self.store.ensure()
        self.progress = progress
        # PostgreSQL: CREATE MODEL, DROP MODEL and ML.EVALUATE on rows run inside the server.
        self.server: InServer | None = engine if isinstance(engine, InServer) else None
        # the gateway's training slots (--max-concurrent-trainings; None: no limit)
        self.trainings: trainings.Slots | None = None
        if self.server is not None:
            self.server.progress = self.say

    @classmethod
    def open(cls, database: str, settings: Settings | None = None) -> Session:
        engine = open_engine(database)
        try:
            return cls(engine, settings)
        except BaseException:  # (the store check failed: the file must not stay open)
            engine.close()
            raise

    def execute_script(self, script: str, params: bigquery.Params = None) -> Iterator[Result]:
        """Each statement's result, in order; parameters go with a single statement only."""
        statements = grammar.split_script(script)
        if params and len(statements) > 1:
            raise errors.ProgrammingError("parameters can be used with one statement only")
        for text in statements:
            yield self.execute_one(text, params)

    def execute_one(self, sql: str, params: bigquery.Params = None) -> Result:
        """One statement; ``params`` bind its ``?`` or ``$n`` markers, also in an ML query (in
        BigQuery mode, its ``@name`` markers from a mapping)."""
        if lexer.first_word(sql) == "SET" and bigquery.dialect_set(sql) is not None:
            return self._set_dialect(sql)
        if self.settings.dialect == bigquery.NAME or isinstance(params, Mapping):
            sql, params = self._from_bigquery(sql, params)
        if lexer.first_word(sql) in prepared.WORDS:
            handled = prepared.handle(self, sql, params)
            if handled is not None:
                return handled
        if not grammar.is_ml(sql):
            return self.engine.execute(sql, params)
        key = self._key(sql, params)
        plan = self._plans.get(key)
        if plan is not None and self._still_serves(plan):
            return self._execute(plan, params)
        wrapped = self._wrapped(sql, params, key)
        if wrapped is not None:
            return wrapped
        statement = self._parse(sql, params)
        if isinstance(statement, Passthrough):
            return self.engine.execute(sql, params)
        bigquery.check_paths(statement, self.engine)
        if isinstance(statement, MLQuery):
            return self.ml_query(statement, key, params)
        if params:
            raise errors.FeatureNotSupported(
                f"parameters are not supported in {_kind(statement)} statements"
            )
        if (
            self.server is not None
            and isinstance(statement, CreateModel)
            and statement.query is None
        ):
            return byom.import_in_server(self, self.server, statement, sql)  # the client's file
        if self.server is not None and isinstance(statement, CreateModel | DropModel | AlterModel):
            with self.training_slot(statement):
                return self.server.run_in_server(sql)
        return self.run(statement)

    def training_slot(self, statement: Statement) -> contextlib.AbstractContextManager[None]:
        """One of the gateway's training slots around a training (trainings.py); nothing
        around anything else, or outside a gateway."""
        trains = (isinstance(statement, CreateModel) and statement.query is not None) or (
            isinstance(statement, AlterModel) and statement.action == "RETRAIN"
        )
        if self.trainings is None or not trains:
            return contextlib.nullcontext()
        assert isinstance(statement, CreateModel | AlterModel)
        what = "CREATE MODEL" if isinstance(statement, CreateModel) else "ALTER MODEL ... RETRAIN"
        return self.trainings.slot(f"{what} {statement.model}", self.say, self.engine.checkpoint())

    def _set_dialect(self, sql: str) -> Result:
        """``SET sqlml.dialect = 'bigquery' | 'default'``: the session's SQL from now on."""
        self.settings = replace(self.settings, dialect=bigquery.dialect_set(sql) or "")
        return Result(None, -1, "SET")

    def _from_bigquery(self, sql: str, params: bigquery.Params) -> tuple[str, list[Any] | None]:
        if self.settings.dialect != bigquery.NAME:
            raise errors.ProgrammingError(
                "parameters by name (a mapping) need BigQuery mode: connect(dialect='bigquery')"
            )
        return bigquery.to_engine(self, sql, params)

    def _wrapped(self, sql: str, params: Sequence[Any] | None, key: _PlanKey) -> Result | None:
        """An ML query inside EXPLAIN, DECLARE ... CURSOR FOR or COPY (...) TO: the query is
        rendered and the wrapping kept as written (None: ``sql`` is no such statement)."""
        start, end = lexer.wrapped_query(sql)
        if (start, end) == (0, len(sql)):
            return None
        statement = self._parse(sql[start:end], params)
        if not isinstance(statement, MLQuery):
            return None  # (EXPLAIN CREATE MODEL ...: the whole text fails to parse as it is)
        return self.ml_query(statement, key, params, wrap=(sql[:start], sql[end:]))

    def _key(self, sql: str, params: Sequence[Any] | None, outer: str = "") -> _PlanKey:
        return (sql, self.engine.dialect, self.settings.scoring, bool(params), outer)

    def _parse(self, sql: str, params: Sequence[Any] | None) -> Statement:
        """The statement; with parameters, its ``?`` markers numbered ``$1, $2, ...`` in text
        order first (sqlglot may write clauses in another order than they were written)."""
        if not params:
            return grammar.parse(sql, self.engine.dialect)
        numbered = placeholders.number_qmarks(sql)
        try:
            return grammar.parse(numbered, self.engine.dialect)
        except errors.SyntaxError:
            if numbered != sql:  # the error at its place in the text as written
                grammar.parse(sql, self.engine.dialect)
            raise

    # -- kept plans ----------------------------------------------------------------------------

    def _still_serves(self, plan: _Plan) -> bool:
        """Whether a rendered ML query is still right (every model serves the same version, the
        inputs have the same columns), with its scorers registered for the run."""
        token = self._keeper.token() if self._keeper is not None else None
        if token is None or token != plan.token:
            if not self._current(plan):
                return False
            plan.token = token
        for version in plan.versions:
            self.engine.register_scorer(
                version.sha256, version.onnx, version.inputs, scoring.raw_outputs(version)
            )
        return True

    def _current(self, plan: _Plan) -> bool:
        if plan.check is not None and self._prober is not None:
            schema, row = self._prober.probe(plan.check)
            shas = row[: len(plan.versions)]
            inputs = _split_inputs(schema, len(plan.calls))
        else:
            shas = tuple(self.store.current_sha(v.ref) for v in plan.versions)
            inputs = tuple(None if p is None else self.engine.schema_of(p) for p in plan.probes)
        return tuple(shas) == plan.shas and inputs == plan.inputs

    def _check_query(self, plan: _Plan) -> str | None:
        """For an engine that Probes: one query whose row holds the sha256 each model serves,
        and whose columns after each marker column are an ML.PREDICT input's, from a LIMIT 0
        join. (PostgreSQL has no cheap sign of a change: another session may have made it;
        DuckDB checks after its token changed.)"""
        if self._prober is None:
            return None
        dialect = self.engine.dialect
        one = exp.select(exp.Literal.number(1)).subquery(f"{scoring.HIDDEN}one")
        query = exp.select(
            *(
                exp.alias_(self.store.serving_sha(v.ref), f"{_SHA}{i}", quoted=True)
                for i, v in enumerate(plan.versions)
            )
        ).from_(one)
        for i, probe in enumerate(plan.probes):
            if probe is None:
                continue
            alias = f"{scoring.HIDDEN}q{i}"
            zero = (
                exp.select("*").from_(scoring.subquery(_parse_query(probe, dialect), "q")).limit(0)
            )
            star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
            query = query.select(exp.alias_(exp.Literal.number(1), f"{_INPUT}{i}", quoted=True))
            query = query.select(star).join(
                scoring.subquery(zero, alias), on=exp.true(), join_type="left"
            )
        return query.sql(dialect=dialect)

    def _execute(self, plan: _Plan, params: Sequence[Any] | None) -> Result:
        """Runs a plan found right, then logs its ML.PREDICT samples (predlog.py): the two in
        one transaction, the caller's or (autocommit) one of their own, so that a log that
        cannot be written fails the statement with nothing of it kept (a CREATE TABLE AS's
        table included), and a statement rolled back takes its log with it."""
        if plan.logs:
            self._prepared(plan)  # (before the transaction: a failed PREPARE would abort it)
        return self._logged(plan, params, lambda: self._run_plan(plan, params))

    def _logged(
        self, plan: _Plan, params: Sequence[Any] | None, run: Callable[[], Result]
    ) -> Result:
        """``run()``'s result, the plan's ML.PREDICT samples logged after it in its transaction
        (_execute says why), also for a query computed now and never kept (ML.PREDICT beside
        ML.EVALUATE, whose rows were not logged)."""
        if not plan.logs:
            return run()
        if not self.engine.in_transaction():  # (a new log table: made in a transaction of
            # its own, never at the statement's expense)
            predlog.prepare(self, plan.logs, params)
        with all_or_nothing(self.engine):
            result = run()
            if predlog.writable(self):
                predlog.run(self, plan.logs, params)
        return result

    def _run_plan(self, plan: _Plan, params: Sequence[Any] | None) -> Result:
        """Runs a plan: prepared where the engine keeps plans (DuckDB binds and plans a
        compiled model's SQL in ~4 ms, runs it prepared for one row in well under 1)."""
        if len(params or ()) != plan.arity:
            raise placeholders.miscount(plan.arity, len(params or ()))
        if not self._prepared(plan):
            return self.engine.execute(plan.sql, params)
        assert self._keeper is not None
        result = self._keeper.run_prepared(plan.name, params)
        return result if result is not None else self.engine.execute(plan.sql, params)

    def _prepared(self, plan: _Plan) -> bool:
        """Prepares the plan where the engine keeps plans, once; False: it runs unprepared."""
        keeper = self._keeper
        if keeper is None or not plan.preparable or plan.unprepared == plan.token:
            return False
        if plan.prepared is None or not keeper.is_prepared(plan.name):
            # (Prepared once: a plan checked right after a change is the same SQL, and DuckDB
            # binds a prepared statement again itself when the catalog changed; preparing it
            # again cost ~4 ms a run after each CREATE or DROP anywhere in the database.)
            try:
                keeper.prepare(plan.name, plan.sql)
            except errors.Error:
                if self.engine.in_transaction():
                    raise  # the query's own error: the failed PREPARE aborted the transaction
                # It fails as it is (and the error is the query's), or runs unprepared until
                # something changes (what DuckDB cannot prepare).
                plan.unprepared = plan.token
                return False
            plan.prepared = plan.token
        return True

    def _keep(self, key: _PlanKey, plan: _Plan) -> None:
        replaced = self._plans.pop(key, None)
        if replaced is not None:
            self._forget(replaced)
        self._plans[key] = plan
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._forget(self._plans.pop(next(iter(self._plans))))

    def _forget(self, plan: _Plan) -> None:
        if plan.prepared is None or self._keeper is None:
            return
        plan.prepared = None
        with contextlib.suppress(errors.Error):  # e.g. in a failed transaction: it can stay
            self._keeper.deallocate(plan.name)

    def check_query(self, sql: str) -> None:
        """Parses and renders an ML query now without running it (a PREPARE's: prepared.py), so
        that its errors come when it is prepared; its plan is kept for the first EXECUTE."""
        statement = self._parse(sql, None)
        if not isinstance(statement, MLQuery):
            raise errors.FeatureNotSupported(
                f"PREPARE of {_kind(statement)} is not supported: only queries with ML calls"
            )
        bigquery.check_paths(statement, self.engine)
        self.ml_sql(sql)

    def ml_sql(self, sql: str, outer: Outer | None = None) -> str | None:
        """The engine's own SQL of ``ml_plan`` (None: run ``sql`` with execute_one)."""
        rendered = self.ml_plan(sql, outer)
        return rendered.sql if rendered is not None else None

    def ml_plan(self, sql: str, outer: Outer | None = None, view: bool = False) -> Rendered | None:
        """The engine's own SQL for an ML query that needs nothing registered around its run
        (ML.PREDICT, ML.SCORE, ML.EVALUATE of stored metrics excepted), for a caller that runs
        SQL itself: the gateway's PostgreSQL proxy sends it in place of ``sql``, so the rows go
        to the client as the server sends them, and sqlml.ml in the PostgreSQL server runs it.
        Parameter markers ($n) stay as they are, for the caller to bind. With it, the
        statements that log ML.PREDICT's sample after it (predlog.py): the caller runs them
        after the query, in its transaction, with the same parameters (predlog.bound), where
        the transaction can write. None: anything else (run it with execute_one).
        ``outer``: a query built around the statement's tree before it is rendered (sqlml.ml's
        one jsonb per row), so the kept plan is the whole query and nothing is joined as text.
        ``view``: rendered as in CREATE VIEW (views.py), for SQL that is kept and run later: it
        scores with the version that serves when it runs, and logs nothing.
        """
        if not grammar.is_ml(sql):
            return None
        outer_name = outer.__qualname__ if outer is not None else ""
        key = self._key(sql, None, outer_name + (" view" if view else ""))
        plan = self._plans.get(key)
        if plan is not None and self._still_serves(plan):
            return Rendered(plan.sql, plan.logs)
        statement = grammar.parse(sql, self.engine.dialect)
        if not isinstance(statement, MLQuery):
            return None
        bigquery.check_paths(statement, self.engine)
        if any(isinstance(call, Evaluate) for call in statement.calls):
            return None  # computed here and joined in as a registered table
        if outer is not None:
            statement = replace(statement, template=outer(statement.template))
        rendering = _Rendering()
        plan = self._render(statement, rendering, None, view=view)
        if not rendering.volatile:  # (ML.DESCRIBE_DATA ...: computed from the rows now)
            self._keep(key, plan)
        return Rendered(plan.sql, plan.logs)

    def run(self, statement: Statement, params: Sequence[Any] | None = None) -> Result:
        if isinstance(statement, Passthrough):
            return self.engine.execute(statement.sql, params)
        if isinstance(statement, MLQuery):
            return self.ml_query(statement, None, params)
        if params:
            raise errors.FeatureNotSupported(
                f"parameters are not supported in {_kind(statement)} statements"
            )
        if isinstance(statement, CreateModel):
            with self.training_slot(statement):
                return self.create_model(statement)
        if isinstance(statement, ExportModel):
            byom.export_model(self, statement)
            return Result(None, 0, "EXPORT MODEL")
        if isinstance(statement, AlterModel) and statement.action == "RETRAIN":
            with self.training_slot(statement):
                return retrain.retrain(self, statement)
        if isinstance(statement, AlterModel):
            return lifecycle.alter(self, statement)
        if isinstance(statement, DropModel) and statement.model.version is not None:
            return lifecycle.drop_version(self, statement)
        if isinstance(statement, DropModel):
            dropped = self.store.drop(statement.model, statement.if_exists)
            if dropped and self.engine.dialect == "duckdb":  # a view over it fails now (42883)
                views.drop_macro(self.engine, *self.store.resolve(statement.model))
            return Result(None, 1 if dropped else 0, "DROP MODEL")
        table = self.store.list(statement.schema)
        return Result(table, table.num_rows, f"SELECT {table.num_rows}")

    # -- CREATE MODEL --------------------------------------------------------------------------

    def create_model(self, statement: CreateModel) -> Result:
        with self.store.writing(statement.model):
            if statement.query is None:  # model_type = 'onnx': an import (byom.py)
                version = byom.create_model(self, statement)
                if version is not None:
                    self.say(f"stored {statement.model} version {version}")
                return Result(None, 0, "CREATE MODEL")
            return self._create_model(statement)

    def _create_model(self, statement: CreateModel) -> Result:
        assert statement.query is not None
        exists = self.store.current_version(statement.model) is not None
        warm, statement = self._warmed(statement, exists)
        if exists and statement.if_not_exists:
            return Result(None, 0, "CREATE MODEL")
        if exists and not statement.replace:
            raise errors.DuplicateModel(f'model "{statement.model}" already exists')
        # Checked here as well as in train(): a bad option fails before the rows are read.
        retraining, options = unchanged.policy(statement.options)
        statement = replace(statement, options=options)  # (not a training option: not stored)
        validate, options = validation.split(options)
        policy, options = lifecycle.deploy_policy(options)
        # (with num_trials: each search space at its starting point, the spaces checked)
        plain = tuning.plain(options)
        opts = models.get(plain.get("model_type")).resolve_options(incremental.defaults(plain))
        # (a search's budget is its own: it keeps the best trial when the time runs out)
        searched = tuning.requested(options) or automl.requested(options)
        seconds = None if searched else opts.get("max_training_seconds")
        checkpoint = budgeted(  # (a cancel from now on stops the training; and its budget)
            self.engine.checkpoint(), seconds, time.monotonic
        )
        if retraining == unchanged.INCREMENTAL and exists:
            head = unchanged.extendable(self, statement, opts)
            if head is not None:  # (RETRAIN: the rows past version head's watermark)
                self.say(
                    f"{statement.model}: the query, options and sqlml version are those of"
                    f" version {head}: adding the rows past its watermark (retrain ="
                    " 'incremental')"
                )
                done = retrain.retrain_held(self, AlterModel(statement.model, "RETRAIN"))
                return Result(None, 0, "CREATE MODEL") if done.table is None else done
        self.say(f"reading the training rows of {statement.model}")
        assert statement.query is not None  # (replaced with its options above)
        sql, sampled = self.sampled(statement.query.sql, opts.get("max_training_rows"))
        if retraining == unchanged.IF_CHANGED and exists:
            same = unchanged.latest_same(self, statement, opts, sql)
            if same is not None:
                self.say(
                    f"{statement.model} is unchanged since version {same} (its query, options,"
                    " sqlml version and training rows): no new version (retrain = 'if_changed')"
                )
                return Result(None, 0, "CREATE MODEL")
        read = bounded.read(self, sql, opts, statement.transform, checkpoint)
        sampled = read.sampled_from if read.sampled_from is not None else sampled
        if read.learned is None:
            mark = retrain.watermark(options, read.table)  # (42703, 42804 before training)
        else:  # (the table is a sample: the watermark of all the rows, in the engine)
            mark = retrain.watermark_in(self, options, sql, read.table.schema)
        notes = {"sampled_from": sampled} if sampled is not None else None
        return self.train_and_store(
            statement,
            read.table,
            validate,
            policy,
            options,
            checkpoint,
            mark,
            notes=notes,
            warm=warm,
            streamed=read.learned,
        )

    def _warmed(
        self, statement: CreateModel, exists: bool
    ) -> tuple[ModelVersion | None, CreateModel]:
        """With warm_start = TRUE (ml/warm_start.py): the serving version to start from, and
        the statement with its options merged in; else (None, the statement)."""
        if statement.options.get(warm_start.OPTION) is not True:
            return None, statement
        _, given = validation.split(statement.options)
        _, given = lifecycle.deploy_policy(given)
        if "model_type" in given:  # (a model type without warm_start: 0A000 first)
            models.get(given["model_type"]).resolve_options(incremental.defaults(given))
        if not exists:
            raise errors.UndefinedModel(
                f'model "{statement.model}" does not exist: WARM_START trains a model again',
                hint="CREATE MODEL without warm_start trains it the first time",
            )
        warm = self.store.load(statement.model)
        merged = warm_start.options(warm, statement.options, retrain.as_written)
        return warm, replace(statement, options=merged)

    def sampled(self, sql: str, cap: int | None) -> tuple[str, int | None]:
        """The training query, or, when it has more than ``cap`` rows (max_training_rows), a
        sample of ``cap`` of them: the rows whose text hashes lowest (md5), the same rows on
        every run whatever their order (unlike DuckDB's REPEATABLE samples, which depend on
        its threads), read through a top-N sort that keeps ``cap`` rows in memory, never the
        table. Returns the query and the row count sampled from (None: not sampled)."""
        if cap is None:
            return sql, None
        rows = scoring.subquery(_parse_query(sql, self.engine.dialect), _SAMPLED)
        count = exp.select(exp.func("count", exp.Star())).from_(rows.copy())
        total = int(self.engine.query_arrow(count.sql(dialect=self.engine.dialect))[0][0].as_py())
        if total <= cap:
            return sql, None
        text = exp.DataType.build("VARCHAR" if self.engine.dialect == "duckdb" else "TEXT")
        order = exp.MD5(this=exp.cast(exp.column(_SAMPLED, quoted=True), text))
        sample = exp.select("*").from_(rows).order_by(order).limit(cap)
        self.say(
            f"the training query has {total} rows: training on {cap} of them"
            f" (max_training_rows), the same {cap} on every run"
        )
        return sample.sql(dialect=self.engine.dialect), total

    def train_and_store(
        self,
        statement: CreateModel,
        table: pa.Table,
        validate: str,
        policy: lifecycle.DeployPolicy,
        options: Mapping[str, OptionValue],
        checkpoint: Callable[[], None],
        mark: dict[str, Any] | None = None,
        previous: incremental.State | incremental.Curve | More | None = None,
        comment: str | None = None,
        notes: dict[str, Any] | None = None,
        warm: ModelVersion | None = None,
        streamed: Streamed | None = None,
    ) -> Result:
        """Trains on ``table`` and stores the version as ``policy`` says (CREATE MODEL, and
        ALTER MODEL ... RETRAIN with the ``previous`` rows' statistics: sqlml/retrain.py)."""
        from sqlml.ml.train import train, unique_names  # lazy: scikit-learn, only to train

        unique_names(table.column_names)  # (42701 before the statistics read columns by name)
        warnings = validation.check(self, statement.model, table, validate)
        statistics = validation.describe(table, validation.label_of(options, table))

        result = train(
            options, table, statement.transform, self.say, checkpoint, previous, warm, streamed
        )
        statistics["label"] = result.label
        result = replace(
            result, statistics=statistics, data_warnings=warnings or None, watermark=mark
        )
        if notes:  # (what training_info records besides the training: a sample's origin)
            result = replace(result, training_info={**result.training_info, **notes})
        if validation.OPTION in statement.options:  # (recorded with the version)
            given = statement.options[validation.OPTION]
            result = replace(result, options={**result.options, validation.OPTION: given})
        checkpoint()  # the last one: after the store write the model is there
        # Inside a transaction (always so in the PostgreSQL server) the version is durable only
        # at its COMMIT, after this message has left: then the message says so.
        committed_here = not self.engine.in_transaction()
        with all_or_nothing(self.engine):  # the version, and the macro its views score with
            version = lifecycle.store_trained(
                self, statement, result, table, policy, options, comment
            )
            lifecycle.serving_changed(self, statement.model)
            serves = committed_here or self.store.current_version(statement.model) == version
        if committed_here:
            self.say(f"stored {statement.model} version {version}")
        else:  # (one that does not serve (deploy = 'manual' ...) said so already)
            self.say(
                f"wrote {statement.model} version {version}: it is stored"
                + (" and serves" if serves else "")
                + " once this transaction commits"
            )
        return Result(None, 0, "CREATE MODEL")

    def say(self, message: str) -> None:
        """A NOTICE to the client (the progress channel), if it listens."""
        if self.progress is not None:
            self.progress(message)

    # -- queries with ML calls -----------------------------------------------------------------

    def ml_query(
        self,
        query: MLQuery,
        key: _PlanKey | None = None,
        params: Sequence[Any] | None = None,
        wrap: tuple[str, str] = ("", ""),
    ) -> Result:
        """Runs a query with ML calls; ``wrap``: the text around it (EXPLAIN, DECLARE ...)."""
        rendering = _Rendering()
        try:
            plan = self._render(query, rendering, params, wrap)
            if rendering.registered or rendering.volatile:  # (computed now: not kept)
                sql, bound = placeholders.bound(plan.sql, params)
                return self._logged(plan, params, lambda: self.engine.execute(sql, bound))
        finally:
            for name in rendering.registered:
                self.engine.unregister_table(name)
        if key is not None:
            self._keep(key, plan)
        return self._execute(plan, params)

    def _render(
        self,
        query: MLQuery,
        rendering: _Rendering,
        params: Sequence[Any] | None,
        wrap: tuple[str, str] = ("", ""),
        view: bool = False,
    ) -> _Plan:
        # The token is taken before anything is read: a change made after it shows next time.
        token = self._keeper.token() if self._keeper is not None else None
        view = view or views.creates_view(query.template)
        replacements = [self._replacement(c, rendering, params, view) for c in query.calls]
        sql = wrap[0] + query.render(replacements, self.engine.dialect) + wrap[1]
        plan = _Plan(
            tuple(rendering.versions),
            query.calls,
            sql,
            tuple(rendering.inputs),
            tuple(rendering.probes),
            arity=max(placeholders.numbers(sql), default=0),
            preparable=not any(wrap) and isinstance(query.template, exp.Query),
            token=token,
            logs=tuple(rendering.logs) if not any(wrap) else (),
        )
        plan.check = self._check_query(plan)
        return plan

    def _replacement(
        self, call: MLCall, rendering: _Rendering, params: Sequence[Any] | None, view: bool
    ) -> exp.Expr:
        """``view``: the call is in CREATE VIEW, scored by the model's function (views.py)."""
        if isinstance(call, OverData):
            entry = functions.find(call.function)
            if entry is not None and entry.render_data is not None:  # (views too: plain SQL)
                given = call.inputs[0].sql  # (its columns are checked before a kept plan runs)
                columns = self.engine.schema_of(self._probe_sql(given))
                rendering.probes.append(self._probe_sql(given))
                rendering.inputs.append(columns)
                source = _parse_query(given, self.engine.dialect)
                return entry.render_data(columns, call.settings, source, self.engine.dialect)
            rendering.probes.append(None)
            rendering.inputs.append(None)
            rendering.volatile = True
            return self._over_data(call, view)
        version = self.store.load(call.model)
        if view and (version.pinned or version.trial is not None):  # (it follows the serving one)
            raise errors.FeatureNotSupported(
                "MODEL m VERSION n or a trial_id in a view is not supported: a view follows the"
                " serving version"
            )
        rendering.versions.append(version)
        rows = isinstance(call, Predict | OverRows) and call.input is not None
        probe = self._probe(call) if isinstance(call, Predict | OverRows) and rows else None
        schema = self.engine.schema_of(probe) if probe is not None else None
        rendering.probes.append(probe)
        rendering.inputs.append(schema)
        if isinstance(call, Predict) and not view and version.settings:
            assert schema is not None
            return self._served(version, call, schema, rendering)
        if isinstance(call, Predict):
            return self.predict_subquery(version, call, schema, view=view)
        if isinstance(call, Score):
            if view:
                return exp.paren(views.score(self.engine, version, call.qualifier))
            return self.score_expression(version, call)
        if isinstance(call, OverRows):
            return self._over_rows(version, call, schema, view, rendering)
        if isinstance(call, Inspect):
            if view:  # (its values are the version's now: a view would not see a new one)
                raise errors.FeatureNotSupported(
                    f"ML.{call.function} in a view is not supported: CREATE TABLE AS keeps it"
                )
            return functions.inspect(version, call, self.engine.dialect)
        if view:
            raise errors.FeatureNotSupported(
                "ML.EVALUATE in a view is not supported yet: CREATE TABLE AS keeps its row"
            )
        table = self.evaluate(version, call, params)
        name = f"__sqlml_evaluate_{next(_names)}"
        self.engine.register_table(name, table)
        rendering.registered.append(name)
        return exp.select("*").from_(exp.to_table(name, quoted=True)).subquery()

    def _served(
        self, version: ModelVersion, call: Predict, schema: pa.Schema, rendering: _Rendering
    ) -> exp.Expr:
        """ML.PREDICT of a model with serving settings: its traffic split (traffic.py), and
        what logs its sample and scores its shadow after the query (predlog.py)."""
        assert call.input is not None
        rows = _parse_query(call.input.sql, self.engine.dialect)
        logs, shadows = predlog.statements(self, version, call, schema, rows)
        rendering.logs.extend(logs)
        rendering.versions.extend(shadows)  # (the shadow's sha256 checked before each run too)
        if "traffic" not in version.settings:
            return self.predict_subquery(version, call, schema)
        split, others = traffic.routed(self, version, call, schema, rows)
        rendering.versions.extend(others)  # (their sha256 checked before each run too)
        return split

    def _over_rows(
        self,
        version: ModelVersion,
        call: OverRows,
        schema: pa.Schema | None,
        view: bool,
        rendering: _Rendering,
    ) -> exp.Expr:
        """A function computed over ML.PREDICT's rows, written into the engine's SQL by its
        entry (sqlml.functions): the rows never leave the engine."""
        entry = functions.find(call.function)
        if entry is None or entry.render is None:
            raise errors.InternalError(f"ML.{call.function} is not a registered rows function")
        if view:
            raise errors.FeatureNotSupported(
                f"ML.{call.function} in a view is not supported: CREATE TABLE AS keeps it"
            )
        scored = None
        if call.input is not None and schema is not None:
            given = call.input

            def subquery(threshold: float | None) -> exp.Expr:
                predict = Predict(call.model, given, threshold)
                return self.predict_subquery(version, predict, schema)

            rows = scoring.subquery(_parse_query(given.sql, self.engine.dialect), "__sqlml_input")
            scored = functions.Scored(schema.names, subquery, rows, schema)
        settings = call.settings
        extra = entry.prepare(self, version, settings) if entry.prepare is not None else None
        if extra:  # (what it registered may be gone by the next run: not kept)
            settings = {**settings, **extra}
            rendering.volatile = True
        return entry.render(version, settings, scored, self.engine.dialect)

    def _over_data(self, call: OverData, view: bool) -> exp.Expr:
        """A function of the inputs' rows (sqlml.functions.monitoring), computed now and
        joined in as a literal subquery."""
        entry = functions.find(call.function)
        if entry is None or entry.data is None or entry.columns is None:
            raise errors.InternalError(f"ML.{call.function} is not a registered data function")
        if view:
            raise errors.FeatureNotSupported(
                f"ML.{call.function} in a view is not supported: CREATE TABLE AS keeps it"
            )
        for query in call.inputs:  # (read here, before the statement runs: no values yet)
            if _parse_query(query.sql, self.engine.dialect).find(exp.Placeholder, exp.Parameter):
                raise errors.FeatureNotSupported(
                    f"parameters in the rows of ML.{call.function} are not supported",
                    hint="write the values into the query",
                )
        version = stored = None
        if call.model is not None:
            version = self.store.load(call.model)
            stored = self.store.statistics(version)
        sources = [query.sql for query in call.inputs]
        if entry.reads is not None:
            names = [self.engine.schema_of(sql).names for sql in sources]
            wanted = entry.reads(names, stored)
            sources = [self._columns_of(sql, c) for sql, c in zip(sources, wanted, strict=True)]
        tables = [self.engine.query_arrow(sql) for sql in sources]
        rows = entry.data(
            functions.DataArgs(
                tables,
                call.settings,
                version,
                stored,
                query=self.statement_rows,
                dialect=self.engine.dialect,
            )
        )
        columns = entry.columns(version, call.settings)  # type: ignore[arg-type]
        return literal.subquery(columns, rows, self.engine.dialect)

    def statement_rows(self, sql: str) -> pa.Table:
        """The rows of one statement of sqlml's SQL in the engine's own dialect, run on this
        session (also in a BigQuery-mode session): a data function's reads (ML.REPORT)."""
        saved = self.settings
        self.settings = replace(saved, dialect="")
        try:
            return result_rows(self.execute_one(sql))
        finally:
            self.settings = saved

    def _columns_of(self, sql: str, names: Sequence[str]) -> str:
        """SELECT the named columns FROM (sql): only they are read."""
        if not names:
            return sql
        dialect = self.engine.dialect
        inner = scoring.subquery(_parse_query(sql, dialect), "__sqlml_rows")
        columns = [exp.column(name, "__sqlml_rows", quoted=True) for name in names]
        return exp.select(*columns).from_(inner).sql(dialect=dialect)

    def _probe(self, call: Predict | OverRows) -> str:
        """The input query with NULL for each parameter marker: its columns without values."""
        assert call.input is not None
        return self._probe_sql(call.input.sql)

    def _probe_sql(self, sql: str) -> str:
        tree = _parse_query(sql, self.engine.dialect)
        markers = list(tree.find_all(exp.Placeholder, exp.Parameter))
        if not markers:
            return sql
        for marker in markers:
            marker.replace(exp.null())
        return tree.sql(dialect=self.engine.dialect)

    def predict_subquery(
        self,
        version: ModelVersion,
        call: Predict,
        schema: pa.Schema | None = None,
        *,
        view: bool = False,
        rows: exp.Expr | None = None,
    ) -> exp.Expr:
        """Three nested SELECTs over the input query, all aliased ``__sqlml_input`` so that the
        compiled expressions (written against that alias) read the right level:

        1. the input's columns plus the model's common subexpressions (compiled scoring; one
           SELECT per stage, each reading the ones below);
        2. the input's columns plus the raw outputs as hidden columns;
        3. the input's columns plus BigQuery ML's predicted columns, built from the raw outputs.

        Trees are assembled with copy=False: the compiled outputs are large and shared.
        ``schema``: the input's columns, when the caller has them already. ``view``: in
        CREATE VIEW, the raw outputs come from the model's function (views.py). ``rows``: the
        input query as a tree, in place of the call's (a traffic split's share: traffic.py).
        """
        if schema is None:
            schema = self.engine.schema_of(self._probe(call))
        scoring.check_input(version, schema)
        scoring.check_output_names(version, schema.names)
        mode = (
            "view"
            if view
            else scoring.choose_mode(version, call, self.settings.scoring, self.engine.dialect)
        )
        alias = "__sqlml_input"
        if rows is None:
            rows = _parse_query(call.input.sql, self.engine.dialect)
        source: exp.Expr = scoring.subquery(rows, alias)
        raw_refs: list[exp.Expr]
        if mode == "view" and views.predicts_by_function(version):
            return views.predict_view(self.engine, version, source, schema.names, call.threshold)
        if mode == "view" and views.predicts_by_raw(version, self.engine.dialect):
            return views.predict_raw_view(
                self.engine, version, source, schema.names, call.threshold
            )
        if mode == "view":
            hidden = [f"{scoring.HIDDEN}v"]
            hidden_values = [views.serving_value(self.engine, version, alias)]
            column = exp.column(hidden[0], quoted=True)
            raw_refs = views.raw_outputs(version, column, self.engine.dialect)
        elif mode == "runtime" and self.engine.dialect == "postgres":
            return scoring.batch_predict(
                version, source.this, schema.names, call.threshold, list(schema)
            )
        elif mode == "compiled":
            source, hidden_values = scoring.staged(
                version, source, alias, self.engine.dialect, self.fence
            )
            hidden = [f"{scoring.HIDDEN}{i}" for i in range(len(hidden_values))]
            raw_refs = [exp.column(h, quoted=True) for h in hidden]
        else:
            self.engine.register_scorer(
                version.sha256, version.onnx, version.inputs, scoring.raw_outputs(version)
            )
            hidden = [f"{scoring.HIDDEN}v"]
            hidden_values = [scoring.runtime_call(version, alias)]
            raw_refs = scoring.runtime_outputs(
                exp.column(hidden[0], quoted=True), scoring.width(version)
            )
        columns = [exp.column(n, table=alias, quoted=True) for n in schema.names]
        aliased = [
            exp.alias_(v, h, quoted=True, copy=False)
            for v, h in zip(hidden_values, hidden, strict=True)
        ]
        inner = exp.select(*columns, *aliased, copy=False).from_(source, copy=False)
        outer = exp.select(
            *(exp.column(n, quoted=True) for n in schema.names),
            *scoring.predicted_columns(version, raw_refs, call.threshold, self.engine.dialect),
            copy=False,
        ).from_(inner.subquery("__sqlml_scored", copy=False), copy=False)
        return outer.subquery(copy=False)

    def fence(self, level: exp.Select, number: int) -> exp.Select:
        """A stage of compiled scoring as a plan node of its own (scoring.kept_apart)."""
        return scoring.kept_apart(level, number) if self.engine.dialect == "postgres" else level

    def score_expression(self, version: ModelVersion, call: Score) -> exp.Expr:
        """One inline expression (no room for hoisted columns here): compiled, or indexes into
        one runtime UDF call per referenced output."""
        mode = scoring.choose_mode(version, None, self.settings.scoring, self.engine.dialect)
        if mode == "compiled":
            raw = scoring.compiled_outputs(version, call.qualifier, self.engine.dialect)
        elif self.engine.dialect == "postgres":
            raise errors.FeatureNotSupported(
                f"model {version.ref} cannot be compiled to SQL, and ML.SCORE on PostgreSQL"
                " scores compiled models only: use ML.PREDICT"
            )
        else:
            self.engine.register_scorer(
                version.sha256, version.onnx, version.inputs, scoring.raw_outputs(version)
            )
            runtime = scoring.runtime_call(version, call.qualifier)
            raw = scoring.runtime_outputs(runtime, scoring.width(version))
        return exp.paren(scoring.score_expression(version, raw))

    # -- ML.EVALUATE ---------------------------------------------------------------------------

    def evaluate(
        self, version: ModelVersion, call: Evaluate, params: Sequence[Any] | None = None
    ) -> pa.Table:
        """ML.EVALUATE's (or ML.COMPARE's) rows (sqlml/evaluation.py)."""
        return evaluation.evaluate(self, version, call, params)


def _kind(statement: Statement) -> str:
    names = {
        CreateModel: "CREATE MODEL",
        DropModel: "DROP MODEL",
        AlterModel: "ALTER MODEL",
        ExportModel: "EXPORT MODEL",
        ShowModels: "SHOW MODELS",
    }
    return names.get(type(statement), "this")


def _split_inputs(schema: pa.Schema, calls: int) -> tuple[pa.Schema | None, ...]:
    """The input columns of each call, from a check query's columns (see _check_query)."""
    groups: dict[int, list[pa.Field]] = {}
    current: list[pa.Field] | None = None
    for column in schema:
        suffix = column.name[len(_INPUT) :] if column.name.startswith(_INPUT) else ""
        if suffix.isdigit():
            current = groups.setdefault(int(suffix), [])
        elif current is not None:
            current.append(column)
    return tuple(pa.schema(groups[i]) if i in groups else None for i in range(calls))


def zero_rows(sql: str, dialect: str) -> str:
    """``SELECT * FROM (query) AS q LIMIT 0``: the query's columns without its rows."""
    query = exp.select("*").from_(scoring.subquery(_parse_query(sql, dialect), "q"))
    return query.limit(0).sql(dialect=dialect)


_SAMPLED = f"{scoring.HIDDEN}rows"  # (max_training_rows' sample: Session._sampled)


def _parse_query(sql: str, dialect: str) -> exp.Expr:
    """The input query as a tree, to nest it; parse errors carry a SQLSTATE."""
    try:
        return sqlglot.parse_one(sql, read=DIALECTS[dialect])
    except sqlglot.errors.SqlglotError as e:
        raise errors.SyntaxError(f"cannot parse the input query: {e}") from e
