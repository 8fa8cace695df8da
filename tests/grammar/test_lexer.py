"""The one SQL lexer: a golden table of tricky texts, each with the tokens it must give, and
checks that its two walks (every token, and units only) agree on every unit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlml.engines import placeholders
from sqlml.grammar import lexer

# the kinds units() yields
UNITS = {
    lexer.STRING,
    lexer.NAME,
    lexer.DOLLAR,
    lexer.COMMENT,
    lexer.PARAM,
    lexer.QMARK,
    lexer.SEMICOLON,
}

# (text, [(kind, text, closed)]): every token, white space left out
GOLDEN = [
    ("SELECT 1", [("word", "SELECT"), ("number", "1")]),
    (
        "SELECT 'costs $2', $1",
        [("word", "SELECT"), ("string", "'costs $2'"), ("op", ","), ("param", "$1")],
    ),
    ("SELECT 'it''s', ?", [("word", "SELECT"), ("string", "'it''s'"), ("op", ","), ("qmark", "?")]),
    (
        "SELECT E'it\\'s', ?",
        [("word", "SELECT"), ("string", "E'it\\'s'"), ("op", ","), ("qmark", "?")],
    ),
    ("SELECT e'\\\\', ?", [("word", "SELECT"), ("string", "e'\\\\'"), ("op", ","), ("qmark", "?")]),
    # a backslash ends nothing in a standard string: 'a\' is a whole string
    ("SELECT 'a\\', ?", [("word", "SELECT"), ("string", "'a\\'"), ("op", ","), ("qmark", "?")]),
    # E only opens an escape string when it stands alone
    ("SELECT name'x'", [("word", "SELECT"), ("word", "name"), ("string", "'x'")]),
    (
        "SELECT $$a ' $1 ; $$, $1",
        [("word", "SELECT"), ("dollar", "$$a ' $1 ; $$"), ("op", ","), ("param", "$1")],
    ),
    ("SELECT $fn$ $$ $fn$", [("word", "SELECT"), ("dollar", "$fn$ $$ $fn$")]),
    ("SELECT $1,$2", [("word", "SELECT"), ("param", "$1"), ("op", ","), ("param", "$2")]),
    ("SELECT a$1, a$b$c", [("word", "SELECT"), ("word", "a$1"), ("op", ","), ("word", "a$b$c")]),
    (
        'SELECT "a ; $1 ?" FROM t',
        [("word", "SELECT"), ("name", '"a ; $1 ?"'), ("word", "FROM"), ("word", "t")],
    ),
    ('SELECT "a""b"', [("word", "SELECT"), ("name", '"a""b"')]),
    ("SELECT `x;y`", [("word", "SELECT"), ("name", "`x;y`")]),
    (
        "SELECT 1 -- ? $1 ;\n, 2",
        [
            ("word", "SELECT"),
            ("number", "1"),
            ("comment", "-- ? $1 ;"),
            ("op", ","),
            ("number", "2"),
        ],
    ),
    ("/* a /* b */ ; */ COPY", [("comment", "/* a /* b */ ; */"), ("word", "COPY")]),
    ("SELECT x::int", [("word", "SELECT"), ("word", "x"), ("op", "::"), ("word", "int")]),
    (
        "SELECT 1.5e-3, .5",
        [("word", "SELECT"), ("number", "1.5e-3"), ("op", ","), ("number", ".5")],
    ),
    (
        "SELECT 1; SELECT 2",
        [
            ("word", "SELECT"),
            ("number", "1"),
            ("semicolon", ";"),
            ("word", "SELECT"),
            ("number", "2"),
        ],
    ),
    ("SELECT ünï", [("word", "SELECT"), ("word", "ünï")]),
    ("SELECT 'open", [("word", "SELECT"), ("string", "'open", False)]),
    ("SELECT $q$ open", [("word", "SELECT"), ("dollar", "$q$ open", False)]),
    ("SELECT /* open", [("word", "SELECT"), ("comment", "/* open", False)]),
    ('SELECT "open', [("word", "SELECT"), ("name", '"open', False)]),
]


def _expected(rows: list[tuple[str, ...]]) -> list[tuple[str, str, bool]]:
    return [(r[0], r[1], bool(r[2]) if len(r) > 2 else True) for r in rows]


@pytest.mark.parametrize(("sql", "rows"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_tokens(sql: str, rows: list[tuple[str, ...]]) -> None:
    got = [(t.kind, t.text(sql), t.closed) for t in lexer.tokens(sql)]
    assert got == _expected(rows)


@pytest.mark.parametrize(("sql", "rows"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_units_agree_with_tokens(sql: str, rows: list[tuple[str, ...]]) -> None:
    every = [t for t in lexer.tokens(sql) if t.kind in UNITS]
    assert list(lexer.units(sql)) == every


_PIECES = st.sampled_from(
    ["SELECT", " ", "'", "''", "E'", "\\", '"', "`", "$", "$1", "$$", "$a$", "?", ";", "--", "\n",
     "/*", "*/", "x", "e", "1", ".", "(", ")", "::", "%", "ü"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map("".join))
def test_units_agree_with_tokens_on_any_text(sql: str) -> None:
    assert list(lexer.units(sql)) == [t for t in lexer.tokens(sql) if t.kind in UNITS]
    position = 0  # the tokens cover the text, in order, with only white space between them
    for token in lexer.tokens(sql):
        assert sql[position : token.start].strip() == ""
        assert token.end > token.start
        position = token.end
    assert sql[position:].strip() == ""


def test_units_scan_in_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    """A unit across a window's edge is found whole (the windows bound each search call)."""
    monkeypatch.setattr(lexer, "WINDOW", 8)
    sql = "SELECT 1234567, 'a;b', $tag$ x $tag$, E'\\'', $12 -- c\n; SELECT ?"
    assert list(lexer.units(sql)) == [t for t in lexer.tokens(sql) if t.kind in UNITS]


@pytest.mark.parametrize(
    ("sql", "first"),
    [
        ("/* c */ COPY t TO '/tmp/f'", "COPY"),
        ("-- c\n  copy t to stdout", "COPY"),
        ("/* a /* nested */ */ begin", "BEGIN"),
        ("(SELECT 1)", ""),
        ("'x'", ""),
        ("", ""),
    ],
)
def test_first_word(sql: str, first: str) -> None:
    assert lexer.first_word(sql) == first


def test_first_word_after_parens() -> None:
    assert lexer.first_word("/* c */ ((SELECT 1))", after_parens=True) == "SELECT"


@pytest.mark.parametrize(
    ("sql", "query"),
    [
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "SELECT 1"),
        ("declare \"for\" binary cursor for select 'for'", "select 'for'"),
        ("EXPLAIN (ANALYZE, COSTS OFF) SELECT 1", "SELECT 1"),
        ("EXPLAIN ANALYZE VERBOSE SELECT 1", "SELECT 1"),
        ("/* c */ COPY (SELECT ')' FROM t) TO STDOUT", "SELECT ')' FROM t"),
        ("SELECT 1", "SELECT 1"),
    ],
)
def test_wrapped_query(sql: str, query: str) -> None:
    start, end = lexer.wrapped_query(sql)
    assert sql[start:end] == query


@pytest.mark.parametrize(
    ("sql", "params", "expected"),
    [
        ("SELECT 'costs $2', $1", [7], ("SELECT 'costs $2', %s", [7])),
        ("SELECT E'it\\'s', ?", [7], ("SELECT E'it\\'s', %s", [7])),
        ("SELECT '100%', $2, $1", [1, 2], ("SELECT '100%%', %s, %s", [2, 1])),
        ("SELECT $$?$$, ? -- ?", [1], ("SELECT $$?$$, %s -- ?", [1])),
    ],
)
def test_parameters_for_psycopg2(
    sql: str, params: list[int], expected: tuple[str, list[int]]
) -> None:
    assert placeholders.to_format(sql, params) == expected


def test_qmarks_are_numbered_outside_strings() -> None:
    assert (
        placeholders.number_qmarks("SELECT E'it\\'s ?', ?, '?', ? /* ? */")
        == "SELECT E'it\\'s ?', $1, '?', $2 /* ? */"
    )


def test_format_markers_are_numbered_outside_strings() -> None:
    """PL/Python's plans take $n: sqlml's own %s markers are numbered, a %s in a string, a
    quoted name or a comment is left as written."""
    sql = "SELECT %s, '%s', \"%s\", E'\\'%s', %s -- %s\n, x%st, $q$%s$q$"
    assert placeholders.format_to_numbered(sql) == (
        "SELECT $1, '%s', \"%s\", E'\\'%s', $2 -- %s\n, x%st, $q$%s$q$"
    )


def test_split_keeps_units_whole() -> None:
    script = "SELECT E'a\\';b'; SELECT $x$;$x$; /* ; */ SELECT 3 -- ;\n;"
    assert lexer.split(script) == ["SELECT E'a\\';b'", "SELECT $x$;$x$", "/* ; */ SELECT 3 -- ;"]
