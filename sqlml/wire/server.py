"""``sqlml serve``: the asyncio server around wire sessions. The only module that owns sockets.

Each connection gets a Session (session.py, no I/O) and a worker thread of its own pool slot:
the bytes read are handed to ``Session.receive`` on that thread, which runs statements on the
session's backend and hands each output back to the event loop to write (with back-pressure:
the worker waits for ``drain``). A statement's notices (CREATE MODEL's progress) go out while it
runs, through the ``send`` the session is given. A long query or training holds its worker,
never the loop, so other clients go on. CancelRequest finds the target session by process id
and secret key. Limits: a connection limit (53300), the largest message (08P01), an idle
timeout and a statement timeout (57014), all in ServerConfig. Exposure (limits.py, and
docs/gateway.md "Security"): connections that have not logged in have a budget of their own and
``authentication_timeout`` to log in; a per-user connection limit; a client that leaves
``write_timeout`` seconds of answers unread is disconnected, which frees its worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import socket
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

from sqlml import errors
from sqlml.wire import auth, limits, protocol
from sqlml.wire.session import Backend, Cancel, Close, Output, Session, SessionConfig, StartTLS
from sqlml.wire.upstream import Frames

READ_SIZE = 1 << 16
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"  # loopback by default: trust is only safe there
    port: int = 5433
    auth_method: str = "trust"  # trust | password | md5 | scram-sha-256
    users: auth.Users | None = None  # from a file or the environment (auth.Users)
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, SSLRequest gets 'S'
    tls_key: str | None = None
    max_connections: int = 64  # further connections get 53300 and are closed
    max_message_size: int = 64 << 20  # bytes; a larger message is 08P01 and closes that client
    idle_timeout: float | None = None  # seconds without a message before closing; None: never
    statement_timeout: float | None = None  # seconds before a message's work is cancelled
    require_tls: bool = False  # every client must use TLS, loopback ones too (28000 otherwise)
    authentication_timeout: float = 60.0  # seconds to log in, then the socket is closed
    max_pending: int = 64  # connections still logging in (not counted in max_connections)
    max_connections_per_user: int | None = None  # logged-in connections of one user (53300)
    write_timeout: float | None = 60.0  # seconds a client may leave answers unread; None: no limit
    dialect: str = ""  # '' PostgreSQL's SQL | 'bigquery': GoogleSQL (sqlml serve --dialect)


class Server:
    def __init__(
        self,
        config: ServerConfig,
        open_backend: Callable[[str, str], Backend],
        session_class: type[Session] = Session,  # proxy.ProxySession over PostgreSQL
    ) -> None:
        self.config = config
        self.open_backend = open_backend
        self.session_class = session_class
        self.sessions: dict[int, Session] = {}
        self._ids = iter(range(1000, 1 << 31))
        self._lock = threading.Lock()
        # a worker per logged-in connection; logins have a few of their own, so that clients
        # that stall a login (a TLS handshake never finished) cannot starve logged-in ones
        self._pool = ThreadPoolExecutor(config.max_connections, thread_name_prefix="sqlml-wire")
        self._login_pool = ThreadPoolExecutor(
            min(config.max_pending, _LOGIN_WORKERS), thread_name_prefix="sqlml-login"
        )
        self._slots = limits.Slots(
            limits.Budget(
                config.max_connections, config.max_pending, config.max_connections_per_user
            )
        )
        self._tls = _tls_context(config)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._sockets = _Sockets()  # every open connection, the clients' and the upstream ones
        self._closing = False

    async def start(self) -> int:
        """Starts listening; returns the port (useful with port 0). Refuses (28000) an unsafe
        exposure: trust off loopback, passwords off loopback without TLS (limits.py)."""
        tls = self._tls is not None
        upstream = getattr(self.session_class, "authenticates_upstream", False)
        method = limits.UPSTREAM_AUTH if upstream else self.config.auth_method
        limits.check_exposure(self.config.host, method, tls)
        if self.config.require_tls and not tls:
            raise errors.from_sqlstate("28000", "require_tls needs a TLS certificate and key")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ClientProtocol(self._connection, loop, self._sockets),
            self.config.host,
            self.config.port,
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        async with self._server:
            await self._server.serve_forever()

    async def aclose(self) -> None:
        """Stops listening, cancels running statements and closes every client connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        # A connection accepted just before close() starts its task later: go round until no
        # connection is left, so that no socket outlives the loop.
        while True:
            for session in list(self.sessions.values()):
                session.cancel()
            self._sockets.close()  # every read loop ends
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)
            if not self._tasks:
                break
        if self._server is not None:
            await self._server.wait_closed()
        await self._sockets.close_all()  # whatever a path left closing: no socket outlives us
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._login_pool.shutdown(wait=False, cancel_futures=True)

    # -- one connection ---------------------------------------------------------------------

    async def _connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: _ClientProtocol
    ) -> None:
        if self._closing:  # accepted while the server closes
            writer.close()
            return
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        process_id = next(self._ids)
        loop = asyncio.get_running_loop()
        slot = self._slots.open()
        if slot is None:  # over twice the pending budget: no politeness left
            await self._refuse(writer)
            if task is not None:
                self._tasks.discard(task)
            return
        outbox = _Outbox(writer, loop, self.config.write_timeout)
        session = self.session_class(
            self._session_config(writer, slot),
            self.open_backend,
            process_id,
            secrets.randbits(31),
            send=outbox.send,
        )
        links = _Links(loop, writer, session, client, self._sockets, self.config.write_timeout)
        session.attach = links.attach
        try:
            self.sessions[process_id] = session
            await self._serve(session, reader, outbox, links, slot)
        except TimeoutError:  # idle too long: said as PostgreSQL says it (idle_session_timeout)
            idle = errors.from_sqlstate(
                "57P05", "terminating connection due to idle-session timeout"
            )
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                writer.write(protocol.error_response(idle, severity="FATAL").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass  # the client went away: nothing to answer
        finally:
            self.sessions.pop(process_id, None)
            slot.close()
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, session.close)
            except RuntimeError:  # the pool is shut down: the server is closing
                session.close()
            if links.upstream is not None:  # proxy mode: the server's socket goes too
                links.upstream.close()
                await links.upstream.wait_closed()
            writer.close()
            await self._closed(writer, client)
            if task is not None:  # (last: aclose waits for the task until its socket is closed)
                self._tasks.discard(task)

    @staticmethod
    async def _closed(writer: asyncio.StreamWriter, client: _ClientProtocol) -> None:
        """Until the socket is closed. A TLS handshake that failed (a client that sent
        SSLRequest and then nothing, until the handshake timeout) left the socket's protocol
        TLS's, not ours: ours never hears of the close, so it is told here."""
        try:
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await asyncio.wait_for(writer.wait_closed(), _CLOSE_WAIT)
        except TimeoutError:
            writer.transport.abort()
            client.connection_lost(None)

    def _session_config(self, writer: asyncio.StreamWriter, slot: limits.Slot) -> SessionConfig:
        peer = writer.get_extra_info("peername")
        loopback = bool(peer) and str(peer[0]) in ("127.0.0.1", "::1")
        return SessionConfig(
            auth_method=self.config.auth_method,
            users=self.config.users,
            tls=self._tls is not None,
            loopback=loopback,
            max_message_size=self.config.max_message_size,
            statement_timeout=self.config.statement_timeout,
            require_tls=self.config.require_tls,
            peer=str(peer[0]) if peer else "",
            admit=slot.admit,
            dialect=self.config.dialect,
        )

    @staticmethod
    async def _refuse(writer: asyncio.StreamWriter) -> None:
        """53300 at once and close (a TLS-capable client reads it as a failed negotiation)."""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            writer.write(protocol.error_response(limits.too_many(), severity="FATAL").encode())
        writer.close()  # (after the bytes; the socket registry hears of the close)

    def _read_timeout(self, slot: limits.Slot, started: float) -> tuple[float | None, bool]:
        """How long the next read may wait, and whether it is the login's time that runs out."""
        if slot.admitted:
            return self.config.idle_timeout, False
        left = started + self.config.authentication_timeout - asyncio.get_running_loop().time()
        return max(left, 0.0), True

    async def _serve(
        self,
        session: Session,
        reader: asyncio.StreamReader,
        outbox: _Outbox,
        links: _Links,
        slot: limits.Slot,
    ) -> None:
        loop = asyncio.get_running_loop()
        client = links.client_protocol
        started = loop.time()
        while not session.closed:
            timeout, logging_in = self._read_timeout(slot, started)
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), timeout)
            except TimeoutError:
                if logging_in:  # authentication_timeout: closed without a word, as PostgreSQL
                    log.warning("authentication timeout for a client from %s", session.config.peer)
                    return
                if session.busy() or client.idle_for() < (self.config.idle_timeout or 0):
                    continue  # waiting for an answer, or busy on the fast path (not this read)
                raise
            client.taken += len(data)
            if not data:
                return
            upstream = links.upstream
            if upstream is not None:
                upstream.to_worker()
            try:
                pool = self._pool if slot.admitted else self._login_pool
                work = loop.run_in_executor(pool, self._pump, session, data, outbox)
                try:
                    await asyncio.wait_for(asyncio.shield(work), self.config.statement_timeout)
                except TimeoutError:
                    session.cancel()
                    await work
            finally:
                if links.upstream is not None:  # the login may have made it
                    links.upstream.to_loop()

    def _pump(self, session: Session, data: bytes, outbox: _Outbox) -> None:
        """On the worker thread: runs what ``data`` leads to, handing each output to the loop."""
        for output in session.receive(data):
            if isinstance(output, bytes):
                outbox.add(output)
            else:
                outbox.flush()
                self._act(output, outbox.writer, outbox.loop)
        outbox.flush()

    def _act(
        self, action: Output, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop
    ) -> None:
        if isinstance(action, StartTLS):
            self._call(loop, self._start_tls(writer))
        elif isinstance(action, Cancel):
            target = self.sessions.get(action.process_id)
            if target is not None and target.secret_key == action.secret_key:
                target.cancel()
        elif isinstance(action, Close):
            pass  # the session is closed: the read loop ends and closes the socket

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, coroutine: Any) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    async def _start_tls(self, writer: asyncio.StreamWriter) -> None:
        assert self._tls is not None
        transport = cast(asyncio.Transport, writer.transport)  # a TCP connection reads and writes
        transport.pause_reading()  # the client's handshake must not reach the plain stream
        writer.write(b"S")
        await writer.drain()
        ours = transport.get_protocol()  # until start_tls puts TLS's in its place
        # resumes reading through TLS; a handshake that does not finish in time ends the login
        try:
            await writer.start_tls(
                self._tls, ssl_handshake_timeout=min(self.config.authentication_timeout, 60.0)
            )
        except BaseException as e:
            transport.abort()
            ours.connection_lost(None)  # TLS's protocol heard of the close, ours did not
            if writer.transport is None:
                # The client closed its socket during the handshake: CPython 3.11's start_tls
                # then sets the writer's transport to None and fails on it (AttributeError),
                # and the writer's __del__ fails again later (an unraisable error). Give the
                # writer back its closed transport, and end this login as a lost connection.
                object.__setattr__(writer, "_transport", transport)
                raise ConnectionResetError("the client left during the TLS handshake") from e
            raise

    @staticmethod
    async def _write(
        writer: asyncio.StreamWriter, data: bytes, timeout: float | None = None
    ) -> None:
        """Writes and waits until the client has read enough; a client that reads nothing for
        ``timeout`` seconds is cut off (its worker is then free: ConnectionError)."""
        writer.write(data)
        try:
            await asyncio.wait_for(writer.drain(), timeout)
        except TimeoutError:
            log.warning("a client read nothing for %s s: disconnected", timeout)
            writer.transport.abort()
            raise ConnectionAbortedError("the client does not read its answers") from None


class _Outbox:
    """A connection's bytes on their way from its worker thread to the event loop: outputs
    gather up to READ_SIZE and are written in order, the worker waiting for ``drain``. Locked:
    a notice may come from a thread the training started."""

    def __init__(
        self,
        writer: asyncio.StreamWriter,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None = None,
    ) -> None:
        self.writer, self.loop = writer, loop
        self.timeout = timeout  # seconds the client may leave a full buffer unread
        self._pending: list[bytes] = []
        self._size = 0
        self._lock = threading.RLock()

    def add(self, data: bytes) -> None:
        if self.writer.transport.is_closing():  # cut off (write_timeout) or gone: stop the work
            raise ConnectionResetError("the client's connection is closed")
        with self._lock:
            self._pending.append(data)
            self._size += len(data)
            if self._size >= READ_SIZE:
                self.flush()

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                data, self._pending, self._size = b"".join(self._pending), [], 0
                if self._size_queued() + len(data) < READ_SIZE:
                    # Small answers (the usual OLTP round trip) are handed to the loop without
                    # waiting for it: a wait costs two thread switches per message. Order is
                    # kept (call_soon_threadsafe runs callbacks in order); back-pressure still
                    # applies once the transport buffers READ_SIZE bytes.
                    self.loop.call_soon_threadsafe(self._write_now, data)
                else:
                    Server._call(self.loop, Server._write(self.writer, data, self.timeout))

    def _size_queued(self) -> int:
        transport = self.writer.transport
        return transport.get_write_buffer_size() if not transport.is_closing() else 0

    def _write_now(self, data: bytes) -> None:
        if not self.writer.transport.is_closing():
            self.writer.write(data)

    def send(self, data: bytes) -> None:
        """Writes now, behind what gathered: a notice while a statement runs. A notice is
        best effort: a client that went away is found by the statement's own answer."""
        with self._lock, contextlib.suppress(ConnectionError, ssl.SSLError):
            self.add(data)
            self.flush()


class _Sockets:
    """The server's open connections (protocol -> transport), so that closing the server can
    wait until every one is closed, and abort what a path of ours left half closed."""

    def __init__(self) -> None:
        self._open: dict[asyncio.BaseProtocol, asyncio.BaseTransport] = {}

    def opened(self, protocol: asyncio.BaseProtocol, transport: asyncio.BaseTransport) -> None:
        self._open[protocol] = transport

    def closed(self, protocol: asyncio.BaseProtocol) -> None:
        self._open.pop(protocol, None)

    def close(self) -> None:
        for transport in list(self._open.values()):
            transport.close()

    async def close_all(self, timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self.close()
        while self._open and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for transport in list(self._open.values()):
            cast(asyncio.Transport, transport).abort()
        await asyncio.sleep(0)  # the aborted transports' own callbacks


class _ClientProtocol(asyncio.StreamReaderProtocol):
    """A client connection's protocol: its bytes go to the session's StreamReader (and so to a
    worker thread), except a proxy's plain SQL, which ``fast`` sends to the server from here,
    with no coroutine or thread between (see _Upstream). Bytes are taken here only while the
    StreamReader has none unread (``fed == taken``), so that the order of messages holds."""

    def __init__(
        self,
        connected: Callable[[asyncio.StreamReader, asyncio.StreamWriter, _ClientProtocol], Any],
        loop: asyncio.AbstractEventLoop,
        sockets: _Sockets,
    ) -> None:
        super().__init__(
            asyncio.StreamReader(loop=loop),
            lambda reader, writer: connected(reader, writer, self),
            loop=loop,
        )
        self.loop, self.sockets = loop, sockets
        self.fast: Callable[[bytes], bool] | None = None
        self.fed = self.taken = 0  # bytes handed to the StreamReader, and read from it
        self._active = loop.time()  # when bytes last came

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.sockets.opened(self, transport)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.sockets.closed(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._active = self.loop.time()
        if self.fast is not None and self.fed == self.taken and self.fast(data):
            return
        self.fed += len(data)
        super().data_received(data)

    def idle_for(self) -> float:
        return self.loop.time() - self._active


class _Links:
    """How a session's connection to an upstream server (proxy mode) is handed to the event
    loop: ``attach`` runs on the worker thread that logs in (upstream.Attach)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: asyncio.StreamWriter,
        session: Session,
        client_protocol: _ClientProtocol,
        sockets: _Sockets,
        write_timeout: float | None = None,
    ) -> None:
        self.loop, self.client, self.session = loop, client, session
        self.client_protocol, self.sockets = client_protocol, sockets
        self.write_timeout = write_timeout
        self.upstream: _Upstream | None = None

    def _fast(self, data: bytes) -> bool:
        """The client's bytes, sent to the server from the loop if they are plain SQL."""
        upstream = self.upstream
        if upstream is None or upstream.worker or upstream.lost:
            return False
        if not self.session.forward_fast(data):
            return False
        upstream.write(data, self.client.transport)
        return True

    def attach(
        self, sock: socket.socket, context: ssl.SSLContext | None, hostname: str, frames: Frames
    ) -> _Upstream:
        upstream = _Upstream(
            self.loop, self.client, self.session.answer, frames, self.sockets, self.write_timeout
        )

        async def connect() -> None:
            try:
                await self.loop.create_connection(
                    lambda: upstream,
                    sock=sock,
                    ssl=context,
                    server_hostname=hostname if context is not None else None,
                )
            except BaseException:
                await asyncio.sleep(0.01)  # asyncio closes the failed transport: let it finish
                raise

        asyncio.run_coroutine_threadsafe(connect(), self.loop).result()
        self.upstream = upstream
        self.client_protocol.fast = self._fast
        return upstream


class _Upstream(asyncio.Protocol):
    """A proxy session's connection to PostgreSQL, owned by the event loop (upstream.Link).

    Two readers take turns, switched on the loop only. While a worker thread runs the session
    (the login, an ML statement) the server's bytes queue up for it (``recv``). Otherwise the
    loop cuts them into messages and hands them to the client itself, through the session's
    books (``Session.answer``): with ``Session.forward_fast`` the client's plain SQL and its
    answers never leave the loop, which is what makes a proxied OLTP round trip cheap
    (benchmarks/RESULTS.md). Back-pressure both ways: the client's writes wait while the server
    does not read; the server is not read while the client's buffer or the queue is full. A
    client that leaves a full buffer unread for ``write_timeout`` seconds is cut off, as on the
    worker path (Server._write): its slot and the server's backend are freed."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client: asyncio.StreamWriter,
        answer: Callable[[bytes, list[tuple[int, int, int]]], bytes],
        frames: Frames,
        sockets: _Sockets,
        write_timeout: float | None = None,
    ) -> None:
        self.loop, self.client, self.answer, self.frames = loop, client, answer, frames
        self.sockets, self.write_timeout = sockets, write_timeout
        self.transport: asyncio.Transport | None = None
        self.worker = True  # who reads the server's bytes: a worker thread, or the loop
        self.lost = False
        self._queue: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._queued = 0  # bytes in the queue (kept on the loop)
        self._writing_paused = False
        self._waiting: list[asyncio.BaseTransport] = []  # clients paused while the server is
        self._draining = False
        self._gone: asyncio.Future[None] | None = None  # done once the socket is closed

    async def wait_closed(self, timeout: float = 5.0) -> None:
        """Until the socket is closed (a TLS connection says goodbye first); then abort."""
        if self._gone is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._gone), timeout)
        except TimeoutError:
            if self.transport is not None:
                self.transport.abort()
            await asyncio.sleep(0)

    # -- asyncio.Protocol, on the loop -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._gone = self.loop.create_future()
        self.sockets.opened(self, transport)

    def data_received(self, data: bytes) -> None:
        if self.worker:
            self._queue.put(data)
            self._queued += len(data)
            if self._queued > _HIGH_WATER and self.transport is not None:
                self.transport.pause_reading()
        else:
            self._answer(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.sockets.closed(self)
        self._queue.put(b"")
        self.resume_writing()
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        if not self.worker:
            self.client.close()  # the server's last words (a FATAL error) went before

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        waiting, self._waiting = self._waiting, []
        for client in waiting:
            if not client.is_closing():
                cast(asyncio.ReadTransport, client).resume_reading()

    def write(self, data: bytes, client: asyncio.BaseTransport) -> None:
        """The client's messages, from the loop; the client is not read while the server does
        not read."""
        if self.transport is not None and not self.lost:
            self.transport.write(data)
            if self._writing_paused and client not in self._waiting:
                cast(asyncio.ReadTransport, client).pause_reading()
                self._waiting.append(client)

    def _answer(self, data: bytes) -> None:
        chunk, spans = self.frames.cut(data)
        if spans:
            out = self.answer(chunk, spans)
            if out and not self.client.is_closing():
                self.client.write(out)
                if self.client.transport.get_write_buffer_size() > _HIGH_WATER:
                    self._drain_client()

    def _drain_client(self) -> None:
        if self._draining or self.transport is None:
            return
        self._draining = True
        self.transport.pause_reading()

        async def drain() -> None:
            try:
                with contextlib.suppress(ConnectionError, ssl.SSLError):
                    await asyncio.wait_for(self.client.drain(), self.write_timeout)
            except TimeoutError:
                log.warning("a client read nothing for %s s: disconnected", self.write_timeout)
                self.client.transport.abort()  # (the session ends and closes the server's socket)
                return
            self._draining = False
            if self.transport is not None and not self.lost:
                self.transport.resume_reading()

        task = self.loop.create_task(drain())
        _background.add(task)
        task.add_done_callback(_background.discard)

    # -- whose turn, on the loop -------------------------------------------------------------

    def to_worker(self) -> None:
        self.worker = True

    def to_loop(self) -> None:
        """The worker is done: what it left in the queue goes to the client, then the loop
        reads on."""
        self.worker = False
        while not self._queue.empty():
            data = self._queue.get_nowait()
            if not data:
                self.client.close()
                return
            self._queued -= len(data)
            self._answer(data)
        self._answer(b"")
        if self.transport is not None and not self.lost and not self._draining:
            self.transport.resume_reading()

    # -- upstream.Link, on the worker thread ----------------------------------------------------

    def send(self, data: bytes) -> None:
        if self.lost:
            raise ConnectionResetError("the server closed the connection")
        self.loop.call_soon_threadsafe(self._send, data)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def recv(self) -> bytes:
        if self.lost and self._queue.empty():
            return b""
        data = self._queue.get()
        if data:
            self.loop.call_soon_threadsafe(self._consumed, len(data))
        return data

    def _consumed(self, size: int) -> None:
        self._queued -= size
        quiet = self._queued < _HIGH_WATER // 2 and not self._draining
        if quiet and self.transport is not None and not self.lost:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: so is the socket
                self.loop.call_soon_threadsafe(self.transport.close)


_CLOSE_WAIT = 5.0  # seconds a closed connection may take to say goodbye (TLS) before abort
_LOGIN_WORKERS = 8  # threads for logins at most (each a short exchange)
_HIGH_WATER = 4 * READ_SIZE  # bytes buffered for a slow reader before the server is not read
_background: set[asyncio.Task[None]] = set()  # drain tasks, kept until done


def _tls_context(config: ServerConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


def serve(
    config: ServerConfig,
    open_backend: Callable[[str, str], Backend],
    session_class: type[Session] = Session,
) -> None:
    """Runs the gateway until interrupted."""
    server = Server(config, open_backend, session_class)

    async def main() -> None:
        try:
            await server.serve_forever()
        finally:
            await server.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
