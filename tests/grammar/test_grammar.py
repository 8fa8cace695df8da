"""The grammar: golden cases (tests/grammar/cases/*.sql), scripts, rendering, errors, isolation.

A golden case is its input SQL followed by ``-- expected:`` and the typed statement as JSON, or
``-- expected: error <SQLSTATE> [at <position>]``. After a deliberate change, rewrite the JSON
with ``python tests/grammar/test_grammar.py --update`` and review the diff.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import pytest
from sqlglot import exp

from sqlml import errors, grammar
from sqlml.grammar import parser as grammar_parser
from sqlml.grammar.dialects import DIALECTS
from sqlml.grammar.statements import MLQuery, Passthrough, Predict, Score

CASES = Path(__file__).parent / "cases"
BOTH = ("duckdb", "postgres")
_ERROR = re.compile(r"error (?P<state>[0-9A-Z]{5})(?: at (?P<position>\d+))?")


@dataclasses.dataclass(frozen=True)
class Case:
    file: str
    name: str
    dialects: tuple[str, ...]
    sql: str
    expected: str

    @property
    def id(self) -> str:
        return f"{self.file}:{self.name}"


def load_cases(path: Path) -> list[Case]:
    cases = []
    for chunk in re.split(r"^-- case: ", path.read_text(), flags=re.MULTILINE)[1:]:
        name, _, body = chunk.partition("\n")
        dialects = BOTH
        if body.startswith("-- dialects:"):
            line, _, body = body.partition("\n")
            dialects = tuple(line.split(":", 1)[1].split())
        sql, _, expected = body.partition("-- expected:")
        cases.append(Case(path.stem, name.strip(), dialects, sql.strip(), expected.strip()))
    return cases


ALL_CASES = [case for path in sorted(CASES.glob("*.sql")) for case in load_cases(path)]


def to_json(value: Any) -> Any:
    """A typed statement as plain JSON data (an MLQuery's template as SQL of its dialect)."""
    if isinstance(value, MLQuery):
        template = value.template.sql(dialect=DIALECTS[value.dialect])
        return {"type": "MLQuery", "template": template, "calls": to_json(value.calls)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {  # an unset field outside the value's identity (ModelRef.catalog) is left out
            f.name: to_json(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if (f.compare or getattr(value, f.name) is not None)
            and not (f.metadata.get("omit_empty") and not getattr(value, f.name))
        }
        return {"type": type(value).__name__, **fields}
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: to_json(v) for k, v in value.items()}
    return value


def outcome(sql: str, dialect: str) -> str:
    """What a golden case records: the statement as JSON, or the error."""
    try:
        statement = grammar.parse(sql, dialect)
    except errors.Error as e:
        where = f" at {e.position}" if e.sqlstate == "42601" else ""
        return f"error {e.sqlstate}{where}"
    return pretty(to_json(statement))


def pretty(value: Any, level: int = 0) -> str:
    """JSON with one item per line, except containers short enough to fit on one line."""
    line = json.dumps(value)
    if len(line) + 2 * level <= 96 or not isinstance(value, dict | list) or not value:
        return line
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {pretty(v, level + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    items = [f"{pad}{pretty(v, level + 1)}" for v in value]
    return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"


def canonical(text: str) -> str:
    return text if _ERROR.fullmatch(text) else pretty(json.loads(text))


@pytest.mark.parametrize(
    ("case", "dialect"),
    [pytest.param(c, d, id=f"{c.id}[{d}]") for c in ALL_CASES for d in c.dialects],
)
def test_golden(case: Case, dialect: str) -> None:
    assert case.expected, f"{case.id} has no expected outcome: run the --update script"
    assert outcome(case.sql, dialect) == canonical(case.expected)


def test_every_sqlstate_the_grammar_raises_has_a_golden_case() -> None:
    states = {m["state"] for c in ALL_CASES if (m := _ERROR.fullmatch(c.expected))}
    assert states == {"42601", "22023", "0A000"}


def test_golden_syntax_errors_name_a_position() -> None:
    for case in ALL_CASES:
        match = _ERROR.fullmatch(case.expected)
        if match and match["state"] == "42601":
            assert match["position"], case.id


# -- error details ---------------------------------------------------------------------------------


def test_syntax_error_points_at_the_offending_token() -> None:
    sql = "SELECT * FROM ML.PREDICT(MODEL m,\n  oops)"
    with pytest.raises(errors.SyntaxError) as caught:
        grammar.parse(sql)
    assert caught.value.sqlstate == "42601"
    assert caught.value.position is not None
    assert sql[caught.value.position - 1 :].startswith("oops")
    assert '"oops"' in caught.value.message
    assert isinstance(caught.value.__cause__, Exception)  # raised `from` sqlglot's error


def test_syntax_error_at_end_of_input() -> None:
    sql = "SELECT * FROM ML.PREDICT(MODEL m, TABLE t   "
    with pytest.raises(errors.SyntaxError) as caught:
        grammar.parse(sql)
    assert caught.value.position == len(sql.rstrip()) + 1
    assert "end of input" in caught.value.message


def test_non_literal_option_names_the_option() -> None:
    with pytest.raises(errors.InvalidParameterValue) as caught:
        grammar.parse("CREATE MODEL m OPTIONS (model_type = linear_reg) AS SELECT 1")
    assert "model_type" in caught.value.message


def test_unknown_ml_function_is_named() -> None:
    with pytest.raises(errors.FeatureNotSupported) as caught:
        grammar.parse("SELECT * FROM ML.FORECAST(MODEL m)")
    assert "ML.FORECAST" in caught.value.message
    assert caught.value.position == 15


@pytest.mark.parametrize("name", ["BAG_OF_WORDS", "TF_IDF", "MULTI_HOT_ENCODER"])
def test_other_transform_functions_are_not_supported_yet(name: str) -> None:
    sql = f"CREATE MODEL m TRANSFORM (ML.{name}(x) OVER () AS y) OPTIONS (a = 1) AS SELECT 1"
    with pytest.raises(errors.FeatureNotSupported) as caught:
        grammar.parse(sql)
    assert caught.value.sqlstate == "0A000"
    assert f"ML.{name}" in caught.value.message


def test_unknown_dialect() -> None:
    with pytest.raises(errors.FeatureNotSupported):
        grammar.parse("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)", "mysql")


def _prefixes(sql: str) -> list[str]:
    return [sql[:i] for i in range(1, len(sql)) if sql[i] in " ,()'\n"]


@pytest.mark.parametrize("case", [c for c in ALL_CASES if c.file != "passthrough"], ids=str)
def test_no_sqlglot_exception_escapes_on_truncated_input(case: Case) -> None:
    states = set()
    for dialect in case.dialects:
        for prefix in _prefixes(case.sql):
            try:
                grammar.parse(prefix, dialect)
            except errors.Error as e:  # anything else (sqlglot's own errors) fails the test
                states.add(e.sqlstate)
    assert states <= {"42601", "22023", "0A000"}


# -- passthrough -----------------------------------------------------------------------------------


def test_plain_sql_is_never_tokenized(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("tokenized")

    monkeypatch.setattr(grammar_parser, "_tokenize", fail)
    sql = "  SELECT a, 'x' FROM t  "
    statement = grammar.parse(sql, "postgres")
    assert isinstance(statement, Passthrough)
    assert statement.sql is sql


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT 1", False),
        ("SELECT model FROM t", False),  # a column called model
        ("CREATE OR REPLACE MODEL m OPTIONS (model_type = 'x') AS SELECT 1", True),
        ("SELECT ml.normalize(x) FROM t", False),  # a function in a schema named ml
        ("SELECT s.ml.predict(x) FROM t", False),
        ("SELECT 'ML.PREDICT(MODEL m, TABLE t)'", False),
        ("SELECT $$ML.PREDICT(MODEL m, TABLE t)$$", False),
        ("SELECT 1 /* ML.PREDICT(MODEL m, TABLE t) */", False),
        ("SELECT * FROM ML.PREDICT(shop.churn, TABLE t)", True),  # an ML function by name
        ("SELECT * FROM ml.unknown_fn(MODEL m)", True),  # MODEL makes it ML
        ("SELECT ML.SCORE(MODEL m) FROM t", True),
        ("show models", True),
        ("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)", True),
        ("select * from ml . predict(model m, table t)", True),
        ("SELECT model_type, modelling FROM t", False),
        ("SELECT xml.value FROM xml", False),
        ("SELECT html.ml FROM t", False),
        ("SELECT 1 -- the model", False),
        ("DROP MODEL IF EXISTS m", True),
    ],
)
def test_is_ml(sql: str, expected: bool) -> None:
    assert grammar.is_ml(sql) is expected


# -- scripts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("SELECT 1; SELECT 2;", ["SELECT 1", "SELECT 2"]),
        ("  SELECT 1  ", ["SELECT 1"]),
        ("", []),
        (";;  ;\n;", []),
        ("-- only a comment\n", []),
        ("/* a */ ; -- b\n ;", []),
        ("SELECT ';' AS a; SELECT 'it''s;' AS b", ["SELECT ';' AS a", "SELECT 'it''s;' AS b"]),
        ('SELECT "a;b" FROM t; SELECT `c;d`', ['SELECT "a;b" FROM t', "SELECT `c;d`"]),
        ("SELECT $$a;b$$; SELECT 1", ["SELECT $$a;b$$", "SELECT 1"]),
        ("SELECT $fn$ x; $$ y; $fn$; SELECT 2", ["SELECT $fn$ x; $$ y; $fn$", "SELECT 2"]),
        ("SELECT $1; SELECT a$b$c;", ["SELECT $1", "SELECT a$b$c"]),
        ("SELECT E'it\\'s;' ; SELECT 2", ["SELECT E'it\\'s;'", "SELECT 2"]),
        ("SELECT 'a\\'; SELECT 2", ["SELECT 'a\\'", "SELECT 2"]),
        ("SELECT 1 -- no; split\n; SELECT 2", ["SELECT 1 -- no; split", "SELECT 2"]),
        (
            "SELECT /* a /* nested; */ still; */ 1; SELECT 2",
            ["SELECT /* a /* nested; */ still; */ 1", "SELECT 2"],
        ),
        ("-- header\nSELECT 1;\n-- trailer", ["-- header\nSELECT 1"]),
        ("SELECT 'open; string", ["SELECT 'open; string"]),
        ("SELECT 1 /* open; comment", ["SELECT 1 /* open; comment"]),
        (
            "CREATE MODEL m OPTIONS (model_type = 'x') AS SELECT ';';\nSELECT * FROM ML.EVALUATE(MODEL m);",
            [
                "CREATE MODEL m OPTIONS (model_type = 'x') AS SELECT ';'",
                "SELECT * FROM ML.EVALUATE(MODEL m)",
            ],
        ),
    ],
)
def test_split_script(script: str, expected: list[str]) -> None:
    assert grammar.split_script(script) == expected


@pytest.mark.parametrize("dialect", BOTH)
def test_parse_script(dialect: str) -> None:
    script = """
        CREATE TABLE t AS SELECT 1 AS x;  -- plain
        CREATE MODEL m OPTIONS (model_type = 'linear_reg') AS SELECT x FROM t;
        SELECT * FROM ML.PREDICT(MODEL m, TABLE t);
        SELECT model FROM cars;
        DROP MODEL m;
    """
    kinds = [type(s).__name__ for s in grammar.parse_script(script, dialect)]
    assert kinds == ["Passthrough", "CreateModel", "MLQuery", "Passthrough", "DropModel"]


# -- rendering -------------------------------------------------------------------------------------


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA shop")
    con.execute("CREATE TABLE shop.t AS SELECT range AS id, range * 1.5 AS x FROM range(4)")
    con.execute("CREATE TABLE scored (a INT, id INT)")
    return con


def _dummies(query: MLQuery) -> list[exp.Expr]:
    """ML.PREDICT/EVALUATE -> (SELECT 1 AS a, 2 AS id); ML.SCORE -> x of its table, or 0.5."""
    row = exp.select(
        exp.alias_(exp.Literal.number(1), "a"), exp.alias_(exp.Literal.number(2), "id")
    )
    out: list[exp.Expr] = []
    for call in query.calls:
        if isinstance(call, Score):
            out.append(
                exp.column("x", call.qualifier) if call.qualifier else exp.Literal.number(0.5)
            )
        else:
            out.append(row.subquery())
    return out


RENDERED = [
    (
        "SELECT p.a, ML.SCORE(MODEL s.m) FROM ML.PREDICT(MODEL m, TABLE shop.t) AS p",
        'SELECT p.a, (0.5) AS "score" FROM (SELECT 1 AS a, 2 AS id) AS p',
        [(1, 0.5)],
    ),
    (
        "SELECT * FROM ML.EVALUATE(MODEL m)",
        "SELECT * FROM (SELECT 1 AS a, 2 AS id) AS __sqlml_call_0",
        [(1, 2)],
    ),
    (
        "SELECT t.id, ML.SCORE(MODEL m, t) AS s FROM shop.t AS t JOIN ML.EVALUATE(MODEL m) ON TRUE"
        " WHERE ML.SCORE(MODEL m) > 0.1 ORDER BY ML.SCORE(MODEL m, t) DESC LIMIT 2",
        "SELECT t.id, (t.x) AS s FROM shop.t AS t JOIN (SELECT 1 AS a, 2 AS id) AS __sqlml_call_1"
        " ON TRUE WHERE (0.5) > 0.1 ORDER BY (t.x) DESC LIMIT 2",
        [(3, 4.5), (2, 3.0)],
    ),
    (
        "SELECT ML.SCORE(MODEL m) > 0.4 AS risky, count(*) FROM shop.t GROUP BY risky",
        "SELECT (0.5) > 0.4 AS risky, COUNT(*) FROM shop.t GROUP BY risky",
        [(True, 4)],
    ),
    (
        "WITH s AS (SELECT * FROM ML.PREDICT(MODEL m, (SELECT 1))) SELECT count(*) FROM s",
        "WITH s AS (SELECT * FROM (SELECT 1 AS a, 2 AS id) AS __sqlml_call_0) SELECT COUNT(*) FROM s",
        [(1,)],
    ),
    (
        "INSERT INTO scored SELECT * FROM ML.PREDICT(MODEL m, TABLE shop.t) p",
        "INSERT INTO scored SELECT * FROM (SELECT 1 AS a, 2 AS id) AS p",
        [(1,)],
    ),
    (
        "SELECT q.c1 + q.c2 FROM ML.PREDICT(MODEL m, TABLE shop.t) AS q(c1, c2)",
        "SELECT q.c1 + q.c2 FROM (SELECT 1 AS a, 2 AS id) AS q(c1, c2)",
        [(3,)],
    ),
]


@pytest.mark.parametrize("parsed_as", BOTH)
@pytest.mark.parametrize(("sql", "expected", "rows"), RENDERED, ids=range(len(RENDERED)))
def test_render_runs_in_duckdb(
    con: duckdb.DuckDBPyConnection, parsed_as: str, sql: str, expected: str, rows: list[Any]
) -> None:
    """Parsed as DuckDB it renders as expected; parsed as PostgreSQL it is transpiled (e.g.
    PostgreSQL's NULLS FIRST of DESC is spelled out) and gives the same rows."""
    query = grammar.parse(sql, parsed_as)
    assert isinstance(query, MLQuery)
    rendered = query.render(_dummies(query), "duckdb")
    if parsed_as == "duckdb":
        assert rendered == expected
    result = con.execute(rendered)
    if rendered.startswith("INSERT"):
        result = con.execute("SELECT count(*) FROM scored")
    assert result.fetchall() == rows


@pytest.mark.parametrize("parsed_as", BOTH)
def test_render_for_postgres(parsed_as: str) -> None:
    query = grammar.parse("SELECT * FROM ML.PREDICT(MODEL m, TABLE t) WHERE x::int > 1", parsed_as)
    assert isinstance(query, MLQuery)
    rendered = query.render(_dummies(query), "postgres")
    assert rendered == (
        "SELECT * FROM (SELECT 1 AS a, 2 AS id) AS __sqlml_call_0 WHERE CAST(x AS INT) > 1"
    )


def test_render_keeps_the_template_and_accepts_other_replacement_shapes(
    con: duckdb.DuckDBPyConnection,
) -> None:
    query = grammar.parse("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE shop.t) AS p")
    assert isinstance(query, MLQuery)
    as_table = query.render([exp.to_table("shop.t")])
    as_select = query.render([exp.select("*").from_("shop.t")])
    own_alias = grammar.parse("SELECT count(*) FROM ML.PREDICT(MODEL m, TABLE shop.t)")
    assert isinstance(own_alias, MLQuery)
    aliased = own_alias.render([exp.select("*").from_("shop.t").subquery("mine")])
    assert as_table == "SELECT COUNT(*) FROM shop.t AS p"
    assert as_select == "SELECT COUNT(*) FROM (SELECT * FROM shop.t) AS p"
    assert aliased == "SELECT COUNT(*) FROM (SELECT * FROM shop.t) AS mine"
    for sql in (as_table, as_select, aliased):
        assert con.execute(sql).fetchall() == [(4,)]
    assert query.render([exp.to_table("shop.t")]) == as_table  # the template is unchanged


def test_render_errors() -> None:
    query = grammar.parse("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)")
    assert isinstance(query, MLQuery)
    with pytest.raises(errors.InternalError) as caught:
        query.render([])
    assert caught.value.sqlstate == "XX000"
    with pytest.raises(errors.InternalError):
        query.render([exp.Literal.number(1)])  # not a table
    with pytest.raises(errors.FeatureNotSupported):
        query.render([exp.to_table("t")], "oracle")


def test_predict_input_from_table_is_quoted_sql() -> None:
    query = grammar.parse('SELECT * FROM ML.PREDICT(MODEL m, TABLE Shop."My Table")', "postgres")
    assert isinstance(query, MLQuery)
    call = query.calls[0]
    assert isinstance(call, Predict)
    assert call.input.sql == 'SELECT * FROM "shop"."My Table"'
    assert duckdb.sql("SELECT 1").fetchall() == [(1,)]


# -- sqlglot itself is untouched -------------------------------------------------------------------

STOCK_PROBE = """
import json, sqlglot
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.dialects.postgres import Postgres

def probe():
    out = []
    for dialect in ("duckdb", "postgres", "bigquery"):
        for sql in (
            "CREATE MODEL m OPTIONS (model_type = 'x') AS SELECT 1",
            "SELECT * FROM ML.EVALUATE(MODEL m)",
            "SELECT * FROM ML.PREDICT(MODEL m, TABLE t)",
            "SHOW MODELS",
            "DROP MODEL m",
            "SELECT `a` FROM t",
            "SELECT ml.lower(x) FROM t AS ml",
        ):
            try:
                out.append(repr(sqlglot.parse_one(sql, read=dialect)))
            except Exception as e:
                out.append(type(e).__name__ + str(e))
    tables = (DuckDB.Parser.STATEMENT_PARSERS, DuckDB.Parser.FUNCTION_PARSERS,
              Postgres.Parser.STATEMENT_PARSERS, DuckDB.Tokenizer.KEYWORDS,
              DuckDB.Generator.TRANSFORMS, Postgres.Generator.TRANSFORMS)
    out.append([sorted(map(str, t)) for t in tables])
    out.append([list(DuckDB.Tokenizer.IDENTIFIERS), sorted(map(str, Postgres.Tokenizer.COMMANDS))])
    return out

before = probe()
import sqlml.grammar
sqlml.grammar.parse("CREATE MODEL m OPTIONS (model_type = 'x') AS SELECT 1")
sqlml.grammar.parse("SELECT * FROM ML.PREDICT(MODEL m, TABLE t)", "postgres")
print(json.dumps(before == probe()))
"""


def test_stock_sqlglot_dialects_are_unchanged() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STOCK_PROBE], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "true"


def update_goldens() -> None:
    """Rewrites the expected outcome of every golden case from the current grammar."""
    for path in sorted(CASES.glob("*.sql")):
        text = path.read_text()
        for case in load_cases(path):
            outcomes = {outcome(case.sql, d) for d in case.dialects}
            assert len(outcomes) == 1, f"{case.id}: dialects disagree, split the case"
            (result,) = outcomes
            block = (
                f"-- expected: {result}"
                if result.startswith("error")
                else f"-- expected:\n{result}"
            )
            pattern = re.compile(
                rf"(^-- case: {re.escape(case.name)}\n.*?)^-- expected:.*?(?=^-- case: |\Z)",
                re.MULTILINE | re.DOTALL,
            )
            text = pattern.sub(lambda m, b=block: m.group(1) + b + "\n\n", text, count=1)
        path.write_text(text.rstrip() + "\n")


if __name__ == "__main__" and sys.argv[1:] == ["--update"]:
    update_goldens()
