"""One client connection of the gateway: the protocol's state, with no I/O of its own.

Theory of operation. The server feeds the bytes it reads to :meth:`Session.receive`, which
parses them (protocol.FrontendReader), runs each message and yields what to do: ``bytes`` to
send, or an :class:`Action` (start TLS, close, cancel another session). Statements are run by a
:class:`Backend` (an engine behind the gateway) synchronously: the server calls ``receive`` on a
worker thread, so a long query or training holds that thread and never the event loop.

The states follow the protocol documentation's message flow:

- startup: SSLRequest and GSSENCRequest (answered 'S' or 'N'), CancelRequest (handed to the
  server as an action), StartupMessage (a newer minor version gets NegotiateProtocolVersion);
- authentication: trust, cleartext ("password"), md5 or SCRAM-SHA-256 (auth.py does the
  exchanges); then ParameterStatus, BackendKeyData and ReadyForQuery;
- ready: the simple query protocol (several statements per Query, each with its own result; the
  first error ends the message) and the extended protocol (Parse, Bind, Describe, Execute with a
  row limit and PortalSuspended, Close, Flush, Sync; after an error everything up to Sync is
  discarded). The transaction status is I, T or E; in E every statement but ROLLBACK (or a
  COMMIT, which rolls back) gets 25P02;
- copy: ``COPY ... TO STDOUT`` runs its query and sends CopyOutResponse, the rows as CopyData
  (copy.CopyOut) and CopyDone; ``COPY ... FROM STDIN`` answers CopyInResponse and the session
  stays in copy-in until CopyDone or CopyFail, feeding CopyData to a copy.CopyInParser whose
  Arrow batches go to a :class:`CopyTarget` the backend opened (all rows or none). A COPY in a
  simple Query suspends the rest of its statements until the copy ends; via Execute, the Sync
  that libpq sends behind it is ignored, as PostgreSQL does.

Results are Arrow tables; types.data_rows encodes a batch column by column. Notices a running
statement raises (CREATE MODEL's progress) go out at once through ``send`` when the server gives
one, else they queue and precede the statement's next output. An exception that is no sqlml
error is our bug: the client gets XX000 with its message and the session goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
from sqlglot import exp

from sqlml import errors, grammar
from sqlml.engines.base import Result
from sqlml.grammar import bigquery, lexer, settings
from sqlml.wire import auth, catalog_grammar, protocol, tags, types
from sqlml.wire import protocol as p
from sqlml.wire.copy import CopyInParser, CopyOut
from sqlml.wire.copy_statement import CopyStatement, parse_copy

if TYPE_CHECKING:
    from sqlml.wire.upstream import Attach

log = logging.getLogger(__name__)

SERVER_VERSION = "15.0"  # what clients adapt their catalog queries to (psql, SQLAlchemy)
BATCH_ROWS = 8192  # rows per DataRow batch handed to the server to send
COPY_IN_ROWS = 1 << 16  # COPY FROM rows converted to Arrow and appended at a time
# Named prepared statements and portals one session may hold (the unnamed ones replace each
# other): a client that prepares forever without Close gets 53400 and the session goes on.
MAX_STATEMENTS = 10_000
MAX_PORTALS = 1_000


@dataclass(frozen=True)
class StartTLS:
    """Answer the SSLRequest with 'S' and wrap the connection in TLS, then go on reading. The
    server writes the 'S' itself, with reading paused: a client starts its handshake as soon as
    it reads 'S', and those bytes must reach TLS, not the plain stream."""


@dataclass(frozen=True)
class Close:
    """Close the connection (after sending what came before)."""


@dataclass(frozen=True)
class Cancel:
    """A CancelRequest: cancel the session with this key, then close this connection."""

    process_id: int
    secret_key: int


Action = StartTLS | Close | Cancel
Output = bytes | Action


class CopyTarget(Protocol):
    """Where the rows of one COPY FROM STDIN go: Arrow batches of ``schema`` (the columns the
    COPY names, in its order) are appended, then the copy is committed, or aborted, which
    leaves none of them behind."""

    schema: pa.Schema

    def append(self, batch: pa.RecordBatch) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Backend(Protocol):
    """An engine behind the gateway, one per client session."""

    # Where a running statement reports progress (CREATE MODEL's training steps); the session
    # sets it to send each message as a NoticeResponse.
    progress: Callable[[str], None] | None

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Result: ...

    def copy_in(self, table: exp.Table, columns: Sequence[str]) -> CopyTarget:
        """Starts a COPY FROM STDIN into ``table`` (PostgreSQL names, quoted), into ``columns``
        (empty: all of them)."""
        ...

    def describe(self, sql: str, param_count: int) -> pa.Schema | None:
        """The columns ``sql`` returns (None: a command without rows), without running it."""
        ...

    def parameter_types(self, sql: str, declared: Sequence[int]) -> tuple[int, ...]:
        """The type OID of each parameter of ``sql``, as PostgreSQL fixes them at Parse:
        ``declared`` where the client gave one (not 0), else inferred from the statement."""
        ...

    def cursor_exists(self, name: str) -> bool:
        """Whether DECLARE opened a cursor ``name`` (still open)."""
        ...

    def describe_cursor(self, name: str) -> pa.Schema:
        """The columns the open cursor ``name`` returns."""
        ...

    def in_transaction(self) -> bool: ...

    def cancel(self) -> None:
        """Interrupts the running statement (called from another thread)."""
        ...

    def close(self) -> None: ...


OpenBackend = Callable[[str, str], Backend]  # (database, user) -> Backend
Send = Callable[[bytes], None]  # writes bytes to the client now (from the session's thread)


@dataclass(frozen=True)
class SessionConfig:
    auth_method: str = "trust"  # one of auth.METHODS
    users: auth.Users | None = None  # who may connect (None: anyone, with trust only)
    tls: bool = False  # whether SSLRequest is answered 'S'
    loopback: bool = True  # the client is on this machine (cleartext passwords may travel)
    max_message_size: int = 64 << 20  # larger messages are a protocol violation (08P01)
    statement_timeout: float | None = None  # seconds; the proxy passes it on to PostgreSQL
    require_tls: bool = False  # every client must use TLS, loopback ones too (else 28000)
    peer: str = ""  # the client's address, for the log of failed logins
    # The server's connection budget (limits.Slot.admit): called with the user after the
    # StartupMessage (False) and after the login (True); raises 53300 to refuse.
    admit: Callable[[str, bool], None] | None = None
    dialect: str = ""  # '' PostgreSQL's SQL | 'bigquery': GoogleSQL (SET sqlml.dialect changes it)


@dataclass
class _Statement:
    query: str
    param_types: tuple[int, ...]


@dataclass
class _Portal:
    statement: _Statement
    params: list[Any]
    result_formats: tuple[int, ...]
    result: Result | None = None
    sent: int = 0  # rows already sent (Execute with a row limit)


@dataclass
class _CopyIn:
    """A COPY FROM STDIN under way."""

    parser: CopyInParser
    target: CopyTarget
    rest: list[str] | None  # simple protocol: the Query's statements after it; None: Execute
    rows: int = 0  # rows appended so far

    def feed(self, data: bytes) -> None:
        self.parser.feed(data)
        if self.parser.pending >= COPY_IN_ROWS:
            self._append(self.parser.batch())

    def finish(self) -> int:
        self._append(self.parser.finish())
        self.target.commit()
        return self.rows

    def _append(self, batch: pa.RecordBatch | None) -> None:
        if batch is not None:
            self.target.append(batch)
            self.rows += batch.num_rows


@dataclass
class _Startup:
    user: str = ""
    database: str = ""
    parameters: dict[str, str] = field(default_factory=dict)


# First words of the statements on sqlml.dialect (grammar.bigquery.dialect_statement).
_DIALECT_HEADS = frozenset({"SET", "SHOW", "RESET", "DISCARD"})
_ENDS_FAILED = frozenset({"ROLLBACK", "ABORT", "COMMIT", "END"})
_TRANSACTION_HEADS = frozenset({"BEGIN", "START", *_ENDS_FAILED})


class Session:
    # Whether sqlml.sqlstate_in_message is the gateway's (over DuckDB); the proxy leaves it to
    # PostgreSQL, where it is a custom setting the extension reads.
    OWN_SETTINGS = True

    def __init__(
        self,
        config: SessionConfig,
        open_backend: OpenBackend,
        process_id: int,
        secret_key: int,
        send: Send | None = None,
    ) -> None:
        self.config = config
        self.send = send  # None (sans-IO tests): notices queue until the next output
        self.open_backend = open_backend
        self.process_id, self.secret_key = process_id, secret_key
        self.reader = protocol.FrontendReader(config.max_message_size)
        self.backend: Backend | None = None
        self.startup = _Startup()
        self._auth: Callable[[bytes], Iterator[Output]] | None = None
        self._encrypted = False  # TLS was started on this connection
        self._failed = False  # in a failed transaction block (status E)
        self._skipping = False  # extended protocol: an error, discard until Sync
        self._statements: dict[str, _Statement] = {}
        self._portals: dict[str, _Portal] = {}
        self._copying: _CopyIn | None = None
        self._notice_queue: list[bytes] = []
        self.closed = False
        self.sqlstate_in_message = False  # SET sqlml.sqlstate_in_message (grammar/settings.py)
        # How a connection to an upstream server is handed to the event loop (server.py sets
        # it; proxy.ProxySession uses it): None runs everything on blocking sockets.
        self.attach: Attach | None = None
        self.dialect = config.dialect  # BigQuery mode: statements are transpiled (_googlesql)

    # -- the server's entry points ----------------------------------------------------------

    def receive(self, data: bytes) -> Iterator[Output]:
        """Everything the bytes ``data`` lead to, in order."""
        self.reader.feed(data)
        while not self.closed:
            try:
                message = self.reader.next()
            except errors.Error as e:  # malformed: report and close this connection only
                yield from self._fatal(e)
                return
            if message is None:
                return
            try:
                for output in self._dispatch(message):
                    yield from self._queued_notices()
                    yield output
            except Exception as e:  # escaped every handler: our bug; say so before closing
                log.exception("internal error in a wire session")
                yield from self._fatal(_internal(e))
                return
            yield from self._queued_notices()

    def cancel(self) -> None:
        if self.backend is not None:
            self.backend.cancel()

    def busy(self) -> bool:
        """Whether the client waits for answers to messages the session passed on (a proxy's
        plain SQL runs while the server reads the client): not idle, whatever its silence."""
        return False

    def forward_fast(self, data: bytes) -> bool:
        """Whether the event loop may pass ``data`` to an upstream server itself (a proxy's
        plain SQL); a session that relays nowhere says no, and ``receive`` takes it."""
        return False

    def answer(self, chunk: bytes, spans: list[tuple[int, int, int]]) -> bytes:
        """An upstream server's messages (whole, cut at ``spans``) as the client gets them."""
        raise NotImplementedError("this session relays to no server")

    def notice(self, message: str, severity: str = "NOTICE", code: str = "00000") -> None:
        """Sends a notice to the client while a statement runs: at once through ``send``, else
        before the next output."""
        data = p.notice_response(message, severity, code).encode()
        if self.send is not None:
            self.send(data)
        else:
            self._notice_queue.append(data)

    def _queued_notices(self) -> Iterator[Output]:
        if self._notice_queue:
            queued, self._notice_queue = b"".join(self._notice_queue), []
            yield queued

    def close(self) -> None:
        self.closed = True
        self._copying = None  # closing the backend rolls its rows back
        if self.backend is not None:
            self.backend.close()
            self.backend = None

    # -- dispatch ---------------------------------------------------------------------------

    def _dispatch(self, message: object) -> Iterator[Output]:
        if isinstance(message, p.SSLRequest):
            if self.config.tls and self.reader.buffered:
                # bytes sent in the clear behind the request must not pass as encrypted ones
                yield from self._fatal(errors.ProtocolViolation("data after SSLRequest"))
                return
            self._encrypted = self.config.tls
            yield StartTLS() if self.config.tls else b"N"
        elif isinstance(message, p.GSSENCRequest):
            yield b"N"
        elif isinstance(message, p.CancelRequest):
            yield Cancel(message.process_id, message.secret_key)
            self.closed = True
        elif isinstance(message, p.StartupMessage):
            yield from self._start(message)
        elif isinstance(message, p.PasswordMessage):
            yield from self._password(message)
        elif self.backend is None:
            yield from self._fatal(
                errors.ProtocolViolation("expected a startup or password message")
            )
        elif isinstance(message, p.Terminate):
            yield Close()
            self.close()
        else:
            yield from self._ready(message)

    def _ready(self, message: object) -> Iterator[Output]:
        if self._copying is not None:
            yield from self._copy_message(self._copying, message)
        elif isinstance(message, p.CopyData | p.CopyDone | p.CopyFail):
            return  # the rest of a COPY that failed: dropped, as PostgreSQL does
        elif isinstance(message, p.Query):
            self._skipping = False
            yield from self._simple(message.query)
        elif isinstance(message, p.Sync):
            self._skipping = False
            self._portals.pop("", None)
            yield self._ready_for_query()
        elif isinstance(message, p.Flush) or self._skipping:
            return
        else:
            ok = yield from self._guarded(self._extended(message))
            self._skipping = not ok

    # -- startup and authentication ---------------------------------------------------------

    def _start(self, message: p.StartupMessage) -> Iterator[Output]:
        params = message.parameters
        user = params.get("user", "")
        if not user:
            yield from self._fatal(errors.from_sqlstate("28000", "no user name in the startup"))
            return
        self.startup = _Startup(user, params.get("database", user), dict(params))
        unknown = tuple(k for k in params if k.startswith("_pq_."))
        if message.protocol != protocol.StartupMessage({}).protocol or unknown:
            yield p.NegotiateProtocolVersion(0, unknown).encode()
        try:
            if self.config.admit is not None:
                self.config.admit(user, False)
            yield from self._challenge(user)
        except errors.Error as e:  # e.g. trust, and the database cannot be opened
            yield from self._fatal(e)
        except Exception as e:
            log.exception("internal error at startup")
            yield from self._fatal(_internal(e))

    def _challenge(self, user: str) -> Iterator[Output]:
        method = self.config.auth_method
        credential = self.config.users.get(user) if self.config.users is not None else None
        if not self._encrypted and not self._plain_allowed(method):
            self._log_failure(user, "no encryption")
            yield from self._fatal(
                errors.from_sqlstate(
                    "28000",
                    f'connection without TLS refused for user "{user}"',
                    hint="connect with sslmode=require",
                )
            )
            return
        if method == "trust":
            yield from self._logged_in()
        elif method == "password":
            self._auth = lambda data: self._cleartext(credential, user, data)
            yield p.AuthenticationCleartextPassword().encode()
        elif method == "md5" and (credential is None or credential.can_md5):
            md5 = auth.Md5Exchange(credential, user)
            self._auth = lambda data: self._md5(md5, data)
            yield p.AuthenticationMD5Password(md5.salt).encode()
        else:  # scram-sha-256, or md5 for a user whose secret is SCRAM only (as PostgreSQL)
            scram = auth.ScramExchange(credential, user)
            self._auth = lambda data: self._scram_first(scram, data)
            yield p.AuthenticationSASL(scram.mechanisms()).encode()

    def _plain_allowed(self, method: str) -> bool:
        """Whether a client may log in without TLS: not with --require-tls, and off loopback
        only with trust (which the server allows on loopback only: limits.check_exposure)."""
        if self.config.require_tls:
            return False
        return self.config.loopback or method == "trust"

    def _password(self, message: p.PasswordMessage) -> Iterator[Output]:
        step, self._auth = self._auth, None
        if step is None:
            yield from self._fatal(errors.ProtocolViolation("unexpected password message"))
            return
        try:
            yield from step(message.data)
        except errors.Error as e:
            if e.sqlstate.startswith("28"):
                self._log_failure(self.startup.user, e.sqlstate)
            yield from self._fatal(e)

    def _log_failure(self, user: str, reason: str) -> None:
        """A failed login in the server's log: who, from where, why; never a password."""
        log.warning("login failed for user %r from %s (%s)", user, self.config.peer or "?", reason)

    def _logged_in(self) -> Iterator[Output]:
        """The client proved who it is: it takes its slot (or gets 53300), then its backend."""
        if self.config.admit is not None:
            self.config.admit(self.startup.user, True)
        yield from self._authenticated()

    def _cleartext(
        self, credential: auth.Credential | None, user: str, data: bytes
    ) -> Iterator[Output]:
        auth.check_cleartext(credential, user, protocol.password_text(data))
        yield from self._logged_in()

    def _md5(self, exchange: auth.Md5Exchange, data: bytes) -> Iterator[Output]:
        exchange.check(protocol.password_text(data))
        yield from self._logged_in()

    def _scram_first(self, exchange: auth.ScramExchange, data: bytes) -> Iterator[Output]:
        mechanism, first = protocol.sasl_initial_response(data)
        server_first = exchange.start(mechanism, first)
        self._auth = lambda final: self._scram_final(exchange, final)
        yield p.AuthenticationSASLContinue(server_first).encode()

    def _scram_final(self, exchange: auth.ScramExchange, data: bytes) -> Iterator[Output]:
        yield p.AuthenticationSASLFinal(exchange.finish(data)).encode()
        yield from self._logged_in()

    def _authenticated(self) -> Iterator[Output]:
        self.backend = self.open_backend(self.startup.database, self.startup.user)
        self.backend.progress = self.notice
        out = [p.AuthenticationOk().encode()]
        for name, value in self._parameter_status().items():
            out.append(p.ParameterStatus(name, value).encode())
        out.append(p.BackendKeyData(self.process_id, self.secret_key).encode())
        out.append(self._ready_for_query())
        yield b"".join(out)

    def _parameter_status(self) -> dict[str, str]:
        return {
            "server_version": SERVER_VERSION,
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "IntervalStyle": "postgres",
            "TimeZone": "UTC",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "is_superuser": "off",
            "session_authorization": self.startup.user,
            "application_name": self.startup.parameters.get("application_name", ""),
        }

    # -- the simple query protocol ----------------------------------------------------------

    def _simple(self, query: str) -> Iterator[Output]:
        statements = grammar.split_script(query)
        if not statements:
            yield p.EmptyQueryResponse().encode()
            yield self._ready_for_query()
            return
        yield from self._run_statements(statements)

    def _run_statements(self, statements: list[str]) -> Iterator[Output]:
        """A Query's statements in order, up to the first error, then ReadyForQuery; a COPY
        FROM STDIN suspends them (the copy keeps the rest) until its data has come."""
        for i, sql in enumerate(statements):
            ok = yield from self._guarded(self._run_statement(sql))
            if not ok:
                break
            if self._copying is not None:
                self._copying.rest = statements[i + 1 :]
                return
        yield self._ready_for_query()

    def _parse_copy(self, sql: str) -> CopyStatement | None:
        """The COPY FROM STDIN or TO STDOUT in ``sql`` (None: no COPY, or a COPY to or from a
        file for a backend that gives this user the server's files, which runs it itself)."""
        if _head(sql) != "COPY":
            return None
        try:
            return parse_copy(sql)
        except errors.InsufficientPrivilege:  # (a file, or a program: never)
            files = getattr(self.backend, "file_access", False) is True
            if files and "program" not in lexer.words(sql):
                return None
            raise

    def _run_statement(self, sql: str) -> Iterator[Output]:
        sql = self._googlesql(sql)
        copy = self._parse_copy(sql)
        if copy is not None:
            yield from self._copy(copy, None)
            return
        result = self._run(sql, None)
        yield from self._result(result, sql, (0,), describe=True)

    def _run(self, sql: str, params: Sequence[Any] | None) -> Result:
        assert self.backend is not None
        if self._failed:
            self._check_not_failed(_head(sql))
            self.backend.execute("ROLLBACK")
            self._failed = False
            return Result(None, -1, "ROLLBACK")
        head = _head(sql)
        kind = bigquery.dialect_statement(sql) if head in _DIALECT_HEADS else None
        if kind in bigquery.DIALECT_ANSWERED:
            return self._dialect_setting(kind, sql)
        if kind == bigquery.DIALECT_ALL:  # (and the statement runs too)
            self.dialect = self.config.dialect
            self.sqlstate_in_message = False
        own = settings.statement(sql) if head in _DIALECT_HEADS and self.OWN_SETTINGS else None
        if own is not None:
            return self._sqlstate_setting(*own)
        if head in _TRANSACTION_HEADS:
            done = self._transaction_command(head)
            if done is not None:
                return done
        if head in ("DEALLOCATE", "DISCARD") and self._deallocated(head, sql):
            return Result(None, -1, "")
        return self.backend.execute(sql, params)

    def _dialect_setting(self, kind: str, sql: str) -> Result:
        """SET, SHOW or RESET sqlml.dialect, answered by the gateway (the engine has no such
        setting). It lasts until changed (a ROLLBACK does not undo it); RESET goes back to
        the session's default (sqlml serve --dialect)."""
        if kind == "SHOW":
            table = pa.table({bigquery.DIALECT_SHOWN: [self.dialect or "default"]})
            return Result(table, 1, "SHOW")
        if kind == "LOCAL":
            raise errors.FeatureNotSupported(
                "SET LOCAL sqlml.dialect is not supported: use SET sqlml.dialect"
            )
        if kind == "RESET":
            self.dialect = self.config.dialect
            return Result(None, -1, "RESET")
        value = bigquery.dialect_set(sql)
        if value is None:
            raise errors.SyntaxError(
                "SET sqlml.dialect takes one value: 'bigquery' or 'default'", position=1
            )
        self.dialect = value
        return Result(None, -1, "SET")

    def _sqlstate_setting(self, kind: str, value: bool | None) -> Result:
        """SET, SHOW or RESET sqlml.sqlstate_in_message (grammar/settings.py), answered by
        the gateway as sqlml.dialect is."""
        if kind == "SHOW":
            table = pa.table({settings.NAME: ["on" if self.sqlstate_in_message else "off"]})
            return Result(table, 1, "SHOW")
        if kind == "LOCAL":
            raise errors.FeatureNotSupported(
                f"SET LOCAL {settings.NAME} is not supported: use SET {settings.NAME}"
            )
        self.sqlstate_in_message = bool(value)  # (RESET: off, the default)
        return Result(None, -1, kind)

    def _googlesql(self, sql: str) -> str:
        """In BigQuery mode, ``sql`` (GoogleSQL) as PostgreSQL's SQL (sqlml.grammar.bigquery):
        the wire has no parameters by name, so an ``@name`` is 42P02; ``$n`` and ``?`` stay
        markers. SET sqlml.dialect is left as written (_run reads it), and so are the
        clients' own catalog queries (bigquery.reads_pg_catalog)."""
        if not self.dialect or lexer.is_blank(sql) or bigquery.dialect_statement(sql):
            return sql
        if bigquery.reads_pg_catalog(sql):
            return sql
        assert self.backend is not None
        backend = self.backend
        target = bigquery.Target(
            "postgres", columns=lambda query: (backend.describe(query, 0) or pa.schema([])).names
        )
        return bigquery.to_engine(sql, None, target)[0]

    def _deallocated(self, head: str, sql: str) -> bool:
        """DEALLOCATE and DISCARD ALL drop the protocol's named prepared statements too (one
        namespace with SQL's PREPARE, as in PostgreSQL: psycopg 3 sends DEALLOCATE ALL for its
        own); True: ``sql`` named one of them and is done."""
        first = next(t for t in lexer.tokens(sql) if t.kind != lexer.COMMENT)
        rest = sql[first.end :]
        target = catalog_grammar.deallocate(rest) if head == "DEALLOCATE" else rest.strip().upper()
        if target in (catalog_grammar.ALL, "ALL"):
            self._statements = {n: s for n, s in self._statements.items() if not n}
            return False
        return target is not None and self._statements.pop(target, None) is not None

    def _transaction_command(self, head: str) -> Result | None:
        """BEGIN inside a transaction and COMMIT or ROLLBACK outside one: a WARNING and no
        error, as PostgreSQL answers them (ADBC sends BEGIN twice); None: run it."""
        assert self.backend is not None
        if self.backend.in_transaction() == (head in ("BEGIN", "START")):
            if head in ("BEGIN", "START"):
                self.notice("there is already a transaction in progress", "WARNING", "25001")
            else:
                self.notice("there is no transaction in progress", "WARNING", "25P01")
            return Result(None, -1, "")
        return None

    def _check_not_failed(self, head: str) -> None:
        if self._failed and head not in _ENDS_FAILED:
            raise errors.InFailedTransaction(
                "current transaction is aborted, commands ignored until end of transaction block"
            )

    def _guarded(self, outputs: Iterator[Output]) -> Generator[Output, None, bool]:
        """``outputs``, with an error turned into its ErrorResponse (and the transaction marked
        failed if one is open); returns whether there was none. An exception that is no sqlml
        error is our bug: XX000 with its message, and the traceback in the log."""
        try:
            yield from outputs
            return True
        except errors.Error as e:
            error = e
        except Exception as e:
            log.exception("internal error in a statement")
            error = _internal(e)
        self._note_failure()
        yield _error(settings.prefixed(error) if self.sqlstate_in_message else error)
        return False

    def _note_failure(self) -> None:
        self._failed = self.backend is not None and self.backend.in_transaction()

    def _result(
        self, result: Result, sql: str, formats: tuple[int, ...], describe: bool
    ) -> Iterator[Output]:
        table = result.table
        if table is None:
            yield p.CommandComplete(_tag(result, sql)).encode()
            return
        expanded = _formats(formats, table.num_columns)
        if describe:
            yield row_description(table.schema, expanded).encode()
        yield from _rows(table, expanded, 0, table.num_rows)
        yield p.CommandComplete(_tag(result, sql, table.num_rows)).encode()

    def _ready_for_query(self) -> bytes:
        status = "E" if self._failed else "I"
        if not self._failed and self.backend is not None and self.backend.in_transaction():
            status = "T"
        return p.ReadyForQuery(status).encode()

    # -- the extended query protocol --------------------------------------------------------

    def _extended(self, message: object) -> Iterator[Output]:
        if isinstance(message, p.Parse):
            yield self._parse(message)
        elif isinstance(message, p.Bind):
            yield self._bind(message)
        elif isinstance(message, p.Describe):
            yield from self._describe(message)
        elif isinstance(message, p.Execute):
            yield from self._execute(message)
        elif isinstance(message, p.Close):
            (self._statements if message.kind == "S" else self._portals).pop(message.name, None)
            yield p.CloseComplete().encode()
        else:
            raise errors.ProtocolViolation(f"unexpected message {type(message).__name__}")

    def _parse(self, message: p.Parse) -> bytes:
        if message.name and message.name in self._statements:
            raise errors.from_sqlstate(
                "42P05", f'prepared statement "{message.name}" already exists'
            )
        _within_limit(self._statements, message.name, MAX_STATEMENTS, "prepared statements")
        query = self._googlesql(message.query)
        count = max(lexer.parameter_numbers(query), default=0)
        declared = message.param_types + (0,) * (count - len(message.param_types))
        self._statements[message.name] = _Statement(query, declared)
        return p.ParseComplete().encode()

    def _bind(self, message: p.Bind) -> bytes:
        statement = self._statement(message.statement)
        if message.portal and message.portal in self._portals:
            raise errors.from_sqlstate("42P03", f'cursor "{message.portal}" already exists')
        if len(message.params) != len(statement.param_types):
            raise errors.ProtocolViolation(
                f"bind message supplies {len(message.params)} parameters, but prepared"
                f" statement requires {len(statement.param_types)}"
            )
        _within_limit(self._portals, message.portal, MAX_PORTALS, "portals")
        formats = _formats(message.param_formats, len(message.params))
        if any(
            value is not None and not oid and (fmt == 1 or value[:1] == b"{")
            for value, oid, fmt in zip(message.params, statement.param_types, formats, strict=True)
        ):  # a binary value needs its type, and so does an array literal ('{a,b}', psycopg 3)
            self._parameter_types(statement)
        params = [
            types.decode_parameter(value, oid, fmt)
            for value, oid, fmt in zip(message.params, statement.param_types, formats, strict=True)
        ]
        self._portals[message.portal] = _Portal(statement, params, message.result_formats)
        return p.BindComplete().encode()

    def _describe(self, message: p.Describe) -> Iterator[Output]:
        assert self.backend is not None
        if message.kind == "S":
            statement = self._statement(message.name)
            oids = self._parameter_types(statement)
            yield p.ParameterDescription(oids).encode()
            schema = None
            kind = bigquery.dialect_statement(statement.query)
            own = None
            if self.OWN_SETTINGS and _head(statement.query) in _DIALECT_HEADS:
                own = settings.statement(statement.query)
            if kind in bigquery.DIALECT_ANSWERED:  # answered here (_dialect_setting)
                shown = pa.schema([(bigquery.DIALECT_SHOWN, pa.string())])
                schema = shown if kind == "SHOW" else None
            elif own is not None:  # answered here (_sqlstate_setting)
                shown = pa.schema([(settings.NAME, pa.string())])
                schema = shown if own[0] == "SHOW" else None
            elif _head(statement.query) != "COPY":  # a COPY has no rows (NoData)
                schema = self.backend.describe(statement.query, len(oids))
            formats: tuple[int, ...] = (0,)
        elif message.name not in self._portals and self.backend.cursor_exists(message.name):
            # a cursor of DECLARE is a portal too (psycopg 3 describes its named cursors)
            schema, formats = self.backend.describe_cursor(message.name), (0,)
        else:
            portal = self._portal(message.name)
            if _head(portal.statement.query) == "COPY":
                yield p.NoData().encode()
                return
            if portal.result is None:
                portal.result = self._run(portal.statement.query, portal.params)
            schema = portal.result.table.schema if portal.result.table is not None else None
            formats = portal.result_formats
        if schema is None:
            yield p.NoData().encode()
        else:
            yield row_description(schema, _formats(formats, len(schema))).encode()

    def _execute(self, message: p.Execute) -> Iterator[Output]:
        portal = self._portal(message.portal)
        query = portal.statement.query
        copy = self._parse_copy(query)
        if copy is not None:
            yield from self._copy(copy, portal.params)
            return
        if portal.result is None:
            portal.result = self._run(portal.statement.query, portal.params)
        table = portal.result.table
        if table is None:
            yield p.CommandComplete(_tag(portal.result, portal.statement.query)).encode()
            return
        formats = _formats(portal.result_formats, table.num_columns)
        stop = table.num_rows
        if message.max_rows > 0:
            stop = min(stop, portal.sent + message.max_rows)
        yield from _rows(table, formats, portal.sent, stop)
        sent, portal.sent = stop - portal.sent, stop
        if stop < table.num_rows:
            yield p.PortalSuspended().encode()
        else:
            yield p.CommandComplete(_tag(portal.result, query, sent)).encode()

    def _parameter_types(self, statement: _Statement) -> tuple[int, ...]:
        """The statement's parameter types, inferred once where the client gave none; Bind
        decodes with them, as the client encodes with what Describe told it."""
        assert self.backend is not None
        if 0 in statement.param_types:
            if self._failed:  # the engine reads no catalog now; PostgreSQL refuses too
                raise errors.InFailedTransaction(
                    "current transaction is aborted, commands ignored until end of"
                    " transaction block"
                )
            statement.param_types = self.backend.parameter_types(
                statement.query, statement.param_types
            )
        return statement.param_types

    def _statement(self, name: str) -> _Statement:
        if name not in self._statements:
            raise errors.from_sqlstate("26000", f'prepared statement "{name}" does not exist')
        return self._statements[name]

    def _portal(self, name: str) -> _Portal:
        if name not in self._portals:
            raise errors.from_sqlstate("34000", f'portal "{name}" does not exist')
        return self._portals[name]

    # -- COPY ---------------------------------------------------------------------------------

    def _copy(self, copy: CopyStatement, params: Sequence[Any] | None) -> Iterator[Output]:
        """Starts a COPY: TO STDOUT runs to its end here; FROM STDIN enters copy-in."""
        assert self.backend is not None
        self._check_not_failed("COPY")
        if copy.to_client:
            yield from self._copy_out(copy, self._run(copy.select(), params))
            return
        assert copy.table is not None  # (a query is copied TO, never FROM: parse_copy checks)
        target = self.backend.copy_in(copy.table, copy.columns)
        try:
            parser = CopyInParser(target.schema, copy.format, copy.options)
        except errors.Error:
            target.abort()
            raise
        self._copying = _CopyIn(parser, target, None)
        code = 1 if copy.format == "binary" else 0
        yield p.CopyInResponse(code, (code,) * len(target.schema)).encode()

    def _copy_out(self, copy: CopyStatement, result: Result) -> Iterator[Output]:
        table = result.table
        if table is None:
            raise errors.FeatureNotSupported("COPY query must return rows")
        out = CopyOut(table.schema, copy.format, copy.options)
        yield p.CopyOutResponse(out.format_code, (out.format_code,) * table.num_columns).encode()
        yield from out.messages(table, BATCH_ROWS)
        yield p.CopyDone().encode()
        yield p.CommandComplete(f"COPY {table.num_rows}").encode()

    def _copy_message(self, copy_in: _CopyIn, message: object) -> Iterator[Output]:
        """One message in copy-in mode. An error ends the copy with nothing inserted; then, in
        a simple Query, the rest of it is dropped, and after Execute everything up to Sync."""
        ok = yield from self._guarded(self._copy_step(copy_in, message))
        if ok:
            return
        self._copying = None
        try:
            copy_in.target.abort()
        except errors.Error:
            log.warning("rolling back a failed COPY failed", exc_info=True)
        self._note_failure()
        if copy_in.rest is None:
            self._skipping = True
        else:
            yield self._ready_for_query()

    def _copy_step(self, copy_in: _CopyIn, message: object) -> Iterator[Output]:
        if isinstance(message, p.CopyData):
            copy_in.feed(message.data)
        elif isinstance(message, p.CopyDone):
            rows = copy_in.finish()
            self._copying = None
            yield p.CommandComplete(f"COPY {rows}").encode()
            if copy_in.rest is not None:
                yield from self._run_statements(copy_in.rest)
        elif isinstance(message, p.CopyFail):
            raise errors.QueryCanceled(f"COPY from stdin failed: {message.message}")
        elif not isinstance(message, p.Flush | p.Sync):  # sent behind an Execute: ignored
            name = type(message).__name__
            raise errors.ProtocolViolation(f"unexpected message {name} during COPY from stdin")

    # -- errors -----------------------------------------------------------------------------

    def _fatal(self, error: errors.Error) -> Iterator[Output]:
        yield protocol.error_response(error, severity="FATAL").encode()
        yield Close()
        self.close()


def _error(error: errors.Error) -> bytes:
    return protocol.error_response(error).encode()


def _internal(e: Exception) -> errors.Error:
    return errors.InternalError(str(e) or type(e).__name__)


def _within_limit(held: Mapping[str, object], name: str, limit: int, what: str) -> None:
    """A new named entry in ``held`` must leave at most ``limit`` of them (53400)."""
    if name and name not in held and len(held) - ("" in held) >= limit:
        raise errors.from_sqlstate(
            "53400",
            f"too many {what} in this session ({limit})",
            hint="close the ones no longer used (the protocol's Close message)",
        )


def _formats(formats: Sequence[int], count: int) -> tuple[int, ...]:
    """A message's format codes for ``count`` values: none (all text), one (for all), or each."""
    if not formats:
        return (0,) * count
    if len(formats) == 1:
        return (formats[0],) * count
    if len(formats) != count:
        raise errors.ProtocolViolation(f"{len(formats)} format codes for {count} values")
    return tuple(formats)


def row_description(schema: pa.Schema, formats: Sequence[int]) -> p.RowDescription:
    fields = []
    for arrow_field, fmt in zip(schema, formats, strict=True):
        wire = types.wire_field(arrow_field)
        fields.append(p.Field(arrow_field.name, 0, 0, wire.oid, wire.size, wire.modifier, fmt))
    return p.RowDescription(tuple(fields))


def _rows(table: pa.Table, formats: Sequence[int], start: int, stop: int) -> Iterator[bytes]:
    for offset in range(start, stop, BATCH_ROWS):
        chunk = table.slice(offset, min(BATCH_ROWS, stop - offset)).combine_chunks()
        for batch in chunk.to_batches():
            yield types.data_rows(batch, formats)


def _head(sql: str) -> str:
    return lexer.first_word(sql)


def _tag(result: Result, sql: str, rows: int | None = None) -> str:
    """PostgreSQL's command tag (wire.tags): 'INSERT 0 3', 'UPDATE 2', 'CREATE TABLE', ...; an
    EXECUTE has its prepared statement's (the backend knows it), a COMMIT that rolled back
    says ROLLBACK."""
    head = _head(sql)
    if (head == "EXECUTE" and result.status) or (head == "COMMIT" and result.status == "ROLLBACK"):
        return result.status
    if not head and not lexer.head(sql):
        return result.status or ""
    return tags.command_tag(sql, result.rowcount if rows is None else rows)
