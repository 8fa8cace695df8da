"""ML calls inside CREATE VIEW: scored by the version that serves when the view is queried.

Elsewhere ML.PREDICT and ML.SCORE are rendered with the serving version's graph inlined (compiled)
or its sha256 as a literal (runtime): right for a statement that runs now, wrong for a view,
whose SQL is stored and run later, after CREATE OR REPLACE MODEL may have trained a new version.
So in a view a call names a per-model function that the model store replaces with every new
version, and the view's SQL holds no version:

- DuckDB: the macro ``sqlml."<schema>.<model>"(inputs...)``, whose body is the list of the
  version's raw outputs compiled to SQL (scoring.py: ``[label, p0, p1, ...]``), for ML.SCORE and
  a regressor's ML.PREDICT; for ML.PREDICT of a classifier or k-means model the macro
  ``sqlml."<schema>.<model>#predict"``, a struct of the predicted label (``p``) and BigQuery's
  ARRAY<STRUCT> column (``r``) with the version's own labels, so that another number of classes
  never leaves the view with the old labels. DuckDB stores a view as SQL and binds it, macros
  expanded, at every query; the macros are created when a view first needs them and replaced
  by every CREATE [OR REPLACE] MODEL of the model (engine.py).
- PostgreSQL: functions in schema sqlml that every CREATE [OR REPLACE] MODEL replaces in place
  (same arguments and return type: a view keeps its reference; postgres/server.py publishes
  them). ML.SCORE, and ML.PREDICT of a regressor, call the scoring function
  ``sqlml.scoring_function_name(schema, model)``, which returns ML.SCORE's value. ML.PREDICT of
  a classifier or a k-means model calls the prediction function
  ``sqlml.predict_function_name(schema, model)``: it returns BigQuery ML's ARRAY<STRUCT> column
  (an array of sqlml.label_prob_<family> or sqlml.centroid_distance) with one more element in
  front, the predicted label or centroid id (its prob or distance NULL). The view takes
  ``p[1]`` and ``p[2:]`` apart, so the labels, their number and the clusters are the serving
  version's, never the ones of the version that served at CREATE VIEW. The function is called
  once per row from a LATERAL join; it returns SETOF (one row) so that PostgreSQL inlines its
  body, the model's common subexpressions computed once as in a plain ML.PREDICT (a scalar SQL
  function with a FROM clause is not inlined and ran 15x slower); a filter on the view's input
  columns still reaches the input. ML.PREDICT of a model with several raw outputs and no
  prediction of its own (pca, autoencoder, an imported graph) calls the prediction function
  too, which then returns the raw outputs as one ``double precision[]``; the view builds
  ML.PREDICT's columns from its elements as a plain query builds them from the raw outputs.

Which kinds predict through the prediction function (above: the built-in classifier and k-means
ones), its element type and how its head becomes the first column are the kind's
(ml/kinds.py ``ViewPrediction``); nothing here branches on the kind. Otherwise the raw outputs
are turned into BigQuery ML's columns exactly as for a plain query. A
model that cannot be compiled to SQL has no such function (0A000); ML.EVALUATE in a view is 0A000.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlglot import exp

from sqlml import errors, scoring
from sqlml.engines.base import Engine
from sqlml.ml import kinds
from sqlml.ml.predict_sql import element
from sqlml.store import ModelVersion

SCHEMA = "sqlml"
# PostgreSQL scoring functions' argument types, by feature kind (also postgres/server.py's)
PG_KIND_TYPES = {
    "numeric": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "string": "TEXT",
    "date": "DATE",
    "datetime": "TIMESTAMP",
    "time": "TIME",
    "timestamp": "TIMESTAMPTZ",
}


def creates_view(template: exp.Expr) -> bool:
    """Whether the statement is CREATE [OR REPLACE] [MATERIALIZED] VIEW."""
    return isinstance(template, exp.Create) and str(template.args.get("kind", "")).upper() == "VIEW"


def macro_name(schema: str, name: str) -> str:
    """The DuckDB macro's name in schema sqlml: ``schema.model``, or with a hash of the pair
    when the schema holds a '.' (``"a.b".c`` and ``a."b.c"`` must not share one)."""
    if "." not in schema and "#" not in schema + name:
        return f"{schema}.{name}"
    digest = hashlib.sha256(f"{len(schema)}:{schema}{name}".encode()).hexdigest()[:16]
    return f"{schema}.{name}#{digest}"


def _function(name: str, args: Sequence[exp.Expr]) -> exp.Expr:
    """``sqlml."name"(args)`` (exp.Anonymous writes the quoted name as given)."""
    quoted = exp.to_identifier(name, quoted=True)
    return exp.Dot(
        this=exp.to_identifier(SCHEMA),
        expression=exp.Anonymous(this=quoted, expressions=list(args)),
    )


def _check(version: ModelVersion, dialect: str = "duckdb") -> None:
    if any(c.path for c in version.inputs):
        raise errors.FeatureNotSupported(
            f"model {version.ref} has STRUCT or ARRAY features, which a view over ML.PREDICT or"
            " ML.SCORE does not support yet: use ML.PREDICT in a query, or CREATE TABLE AS"
        )
    if not scoring.compilable(version, dialect):
        raise errors.FeatureNotSupported(
            f"model {version.ref} cannot be compiled to SQL, and a view scores with the model's"
            " SQL function: use ML.PREDICT in a query, or CREATE TABLE AS"
        )


# -- DuckDB --------------------------------------------------------------------------------------


def duckdb_macro(version: ModelVersion) -> str:
    """CREATE OR REPLACE MACRO for the version: its raw outputs as one DOUBLE list."""
    outputs = scoring.compiled_outputs(version, None, "duckdb")
    body = exp.Array(
        expressions=[exp.cast(o.copy(), exp.DataType.build("DOUBLE")) for o in outputs]
    )
    names = [c.name for c in version.inputs]
    return _macro(macro_name(version.schema, version.name), names, body)


def duckdb_predict_macro(version: ModelVersion) -> str:
    """CREATE OR REPLACE MACRO for ML.PREDICT of a classifier or k-means model in a view: from
    the raw-outputs list ``v`` (the model's macro, computed once in the view's inner SELECT),
    ``{'p': <predicted label or centroid id>, 'r': <the ARRAY<STRUCT> column>}`` with the
    version's own labels and their number. (A body with the outputs inlined, computed twice,
    took 2x as long; one that calls the model's macro per index 10x.)"""
    value = exp.column("v", quoted=True)
    outputs = scoring.runtime_outputs(value, scoring.width(version))
    first, rest = (_unaliased(c) for c in scoring.predicted_columns(version, outputs, None))
    body = exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier("p"), expression=first),
            exp.PropertyEQ(this=exp.to_identifier("r"), expression=rest),
        ]
    )
    return _macro(predict_macro_name(version.schema, version.name), ["v"], body)


def predict_macro_name(schema: str, name: str) -> str:
    """``<macro_name>#predict``: never a macro_name (those have no '#' or end in hex digits)."""
    return f"{macro_name(schema, name)}#predict"


def _macro(name: str, parameters: Sequence[str], body: exp.Expr) -> str:
    target = exp.table_(exp.to_identifier(name, quoted=True), db=SCHEMA, quoted=True)
    params = ", ".join(exp.to_identifier(p, quoted=True).sql(dialect="duckdb") for p in parameters)
    # (sqlglot has no tree for CREATE MACRO: the parts are each quoted or generated by it)
    return (
        f"CREATE OR REPLACE MACRO {target.sql(dialect='duckdb')}({params}) AS {body.sql('duckdb')}"
    )


def publish_macro(engine: Engine, version: ModelVersion) -> None:
    """Creates or replaces the model's macros (a view is about to use them)."""
    _check(version)
    created = getattr(engine, "macro_created", None)  # (DuckDB's note for has_macro)
    if created is not None:
        created(macro_name(version.schema, version.name))
    engine.execute(duckdb_macro(version))
    if predicts_by_function(version):
        engine.execute(duckdb_predict_macro(version))
    else:
        _drop(engine, predict_macro_name(version.schema, version.name))


def has_macro(engine: Engine, schema: str, name: str) -> bool:
    """Whether a view made the model's macro. The catalog's list, duckdb_functions(), takes
    ~14 ms to read (DuckDB lists its thousands of built-in functions), so a DuckDB file's
    engine reads it once and keeps it (engines/duckdb.py ``macros``): every deploy and every
    CREATE MODEL asks this."""
    known = getattr(engine, "macros", None)
    names = known(lambda: _macro_names(engine)) if known is not None else None
    if names is not None:
        return macro_name(schema, name) in names
    return macro_name(schema, name) in _macro_names(engine)


def _macro_names(engine: Engine) -> frozenset[str]:
    query = (
        exp.select(exp.column("function_name"))
        .from_(exp.func("duckdb_functions"))
        .where(exp.column("schema_name").eq(exp.Literal.string(SCHEMA)))
        .where(exp.column("function_type").eq(exp.Literal.string("macro")))
    )
    table = engine.query_arrow(query.sql(dialect="duckdb"))
    return frozenset(str(n) for n in table.column(0).to_pylist())


def refresh_macro(engine: Engine, version: ModelVersion) -> None:
    """After a new version: the model's macro (if a view made one) scores with it; a version
    that cannot be compiled drops it, so a view over it fails (42883) rather than serve the
    older version."""
    if not has_macro(engine, version.schema, version.name):
        return
    if scoring.compilable(version):
        publish_macro(engine, version)
    else:
        drop_macro(engine, version.schema, version.name)


def drop_macro(engine: Engine, schema: str, name: str) -> None:
    _drop(engine, macro_name(schema, name))
    _drop(engine, predict_macro_name(schema, name))


def _drop(engine: Engine, macro: str) -> None:
    target = exp.table_(exp.to_identifier(macro, quoted=True), db=SCHEMA)
    engine.execute(f"DROP MACRO IF EXISTS {target.sql(dialect='duckdb')}")


# -- PostgreSQL ----------------------------------------------------------------------------------


def pg_function(engine: Engine, version: ModelVersion) -> str:
    """The model's scoring function's bare name in schema sqlml; 0A000 when it has none."""
    query = (
        exp.select(exp.column("function_name"))
        .from_(exp.table_("model_functions", db=SCHEMA))
        .where(exp.column("schema_name").eq(exp.Placeholder()))
        .where(exp.column("model_name").eq(exp.Placeholder()))
    )
    table = engine.query_arrow(query.sql(dialect="postgres"), [version.schema, version.name])
    found = table.column(0)[0].as_py() if table.num_rows else None
    if found is None:
        _check(version, engine.dialect)
        raise errors.FeatureNotSupported(
            f"model {version.ref} has no scoring function (more inputs than a PostgreSQL"
            " function takes), which a view needs: use CREATE TABLE AS"
        )
    return str(found)


# -- the calls -----------------------------------------------------------------------------------


def serving_value(engine: Engine, version: ModelVersion, qualifier: str | None) -> exp.Expr:
    """The per-model function's call on the row's features (``qualifier``: their table)."""
    _check(version, engine.dialect)
    if engine.dialect == "duckdb":
        publish_macro(engine, version)
        columns = [exp.column(c.name, table=qualifier, quoted=True) for c in version.inputs]
        return _function(macro_name(version.schema, version.name), columns)
    name = pg_function(engine, version)
    args: list[exp.Expr] = [
        exp.cast(
            exp.column(c.name, table=qualifier, quoted=True),
            exp.DataType.build(PG_KIND_TYPES[c.kind], dialect="postgres"),
        )
        for c in version.inputs
    ]
    return _function(name, args)


def raw_outputs(version: ModelVersion, value: exp.Expr, dialect: str) -> list[exp.Expr]:
    """The raw outputs (scoring.py's order) from the function's value ``value``: DuckDB's macro
    gives all of them; PostgreSQL's scoring function the one raw output of a kind that does not
    predict by function (a regressor's value; other kinds go through the prediction function,
    ``pg_predict``)."""
    if dialect == "duckdb":
        return scoring.runtime_outputs(value, scoring.width(version))
    if not predicts_by_function(version) and scoring.width(version) == 1:
        return [value]
    # (several raw outputs: predict_raw_view; a classifier or k-means model: predict_view)
    raise errors.InternalError(f"model {version.ref}: ML.PREDICT in a view uses pg_predict")


def score(engine: Engine, version: ModelVersion, qualifier: str | None) -> exp.Expr:
    """ML.SCORE in a view."""
    value = serving_value(engine, version, qualifier)
    if engine.dialect == "postgres":
        return value  # the scoring function's value is ML.SCORE's
    return scoring.score_expression(version, raw_outputs(version, value, "duckdb"))


# -- PostgreSQL: ML.PREDICT of classifiers and k-means models -------------------------------------

_INPUT = "__sqlml_input"
_VALUE = "__sqlml_v"


def _view_prediction(version: ModelVersion) -> kinds.ViewPrediction | None:
    return scoring.model_kind(version).view


def predicts_by_function(version: ModelVersion) -> bool:
    """Whether ML.PREDICT of the model in a view calls its prediction function (its kind
    says how: ml/kinds.py ViewPrediction)."""
    return _view_prediction(version) is not None


def pg_predict_element(version: ModelVersion) -> str:
    """The element type (in schema sqlml) of the prediction function's array."""
    view = _view_prediction(version)
    if view is None:
        raise errors.InternalError(f"model {version.ref} has no prediction function")
    return view.element(version)


def _subquery(query: exp.Expr, alias: str) -> exp.Subquery:
    return exp.Subquery(
        this=query, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))
    )


def _unaliased(column: exp.Expr) -> exp.Expr:
    """A predicted column's expression without its name (a subquery carries its alias)."""
    if isinstance(column, exp.Subquery):
        column = column.copy()
        column.set("alias", None)
        return column
    return column.this if isinstance(column, exp.Alias) else column


def _pg_scored(version: ModelVersion) -> tuple[exp.Subquery, list[exp.Expr]]:
    """A prediction function's inner query: the parameters as a one-row input, the model's
    common subexpressions one SELECT per stage (OFFSET 0 keeps each a plan node, as in a plain
    ML.PREDICT), then the raw outputs as hidden columns; with references to them."""
    columns = [exp.column(c.name, quoted=True) for c in version.inputs]
    given = _subquery(exp.select(*(exp.alias_(c, c.name, quoted=True) for c in columns)), _INPUT)
    source, raw = scoring.staged(version, given, _INPUT, "postgres", _offset_0)
    hidden = [f"{scoring.HIDDEN}{i}" for i in range(len(raw))]
    values = [exp.alias_(r, h, quoted=True, copy=False) for r, h in zip(raw, hidden, strict=True)]
    inner = exp.select(*values).from_(source)
    refs: list[exp.Expr] = [exp.column(h, quoted=True) for h in hidden]
    return _subquery(inner, "__sqlml_scored"), refs


def _offset_0(level: exp.Select, number: int) -> exp.Select:
    """A stage of a prediction function's body kept a plan node by OFFSET 0 (one row: no
    parallel plan to lose, unlike ML.PREDICT's fence, scoring.kept_apart)."""
    return level.offset(0, copy=False)


def pg_predict_body(version: ModelVersion) -> exp.Select:
    """The prediction function's body for a kind that predicts by function (classifiers,
    k-means): ``array_cat(ARRAY[(predicted, NULL)], <the ARRAY<STRUCT> column>)`` over the
    scored input (_pg_scored); for the other kinds with several raw outputs (pca, autoencoder,
    imported graphs) the raw outputs as one ``double precision[]`` (pg_raw_body)."""
    if not predicts_by_function(version):
        return pg_raw_body(version)
    scored, refs = _pg_scored(version)
    first, rest = (
        _unaliased(c) for c in scoring.predicted_columns(version, refs, None, "postgres")
    )
    udt = exp.DataType.build(f"sqlml.{pg_predict_element(version)}", dialect="postgres", udt=True)
    head = exp.cast(exp.Tuple(expressions=[first, exp.null()]), udt)
    value = exp.Anonymous(this="array_cat", expressions=[exp.Array(expressions=[head]), rest])
    return exp.select(value).from_(scored)


def pg_raw_body(version: ModelVersion) -> exp.Select:
    """``ARRAY[raw outputs as double precision]`` over the scored input: the view builds
    ML.PREDICT's columns from it exactly as a plain query builds them from the raw outputs."""
    scored, refs = _pg_scored(version)
    double = exp.DataType.build("DOUBLE PRECISION", dialect="postgres")
    return exp.select(exp.Array(expressions=[exp.cast(r, double) for r in refs])).from_(scored)


def pg_has_predict_function(version: ModelVersion) -> bool:
    """Whether PostgreSQL publishes a prediction function for the model: a kind that predicts
    by function, or one whose raw outputs are more than the scoring function's one value."""
    return predicts_by_function(version) or scoring.width(version) > 1


def pg_predict_returns(version: ModelVersion) -> str:
    """The prediction function's return type (SETOF it, one row)."""
    if predicts_by_function(version):
        return f"sqlml.{pg_predict_element(version)}[]"
    return "double precision[]"


def predicts_by_raw(version: ModelVersion, dialect: str) -> bool:
    """PostgreSQL, ML.PREDICT in a view of a kind with several raw outputs and no prediction of
    its own (pca, autoencoder, imported graphs): the raw outputs come from the prediction
    function's array (pg_raw_body), the columns are built from them (predict_raw_view)."""
    return (
        dialect == "postgres" and not predicts_by_function(version) and scoring.width(version) > 1
    )


def pg_predict_function(engine: Engine, version: ModelVersion) -> str:
    """The model's prediction function's bare name in schema sqlml; 0A000 when it has none."""
    name = exp.Anonymous(
        this="predict_function_name", expressions=[exp.Placeholder(), exp.Placeholder()]
    )
    query = (
        exp.select(exp.column("proname"))
        .from_(exp.table_("pg_proc", db="pg_catalog"))
        .where(
            exp.column("pronamespace").eq(
                exp.Anonymous(this="to_regnamespace", expressions=[exp.Literal.string(SCHEMA)])
            )
        )
        .where(exp.column("proname").eq(exp.Dot(this=exp.to_identifier(SCHEMA), expression=name)))
    )
    table = engine.query_arrow(query.sql(dialect="postgres"), [version.schema, version.name])
    if not table.num_rows:
        _check(version, engine.dialect)
        raise errors.FeatureNotSupported(
            f"model {version.ref} has no prediction function (more inputs than a PostgreSQL"
            " function takes), which a view needs: use CREATE TABLE AS"
        )
    return str(table.column(0)[0].as_py())


def _parts(value: exp.Expr, field: str, dialect: str) -> tuple[exp.Expr, exp.Expr]:
    """(the predicted label or centroid id, the ARRAY<STRUCT> column) from the function's
    value: PostgreSQL's array, ``p[1].field`` and ``p[2:]``; DuckDB's struct, ``p`` and ``r``."""
    if dialect == "duckdb":
        parts = [
            exp.Anonymous(this="struct_extract", expressions=[value.copy(), exp.Literal.string(f)])
            for f in ("p", "r")
        ]
        return parts[0], parts[1]
    rest = exp.Bracket(
        this=exp.paren(value.copy()), expressions=[exp.Slice(this=exp.Literal.number(2))], offset=1
    )
    return element(value, 1, field, dialect), rest


def _predicted(
    version: ModelVersion, value: exp.Expr, threshold: float | None, dialect: str
) -> tuple[exp.Expr, exp.Expr]:
    """The first ML.PREDICT column (the predicted label, the centroid id), in the type a plain
    ML.PREDICT gives it, and the ARRAY<STRUCT> column: the kind's head field of the first
    element, made into the column by the kind (a classifier casts it and applies the
    threshold)."""
    view = _view_prediction(version)
    assert view is not None
    first, rest = _parts(value, view.head_field, dialect)
    if view.head is not None:
        first = view.head(version, first, rest, threshold, dialect)
    return first, rest


def predict_view(
    engine: Engine,
    version: ModelVersion,
    source: exp.Expr,
    names: Sequence[str],
    threshold: float | None,
) -> exp.Expr:
    """ML.PREDICT in a view, for a classifier or a k-means model. PostgreSQL:
    ``(SELECT <input columns>, <predicted>, p[2:] FROM (input) AS __sqlml_input CROSS JOIN
    LATERAL sqlml."<prediction function>"(<features>) AS __sqlml_v(p))``; DuckDB: the
    prediction macro's struct as a column of a subquery, taken apart above it. ``source``:
    the input query as a subquery aliased ``__sqlml_input``."""
    columns = _view_columns(engine, version, names)
    dialect = engine.dialect
    args: list[exp.Expr]
    outputs = scoring.output_names(version)
    if dialect == "duckdb":
        publish_macro(engine, version)
        args = [exp.column(c.name, table=_INPUT, quoted=True) for c in version.inputs]
        raw = _function(macro_name(version.schema, version.name), args)
        inner = exp.select(*columns, exp.alias_(raw, _VALUE, quoted=True)).from_(source)
        shape = predict_macro_name(version.schema, version.name)
        value = _function(shape, [exp.column(_VALUE, quoted=True)])
        first, rest = _predicted(version, value, threshold, dialect)
        return (
            exp.select(
                *(exp.column(n, quoted=True) for n in names),
                exp.alias_(first, outputs[0], quoted=True),
                exp.alias_(rest, outputs[1], quoted=True),
            )
            .from_(_subquery(inner, "__sqlml_scored"))
            .subquery()
        )
    first, rest = _predicted(version, _pg_value(), threshold, dialect)
    predicted = [
        exp.alias_(first, outputs[0], quoted=True),
        exp.alias_(rest, outputs[1], quoted=True),
    ]
    return _pg_view(engine, version, source, columns, predicted)


def _view_columns(engine: Engine, version: ModelVersion, names: Sequence[str]) -> list[exp.Expr]:
    """The input's columns as ML.PREDICT in a view reads them, once the model is found
    usable in a view (_check)."""
    _check(version, engine.dialect)
    return [exp.column(n, table=_INPUT, quoted=True) for n in names]


def _pg_value() -> exp.Expr:
    """``__sqlml_v.p``: the prediction function's value (_pg_lateral)."""
    return exp.column("p", table=_VALUE, quoted=True)


def _pg_view(
    engine: Engine,
    version: ModelVersion,
    source: exp.Expr,
    columns: list[exp.Expr],
    predicted: list[exp.Expr],
) -> exp.Expr:
    """``(SELECT <columns>, <predicted> FROM source CROSS JOIN LATERAL <the function>)``."""
    select = exp.select(*columns, *predicted).from_(source)
    return select.join(exp.Join(this=_pg_lateral(engine, version), kind="CROSS")).subquery()


def _pg_lateral(engine: Engine, version: ModelVersion) -> exp.Lateral:
    """``LATERAL sqlml."<prediction function>"(<features>) AS __sqlml_v(p)``."""
    function = pg_predict_function(engine, version)
    args: list[exp.Expr] = [
        exp.cast(
            exp.column(c.name, table=_INPUT, quoted=True),
            exp.DataType.build(PG_KIND_TYPES[c.kind], dialect="postgres"),
        )
        for c in version.inputs
    ]
    return exp.Lateral(
        this=_function(function, args),
        alias=exp.TableAlias(
            this=exp.to_identifier(_VALUE, quoted=True), columns=[exp.to_identifier("p")]
        ),
    )


def predict_raw_view(
    engine: Engine,
    version: ModelVersion,
    source: exp.Expr,
    names: Sequence[str],
    threshold: float | None,
) -> exp.Expr:
    """ML.PREDICT in a view on PostgreSQL for a kind with several raw outputs (predicts_by_raw):
    ``(SELECT <input columns>, <ML.PREDICT's columns from p[1], p[2], ...> FROM (input) AS
    __sqlml_input CROSS JOIN LATERAL sqlml."<prediction function>"(<features>) AS
    __sqlml_v(p))``. The columns are the version's that served at CREATE VIEW (their number is
    the view's); a new version with as many raw outputs serves through the same function."""
    columns = _view_columns(engine, version, names)
    raw = scoring.runtime_outputs(_pg_value(), scoring.width(version))
    predicted = scoring.predicted_columns(version, raw, threshold, "postgres")
    return _pg_view(engine, version, source, columns, predicted)
