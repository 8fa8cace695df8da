"""COPY TO STDOUT and COPY FROM STDIN data in text, csv and binary format.

Theory of operation. The way out reuses types.py's column encoders: a text or csv line is each
column's text output, escaped (text) or quoted where PostgreSQL quotes (csv), all joined in one
``binary_join_element_wise``; binary tuples are assembled as DataRows are, without the message
header, and go between ``copy_binary_header`` and ``copy_binary_trailer``.

The way in is per value: ``CopyInParser`` is fed CopyData chunks split anywhere, splits them into
rows (text lines with backslash escapes, csv rows by regex, binary tuples) and converts each
column of a batch of rows to Arrow: numbers by Arrow's cast where it can, else value by value
with params.py's decoders, naming the COPY line of a bad value. The module does no I/O: bytes
in, bytes or Arrow out.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.engines.pgtypes import FLOAT4, FLOAT8, INT2, INT4, INT8
from sqlml.wire._columns import _is_list, _join, _payload
from sqlml.wire._values import _STRINGS, Interval
from sqlml.wire.params import _decode_binary, _decode_text, _for_duckdb, _utf8
from sqlml.wire.types import _binary, _text, _tuples, wire_type

__all__ = [
    "COPY_SIGNATURE",
    "CopyInParser",
    "copy_binary_header",
    "copy_binary_trailer",
    "copy_out",
]

# -- COPY TO --------------------------------------------------------------------------------

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_TEXT_ESCAPES = [("\\", "\\\\"), ("\b", "\\b"), ("\f", "\\f"), ("\n", "\\n")]
_COPY_TEXT_ESCAPES += [("\r", "\\r"), ("\t", "\\t"), ("\v", "\\v")]


def copy_binary_header() -> bytes:
    """COPY binary: signature, int32 flags 0, int32 header extension length 0."""
    return COPY_SIGNATURE + struct.pack(">ii", 0, 0)


def copy_binary_trailer() -> bytes:
    return struct.pack(">h", -1)


def copy_out(batch: pa.RecordBatch, format: str) -> bytes:
    """The batch's rows as COPY TO STDOUT writes them: 'text', 'csv' or 'binary' (tuples only:
    the header and trailer come from copy_binary_header and copy_binary_trailer)."""
    if format == "binary":
        return _tuples([_binary(c) for c in batch.columns], batch.num_rows, data_row=False)
    if format not in ("text", "csv"):
        raise errors.InvalidParameterValue(f'COPY format "{format}" not recognized')
    if not batch.num_columns:
        return b"\n" * int(batch.num_rows)
    single = batch.num_columns == 1
    texts = [_text(c) for c in batch.columns]
    if format == "text":
        cells, separator, null = [_copy_escape(t) for t in texts], "\t", "\\N"
    else:
        cells, separator, null = [_csv_quote(t, single) for t in texts], ",", ""
    lines = _join(cells, separator, null_handling="replace", null_replacement=null)
    return bytes(_payload(_join([lines, "\n"], b"")))


def _copy_escape(text: pa.Array) -> pa.Array:
    if not pc.any(pc.match_substring_regex(text, r"[\\\x08-\x0d]")).as_py():
        return text
    for char, escaped in _COPY_TEXT_ESCAPES:
        text = pc.replace_substring(text, char, escaped)
    return text


def _csv_quote(text: pa.Array, single: bool) -> pa.Array:
    """Quoted where PostgreSQL quotes: empty strings, the delimiter, quotes, line breaks, and a
    lone \\. in a one-column file."""
    needs = r'^$|[",\r\n]' + (r"|^\\\.$" if single else "")
    quoted = _join(['"', pc.replace_substring(text, '"', '""'), '"'])
    return pc.if_else(pc.match_substring_regex(text, needs), quoted, text)


# -- COPY FROM ------------------------------------------------------------------------------


def _bad_copy(message: str, line: int) -> errors.Error:
    return errors.from_sqlstate("22P04", f"{message} (COPY line {line})")


@dataclass(frozen=True)
class _CopyOptions:
    delimiter: bytes  # between fields: tab (text) or comma (csv)
    null: bytes  # the NULL marker: \N (text) or an unquoted empty field (csv)
    quote: bytes  # csv: the quote character
    escape: bytes  # csv: the character escaping a quote inside quotes (default: the quote)
    header: str  # "false", "true" (skip the first line) or "match" (check it names the columns)


_TRUE_WORDS = ("true", "on", "1", "yes")


def _copy_options(format: str, given: dict[str, str]) -> _CopyOptions:
    if format not in ("text", "csv", "binary"):
        raise errors.InvalidParameterValue(f'COPY format "{format}" not recognized')
    options = {key.lower(): value for key, value in given.items()}
    unknown = set(options) - {"delimiter", "null", "header", "quote", "escape", "format"}
    if unknown:
        raise errors.SyntaxError(f'option "{sorted(unknown)[0]}" not recognized')
    csv = format == "csv"
    delimiter = options.get("delimiter", "," if csv else "\t").encode()
    quote = options.get("quote", '"').encode()
    header = options.get("header", "false").lower()
    header = "match" if header == "match" else ("true" if header in _TRUE_WORDS else "false")
    if len(delimiter) != 1 or len(quote) != 1 or delimiter in (b"\n", b"\r", quote):
        raise errors.InvalidParameterValue(
            "COPY delimiter and quote must be distinct single characters"
        )
    null = options.get("null", "" if csv else "\\N").encode()
    return _CopyOptions(
        delimiter, null, quote, options.get("escape", quote.decode()).encode(), header
    )


class CopyInParser:
    """COPY FROM STDIN data, fed CopyData chunk by chunk (split anywhere), as Arrow batches of
    the target schema. Lines are counted from 1 for error messages, the header included."""

    def __init__(
        self, schema: pa.Schema, format: str, options: dict[str, str] | None = None
    ) -> None:
        self.schema = schema
        self.format = format
        self._options = _copy_options(format, options or {})
        if any(pa.types.is_struct(f.type) for f in schema):
            raise errors.FeatureNotSupported("COPY FROM into composite columns is not supported")
        self._oids = [wire_type(f.type).oid for f in schema]
        self._buffer = bytearray()
        self._rows: list[list[Any]] = []  # complete rows not yet returned: raw field values
        self._lines: list[int] = []  # the line number of each of them
        self._line = 0  # lines (binary: tuples) consumed so far
        self._started = False  # the header line or binary header is behind us
        self._done = False  # the end marker (\. or the binary trailer) has been read
        if format == "csv":
            patterns = _csv_patterns(self._options)
            self._csv_row, self._csv_field, self._csv_quoted, self._csv_escaped = patterns

    def feed(self, data: bytes) -> None:
        """One CopyData message's bytes."""
        if self._done:
            if self.format == "binary" and data:
                raise _bad_copy("received copy data after EOF marker", self._line)
            return
        self._buffer += data
        self._parse(final=False)

    def batch(self) -> pa.RecordBatch | None:
        """The complete rows since the last call, converted to the schema (None: no rows)."""
        if not self._rows:
            return None
        rows, lines = self._rows, self._lines
        self._rows, self._lines = [], []
        columns = [
            self._column(i, [row[i] for row in rows], lines) for i in range(len(self.schema))
        ]
        return pa.RecordBatch.from_arrays(columns, schema=self.schema)

    def finish(self) -> pa.RecordBatch | None:
        """At CopyDone: an unterminated last line is a row; binary data must end in its trailer."""
        if not self._done:
            self._parse(final=True)
        if self.format == "binary" and not self._done:
            raise _bad_copy("unexpected EOF in COPY data", self._line + 1)
        return self.batch()

    def _parse(self, final: bool) -> None:
        if self.format == "binary":
            self._parse_binary()
        elif self.format == "csv":
            self._parse_csv(final)
        else:
            self._parse_text(final)

    def _add(self, fields: list[Any]) -> None:
        width = len(self.schema)
        if len(fields) != width:
            problem = (
                "extra data after last expected column" if len(fields) > width else "missing data"
            )
            raise _bad_copy(f"{problem}: {len(fields)} fields for {width} columns", self._line)
        self._rows.append(fields)
        self._lines.append(self._line)

    def _header(self, fields: list[str | None]) -> bool:
        """Whether this line is the header (checked against the column names for 'match')."""
        if self._started or self._options.header == "false":
            self._started = True
            return False
        self._started = True
        if self._options.header == "match" and fields != self.schema.names:
            raise _bad_copy("column names in the header do not match the table", self._line)
        return True

    def _parse_text(self, final: bool) -> None:
        end = self._buffer.rfind(b"\n") + 1
        lines = bytes(self._buffer[:end]).split(b"\n")[:-1]
        del self._buffer[:end]
        if final and self._buffer:
            lines.append(bytes(self._buffer))
            self._buffer.clear()
        for line in lines:
            self._line += 1
            line = line.removesuffix(b"\r")
            if line == b"\\.":
                self._done = True
                return
            fields = self._text_fields(line)
            if not self._header(fields):
                self._add(fields)

    def _text_fields(self, line: bytes) -> list[str | None]:
        if not line and not self.schema:
            return []
        delimiter, null = self._options.delimiter, self._options.null
        pieces = line.split(delimiter)
        if b"\\" in line:  # a backslash before the delimiter makes it data
            joined: list[bytes] = []
            for piece in pieces:
                if joined and (len(joined[-1]) - len(joined[-1].rstrip(b"\\"))) % 2:
                    joined[-1] += delimiter + piece
                else:
                    joined.append(piece)
            pieces = joined
        try:
            return [None if p == null else _copy_unescape(p) for p in pieces]
        except errors.Error as e:
            raise errors.from_sqlstate(e.sqlstate, f"{e.message} (COPY line {self._line})") from e

    def _parse_csv(self, final: bool) -> None:
        data, pos = bytes(self._buffer), 0
        while not self._done:
            match = self._csv_row.match(data, pos)
            if match is None and final and pos < len(data):
                match = self._csv_row.match(data + b"\n", pos)
                if match is None:
                    raise _bad_copy("unterminated CSV quoted field", self._line + 1)
            if match is None:
                break
            pos = min(match.end(), len(data))
            self._csv_line(match.group(1))
        del self._buffer[:pos]

    def _csv_line(self, row: bytes) -> None:
        self._line += 1
        if row == b"\\.":
            self._done = True
            return
        raw = self._csv_field.findall(row + self._options.delimiter) if row or self.schema else []
        try:
            fields = [self._csv_value(f) for f in raw]
        except errors.Error as e:
            raise errors.from_sqlstate(e.sqlstate, f"{e.message} (COPY line {self._line})") from e
        if not self._header(fields):
            self._add(fields)

    def _csv_value(self, raw: bytes) -> str | None:
        if self._options.quote not in raw:
            return None if raw == self._options.null else _utf8(raw)
        escaped = self._csv_escaped
        unquote = self._csv_quoted.sub(lambda m: escaped.sub(rb"\1", m.group(0)[1:-1]), raw)
        return _utf8(unquote)

    def _parse_binary(self) -> None:
        buffer, pos = self._buffer, 0
        if not self._started:
            if len(buffer) < 19:
                return
            if bytes(buffer[:11]) != COPY_SIGNATURE:
                raise _bad_copy("COPY file signature not recognized", 0)
            (extension,) = struct.unpack_from(">I", buffer, 15)
            if len(buffer) < 19 + extension:
                return
            del buffer[: 19 + extension]
            self._started = True
        while pos + 2 <= len(buffer) and not self._done:
            pos = self._binary_tuple(buffer, pos)
            if pos < 0:
                return
            del buffer[:pos]
            pos = 0
        if self._done and buffer:
            raise _bad_copy("received copy data after EOF marker", self._line)

    def _binary_tuple(self, buffer: bytearray, pos: int) -> int:
        """One tuple (or the trailer) from pos: the position after it, -1 while incomplete."""
        (count,) = struct.unpack_from(">h", buffer, pos)
        if count == -1:
            self._done = True
            return pos + 2
        if count != len(self.schema):
            raise _bad_copy(
                f"row field count is {count}, expected {len(self.schema)}", self._line + 1
            )
        pos += 2
        fields: list[bytes | None] = []
        for _ in range(count):
            if pos + 4 > len(buffer):
                return -1
            (length,) = struct.unpack_from(">i", buffer, pos)
            pos += 4 + max(length, 0)
            if pos > len(buffer):
                return -1
            fields.append(None if length < 0 else bytes(buffer[pos - length : pos]))
        self._line += 1
        self._add(fields)
        return pos

    def _column(self, i: int, values: list[Any], lines: list[int]) -> pa.Array:
        field, oid = self.schema.field(i), self._oids[i]
        if (
            self.format != "binary"
            and oid in _STRINGS
            and not isinstance(field.type, pa.BaseExtensionType)
        ):
            return pa.array(values, field.type)
        if self.format != "binary" and oid in (INT2, INT4, INT8, FLOAT4, FLOAT8):
            parsed = _arrow_parsed(values, field.type)
            if parsed is not None:
                return parsed
        decode = _decode_binary if self.format == "binary" else _decode_text
        out: list[Any] = []
        for value, line in zip(values, lines, strict=True):
            try:
                out.append(None if value is None else decode(value, oid))
            except errors.Error as e:
                message = f"{e.message} (COPY line {line}, column {field.name})"
                raise errors.from_sqlstate(e.sqlstate, message) from e
        try:
            return _to_arrow(out, field.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, errors.Error) as e:
            bad = _first_bad(out, field.type)
            message = f"value out of range for column {field.name} (COPY line {lines[bad]})"
            raise errors.from_sqlstate("22003", message) from e


_ESCAPES = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}
_COPY_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.)|$)", re.S)


def _copy_unescape(field: bytes) -> str:
    """COPY text's backslash sequences: \\n \\t ..., octal \\ooo, hex \\xhh, \\c as c."""
    if b"\\" in field:
        field = _COPY_ESCAPE.sub(_copy_escaped, field)
    return _utf8(field)


def _copy_escaped(match: re.Match[bytes]) -> bytes:
    octal, hexadecimal, char = match.groups()
    if octal or hexadecimal:
        return bytes([int(octal, 8) & 0xFF if octal else int(hexadecimal, 16)])
    return _ESCAPES.get(char, char) if char is not None else b"\\"


def _csv_patterns(options: _CopyOptions) -> tuple[re.Pattern[bytes], ...]:
    """Regexes for a CSV row (up to its line break), a field (with its delimiter), a quoted
    section (which may hold delimiters and line breaks) and an escaped character in it."""
    d, q, e = (re.escape(c) for c in (options.delimiter, options.quote, options.escape))
    inside = (
        b"(?:[^" + q + b"]|" + q + q + b")*" if e == q else b"(?:[^" + q + e + b"]|" + e + b".)*"
    )
    quoted = q + inside + q
    field = b"(?:" + quoted + b"|[^" + d + q + b"\r\n])*"
    row = re.compile(b"(" + field + b"(?:" + d + field + b")*)\r?\n", re.S)
    escaped = re.compile(e + b"([" + q + e + b"])")
    return row, re.compile(b"(" + field + b")" + d, re.S), re.compile(quoted, re.S), escaped


def _arrow_parsed(values: list[str | None], arrow_type: pa.DataType) -> pa.Array | None:
    """Numbers parsed by Arrow's cast, or None: then per value, for PostgreSQL's own spellings
    (' 1', '+1', 'Infinity'), out-of-range values and the line of an error."""
    try:
        parsed = pa.array(values, pa.string()).cast(arrow_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if pa.types.is_floating(arrow_type) and pc.any(pc.is_inf(parsed)).as_py():
        return None
    return parsed


def _arrow_value(value: Any, arrow_type: pa.DataType) -> Any:
    """A decoded value in the form pa.array takes for the column type."""
    if isinstance(value, list) and _is_list(arrow_type):
        return [_arrow_value(v, arrow_type.value_type) for v in value]
    if isinstance(value, Interval):
        if pa.types.is_duration(arrow_type):
            return _for_duckdb(value)
        return pa.MonthDayNano([value.months, value.days, value.microseconds * 1000])
    if isinstance(value, uuid.UUID):
        return value.bytes if pa.types.is_fixed_size_binary(arrow_type) else str(value)
    return value


def _to_arrow(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    if isinstance(arrow_type, pa.BaseExtensionType):
        storage = _to_arrow(values, arrow_type.storage_type)
        return pa.ExtensionArray.from_storage(arrow_type, storage)
    if pa.types.is_dictionary(arrow_type):
        return _to_arrow(values, arrow_type.value_type).dictionary_encode().cast(arrow_type)
    return pa.array([_arrow_value(v, arrow_type) for v in values], arrow_type)


def _first_bad(values: list[Any], arrow_type: pa.DataType) -> int:
    for i, value in enumerate(values):
        try:
            _to_arrow([value], arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, errors.Error):
            return i
    return 0
