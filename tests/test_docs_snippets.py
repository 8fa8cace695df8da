"""Every fenced block of docs/*.md runs, in order, as a reader following the page runs it
(issue 12, point 7; the README's blocks run in tests/test_docs.py, the model for this file).

A page's blocks run in one working folder of its own, on one DuckDB file and one PostgreSQL
database (``pg_database``): ``sh`` blocks line by line through the installed ``sqlml`` command
and psql, ``python`` blocks with exec, ``sql`` blocks with ``sqlml run`` on the page's DuckDB
file, or with psql on the database for the pages about PostgreSQL. Addresses the page names
(``host:5432``, port 5433) become the test's. What a page assumes the reader has done (the
README's demo, a model trained, roles made) is done by SETUP before the section that needs it.
A block of any other language, or one a test machine cannot run and NOT_RUN does not list,
fails the test: no block slips by unrun.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import sqlml_serve, unavailable
from test_docs import ROOT, ReadmeRun, fenced_blocks

import sqlml
from sqlml.wire import auth

DOCS = ROOT / "docs"

# Blocks a test machine cannot run, by page and the start of the block, with why.
NOT_RUN = {
    ("gateway.md", "sqlml serve --database postgresql://sqlml@db"): "needs a certificate and"
    " the hosts db and gateway; proxy mode with TLS is tested in test_gateway_proxy.py",
    ("gateway.md", "host    all    all    10.0.0.5/32"): "a line of the operator's pg_hba.conf",
}

# The users files of gateway.md: what each user does, and the SQLSTATE the page promises (None:
# it runs). ana and alice are read-write, rita read-only; alice has files, bob not.
ELIDED = "SCRAM-SHA-256$4096:..."
USERS = {
    "ana": ("CREATE TABLE ana_notes (note text)", None),
    "rita": ("CREATE TABLE rita_notes (note text)", "42501"),
    "alice": ("COPY (SELECT 1 AS one) TO 'alice.csv'", None),
    "bob": ("COPY (SELECT 1 AS one) TO 'bob.csv'", "42501"),
}

# What a page promises a block prints (psql's unaligned rows for SQL), by page and block start.
EXPECT: dict[tuple[str, str], Callable[[str], bool]] = {
    # has_model_privilege('analyst', ...) after the revoke: "true: PUBLIC has it"
    ("postgres.md", "SELECT sqlml.grant_model"): lambda out: out.splitlines()[-1] == "t",
    # create_model "returns the version"
    ("postgres.md", "SELECT sqlml.create_model"): lambda out: out.splitlines()[0] == "1",
    # import_model "returns the version" (the second: sqlml.connect imported the first)
    ("postgres.md", "\\set graph"): lambda out: out.splitlines()[-1] == "2",
    ("postgres.md", "SELECT scoring_function"): lambda out: out.startswith(
        'sqlml."shop.churn"(double precision'
    ),
    ("gateway.md", "sqlml serve --database demo.duckdb"): lambda out: "predicted_churned" in out,
}


class PageRun(ReadmeRun):
    """Runs one page's blocks in ``folder``: its DuckDB file ``duckdb``, its database ``pg_dsn``."""

    def __init__(
        self, page: str, folder: Path, duckdb: str, pg_dsn: str, pydeps: str, sql_via: str
    ) -> None:
        super().__init__(folder, pg_dsn, pydeps)
        self.page, self.duckdb, self.sql_via = page, duckdb, sql_via
        self.later = contextlib.ExitStack()  # gateways started by SETUP
        self.skipped: list[str] = []  # the NOT_RUN blocks met
        self.checked: list[str] = []  # the EXPECT blocks met
        self.users: list[str] = []  # the USERS met in users files
        # the addresses the pages name, and what they are on the test machine
        self.addresses = {
            "postgresql://admin@host:5432/shop": pg_dsn,
            "postgresql://analyst@host:5432/shop": pg_dsn,
            "/opt/sqlml/python": pydeps,
        }

    def block(self, section: str, language: str, text: str) -> None:
        key = next((k for k in NOT_RUN if k[0] == self.page and text.startswith(k[1])), None)
        if key is not None:
            self.skipped.append(key[1])
            return
        for written, here in self.addresses.items():
            text = text.replace(written, here)
        if language == "sh":
            out = "".join(self.shell_out(line) for line in text.splitlines())
        elif language == "python":
            out = self.python(text)
        elif language == "sql" and self.sql_via == "psql":
            out = self.psql(text)
        elif language == "sql":
            (self.folder / "page.sql").write_text(text)
            out = self.check(["sqlml", "run", "--database", self.duckdb, "page.sql"])
        elif language == "users-file":
            out = self.users_file(text)
        else:
            raise AssertionError(f"{self.page}: a block of unknown kind {language!r}: {text}")
        for (where, start), expected in EXPECT.items():
            if where == self.page and text.startswith(start):
                assert expected(out), f"{self.page}: {text}\nprinted:\n{out}"
                self.checked.append(start)

    def shell_out(self, line: str) -> str:
        """One line of an sh block, its output (the gateway's start prints nothing)."""
        command = line.split("  #")[0].strip().replace("5433", str(self.port))
        if not command:
            return ""
        if command.startswith("sqlml serve"):
            self.serve(command)
            return ""
        return self.check(["bash", "-c", command])

    def python(self, text: str) -> str:
        """A python block with exec, in a namespace of its own (the page's blocks each import
        what they use); the connections it leaves open are closed, as its end would."""
        namespace: dict[str, Any] = {}
        try:
            exec(compile(text, self.page, "exec"), namespace)  # the page's own code
        finally:
            for value in namespace.values():  # the page's connections hold its files
                if isinstance(value, sqlml.Connection) or type(value).__name__ == "Connection":
                    value.close()
        return ""

    def psql(self, text: str) -> str:
        """SQL through psql on the page's database, its rows unaligned (``-At``) to check."""
        (self.folder / "page.sql").write_text(text)
        command = ["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.pg_dsn]
        return self.check([*command, "-f", "page.sql"])

    def users_file(self, text: str) -> str:
        """A users file as the page writes it, each elided secret (``SCRAM-SHA-256$4096:...``)
        the secret of the password ``<user>-password``, served with SCRAM on the page's file;
        each user then runs what USERS says, with the outcome the page promises."""
        lines = []
        for line in text.splitlines():
            user = line.split(":", 1)[0]
            lines.append(line.replace(ELIDED, auth.scram_secret(f"{user}-password")))
        users = self.folder / "users"
        users.write_text("\n".join(lines) + "\n")
        users.chmod(0o600)
        if self.gateway is not None:  # the page's first gateway holds the file: stop it
            self.gateway.terminate()
            self.gateway.communicate(timeout=30)
            self.gateway = None
        names = [line.split(":", 1)[0] for line in lines if line and not line.startswith("#")]
        args = ("--database", self.duckdb, "--auth", "scram", "--users-file", str(users))
        with sqlml_serve(*args) as port:
            for user in names:
                statement, sqlstate = USERS[user]
                self.as_user(port, user, statement, sqlstate)
                self.users.append(user)
        return ""

    def as_user(self, port: int, user: str, statement: str, sqlstate: str | None) -> None:
        """psql as ``user`` through the gateway: the statement runs, or fails with sqlstate."""
        command = ["psql", "-X", "-v", "VERBOSITY=verbose", "-h", "127.0.0.1", "-p", str(port)]
        done = subprocess.run(
            [*command, "-U", user, "-d", "demo", "-c", statement],
            cwd=self.folder,
            env={**os.environ, "PGPASSWORD": f"{user}-password"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if sqlstate is None:
            assert done.returncode == 0, f"{user}: {statement}: {done.stderr}"
        else:
            assert f"ERROR:  {sqlstate}" in done.stderr, f"{user}: {statement}: {done.stderr}"

    def close(self) -> None:
        self.later.close()
        super().close()


# -- what the pages assume the reader has (run before the section named) ---------------------

TRAIN_CHURN = (
    "SELECT sqlml.create_model('shop.churn', 'logistic_reg',"
    " 'SELECT tenure, spend, plan, churned FROM shop.customers',"
    ' \'{"input_label_cols": ["churned"]}\');'
)


def _roles(run: PageRun) -> None:
    """The roles the Privileges section grants to (roles are the cluster's: made once)."""
    run.psql(
        "DO $$ BEGIN CREATE ROLE analyst; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        "DO $$ BEGIN CREATE ROLE ml_team; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
    )


def _install_and_train(run: PageRun) -> None:
    """The install section ends uninstalled: install again, then a model to grant."""
    run.check(["sqlml", "install", "--database", run.pg_dsn, "--python-path", run.pydeps])
    _roles(run)
    run.psql(TRAIN_CHURN)


def _fresh_model_and_holdout(run: PageRun) -> None:
    """The psql section creates shop.churn (version 1) and evaluates on shop.holdout."""
    run.psql(
        "SELECT sqlml.drop_model('shop.churn');"
        " CREATE TABLE shop.holdout AS SELECT * FROM shop.customers WHERE id % 5 = 0;"
    )


def _proxy_gateway(run: PageRun) -> None:
    """A gateway in proxy mode over the page's database, shop.churn trained in it."""
    run.psql(TRAIN_CHURN)
    port = run.later.enter_context(sqlml_serve("--database", run.pg_dsn))
    parts = urlsplit(run.pg_dsn)
    gateway = parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}")
    run.addresses["postgresql://postgres@127.0.0.1:5433/shop"] = urlunsplit(gateway)


SETUP: dict[tuple[str, str], Callable[[PageRun], None]] = {
    ("postgres.md", "Privileges"): _install_and_train,
    ("postgres.md", "From psql, with no Python on the client"): _fresh_model_and_holdout,
    ("postgres.md", "The scoring function of a model"): lambda run: run.psql(TRAIN_CHURN),
    ("gateway.md", "PostgreSQL's semantics, client by client"): _proxy_gateway,
}

# How each page's sql blocks run; a new page must say (test_every_page_is_run).
PAGES = {
    "sql.md": "sqlml run",
    "gateway.md": "sqlml run",
    "postgres.md": "psql",
    "report.md": "sqlml run",
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo, run once: the DuckDB file the sql and gateway pages start from."""
    database = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    command = [sys.executable, "-m", "sqlml.cli", "run", "--database", str(database)]
    done = subprocess.run(
        [*command, str(ROOT / "examples" / "demo.sql")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return database


@contextlib.contextmanager
def page_run(page: str, folder: Path, demo: Path, pg_dsn: str) -> Iterator[PageRun]:
    import pgcluster

    duckdb = "demo.duckdb"
    shutil.copy(demo, folder / duckdb)
    run = PageRun(page, folder, duckdb, pg_dsn, pgcluster.pydeps(), PAGES[page])
    try:
        yield run
    finally:
        run.close()


def test_every_page_is_run() -> None:
    assert sorted(PAGES) == sorted(p.name for p in DOCS.glob("*.md"))


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_runs_in_order(
    page: str,
    demo: Path,
    tmp_path: Path,
    pg_database: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every block of the page, one after the other, with the setup the page assumes."""
    if shutil.which("psql") is None or shutil.which("sqlml") is None:
        unavailable("psql and the sqlml command are needed to run the docs")
    monkeypatch.chdir(tmp_path)
    blocks = fenced_blocks(DOCS / page)
    with page_run(page, tmp_path, demo, pg_database) as run:
        done: set[str] = set()
        for section, language, text in blocks:
            if (page, section) in SETUP and section not in done:
                SETUP[page, section](run)
            done.add(section)
            run.block(section, language, text)
        assert {s for p, s in SETUP if p == page} <= done, "a SETUP entry names no section"
    listed = sorted(start for (where, start) in NOT_RUN if where == page)
    assert sorted(run.skipped) == listed, "a NOT_RUN entry matches no block of the page"
    promised = sorted(start for (where, start) in EXPECT if where == page)
    assert sorted(run.checked) == promised, "an EXPECT entry matches no block of the page"
    if page == "gateway.md":
        assert sorted(run.users) == sorted(USERS), "a USERS entry in no users file"


def test_a_block_of_unknown_kind_fails(tmp_path: Path) -> None:
    """A new block in a language the runner does not know cannot pass unrun."""
    run = PageRun("sql.md", tmp_path, "demo.duckdb", "", "", "sqlml run")
    with pytest.raises(AssertionError, match="unknown kind 'ruby'"):
        run.block("Statements", "ruby", "puts 1")
    with pytest.raises(AssertionError, match="unknown kind ''"):
        run.block("Statements", "", "CREATE MODEL m")


def test_the_models_module_imports_first() -> None:
    """``from sqlml.ml import models`` in a fresh interpreter (test_docs.py's first sqlml
    import): it used to fail on an import cycle through sqlml.grammar, so test_docs.py could
    not be collected on its own."""
    done = subprocess.run(
        [sys.executable, "-c", "from sqlml.ml import models; print(len(models.names()))"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
