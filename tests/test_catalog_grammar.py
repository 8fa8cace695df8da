"""The session-statement grammars of the catalog emulation (wire/catalog_grammar.py): a golden
table of what each form reads as, including the cases a character scanner got wrong (keywords
inside strings and comments)."""

from __future__ import annotations

import pytest

from sqlml.wire import catalog_grammar as g

SET_CASES = [
    ("x = 1", ("x", "1")),
    ("x TO 1", ("x", "1")),
    ("SESSION x = 1", ("x", "1")),
    ("LOCAL x TO 'a'", ("x", "'a'")),
    ("app.user_id = 7", ("app.user_id", "7")),
    ("\"TimeZone\" = 'UTC'", ('"TimeZone"', "'UTC'")),
    ("TIME ZONE 'UTC'", ('"TimeZone"', "'UTC'")),
    ("SESSION TIME ZONE LOCAL", ('"TimeZone"', "LOCAL")),
    ("NAMES 'UTF8'", ('"client_encoding"', "'UTF8'")),
    ("SCHEMA 'public'", ('"search_path"', "'public'")),
    ("schema = 'x'", ("schema", "'x'")),
    ("search_path = a, 'b c'", ("search_path", "a, 'b c'")),
    ("x = 'a -- b'", ("x", "'a -- b'")),  # a comment opener inside a string
    ("/* c */ x = 1", ("x", "1")),
    ("x /* = */ TO 2", ("x", "2")),
    ("TRANSACTION ISOLATION LEVEL SERIALIZABLE", g.NOOP),
    ("SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", g.NOOP),
    ("SESSION AUTHORIZATION bob", g.NOOP),
    ("LOCAL ROLE bob", g.NOOP),
    ("CONSTRAINTS ALL DEFERRED", g.NOOP),
    ("x", None),
    ("'x' = 1", None),
    ("x.", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), SET_CASES)
def test_set(text: str, expected: object) -> None:
    assert g.set_statement(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", True),
        ("WORK", True),
        ("transaction", True),
        ("/* isolation */", True),
        ("ISOLATION LEVEL SERIALIZABLE", False),
        ("TRANSACTION READ ONLY", False),
    ],
)
def test_transaction_words(text: str, expected: bool) -> None:
    assert g.only_transaction_words(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", g.Chain(False)),
        ("WORK", g.Chain(False)),
        ("AND NO CHAIN", g.Chain(False)),
        ("TRANSACTION AND CHAIN", g.Chain(True)),
        ("/* AND CHAIN */", g.Chain(False)),  # a chain in a comment is none
        ("AND", None),
        ("PREPARED 'x'", None),
    ],
)
def test_commit_chain(text: str, expected: object) -> None:
    assert g.commit_chain(text) == expected


def test_rollback_to() -> None:
    assert g.rollback_to("TO SAVEPOINT s")
    assert g.rollback_to("WORK TO s")
    assert not g.rollback_to("")
    assert not g.rollback_to("/* TO */")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c CURSOR FOR SELECT 1", ("c", "SELECT 1")),
        ('"My c" NO SCROLL CURSOR WITH HOLD FOR SELECT 2', ('"My c"', "SELECT 2")),
        ("c BINARY INSENSITIVE SCROLL CURSOR WITHOUT HOLD FOR VALUES (1)", ("c", "VALUES (1)")),
        ("c CURSOR FOR SELECT 'FOR x'", ("c", "SELECT 'FOR x'")),
        ("c CURSOR /* FOR */ FOR SELECT 3", ("c", "SELECT 3")),
        ("c CURSOR FOR", None),
        ("c FOR SELECT 1", None),
        ("'c' CURSOR FOR SELECT 1", None),
    ],
)
def test_declare(text: str, expected: object) -> None:
    assert g.declare(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("c", ("NEXT", "c")),
        ("next", ("NEXT", "next")),  # a cursor named next
        ("NEXT FROM c", ("NEXT", "c")),
        ("FORWARD ALL IN c", ("FORWARD ALL", "c")),
        ("forward 5 c", ("FORWARD 5", "c")),
        ("FORWARD c", ("FORWARD", "c")),
        ("ALL c", ("ALL", "c")),
        ("10 FROM c", ("10", "c")),
        ("-2 FROM c", ("-2", "c")),
        ("ABSOLUTE -1 c", ("ABSOLUTE -1", "c")),
        ("BACKWARD 3 c", ("BACKWARD 3", "c")),
        ('PRIOR "C"', ("PRIOR", '"C"')),
        ("FORWARD -5 c", None),
        ("ABSOLUTE c", None),
        ("c d", None),
        ("", None),
    ],
)
def test_fetch(text: str, expected: object) -> None:
    assert g.fetch(text) == expected
