"""sqlml serve over PostgreSQL: a transparent proxy that handles ML statements itself.

Theory of operation. The session opens one connection to PostgreSQL (upstream.Connection) with
the client's own user, database and (filtered) startup parameters, and relays the login between
the client and the server, so that the client runs as its own role (identity.py has the design
and its rules). From then on it passes the client's messages to the server and the server's
answers back, unchanged: types, catalogs, COPY, prepared statements, transactions and errors are
PostgreSQL's own. Only statements that are ML (grammar.is_ml: the one lexer's tokens hold an ML
statement or call) are looked at:

- a query with ML calls (ML.PREDICT, ML.SCORE) is rendered to PostgreSQL's own SQL by the sqlml
  engine (engine.Session.ml_sql) and that SQL goes to the server in the client's place: in a Query
  message, or in the client's Parse, so that prepared statements, binary results, row limits and
  cursors work on it as on any query. A prepared ML statement follows the serving version: at
  its next execution after a deploy the proxy parses it again on the server (followed.py).
  When a model logs its predictions, the statements that log the sample run after the query
  on the same connection, in the client's transaction (logged.py).
- anything else (CREATE MODEL, DROP MODEL, ML.EVALUATE, SHOW MODELS) is run by the sqlml engine
  over the same connection (upstream.UpstreamEngine), so it happens inside the client's
  transaction; its result is encoded by the gateway, and its ReadyForQuery still comes from the
  server (a Sync), with the server's transaction status. An error of such a statement inside a
  transaction block aborts the server's transaction too, as any error would.

The server's answers are not decoded beyond what the proxy must know: which message completes
which of the client's (so that the proxy knows when the server is quiet, before it uses the
connection itself), ReadyForQuery's status and the COPY handshakes. A Query message that mixes ML
and other statements is run one statement at a time (PostgreSQL would run them in one implicit
transaction).

BigQuery mode (``sqlml serve --dialect bigquery``, ``SET sqlml.dialect = 'bigquery'``): the
setting is the proxy's own, never the server's (SET, SHOW and RESET sqlml.dialect are answered
here; RESET ALL and DISCARD ALL go to the server and bring it back to the session's default
too). A session in BigQuery mode leaves the event loop's fast path: every Query and Parse goes
to the worker, which reads each statement as GoogleSQL and transpiles it to PostgreSQL's SQL
(grammar.bigquery, as sqlml.connect does on PostgreSQL) before it takes the way above: plain
SQL to the server in the client's place, ML statements rendered or run by the engine. The
clients' own catalog queries (naming pg_... or information_schema) stay as written. What cannot
be transpiled is the proxy's own error (0A000), reported in its place as any other. A session in
the default mode pays one more substring test per message on the fast path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import pyarrow as pa

from sqlml import engine, errors, grammar, predlog, prepared
from sqlml.engines.base import Result
from sqlml.grammar import bigquery, lexer
from sqlml.wire import followed, identity, limits, logged, protocol
from sqlml.wire import protocol as p
from sqlml.wire.proxy_backend import ProxyBackend
from sqlml.wire.proxy_kinds import (
    ABORT,
    BIND,
    C_BYTE,
    COPY_END,
    COPY_IN,
    E_BYTE,
    ENDS_AT_READY,
    EXECUTE,
    FAST,
    HIDDEN_READY,
    INNER,
    KINDS,
    LENGTH,
    OWN,
    OWN_CLOSE,
    OWN_KINDS,
    OWN_PARSE,
    OWN_SYNC,
    PARSE,
    POISON,
    QUERY,
    SYNC,
    SYNC_BYTE,
    TERMINAL,
    TEXT,
    Z_BYTE,
    error_fields,
    query_text,
)
from sqlml.wire.session import MAX_STATEMENTS, Output, Session, _within_limit
from sqlml.wire.upstream import describe

# What a statement does to the session's dialect: grammar.bigquery.dialect_statement.
_setting_statement = bigquery.dialect_statement
_ALL, _ANSWERED = bigquery.DIALECT_ALL, bigquery.DIALECT_ANSWERED
_SHOWN = bigquery.DIALECT_SHOWN


def _may_name_dialect(lowered: str, default: str) -> bool:
    """Whether a text (lower-cased) may hold a statement that _setting_statement finds and
    that changes something: RESET ALL and DISCARD ALL only where the default is not ''."""
    if "dialect" in lowered:
        return True
    return bool(default) and ("reset" in lowered or "discard" in lowered)


class ProxySession(Session):
    """A wire session whose statements run on PostgreSQL (see the module's docstring)."""

    authenticates_upstream = True  # PostgreSQL checks the clients' passwords (identity.py)
    OWN_SETTINGS = False  # sqlml.sqlstate_in_message is PostgreSQL's (the extension reads it)

    backend: ProxyBackend | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: deque[int] = deque()  # forwarded messages the server has not completed
        self._outbox: list[bytes] = []  # forwarded messages not yet sent
        self._copy_in = False  # the server waits for the client's COPY data
        self._upstream_failed = False  # the server reported an error since the last Sync
        self._inner_failed = False  # the last INNER query failed
        self._login: ProxyBackend | None = None  # the backend while the client logs in
        self._ml_prepared: dict[str, followed.Prepared] = {}  # the server's, of ML queries
        self._syncs = 0  # Sync messages so far: a Bind after a new one is a new execution
        self._database = ""  # the server's name of the database (what a project names)
        # the prediction log (logged.py): portals that log when their Execute completes; how
        # the last Execute ended; whether the transaction can write, as found after the
        # ReadyForQuery counted; a block the proxy opened (ended at the client's Sync); and
        # the error of the proxy's own statement whose errors are hidden
        self._logging: dict[str, logged.Logged] = {}
        self._executed: int | None = None
        self._readies = 0
        self._writable: tuple[int, bool] | None = None
        self._opened = False
        self._quiet = False
        self._quiet_error: dict[str, str] | None = None

    # -- startup ----------------------------------------------------------------------------

    def _challenge(self, user: str) -> Iterator[Output]:
        """Authentication pass-through (identity.py): the server's requests go to the client
        and the client's answers to the server, until the server is ready. The gateway's own
        methods and users (SessionConfig.auth_method, users) do not apply here; the rules of
        exposure do (TLS off loopback or with require_tls: limits.py)."""
        if not self._encrypted and not self._plain_allowed(limits.UPSTREAM_AUTH):
            self._log_failure(user, "no encryption")
            raise errors.from_sqlstate(
                "28000",
                f'connection without TLS refused for user "{user}"',
                hint="connect with sslmode=require",
            )
        startup = identity.filter_startup(self.startup.parameters)
        backend = self.open_backend(self.startup.database, user)
        assert isinstance(backend, ProxyBackend)
        if self.attach is None:
            raise errors.InternalError("a proxy session runs under the server's event loop")
        self._login = backend
        database = backend.databases.get(self.startup.database, self.startup.database)
        self._database = database
        startup |= {"user": user, "database": database}
        backend.connect(self._upstream_options(startup), self.attach)
        yield from self._login_step()

    def _login_step(self) -> Iterator[Output]:
        """The server's next request, relayed; or the end of the login."""
        assert self._login is not None
        connection = self._login.connection
        while isinstance(challenge := connection.challenge(), p.AuthenticationSASLFinal):
            yield challenge.encode()  # the server's signature: the client checks it
        if challenge is None:
            yield from self._logged_in()  # (the connection budget: limits.py)
            return
        if isinstance(challenge, p.AuthenticationCleartextPassword):
            if not (self.config.loopback or self._encrypted):
                raise errors.from_sqlstate(
                    "28000", "cleartext passwords are accepted only over TLS or loopback"
                )
        elif isinstance(challenge, p.AuthenticationSASL):
            offered = identity.offered_mechanisms(challenge.mechanisms)
            if not offered:
                raise errors.from_sqlstate(
                    "28000", "PostgreSQL offers no SASL mechanism that can pass the gateway"
                )
            challenge = p.AuthenticationSASL(offered)
            self._auth = self._sasl_first
            yield challenge.encode()
            return
        self._auth = self._respond
        yield challenge.encode()

    def _sasl_first(self, data: bytes) -> Iterator[Output]:
        assert self._login is not None
        _, client_first = protocol.sasl_initial_response(data)
        identity.check_channel_binding(client_first, self._login.connection.encrypted)
        yield from self._respond(data)

    def _respond(self, data: bytes) -> Iterator[Output]:
        """The client's answer (a password, md5 hash or SCRAM message) to the server, as is."""
        assert self._login is not None
        self._login.connection.respond(data)
        yield from self._login_step()

    def _authenticated(self) -> Iterator[Output]:
        backend = self._login
        assert backend is not None
        connection = backend.connection
        identity.check_trust(self.config.loopback, connection.asked_password, backend.allow_trust)
        self._login = None
        backend.progress = self.notice  # training progress, sent while the training runs
        self.backend = backend
        out = [p.AuthenticationOk().encode()]
        for name, value in connection.parameters.items():
            out.append(p.ParameterStatus(name, value).encode())
        out.append(p.BackendKeyData(self.process_id, self.secret_key).encode())
        out.append(p.ReadyForQuery(connection.status).encode())
        yield b"".join(out)

    def close(self) -> None:
        super().close()
        if self._login is not None:  # the client left during the login
            self._login.close()
            self._login = None

    def _upstream_options(self, startup: dict[str, str]) -> dict[str, str]:
        """The client's startup parameters, and the gateway's statement timeout as the server's
        own statement_timeout: PostgreSQL enforces it (57014) on every statement, the ones the
        event loop relays without a worker included (a client's SET may lift it, as with any
        server default)."""
        options = dict(startup)
        if self.config.statement_timeout is not None:
            milliseconds = max(1, round(self.config.statement_timeout * 1000))
            timeout = f"-c statement_timeout={milliseconds}"
            options["options"] = f"{options.get('options', '')} {timeout}".strip()
        return options

    # -- relaying ---------------------------------------------------------------------------

    def receive(self, data: bytes) -> Iterator[Output]:
        yield from super().receive(data)
        if self.backend is not None and not self.closed:
            self._send()  # the event loop passes the answers on as they come (answer())

    # -- on the event loop (server.py): plain SQL without a thread hop ----------------------

    def forward_fast(self, data: bytes) -> bool:
        """Whether ``data`` may go to the server as it is, from the event loop: whole messages
        only, none that may be ML or names a statement of the proxy's own, and the session in
        its plain state. Keeps the books as ``_forward`` would; False changes nothing (the
        worker thread then takes ``data`` through ``receive``)."""
        if (
            self.backend is None
            or self.dialect  # BigQuery mode: every statement is transpiled on the worker
            or self.closed
            or self._skipping
            or self._statements
            or self._portals
            or self.reader.buffered
        ):
            return False
        kinds: list[int] = []
        copy_end, syncs = False, 0
        pos, size, limit = 0, len(data), self.config.max_message_size
        while pos < size:
            if pos + 5 > size:
                return False
            kind, length = data[pos], LENGTH.unpack_from(data, pos + 1)[0]
            end = pos + 1 + length
            if length < 4 or length > limit or end > size or kind not in FAST:
                return False
            if kind in TEXT and self._for_worker(query_text(kind, data, pos + 5, end)):
                return False
            if self._ml_prepared and self._names_ml(kind, data, pos + 5, end):
                return False
            if self._logging and logged.portal_name(kind, data, pos + 5, end) in self._logging:
                return False
            if self._opened and kind == SYNC_BYTE:
                return False
            syncs += kind == SYNC_BYTE
            copy_end = copy_end or kind in COPY_END
            fast = FAST[kind]
            if fast is not None:
                kinds.append(fast)
            pos = end
        self._pending.extend(kinds)
        self._syncs += syncs
        if copy_end:
            self._copy_in = False
        return True

    def _for_worker(self, sql: str) -> bool:
        """Whether a Query or Parse may be ML or name the session's dialect (the worker looks
        closer): one lower-casing and a few substring tests for plain SQL."""
        lowered = sql.lower()
        if "dialect" in lowered:  # (_may_name_dialect, inlined: this runs on every message)
            return True
        if self.config.dialect and ("reset" in lowered or "discard" in lowered):
            return True
        if self._ml_prepared and followed.may_deallocate(lowered):  # (the worker's books)
            return True
        if self._keeps_prepared() and any(
            w in lowered for w in ("execute", "deallocate", "discard")
        ):
            return True  # (maybe an SQL-level prepared ML query: prepared.py)
        return ("ml" in lowered or "model" in lowered) and grammar.is_ml(sql)

    def _names_ml(self, kind: int, data: bytes, start: int, end: int) -> bool:
        """Whether a Parse, Bind or Close names a prepared ML statement of the server's: the
        worker keeps the books (followed.py)."""
        return followed.message_name(kind, data, start, end) in self._ml_prepared

    def _keeps_prepared(self) -> bool:
        """Whether the engine session keeps SQL-level prepared ML queries (prepared.py)."""
        return self.backend is not None and self.backend.keeps_prepared()

    def _kept(self, sql: str) -> bool:
        """An EXECUTE or DEALLOCATE of an ML query the engine session prepared (prepared.py):
        run there, not sent to the server, which never saw its PREPARE."""
        backend = self.backend
        return (
            backend is not None and backend.keeps_prepared() and prepared.concerns(backend.ml, sql)
        )

    def _names_dialect(self, sql: str) -> bool:
        """Whether a statement of ``sql`` is one on the session's dialect (_setting_statement)."""
        if not _may_name_dialect(sql.lower(), self.config.dialect):
            return False
        return any(_setting_statement(s) is not None for s in grammar.split_script(sql))

    def busy(self) -> bool:
        return bool(self._pending)

    def _forward(self, message: p.FrontendMessage, kind: int | None = None) -> None:
        self._outbox.append(message.encode())
        if kind is not None:
            self._pending.append(kind)

    def _send(self) -> None:
        if self._outbox and self.backend is not None:
            data, self._outbox = b"".join(self._outbox), []
            self.backend.connection.send(data)

    def _relay(self) -> Iterator[Output]:
        """Passes the server's answers on until every forwarded message has its answer (or the
        server waits for COPY data from the client)."""
        assert self.backend is not None
        self._send()
        connection = self.backend.connection
        while self._pending and not self._copy_in:
            chunk, spans = connection.read()
            passed = self.answer(chunk, spans)
            if passed:
                yield passed

    def _quiesce(self) -> Iterator[Output]:
        """Every forwarded message answered: the connection is free for the proxy's own use."""
        if self._pending:
            self._forward(p.Flush())
        yield from self._relay()

    def answer(self, chunk: bytes, spans: list[tuple[int, int, int]]) -> bytes:
        """What of ``chunk`` goes to the client, keeping track of what the server answered (on
        the event loop, or on the worker while it has the connection)."""
        pending = self._pending
        pieces: list[bytes] = []
        kept = 0  # chunk[kept:start] is passed on at the next cut
        for kind, start, end in spans:
            head = pending[0] if pending else None
            if kind == Z_BYTE:
                assert self.backend is not None
                self.backend.connection.status = chr(chunk[start + 5])
                self._readies += 1
                if head in ENDS_AT_READY:
                    pending.popleft()
                    if head in (SYNC, OWN_SYNC):
                        self._upstream_failed = False
            elif kind == E_BYTE:
                self._copy_in = False
                if self._quiet and head in OWN:  # (logged.py: a shadow's error, hidden)
                    self._quiet_error = error_fields(chunk[start:end])
                    pieces.append(chunk[kept:start])
                    kept = end
                if head == INNER:
                    self._inner_failed = True
                elif head is not None and head not in ENDS_AT_READY:
                    # the server skips the rest of an extended-protocol batch until Sync
                    while pending and pending[0] not in ENDS_AT_READY:
                        pending.popleft()
                    self._upstream_failed = True
            elif kind in COPY_IN:
                self._copy_in = True
            elif head in TERMINAL and kind in TERMINAL[head]:
                pending.popleft()
                if head == EXECUTE:
                    self._executed = kind
            own = head in OWN and kind in TERMINAL[head]  # (an error does go to the client)
            if head == POISON or (head in HIDDEN_READY and kind == Z_BYTE) or own:
                pieces.append(chunk[kept:start])  # the proxy's own: the client must not see it
                kept = end
        if not kept:
            return chunk
        pieces.append(chunk[kept:])
        return b"".join(pieces)

    # -- the client's messages --------------------------------------------------------------

    def _ready(self, message: object) -> Iterator[Output]:
        if isinstance(message, p.Sync):
            self._syncs += 1
            self._skipping = False
            self._portals.pop("", None)
            if self._opened:
                yield from self._end_block()
            self._forward(message, SYNC)
        elif self._skipping:
            return  # after an error of the proxy's own, until Sync (as the server would)
        elif isinstance(message, p.Query):
            yield from self._query(message)
        elif isinstance(message, p.CopyDone | p.CopyFail):
            self._copy_in = False
            self._forward(message)
        elif isinstance(message, p.Parse) and (self.dialect or self._names_dialect(message.query)):
            yield from self._local(self._parse_translated(message))
        elif isinstance(message, p.Parse) and grammar.is_ml(message.query):
            yield from self._local(self._parse_ml(message))
        elif self._is_local(message):
            yield from self._local(self._extended(message))
        elif isinstance(message, p.Bind) and message.statement in self._ml_prepared:
            yield from self._bind_ml(message)
        elif isinstance(message, p.Execute) and message.portal in self._logging:
            yield from self._execute_logged(message)
        else:
            if isinstance(message, p.Parse):
                self._statements.pop(message.name, None)  # the name now means the server's
                self._ml_prepared.pop(message.name, None)
            elif isinstance(message, p.Bind):
                self._portals.pop(message.portal, None)
                self._logging.pop(message.portal, None)
            elif isinstance(message, p.Close) and message.kind == "S":
                self._ml_prepared.pop(message.name, None)
            elif isinstance(message, p.Close):
                self._logging.pop(message.name, None)
            kind = KINDS.get(type(message))
            self._forward(message, kind)  # type: ignore[arg-type]

    def _is_local(self, message: object) -> bool:
        """Whether a message names a statement or portal of the proxy's own (an ML command), or
        parses an EXECUTE of an ML query the engine session prepared."""
        if isinstance(message, p.Parse):
            return self._kept(message.query)
        if isinstance(message, p.Bind):
            return message.statement in self._statements
        if isinstance(message, p.Describe | p.Close):
            names = self._statements if message.kind == "S" else self._portals
            return message.name in names
        if isinstance(message, p.Execute):
            return message.portal in self._portals
        return False

    def _local(self, work: Iterator[Output]) -> Iterator[Output]:
        """Work of the proxy's own, in its place in the stream of answers."""
        yield from self._quiesce()
        if self._upstream_failed:
            return  # the server skips everything until Sync after its error; so does the proxy
        try:
            yield from work
        except errors.Error as e:
            yield from self._failed_locally(e)
            self._skipping = True
        yield from self._flush_notices()

    def _parse_translated(self, message: p.Parse) -> Iterator[Output]:
        """A Parse in BigQuery mode, or of a statement on the dialect: SET, SHOW and RESET
        sqlml.dialect are kept here (run at Execute: _run); anything else goes to the server
        transpiled (an ML query rendered, an ML command kept here: _parse_ml)."""
        if _setting_statement(message.query) in _ANSWERED:
            yield from self._extended(message)
            return
        parse = p.Parse(message.name, self._translated(message.query), message.param_types)
        if grammar.is_ml(parse.query):
            yield from self._parse_ml(parse)
            return
        self._statements.pop(message.name, None)  # the name now means the server's
        self._ml_prepared.pop(message.name, None)
        self._forward(parse, PARSE)

    def _parse_ml(self, message: p.Parse) -> Iterator[Output]:
        """An ML query becomes the server's own prepared statement, rendered; an ML command
        is kept here and run at Execute."""
        assert self.backend is not None
        rendered = self._render(message.query)
        self._ml_prepared.pop(message.name, None)
        if rendered is None:
            yield from self._extended(message)
            return
        _within_limit(self._ml_prepared, message.name, MAX_STATEMENTS, "prepared ML statements")
        self._statements.pop(message.name, None)
        if rendered.logs:  # (now: a Query of the engine's would drop the unnamed statement)
            self._writable_now()
        self._forward(p.Parse(message.name, rendered.sql, message.param_types), PARSE)
        self._forward(p.Flush())
        yield from self._relay()
        self._ml_prepared[message.name] = followed.Prepared(
            message.query, rendered.sql, message.param_types, self._syncs, rendered.logs
        )

    def _bind_ml(self, message: p.Bind) -> Iterator[Output]:
        """A Bind of a prepared ML statement: at a new execution (the first Bind after a
        Sync), its server statement is parsed again when the serving version changed."""
        prepared = self._ml_prepared[message.statement]
        if prepared.checked != self._syncs:
            yield from self._local(self._follow(message.statement, prepared))
        if self._skipping or self._upstream_failed:
            return  # (the server skips everything until Sync after an error; so does the proxy)
        self._portals.pop(message.portal, None)
        self._logging.pop(message.portal, None)
        if prepared.logs:
            if not self._writable_known():
                yield from self._quiesce()
            if self._writable_now():
                if len(self._logging) >= MAX_STATEMENTS:  # (portals left open: the oldest goes)
                    del self._logging[next(iter(self._logging))]
                self._logging[message.portal] = logged.Logged(
                    prepared.logs, message, prepared.param_types
                )
        self._forward(message, BIND)

    def _follow(self, name: str, prepared: followed.Prepared) -> Iterator[Output]:
        """The server's statement ``name`` made current (followed.py); an error (the model
        was dropped, ...) is the Bind's."""
        assert self.backend is not None
        if self.backend.connection.status == "E":
            return  # (the server answers the Bind with 25P02 itself)
        found = self._render(prepared.query)
        prepared.checked = self._syncs
        if found is None:
            return
        prepared.logs = found.logs  # (a change of the log's options renders it again)
        if found.logs:  # (before the Parse below: the engine's Query drops the unnamed statement)
            self._writable_now()
        rendered = found.sql
        if rendered == prepared.rendered:
            return
        self._forward(p.Close("S", name), OWN_CLOSE)
        self._forward(p.Parse(name, rendered, prepared.param_types), OWN_PARSE)
        self._forward(p.Flush())
        yield from self._relay()
        if self._upstream_failed:  # (its error went to the client) the server has no such name
            self._ml_prepared.pop(name, None)
            self._skipping = True  # the server skips the client's messages until Sync: so do we
        prepared.rendered = rendered

    def _render(self, sql: str) -> engine.Rendered | None:
        """The server's SQL for an ML query (inside DECLARE or EXPLAIN too, which log
        nothing), with what logs its ML.PREDICT samples; or None."""
        assert self.backend is not None
        start, end = lexer.wrapped_query(sql)
        inner = self.backend.ml.ml_plan(sql[start:end])
        if inner is None or (start, end) == (0, len(sql)):
            return inner
        return engine.Rendered(sql[:start] + inner.sql + sql[end:])

    def _query(self, message: p.Query) -> Iterator[Output]:
        ours = self.dialect or self._names_dialect(message.query)
        if self._ml_prepared and followed.may_deallocate(message.query.lower()):
            self._deallocate(message.query)
        if self._keeps_prepared() and lexer.first_word(message.query) in ("DEALLOCATE", "DISCARD"):
            assert self.backend is not None  # (DEALLOCATE ALL, DISCARD ALL: the Session's go too)
            if not self._kept(message.query):
                prepared.handle(self.backend.ml, message.query, None)
        if not ours and not grammar.is_ml(message.query) and not self._kept(message.query):
            self._forward(message, QUERY)
            return
        yield from self._quiesce()
        statements = grammar.split_script(message.query)
        try:
            if len(statements) == 1 and (yield from self._forward_whole(statements[0])):
                return
        except errors.Error as e:  # reported once: a retry would meet the aborted transaction
            yield from self._flush_notices()
            yield from self._failed_locally(e)
            self._forward(p.Sync(), SYNC)
            return
        if not statements:
            yield p.EmptyQueryResponse().encode()
        for sql in statements:
            failed = yield from self._one(sql)
            if failed:
                break
        self._forward(p.Sync(), SYNC)  # ReadyForQuery, with the server's transaction status

    def _deallocate(self, sql: str) -> None:
        """DEALLOCATE and DISCARD ALL drop the server's prepared statements: off the books."""
        try:
            dropped = followed.deallocated(sql)
        except errors.Error:
            return  # (the server reports what it cannot read)
        if dropped is None:
            self._ml_prepared.clear()
        for name in dropped or ():
            self._ml_prepared.pop(name, None)

    def _forward_whole(self, sql: str) -> Generator[Output, None, bool]:
        """A Query of one statement goes to the server in the client's place when it can: in
        BigQuery mode transpiled, an ML query rendered. False for the proxy's own statements
        (ML commands, the dialect's); an error is raised (_forward_rendered)."""
        if _setting_statement(sql) in _ANSWERED:
            return False
        sql = self._translated(sql)
        if self._kept(sql):
            return False  # (an EXECUTE or DEALLOCATE of the Session's: _one runs it there)
        if not grammar.is_ml(sql):
            self._forward(p.Query(sql), QUERY)
            return True
        return (yield from self._forward_rendered(sql))

    def _forward_rendered(self, sql: str) -> Generator[Output, None, bool]:
        """A Query of one ML query goes to the server rendered, in the client's place: its
        answers and ReadyForQuery are the client's, passed on as they come (no Sync of ours),
        unless it logs (_inner_logged). False for anything else; an error is raised (rendering
        may have aborted the server's transaction: the statement must not be tried again)."""
        rendered = self._render(sql)
        if rendered is None:
            return False
        if self._logs_here(rendered):
            yield from self._inner_logged(rendered)
            self._forward(p.Sync(), SYNC)
            return True
        self._forward(p.Query(rendered.sql), QUERY)
        return True

    def _one(self, sql: str) -> Generator[Output, None, bool]:
        """One statement of a Query message that holds ML; returns whether it failed."""
        assert self.backend is not None
        try:
            kind = _setting_statement(sql)
            if kind in _ANSWERED:
                result = self._setting(kind, sql)
            else:
                sql = self._translated(sql)
                if self._kept(sql):
                    rendered = None  # (the Session's prepared ML query: prepared.py)
                else:
                    rendered = self._render(sql) if grammar.is_ml(sql) else engine.Rendered(sql)
                if rendered is not None and self._logs_here(rendered):
                    return (yield from self._inner_logged(rendered))
                if rendered is not None:
                    self._inner_failed = False
                    self._forward(p.Query(rendered.sql), INNER)
                    yield from self._relay()
                    return self._inner_failed
                result = self.backend.execute(sql)
        except errors.Error as e:
            yield from self._flush_notices()
            yield from self._failed_locally(e)
            return True
        yield from self._flush_notices()
        yield from self._result(result, sql, (0,), describe=True)
        return False

    # -- the prediction log (logged.py) -----------------------------------------------------

    def _logs_here(self, rendered: engine.Rendered) -> bool:
        """Whether a rendered query's log statements run (on a quiet connection): it has some,
        and the transaction can write (none in an aborted one: the server refuses the query)."""
        assert self.backend is not None
        if not rendered.logs or self.backend.connection.status == "E":
            return False
        return predlog.writable(self.backend.ml)

    def _inner_logged(self, rendered: engine.Rendered) -> Generator[Output, None, bool]:
        """A Query's ML query, then its log statements (predlog.run), in one transaction: the
        client's block, or one the proxy opens and commits around them. Returns whether it
        failed (the query's error, or the served sample's INSERT's, reported)."""
        assert self.backend is not None
        ml = self.backend.ml
        opened = self.backend.connection.status == "I"
        if opened:
            ml.engine.execute("BEGIN")
        try:
            self._inner_failed = False
            self._forward(p.Query(rendered.sql), INNER)
            yield from self._relay()
            failed = self._inner_failed
            if not failed:
                try:
                    predlog.run(ml, rendered.logs, None)
                except errors.Error as e:
                    yield from self._flush_notices()
                    yield from self._failed_locally(e)
                    failed = True
        finally:
            if opened:  # (in an aborted block, COMMIT rolls it back)
                ml.engine.execute("COMMIT")
        yield from self._flush_notices()
        return failed

    def _writable_known(self) -> bool:
        return self._writable is not None and self._writable[0] == self._readies

    def _writable_now(self) -> bool:
        """predlog.writable, once per transaction state (the ReadyForQuery last counted): on a
        quiet connection, before the client's Parse (the engine's Query would drop the
        unnamed statement) or at a Bind of a named one."""
        assert self.backend is not None
        if self._writable is None or self._writable[0] != self._readies:
            status = self.backend.connection.status
            found = status != "E" and predlog.writable(self.backend.ml)
            self._writable = (self._readies, found)
        return self._writable[1]

    def _execute_logged(self, message: p.Execute) -> Iterator[Output]:
        """The client's Execute of a portal that logs: passed on and answered, then, when it
        completed the portal, its log statements (a part of it: when the last part comes)."""
        if self._skipping or self._upstream_failed:
            return
        self._executed = None
        self._forward(message, EXECUTE)
        self._forward(p.Flush())
        yield from self._relay()
        if self._upstream_failed:  # (the server skips the batch until Sync: so does the proxy)
            self._logging.clear()
            self._skipping = True
            return
        if self._executed != C_BYTE:
            return  # suspended at its row limit (or empty): logged when it completes
        portal = self._logging.pop(message.portal)
        for log in portal.logs:
            if log.shadow is None:
                if log.create:  # (the typed table's CALL: made where it is missing)
                    yield from self._own(logged.statement(log.create))
                if not self._upstream_failed:
                    yield from self._own(logged.statement(log.sql, portal))
            else:
                yield from self._shadow(log, portal)
            if self._upstream_failed:  # the served sample's INSERT failed: the batch's error
                self._logging.clear()
                self._skipping = True
                return

    def _shadow(self, log: predlog.Log, portal: logged.Logged) -> Iterator[Output]:
        """A shadow's INSERT under a savepoint (in a block the proxy opens if there is none);
        its error is hidden and said in a NOTICE, the savepoint rolled back."""
        assert self.backend is not None
        if self.backend.connection.status == "I" and not self._opened:
            self._opened = True
            yield from self._own(logged.statement("BEGIN"))
        yield from self._own(logged.statement(f"SAVEPOINT {logged.SAVEPOINT}"))
        self._quiet, self._quiet_error = True, None
        try:
            if log.create:
                yield from self._own(logged.statement(log.create))
            if self._quiet_error is None:
                yield from self._own(logged.statement(log.sql, portal))
        finally:
            self._quiet = False
        if self._quiet_error is not None:
            self._forward(p.Sync(), OWN_SYNC)  # out of the error state (the block: aborted)
            yield from self._relay()
            yield from self._own(logged.statement(f"ROLLBACK TO SAVEPOINT {logged.SAVEPOINT}"))
            self.notice(
                f"shadow version {log.shadow} failed on the sampled rows, which are not logged"
                f" for it: {self._quiet_error.get('M', '')}"
            )
            yield from self._flush_notices()
        yield from self._own(logged.statement(f"RELEASE SAVEPOINT {logged.SAVEPOINT}"))

    def _end_block(self) -> Iterator[Output]:
        """At the client's Sync: the block the proxy opened for a shadow ends, as the batch's
        implicit transaction would have: committed, or rolled back after an error."""
        self._opened = False
        if self._upstream_failed:
            self._forward(p.Sync(), OWN_SYNC)
            yield from self._relay()
            yield from self._own(logged.statement("ROLLBACK"))
        else:
            yield from self._own(logged.statement("COMMIT"))

    def _own(self, messages: list[p.FrontendMessage]) -> Iterator[Output]:
        """Statements of the proxy's own in the client's batch: answered, the answers hidden
        (an error goes to the client, unless _quiet)."""
        for message in messages:
            self._forward(message, OWN_KINDS[type(message)])
        self._forward(p.Flush())
        yield from self._relay()

    def _failed_locally(self, error: errors.Error) -> Iterator[Output]:
        """An error of the proxy's own: reported, and inside a transaction block the server's
        transaction is aborted too, so that the client sees 25P02 until it rolls back."""
        assert self.backend is not None
        yield p.error_response(error).encode()
        if self.backend.connection.status == "T":
            self._forward(p.Query(ABORT), POISON)
            yield from self._relay()

    def _flush_notices(self) -> Iterator[Output]:
        yield from self._queued_notices()  # sans-IO: notices queued while no send was given

    # -- BigQuery mode ----------------------------------------------------------------------

    def _translated(self, sql: str) -> str:
        """The server's SQL for one statement of the client's: in BigQuery mode GoogleSQL
        transpiled to PostgreSQL's (grammar.bigquery: 0A000 for what cannot be written, 42P02
        for an @name, which has no value on the wire, 3D000 for a project that is not this
        database), except the clients' own catalog queries, PostgreSQL's SQL in every mode.
        RESET ALL and DISCARD ALL also bring the dialect back to the session's default (and go
        to the server as written)."""
        if _setting_statement(sql) == _ALL:
            self.dialect = self.config.dialect
            return sql
        if not self.dialect or lexer.is_blank(sql) or bigquery.reads_pg_catalog(sql):
            return sql
        target = bigquery.Target(
            "postgres", columns=self._columns, catalogs=lambda: [self._database]
        )
        return bigquery.to_engine(sql, None, target)[0]

    def _columns(self, query: str) -> list[str]:
        """The column names of ``query`` (PostgreSQL's SQL): what ``* EXCEPT`` leaves columns
        out of. Asked of the server without running it (Parse, Describe) when the connection
        is quiet, as it is wherever a statement is transpiled."""
        assert self.backend is not None
        if grammar.is_ml(query):
            rendered = self._render(query)
            if rendered is None:  # ML.EVALUATE: its columns are known once it runs
                return list((self.backend.describe(query, 0) or pa.schema([])).names)
            query = rendered.sql
        return list(describe(self.backend.connection, query).names)

    def _setting(self, kind: str, sql: str) -> Result:
        """SET, SHOW or RESET sqlml.dialect, answered here: the setting is the proxy's. It
        lasts until changed (a ROLLBACK does not undo it); RESET goes back to the session's
        default (sqlml serve --dialect)."""
        assert self.backend is not None
        if self.backend.connection.status == "E":
            raise errors.InFailedTransaction(
                "current transaction is aborted, commands ignored until end of transaction block"
            )
        return self._dialect_setting(kind, sql)

    def _googlesql(self, sql: str) -> str:
        return sql  # the proxy transpiles each statement once, as it comes (_translated)

    def _run(self, sql: str, params: Sequence[Any] | None) -> Result:
        """A statement kept here, at Execute: the dialect's (_setting), or an ML command."""
        kind = _setting_statement(sql)
        if kind in _ANSWERED:
            return self._setting(kind, sql)
        return super()._run(sql, params)
