"""COPY TO STDOUT and COPY FROM STDIN data in text, csv and binary format.

Theory of operation. The way out reuses types.py's column encoders: a text or csv line is each
column's text output, escaped (text) or quoted where PostgreSQL quotes (csv), all joined in one
``binary_join_element_wise``; binary tuples are assembled as DataRows are, without the message
header, and go between ``copy_binary_header`` and ``copy_binary_trailer``.

The way in: ``CopyInParser`` is fed CopyData chunks split anywhere (a client may send a message
per row: pgbench does) and parses what gathered every _PARSE_BYTES. Complete lines without
quotes (csv), carriage returns, end marker or stray backslashes (text) are split column-wise by
Arrow (``_split_fields``); anything else goes row by row (text lines with backslash escapes, csv
rows by regex, binary tuples), which also names the line of a malformed row. Each column is
then converted to Arrow: numbers by Arrow's cast where it can, else value by value with
params.py's decoders, naming the COPY line of a bad value. The module does no I/O: bytes in,
bytes or Arrow out.
"""

from __future__ import annotations

import re
import struct
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sqlml import errors
from sqlml.engines.pgtypes import FLOAT4, FLOAT8, INT2, INT4, INT8
from sqlml.wire._columns import _fixed, _is_list, _join, _lengths, _offsets, _payload
from sqlml.wire._values import _STRINGS, Interval
from sqlml.wire.params import _decode_binary, _decode_text, _for_duckdb, _utf8
from sqlml.wire.protocol import CopyData
from sqlml.wire.types import _binary, _text, _tuples, wire_type

__all__ = [
    "COPY_SIGNATURE",
    "CopyInParser",
    "CopyOut",
    "copy_binary_header",
    "copy_binary_trailer",
    "copy_out",
    "validate_options",
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


def copy_out(batch: pa.RecordBatch, format: str, options: dict[str, str] | None = None) -> bytes:
    """The batch's rows as COPY TO STDOUT writes them: 'text', 'csv' or 'binary' (tuples only:
    the header and trailer come from copy_binary_header and copy_binary_trailer)."""
    if format == "binary":
        return _tuples([_binary(c) for c in batch.columns], batch.num_rows, data_row=False)
    return bytes(_payload(_lines(batch, _copy_options(format, options or {}, True), format)))


class CopyOut:
    """COPY TO STDOUT as the CopyData messages PostgreSQL sends: one per row (clients such as
    ADBC and psycopg's ``rows()`` read a row per message), the binary header in front of the
    first row, a header line and the binary trailer in messages of their own."""

    def __init__(self, schema: pa.Schema, format: str, options: dict[str, str] | None = None):
        self.schema = schema
        self.format = format
        self._options = _copy_options(format, options or {}, to_client=True)

    @property
    def format_code(self) -> int:
        """CopyOutResponse's format: 1 binary, 0 text (csv included), for every column too."""
        return 1 if self.format == "binary" else 0

    def messages(self, table: pa.Table, batch_rows: int = 8192) -> Iterator[bytes]:
        """The CopyData messages of the table's rows, ``batch_rows`` rows at a time."""
        start = 0
        if self.format == "binary":
            if not table.num_rows:  # PostgreSQL: header and trailer in one message
                yield CopyData(copy_binary_header() + copy_binary_trailer()).encode()
                return
            first = table.slice(0, 1).combine_chunks().to_batches()[0]
            yield CopyData(copy_binary_header() + copy_out(first, "binary")).encode()
            start = 1
        elif self._options.header == "true":
            yield self._header()
        for offset in range(start, table.num_rows, batch_rows):
            chunk = table.slice(offset, batch_rows).combine_chunks()
            for batch in chunk.to_batches():
                yield self._rows(batch)
        if self.format == "binary":
            yield CopyData(copy_binary_trailer()).encode()

    def _header(self) -> bytes:
        names = [pa.array([name], pa.large_string()) for name in self.schema.names]
        batch = pa.RecordBatch.from_arrays(names, names=[str(i) for i in range(len(names))])
        return _framed(_lines(batch, self._options, self.format, names=True))

    def _rows(self, batch: pa.RecordBatch) -> bytes:
        if self.format == "binary":
            return _binary_messages(batch)
        return _framed(_lines(batch, self._options, self.format))


def _lines(
    batch: pa.RecordBatch, options: _CopyOptions, format: str, names: bool = False
) -> pa.Array:
    """Each row of the batch as a text or csv line with its line break, as large_string (a
    header line: the batch's columns hold the names, one value each)."""
    if not batch.num_columns:
        return pa.array(["\n"] * batch.num_rows, pa.large_string())
    single = batch.num_columns == 1
    texts = [c.cast(pa.large_string()) if names else _text(c) for c in batch.columns]
    delimiter, null = options.delimiter.decode(), options.null.decode()
    if format == "text":
        cells = [_copy_escape(t, delimiter) for t in texts]
    else:
        cells = [_csv_quote(t, single, options) for t in texts]
    lines = _join(cells, delimiter, null_handling="replace", null_replacement=null)
    return _join([lines, "\n"])


def _framed(rows: pa.Array) -> bytes:
    """Each value of a large_string array as one CopyData message: 'd', int32 length, bytes."""
    lengths = np.diff(_offsets(rows))
    head = np.empty(len(rows), [("kind", "S1"), ("length", ">i4")])
    head["kind"], head["length"] = b"d", lengths + 4
    return bytes(_payload(_join([_fixed(head, head.itemsize, len(rows)), rows], b"")))


def _binary_messages(batch: pa.RecordBatch) -> bytes:
    """Each row as a CopyData message holding its binary tuple. A binary tuple is a DataRow's
    body, so the DataRows are built (column-wise) and their type bytes turned from 'D' to 'd'."""
    columns = [_binary(c) for c in batch.columns]
    data = bytearray(_tuples(columns, batch.num_rows, data_row=True))
    sizes = np.full(batch.num_rows, 7, np.int64)  # type, length, field count
    for column in columns:
        sizes += 4 + np.maximum(_lengths(column), 0)
    np.frombuffer(data, np.uint8)[np.cumsum(sizes) - sizes] = ord("d")
    return bytes(data)


def _copy_escape(text: pa.Array, delimiter: str = "\t") -> pa.Array:
    """COPY text's escapes: backslash, control characters, and the delimiter."""
    extra = "" if delimiter in "\b\f\n\r\t\v\\" else re.escape(delimiter)
    if not pc.any(pc.match_substring_regex(text, r"[\\\x08-\x0d" + extra + "]")).as_py():
        return text
    for char, escaped in _COPY_TEXT_ESCAPES:
        text = pc.replace_substring(text, char, escaped)
    return pc.replace_substring(text, delimiter, "\\" + delimiter) if extra else text


def _csv_quote(text: pa.Array, single: bool, options: _CopyOptions) -> pa.Array:
    """Quoted where PostgreSQL quotes: a value equal to the NULL marker, one holding the
    delimiter, the quote or a line break, and a lone \\. in a one-column file; inside quotes the
    quote and escape characters get the escape character before them."""
    quote, escape = options.quote.decode(), options.escape.decode()
    needs = pc.equal(text, options.null.decode())
    for char in {options.delimiter.decode(), quote, "\n", "\r"}:
        needs = pc.or_(needs, pc.match_substring(text, char))
    if single:
        needs = pc.or_(needs, pc.equal(text, "\\."))
    inner = text
    if escape != quote:
        inner = pc.replace_substring(inner, escape, escape + escape)
    inner = pc.replace_substring(inner, quote, escape + quote)
    return pc.if_else(needs, _join([quote, inner, quote]), text)


# -- COPY FROM ------------------------------------------------------------------------------


_PARSE_BYTES = 1 << 18  # COPY FROM data gathered before it is parsed


_INT16, _INT32 = struct.Struct(">h"), struct.Struct(">i")


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
_FALSE_WORDS = ("false", "off", "0", "no")
_KNOWN = {"delimiter", "null", "header", "quote", "escape", "format"}


def validate_options(format: str, given: dict[str, str], to_client: bool = False) -> None:
    """Raises PostgreSQL's error for options COPY does not take: an unknown format (22023) or
    option (42601), text options in binary format, csv options outside csv (0A000), HEADER
    MATCH on the way out."""
    _copy_options(format, given, to_client)


def _copy_options(format: str, given: dict[str, str], to_client: bool = False) -> _CopyOptions:
    if format not in ("text", "csv", "binary"):
        raise errors.InvalidParameterValue(f'COPY format "{format}" not recognized')
    options = {key.lower(): value for key, value in given.items()}
    unknown = set(options) - _KNOWN
    if unknown:
        raise errors.SyntaxError(f'option "{sorted(unknown)[0]}" not recognized')
    _check_format_options(format, options, to_client)
    csv = format == "csv"
    delimiter = options.get("delimiter", "," if csv else "\t").encode()
    quote = options.get("quote", '"').encode()
    header = options.get("header", "false").lower()
    header = "match" if header == "match" else ("true" if header in _TRUE_WORDS else "false")
    escape = options.get("escape", quote.decode()).encode()
    if len(delimiter) != 1 or len(quote) != 1 or delimiter in (b"\n", b"\r", quote):
        raise errors.InvalidParameterValue(
            "COPY delimiter and quote must be distinct single characters"
        )
    if len(escape) != 1:
        raise errors.InvalidParameterValue("COPY escape must be a single one-byte character")
    null = options.get("null", "" if csv else "\\N").encode()
    return _CopyOptions(delimiter, null, quote, escape, header)


def _check_format_options(format: str, options: dict[str, str], to_client: bool) -> None:
    if format == "binary" and {"delimiter", "null", "header"} & set(options):
        raise errors.SyntaxError("cannot specify DELIMITER, NULL or HEADER in BINARY mode")
    if format != "csv" and {"quote", "escape"} & set(options):
        raise errors.FeatureNotSupported("COPY QUOTE and ESCAPE are available only in CSV mode")
    header = options.get("header", "false").lower()
    if header not in (*_TRUE_WORDS, *_FALSE_WORDS, "match"):
        raise errors.InvalidParameterValue('header requires a Boolean value or "match"')
    if header == "match" and to_client:
        raise errors.FeatureNotSupported('cannot use "match" with HEADER in COPY TO')


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
        self._rows: list[list[Any]] = []  # complete rows not yet converted: raw field values
        self._lines: list[int] = []  # the line number of each of them
        self._converted: list[pa.RecordBatch] = []  # rows converted, not yet returned
        self._line = 0  # lines (binary: tuples) consumed so far
        self._started = False  # the header line or binary header is behind us
        self._done = False  # the end marker (\. or the binary trailer) has been read
        if format == "csv":
            patterns = _csv_patterns(self._options)
            self._csv_row, self._csv_field, self._csv_quoted, self._csv_escaped = patterns

    @property
    def pending(self) -> int:
        """Complete rows parsed and not yet returned by batch()."""
        return len(self._rows) + sum(int(b.num_rows) for b in self._converted)

    def feed(self, data: bytes) -> None:
        """One CopyData message's bytes."""
        if self._done:
            if self.format == "binary" and data:
                raise _bad_copy("received copy data after EOF marker", self._line)
            return
        self._buffer += data
        if len(self._buffer) >= _PARSE_BYTES:
            self._parse(final=False)

    def batch(self) -> pa.RecordBatch | None:
        """The complete rows since the last call, converted to the schema (None: no rows)."""
        if not self._done:
            self._parse(final=False)
        self._convert_rows()
        if not self._converted:
            return None
        batches, self._converted = self._converted, []
        return batches[0] if len(batches) == 1 else pa.concat_batches(batches)

    def _convert_rows(self) -> None:
        """The rows parsed row by row, converted (before any rows parsed after them)."""
        if not self._rows:
            return
        rows, lines = self._rows, self._lines
        self._rows, self._lines = [], []
        columns = [
            self._column(i, [row[i] for row in rows], lines) for i in range(len(self.schema))
        ]
        self._converted.append(pa.RecordBatch.from_arrays(columns, schema=self.schema))

    def finish(self) -> pa.RecordBatch | None:
        """At CopyDone: an unterminated last line is a row; binary data may end without its
        trailer (ADBC sends none; PostgreSQL takes that), but not inside its header or a tuple."""
        if not self._done:
            self._parse(final=True)
        if self.format == "binary" and not self._done and (self._buffer or not self._started):
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
        region = bytes(self._buffer[:end])
        del self._buffer[:end]
        if final and self._buffer:
            region += bytes(self._buffer) + b"\n"
            self._buffer.clear()
        if region and not self._started:  # the header (or first) line, the row-wise way
            first, _, region = region.partition(b"\n")
            self._text_lines([first])
        if region and not self._done and not self._columnwise(region):
            self._text_lines(region.split(b"\n")[:-1])

    def _text_lines(self, lines: list[bytes]) -> None:
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
        if not self._started:  # the header (or first) row, the row-wise way
            self._csv_rows(final, limit=1)
        end = self._buffer.rfind(b"\n") + 1
        if self._started and not self._done and end and self._columnwise(bytes(self._buffer[:end])):
            del self._buffer[:end]
        self._csv_rows(final)

    def _csv_rows(self, final: bool, limit: int = -1) -> None:
        data, pos = bytes(self._buffer), 0
        while not self._done and limit != 0:
            limit -= 1
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

    def _columnwise(self, region: bytes) -> bool:
        """Complete lines (``region`` ends in a line break) split into columns by Arrow and
        converted; False, with nothing done, for lines that need the row-wise way: carriage
        returns, the end marker, a backslash before a delimiter (text), a quote that does not
        wrap a whole field (csv: a delimiter or line break inside quotes, say), a line with
        too many or too few fields, bytes that are not UTF-8."""
        options, width = self._options, len(self.schema)
        if not width or b"\r" in region or region.startswith(b"\\.\n") or b"\n\\.\n" in region:
            return False
        csv = self.format == "csv"
        odd_escape = options.escape != options.quote  # then "" inside quotes is no quote
        if csv and odd_escape and (options.escape in region or options.quote in region):
            return False
        columns = _split_fields(region, width, options.delimiter)
        if columns is None:
            return False
        quote = options.quote if csv and options.quote in region else None
        cells = [_cells(c, options.null, not csv, quote) for c in columns]
        if any(c is None for c in cells):
            return False
        count, first = len(columns[0]), self._line + 1
        lines = range(first, first + count)
        converted = [self._column(i, c, lines) for i, c in enumerate(cells)]
        self._convert_rows()
        self._converted.append(pa.RecordBatch.from_arrays(converted, schema=self.schema))
        self._line += count
        return True

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
        data = bytes(buffer)
        pos = self._binary_tuples(data)
        del buffer[:pos]  # once: deleting from the front per tuple is quadratic
        if self._done and buffer:
            raise _bad_copy("received copy data after EOF marker", self._line)

    def _binary_tuples(self, data: bytes) -> int:
        """The complete tuples of ``data`` (and the trailer) as rows; returns where the first
        incomplete one starts. One loop, for speed: a binary COPY is read field by field."""
        width, end, pos = len(self.schema), len(data), 0
        int16, int32 = _INT16.unpack_from, _INT32.unpack_from
        while pos + 2 <= end:
            (count,) = int16(data, pos)
            if count == -1:
                self._done = True
                return pos + 2
            if count != width:
                raise _bad_copy(f"row field count is {count}, expected {width}", self._line + 1)
            at, fields = pos + 2, []
            for _ in range(count):
                if at + 4 > end:
                    return pos
                (length,) = int32(data, at)
                at += 4 + max(length, 0)
                fields.append(None if length < 0 else data[at - length : at])
            if at > end:
                return pos
            self._line += 1
            self._rows.append(fields)
            self._lines.append(self._line)
            pos = at
        return pos

    def _column(self, i: int, values: list[Any] | pa.Array, lines: Sequence[int]) -> pa.Array:
        """Column ``i``'s raw values (text: strings; binary: bytes; None for NULL) converted to
        its Arrow type; ``lines`` are their COPY lines, for errors."""
        field, oid = self.schema.field(i), self._oids[i]
        if (
            self.format != "binary"
            and oid in _STRINGS
            and not isinstance(field.type, pa.BaseExtensionType)
        ):
            if isinstance(values, pa.Array) and not pa.types.is_null(field.type):
                return values.cast(field.type)
            return pa.array(_pylist(values), field.type)
        if self.format != "binary" and oid in (INT2, INT4, INT8, FLOAT4, FLOAT8):
            parsed = _arrow_parsed(values, field.type)
            if parsed is not None:
                return parsed
        values = _pylist(values)
        if self.format == "binary" and oid in _BINARY_NUMBERS:
            numbers = _binary_numbers(values, _BINARY_NUMBERS[oid], field.type)
            if numbers is not None:
                return numbers
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


# binary COPY numbers read by numpy: type OID -> big-endian dtype
_BINARY_NUMBERS = {INT2: ">i2", INT4: ">i4", INT8: ">i8", FLOAT4: ">f4", FLOAT8: ">f8"}


def _binary_numbers(
    values: list[bytes | None], dtype: str, arrow_type: pa.DataType
) -> pa.Array | None:
    """Binary numbers of one width all (NULLs aside), by numpy; None: per value (a wrong
    width, which names its line)."""
    width = np.dtype(dtype).itemsize
    present = [v for v in values if v is not None]
    if any(len(v) != width for v in present):
        return None
    numbers = np.frombuffer(b"".join(present), dtype).astype(dtype[1:])
    if len(present) == len(values):
        return pa.array(numbers).cast(arrow_type)
    mask = np.array([v is None for v in values])
    full = np.zeros(len(values), numbers.dtype)
    full[~mask] = numbers
    return pa.array(full, mask=mask).cast(arrow_type)


def _pylist(values: list[Any] | pa.Array) -> list[Any]:
    return values.to_pylist() if isinstance(values, pa.Array) else values


def _split_fields(region: bytes, width: int, delimiter: bytes) -> list[pa.Array] | None:
    """The fields of the lines of ``region`` (each ending in a line break), column by column as
    large_binary; None unless every line has ``width`` fields."""
    if delimiter[0] >= 0x80:  # Arrow splits by a UTF-8 pattern
        return None
    lines = pc.split_pattern(pa.array([region[:-1]], pa.large_binary()), "\n").flatten()
    fields = pc.split_pattern(lines, delimiter.decode())
    if not pc.all(pc.equal(pc.list_value_length(fields), width)).as_py():
        return None
    flat = fields.flatten()
    return [flat.take(pa.array(np.arange(j, len(flat), width))) for j in range(width)]


def _cells(raw: pa.Array, null: bytes, unescape: bool, quote: bytes | None) -> pa.Array | None:
    """Raw field bytes as large_string, the NULL marker as NULL, text escapes resolved, csv
    quotes taken off; None for bytes that are not UTF-8, (text) a value ending in a backslash,
    which escapes the delimiter after it, or (csv) a quote that does not wrap a whole field:
    the row-wise way reads those."""
    is_null = pc.equal(raw, pa.scalar(null, pa.large_binary()))
    if quote is not None:
        mark = quote.decode()
        q = re.escape(mark)
        wrapped = pc.match_substring_regex(raw, f"^{q}(?:[^{q}]|{q}{q})*{q}$")
        if pc.any(pc.and_not(pc.match_substring(raw, mark), wrapped)).as_py():
            return None
        inner = pc.replace_substring(pc.binary_slice(raw, 1, -1), mark * 2, mark)
        raw = pc.if_else(wrapped, inner, raw)
        is_null = pc.and_not(is_null, wrapped)  # a quoted value is never NULL
    if unescape:
        escaped = pc.and_not(pc.match_substring(raw, "\\"), is_null)
        if pc.any(escaped).as_py():
            if pc.any(pc.and_not(pc.match_substring_regex(raw, r"\\$"), is_null)).as_py():
                return None
            mask = np.asarray(escaped.to_numpy(zero_copy_only=False), dtype=np.bool_)
            try:
                fixed = [_copy_unescape(raw[int(i)].as_py()) for i in np.flatnonzero(mask)]
            except errors.Error:
                return None
            return _strings(raw, is_null, fixed, mask)
    return _strings(raw, is_null, [], None)


def _strings(raw: pa.Array, is_null: pa.Array, fixed: list[str], mask: Any) -> pa.Array | None:
    try:
        text = raw.cast(pa.large_string())
    except pa.ArrowInvalid:
        return None
    if mask is not None:
        text = pc.replace_with_mask(text, pa.array(mask), pa.array(fixed, pa.large_string()))
    return pc.if_else(is_null, pa.scalar(None, pa.large_string()), text)


def _arrow_parsed(values: list[str | None] | pa.Array, arrow_type: pa.DataType) -> pa.Array | None:
    """Numbers parsed by Arrow's cast, or None: then per value, for PostgreSQL's own spellings
    (' 1', '+1', 'Infinity'), out-of-range values and the line of an error."""
    try:
        strings = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        parsed = strings.cast(arrow_type)
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
