"""The gateway's connection to PostgreSQL in proxy mode, speaking protocol v3 itself.

Why not libpq (psycopg2): a transparent proxy passes the client's messages on as they are and
the server's answers as they come (types, COPY, prepared statements, notices, errors with every
field); libpq hands out results, not messages. So the proxy opens the socket, negotiates TLS,
sends the client's StartupMessage and relays the login between the client and the server
(identity.py: the client's own role and password), and from then on moves bytes, decoding only
the few messages it must understand (proxy.py). The gateway has no login of its own: no
password of its own is ever sent (``sqlml serve``'s start-up check stops at the server's first
answer).
The sqlml engine runs ML statements on the same connection (UpstreamEngine below), so they
happen inside the client's transaction, as the client's role.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import socket
import ssl
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import psycopg2.extensions
import pyarrow as pa
from sqlglot.dialects.postgres import Postgres
from sqlglot.tokenizer_core import TokenType

from sqlml import errors
from sqlml.engines.pgtypes import JSON, JSONB, arrow_type
from sqlml.engines.postgres import PostgresEngine
from sqlml.wire import params
from sqlml.wire import protocol as p

_LENGTH = struct.Struct("!I")
READ_SIZE = 1 << 18
_POSTGRES = Postgres()
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_N = TypeVar("_N", int, float)


def _number(kind: Callable[[str], _N], name: str, text: str) -> _N:
    """A number of the connection string (22023 when it is none, as libpq refuses it)."""
    try:
        return kind(text)
    except ValueError as e:
        raise errors.InvalidParameterValue(f'invalid value for "{name}": "{text}"') from e


@dataclass(frozen=True)
class Target:
    """Where the proxy connects, from a libpq connection string or URL and the PG* variables
    (as libpq reads them; a password may also come from PGPASSFILE or ~/.pgpass)."""

    host: str
    port: int
    dbname: str
    user: str
    password: str | None = field(default=None, repr=False)
    sslmode: str = "prefer"
    sslrootcert: str | None = None
    connect_timeout: float = 10.0

    @classmethod
    def parse(cls, dsn: str, environ: Mapping[str, str] = os.environ) -> Target:
        try:
            given = psycopg2.extensions.parse_dsn(dsn)
        except psycopg2.ProgrammingError as e:
            raise errors.InvalidParameterValue(f"invalid PostgreSQL connection string: {e}") from e

        def get(key: str, variable: str, default: str) -> str:
            return str(given.get(key) or environ.get(variable) or default)

        host = get("host", "PGHOST", "/var/run/postgresql").split(",")[0]
        port = _number(int, "port", get("port", "PGPORT", "5432").split(",")[0])
        user = get("user", "PGUSER", getpass.getuser())
        dbname = get("dbname", "PGDATABASE", user)
        sslmode = get("sslmode", "PGSSLMODE", "prefer")
        if sslmode not in SSL_MODES:
            raise errors.InvalidParameterValue(f'invalid sslmode value: "{sslmode}"')
        password = given.get("password") or environ.get("PGPASSWORD")
        if password is None:
            password = _passfile(host, port, dbname, user, environ)
        return cls(
            host,
            port,
            dbname,
            user,
            password,
            sslmode,
            given.get("sslrootcert") or environ.get("PGSSLROOTCERT"),
            _number(float, "connect_timeout", get("connect_timeout", "PGCONNECT_TIMEOUT", "10")),
        )

    @property
    def unix_socket(self) -> str | None:
        return f"{self.host}/.s.PGSQL.{self.port}" if self.host.startswith("/") else None


def _passfile(
    host: str, port: int, dbname: str, user: str, environ: Mapping[str, str]
) -> str | None:
    """libpq's password file: host:port:database:user:password lines, * matches anything; the
    file is ignored unless only its owner can read it."""
    path = Path(environ.get("PGPASSFILE") or Path.home() / ".pgpass")
    try:
        if path.stat().st_mode & 0o077:
            return None
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    host_key = "localhost" if host.startswith("/") else host
    wanted = (host_key, str(port), dbname, user)
    for line in lines:
        if not line.strip() or line.startswith("#"):
            continue
        fields = _passfile_fields(line)
        if len(fields) == 5 and all(f in ("*", w) for f, w in zip(fields, wanted, strict=False)):
            return fields[4]
    return None


def _passfile_fields(line: str) -> list[str]:
    fields: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":" and len(fields) < 4:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def _server_error(fields: Mapping[str, str]) -> errors.Error:
    position = fields.get("P")
    return errors.from_sqlstate(
        fields.get("C"),
        fields.get("M", "error from PostgreSQL"),
        detail=fields.get("D"),
        hint=fields.get("H"),
        position=int(position) if position and position.isdigit() else None,
    )


class Frames:
    """Cuts the bytes a server sends into whole messages without decoding them: the proxy
    passes most of them on as they are (a 1M-row result is a million DataRows)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def cut(self, data: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """``feed`` then ``take``, without copying ``data`` when nothing was buffered before
        (a small answer usually comes whole)."""
        if self._buf:
            self._buf += data
            return self.take()
        pos, spans = _whole(data)
        if pos == len(data):
            return data, spans
        self._buf += data[pos:]
        return data[:pos], spans

    def take(self) -> tuple[bytes, list[tuple[int, int, int]]]:
        """The whole messages buffered, as one chunk and (type, start, end) spans within it."""
        pos, spans = _whole(self._buf)
        chunk = bytes(self._buf[:pos])
        del self._buf[:pos]
        return chunk, spans


def _whole(data: bytes | bytearray) -> tuple[int, list[tuple[int, int, int]]]:
    """Where the whole messages at the start of ``data`` end, and their spans."""
    pos, size = 0, len(data)
    spans = []
    unpack = _LENGTH.unpack_from
    while pos + 5 <= size:
        end = pos + 1 + unpack(data, pos + 1)[0]
        if end > size:
            break
        spans.append((data[pos], pos, end))
        pos = end
    return pos, spans


class Link(Protocol):
    """A connection's bytes through the gateway's event loop (server.py), once attached: the
    loop owns the socket, so that it can relay plain traffic itself, and the worker thread that
    runs an ML statement sends and receives through it."""

    def send(self, data: bytes) -> None: ...

    def recv(self) -> bytes:
        """The next bytes from the server (blocks); b"" once the connection is closed."""
        ...

    def close(self) -> None: ...


# (socket after the SSLRequest, TLS context or None, server name for TLS, the frames to feed)
Attach = Callable[[socket.socket, "ssl.SSLContext | None", str, Frames], Link]


# The server's authentication requests, which the proxy relays to its client.
Challenge = (
    p.AuthenticationCleartextPassword
    | p.AuthenticationMD5Password
    | p.AuthenticationSASL
    | p.AuthenticationSASLContinue
    | p.AuthenticationSASLFinal
)
_CHALLENGES = (
    p.AuthenticationCleartextPassword,
    p.AuthenticationMD5Password,
    p.AuthenticationSASL,
    p.AuthenticationSASLContinue,
    p.AuthenticationSASLFinal,
)


class Connection:
    """One connection to PostgreSQL: a blocking socket used from one worker thread, or, with
    ``attach``, a socket the gateway's event loop owns (``Link``). The constructor sends the
    StartupMessage ``startup`` (user, database, parameters); the login is then driven with
    ``challenge`` and ``respond`` (proxy.py relays the client's answers). ``cancel`` opens a
    connection of its own."""

    def __init__(
        self, target: Target, startup: Mapping[str, str], attach: Attach | None = None
    ) -> None:
        self.target = target
        self.parameters: dict[str, str] = {}  # ParameterStatus as the server reported it
        self.process_id = self.secret_key = 0
        self.status = "I"  # the transaction status of the last ReadyForQuery
        self.frames = Frames()
        self.link: Link | None = None
        self.asked_password = False  # the server sent an authentication request (not trust)
        self._login_reader = p.BackendReader()
        sock, context = self._open()
        self.encrypted = context is not None  # TLS on the way to the server
        try:
            if attach is not None:
                self.link = attach(sock, context, target.host, self.frames)
            elif context is not None:
                sock = context.wrap_socket(sock, server_hostname=target.host)
        except (ssl.SSLError, OSError) as e:
            sock.close()
            raise errors.from_sqlstate("08001", f"TLS with PostgreSQL failed: {e}") from e
        self.sock = sock
        try:
            self.send(p.StartupMessage(dict(startup)).encode())
        except BaseException:
            self.close(terminate=False)
            raise

    def _open(self) -> tuple[socket.socket, ssl.SSLContext | None]:
        """The socket, and the TLS context to use on it (None: plain) after the SSLRequest."""
        target = self.target
        try:
            if target.unix_socket is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(target.connect_timeout)
                sock.connect(target.unix_socket)
            else:
                sock = socket.create_connection(
                    (target.host, target.port), timeout=target.connect_timeout
                )
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            where = target.unix_socket or f"{target.host}:{target.port}"
            raise errors.from_sqlstate(
                "08001", f"cannot connect to PostgreSQL at {where}: {e.strerror or e}"
            ) from e
        sock.settimeout(None)
        if target.unix_socket is None and target.sslmode not in ("disable", "allow"):
            try:
                return sock, self._tls(sock)
            except BaseException:
                sock.close()
                raise
        return sock, None

    def _tls(self, sock: socket.socket) -> ssl.SSLContext | None:
        """SSLRequest: the context to start TLS with, or None if the server said no (and the
        sslmode allows that)."""
        try:
            sock.sendall(p.SSLRequest().encode())
            answer = sock.recv(1)
        except OSError as e:
            raise errors.from_sqlstate("08001", f"cannot connect to PostgreSQL: {e}") from e
        if answer != b"S":
            if self.target.sslmode in ("require", "verify-ca", "verify-full"):
                raise errors.from_sqlstate("08001", "the PostgreSQL server does not support TLS")
            return None
        context = ssl.create_default_context(cafile=self._root_certificates())
        verify = self.target.sslmode in ("verify-ca", "verify-full")
        if not verify and self.target.sslrootcert is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # libpq's prefer, require: encrypted only
        elif self.target.sslmode != "verify-full":
            context.check_hostname = False  # a given CA file is checked (libpq's verify-ca)
        return context

    def _root_certificates(self) -> str | None:
        """The CA file, as libpq finds it: sslrootcert, else ~/.postgresql/root.crt when the
        server's certificate is verified; ``system`` means the system's CAs (None here)."""
        given = self.target.sslrootcert
        if given == "system":
            return None
        if given is None and self.target.sslmode in ("verify-ca", "verify-full"):
            default = Path.home() / ".postgresql" / "root.crt"
            if not default.exists():
                raise errors.from_sqlstate(
                    "08001",
                    f'root certificate file "{default}" does not exist',
                    hint="give sslrootcert (a CA file, or system for the system's CAs)",
                )
            return str(default)
        return given

    def challenge(self) -> Challenge | None:
        """Reads the server's login messages up to the next authentication request (relayed to
        the client, whose answer goes back with ``respond``), or up to ReadyForQuery
        (None: logged in). An ErrorResponse (28P01, 3D000, ...) is raised."""
        while True:
            message = self._login_reader.next()
            if message is None:
                self._login_reader.feed(self._recv())
                continue
            if isinstance(message, _CHALLENGES):
                self.asked_password = True
                return message
            if isinstance(message, p.ParameterStatus):
                self.parameters[message.name] = message.value
            elif isinstance(message, p.BackendKeyData):
                self.process_id, self.secret_key = message.process_id, message.secret_key
            elif isinstance(message, p.ErrorResponse):
                raise _server_error(message.fields)
            elif isinstance(message, p.ReadyForQuery):
                self.status = message.status
                return None
            elif not isinstance(
                message, p.AuthenticationOk | p.NoticeResponse | p.NegotiateProtocolVersion
            ):
                raise errors.ProtocolViolation(
                    f"unexpected {type(message).__name__} from PostgreSQL during login"
                )

    def respond(self, data: bytes) -> None:
        """A PasswordMessage (or SASL response) with ``data`` to the server's last request."""
        self.send(p.PasswordMessage(data).encode())

    def send(self, data: bytes) -> None:
        try:
            if self.link is not None:
                self.link.send(data)
            else:
                self.sock.sendall(data)
        except OSError as e:
            raise errors.from_sqlstate("08006", f"lost the connection to PostgreSQL: {e}") from e

    def _recv(self) -> bytes:
        try:
            data = self.link.recv() if self.link is not None else self.sock.recv(READ_SIZE)
        except OSError as e:
            raise errors.from_sqlstate("08006", f"lost the connection to PostgreSQL: {e}") from e
        if not data:
            raise errors.from_sqlstate("08006", "PostgreSQL closed the connection")
        return data

    def read(self) -> tuple[bytes, list[tuple[int, int, int]]]:
        """At least one whole message from the server (blocks): a chunk and its spans."""
        while True:
            chunk, spans = self.frames.take()
            if spans:
                return chunk, spans
            self.frames.feed(self._recv())

    def exchange(self, data: bytes) -> Iterator[p.BackendMessage]:
        """Sends ``data`` (ending in Query or Sync) and decodes the answers up to and including
        ReadyForQuery: for the engine's own statements, whose answers are not passed on."""
        self.send(data)
        reader = p.BackendReader()
        while True:
            chunk, _ = self.read()
            reader.feed(chunk)
            while (message := reader.next()) is not None:
                if isinstance(message, p.ReadyForQuery):
                    self.status = message.status
                yield message
                if isinstance(message, p.ReadyForQuery):
                    return

    def cancel(self) -> None:
        """Asks the server to cancel what this connection runs (a CancelRequest on a new
        connection, as libpq sends it)."""
        try:
            with (
                socket.create_connection(
                    (self.target.host, self.target.port), timeout=self.target.connect_timeout
                )
                if self.target.unix_socket is None
                else _unix(self.target.unix_socket) as sock
            ):
                sock.sendall(p.CancelRequest(self.process_id, self.secret_key).encode())
                sock.recv(1)  # the server closes the connection when it has the request
        except OSError:
            pass  # the statement goes on; nothing else to do

    def close(self, terminate: bool = True) -> None:
        with contextlib.suppress(OSError, errors.Error):
            if terminate:
                self.send(p.Terminate().encode())
        if self.link is not None:
            self.link.close()  # the loop closes the socket
        else:
            self.sock.close()


def _unix(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    return sock


# -- the sqlml engine over the proxy's connection ------------------------------------------------


class _Column(NamedTuple):
    """What PostgresEngine reads of a psycopg2 cursor description."""

    name: str
    type_code: int


def to_dollar(sql: str) -> str:
    """sqlml's placeholders (``?`` from users, ``%s`` from sqlglot's postgres output) as
    ``$1, $2, ...``, found by sqlglot's tokenizer (so quotes and comments are skipped)."""
    tokens = _POSTGRES.tokenize(sql)
    out: list[str] = []
    pos = count = 0
    for token, after in zip(tokens, [*tokens[1:], None], strict=True):
        percent = (
            token.token_type == TokenType.MOD
            and after is not None
            and after.text == "s"
            and after.start == token.end + 1
        )
        if (token.token_type == TokenType.PLACEHOLDER and token.text == "?") or percent:
            count += 1
            out.append(sql[pos : token.start] + f"${count}")
            pos = token.end + 1 + (1 if percent else 0)
    out.append(sql[pos:])
    return "".join(out)


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text format (the server infers its type, OID 0)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"t" if value else b"f"
    if isinstance(value, bytes | bytearray | memoryview):
        return b"\\x" + bytes(value).hex().encode("ascii")
    if isinstance(value, dict | list):
        return json.dumps(value).encode()
    return str(value).encode()


class UpstreamEngine(PostgresEngine):
    """PostgresEngine over the proxy's own connection instead of psycopg2: the same SQL, the
    same in-server training, inside whatever transaction the client has open."""

    server_files = True  # the gateway host's files, not the client's (byom.py)

    def __init__(
        self, connection: Connection, progress: Any = None, file_access: bool = False
    ) -> None:
        self.connection = connection
        self.file_access = file_access  # the operator allowed them (--allow-file-access)
        self._in_transaction = False
        self.progress = progress
        self.nested: dict[int, pa.DataType] = {}
        self._check_installed()

    def _check_installed(self) -> None:
        _, rows, _, _ = self._run("SELECT to_regclass('sqlml.python_modules') IS NOT NULL", None)
        if not rows or not rows[0][0]:
            raise errors.from_sqlstate(
                "55000",
                "sqlml is not installed in this database",
                hint="run: sqlml install --database <this database's URL>",
            )

    def _run(
        self, sql: str, params: Sequence[Any] | None
    ) -> tuple[Any, list[Any] | None, int, str]:
        if params:
            data = b"".join(
                (
                    p.Parse("", to_dollar(sql), ()).encode(),
                    p.Bind("", "", (), tuple(_text(v) for v in params), ()).encode(),
                    p.Describe("P", "").encode(),
                    p.Execute("", 0).encode(),
                    p.Sync().encode(),
                )
            )
        else:
            data = p.Query(sql).encode()
        description: list[_Column] | None = None
        rows: list[tuple[Any, ...]] = []
        count, status = -1, ""
        failure: errors.Error | None = None
        for message in self.connection.exchange(data):
            if isinstance(message, p.RowDescription):
                description = [_Column(f.name, f.type_oid) for f in message.fields]
            elif isinstance(message, p.DataRow):
                assert description is not None
                rows.append(
                    tuple(
                        _value(v, c.type_code)
                        for v, c in zip(message.values, description, strict=True)
                    )
                )
            elif isinstance(message, p.CommandComplete):
                status = message.tag
                last = status.rsplit(" ", 1)[-1]
                count = int(last) if last.isdigit() else -1
            elif isinstance(message, p.ErrorResponse) and failure is None:
                failure = _server_error(message.fields)
            elif isinstance(message, p.NoticeResponse) and self.progress is not None:
                self.progress(message.fields.get("M", ""))
        self._in_transaction = self.connection.status != "I"
        if failure is not None:
            raise failure
        return description, rows if description is not None else None, count, status

    def schema_of(self, sql: str) -> pa.Schema:
        """As PostgresEngine's: composite and array columns typed from the catalog (the STRUCT
        and ARRAY features' checks, and their pass-through in runtime scoring)."""
        try:
            columns = described(self.connection, to_dollar(sql))
            return pa.schema([self._field(name, oid) for name, oid in columns])
        finally:
            self._in_transaction = self.connection.status != "I"

    def interrupt(self) -> None:
        self.connection.cancel()

    def close(self) -> None:
        pass  # the connection belongs to the proxy session


def describe(connection: Connection, sql: str) -> pa.Schema:
    """Parse and Describe of ``sql`` (PostgreSQL's SQL, parameters as ``$n``): its columns
    without running it, on a quiet connection (the engine's schema_of; the proxy's BigQuery
    mode, for the columns behind ``* EXCEPT``). The server's error is raised."""
    return pa.schema([(name, arrow_type(oid)) for name, oid in described(connection, sql)])


def described(connection: Connection, sql: str) -> list[tuple[str, int]]:
    """The columns of ``sql`` as (name, type OID), from Parse and Describe (see describe)."""
    data = p.Parse("", sql, ()).encode() + p.Describe("S", "").encode() + p.Sync().encode()
    columns: list[tuple[str, int]] = []
    failure: errors.Error | None = None
    for message in connection.exchange(data):
        if isinstance(message, p.RowDescription):
            columns = [(f.name, f.type_oid) for f in message.fields]
        elif isinstance(message, p.ErrorResponse) and failure is None:
            failure = _server_error(message.fields)
    if failure is not None:
        raise failure
    return columns


def _value(value: bytes | None, oid: int) -> Any:
    if value is None:
        return None
    if oid in (JSON, JSONB):
        return json.loads(value)
    return params.decode_parameter(value, oid, 0)
