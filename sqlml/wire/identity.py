"""Who a proxy client is on PostgreSQL: authentication pass-through and startup filtering.

Design (issue 11). In proxy mode each client's session on PostgreSQL runs as the client's own
role, with exactly that role's privileges. The gateway does not log in for the client: it opens
the upstream connection with the client's own ``user`` and ``database`` (and its other startup
parameters, filtered below) and relays the authentication exchange between the client and
PostgreSQL. So PostgreSQL's pg_hba.conf decides who may log in and how; SCRAM-SHA-256 and md5
pass through untouched, and the gateway never learns a password nor keeps a secret. The
gateway's own login (the ``--database`` URL's user, PGPASSWORD, ~/.pgpass) is used only for the
start-up check of ``sqlml serve``, never for a client's session. ML statements run on the
client's own server connection (upstream.UpstreamEngine), so they run as the client's role too.

Why pass-through and not pgbouncer's ``auth_query`` design (the gateway logs in with a SCRAM
secret it fetched from pg_authid): pass-through needs no privileged role for the gateway, no
secret at rest in the gateway, and keeps every pg_hba.conf rule (per role, per database,
password method, expiry) in PostgreSQL's hands. What it costs:

- Channel binding cannot pass: TLS ends at the gateway, so the client's TLS connection is not
  the one PostgreSQL sees. SCRAM-SHA-256-PLUS is removed from the mechanisms offered to the
  client; libpq's default ``channel_binding=prefer`` then uses plain SCRAM-SHA-256. Over TLS a
  libpq client then says "I could bind, the server cannot" (gs2 flag ``y``), which PostgreSQL
  refuses as a downgrade when its own connection from the gateway is TLS too: then the gateway
  answers FATAL 08P01 with a hint (``channel_binding=disable`` in the client, or a plain
  connection from the gateway to PostgreSQL: a Unix socket, or ``sslmode=disable`` on a trusted
  network).
- PostgreSQL sees every client at the gateway's address: pg_hba.conf lines by client address
  match the gateway, not the client. Hence the rule below for ``trust``.
- A cleartext password request (pg_hba ``password``) is relayed only to a client on loopback or
  over TLS to the gateway (as the gateway's own login does); others get FATAL 28000.

A client that is not on loopback must have proved a password to PostgreSQL: when the server
answers AuthenticationOk without asking (pg_hba trusts the gateway's address, or ``peer``), the
gateway refuses that client with FATAL 28000, unless the operator allows it explicitly
(``sqlml serve --allow-upstream-trust``, ProxyBackend's ``allow_trust``).

Startup parameters (``filter_startup``): ``replication`` is refused (0A000: no replication
through the gateway); ``options`` passes only when it is made of ``-c name=value`` /
``--name=value`` settings (other backend switches such as ``-D`` or ``-P``: 0A000); ``_pq_.*``
protocol extensions are not passed (the gateway answers NegotiateProtocolVersion itself).
Ordinary parameters pass as they are: the server checks the role's right to set each one.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlml import errors
from sqlml.wire import auth

_FALSE = frozenset({"0", "false", "off", "no", "f", "n"})  # replication=false is no replication
PLUS = auth.SCRAM_MECHANISM + "-PLUS"


def filter_startup(parameters: Mapping[str, str]) -> dict[str, str]:
    """The client's startup parameters as they go to PostgreSQL (see the module docstring)."""
    passed: dict[str, str] = {}
    for name, value in parameters.items():
        if name.startswith("_pq_."):
            continue  # protocol extensions: the gateway's business, not the server's
        if name == "replication":
            if value.strip().lower() in _FALSE:
                continue
            raise errors.FeatureNotSupported(
                "replication connections are not supported through the sqlml gateway"
            )
        if name == "options":
            check_options(value)
        passed[name] = value
    return passed


def check_options(options: str) -> None:
    """Refuses an ``options`` value that is anything but run-time settings (``-c name=value``,
    ``-cname=value``, ``--name=value``), split as PostgreSQL splits it (pg_split_opts:
    whitespace, a backslash keeps the next character)."""
    words = split_options(options)
    index = 0
    while index < len(words):
        word = words[index]
        if word == "-c" and index + 1 < len(words):
            setting = words[index + 1]
            index += 2
        elif word.startswith("--") or (word.startswith("-c") and word != "-c"):
            setting = word[2:]
            index += 1
        else:
            raise errors.FeatureNotSupported(
                f'startup option "{word}" is not supported through the sqlml gateway',
                hint="only run-time settings pass: -c name=value or --name=value",
            )
        name, equals, _ = setting.partition("=")
        if not equals or not name:
            raise errors.FeatureNotSupported(
                f'startup option "{setting}" is not a setting (name=value)'
            )


def split_options(options: str) -> list[str]:
    """PostgreSQL's pg_split_opts: words separated by whitespace, ``\\`` escapes a character."""
    words: list[str] = []
    current: list[str] = []
    escaped = in_word = False
    for ch in options:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_word = True
        elif ch.isspace():
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
    if in_word:
        words.append("".join(current))
    return words


def offered_mechanisms(mechanisms: tuple[str, ...]) -> tuple[str, ...]:
    """The server's SASL mechanisms as offered to the client: without channel binding, which
    cannot pass a gateway that ends TLS. Empty: nothing the client can use (28000)."""
    return tuple(m for m in mechanisms if m != PLUS)


def check_trust(loopback: bool, asked_password: bool, allow_trust: bool) -> None:
    """Refuses (28000) a client off loopback that PostgreSQL let in without a password."""
    if not (loopback or asked_password or allow_trust):
        raise errors.from_sqlstate(
            "28000",
            "PostgreSQL let this client in without a password; the gateway accepts that only"
            " from loopback",
            hint="require scram-sha-256 for the gateway's address in pg_hba.conf, or start"
            " sqlml serve with --allow-upstream-trust",
        )


def check_channel_binding(client_first: bytes, upstream_tls: bool) -> None:
    """A SCRAM client-first-message with the gs2 flag ``y`` ("I could bind, the server cannot")
    that PostgreSQL would refuse as a downgrade, since its own connection is TLS (08P01)."""
    if upstream_tls and client_first[:1] == b"y":
        raise errors.ProtocolViolation(
            "SCRAM channel binding cannot pass the sqlml gateway while PostgreSQL is reached"
            " over TLS",
            hint="connect with channel_binding=disable, or let the gateway reach PostgreSQL"
            " without TLS (a Unix socket)",
        )
