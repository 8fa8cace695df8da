"""The gateway's connection budget and its start-up checks (docs/gateway.md, "Security").

Theory of operation. A connection is *pending* from accept until it has logged in, then
*admitted*. Pending connections have a budget of their own (``max_pending``), so that sockets
that never log in cannot take the slots of real clients: ``max_connections`` counts admitted
connections only, and a pending one is closed after ``authentication_timeout`` (server.py). A
session asks its :class:`Slot` twice (``SessionConfig.admit``): after the StartupMessage
(refused with 53300 when every slot is taken, as PostgreSQL does it, after the SSLRequest was
answered, so a TLS-capable client reads the error through TLS), and once it has proved who it
is, when the slot is taken (53300 again when the slots or the user's own limit are full).

``check_exposure`` is what ``sqlml serve`` checks before it listens: trust only on loopback,
password authentication off loopback only with TLS.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections import Counter
from dataclasses import dataclass

from sqlml import errors


@dataclass(frozen=True)
class Budget:
    max_connections: int  # admitted (logged-in) connections
    max_pending: int  # connections still logging in; further ones are refused (53300)
    max_per_user: int | None  # admitted connections of one user; None: no limit


class Slots:
    """The server's count of pending and admitted connections, locked: sessions ask from
    their worker threads, the event loop opens and closes."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._lock = threading.Lock()
        self._pending = 0
        self._admitted = 0
        self._users: Counter[str] = Counter()

    def open(self) -> Slot | None:
        """A new connection's slot; None when even refusing it politely is over the budget
        (twice ``max_pending``): the caller closes it at once."""
        with self._lock:
            if self._pending >= 2 * self.budget.max_pending:
                return None
            self._pending += 1
            return Slot(self, refused=self._pending > self.budget.max_pending)

    def _admit(self, user: str, logged_in: bool) -> None:
        with self._lock:
            if self._admitted >= self.budget.max_connections:
                raise too_many()
            if not logged_in:
                return
            limit = self.budget.max_per_user
            if limit is not None and self._users[user] >= limit:
                raise errors.from_sqlstate("53300", f'too many connections for role "{user}"')
            self._pending -= 1
            self._admitted += 1
            self._users[user] += 1

    def _close(self, user: str | None) -> None:
        with self._lock:
            if user is None:
                self._pending -= 1
                return
            self._admitted -= 1
            self._users[user] -= 1
            if not self._users[user]:
                del self._users[user]


class Slot:
    """One connection's place in the budget: pending until ``admit(user, True)``."""

    def __init__(self, slots: Slots, refused: bool) -> None:
        self._slots = slots
        self.refused = refused  # over the pending budget: refused after the startup
        self.user: str | None = None  # set once admitted
        self._closed = False

    @property
    def admitted(self) -> bool:
        return self.user is not None

    def admit(self, user: str, logged_in: bool) -> None:
        """53300 unless the connection may go on: after the StartupMessage (``logged_in``
        False) and once the client has proved who it is (True: the slot is taken)."""
        if self.refused:
            raise too_many()
        if self.user is None:
            self._slots._admit(user, logged_in)
            if logged_in:
                self.user = user

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._slots._close(self.user)


def too_many() -> errors.Error:
    return errors.from_sqlstate("53300", "sorry, too many clients already")


# -- start-up checks --------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is a loopback one ("" and 0.0.0.0 are not)."""
    if not host:
        return False
    with contextlib.suppress(ValueError):
        return ipaddress.ip_address(host).is_loopback
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addresses = {str(info[4][0]) for info in found}
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


# the auth method of proxy mode, for check_exposure: PostgreSQL asks each client for its password
UPSTREAM_AUTH = "postgresql"


def check_exposure(host: str, auth_method: str, tls: bool) -> None:
    """Refuses (28000) to listen off loopback with trust, or with passwords and no TLS (in proxy
    mode, ``UPSTREAM_AUTH``, PostgreSQL's own passwords pass through: TLS is needed too)."""
    if is_loopback(host):
        return
    if auth_method == "trust":
        raise errors.from_sqlstate(
            "28000",
            f"refusing to serve on {host or 'every address'} with trust authentication",
            hint="use --auth scram with a users file and TLS (--tls-cert, --tls-key), or listen"
            " on 127.0.0.1",
        )
    if not tls:
        raise errors.from_sqlstate(
            "28000",
            f"refusing to serve passwords on {host or 'every address'} without TLS",
            hint="give --tls-cert and --tls-key",
        )
