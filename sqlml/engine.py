"""The engine path: the one road every front door (DB-API, CLI, gateway, dbt) takes.

A script is split into statements; a statement that cannot be ML (no ``MODEL`` or ``ML.`` in it)
goes to the engine untouched, unparsed. An ML statement is parsed into a typed statement and run:
CREATE MODEL reads its query as Arrow, trains in the ML core and stores a version; ML.PREDICT and
ML.SCORE are rewritten into the engine's own SQL (compiled or runtime scoring); ML.EVALUATE is
computed from the model's outputs and joined into the query as a registered Arrow table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
import sqlglot.errors
from sqlglot import exp

from sqlml import errors, grammar, scoring
from sqlml.engines import open_engine
from sqlml.engines.base import Engine, InServer, Result
from sqlml.grammar.statements import (
    CreateModel,
    DropModel,
    Evaluate,
    MLQuery,
    Passthrough,
    Predict,
    Score,
    ShowModels,
    Statement,
)
from sqlml.ml import metrics, models
from sqlml.ml.score import scorer
from sqlml.ml.train import train
from sqlml.store import ModelVersion, Store

Progress = Callable[[str], None]
# Rendered ML queries kept per session, by statement text: rendering a compiled model's SQL costs
# ~20 ms, a check that the models still serve the same versions ~1 ms.
PLAN_CACHE_SIZE = 64
_names = itertools.count(1)


@dataclass(frozen=True)
class Settings:
    """Session settings; they enter at the edge (connect(), the CLI, the gateway)."""

    scoring: str = "auto"  # 'auto' (compiled where the graph allows) | 'compiled' | 'runtime'


@dataclass(frozen=True)
class _Plan:
    """An ML query as rendered for the engine, with the model versions it was rendered for."""

    versions: tuple[ModelVersion, ...]
    calls: tuple[Predict | Evaluate | Score, ...]
    sql: str

    @property
    def shas(self) -> tuple[str, ...]:
        return tuple(v.sha256 for v in self.versions)


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
        self._plans: dict[tuple[str, str, str], _Plan] = {}
        # Before any transaction: a rolled-back one must not take the store tables away.
        self.store.ensure()
        self.progress = progress
        # PostgreSQL: CREATE MODEL, DROP MODEL and ML.EVALUATE on rows run inside the server.
        self.server: InServer | None = engine if isinstance(engine, InServer) else None
        if self.server is not None:
            self.server.progress = self._say

    @classmethod
    def open(cls, database: str, settings: Settings | None = None) -> Session:
        return cls(open_engine(database), settings)

    def execute_script(self, script: str, params: Sequence[Any] | None = None) -> Iterator[Result]:
        """Each statement's result, in order; parameters go with a single statement only."""
        statements = grammar.split_script(script)
        if params and len(statements) > 1:
            raise errors.ProgrammingError("parameters can be used with one statement only")
        for text in statements:
            yield self.execute_one(text, params)

    def execute_one(self, sql: str, params: Sequence[Any] | None = None) -> Result:
        if not grammar.may_be_ml(sql):
            return self.engine.execute(sql, params)
        key = (sql, self.engine.dialect, self.settings.scoring)
        plan = self._plans.get(key)
        if plan is not None and not params:
            result = self._run_plan(plan)
            if result is not None:
                return result
        statement = grammar.parse(sql, self.engine.dialect)
        if self.server is not None and isinstance(statement, CreateModel | DropModel):
            if params:
                raise errors.FeatureNotSupported("parameters are not supported in ML statements")
            return self.server.run_in_server(sql)
        if isinstance(statement, MLQuery) and not params:
            return self.ml_query(statement, key)
        return self.run(statement, params)

    def _run_plan(self, plan: _Plan) -> Result | None:
        """Runs a rendered ML query again, if every model still serves the same version."""
        if tuple(self.store.current_sha(v.ref) for v in plan.versions) != plan.shas:
            return None
        for version, call in zip(plan.versions, plan.calls, strict=True):
            if isinstance(call, Predict):  # the input may have changed since: check it again
                scoring.check_input(version, self.engine.schema_of(call.input.sql))
            self.engine.register_scorer(version.sha256, version.onnx, version.inputs)
        return self.engine.execute(plan.sql)

    def run(self, statement: Statement, params: Sequence[Any] | None = None) -> Result:
        if isinstance(statement, Passthrough):
            return self.engine.execute(statement.sql, params)
        if params:
            raise errors.FeatureNotSupported("parameters are not supported in ML statements yet")
        if isinstance(statement, CreateModel):
            return self.create_model(statement)
        if isinstance(statement, DropModel):
            dropped = self.store.drop(statement.model, statement.if_exists)
            return Result(None, 1 if dropped else 0, "DROP MODEL")
        if isinstance(statement, ShowModels):
            table = self.store.list(statement.schema)
            return Result(table, table.num_rows, f"SELECT {table.num_rows}")
        return self.ml_query(statement)

    # -- CREATE MODEL --------------------------------------------------------------------------

    def create_model(self, statement: CreateModel) -> Result:
        if statement.query is None:
            raise errors.FeatureNotSupported(
                "CREATE MODEL without AS query (ONNX import) is not supported yet"
            )
        exists = self.store.current_version(statement.model) is not None
        if exists and statement.if_not_exists:
            return Result(None, 0, "CREATE MODEL")
        if exists and not statement.replace:
            raise errors.DuplicateModel(f'model "{statement.model}" already exists')
        # Checked here as well as in train(): a bad option fails before the rows are read.
        models.get(statement.options.get("model_type")).resolve_options(dict(statement.options))
        self._say(f"reading the training rows of {statement.model}")
        table = self.engine.query_arrow(statement.query.sql)
        result = train(statement.options, table, statement.transform, self._say)
        version = self.store.save(
            statement.model,
            result,
            query_sql=statement.query.sql,
            transform_sql=statement.transform_sql,
            replace=statement.replace or statement.if_not_exists,
        )
        self._say(f"stored {statement.model} version {version}")
        return Result(None, 0, "CREATE MODEL")

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(message)

    # -- queries with ML calls -----------------------------------------------------------------

    def ml_query(self, query: MLQuery, key: tuple[str, str, str] | None = None) -> Result:
        registered: list[str] = []
        versions: list[ModelVersion] = []
        try:
            replacements = [self._replacement(c, registered, versions) for c in query.calls]
            sql = query.render(replacements, self.engine.dialect)
            result = self.engine.execute(sql)
        finally:
            for name in registered:
                self.engine.unregister_table(name)
        if key is not None and not registered:  # ML.EVALUATE results are not kept
            self._keep(key, _Plan(tuple(versions), query.calls, sql))
        return result

    def _keep(self, key: tuple[str, str, str], plan: _Plan) -> None:
        self._plans[key] = plan
        while len(self._plans) > PLAN_CACHE_SIZE:
            self._plans.pop(next(iter(self._plans)))

    def _replacement(
        self,
        call: Predict | Evaluate | Score,
        registered: list[str],
        versions: list[ModelVersion],
    ) -> exp.Expr:
        version = self.store.load(call.model)
        versions.append(version)
        if isinstance(call, Predict):
            return self.predict_subquery(version, call)
        if isinstance(call, Score):
            return self.score_expression(version, call)
        table = self.evaluate(version, call)
        name = f"__sqlml_evaluate_{next(_names)}"
        self.engine.register_table(name, table)
        registered.append(name)
        return exp.select("*").from_(exp.to_table(name, quoted=True)).subquery()

    def predict_subquery(self, version: ModelVersion, call: Predict) -> exp.Expr:
        """Three nested SELECTs over the input query, all aliased ``__sqlml_input`` so that the
        compiled expressions (written against that alias) read the right level:

        1. the input's columns plus the model's common subexpressions (compiled scoring; one
           SELECT per stage, each reading the ones below);
        2. the input's columns plus the raw outputs as hidden columns;
        3. the input's columns plus BigQuery ML's predicted columns, built from the raw outputs.

        Trees are assembled with copy=False: the compiled outputs are large and shared.
        """
        schema = self.engine.schema_of(call.input.sql)
        scoring.check_input(version, schema)
        mode = scoring.choose_mode(version, call, self.settings.scoring)
        alias = "__sqlml_input"
        source: exp.Expr = _subquery(_parse_query(call.input.sql, self.engine.dialect), alias)
        if mode == "runtime" and self.engine.dialect == "postgres":
            return scoring.batch_predict(version, source.this, schema.names, call.threshold)
        if mode == "compiled":
            stages, hidden_values = scoring.compiled_stages(version, alias, self.engine.dialect)
            for stage in stages:
                shared = [exp.alias_(e, n, quoted=True, copy=False) for n, e in stage]
                star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
                level = exp.select(star, *shared, copy=False).from_(source, copy=False)
                if self.engine.dialect == "postgres":
                    # PostgreSQL pulls a plain subquery up into the query above, substituting
                    # its expressions at every use: the lifted subexpression would be computed
                    # as often as before. OFFSET 0 keeps the stage a plan node of its own (1M
                    # rows x 10 features, binary logistic: 1.6-1.8 s against 2.5-3.0 s), at the
                    # price of a parallel plan; the models' SQL functions keep that path.
                    level = level.offset(0, copy=False)
                source = _subquery(level, alias)
            hidden = [f"{scoring.HIDDEN}{i}" for i in range(len(hidden_values))]
            raw_refs: list[exp.Expr] = [exp.column(h, quoted=True) for h in hidden]
        else:
            self.engine.register_scorer(version.sha256, version.onnx, version.inputs)
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

    def score_expression(self, version: ModelVersion, call: Score) -> exp.Expr:
        """One inline expression (no room for hoisted columns here): compiled, or indexes into
        one runtime UDF call per referenced output."""
        mode = scoring.choose_mode(version, None, self.settings.scoring)
        if mode == "compiled":
            raw = scoring.compiled_outputs(version, call.qualifier, self.engine.dialect)
        elif self.engine.dialect == "postgres":
            raise errors.FeatureNotSupported(
                f"model {version.ref} cannot be compiled to SQL, and ML.SCORE on PostgreSQL"
                " scores compiled models only: use ML.PREDICT"
            )
        else:
            self.engine.register_scorer(version.sha256, version.onnx, version.inputs)
            runtime = scoring.runtime_call(version, call.qualifier)
            raw = scoring.runtime_outputs(runtime, scoring.width(version))
        return exp.paren(scoring.score_expression(version, raw))

    # -- ML.EVALUATE ---------------------------------------------------------------------------

    def evaluate(self, version: ModelVersion, call: Evaluate) -> pa.Table:
        if call.input is None and call.threshold is None:
            values = dict(version.metrics)
        elif call.input is None:
            raise errors.FeatureNotSupported(
                "ML.EVALUATE with a threshold needs the evaluation rows as its second argument"
            )
        else:
            values = self._evaluate_rows(version, call)
        return pa.table({k: pa.array([v], type=pa.float64()) for k, v in values.items()})

    def _evaluate_rows(self, version: ModelVersion, call: Evaluate) -> dict[str, float | None]:
        assert call.input is not None
        if self.server is not None:
            return self.server.evaluate_in_server(
                _model_name(version), call.input.sql, call.threshold
            )
        table = self.engine.query_arrow(call.input.sql)
        scoring.check_input(version, table.schema)
        run = scorer(version.onnx, version.inputs, key=version.sha256)
        outputs = run.run_table(_named(table, version))  # one run: k-means' 'features' included
        if version.kind == models.CLUSTERER:
            return metrics.clustering(outputs["features"], outputs["label"], outputs["distances"])
        label = version.label
        assert label is not None
        if label["name"] not in table.column_names:
            raise errors.UndefinedColumn(f'label column "{label["name"]}" is missing from the rows')
        y = table.column(label["name"])
        if version.kind == models.REGRESSOR:
            return _regression(y, outputs["value"])
        return _classification(y, label["classes"], outputs["probabilities"], call.threshold)


def _model_name(version: ModelVersion) -> str:
    """The model's name as SQL text (quoted identifiers), for the server's functions."""
    return exp.table_(version.name, db=version.schema, quoted=True).sql(dialect="postgres")


def _named(table: pa.Table, version: ModelVersion) -> pa.Table:
    """The input columns under the model's names (SQL matches names case-insensitively)."""
    lower = {n.lower(): n for n in table.column_names}
    columns = {}
    for column in version.inputs:
        found = column.name if column.name in table.column_names else lower[column.name.lower()]
        columns[column.name] = table.column(found)
    return pa.table(columns)


def _regression(y: pa.ChunkedArray, value: Any) -> dict[str, float | None]:
    keep = np.asarray(pc.is_valid(y).to_numpy(zero_copy_only=False), dtype=bool)
    truth = np.asarray(pc.cast(y, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    return metrics.regression(truth[keep], np.asarray(value).reshape(-1)[keep])


def _classification(
    y: pa.ChunkedArray, classes: list[Any], probs: Any, threshold: float | None
) -> dict[str, float | None]:
    index = pc.index_in(y, value_set=pa.array(classes, type=y.type))
    keep = np.asarray(pc.is_valid(index).to_numpy(zero_copy_only=False), dtype=bool)
    truth = np.asarray(pc.fill_null(index, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    cut = 0.5 if threshold is None else threshold
    return metrics.classification(truth[keep], np.asarray(probs)[keep], len(classes), cut)


def _subquery(query: exp.Expr, alias: str) -> exp.Subquery:
    return exp.Subquery(
        this=query, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


def zero_rows(sql: str, dialect: str) -> str:
    """``SELECT * FROM (query) AS q LIMIT 0``: the query's columns without its rows."""
    query = exp.select("*").from_(_subquery(_parse_query(sql, dialect), "q"))
    return query.limit(0).sql(dialect=dialect)


def _parse_query(sql: str, dialect: str) -> exp.Expr:
    """The input query as a tree, to nest it; parse errors carry a SQLSTATE."""
    try:
        return sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.SqlglotError as e:
        raise errors.SyntaxError(f"cannot parse the input query: {e}") from e
