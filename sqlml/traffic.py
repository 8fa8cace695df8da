"""Traffic splits: ``ALTER MODEL m SET TRAFFIC (VERSION a = 90, VERSION b = 10) [BY KEY col]``.

Theory of operation
-------------------
Traffic is split over ``BUCKETS`` buckets; the split stored in ``sqlml.model_settings`` says which
version owns which bucket ranges (``ranges``: ``[start, end, version]``). Each row of ML.PREDICT's
input gets a bucket, either from its key (``BY KEY``: the same key, the same bucket, on every call
and on both engines) or at random (no key: a split per row), and is scored by the version that owns
its bucket. ML.PREDICT then has one more column, ``model_version``, the version that scored the row.

- **One hash on both engines**, never the engine's own ``hash()`` (DuckDB's and PostgreSQL's differ,
  and may change between releases). An integer key ``k`` goes through three rounds of the
  Park-Miller generator: ``h = ((k mod p) + p) mod p``, then ``h = h * 48271 mod p`` three times
  (``p = 2^31 - 1``; every product fits a BIGINT), and the bucket is ``h mod BUCKETS``. Any other
  key is cast to text and its bucket is the first 32 bits of its MD5, ``mod BUCKETS``. Both are a
  few lines of SQL that DuckDB and PostgreSQL compute alike (tests/test_traffic.py checks both
  against Python's own arithmetic and hashlib). Integer and text keys hash alike everywhere; other
  types are hashed as their text, which the two engines write alike for dates and UUIDs, not
  always for floats and timestamps. A NULL key takes bucket 0.
- **Sticky and minimal**: a new split starts from the old one (or from the serving version owning
  every bucket); each version keeps the buckets it owned up to its new share, in order, and the
  buckets freed go to the versions that grow. So a key changes version only when the version it
  was on shrank, and the number of keys moved is the least any split could move.
- **One pass over the input**: below the scoring, each row gets its bucket and the version that
  owns it; every version's compiled stages and outputs (or its runtime scorer) are guarded by
  ``CASE WHEN owner = version THEN ... END``, which engines evaluate only for the rows that take
  the branch, and each predicted column picks the row's version's. So a split costs the bucket
  and the guards, never scoring a row twice nor reading the input twice. PostgreSQL's runtime
  scorer is a query shape of its own (scoring.batch_predict), which no CASE can guard: there
  each version scores its share and UNION ALL puts them together.

The split belongs to the version that serves: ``current_version`` must be one of its versions,
and a change of the serving version (DEPLOY, ROLLBACK, a CREATE MODEL that serves) ends it. The
functions other than ML.PREDICT (ML.EVALUATE, ML.SCORE, views over ML.PREDICT, PostgreSQL's
per-model functions) score with the serving version.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from sqlml import errors, scoring
from sqlml.grammar.statements import AlterModel, Compare, Evaluate, Predict
from sqlml.store import ModelVersion

if TYPE_CHECKING:
    from sqlml.engine import Session

BUCKETS = 10_000
PRIME = 2_147_483_647  # 2^31 - 1
MULTIPLIER = 48_271
ROUNDS = 3
COLUMN = "model_version"  # ML.PREDICT's column while a split is set
_BUCKET = f"{scoring.HIDDEN}bucket"
_ROUTED = f"{scoring.HIDDEN}routed"
_OWNER = f"{scoring.HIDDEN}owner"
_ROUTE = f"{scoring.HIDDEN}route"  # DuckDB: the routed runtime call's outputs (_routed_call)
_INPUT = f"{scoring.HIDDEN}input"  # the alias compiled expressions read (engine.predict_subquery)

Range = tuple[int, int, int]  # [start, end) of buckets, version


# -- SET TRAFFIC: checking and allocating --------------------------------------------------------


def units(statement: AlterModel, serving: int) -> dict[int, int]:
    """The weights as buckets per version: each a percentage, none negative, at most two
    decimals, together 100, every version once, the serving version among them (22023)."""
    if not statement.traffic:
        raise errors.InvalidParameterValue("SET TRAFFIC needs at least one VERSION n = weight")
    found: dict[int, int] = {}
    for version, weight in statement.traffic:
        if version in found:
            raise errors.InvalidParameterValue(f"version {version} is given twice in SET TRAFFIC")
        share = weight * BUCKETS / 100
        if weight < 0 or abs(share - round(share)) > 1e-6:
            raise errors.InvalidParameterValue(
                f"traffic weight {weight:g} of version {version} is not a percentage between 0"
                " and 100 with at most two decimals"
            )
        found[version] = round(share)
    total = sum(found.values())
    if total != BUCKETS:
        raise errors.InvalidParameterValue(
            f"traffic weights must add up to 100, not {total * 100 / BUCKETS:g}"
        )
    if serving not in found:
        raise errors.InvalidParameterValue(
            f"version {serving} serves, so SET TRAFFIC must give it a weight (0 is allowed)",
            hint="to move all traffic to another version, ALTER MODEL ... DEPLOY VERSION n",
        )
    return found


def allocate(
    previous: Sequence[Sequence[int]] | None, serving: int, wanted: dict[int, int]
) -> list[Range]:
    """Bucket ranges per version for the ``wanted`` counts, moving as few buckets as possible
    from ``previous`` (None: the serving version owns every bucket)."""
    owner: list[int | None] = [serving] * BUCKETS
    for start, end, version in previous or ():
        owner[start:end] = [version] * (end - start)
    have = Counter(owner)
    for bucket in reversed(range(BUCKETS)):  # each keeps its first buckets, up to its share
        held = owner[bucket]
        if held is not None and have[held] > wanted.get(held, 0):
            owner[bucket] = None
            have[held] -= 1
    free = iter(b for b in range(BUCKETS) if owner[b] is None)
    for version in sorted(wanted):
        for _ in range(wanted[version] - have[version]):
            owner[next(free)] = version
    ranges: list[Range] = []
    for bucket, held in enumerate(owner):
        assert held is not None
        if ranges and ranges[-1][2] == held and ranges[-1][1] == bucket:
            ranges[-1] = (ranges[-1][0], bucket + 1, held)
        else:
            ranges.append((bucket, bucket + 1, held))
    return ranges


def check_compatible(serving: ModelVersion, other: ModelVersion) -> None:
    """Versions that serve side by side must take the same columns and give the same ones
    (42804): one query feeds both, and their rows are one result."""
    problem = None
    if serving.kind != other.kind:
        problem = (
            f"it is a {other.model_type} model, version {serving.version} a {serving.model_type}"
        )
    elif {(c.name, c.kind) for c in serving.inputs} != {(c.name, c.kind) for c in other.inputs}:
        problem = "it takes other input columns"
    elif scoring.output_names(serving) != scoring.output_names(other):
        problem = "it gives other output columns"
    elif (serving.label or {}).get("type") != (other.label or {}).get("type"):
        problem = "its label has another type"
    if problem is not None:
        raise errors.DatatypeMismatch(
            f"version {other.version} of model {serving.ref} cannot serve beside version"
            f" {serving.version}: {problem}",
            hint="CREATE OR REPLACE MODEL with deploy = 'always' serves a new schema",
        )


def check_shadow(serving: ModelVersion, shadow: ModelVersion) -> None:
    """A shadow scores the rows the serving version scores and is logged beside it, never
    returned (42804 otherwise): the same kind of model and label, and input columns the serving
    version takes too (other outputs, another model type of the kind, fewer inputs: fine)."""
    problem = None
    served = {(c.name, c.kind) for c in serving.inputs}
    if serving.kind != shadow.kind:
        problem = (
            f"it is a {shadow.model_type} model, version {serving.version} a {serving.model_type}"
        )
    elif not {(c.name, c.kind) for c in shadow.inputs} <= served:
        problem = f"it takes input columns version {serving.version} does not take"
    elif (serving.label or {}).get("type") != (shadow.label or {}).get("type"):
        problem = "its label has another type"
    if problem is not None:
        raise errors.DatatypeMismatch(
            f"version {shadow.version} of model {serving.ref} cannot shadow version"
            f" {serving.version}: {problem}"
        )


# -- ML.PREDICT over a split ---------------------------------------------------------------------


def bucket_expression(key: exp.Expr | None, key_type: pa.DataType | None, dialect: str) -> exp.Expr:
    """The bucket of a row: from its key (None: at random)."""
    buckets = exp.Literal.number(BUCKETS)
    if key is None:
        random = exp.Floor(this=exp.Mul(this=random_value(dialect), expression=buckets))
        return exp.cast(random, exp.DataType.build("BIGINT"))
    return exp.Mod(this=exp.paren(hash_value(key, key_type, dialect)), expression=buckets)


def random_value(dialect: str) -> exp.Expr:
    """A uniform draw in [0, 1) per row; on PostgreSQL the extension's parallel-safe random()
    (sql/postgres/functions.sql says why)."""
    if dialect == "postgres":
        return exp.Dot(this=exp.to_identifier("sqlml"), expression=exp.Anonymous(this="random"))
    return exp.Rand()


def hash_value(key: exp.Expr, key_type: pa.DataType | None, dialect: str) -> exp.Expr:
    """The key's hash ``h`` (a non-negative BIGINT), whose ``h % BUCKETS`` is its bucket (and
    ``(h // BUCKETS) % BUCKETS`` its prediction log bucket: predlog.py)."""
    if key_type is not None and pa.types.is_integer(key_type):
        prime = exp.Literal.number(PRIME)
        value: exp.Expr = exp.cast(key, exp.DataType.build("BIGINT"))
        value = exp.Mod(
            this=exp.paren(
                exp.Add(this=exp.Mod(this=value, expression=prime), expression=prime.copy())
            ),
            expression=prime.copy(),
        )
        # the three rounds as one product: h * 48271^3 mod p, the same number (each product of
        # two numbers below 2^31 fits a BIGINT), with one multiplication and modulo in place
        # of three (7 ms instead of 14 per 1M rows in DuckDB)
        multiplier = exp.Literal.number(pow(MULTIPLIER, ROUNDS, PRIME))
        return exp.Mod(
            this=exp.Mul(this=exp.paren(value), expression=multiplier), expression=prime.copy()
        )
    text = exp.cast(key, exp.DataType.build("VARCHAR" if dialect == "duckdb" else "TEXT"))
    digits = exp.Substring(
        this=exp.MD5(this=text), start=exp.Literal.number(1), length=exp.Literal.number(8)
    )
    if dialect == "duckdb":
        hexed = exp.DPipe(this=exp.Literal.string("0x"), expression=digits)
        return exp.cast(hexed, exp.DataType.build("UBIGINT", dialect="duckdb"))
    hexed = exp.DPipe(this=exp.Literal.string("x"), expression=digits)
    bits = exp.cast(hexed, exp.DataType.build("BIT(32)", dialect="postgres"))
    return exp.cast(bits, exp.DataType.build("BIGINT"))


def _owner(ranges: Sequence[Sequence[int]]) -> exp.Expr:
    """The version that owns a row's bucket (reading ``__sqlml_bucket``)."""
    case = exp.Case()
    for number in sorted({r[2] for r in ranges}):
        case = case.when(_owned(ranges, number, None), exp.Literal.number(number), copy=False)
    return case


def _looked_up(ranges: Sequence[Sequence[int]], bucket: exp.Expr) -> exp.Expr:
    """PostgreSQL: the version that owns the bucket the expression ``bucket`` gives, in one
    expression that computes ``bucket`` once:
    ``(ARRAY[versions])[width_bucket(bucket, ARRAY[starts])]`` (the ranges are in order and
    cover every bucket). So the bucket and its owner are one plan level: each level of a
    PostgreSQL plan copies every column of the row, and the owner's own level cost a 50/50
    split of a logistic model a fifth of its time (EXPLAIN ANALYZE, 1M rows)."""
    ordered = sorted(ranges, key=lambda r: r[0])
    starts = exp.Array(expressions=[exp.Literal.number(r[0]) for r in ordered])
    versions = exp.Array(expressions=[exp.Literal.number(r[2]) for r in ordered])
    index = exp.Anonymous(this="width_bucket", expressions=[bucket, starts])
    owner = exp.Bracket(this=exp.paren(versions), expressions=[index])
    return exp.alias_(owner, _OWNER, quoted=True)


def _owned(ranges: Sequence[Sequence[int]], version: int, qualifier: str | None) -> exp.Expr:
    """Whether a row's bucket is one of ``version``'s."""
    bucket = exp.column(_BUCKET, table=qualifier, quoted=True)
    conditions: list[exp.Expr] = [
        exp.and_(
            bucket.copy() >= exp.Literal.number(start),
            bucket.copy() < exp.Literal.number(end),
        )
        for start, end, owner in ranges
        if owner == version
    ]
    return exp.paren(exp.or_(*conditions))


def key_field(schema: pa.Schema, key: str, logged: bool = False) -> pa.Field:
    """The input column named by BY KEY (names compare case-insensitively), or by the option
    prediction_log_key (``logged``): 42703 when none."""
    exact = [f for f in schema if f.name == key]
    found = exact or [f for f in schema if f.name.lower() == key.lower()]
    if not found and logged:
        raise errors.UndefinedColumn(
            f'the prediction log of this model samples by key "{key}" (prediction_log_key),'
            " which the input of ML.PREDICT does not have",
            hint="select the key column in the input query, or ALTER MODEL ... SET OPTIONS"
            " (prediction_log_key = NULL)",
        )
    if not found:
        raise errors.UndefinedColumn(
            f'the traffic split of this model is by key "{key}", which the input of ML.PREDICT'
            " does not have",
            hint="select the key column in the input query, or ALTER MODEL ... SET TRAFFIC"
            " without BY KEY",
        )
    return found[0]


def routed(
    session: Session,
    serving: ModelVersion,
    call: Predict,
    schema: pa.Schema,
    rows: exp.Expr,
) -> tuple[exp.Expr, list[ModelVersion]]:
    """ML.PREDICT over the split: the subquery, and the other versions it scores with (for the
    kept plan's check). ``rows``: the input query as a tree."""
    traffic: dict[str, Any] = serving.settings["traffic"]
    ranges: list[list[int]] = traffic["ranges"]
    if any(name.lower() == COLUMN for name in schema.names):
        raise errors.DuplicateColumn(
            f'the input of ML.PREDICT has a column "{COLUMN}", which ML.PREDICT adds while the'
            " model's traffic is split",
        )
    dialect = session.engine.dialect
    shares: list[tuple[int, ModelVersion, str]] = []
    for number in sorted({r[2] for r in ranges}):
        version = serving if number == serving.version else session.store.load(serving.ref, number)
        scoring.check_input(version, schema)
        scoring.check_output_names(version, schema.names)
        mode = scoring.choose_mode(version, call, session.settings.scoring, dialect)
        shares.append((number, version, mode))
    others = [v for _, v, _ in shares if v is not serving]
    bucketed = _bucketed(rows, schema, traffic.get("key"), dialect)
    if dialect == "postgres" and any(mode == "runtime" for _, _, mode in shares):
        return _union(
            session, call, schema, bucketed, ranges, shares, random=not traffic.get("key")
        ), others
    return _one_pass(session, call, schema, bucketed, ranges, shares), others


def _bucketed(rows: exp.Expr, schema: pa.Schema, key: str | None, dialect: str) -> exp.Select:
    """The input rows with their bucket beside them (column ``__sqlml_bucket``)."""
    alias = _INPUT
    bucket: exp.Expr
    if key is not None:
        field = key_field(schema, key)
        column = exp.column(field.name, table=alias, quoted=True)
        bucket = exp.func(
            "coalesce", bucket_expression(column, field.type, dialect), exp.Literal.number(0)
        )
    else:
        bucket = bucket_expression(None, None, dialect)
    star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
    return exp.select(star, exp.alias_(bucket, _BUCKET, quoted=True)).from_(
        scoring.subquery(rows, alias)
    )


def _one_pass(
    session: Session,
    call: Predict,
    schema: pa.Schema,
    bucketed: exp.Select,
    ranges: list[list[int]],
    shares: list[tuple[int, ModelVersion, str]],
) -> exp.Expr:
    """Every version's expressions in one pass over the rows, each guarded by ``CASE WHEN <the
    row's bucket is the version's> THEN ... END``: compiled stages and outputs, or the runtime
    scorer, are computed only for the rows of their version (engines evaluate a CASE branch
    only for the rows that take it), and the predicted columns pick the row's version's.
    No union and no second read: the split runs as one pipeline, as one version does."""
    dialect = session.engine.dialect
    alias = _INPUT
    fence = session.fence
    # the owner of each row's bucket, once: every guard then compares one integer. Fenced:
    # PostgreSQL would otherwise pull the level up and compute the hash in every guard.
    star = exp.Column(this=exp.Star(), table=exp.to_identifier(alias, quoted=True))
    if dialect == "postgres":  # (the bucket and its owner in one level: _looked_up says why)
        bucket = bucketed.selects[-1].unalias().copy()
        owners = bucketed.copy()
        owners.set("expressions", [*bucketed.expressions[:-1], _looked_up(ranges, bucket)])
        source: exp.Expr = scoring.subquery(fence(owners, 1), alias)
    else:
        hashed = scoring.subquery(fence(bucketed, 0), alias)
        owners = exp.select(star, exp.alias_(_owner(ranges), _OWNER, quoted=True)).from_(hashed)
        source = scoring.subquery(fence(owners, 1), alias)
    owner = exp.column(_OWNER, table=alias, quoted=True)
    hidden: list[exp.Expr] = []
    predicted: list[tuple[exp.Expr, list[exp.Expr]]] = []  # (owned, the version's columns)
    compiled = [
        scoring.Staging(
            version,
            prefix=f"{scoring.HIDDEN}v{number}_c",
            guard=functools.partial(_when, owner.copy().eq(exp.Literal.number(number))),
        )
        for number, version, mode in shares
        if mode == "compiled"
    ]  # (each stage of every compiled version in one level: as deep as the deepest)
    source, raws = scoring.staged_together(compiled, source, alias, dialect, fence, first=2)
    staged = dict(zip((part.version.version for part in compiled), raws, strict=True))
    runtime = [(number, version) for number, version, mode in shares if mode == "runtime"]
    for _, version in runtime:
        session.engine.register_scorer(
            version.sha256, version.onnx, version.inputs, scoring.raw_outputs(version)
        )
    routed = dialect == "duckdb" and len(runtime) > 1
    if routed:  # (one call of the runtime UDF for all of them: _routed_call says why)
        hidden.append(exp.alias_(_routed_call(runtime, owner, alias), _ROUTE, quoted=True))
    for number, version, mode in shares:
        owned = owner.copy().eq(exp.Literal.number(number))
        prefix = f"{scoring.HIDDEN}v{number}_"
        if mode == "compiled":
            raw = staged[number]
            names = [f"{prefix}{k}" for k in range(len(raw))]
            refs: list[exp.Expr] = [exp.column(n, quoted=True) for n in names]
        elif routed:
            raw, names = [], []
            refs = scoring.runtime_outputs(exp.column(_ROUTE, quoted=True), scoring.width(version))
        else:
            raw = [scoring.runtime_call(version, alias)]
            names = [f"{prefix}r"]
            refs = scoring.runtime_outputs(
                exp.column(names[0], quoted=True), scoring.width(version)
            )
        hidden += [
            exp.alias_(_when(owned, value), name, quoted=True, copy=False)
            for name, value in zip(names, raw, strict=True)
        ]
        columns = scoring.predicted_columns(version, refs, call.threshold, dialect)
        mine = exp.column(_OWNER, quoted=True).eq(exp.Literal.number(number))
        predicted.append((mine, columns))
    inputs = [exp.column(n, table=alias, quoted=True) for n in schema.names]
    inner = exp.select(*inputs, owner, *hidden, copy=False).from_(source, copy=False)
    picked = []
    for k, first in enumerate(predicted[0][1]):
        case = exp.Case()
        for theirs, columns in predicted:
            case = case.when(theirs.copy(), columns[k].unalias(), copy=False)
        picked.append(exp.alias_(case, first.alias_or_name, quoted=True, copy=False))
    outer = exp.select(
        *(exp.column(n, quoted=True) for n in schema.names),
        *picked,
        exp.alias_(exp.column(_OWNER, quoted=True), COLUMN, quoted=True),
        copy=False,
    ).from_(inner.subquery(f"{scoring.HIDDEN}scored", copy=False), copy=False)
    return outer.subquery(copy=False)


def _routed_call(
    runtime: list[tuple[int, ModelVersion]], owner: exp.Expr, qualifier: str
) -> exp.Expr:
    """DuckDB: one call of the runtime UDF that scores each row with its owner's graph
    (udfs/duckdb_udfs.py, routes), in place of one call per version under ``CASE WHEN owner =
    n``. DuckDB calls a UDF once per vector, and under a CASE once per version on its part of
    the vector: the call, not the graph, is most of the cost (a 50/50 split of a 30-tree model
    cost 1.8x one version), so a split of runtime-scored versions makes as many calls as one
    version. The features are each version's inputs, each expression once."""
    from sqlml.engines.duckdb import route_key  # (DuckDB only)

    features: dict[str, exp.Expr] = {}
    members: dict[int, tuple[str, Sequence[int]]] = {}
    for number, version in runtime:
        positions = []
        for column in version.inputs:
            value = scoring.input_expression(column, qualifier, runtime=True)
            text = value.sql(dialect="duckdb")
            if text not in features:
                features[text] = value
            positions.append(list(features).index(text))
        members[number] = (version.sha256, positions)
    key = exp.Literal.string(route_key(members))
    return exp.Anonymous(this=scoring.UDF, expressions=[key, owner.copy(), *features.values()])


def _when(condition: exp.Expr, value: exp.Expr) -> exp.Expr:
    return exp.Case().when(condition.copy(), value, copy=False)


def _union(
    session: Session,
    call: Predict,
    schema: pa.Schema,
    bucketed: exp.Select,
    ranges: list[list[int]],
    shares: list[tuple[int, ModelVersion, str]],
    random: bool,
) -> exp.Expr:
    """Each version's ML.PREDICT over its share of the rows, put together with UNION ALL: for
    PostgreSQL's runtime scoring, a query shape of its own (scoring.batch_predict) that a CASE
    cannot guard. The bucketed rows are a common table expression, materialized when the
    buckets are random (drawn once per row)."""
    branches: list[exp.Select] = []
    for number, version, _ in shares:
        mine = (
            exp.select(*(exp.column(n, quoted=True) for n in schema.names))
            .from_(exp.to_table(_ROUTED, quoted=True))
            .where(_owned(ranges, number, None))
        )
        scored = session.predict_subquery(version, call, schema, rows=mine)
        assert isinstance(scored, exp.Subquery)
        branch = exp.select(
            exp.Star(), exp.alias_(exp.Literal.number(number), COLUMN, quoted=True)
        ).from_(scoring.subquery(scored.this, f"{scoring.HIDDEN}v{number}"))
        branches.append(branch)
    union: exp.Query = branches[0]
    for branch in branches[1:]:
        union = exp.union(union, branch, distinct=False)
    query = exp.select(exp.Star()).from_(union.subquery(f"{scoring.HIDDEN}split"))
    return query.with_(_ROUTED, as_=bucketed, materialized=random).subquery()


# -- ML.COMPARE ----------------------------------------------------------------------------------


def compare(
    session: Session, serving: ModelVersion, call: Compare, params: Sequence[Any] | None = None
) -> pa.Table:
    """ML.COMPARE: ML.EVALUATE of each version that serves, and of the shadow, on the same
    rows, one row each (functions/compare.py)."""
    if serving.pinned:
        raise errors.FeatureNotSupported(
            "ML.COMPARE compares the versions that serve: use ML.EVALUATE(MODEL m VERSION n,"
            " ...) for one version"
        )
    split = serving.settings.get("traffic", {})
    weights = {int(v): float(w) for v, w in split.get("weights", {}).items()}
    numbers = {serving.version: "serving"}
    numbers.update(
        (v, "traffic") for v, w in sorted(weights.items()) if w > 0 and v != serving.version
    )
    shadow = serving.settings.get("shadow")
    if shadow is not None:
        numbers[int(shadow["version"])] = "shadow"
    one = Evaluate(call.model, call.input, call.threshold, call.settings)
    tables = []
    for number, status in numbers.items():
        version = serving if number == serving.version else session.store.load(call.model, number)
        metrics = session.evaluate(version, one, params)
        head = {
            "version": pa.array([number], pa.int64()),
            "status": pa.array([status]),
            "traffic_weight": pa.array([weights.get(number)], pa.float64()),
        }
        tables.append(pa.table({**head, **{n: metrics.column(n) for n in metrics.column_names}}))
    return pa.concat_tables(tables)
