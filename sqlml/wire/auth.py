"""Password authentication for the wire gateway: the stored secrets and the three exchanges.

Theory of operation. Nothing here does I/O (except ``Users.from_file`` reading its file): the
exchanges take the client's bytes or strings and return the server's, and the session turns them
into protocol messages. For ``scram-sha-256`` the session sends AuthenticationSASL with
``ScramExchange.mechanisms()``, passes the SASLInitialResponse to ``start`` (its result goes out
as AuthenticationSASLContinue) and the SASLResponse to ``finish`` (AuthenticationSASLFinal, then
AuthenticationOk). For ``md5`` it sends AuthenticationMD5Password with ``Md5Exchange.salt`` and
passes the PasswordMessage to ``check``; for ``password`` it sends
AuthenticationCleartextPassword and calls ``check_cleartext``. A failed check raises
``errors.InvalidPassword`` (28P01); a message no conforming client sends raises
``errors.ProtocolViolation`` (08P01); both as PostgreSQL 15 does.

Secrets are stored as PostgreSQL stores them in ``pg_authid.rolpassword`` (a ``SCRAM-SHA-256$``
verifier or ``md5`` + md5(password + user)), so a secret can be copied from a PostgreSQL server
and back. A plaintext password is accepted only where the users file says ``plain:`` explicitly.

Configuration (``Users``). Either ``SQLML_GATEWAY_PASSWORD`` (one user, ``SQLML_GATEWAY_USER``,
default ``sqlml``; the password becomes a SCRAM secret at load) or ``SQLML_GATEWAY_USERS_FILE``
(lines ``user:secret`` or ``user:attributes:secret``, ``#`` comments); setting both, or an
empty value, is an error. Attributes are ``name=value`` pairs separated by commas, each name once:
``role=`` is ``read-write`` (the default: every statement) or ``read-only`` (queries, ML.PREDICT
and the other ML functions, SHOW MODELS; backends.py); ``files=allow`` gives the user the
server's files over DuckDB when the server does not give them to everyone (``files=deny``, the
default, does not; wire/file_policy.py). The users
file is refused when group or others have any permission on it (mode & 0o077, as ssh and libpq's
.pgpass do): it holds md5 secrets, which are password-equivalent for the md5 method. Errors name
the file and line, never the secret.

Security notes.
- An unknown user goes through the same exchange as a known one, with a salt derived from the user
  name and a key drawn at random when this module is imported, and fails only at the end with the
  same error as a wrong password. The fake salt is stable for the life of the process; a restart
  changes it, which an observer of many restarts could notice.
- Every comparison of client data with a secret or with the transcript is constant-time
  (``hmac.compare_digest``). A ``plain:`` secret is compared as a salted PBKDF2 of it (computed
  when the file is read), so that checking a known user's password costs the one PBKDF2 that an
  unknown user's costs, and timing does not tell them apart.
- Channel binding (SCRAM-SHA-256-PLUS) is not offered: a client that demands it (``p=``) is
  refused, one that could use it (``y,,``) is accepted. Offering -PLUS over TLS later means
  refusing ``y,,`` there, as PostgreSQL does, to detect a downgrade.
- A SCRAM secret cannot answer an md5 challenge: with method ``md5`` such a user fails (PostgreSQL
  would switch to SCRAM instead; the session may do the same by checking ``Credential.can_md5``).
  An md5 secret cannot do SCRAM: the exchange runs and fails at the end, as in PostgreSQL.
- Sending a cleartext password is safe only over TLS or loopback. The server enforces that, not
  this module.
- Secrets never appear in an error message or a ``repr``.

SASLprep (RFC 4013) is applied to passwords as PostgreSQL's ``pg_saslprep`` does: ASCII is used as
is; otherwise non-ASCII spaces are mapped to a space, "commonly mapped to nothing" characters are
removed, the result is NFKC-normalized, and when it holds a prohibited or unassigned (Unicode 3.2)
character or breaks the bidirectional rule, the raw password is used instead. The tables are
Python's ``stringprep`` (RFC 3454); NFKC uses Python's Unicode version, as PostgreSQL uses its own.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import functools
import hashlib
import hmac
import os
import re
import secrets
import stringprep
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from sqlml import errors

__all__ = [
    "DEFAULT_USER",
    "METHODS",
    "READ_ONLY",
    "READ_WRITE",
    "ROLES",
    "Credential",
    "Md5Exchange",
    "ScramExchange",
    "Users",
    "check_cleartext",
    "md5_secret",
    "saslprep",
    "scram_secret",
]

METHODS = ("trust", "password", "md5", "scram-sha-256")
READ_WRITE, READ_ONLY = "read-write", "read-only"
ROLES = (READ_WRITE, READ_ONLY)  # a user's role over DuckDB (users file ``role=``)
DEFAULT_USER = "sqlml"  # SQLML_GATEWAY_USER when unset
SCRAM_ITERATIONS = 4096  # PostgreSQL's default scram_iterations
SCRAM_MECHANISM = "SCRAM-SHA-256"
_SCRAM_PREFIX = "SCRAM-SHA-256$"
_SALT_LENGTH = 16  # PostgreSQL's SCRAM_DEFAULT_SALT_LEN
_NONCE_LENGTH = 18  # PostgreSQL's SCRAM_RAW_NONCE_LEN, before base64
_KEY_LENGTH = 32  # SHA-256
_MD5_SECRET = re.compile(r"md5[0-9a-f]{32}")
_MOCK_KEY = secrets.token_bytes(32)  # fake salts and keys for unknown users, per process
_MALFORMED = "malformed SCRAM message"


# -- primitives ---------------------------------------------------------------------------------


def _utf8(text: str) -> bytes:
    """Text as the bytes the client sent (a session may decode with surrogateescape)."""
    return text.encode("utf-8", "surrogateescape")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _md5hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Strict base64 (no stray characters), or None."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _same(a: str | bytes, b: str | bytes) -> bool:
    """Constant-time equality of two strings or two byte strings."""
    left = a.encode("utf-8", "surrogatepass") if isinstance(a, str) else a
    right = b.encode("utf-8", "surrogatepass") if isinstance(b, str) else b
    return hmac.compare_digest(left, right)


# -- SASLprep -----------------------------------------------------------------------------------

_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_a1,
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def _bidi_ok(text: str) -> bool:
    """RFC 3454 section 6: with any RandALCat character, no LCat and RandALCat at both ends."""
    ral = [stringprep.in_table_d1(c) for c in text]
    if not any(ral):
        return True
    return not any(stringprep.in_table_d2(c) for c in text) and ral[0] and ral[-1]


def saslprep(password: str) -> str:
    """RFC 4013 SASLprep as PostgreSQL applies it: the raw password where SASLprep fails."""
    if password.isascii():
        return password
    mapped = "".join(" " if stringprep.in_table_c12(c) else c for c in password)
    mapped = "".join(c for c in mapped if not stringprep.in_table_b1(c))
    if not mapped:
        return password
    normalized = unicodedata.normalize("NFKC", mapped)
    if any(test(c) for c in normalized for test in _PROHIBITED) or not _bidi_ok(normalized):
        return password
    return normalized


# -- secrets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ScramKeys:
    """A parsed SCRAM-SHA-256 verifier."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def _salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", _utf8(saslprep(password)), salt, iterations)


def _scram_keys(password: str, salt: bytes, iterations: int) -> _ScramKeys:
    salted = _salted_password(password, salt, iterations)
    stored_key = _sha256(_hmac(salted, b"Client Key"))
    return _ScramKeys(iterations, salt, stored_key, _hmac(salted, b"Server Key"))


def _parse_scram(secret: str) -> _ScramKeys | None:
    """``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``, or None if malformed."""
    match = re.fullmatch(r"SCRAM-SHA-256\$([0-9]{1,9}):([^$:]+)\$([^$:]+):([^$:]+)", secret)
    if match is None or int(match[1]) < 1:
        return None
    salt, stored_key, server_key = (_unb64(match[i]) for i in (2, 3, 4))
    if not salt or stored_key is None or server_key is None:
        return None
    if len(stored_key) != _KEY_LENGTH or len(server_key) != _KEY_LENGTH:
        return None
    return _ScramKeys(int(match[1]), salt, stored_key, server_key)


def scram_secret(
    password: str, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """A SCRAM-SHA-256 verifier in PostgreSQL's format (random 16-byte salt unless given)."""
    if iterations < 1 or salt == b"":
        raise ValueError("a SCRAM secret needs a salt and at least one iteration")
    keys = _scram_keys(
        password, secrets.token_bytes(_SALT_LENGTH) if salt is None else salt, iterations
    )
    return (
        f"{_SCRAM_PREFIX}{keys.iterations}:{_b64(keys.salt)}"
        f"${_b64(keys.stored_key)}:{_b64(keys.server_key)}"
    )


def md5_secret(user: str, password: str) -> str:
    """PostgreSQL's md5 secret: ``md5`` + md5hex(password + user)."""
    return "md5" + _md5hex(_utf8(password + user))


@dataclass(frozen=True)
class Credential:
    """One user's stored secret, as PostgreSQL stores it in pg_authid.rolpassword."""

    user: str  # the role name the client logs in as
    secret: str = field(repr=False)  # SCRAM-SHA-256$..., md5<32 hex>, or a plaintext password
    role: str = READ_WRITE  # one of ROLES: what the user may run over DuckDB
    files: bool = False  # files=allow: the user may read and write the server's files (DuckDB)

    def __post_init__(self) -> None:
        if self.secret.startswith(_SCRAM_PREFIX) and _parse_scram(self.secret) is None:
            raise errors.InvalidParameterValue(f'malformed SCRAM secret for user "{self.user}"')

    @property
    def kind(self) -> str:
        """``scram-sha-256``, ``md5`` or ``plain``, classified as PostgreSQL does."""
        if self.secret.startswith(_SCRAM_PREFIX):
            return "scram-sha-256"
        return "md5" if _MD5_SECRET.fullmatch(self.secret) else "plain"

    @property
    def can_md5(self) -> bool:
        """Whether this secret can answer an md5 challenge (md5 or plaintext)."""
        return self.kind in ("md5", "plain")

    @property
    def can_scram(self) -> bool:
        """Whether this secret can run a SCRAM exchange (SCRAM or plaintext)."""
        return self.kind in ("scram-sha-256", "plain")

    def check_password(self, password: str) -> bool:
        """Whether ``password`` is this user's password (constant-time comparison)."""
        try:
            return self._check(password)
        except UnicodeEncodeError:  # lone surrogates: no password we store
            return False

    def _check(self, password: str) -> bool:
        keys = _parse_scram(self.secret)
        if keys is not None:
            candidate = _scram_keys(password, keys.salt, keys.iterations)
            stored_ok = _same(candidate.stored_key, keys.stored_key)
            return _same(candidate.server_key, keys.server_key) & stored_ok
        if self.kind == "md5":
            return _same(md5_secret(self.user, password), self.secret)
        salted = _salted_password(password, _fake_salt(self.user), SCRAM_ITERATIONS)
        return _same(salted, _plain_salted(self.user, self.secret))


@functools.lru_cache(maxsize=4096)
def _plain_salted(user: str, secret: str) -> bytes:
    """A plaintext secret as its PBKDF2 (computed once, when the users file is read)."""
    return _salted_password(secret, _fake_salt(user), SCRAM_ITERATIONS)


def _verifier(credential: Credential) -> _ScramKeys | None:
    """The SCRAM verifier (derived with a stable salt from a plaintext secret), or None for md5."""
    if credential.kind == "md5":
        return None
    keys = _parse_scram(credential.secret)
    if keys is not None:
        return keys
    salted = _plain_salted(credential.user, credential.secret)  # (no PBKDF2 at login)
    stored_key = _sha256(_hmac(salted, b"Client Key"))
    return _ScramKeys(
        SCRAM_ITERATIONS, _fake_salt(credential.user), stored_key, _hmac(salted, b"Server Key")
    )


def _md5_inner(credential: Credential) -> str | None:
    """md5hex(password + user), the inner hash of the md5 exchange, or None for SCRAM."""
    if credential.kind == "md5":
        return credential.secret[3:]
    if credential.kind == "plain":
        return _md5hex(_utf8(credential.secret + credential.user))
    return None


def _fake_salt(user: str) -> bytes:
    return _hmac(_MOCK_KEY, b"salt\0" + _utf8(user))[:_SALT_LENGTH]


def _mock_keys(user: str) -> _ScramKeys:
    """Keys no password matches, for an unknown user or a secret that cannot do SCRAM."""
    stored_key = _hmac(_MOCK_KEY, b"stored\0" + _utf8(user))
    server_key = _hmac(_MOCK_KEY, b"server\0" + _utf8(user))
    return _ScramKeys(SCRAM_ITERATIONS, _fake_salt(user), stored_key, server_key)


def _failed(user: str) -> errors.InvalidPassword:
    return errors.InvalidPassword(f'password authentication failed for user "{user}"')


# -- users --------------------------------------------------------------------------------------


_ENV_CONFLICT = "set SQLML_GATEWAY_PASSWORD or SQLML_GATEWAY_USERS_FILE, not both"


class Users(Mapping[str, Credential]):
    """A read-only mapping user name -> Credential."""

    __slots__ = ("_credentials",)

    def __init__(self, credentials: Iterable[Credential]) -> None:
        found: dict[str, Credential] = {}
        for credential in credentials:
            if credential.user in found:
                raise errors.InvalidParameterValue(f'duplicate user "{credential.user}"')
            found[credential.user] = credential
            if credential.kind == "plain":
                _plain_salted(credential.user, credential.secret)  # now, not at a login
        self._credentials = MappingProxyType(found)

    def __getitem__(self, user: str) -> Credential:
        return self._credentials[user]

    def __iter__(self) -> Iterator[str]:
        return iter(self._credentials)

    def __len__(self) -> int:
        return len(self._credentials)

    def __repr__(self) -> str:
        return f"Users({sorted(self._credentials)!r})"

    @classmethod
    def from_file(cls, path: str | Path) -> Users:
        """Lines ``user:secret``; refuses a file with any group or other permission bits."""
        text = _read_private(Path(path))
        return cls(_parse_users(text, str(path)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Users | None:
        """From ``SQLML_GATEWAY_PASSWORD`` (with ``SQLML_GATEWAY_USER``, default ``sqlml``)
        or ``SQLML_GATEWAY_USERS_FILE``; None when neither is set."""
        password = environ.get("SQLML_GATEWAY_PASSWORD")
        path = environ.get("SQLML_GATEWAY_USERS_FILE")
        user = environ.get("SQLML_GATEWAY_USER")
        if password is not None and path is not None:
            raise errors.InvalidParameterValue(_ENV_CONFLICT)
        if path is not None:
            return cls.from_file(_env_path(path, user))
        if password is not None:
            return cls([_env_credential(user, password)])
        if user is not None:
            raise errors.InvalidParameterValue("SQLML_GATEWAY_USER is set without a password")
        return None


def _env_path(path: str, user: str | None) -> str:
    if user is not None:
        raise errors.InvalidParameterValue(
            "SQLML_GATEWAY_USER applies to SQLML_GATEWAY_PASSWORD, not to a users file"
        )
    if not path:
        raise errors.InvalidParameterValue("SQLML_GATEWAY_USERS_FILE is empty")
    return path


def _env_credential(user: str | None, password: str) -> Credential:
    name = DEFAULT_USER if user is None else user
    if not name:
        raise errors.InvalidParameterValue("SQLML_GATEWAY_USER is empty")
    if not password:
        raise errors.InvalidParameterValue("SQLML_GATEWAY_PASSWORD is empty")
    return Credential(name, scram_secret(password))


def _read_private(path: Path) -> str:
    """The file's text, refused if group or others have any access (as ssh does for keys)."""
    try:
        with path.open("rb") as file:
            mode = os.fstat(file.fileno()).st_mode
            if os.name == "posix" and mode & 0o077:
                raise errors.InvalidParameterValue(
                    f"users file {path} is accessible by group or others",
                    hint=f"chmod 600 {path}",
                )
            data = file.read()
    except OSError as e:
        raise errors.InvalidParameterValue(f"cannot read users file {path}: {e.strerror}") from e
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise errors.InvalidParameterValue(f"users file {path} is not UTF-8") from e


def _parse_users(text: str, where: str) -> list[Credential]:
    found: dict[str, Credential] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        credential = _parse_line(line, f"users file {where}, line {number}")
        if credential.user in found:
            raise errors.InvalidParameterValue(
                f'users file {where}, line {number}: duplicate user "{credential.user}"'
            )
        found[credential.user] = credential
    if not found:
        raise errors.InvalidParameterValue(f"users file {where} has no users")
    return list(found.values())


def _parse_line(line: str, where: str) -> Credential:
    """``user:secret`` or ``user:attributes:secret``; the messages name the line, never the
    secret. A secret starts with a known prefix; anything else before a colon is attributes."""
    user, colon, secret = line.partition(":")
    if not colon or not user or user != user.strip():
        raise errors.InvalidParameterValue(f"{where}: expected user:secret")
    attributes: dict[str, str] = {}
    if not secret.startswith((_SCRAM_PREFIX, "md5", "plain:")) and ":" in secret:
        text, _, secret = secret.partition(":")
        attributes = _parse_attributes(text, where)
    return dataclasses.replace(
        _parse_secret(user, secret, where),
        role=attributes.get("role", READ_WRITE),
        files=attributes.get("files") == "allow",
    )


# The attributes of a users file line and their values.
_ATTRIBUTES = {"role": ROLES, "files": ("allow", "deny")}


def _parse_attributes(text: str, where: str) -> dict[str, str]:
    """``role=read-only|read-write`` and ``files=allow|deny``, comma-separated, each once."""
    found: dict[str, str] = {}
    for item in text.split(","):
        name, equals, value = (part.strip() for part in item.partition("="))
        if name in found or not equals or value not in _ATTRIBUTES.get(name, ()):
            raise errors.InvalidParameterValue(
                f"{where}: expected role=read-only|read-write and/or files=allow|deny"
                " (comma-separated) before the secret"
            )
        found[name] = value
    return found


def _parse_secret(user: str, secret: str, where: str) -> Credential:
    if secret.startswith("plain:"):
        return _plain_credential(user, secret[len("plain:") :], where)
    if secret.startswith(_SCRAM_PREFIX):
        if _parse_scram(secret) is None:
            raise errors.InvalidParameterValue(f"{where}: malformed SCRAM-SHA-256 secret")
        return Credential(user, secret)
    if secret.startswith("md5"):
        if not _MD5_SECRET.fullmatch(secret):
            raise errors.InvalidParameterValue(f"{where}: malformed md5 secret")
        return Credential(user, secret)
    raise errors.InvalidParameterValue(
        f"{where}: a secret starts with SCRAM-SHA-256$, md5 or plain:",
        hint="write a plaintext password as plain:<password>",
    )


def _plain_credential(user: str, password: str, where: str) -> Credential:
    if not password:
        raise errors.InvalidParameterValue(f"{where}: empty password")
    if password.startswith(_SCRAM_PREFIX) or _MD5_SECRET.fullmatch(password):
        raise errors.InvalidParameterValue(f"{where}: a plain: password looks like a hashed secret")
    return Credential(user, password)


# -- the exchanges ------------------------------------------------------------------------------


def check_cleartext(credential: Credential | None, user: str, password: str) -> None:
    """The ``password`` method: raises InvalidPassword unless ``password`` is the user's."""
    if credential is None:
        _salted_password(password, _fake_salt(user), SCRAM_ITERATIONS)  # a known user's work
        raise _failed(user)
    if not password or not credential.check_password(password):
        raise _failed(user)


class Md5Exchange:
    """The ``md5`` method: AuthenticationMD5Password with ``salt``, then ``check``."""

    def __init__(self, credential: Credential | None, user: str, salt: bytes | None = None) -> None:
        if salt is not None and len(salt) != 4:
            raise ValueError("an md5 salt is 4 bytes")
        self._salt = secrets.token_bytes(4) if salt is None else salt
        self._user = user
        self._inner = None if credential is None else _md5_inner(credential)

    @property
    def salt(self) -> bytes:
        """The 4 random bytes sent in AuthenticationMD5Password."""
        return self._salt

    def check(self, response: str) -> None:
        """InvalidPassword unless ``response`` is md5 + md5hex(md5hex(password + user) + salt)."""
        inner = self._inner or "0" * 32  # the same work for a user who cannot pass
        expected = "md5" + _md5hex(inner.encode("ascii") + self._salt)
        if not _same(response, expected) or self._inner is None:
            raise _failed(self._user)


@dataclass(frozen=True)
class _ClientFirst:
    gs2_header: str  # "n,," or "y,,"
    bare: str  # client-first-message-bare, part of the AuthMessage
    nonce: str  # the client's nonce


@dataclass(frozen=True)
class _ClientFinal:
    without_proof: str  # client-final-message-without-proof, part of the AuthMessage
    channel_binding: str  # the c= attribute, base64
    nonce: str  # the r= attribute: client nonce + server nonce
    proof: bytes  # the p= attribute, decoded


def _malformed(detail: str) -> errors.ProtocolViolation:
    return errors.ProtocolViolation(_MALFORMED, detail=detail)


def _printable(text: str) -> bool:
    """RFC 5802 ``printable``: non-empty, %x21-2B / %x2D-7E."""
    return bool(text) and all("!" <= c <= "~" and c != "," for c in text)


def _decode(message: bytes) -> str:
    if not message or b"\0" in message:
        raise _malformed("The message is empty or contains a NUL byte.")
    try:
        return message.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _malformed("The message is not valid UTF-8.") from e


def _check_extensions(attributes: list[str]) -> None:
    """Optional attributes (``x=...``) after the required ones are ignored, as PostgreSQL does."""
    if not all(re.fullmatch(r"[A-Za-z]=.*", a) for a in attributes):
        raise _malformed("Expected an attribute.")


def _split_gs2(text: str) -> tuple[str, str]:
    """The GS2 header (``n,,`` or ``y,,``) and the rest of a client-first-message."""
    parts = text.split(",", 2)
    if len(parts) < 3:
        raise _malformed("Expected a GS2 header.")
    flag, authzid, bare = parts
    if flag.startswith("p="):
        raise _malformed(
            "The client selected SCRAM-SHA-256 without channel binding, but the SCRAM message "
            "includes channel binding data."
        )
    if flag not in ("n", "y"):
        raise _malformed("Unexpected channel-binding flag.")
    if authzid.startswith("a="):
        raise errors.FeatureNotSupported(
            "client uses authorization identity, but it is not supported"
        )
    if authzid:
        raise _malformed("Expected an authorization identity or nothing.")
    return f"{flag},,", bare


def _parse_client_first(text: str) -> _ClientFirst:
    """``gs2-header [m=...,] n=user,r=nonce[,ext...]``; the user name is ignored."""
    gs2_header, bare = _split_gs2(text)
    attributes = bare.split(",")
    if attributes[0].startswith("m="):
        raise errors.FeatureNotSupported("client requires an unsupported SCRAM extension")
    if len(attributes) < 2 or attributes[0][:2] != "n=" or attributes[1][:2] != "r=":
        raise _malformed("Expected attributes n= and r=.")
    if not _printable(attributes[1][2:]):
        raise _malformed("The client nonce is empty or not printable.")
    _check_extensions(attributes[2:])
    return _ClientFirst(gs2_header, bare, attributes[1][2:])


def _parse_client_final(text: str) -> _ClientFinal:
    """``c=binding,r=nonce[,ext...],p=proof``."""
    without_proof, separator, proof_b64 = text.rpartition(",p=")
    if not separator or "," in proof_b64:
        raise _malformed("Expected the proof as the last attribute.")
    attributes = without_proof.split(",")
    if len(attributes) < 2 or attributes[0][:2] != "c=" or attributes[1][:2] != "r=":
        raise _malformed("Expected attributes c= and r=.")
    _check_extensions(attributes[2:])
    proof = _unb64(proof_b64)
    if proof is None or len(proof) != _KEY_LENGTH:
        raise _malformed("Malformed proof in client-final-message.")
    return _ClientFinal(without_proof, attributes[0][2:], attributes[1][2:], proof)


@dataclass(frozen=True)
class _Transcript:
    first: _ClientFirst  # the client-first-message
    nonce: str  # client nonce + server nonce, which the client-final-message must repeat
    server_first: str  # the server-first-message sent back


class ScramExchange:
    """The ``scram-sha-256`` method (RFC 5802, RFC 7677) without channel binding.

    ``user`` is the startup user name (the client-first-message's is ignored: libpq sends it
    empty); it names the user in the failure message and derives an unknown user's fake salt.
    """

    def __init__(
        self, credential: Credential | None, user: str, *, server_nonce: str | None = None
    ) -> None:
        if server_nonce is not None and not _printable(server_nonce):
            raise ValueError("server_nonce must be printable ASCII without commas")
        keys = None if credential is None else _verifier(credential)
        self._user = user
        self._keys = keys or _mock_keys(user)
        self._doomed = keys is None  # fails at the end whatever the client proves
        self._server_nonce = server_nonce or _b64(secrets.token_bytes(_NONCE_LENGTH))
        self._transcript: _Transcript | None = None
        self._finished = False

    @staticmethod
    def mechanisms() -> tuple[str, ...]:
        """The SASL mechanisms for AuthenticationSASL (no SCRAM-SHA-256-PLUS yet)."""
        return (SCRAM_MECHANISM,)

    def start(self, mechanism: str, client_first: bytes) -> bytes:
        """The SASLInitialResponse in, the server-first-message out."""
        if self._transcript is not None or self._finished:
            raise errors.ProtocolViolation("unexpected SASLInitialResponse")
        if mechanism not in self.mechanisms():
            raise errors.ProtocolViolation(
                "client selected an invalid SASL authentication mechanism"
            )
        first = _parse_client_first(_decode(client_first))
        nonce = first.nonce + self._server_nonce
        server_first = f"r={nonce},s={_b64(self._keys.salt)},i={self._keys.iterations}"
        self._transcript = _Transcript(first, nonce, server_first)
        return server_first.encode("ascii")

    def finish(self, client_final: bytes) -> bytes:
        """The SASLResponse in, the server-final-message out; InvalidPassword on a bad proof."""
        transcript = self._take_transcript()
        final = _parse_client_final(_decode(client_final))
        expected_binding = _b64(transcript.first.gs2_header.encode("ascii"))
        if not _same(final.channel_binding, expected_binding):
            raise errors.ProtocolViolation(
                "unexpected SCRAM channel-binding attribute in client-final-message"
            )
        if not _same(final.nonce, transcript.nonce):
            raise errors.ProtocolViolation("invalid SCRAM response", detail="Nonce does not match.")
        parts = (transcript.first.bare, transcript.server_first, final.without_proof)
        auth_message = ",".join(parts).encode("utf-8")
        if not self._proof_ok(final.proof, auth_message):
            raise _failed(self._user)
        return b"v=" + _b64(_hmac(self._keys.server_key, auth_message)).encode("ascii")

    def _take_transcript(self) -> _Transcript:
        if self._transcript is None or self._finished:
            raise errors.ProtocolViolation("unexpected SASLResponse")
        self._finished = True
        return self._transcript

    def _proof_ok(self, proof: bytes, auth_message: bytes) -> bool:
        client_key = _xor(proof, _hmac(self._keys.stored_key, auth_message))
        return _same(_sha256(client_key), self._keys.stored_key) and not self._doomed


# -- the client side (the gateway logging in to PostgreSQL in proxy mode) ------------------------


def md5_response(user: str, password: str, salt: bytes) -> str:
    """The PasswordMessage text answering AuthenticationMD5Password."""
    inner = _md5hex(_utf8(password + user))
    return "md5" + _md5hex(inner.encode("ascii") + salt)


class ScramClient:
    """The client half of SCRAM-SHA-256 without channel binding (gs2 header ``n,,``), as libpq
    sends it: an empty user name in the client-first-message (the server uses the startup's)."""

    def __init__(self, password: str, *, nonce: str | None = None) -> None:
        self._password = password
        self._nonce = nonce or _b64(secrets.token_bytes(_NONCE_LENGTH))
        self._bare = f"n=,r={self._nonce}"
        self._server_signature: bytes | None = None

    def first(self) -> bytes:
        """The client-first-message (SASLInitialResponse data)."""
        return b"n,," + self._bare.encode("ascii")

    def final(self, server_first: bytes) -> bytes:
        """The client-final-message with the proof, from the server-first-message."""
        text = _decode(server_first)
        attributes = dict(a.split("=", 1) for a in text.split(",") if "=" in a)
        nonce, salt = attributes.get("r", ""), _unb64(attributes.get("s", ""))
        iterations = attributes.get("i", "")
        if not nonce.startswith(self._nonce) or salt is None or not iterations.isdigit():
            raise _malformed("invalid server-first-message")
        salted = _salted_password(self._password, salt, int(iterations))
        client_key = _hmac(salted, b"Client Key")
        without_proof = f"c={_b64(b'n,,')},r={nonce}"
        auth_message = ",".join((self._bare, text, without_proof)).encode("utf-8")
        proof = _xor(client_key, _hmac(_sha256(client_key), auth_message))
        self._server_signature = _hmac(_hmac(salted, b"Server Key"), auth_message)
        return f"{without_proof},p={_b64(proof)}".encode("ascii")

    def verify(self, server_final: bytes) -> None:
        """Checks the server-final-message: the server must prove it knows the secret too."""
        text = _decode(server_final)
        if self._server_signature is None or not text.startswith("v="):
            raise _malformed("invalid server-final-message")
        if not _same(_unb64(text[2:]) or b"", self._server_signature):
            raise errors.from_sqlstate("28000", "the server's SCRAM signature is wrong")
