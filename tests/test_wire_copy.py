"""COPY FROM data in text, csv and binary format, fed to CopyInParser in pieces: escapes,
options, markers, batching and the errors (SQLSTATE and COPY line). Checks against a real server
are in test_wire_types.py."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

from sqlml import errors
from sqlml.wire import copy as copy_module
from sqlml.wire.copy import CopyInParser, copy_binary_header, copy_binary_trailer, copy_out
from tests.test_wire_types import feed_in_pieces

SCHEMA = pa.schema([("id", pa.int64()), ("name", pa.string()), ("score", pa.float64())])


def copy_in(
    data: bytes, fmt: str = "text", options: dict[str, str] | None = None, size: int = 3
) -> list[dict[str, Any]]:
    batches = feed_in_pieces(CopyInParser(SCHEMA, fmt, options), data, size)
    return pa.Table.from_batches(batches, SCHEMA).to_pylist()


def test_copy_in_text_escapes_and_markers() -> None:
    data = (
        "1\ta\\tb\\\\c\\nd\t1.5\n2\t\\N\t\\N\r\n3\tx\\\ty \\101\\x42ü\tNaN\n\\.\nignored\n".encode()
    )
    assert copy_in(data, size=1)[:2] == [
        {"id": 1, "name": "a\tb\\c\nd", "score": 1.5},
        {"id": 2, "name": None, "score": None},
    ]
    third = copy_in(data)[2]
    assert third["name"] == "x\ty ABü"
    assert math.isnan(third["score"])


def test_copy_in_unterminated_last_line_is_a_row() -> None:
    assert copy_in(b"1\ta\t2") == [{"id": 1, "name": "a", "score": 2.0}]
    assert copy_in(b'1,"a\nb",2', "csv") == [{"id": 1, "name": "a\nb", "score": 2.0}]


def test_copy_in_csv_options() -> None:
    data = b"id;name;score\n1;'it''s; ok';NA\n2;;3\n3;'';4\n"
    options = {"delimiter": ";", "header": "true", "null": "NA", "quote": "'"}
    assert copy_in(data, "csv", options) == [
        {"id": 1, "name": "it's; ok", "score": None},
        {"id": 2, "name": "", "score": 3.0},
        {"id": 3, "name": "", "score": 4.0},
    ]
    assert copy_in(b'id,name,score\n1,"x",2\n', "csv", {"header": "match"})[0]["name"] == "x"


def test_copy_in_takes_postgres_spellings_of_numbers() -> None:
    rows = copy_in(b"+1\ta\t Infinity\n 2 \tb\t-inf\n")
    assert [(r["id"], r["score"]) for r in rows] == [(1, math.inf), (2, -math.inf)]


def test_copy_in_csv_empty_quoted_is_not_null() -> None:
    assert copy_in(b'1,,2\n2,"",3\n', "csv") == [
        {"id": 1, "name": None, "score": 2.0},
        {"id": 2, "name": "", "score": 3.0},
    ]


def test_copy_in_batches_come_as_rows_complete() -> None:
    parser = CopyInParser(SCHEMA, "text")
    assert parser.batch() is None
    parser.feed(b"1\ta\t1\n2\tb")
    assert parser.batch().num_rows == 1
    assert parser.batch() is None
    parser.feed("\t2\n3\t\xc3".encode("latin-1"))  # a multi-byte character split across chunks
    parser.feed(b"\xbc\t3\n")
    assert parser.batch().to_pylist() == [
        {"id": 2, "name": "b", "score": 2.0},
        {"id": 3, "name": "ü", "score": 3.0},
    ]
    assert parser.finish() is None


BAD_COPY = [
    (b"1\ta\t1\n2\tb\n", "text", {}, "22P04", "line 2"),
    (b"1\ta\t1\t9\n", "text", {}, "22P04", "line 1"),
    (b"1\ta\t1\n2\tb\t2\nx\tc\t3\n", "text", {}, "22P02", "line 3"),
    (b"1\ta\tbad\n", "text", {}, "22P02", "line 1"),
    (b'1,"a,1\n', "csv", {}, "22P04", "line 1"),
    (b"a,b,c\n", "csv", {"header": "match"}, "22P04", "line 1"),
    (b"1\t\xff\t1\n", "text", {}, "22021", "line 1"),
    (b"99999999999999999999\ta\t1\n", "text", {}, "22003", "line 1"),
    (b"1\ta\t1\n2\tb\t1e400\n", "text", {}, "22003", "line 2"),
]


@pytest.mark.parametrize(("data", "fmt", "options", "sqlstate", "where"), BAD_COPY)
def test_copy_in_refuses_bad_data(
    data: bytes, fmt: str, options: dict[str, str], sqlstate: str, where: str
) -> None:
    with pytest.raises(errors.Error) as caught:
        copy_in(data, fmt, options)
    assert caught.value.sqlstate == sqlstate
    assert where in caught.value.message


def test_copy_in_binary_needs_header_and_whole_tuples() -> None:
    """The trailer may be missing (ADBC sends none; PostgreSQL's NextCopyFrom takes EOF at a
    tuple boundary), a tuple may not be cut short, nothing may follow the trailer."""
    batch = pa.RecordBatch.from_pylist([{"id": 1, "name": "a", "score": 0.5}], SCHEMA)
    body = copy_binary_header() + copy_out(batch, "binary")
    assert copy_in(body + copy_binary_trailer(), "binary", size=5) == batch.to_pylist()
    assert copy_in(body, "binary", size=5) == batch.to_pylist()
    bad = (body[:-3], b"PGCOPY\n\xff\r\n\x01" + body[11:], body + copy_binary_trailer() + b"x", b"")
    for data in bad:
        with pytest.raises(errors.Error) as caught:
            copy_in(data, "binary")
        assert caught.value.sqlstate == "22P04"


def test_copy_in_refuses_unknown_options() -> None:
    with pytest.raises(errors.SyntaxError):
        CopyInParser(SCHEMA, "csv", {"frobnicate": "1"})
    with pytest.raises(errors.InvalidParameterValue):
        CopyInParser(SCHEMA, "xml")


COLUMNWISE = [
    (
        b"1\tplain\t1.5\n2\t\\N\t\\N\n3\ta\\tb\\\\c\\nd \\x41\t-0\n4\t\xc3\xbc\t1e3\n5\t\t7\n",
        "text",
        {},
    ),
    (b"1|x|2\n2|\\N|3\n3|a\\|b|4\n", "text", {"delimiter": "|"}),
    (b"1,x,2\n2,,3\n3,a\\b,4\n4, spaced ,5\n", "csv", {}),
    (b"1;NA;2\n2;;3\n", "csv", {"delimiter": ";", "null": "NA"}),
    (b"id,name,score\n1,x,2\n2,y,3\n", "csv", {"header": "true"}),
    (b"1\tx\t2\r\n2\ty\t3\r\n", "text", {}),
    (b'1,"quoted, x",2\n2,y,3\n', "csv", {}),
    (b'1,"x",2\n2,"",3\n3,"it""s",4\n4,,"5"\n5,"a""",6\n', "csv", {}),
    (b'1,"a"b,2\n2,"line\nbreak",3\n3,x,"4"\n', "csv", {}),
    (b'1,"a""b",2\n2,"c\\"d",3\n', "csv", {"escape": "\\"}),
    (b"1,'x',2\n2,'',3\n", "csv", {"quote": "'"}),
]


@pytest.mark.parametrize(("data", "fmt", "options"), COLUMNWISE)
def test_columnwise_parse_equals_rowwise(
    data: bytes, fmt: str, options: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines split by Arrow give what the row-wise parser gives (which the lines it declines,
    quotes, carriage returns, escaped delimiters, take)."""
    columnwise = copy_in(data, fmt, options, size=len(data))
    monkeypatch.setattr(copy_module, "_split_fields", lambda *args: None)
    assert columnwise == copy_in(data, fmt, options, size=len(data))
    assert len(columnwise) >= 2


def test_columnwise_errors_name_the_line() -> None:
    data = b"".join(f"{i}\tx\t{i}\n".encode() for i in range(1, 100)) + b"100\tx\tbad\n"
    with pytest.raises(errors.Error) as caught:
        copy_in(data, size=len(data))
    assert caught.value.sqlstate == "22P02"
    assert "line 100" in caught.value.message
    data = data.replace(b"bad", b"1\t2")
    with pytest.raises(errors.Error) as caught:
        copy_in(data, size=len(data))
    assert caught.value.sqlstate == "22P04"
    assert "line 100" in caught.value.message
