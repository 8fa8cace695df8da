"""Fields of PostgreSQL protocol messages ("Message Data Types"): reading and writing them.

A ``Cursor`` reads the fields of one message body in order and turns any misfit (a field
running past the end, a string without its NUL, invalid UTF-8, bytes left over) into
``errors.ProtocolViolation``. A ``Codec`` pairs the writer and the reader of one kind of
field; message classes in :mod:`sqlml.wire.protocol` list one codec per dataclass field.
Writers raise ValueError or struct.error, which ``encode()`` turns into ProtocolViolation.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlml import errors

U8 = struct.Struct("!B")
U16 = struct.Struct("!H")
I32 = struct.Struct("!i")
U32 = struct.Struct("!I")
NULL = I32.pack(-1)

T = TypeVar("T")


# -- reading ---------------------------------------------------------------------------------------


class Cursor:
    """Reads the fields of one message body in order; any misfit is a ProtocolViolation."""

    __slots__ = ("data", "name", "pos")

    def __init__(self, data: bytes, name: str, pos: int = 0) -> None:
        self.data = data
        self.name = name  # the message's name, for error messages
        self.pos = pos

    def fail(self, reason: str) -> errors.ProtocolViolation:
        return errors.ProtocolViolation(f"malformed {self.name} message: {reason}")

    def _end(self, size: int) -> int:
        end = self.pos + size
        if end > len(self.data):
            raise self.fail("a field runs past the end of the message")
        return end

    def unpack(self, fmt: struct.Struct | str) -> tuple[int, ...]:
        fmt = fmt if isinstance(fmt, struct.Struct) else struct.Struct(fmt)
        end = self._end(fmt.size)
        values: tuple[int, ...] = fmt.unpack_from(self.data, self.pos)
        self.pos = end
        return values

    def uint8(self) -> int:
        return self.unpack(U8)[0]

    def uint16(self) -> int:
        return self.unpack(U16)[0]

    def int32(self) -> int:
        return self.unpack(I32)[0]

    def uint32(self) -> int:
        return self.unpack(U32)[0]

    def take(self, size: int) -> bytes:
        end = self._end(size)
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def cstr(self) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise self.fail("a string has no NUL terminator")
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f'invalid byte sequence for encoding "UTF8": {raw[:40]!r}') from e

    def done(self) -> None:
        if self.pos != len(self.data):
            raise self.fail(f"{len(self.data) - self.pos} bytes after the last field")


# -- field codecs: how each kind of field is written and read ------------------------------------


@dataclass(frozen=True, slots=True)
class Codec(Generic[T]):
    write: Callable[[T], bytes]
    read: Callable[[Cursor], T]


def cstr(text: str) -> bytes:
    raw = text.encode("utf-8")
    if b"\0" in raw:
        raise ValueError(f"string {text[:40]!r} contains a NUL character")
    return raw + b"\0"


def char(allowed: str) -> Codec[str]:
    """A Byte1 holding one of the ASCII characters in ``allowed``."""

    def write(value: str) -> bytes:
        if len(value) != 1 or value not in allowed:
            raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
        return value.encode("ascii")

    def read(c: Cursor) -> str:
        value = chr(c.uint8())
        if value not in allowed:
            raise c.fail(f"{value!r} is not one of {', '.join(allowed)}")
        return value

    return Codec(write, read)


def fixed(size: int) -> Codec[bytes]:
    """Exactly ``size`` bytes."""

    def write(value: bytes) -> bytes:
        if len(value) != size:
            raise ValueError(f"{len(value)} bytes where {size} belong")
        return value

    return Codec(write, lambda c: c.take(size))


def array(code: str) -> Codec[tuple[int, ...]]:
    """An Int16 count, then that many integers of struct type ``code``."""

    def write(values: tuple[int, ...]) -> bytes:
        return U16.pack(len(values)) + struct.pack(f"!{len(values)}{code}", *values)

    return Codec(write, lambda c: c.unpack(f"!{c.uint16()}{code}"))


def _write_values(values: tuple[bytes | None, ...]) -> bytes:
    parts = [U16.pack(len(values))]
    for value in values:
        parts.append(NULL if value is None else I32.pack(len(value)) + value)
    return b"".join(parts)


def _read_values(c: Cursor) -> tuple[bytes | None, ...]:
    found: list[bytes | None] = []
    for _ in range(c.uint16()):
        size = c.int32()
        if size < -1:
            raise c.fail(f"invalid value length {size}")
        found.append(None if size == -1 else c.take(size))
    return tuple(found)


def _write_names(names: tuple[str, ...]) -> bytes:
    """Non-empty strings, then an empty one (a lone zero byte) to end the list."""
    if any(not name for name in names):
        raise ValueError("an empty name would end the list early")
    return b"".join(cstr(name) for name in names) + b"\0"


def _read_names(c: Cursor) -> tuple[str, ...]:
    found: list[str] = []
    while name := c.cstr():
        found.append(name)
    return tuple(found)


def _write_pairs(pairs: Mapping[str, str]) -> bytes:
    """StartupMessage parameters: name and value strings, then an empty name."""
    if any(not name for name in pairs):
        raise ValueError("an empty parameter name would end the list early")
    return b"".join(cstr(k) + cstr(v) for k, v in pairs.items()) + b"\0"


def _read_pairs(c: Cursor) -> dict[str, str]:
    found: dict[str, str] = {}
    while name := c.cstr():
        found[name] = c.cstr()
    return found


def _write_fields(fields: Mapping[str, str]) -> bytes:
    """ErrorResponse/NoticeResponse fields: a one-byte code (Latin-1) and a string each."""
    parts = []
    for code, value in fields.items():
        if len(code) != 1 or not 0 < ord(code) < 256:
            raise ValueError(f"{code!r} is not a one-byte field code")
        parts.append(code.encode("latin-1") + cstr(value))
    return b"".join(parts) + b"\0"


def _read_fields(c: Cursor) -> dict[str, str]:
    found: dict[str, str] = {}
    while code := c.uint8():
        found[chr(code)] = c.cstr()
    return found


def _write_counted(names: tuple[str, ...]) -> bytes:
    return U32.pack(len(names)) + b"".join(cstr(name) for name in names)


def _same(value: bytes) -> bytes:
    return value


STRING = Codec(cstr, Cursor.cstr)  # String: UTF-8, NUL-terminated
INT32 = Codec(I32.pack, Cursor.int32)
UINT32 = Codec(U32.pack, Cursor.uint32)  # OIDs, process IDs, cancel keys
UINT8 = Codec(U8.pack, Cursor.uint8)
REST = Codec(_same, Cursor.rest)  # Byten: the rest of the body
KIND = char("SP")  # Describe and Close: prepared statement or portal
INT16S = array("h")  # Int16 count, then Int16 each (format codes)
OIDS = array("I")  # Int16 count, then Int32 each (type OIDs)
VALUES = Codec(_write_values, _read_values)  # Int16 count, then Int32 length (-1: NULL) + bytes
NAMES = Codec(_write_names, _read_names)  # strings, ended by an empty one
PAIRS = Codec(_write_pairs, _read_pairs)  # name and value strings, ended by an empty name
FIELDS = Codec(_write_fields, _read_fields)  # Byte1 code + String each, ended by a zero byte
COUNTED = Codec(_write_counted, lambda c: tuple(c.cstr() for _ in range(c.uint32())))  # Int32 n
