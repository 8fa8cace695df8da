"""``sqlml serve``: the asyncio server around wire sessions. The only module that owns sockets.

Each connection gets a Session (session.py, no I/O) and a worker thread of its own pool slot:
the bytes read are handed to ``Session.receive`` on that thread, which runs statements on the
session's backend and hands each output back to the event loop to write (with back-pressure:
the worker waits for ``drain``). A statement's notices (CREATE MODEL's progress) go out while it
runs, through the ``send`` the session is given. A long query or training holds its worker,
never the loop, so other clients go on. CancelRequest finds the target session by process id
and secret key. Limits: a connection limit (53300), the largest message (08P01), an idle
timeout and a statement timeout (57014), all in ServerConfig.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlml import errors
from sqlml.wire import auth, protocol
from sqlml.wire.session import Backend, Cancel, Close, Output, Session, SessionConfig, StartTLS

READ_SIZE = 1 << 16


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
        self._pool = ThreadPoolExecutor(config.max_connections, thread_name_prefix="sqlml-wire")
        self._tls = _tls_context(config)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False

    async def start(self) -> int:
        """Starts listening; returns the port (useful with port 0)."""
        self._server = await asyncio.start_server(
            self._connection, self.config.host, self.config.port
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
            for writer in list(self._writers):
                writer.close()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.sleep(0)
            if not self._tasks and not self._writers:
                break
        if self._server is not None:
            await self._server.wait_closed()
        await asyncio.sleep(0)  # the transports' own close callbacks
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- one connection ---------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:  # accepted while the server closes
            writer.close()
            return
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        process_id = next(self._ids)
        outbox = _Outbox(writer, asyncio.get_running_loop())
        session = self.session_class(
            self._session_config(writer),
            self.open_backend,
            process_id,
            secrets.randbits(31),
            send=outbox.send,
        )
        try:
            if len(self.sessions) >= self.config.max_connections:
                too_many = errors.from_sqlstate("53300", "sorry, too many clients already")
                writer.write(protocol.error_response(too_many, severity="FATAL").encode())
                await writer.drain()
                return
            self.sessions[process_id] = session
            await self._serve(session, reader, outbox)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, TimeoutError):
            pass  # the client went away, or stayed idle too long: nothing to answer
        finally:
            self.sessions.pop(process_id, None)
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            try:
                await asyncio.get_running_loop().run_in_executor(self._pool, session.close)
            except RuntimeError:  # the pool is shut down: the server is closing
                session.close()
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()

    def _session_config(self, writer: asyncio.StreamWriter) -> SessionConfig:
        peer = writer.get_extra_info("peername")
        loopback = bool(peer) and str(peer[0]) in ("127.0.0.1", "::1")
        return SessionConfig(
            auth_method=self.config.auth_method,
            users=self.config.users,
            tls=self._tls is not None,
            loopback=loopback,
            max_message_size=self.config.max_message_size,
        )

    async def _serve(self, session: Session, reader: asyncio.StreamReader, outbox: _Outbox) -> None:
        loop = asyncio.get_running_loop()
        while not session.closed:
            data = await asyncio.wait_for(reader.read(READ_SIZE), self.config.idle_timeout)
            if not data:
                return
            work = loop.run_in_executor(self._pool, self._pump, session, data, outbox)
            try:
                await asyncio.wait_for(asyncio.shield(work), self.config.statement_timeout)
            except TimeoutError:
                session.cancel()
                await work

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
        transport = writer.transport
        assert isinstance(transport, asyncio.Transport)  # a TCP connection reads and writes
        transport.pause_reading()  # the client's handshake must not reach the plain stream
        writer.write(b"S")
        await writer.drain()
        await writer.start_tls(self._tls)  # resumes reading through TLS

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()


class _Outbox:
    """A connection's bytes on their way from its worker thread to the event loop: outputs
    gather up to READ_SIZE and are written in order, the worker waiting for ``drain``. Locked:
    a notice may come from a thread the training started."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer, self.loop = writer, loop
        self._pending: list[bytes] = []
        self._size = 0
        self._lock = threading.RLock()

    def add(self, data: bytes) -> None:
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
                    Server._call(self.loop, Server._write(self.writer, data))

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
