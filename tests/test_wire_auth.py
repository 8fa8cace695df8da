"""The gateway's password authentication (sqlml.wire.auth): SCRAM-SHA-256 against RFC 7677's
example and an independent client written from RFC 5802's formulas, md5 and cleartext, the
users file and environment, and secrets exchanged both ways with a real PostgreSQL."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import itertools
import os
import secrets
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pgcluster
import psycopg2
import pytest
from conftest import unavailable
from psycopg2 import sql

from sqlml import errors
from sqlml.wire.auth import (
    METHODS,
    Credential,
    Md5Exchange,
    ScramExchange,
    Users,
    check_cleartext,
    md5_secret,
    saslprep,
    scram_secret,
)

# -- an independent SCRAM-SHA-256 client (RFC 5802 section 3), sharing no code with the module --


class Client:
    """Normalize() is NFKC only: enough for the passwords used here."""

    def __init__(self, password: str, nonce: str = "", gs2: str = "n,,", user: str = "") -> None:
        self.password = unicodedata.normalize("NFKC", password).encode()
        self.nonce = nonce or base64.b64encode(secrets.token_bytes(18)).decode()
        self.gs2 = gs2
        self.bare = f"n={user},r={self.nonce}"  # libpq sends an empty user name

    def first(self) -> bytes:
        return (self.gs2 + self.bare).encode()

    def final(self, server_first: bytes) -> bytes:
        attributes = dict(a.split("=", 1) for a in server_first.decode().split(","))
        assert attributes["r"].startswith(self.nonce)
        salt, iterations = base64.b64decode(attributes["s"]), int(attributes["i"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c={base64.b64encode(self.gs2.encode()).decode()},r={attributes['r']}"
        self.auth_message = f"{self.bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored_key, self.auth_message, "sha256")
        proof = bytes(k ^ s for k, s in zip(client_key, signature, strict=True))
        self.server_key = hmac.digest(salted, b"Server Key", "sha256")
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()

    def verify(self, server_final: bytes) -> None:
        signature = hmac.digest(self.server_key, self.auth_message, "sha256")
        assert server_final == b"v=" + base64.b64encode(signature)


def reference_secret(password: bytes, salt: bytes, iterations: int = 4096) -> str:
    """PostgreSQL's verifier format from RFC 5802's formulas, for the password bytes as given."""
    salted = hashlib.pbkdf2_hmac("sha256", password, salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = [base64.b64encode(x).decode() for x in (salt, stored_key, server_key)]
    return f"SCRAM-SHA-256${iterations}:{b64[0]}${b64[1]}:{b64[2]}"


def run(server: ScramExchange, client: Client) -> None:
    """One exchange; the client checks the server's signature."""
    client.verify(server.finish(client.final(server.start("SCRAM-SHA-256", client.first()))))


# -- RFC 7677 section 3 ---------------------------------------------------------------------------

RFC_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC_CLIENT_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_NONCE = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
PENCIL = Credential("user", scram_secret("pencil", RFC_SALT, 4096))


def rfc_exchange() -> ScramExchange:
    return ScramExchange(PENCIL, "user", server_nonce=RFC_SERVER_NONCE)


def started(credential: Credential | None = PENCIL, user: str = "user") -> ScramExchange:
    server = ScramExchange(credential, user, server_nonce=RFC_SERVER_NONCE)
    assert server.start("SCRAM-SHA-256", RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    return server


def test_rfc7677_example_byte_exact() -> None:
    server = rfc_exchange()
    assert server.mechanisms() == ("SCRAM-SHA-256",)
    assert server.start("SCRAM-SHA-256", RFC_CLIENT_FIRST) == RFC_SERVER_FIRST
    assert server.finish(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL


def test_reference_client_reproduces_rfc7677() -> None:
    client = Client("pencil", RFC_CLIENT_NONCE, user="user")
    assert client.first() == RFC_CLIENT_FIRST
    assert client.final(RFC_SERVER_FIRST) == RFC_CLIENT_FINAL
    client.verify(RFC_SERVER_FINAL)
    assert PENCIL.secret == reference_secret(b"pencil", RFC_SALT)


def test_methods_as_pg_hba_names_them() -> None:
    assert METHODS == ("trust", "password", "md5", "scram-sha-256")


# -- full exchanges with the reference client ----------------------------------------------------


@pytest.mark.parametrize("gs2", ["n,,", "y,,"])
@pytest.mark.parametrize(
    "secret",
    [
        scram_secret("correct horse"),
        scram_secret("correct horse", iterations=5000),
        "correct horse",  # a plaintext secret (plain: in the users file)
    ],
    ids=["scram", "scram-5000", "plain"],
)
def test_exchange_with_reference_client(gs2: str, secret: str) -> None:
    run(ScramExchange(Credential("alice", secret), "alice"), Client("correct horse", gs2=gs2))


def test_client_first_user_name_is_ignored() -> None:
    server = ScramExchange(Credential("alice", scram_secret("pw")), "alice")
    run(server, Client("pw", user="someone-else"))


def test_non_ascii_password_is_normalized() -> None:
    composed = "p\u00e4ssw\u00f6rd"
    credential = Credential("alice", scram_secret(unicodedata.normalize("NFD", composed)))
    run(ScramExchange(credential, "alice"), Client(composed))
    assert credential.check_password(composed)


def test_server_nonce_is_fresh_and_printable() -> None:
    first = Client("pw").first()
    replies = [ScramExchange(PENCIL, "user").start("SCRAM-SHA-256", first) for _ in range(2)]
    assert replies[0] != replies[1]
    nonce = replies[0].split(b",")[0][2:]
    assert len(nonce) > 24
    assert all(0x21 <= c <= 0x7E and c != ord(",") for c in nonce)
    with pytest.raises(ValueError, match="server_nonce"):
        ScramExchange(PENCIL, "user", server_nonce="a,b")


# -- failures: the same error for a wrong password and an unknown user ---------------------------


def failure(server: ScramExchange, client: Client) -> errors.Error:
    with pytest.raises(errors.InvalidPassword) as info:
        run(server, client)
    assert info.value.sqlstate == "28P01"
    return info.value


def test_wrong_password() -> None:
    error = failure(ScramExchange(PENCIL, "user"), Client("pencil2"))
    assert error.message == 'password authentication failed for user "user"'


def test_unknown_user_looks_like_a_wrong_password() -> None:
    error = failure(ScramExchange(None, "ghost"), Client("pencil"))
    assert error.message == 'password authentication failed for user "ghost"'
    first = Client("x").first()
    salt_of = [
        ScramExchange(None, name).start("SCRAM-SHA-256", first).split(b",")[1:]
        for name in ("ghost", "ghost", "spook")
    ]
    assert salt_of[0] == salt_of[1] != salt_of[2]  # stable per name, as a real user's is
    real = ScramExchange(PENCIL, "user").start("SCRAM-SHA-256", first).split(b",")[1:]
    assert [len(a) for a in salt_of[0]] == [len(a) for a in real]  # s=<16 bytes>, i=4096


@pytest.mark.parametrize("kind", ["md5", "unknown"])
def test_secret_that_cannot_do_scram_fails_at_the_end(kind: str) -> None:
    credential = Credential("alice", md5_secret("alice", "pw")) if kind == "md5" else None
    failure(ScramExchange(credential, "alice"), Client("pw"))


def test_tampered_proof() -> None:
    server = started()
    proof = base64.b64decode(RFC_CLIENT_FINAL.rsplit(b"p=", 1)[1])
    forged = base64.b64encode(bytes([proof[0] ^ 1]) + proof[1:])
    with pytest.raises(errors.InvalidPassword):
        server.finish(RFC_CLIENT_FINAL.rsplit(b"p=", 1)[0] + b"p=" + forged)


def test_tampered_nonce() -> None:
    server = started()
    with pytest.raises(errors.ProtocolViolation) as info:
        server.finish(RFC_CLIENT_FINAL.replace(b"k0,p=", b"k1,p="))
    assert info.value.sqlstate == "08P01"


@pytest.mark.parametrize("binding", [b"eSws", b"", b"biws=", b"cD1mb28sLA=="])
def test_channel_binding_attribute_must_match_the_gs2_header(binding: bytes) -> None:
    server = started()
    with pytest.raises(errors.ProtocolViolation):
        server.finish(RFC_CLIENT_FINAL.replace(b"c=biws", b"c=" + binding))


def test_y_header_needs_its_own_binding_attribute() -> None:
    client = Client("pencil", gs2="y,,")
    server = ScramExchange(PENCIL, "user")
    final = client.final(server.start("SCRAM-SHA-256", client.first()))
    with pytest.raises(errors.ProtocolViolation):
        server.finish(final.replace(b"c=eSws", b"c=biws"))


# -- malformed and refused client messages -------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1", "PLAIN", ""])
def test_mechanism_not_offered(mechanism: str) -> None:
    with pytest.raises(errors.ProtocolViolation):
        rfc_exchange().start(mechanism, RFC_CLIENT_FIRST)


@pytest.mark.parametrize(
    "message",
    [
        b"p=tls-server-end-point,,n=,r=abc",  # channel binding demanded: no -PLUS offered
        b"p=tls-unique,,n=,r=abc",
        b"x,,n=,r=abc",
        b"nn,,n=,r=abc",
        b"n,n=,r=abc",
        b"n=,r=abc",
        b"",
        b"n,,",
        b"n,,r=abc",
        b"n,,n=",
        b"n,,n=,r=",
        b"n,,r=abc,n=",
        b"n,,n=,r=ab\x01c",
        b"n,,n=,r=ab\x00c",
        b"n,,n=,r=ab\xffc",
        b"n,,n=,r=abc,!",
        b"n,,n=,r=abc,,",
        b"n,x,n=,r=abc",
    ],
)
def test_malformed_client_first(message: bytes) -> None:
    with pytest.raises(errors.ProtocolViolation) as info:
        rfc_exchange().start("SCRAM-SHA-256", message)
    assert info.value.sqlstate == "08P01"


@pytest.mark.parametrize("message", [b"n,a=admin,n=,r=abc", b"n,,m=ext,n=,r=abc"])
def test_unsupported_scram_features(message: bytes) -> None:
    with pytest.raises(errors.FeatureNotSupported) as info:
        rfc_exchange().start("SCRAM-SHA-256", message)
    assert info.value.sqlstate == "0A000"


def test_extensions_are_ignored() -> None:
    server = ScramExchange(PENCIL, "user", server_nonce=RFC_SERVER_NONCE)
    assert server.start("SCRAM-SHA-256", RFC_CLIENT_FIRST + b",x=ext") == RFC_SERVER_FIRST


NONCE = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
PROOF = b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"c=biws",
        b"c=biws," + NONCE,
        NONCE + b",c=biws," + PROOF,
        b"c=biws," + PROOF,
        b"c=biws," + NONCE + b",p=!!!!",
        b"c=biws," + NONCE + b",p=dHzbZapWIk4jUhN+Ute9",
        b"c=biws," + NONCE + b"," + PROOF + b",x=after",
        b"c=biws," + NONCE + b",!," + PROOF,
        b"c=biws," + NONCE + b"," + PROOF + b"\x00",
        b"c=biws," + NONCE + b"\xff," + PROOF,
    ],
)
def test_malformed_client_final(message: bytes) -> None:
    with pytest.raises(errors.ProtocolViolation) as info:
        started().finish(message)
    assert info.value.sqlstate == "08P01"


def test_messages_out_of_order() -> None:
    with pytest.raises(errors.ProtocolViolation):
        rfc_exchange().finish(RFC_CLIENT_FINAL)
    server = started()
    with pytest.raises(errors.ProtocolViolation):
        server.start("SCRAM-SHA-256", RFC_CLIENT_FIRST)
    assert server.finish(RFC_CLIENT_FINAL) == RFC_SERVER_FINAL
    with pytest.raises(errors.ProtocolViolation):
        server.finish(RFC_CLIENT_FINAL)


# -- SASLprep (RFC 4013 section 3's examples), secrets and credentials ---------------------------


@pytest.mark.parametrize(
    ("password", "prepared"),
    [
        ("I\u00adX", "IX"),  # soft hyphen mapped to nothing
        ("user", "user"),
        ("USER", "USER"),
        ("\u00aa", "a"),  # NFKC
        ("\u2168", "IX"),  # NFKC
        ("a\u00a0b", "a b"),  # non-ASCII space
        ("\u0007", "\u0007"),  # prohibited, but ASCII: used as is (PostgreSQL)
        ("\u0627\u0031", "\u0627\u0031"),  # bidi violation: the raw password (PostgreSQL)
        ("a\ue000", "a\ue000"),  # private use: the raw password
        ("\u00ad", "\u00ad"),  # empty after mapping: the raw password
    ],
)
def test_saslprep(password: str, prepared: str) -> None:
    assert saslprep(password) == prepared
    assert scram_secret(password, b"salt") == reference_secret(prepared.encode(), b"salt")


def test_scram_secret_format() -> None:
    secret = scram_secret("pw")
    head, keys = secret.rsplit("$", 1)
    assert head.startswith("SCRAM-SHA-256$4096:")
    assert len(base64.b64decode(head.split(":")[1])) == 16
    assert [len(base64.b64decode(k)) for k in keys.split(":")] == [32, 32]
    assert scram_secret("pw") != secret  # a fresh salt each time
    with pytest.raises(ValueError, match="iteration"):
        scram_secret("pw", iterations=0)


def test_md5_secret() -> None:
    assert md5_secret("user", "pencil") == "md5" + hashlib.md5(b"penciluser").hexdigest()


@pytest.mark.parametrize(
    ("secret", "kind", "can_md5", "can_scram"),
    [
        (scram_secret("pw"), "scram-sha-256", False, True),
        (md5_secret("alice", "pw"), "md5", True, False),
        ("pw", "plain", True, True),
        ("md5isnotahash", "plain", True, True),
    ],
    ids=["scram", "md5", "plain", "plain-md5-lookalike"],  # a salted secret is not a stable id
)
def test_credential_kinds(secret: str, kind: str, can_md5: bool, can_scram: bool) -> None:
    credential = Credential("alice", secret)
    assert (credential.kind, credential.can_md5, credential.can_scram) == (kind, can_md5, can_scram)
    password = "md5isnotahash" if secret == "md5isnotahash" else "pw"
    assert credential.check_password(password)
    assert not credential.check_password(password + "x")
    assert not credential.check_password("")
    assert not credential.check_password("\ud800")  # a lone surrogate matches nothing
    assert secret not in repr(credential)


def test_malformed_scram_secret_is_refused_without_echo() -> None:
    secret = "SCRAM-SHA-256$4096:c2FsdA==$hunter2:hunter2"
    with pytest.raises(errors.InvalidParameterValue) as info:
        Credential("alice", secret)
    assert "hunter2" not in str(info.value)


# -- md5 and cleartext ---------------------------------------------------------------------------


def md5_response(password: str, user: str, salt: bytes) -> str:
    inner = hashlib.md5((password + user).encode()).hexdigest()
    return "md5" + hashlib.md5(inner.encode() + salt).hexdigest()


@pytest.mark.parametrize("secret", [md5_secret("alice", "pw"), "pw"], ids=["md5", "plain"])
def test_md5_exchange(secret: str) -> None:
    exchange = Md5Exchange(Credential("alice", secret), "alice")
    assert len(exchange.salt) == 4
    exchange.check(md5_response("pw", "alice", exchange.salt))
    for response in [md5_response("pw2", "alice", exchange.salt), "md5", "", "pw"]:
        with pytest.raises(errors.InvalidPassword):
            exchange.check(response)


@pytest.mark.parametrize(
    "credential", [None, Credential("alice", scram_secret("pw"))], ids=["unknown", "scram-only"]
)
def test_md5_exchange_fails_without_an_md5_capable_secret(credential: Credential | None) -> None:
    exchange = Md5Exchange(credential, "alice", b"abcd")
    assert exchange.salt == b"abcd"
    with pytest.raises(errors.InvalidPassword) as info:
        exchange.check(md5_response("pw", "alice", b"abcd"))
    assert info.value.message == 'password authentication failed for user "alice"'


def test_md5_salt_is_random_and_four_bytes() -> None:
    assert Md5Exchange(None, "a").salt != Md5Exchange(None, "a").salt
    with pytest.raises(ValueError, match="4 bytes"):
        Md5Exchange(None, "a", b"abc")


@pytest.mark.parametrize(
    "secret", [scram_secret("pw"), md5_secret("alice", "pw"), "pw"], ids=["scram", "md5", "plain"]
)
def test_check_cleartext(secret: str) -> None:
    credential = Credential("alice", secret)
    check_cleartext(credential, "alice", "pw")
    for password in ["pw2", "", "PW"]:
        with pytest.raises(errors.InvalidPassword):
            check_cleartext(credential, "alice", password)


def test_check_cleartext_unknown_user() -> None:
    with pytest.raises(errors.InvalidPassword) as info:
        check_cleartext(None, "ghost", "pw")
    assert info.value.message == 'password authentication failed for user "ghost"'


# -- the users file and the environment ----------------------------------------------------------

SCRAM = scram_secret("scram pw")


def users_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "users"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_users_file(tmp_path: Path) -> None:
    text = (
        "# gateway users\n\n"
        f"alice:{SCRAM}\n"
        f"  # indented comment\nbob:{md5_secret('bob', 'md5 pw')}\r\n"
        "carol:plain:a:b # not a comment \n"
        "dave:plain:md5isnotahash\n"
    )
    users = Users.from_file(users_file(tmp_path, text))
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    assert users["alice"].check_password("scram pw")
    assert users["bob"].check_password("md5 pw")
    assert users["carol"].check_password("a:b # not a comment ")
    assert users["dave"].kind == "plain"
    assert users.get("nobody") is None
    assert "scram pw" not in repr(users)
    assert SCRAM not in repr(users)


SECRET = "hunter2secret"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (f"alice:{SECRET}", 1),  # a plaintext password needs plain:
        (f"# users\nalice:md5{SECRET}", 2),
        (f"alice:SCRAM-SHA-256${SECRET}", 1),
        (f"alice:SCRAM-SHA-256$4096:c2FsdA==${SECRET}:{SECRET}", 1),
        (f"{SECRET}", 1),  # a password without a user
        (f":plain:{SECRET}", 1),
        (f" alice:plain:{SECRET}", 1),
        ("alice:plain:", 1),
        (f"alice:plain:md5{'0' * 32}", 1),  # a plain: password that looks hashed
        (f"\n\nalice:plain:{SECRET}\nalice:plain:{SECRET}2", 4),
    ],
)
def test_users_file_errors_name_the_line_never_the_secret(
    tmp_path: Path, text: str, line: int
) -> None:
    with pytest.raises(errors.InvalidParameterValue) as info:
        Users.from_file(users_file(tmp_path, text))
    error = info.value
    assert error.sqlstate == "22023"
    assert f"line {line}" in error.message
    for shown in (str(error), repr(error), error.detail or "", error.hint or ""):
        assert SECRET not in shown


@pytest.mark.parametrize("text", ["", "# only a comment\n\n"])
def test_users_file_without_users(tmp_path: Path, text: str) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        Users.from_file(users_file(tmp_path, text))


@pytest.mark.skipif(os.name != "posix", reason="permission bits are POSIX")
@pytest.mark.parametrize(
    ("mode", "accepted"),
    [(0o600, True), (0o400, True), (0o640, False), (0o644, False), (0o604, False), (0o620, False)],
)
def test_users_file_must_be_private(tmp_path: Path, mode: int, accepted: bool) -> None:
    path = users_file(tmp_path, f"alice:{SCRAM}\n", mode)
    if accepted:
        assert list(Users.from_file(path)) == ["alice"]
        return
    with pytest.raises(errors.InvalidParameterValue) as info:
        Users.from_file(path)
    assert info.value.hint == f"chmod 600 {path}"


def test_users_file_unreadable(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidParameterValue):
        Users.from_file(tmp_path / "missing")
    path = users_file(tmp_path, "x")
    path.write_bytes(b"alice:plain:\xff\xfe\n")
    with pytest.raises(errors.InvalidParameterValue):
        Users.from_file(path)


def test_users_is_a_read_only_mapping() -> None:
    users = Users([Credential("alice", SCRAM)])
    assert dict(users) == {"alice": Credential("alice", SCRAM)}
    with pytest.raises(TypeError):
        users["bob"] = Credential("bob", SCRAM)  # type: ignore[index]
    with pytest.raises(errors.InvalidParameterValue):
        Users([Credential("alice", SCRAM), Credential("alice", "pw")])


def test_users_from_env_password() -> None:
    assert Users.from_env({}) is None
    users = Users.from_env({"SQLML_GATEWAY_PASSWORD": "env pw"})
    assert users is not None
    assert list(users) == ["sqlml"]
    assert users["sqlml"].kind == "scram-sha-256"
    assert users["sqlml"].check_password("env pw")
    named = Users.from_env({"SQLML_GATEWAY_USER": "bob", "SQLML_GATEWAY_PASSWORD": "env pw"})
    assert named is not None
    assert list(named) == ["bob"]


def test_users_from_env_file(tmp_path: Path) -> None:
    path = users_file(tmp_path, f"alice:{SCRAM}\n")
    users = Users.from_env({"SQLML_GATEWAY_USERS_FILE": str(path)})
    assert users is not None
    assert list(users) == ["alice"]


@pytest.mark.parametrize(
    "environ",
    [
        {"SQLML_GATEWAY_PASSWORD": SECRET, "SQLML_GATEWAY_USERS_FILE": "/nonexistent"},
        {"SQLML_GATEWAY_USER": "bob"},
        {"SQLML_GATEWAY_USER": "bob", "SQLML_GATEWAY_USERS_FILE": "/nonexistent"},
        {"SQLML_GATEWAY_USER": "", "SQLML_GATEWAY_PASSWORD": SECRET},
        {"SQLML_GATEWAY_PASSWORD": ""},
        {"SQLML_GATEWAY_USERS_FILE": ""},
        {"SQLML_GATEWAY_USERS_FILE": "/nonexistent"},
    ],
)
def test_users_from_env_errors(environ: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidParameterValue) as info:
        Users.from_env(environ)
    assert SECRET not in str(info.value)


# -- with a real PostgreSQL ----------------------------------------------------------------------

_roles = itertools.count(1)


@pytest.fixture
def role(pg_server: str) -> Iterator[tuple[psycopg2.extensions.cursor, str]]:
    """A superuser cursor and a fresh role name, dropped afterwards (roles are cluster-wide)."""
    name = f"sqlml_auth_{os.getpid()}_{next(_roles)}"
    con = pgcluster.admin(pg_server)
    with contextlib.closing(con), con.cursor() as cur:
        yield cur, name
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def scalar(cur: psycopg2.extensions.cursor) -> str:
    row = cur.fetchone()
    assert row is not None
    return str(row[0])


def create_role(cur: psycopg2.extensions.cursor, name: str, password: str, encryption: str) -> str:
    """The role's rolpassword after PostgreSQL hashed ``password`` with ``encryption``."""
    cur.execute(sql.SQL("SET password_encryption = {}").format(sql.Literal(encryption)))
    statement = sql.SQL("CREATE ROLE {} PASSWORD {}")
    cur.execute(statement.format(sql.Identifier(name), sql.Literal(password)))
    cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (name,))
    return scalar(cur)


@pytest.mark.parametrize(
    ("password", "also"),
    [
        ("correct horse", None),
        ("p\u00e4ssw\u00f6rd", "pa\u0308ssw\u00f6rd"),  # NFKC on both sides
        ("\u2168", "IX"),  # PostgreSQL SASLpreps too
        ("\u0627\u0031", None),  # SASLprep fails: both use the raw password
    ],
)
def test_postgres_scram_secret(
    role: tuple[psycopg2.extensions.cursor, str], password: str, also: str | None
) -> None:
    cur, name = role
    credential = Credential(name, create_role(cur, name, password, "scram-sha-256"))
    assert credential.kind == "scram-sha-256"
    assert credential.check_password(password)
    assert also is None or credential.check_password(also)
    assert not credential.check_password(password + "!")
    check_cleartext(credential, name, password)
    run(ScramExchange(credential, name), Client(password))


def test_postgres_md5_secret(role: tuple[psycopg2.extensions.cursor, str]) -> None:
    cur, name = role
    secret = create_role(cur, name, "md5 pw", "md5")
    assert secret == md5_secret(name, "md5 pw")
    credential = Credential(name, secret)
    assert credential.check_password("md5 pw")
    assert not credential.check_password("md5 pw!")
    exchange = Md5Exchange(credential, name)
    exchange.check(md5_response("md5 pw", name, exchange.salt))


@pytest.fixture(scope="module")
def password_cluster() -> Iterator[pgcluster.Cluster]:
    """A second throwaway cluster whose pg_hba asks two roles for a password over TCP (the
    shared one trusts everyone)."""
    try:
        cluster = pgcluster.Cluster()
    except pgcluster.Unavailable as e:
        unavailable(str(e))
    try:
        hba = cluster.data / "pg_hba.conf"
        lines = "host all scram_login all scram-sha-256\nhost all md5_login all md5\n"
        hba.write_text(lines + hba.read_text())
        con = pgcluster.admin(cluster.dsn)
        with contextlib.closing(con), con.cursor() as cur:
            cur.execute("SELECT pg_reload_conf()")
        yield cluster
    finally:
        cluster.stop()


def login(cluster: pgcluster.Cluster, user: str, password: str) -> str:
    con = psycopg2.connect(
        host="127.0.0.1", port=cluster.port, dbname="postgres", user=user, password=password
    )
    with contextlib.closing(con), con.cursor() as cur:
        cur.execute("SELECT current_user")
        return scalar(cur)


@pytest.mark.parametrize(
    ("user", "password", "secret"),
    [
        ("scram_login", "correct horse", scram_secret("correct horse")),
        ("scram_login", "\u2168 p\u00e4ss", scram_secret("\u2168 p\u00e4ss", iterations=5000)),
        ("md5_login", "md5 pw", md5_secret("md5_login", "md5 pw")),
    ],
    ids=["scram", "scram-5000-unicode", "md5"],  # a salted secret is not a stable id
)
def test_postgres_accepts_our_secrets(
    password_cluster: pgcluster.Cluster, user: str, password: str, secret: str
) -> None:
    con = pgcluster.admin(password_cluster.dsn)
    with contextlib.closing(con), con.cursor() as cur:
        cur.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(user)))
        statement = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        cur.execute(statement.format(sql.Identifier(user), sql.Literal(secret)))
        cur.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user,))
        assert scalar(cur) == secret  # stored as is, not hashed again
    assert login(password_cluster, user, password) == user
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        login(password_cluster, user, password + "!")
