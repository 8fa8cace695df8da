"""Sans-IO codec for the PostgreSQL frontend/backend protocol, version 3.0.

Theory of operation. Every message is a frozen dataclass named as in the PostgreSQL
documentation ("Message Formats"), and ``encode()`` gives its exact bytes. Two readers turn
bytes back into messages: :class:`FrontendReader` parses what a client sends (the gateway's
side), :class:`BackendReader` what a server sends (a proxy's side). Neither touches a socket:
the caller ``feed``\\s whatever bytes arrived and calls ``next`` until it returns ``None``
(the next message is incomplete).

Layouts. A message class lists one codec per dataclass field, in wire order (``_layout``);
the same codecs write and read the fields, so encoding and decoding cannot drift apart. A
class with a ``code`` (authentication requests, SSLRequest and friends) writes that Int32
before its fields; the reader reads it to pick the class.

Framing. After start-up every message is ``Byte1(type) Int32(length) body``, the length
counting itself but not the type byte. The first packets a client sends (StartupMessage,
SSLRequest, GSSENCRequest, CancelRequest) have no type byte and are told apart by the Int32
code opening the body; any 3.x code is a StartupMessage (the gateway answers a minor version
it lacks with NegotiateProtocolVersion). FrontendReader starts in that phase and leaves it
once it returned a StartupMessage. After SSLRequest or GSSENCRequest it stays there: the
server writes its one-byte answer (``b"S"``/``b"G"`` or ``b"N"``, not a message) itself, and
first checks ``buffered == 0``, since bytes that came in the clear after the request are not
to be trusted once encryption starts. BackendReader only knows typed messages; a proxy reads
the one-byte answer to its own SSLRequest before it feeds the reader.

Validation. A declared length is checked as soon as its header arrived, before the body is
buffered; a message is decoded only when whole, and its fields must use up its body exactly.
Malformed input raises ``errors.ProtocolViolation`` (08P01); a message type or authentication
method that is known but not implemented raises ``errors.FeatureNotSupported`` (0A000). Once a
reader raised, framing is lost: every later call raises too and the connection must close.
Encoding a message that cannot be framed (a NUL inside a string, an integer out of range)
raises ``errors.ProtocolViolation`` as well.

Fields. Strings are UTF-8 (the gateway speaks client_encoding UTF8 only); invalid UTF-8 is
malformed input. Int32 fields holding OIDs, process IDs and cancel keys are unsigned; lengths,
sizes, type modifiers and format codes are signed; Int16 counts are unsigned, as PostgreSQL
reads them. Cancel keys are the 4 bytes of protocol 3.0 (3.2's longer keys are not supported).

Buffering. A reader keeps one bytearray and an offset into it. A body is copied out once; the
consumed prefix is dropped when it is at least half the buffer, so piping a long COPY
through a reader costs time linear in its size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Self, TypeAlias, TypeVar, get_args

from sqlml import errors
from sqlml.wire._codec import (
    COUNTED,
    FIELDS,
    I32,
    INT16S,
    INT32,
    KIND,
    NAMES,
    OIDS,
    PAIRS,
    REST,
    STRING,
    U16,
    U32,
    UINT8,
    UINT32,
    VALUES,
    Codec,
    Cursor,
    char,
    cstr,
    fixed,
)

PROTOCOL_VERSION = 196608  # 3.0: major version 3 in the high 16 bits, minor 0 in the low
SSL_REQUEST_CODE = 80877103  # 1234.5679
GSSENC_REQUEST_CODE = 80877104  # 1234.5680
CANCEL_REQUEST_CODE = 80877102  # 1234.5678
MAX_STARTUP_PACKET = 10000  # PostgreSQL's limit on an untyped start-up packet
_COMPACT_AT = 1 << 16  # drop a consumed prefix no shorter than this (and half the buffer)

_FIELD = struct.Struct("!IhIhih")  # RowDescription: table, column, type, size, modifier, format


# -- the message base -----------------------------------------------------------------------------


class _Message:
    """Base of every message: type byte (none for start-up packets), Int32 length, then the
    Int32 ``code`` if the class has one, then the fields as ``_layout`` says."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()  # the field names (dataclass sets them)
    type_code: ClassVar[bytes] = b""
    code: ClassVar[int | None] = None
    _layout: ClassVar[tuple[Codec[Any], ...]] = ()

    def encode(self) -> bytes:
        """The message's bytes on the wire."""
        try:
            body = self._body()
            return b"".join((self.type_code, I32.pack(len(body) + 4), body))
        except (struct.error, ValueError) as e:
            raise errors.ProtocolViolation(f"cannot encode {type(self).__name__}: {e}") from e

    def _body(self) -> bytes:
        parts = [] if self.code is None else [I32.pack(self.code)]
        for codec, name in zip(self._layout, self.__match_args__, strict=True):
            parts.append(codec.write(getattr(self, name)))
        return b"".join(parts)

    @classmethod
    def _decode(cls, c: Cursor) -> Self:
        return cls(*[codec.read(c) for codec in cls._layout])


# -- frontend messages ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupMessage(_Message):
    """StartupMessage (F): protocol version and run-time parameters (user, database, ...)."""

    parameters: dict[str, str]
    protocol: int = PROTOCOL_VERSION

    def _body(self) -> bytes:
        return U32.pack(self.protocol) + PAIRS.write(self.parameters)


@dataclass(frozen=True, slots=True)
class SSLRequest(_Message):
    """SSLRequest (F): asks for TLS; the server answers with one byte, 'S' or 'N'."""

    code = SSL_REQUEST_CODE


@dataclass(frozen=True, slots=True)
class GSSENCRequest(_Message):
    """GSSENCRequest (F): asks for GSSAPI encryption; answered with one byte, 'G' or 'N'."""

    code = GSSENC_REQUEST_CODE


@dataclass(frozen=True, slots=True)
class CancelRequest(_Message):
    """CancelRequest (F): sent on a new connection to cancel a running query."""

    code = CANCEL_REQUEST_CODE
    _layout = (UINT32, UINT32)
    process_id: int
    secret_key: int


@dataclass(frozen=True, slots=True)
class PasswordMessage(_Message):
    """PasswordMessage, SASLInitialResponse or SASLResponse (F), kept raw: which one it is
    depends on the authentication exchange. See password_text and sasl_initial_response."""

    type_code = b"p"
    _layout = (REST,)
    data: bytes


@dataclass(frozen=True, slots=True)
class Query(_Message):
    """Query (F): a simple-query string, possibly several statements."""

    type_code = b"Q"
    _layout = (STRING,)
    query: str


@dataclass(frozen=True, slots=True)
class Parse(_Message):
    """Parse (F): prepares ``query`` as statement ``name`` ("" is the unnamed statement)."""

    type_code = b"P"
    _layout = (STRING, STRING, OIDS)
    name: str
    query: str
    param_types: tuple[int, ...] = ()  # parameter type OIDs; 0 leaves a type unspecified


@dataclass(frozen=True, slots=True)
class Bind(_Message):
    """Bind (F): binds parameter values to a prepared statement, creating a portal. Raises
    ProtocolViolation unless there are 0 parameter formats, 1 for all, or 1 per parameter."""

    type_code = b"B"
    _layout = (STRING, STRING, INT16S, VALUES, INT16S)
    portal: str
    statement: str
    param_formats: tuple[int, ...]  # 0 text, 1 binary
    params: tuple[bytes | None, ...]  # None is NULL
    result_formats: tuple[int, ...]

    def __post_init__(self) -> None:
        formats, params = len(self.param_formats), len(self.params)
        if formats > 1 and formats != params:
            raise errors.ProtocolViolation(
                f"malformed Bind message: {formats} parameter formats but {params} parameters"
            )


@dataclass(frozen=True, slots=True)
class Describe(_Message):
    """Describe (F): kind 'S' (prepared statement) or 'P' (portal)."""

    type_code = b"D"
    _layout = (KIND, STRING)
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class Execute(_Message):
    """Execute (F): runs a portal; ``max_rows`` 0 means no limit."""

    type_code = b"E"
    _layout = (STRING, INT32)
    portal: str
    max_rows: int = 0


@dataclass(frozen=True, slots=True)
class Sync(_Message):
    """Sync (F): ends an extended-query batch; the server answers ReadyForQuery."""

    type_code = b"S"


@dataclass(frozen=True, slots=True)
class Flush(_Message):
    """Flush (F): asks the server to send what it has buffered."""

    type_code = b"H"


@dataclass(frozen=True, slots=True)
class Close(_Message):
    """Close (F): kind 'S' (prepared statement) or 'P' (portal)."""

    type_code = b"C"
    _layout = (KIND, STRING)
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class CopyData(_Message):
    """CopyData (F & B): a chunk of a COPY stream."""

    type_code = b"d"
    _layout = (REST,)
    data: bytes


@dataclass(frozen=True, slots=True)
class CopyDone(_Message):
    """CopyDone (F & B): the COPY stream ended."""

    type_code = b"c"


@dataclass(frozen=True, slots=True)
class CopyFail(_Message):
    """CopyFail (F): the client aborts COPY FROM STDIN with this message."""

    type_code = b"f"
    _layout = (STRING,)
    message: str


@dataclass(frozen=True, slots=True)
class Terminate(_Message):
    """Terminate (F): the client closes the session."""

    type_code = b"X"


# -- the 'p' family -------------------------------------------------------------------------------


def password_text(data: bytes) -> str:
    """The password of a PasswordMessage (cleartext or md5): a NUL-terminated string. Bytes
    that are not UTF-8 are kept as surrogate escapes, so the password's bytes survive."""
    end = data.find(b"\0")
    if end < 0 or end != len(data) - 1:
        raise errors.ProtocolViolation("malformed PasswordMessage: expected one NUL-ended string")
    return data[:end].decode("utf-8", "surrogateescape")


def sasl_initial_response(data: bytes) -> tuple[str, bytes]:
    """The mechanism and client-first-message of a SASLInitialResponse (-1 length: empty)."""
    c = Cursor(data, "SASLInitialResponse")
    mechanism = c.cstr()
    size = c.int32()
    if size < -1:
        raise c.fail(f"invalid length {size}")
    response = b"" if size == -1 else c.take(size)
    c.done()
    return mechanism, response


def encode_sasl_initial_response(mechanism: str, data: bytes) -> PasswordMessage:
    """A SASLInitialResponse as the PasswordMessage that carries it."""
    try:
        head = cstr(mechanism)
    except ValueError as e:
        raise errors.ProtocolViolation(f"cannot encode SASLInitialResponse: {e}") from e
    return PasswordMessage(head + I32.pack(len(data)) + data)


# -- backend messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticationOk(_Message):
    """AuthenticationOk (B): authentication succeeded."""

    type_code = b"R"
    code = 0


@dataclass(frozen=True, slots=True)
class AuthenticationCleartextPassword(_Message):
    """AuthenticationCleartextPassword (B): send the password in clear text."""

    type_code = b"R"
    code = 3


@dataclass(frozen=True, slots=True)
class AuthenticationMD5Password(_Message):
    """AuthenticationMD5Password (B): send the password md5-hashed with this 4-byte salt."""

    type_code = b"R"
    code = 5
    _layout = (fixed(4),)
    salt: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASL(_Message):
    """AuthenticationSASL (B): the SASL mechanisms the server offers, in its preference order."""

    type_code = b"R"
    code = 10
    _layout = (NAMES,)
    mechanisms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AuthenticationSASLContinue(_Message):
    """AuthenticationSASLContinue (B): a server challenge (SCRAM's server-first-message)."""

    type_code = b"R"
    code = 11
    _layout = (REST,)
    data: bytes


@dataclass(frozen=True, slots=True)
class AuthenticationSASLFinal(_Message):
    """AuthenticationSASLFinal (B): the outcome data (SCRAM's server-final-message)."""

    type_code = b"R"
    code = 12
    _layout = (REST,)
    data: bytes


@dataclass(frozen=True, slots=True)
class ParameterStatus(_Message):
    """ParameterStatus (B): the current value of a reported run-time parameter."""

    type_code = b"S"
    _layout = (STRING, STRING)
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class BackendKeyData(_Message):
    """BackendKeyData (B): the process ID and secret key a CancelRequest must quote."""

    type_code = b"K"
    _layout = (UINT32, UINT32)
    process_id: int
    secret_key: int


@dataclass(frozen=True, slots=True)
class ReadyForQuery(_Message):
    """ReadyForQuery (B): transaction status 'I' (idle), 'T' (in a block) or 'E' (failed)."""

    type_code = b"Z"
    _layout = (char("ITE"),)
    status: str


@dataclass(frozen=True, slots=True)
class Field:
    """One column of a RowDescription (not a message)."""

    name: str
    table_oid: int  # 0 unless the column is a table's column
    column_number: int  # the table column's attribute number, else 0
    type_oid: int
    type_size: int  # pg_type.typlen: negative for variable width
    type_modifier: int  # pg_attribute.atttypmod, -1 when none
    format: int  # 0 text, 1 binary (0 when answering Describe of a statement)


def _write_row_fields(fields: tuple[Field, ...]) -> bytes:
    parts = [U16.pack(len(fields))]
    for f in fields:
        numbers = (f.table_oid, f.column_number, f.type_oid, f.type_size, f.type_modifier)
        parts.append(cstr(f.name) + _FIELD.pack(*numbers, f.format))
    return b"".join(parts)


def _read_row_fields(c: Cursor) -> tuple[Field, ...]:
    return tuple(Field(c.cstr(), *c.unpack(_FIELD)) for _ in range(c.uint16()))


@dataclass(frozen=True, slots=True)
class RowDescription(_Message):
    """RowDescription (B): the columns of the rows that follow."""

    type_code = b"T"
    _layout = (Codec(_write_row_fields, _read_row_fields),)
    fields: tuple[Field, ...]


@dataclass(frozen=True, slots=True)
class DataRow(_Message):
    """DataRow (B): one row's values in the formats asked for (None is NULL)."""

    type_code = b"D"
    _layout = (VALUES,)
    values: tuple[bytes | None, ...]


@dataclass(frozen=True, slots=True)
class CommandComplete(_Message):
    """CommandComplete (B): the command tag, e.g. ``SELECT 3`` or ``INSERT 0 1``."""

    type_code = b"C"
    _layout = (STRING,)
    tag: str


@dataclass(frozen=True, slots=True)
class EmptyQueryResponse(_Message):
    """EmptyQueryResponse (B): the query string was empty (instead of CommandComplete)."""

    type_code = b"I"


@dataclass(frozen=True, slots=True)
class ErrorResponse(_Message):
    """ErrorResponse (B): fields keyed by their one-letter codes (S, V, C, M, D, H, P, ...)."""

    type_code = b"E"
    _layout = (FIELDS,)
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class NoticeResponse(_Message):
    """NoticeResponse (B): the same fields as ErrorResponse, for a notice or warning."""

    type_code = b"N"
    _layout = (FIELDS,)
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class NotificationResponse(_Message):
    """NotificationResponse (B): a NOTIFY on a channel this session LISTENs to."""

    type_code = b"A"
    _layout = (UINT32, STRING, STRING)
    process_id: int
    channel: str
    payload: str


@dataclass(frozen=True, slots=True)
class ParseComplete(_Message):
    """ParseComplete (B)."""

    type_code = b"1"


@dataclass(frozen=True, slots=True)
class BindComplete(_Message):
    """BindComplete (B)."""

    type_code = b"2"


@dataclass(frozen=True, slots=True)
class CloseComplete(_Message):
    """CloseComplete (B)."""

    type_code = b"3"


@dataclass(frozen=True, slots=True)
class NoData(_Message):
    """NoData (B): the described statement or portal returns no rows."""

    type_code = b"n"


@dataclass(frozen=True, slots=True)
class ParameterDescription(_Message):
    """ParameterDescription (B): the parameter type OIDs of a described statement."""

    type_code = b"t"
    _layout = (OIDS,)
    type_oids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class PortalSuspended(_Message):
    """PortalSuspended (B): Execute reached its row limit; the portal has more rows."""

    type_code = b"s"


@dataclass(frozen=True, slots=True)
class CopyInResponse(_Message):
    """CopyInResponse (B): the server is ready for COPY FROM STDIN data."""

    type_code = b"G"
    _layout = (UINT8, INT16S)
    format: int  # 0 text, 1 binary
    column_formats: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class CopyOutResponse(_Message):
    """CopyOutResponse (B): COPY TO STDOUT data follows."""

    type_code = b"H"
    _layout = (UINT8, INT16S)
    format: int  # 0 text, 1 binary
    column_formats: tuple[int, ...]


def _write_minor(minor: int) -> bytes:
    """NegotiateProtocolVersion's version: the whole number (3 << 16 | minor), as PostgreSQL
    sends it and libpq checks it, although the documentation speaks of the minor version."""
    if not 0 <= minor <= 0xFFFF:
        raise ValueError(f"minor version {minor} out of range")
    return U32.pack(3 << 16 | minor)


def _read_minor(c: Cursor) -> int:
    version = c.uint32()
    if version >> 16 != 3:
        raise c.fail(f"protocol version {version >> 16}.{version & 0xFFFF} is not 3.x")
    return version & 0xFFFF


_MINOR = Codec(_write_minor, _read_minor)


@dataclass(frozen=True, slots=True)
class NegotiateProtocolVersion(_Message):
    """NegotiateProtocolVersion (B): the newest minor version of protocol 3 the server speaks,
    and the ``_pq_.`` start-up options it did not recognize."""

    type_code = b"v"
    _layout = (_MINOR, COUNTED)
    newest_minor: int
    unrecognized: tuple[str, ...]


# -- building error and notice responses ----------------------------------------------------------


def error_response(error: errors.Error, severity: str = "ERROR") -> ErrorResponse:
    """An ErrorResponse with the error's SQLSTATE, message, and detail, hint and position."""
    fields = {"S": severity, "V": severity, "C": error.sqlstate, "M": error.message}
    if error.detail:
        fields["D"] = error.detail
    if error.hint:
        fields["H"] = error.hint
    if error.position is not None:
        fields["P"] = str(error.position)
    return ErrorResponse(fields)


def notice_response(message: str, severity: str = "NOTICE", code: str = "00000") -> NoticeResponse:
    """A NoticeResponse (severity NOTICE, WARNING, INFO, LOG or DEBUG)."""
    return NoticeResponse({"S": severity, "V": severity, "C": code, "M": message})


# -- the union types and decoder tables -----------------------------------------------------------

FrontendMessage: TypeAlias = (
    StartupMessage
    | SSLRequest
    | GSSENCRequest
    | CancelRequest
    | PasswordMessage
    | Query
    | Parse
    | Bind
    | Describe
    | Execute
    | Sync
    | Flush
    | Close
    | CopyData
    | CopyDone
    | CopyFail
    | Terminate
)
BackendMessage: TypeAlias = (
    AuthenticationOk
    | AuthenticationCleartextPassword
    | AuthenticationMD5Password
    | AuthenticationSASL
    | AuthenticationSASLContinue
    | AuthenticationSASLFinal
    | ParameterStatus
    | BackendKeyData
    | ReadyForQuery
    | RowDescription
    | DataRow
    | CommandComplete
    | EmptyQueryResponse
    | ErrorResponse
    | NoticeResponse
    | NotificationResponse
    | ParseComplete
    | BindComplete
    | CloseComplete
    | NoData
    | ParameterDescription
    | PortalSuspended
    | CopyInResponse
    | CopyOutResponse
    | NegotiateProtocolVersion
    | CopyData
    | CopyDone
)

M = TypeVar("M", bound=_Message)
_Decoder: TypeAlias = tuple[str, Callable[[Cursor], M]]


def _entry(cls: type[_Message]) -> _Decoder[Any]:
    return cls.__name__, cls._decode


_FRONTEND_CLASSES: tuple[type[_Message], ...] = get_args(FrontendMessage)
_BACKEND_CLASSES: tuple[type[_Message], ...] = get_args(BackendMessage)
_FRONTEND: dict[int, _Decoder[FrontendMessage]] = {
    cls.type_code[0]: _entry(cls) for cls in _FRONTEND_CLASSES if cls.type_code
}
_FRONTEND_UNSUPPORTED = {ord("F"): "FunctionCall"}
_STARTUP_REQUESTS: dict[int | None, _Decoder[FrontendMessage]] = {
    cls.code: _entry(cls) for cls in _FRONTEND_CLASSES if not cls.type_code and cls.code
}
_AUTHENTICATION: dict[int | None, _Decoder[BackendMessage]] = {
    cls.code: _entry(cls) for cls in _BACKEND_CLASSES if cls.type_code == b"R"
}
_AUTHENTICATION_UNSUPPORTED = {2: "KerberosV5", 6: "SCMCredential", 7: "GSS", 8: "GSS", 9: "SSPI"}


def _decode_authentication(c: Cursor) -> BackendMessage:
    code = c.int32()
    if code in _AUTHENTICATION:
        name, decode = _AUTHENTICATION[code]
        c.name = name
        return decode(c)
    if code in _AUTHENTICATION_UNSUPPORTED:
        method = _AUTHENTICATION_UNSUPPORTED[code]
        raise errors.FeatureNotSupported(f"{method} authentication is not supported")
    raise c.fail(f"unknown authentication request {code}")


_BACKEND: dict[int, _Decoder[BackendMessage]] = {
    cls.type_code[0]: _entry(cls) for cls in _BACKEND_CLASSES if cls.type_code != b"R"
}
_BACKEND[ord("R")] = ("Authentication", _decode_authentication)
_BACKEND_UNSUPPORTED = {ord("W"): "CopyBothResponse", ord("V"): "FunctionCallResponse"}


# -- readers --------------------------------------------------------------------------------------


def _decode(name: str, decode: Callable[[Cursor], M], body: bytes, start: int = 0) -> M:
    cursor = Cursor(body, name, start)
    message = decode(cursor)
    cursor.done()
    return message


class _Reader(Generic[M]):
    """Buffering, framing and the failed state shared by both readers."""

    def __init__(
        self,
        decoders: Mapping[int, _Decoder[M]],
        unsupported: Mapping[int, str],
        max_message_size: int,
    ) -> None:
        self._decoders = decoders
        self._unsupported = unsupported
        self._max = max_message_size
        self._buf = bytearray()
        self._pos = 0
        self._error: errors.Error | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as messages."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Appends bytes that arrived; call ``next`` for the messages they complete."""
        self._check_alive()
        self._buf += data

    def next(self) -> M | None:
        """The next whole message, or None until more bytes are fed."""
        self._check_alive()
        try:
            return self._next()
        except errors.Error as e:
            self._error = e
            raise

    def _check_alive(self) -> None:
        if self._error is not None:
            message = f"the connection failed earlier: {self._error.message}"
            raise errors.ProtocolViolation(message) from self._error

    def _next(self) -> M | None:
        if self.buffered < 5:
            return None
        name, decode = self._lookup(self._buf[self._pos])
        length = self._length(self._pos + 1, 4, self._max)
        body = self._take(self._pos + 5, self._pos + 1 + length)
        return None if body is None else _decode(name, decode, body)

    def _lookup(self, type_code: int) -> _Decoder[M]:
        found = self._decoders.get(type_code)
        if found is not None:
            return found
        if type_code in self._unsupported:
            raise errors.FeatureNotSupported(f"{self._unsupported[type_code]} is not supported")
        raise errors.ProtocolViolation(f"invalid message type {bytes([type_code])!r}")

    def _length(self, at: int, minimum: int, maximum: int) -> int:
        """The Int32 length at ``at``, checked before any of the body is awaited."""
        length: int = I32.unpack_from(self._buf, at)[0]
        if length < minimum:
            raise errors.ProtocolViolation(f"invalid message length {length}")
        if length > maximum:
            raise errors.ProtocolViolation(
                f"message length {length} exceeds the limit of {maximum} bytes"
            )
        return length

    def _take(self, start: int, end: int) -> bytes | None:
        """The bytes [start, end) once all have arrived, consuming the buffer up to ``end``."""
        if end > len(self._buf):
            return None
        with memoryview(self._buf) as view, view[start:end] as part:
            body = bytes(part)
        self._pos = end
        if self._pos == len(self._buf):
            self._buf.clear()
            self._pos = 0
        elif self._pos >= _COMPACT_AT and 2 * self._pos >= len(self._buf):
            del self._buf[: self._pos]
            self._pos = 0
        return body


class FrontendReader(_Reader[FrontendMessage]):
    """Parses what a client sends: start-up packets first, then typed messages."""

    def __init__(self, max_message_size: int = 1 << 30) -> None:
        super().__init__(_FRONTEND, _FRONTEND_UNSUPPORTED, max_message_size)
        self._startup = True

    @property
    def startup_phase(self) -> bool:
        """True until a StartupMessage was returned: packets have no type byte."""
        return self._startup

    def _next(self) -> FrontendMessage | None:
        if not self._startup:
            return super()._next()
        if self.buffered < 4:
            return None
        length = self._length(self._pos, 8, min(self._max, MAX_STARTUP_PACKET))
        body = self._take(self._pos + 4, self._pos + length)
        if body is None:
            return None
        message = _decode_startup(body)
        self._startup = not isinstance(message, StartupMessage)
        return message


def _decode_startup(body: bytes) -> FrontendMessage:
    code: int = U32.unpack_from(body)[0]
    request = _STARTUP_REQUESTS.get(code)
    if request is not None:
        return _decode(*request, body, 4)
    if code >> 16 != 3:
        raise errors.FeatureNotSupported(
            f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: server supports 3.0"
        )

    def decode(c: Cursor) -> StartupMessage:
        return StartupMessage(PAIRS.read(c), code)

    return _decode("StartupMessage", decode, body, 4)


class BackendReader(_Reader[BackendMessage]):
    """Parses what a server sends (typed messages only)."""

    def __init__(self, max_message_size: int = 1 << 30) -> None:
        super().__init__(_BACKEND, _BACKEND_UNSUPPORTED, max_message_size)
