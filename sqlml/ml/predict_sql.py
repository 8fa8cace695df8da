"""The built-in kinds' scoring as SQL trees: ML.PREDICT's columns and ML.SCORE's value from a
version's *raw outputs* (see sqlml/scoring.py), per kind and dialect.

The kind entries in kinds.py point here; the engine never asks which kind a model is. Everything
is sqlglot trees (no engine, no store): a kind registered from outside builds its own columns the
same way, from the raw output expressions it is given.

BigQuery's ARRAY<STRUCT<...>> columns are lists of structs in DuckDB and arrays of the
extension's composite types in PostgreSQL (which has no anonymous struct type a table can store):
``sqlml.label_prob_<family>`` and ``sqlml.centroid_distance`` (engines/pgtypes.py COMPOSITES,
created by ``sqlml install``). They cost a third of jsonb arrays of objects to build (0.9 s
against 3.4 s per 1M rows here) and keep their SQL types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlglot import exp

if TYPE_CHECKING:
    from sqlml.ml.kinds import Version

PG_CENTROID_DISTANCE = "centroid_distance"

_SQL_TYPES = {
    "bool": "BOOLEAN",
    "int8": "TINYINT",
    "int16": "SMALLINT",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "uint8": "UTINYINT",
    "uint16": "USMALLINT",
    "uint32": "UINTEGER",
    "uint64": "UBIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "string": "VARCHAR",
    "large_string": "VARCHAR",
}


def double(value: float) -> exp.Expr:
    return exp.cast(exp.Literal.string(repr(float(value))), exp.DataType.build("DOUBLE"))


def label_literal(value: Any, label_type: str) -> exp.Expr:
    """A class label as a literal of its training column's type."""
    sql_type = _SQL_TYPES.get(label_type, "VARCHAR")
    if isinstance(value, bool):
        literal: exp.Expr = exp.Boolean(this=value)
    elif isinstance(value, int | float):
        literal = exp.Literal.string(repr(value))
    else:
        literal = exp.Literal.string(str(value))
    return exp.cast(literal, exp.DataType.build(sql_type, dialect="duckdb"))


def struct(**fields: exp.Expr) -> exp.Struct:
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(k), expression=v) for k, v in fields.items()
        ]
    )


def named(expression: exp.Expr, name: str) -> exp.Expr:
    """``expression AS "name"``: quoted, so every engine keeps the name's case."""
    return exp.alias_(expression, name, quoted=True)


@dataclass(frozen=True)
class NumberedDoubles:
    """ML.PREDICT columns ``{prefix}1..{prefix}k`` of DOUBLE, one per raw output (pca's
    principal_component_i, autoencoder's latent_col_i): the kind entry's ``output_names`` and
    ``columns``."""

    prefix: str
    width: Callable[[Version], int]

    def names(self, version: Version) -> list[str]:
        return [f"{self.prefix}{i + 1}" for i in range(self.width(version))]

    def columns(
        self, version: Version, raw: list[exp.Expr], threshold: float | None, dialect: str
    ) -> list[exp.Expr]:
        return [
            named(exp.cast(value, exp.DataType.build("DOUBLE")), name)
            for value, name in zip(raw, self.names(version), strict=True)
        ]


LabelFamily = Literal["bool", "int", "float", "text"]


def label_family(label_type: str) -> LabelFamily:
    """A label's training type (Arrow's name) as one of the four families every output type is
    chosen by: BigQuery's label column type, PostgreSQL's ``sqlml.label_prob_<family>``."""
    if label_type == "bool":
        return "bool"
    if label_type.startswith(("int", "uint")):
        return "int"
    if label_type in ("halffloat", "float", "double"):
        return "float"
    return "text"


def pg_label_prob_type(label_type: str) -> str:
    return f"label_prob_{label_family(label_type)}"


def pg_composite(type_name: str, *fields: exp.Expr) -> exp.Expr:
    udt = exp.DataType.build(f"sqlml.{type_name}", dialect="postgres", udt=True)
    return exp.cast(exp.Tuple(expressions=list(fields)), udt)


def element(value: exp.Expr, index: int, field: str | None, dialect: str) -> exp.Expr:
    """``value[index]`` (1-based, written as is), or its ``field``."""
    item: exp.Expr = exp.Bracket(
        this=exp.paren(value.copy()), expressions=[exp.Literal.number(index)], offset=1
    )
    if field is None:
        return item
    if dialect == "duckdb":
        return exp.Anonymous(this="struct_extract", expressions=[item, exp.Literal.string(field)])
    return exp.Dot(this=exp.paren(item), expression=exp.to_identifier(field))


def _label(version: Version) -> dict[str, Any]:
    assert version.label is not None
    return version.label


# -- regressor -----------------------------------------------------------------------------------


def regressor_names(version: Version) -> list[str]:
    return [f"predicted_{_label(version)['name']}"]


def regressor_columns(
    version: Version, raw: list[exp.Expr], threshold: float | None, dialect: str
) -> list[exp.Expr]:
    value = exp.cast(raw[0], exp.DataType.build("DOUBLE"))
    return [named(value, regressor_names(version)[0])]


# -- classifier ----------------------------------------------------------------------------------


def classifier_names(version: Version) -> list[str]:
    name = f"predicted_{_label(version)['name']}"
    return [name, f"{name}_probs"]


def classifier_width(version: Version) -> int:
    return 1 + len(_label(version)["classes"])


def classifier_columns(
    version: Version, raw: list[exp.Expr], threshold: float | None, dialect: str
) -> list[exp.Expr]:
    label = _label(version)
    classes, label_type, name = label["classes"], label["type"], label["name"]
    literals = [label_literal(c, label_type) for c in classes]
    probs = raw[1:]
    predicted = predicted_label(literals, raw, threshold)
    if dialect == "postgres":
        composite = pg_label_prob_type(label_type)
        pairs = [
            pg_composite(composite, lit.copy(), p.copy())
            for lit, p in zip(literals, probs, strict=True)
        ]
        array: exp.Expr = exp.Array(expressions=pairs)
        return [named(predicted, f"predicted_{name}"), named(array, f"predicted_{name}_probs")]
    array = exp.Array(
        expressions=[
            struct(label=lit.copy(), prob=p.copy()) for lit, p in zip(literals, probs, strict=True)
        ]
    )
    return [named(predicted, f"predicted_{name}"), named(array, f"predicted_{name}_probs")]


def predicted_label(
    literals: list[exp.Expr], raw: list[exp.Expr], threshold: float | None
) -> exp.Expr:
    """Binary: the positive class when its probability is above the threshold; multiclass: the
    graph's label (the most probable class)."""
    if len(literals) == 2:
        cut = 0.5 if threshold is None else threshold
        return exp.case().when(raw[2].copy() > double(cut), literals[1]).else_(literals[0].copy())
    case = exp.case(exp.cast(raw[0], exp.DataType.build("BIGINT")))
    for i, literal in enumerate(literals):
        case = case.when(exp.Literal.number(i), literal.copy())
    return case


def classifier_score(version: Version, raw: list[exp.Expr]) -> exp.Expr:
    """The positive class's probability (binary), the predicted label (multiclass)."""
    label = _label(version)
    if len(label["classes"]) == 2:
        return raw[2]
    literals = [label_literal(c, label["type"]) for c in label["classes"]]
    return predicted_label(literals, raw, None)


def classifier_pg_score_type(version: Version) -> str:
    label = _label(version)
    if len(label["classes"]) == 2:
        return "DOUBLE PRECISION"
    literal = label_literal(label["classes"][0], label["type"])
    assert isinstance(literal, exp.Cast)
    return literal.to.sql(dialect="postgres")


def classifier_pg_element(version: Version) -> str:
    return pg_label_prob_type(_label(version)["type"])


def classifier_view_head(
    version: Version, first: exp.Expr, rest: exp.Expr, threshold: float | None, dialect: str
) -> exp.Expr:
    """The predicted label of a view's prediction function, in the type a plain ML.PREDICT
    gives it. With a threshold it compares the positive class's probability, as ML.PREDICT
    does, while the serving version is binary (two classes)."""
    label = _label(version)
    literal = label_literal(label["classes"][0], label["type"])
    assert isinstance(literal, exp.Cast)
    if threshold is not None:
        cut = exp.cast(exp.Literal.string(repr(float(threshold))), exp.DataType.build("DOUBLE"))
        binary = (
            exp.case()
            .when(element(rest, 2, "prob", dialect) > cut, element(rest, 2, "label", dialect))
            .else_(element(rest, 1, "label", dialect))
        )
        length = "cardinality" if dialect == "postgres" else "len"
        size = exp.Anonymous(this=length, expressions=[rest.copy()])
        first = exp.case().when(size.eq(2), binary).else_(first)
    return exp.cast(first, literal.to.copy())


# -- clusterer -----------------------------------------------------------------------------------


def clusterer_width(version: Version) -> int:
    return 1 + len(version.training_info["centroids"])


def centroid_id(raw: list[exp.Expr]) -> exp.Expr:
    """The 1-based centroid id from the graph's 0-based label."""
    return exp.Add(
        this=exp.cast(raw[0], exp.DataType.build("BIGINT")), expression=exp.Literal.number(1)
    )


def clusterer_columns(
    version: Version, raw: list[exp.Expr], threshold: float | None, dialect: str
) -> list[exp.Expr]:
    centroid = centroid_id(raw)
    if dialect == "postgres":
        return [centroid.as_("centroid_id"), _pg_nearest(raw[1:]).as_("nearest_centroids_distance")]
    pairs = [
        struct(
            distance=d.copy(),
            centroid_id=exp.cast(exp.Literal.number(i + 1), exp.DataType.build("BIGINT")),
        )
        for i, d in enumerate(raw[1:])
    ]
    # the lambda's parameter must not be a name a feature column could have: DuckDB binds an
    # input column x before a lambda parameter x (42703 "Cannot extract field ... from x")
    pair = "__sqlml_pair"
    reorder = exp.Lambda(
        this=struct(
            centroid_id=exp.Dot(this=exp.column(pair), expression=exp.to_identifier("centroid_id")),
            distance=exp.Dot(this=exp.column(pair), expression=exp.to_identifier("distance")),
        ),
        expressions=[exp.to_identifier(pair)],
    )
    nearest = exp.func(
        "list_transform", exp.func("list_sort", exp.Array(expressions=pairs)), reorder
    )
    return [centroid.as_("centroid_id"), nearest.as_("nearest_centroids_distance")]


def _pg_nearest(distances: list[exp.Expr]) -> exp.Expr:
    """(SELECT array_agg((c, d)::sqlml.centroid_distance ORDER BY d) FROM (VALUES (1, d1), ...)
    v(c, d))"""
    rows = [
        exp.Tuple(
            expressions=[
                exp.cast(exp.Literal.number(i + 1), exp.DataType.build("BIGINT")),
                exp.cast(d.copy(), exp.DataType.build("DOUBLE")),
            ]
        )
        for i, d in enumerate(distances)
    ]
    values = exp.Values(
        expressions=rows,
        alias=exp.TableAlias(
            this=exp.to_identifier("__sqlml_v"),
            columns=[exp.to_identifier("c"), exp.to_identifier("d")],
        ),
    )
    item = pg_composite(PG_CENTROID_DISTANCE, exp.column("c"), exp.column("d"))
    ordered = exp.Order(this=item, expressions=[exp.Ordered(this=exp.column("d"))])
    aggregate = exp.ArrayAgg(this=ordered)
    return exp.select(aggregate).from_(values).subquery()
