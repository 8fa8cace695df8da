"""Docs are executable: every option and SQLSTATE is documented; the README's demo runs."""

from __future__ import annotations

import ast
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import unavailable

from sqlml import errors
from sqlml.ml import models

ROOT = Path(__file__).resolve().parent.parent
SQL_DOC = (ROOT / "docs" / "sql.md").read_text()


@pytest.mark.parametrize("name", models.names())
def test_every_option_is_documented(name: str) -> None:
    for option in models.get(name).options:
        assert f"`{option.name}`" in SQL_DOC, option.name


def raisable_sqlstates() -> set[str]:
    """Every SQLSTATE sqlml's code can raise: the registry's classes, and every string literal
    of a SQLSTATE's shape in the package (``from_sqlstate("42P02", ...)``, defaults such as
    ``sqlstate="22P02"``), but for class 00, success (a NOTICE's code, not an error)."""
    found = {cls.sqlstate for cls in errors.registry().values()}
    for path in [*(ROOT / "sqlml").rglob("*.py"), *(ROOT / "udfs").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            text = node.value if isinstance(node, ast.Constant) else None
            if isinstance(text, str) and SQLSTATE.fullmatch(text) and not text.startswith("00"):
                found.add(text)
    return found


# Five characters of digits and upper case letters, the class (first two) not all letters.
SQLSTATE = re.compile(r"(?=[0-9A-Z]{5}$)([0-9][0-9A-Z]|[A-Z][0-9])[0-9A-Z]{3}|XX00[0-9]")


def documented_sqlstates() -> list[str]:
    """The first column of the error table of docs/sql.md."""
    section = SQL_DOC[SQL_DOC.index("## Errors") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^\| ([0-9A-Z]{5}) \|", section, flags=re.MULTILINE)


def test_every_user_sqlstate_is_documented() -> None:
    """No exemptions: the table lists exactly the codes the code can raise, each once."""
    table = documented_sqlstates()
    assert len(table) == len(set(table)), "a code documented twice"
    raisable = raisable_sqlstates()
    assert sorted(raisable - set(table)) == [], "raised but not documented"
    assert sorted(set(table) - raisable) == [], "documented but never raised"


def test_readme_commands_are_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./check" in readme
    assert "./check" in (ROOT / ".ci" / "run").read_text()
    assert re.search(r"sqlml run --database \S+ examples/demo.sql", readme)


def test_readme_demo_runs(tmp_path: Path) -> None:
    database = tmp_path / "demo.duckdb"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlml.cli",
            "run",
            "--database",
            str(database),
            str(ROOT / "examples" / "demo.sql"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "roc_auc" in done.stdout
    assert "predicted_churned" in done.stdout
    assert "stored shop.churn version 1" in done.stderr  # progress while training
    assert "centroid_id" in done.stdout


# -- the README, run as a new user follows it (issue 12, point 7) -----------------------------
#
# Every fenced block of README.md runs, in order, on one fresh DuckDB file (demo.duckdb in a
# folder of its own): ``sh`` blocks line by line through the installed ``sqlml`` command (and
# psql), ``python`` blocks with exec, ``sql`` blocks with ``sqlml run`` on the demo's file, and
# the ``sql`` block of section "PostgreSQL" with psql on a test database that holds the demo's
# tables. The one block before the demo (the statements at the top) runs right after it, as
# the README says. What a test machine cannot run is listed here, with why; nothing else is left.
NOT_RUN = {
    "pip install -e '.[dev]' && ./check": "the checks themselves (the suite running this test)",
    "sqlml serve --database postgresql://db:5432/shop": "needs a certificate; proxy mode with TLS"
    " is tested in test_gateway_proxy.py",
    "python -m venv --system-site-packages .dbt": "dbt's environment and the example's build:"
    " test_dbt.py makes the one (tests/dbtenv.py) and runs the other",
}


def readme_blocks() -> list[tuple[str, str, str]]:
    """(section, language, text) of every fenced block of README.md, in order."""
    return fenced_blocks(ROOT / "README.md")


def fenced_blocks(path: Path) -> list[tuple[str, str, str]]:
    """(section, language, text) of every fenced block of a Markdown page, in order; a block
    indented under a list item loses its indentation, its section is the last ``##`` or
    ``###`` heading above it."""
    blocks, section, language, lines, indent = [], "", None, [], 0
    for line in path.read_text().splitlines():
        fence = line.lstrip().startswith("```")
        if language is None and line.startswith(("## ", "### ")):
            section = line.split(" ", 1)[1].strip()
        elif language is None and fence:
            indent = len(line) - len(line.lstrip())
            language, lines = line.strip()[3:].strip(), []
        elif language is not None and fence:
            blocks.append((section, language, "\n".join(lines)))
            language = None
        elif language is not None:
            lines.append(line[indent:] if line[:indent].isspace() else line)
    return blocks


class ReadmeRun:
    """Runs README blocks in ``folder`` (the user's working folder)."""

    def __init__(self, folder: Path, pg_dsn: str, pydeps: str) -> None:
        self.folder, self.pg_dsn, self.pydeps = folder, pg_dsn, pydeps
        self.port = _free_port()
        self.gateway: subprocess.Popen[str] | None = None
        (folder / "examples").symlink_to(ROOT / "examples")
        (folder / "script.sql").write_text("SELECT count(*) AS customers FROM shop.customers;\n")

    def block(self, section: str, language: str, text: str) -> None:
        if language == "sh":
            for line in text.splitlines():
                self.shell(line)
        elif language == "python":
            exec(compile(text, "README.md", "exec"), {})  # the README's own code
        elif language == "sql" and section == "PostgreSQL":
            self.load_demo_tables()
            self.check(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", self.pg_dsn, "-c", text])
        elif language == "sql":
            (self.folder / "readme.sql").write_text(text)
            self.check(["sqlml", "run", "--database", "demo.duckdb", "readme.sql"])
        else:
            assert language == "text", f"a README block of unknown kind: {language!r}"

    def shell(self, line: str) -> None:
        if any(line.startswith(skipped) for skipped in NOT_RUN):
            return
        for command in line.split("&&"):
            command = command.split("  #")[0].strip()
            if command.startswith("pip install"):
                continue  # this checkout is installed already (editable)
            if command.startswith("sqlml install"):
                command = command.replace("postgresql://postgres@localhost:5432/shop", self.pg_dsn)
                command = command.replace("/opt/sqlml/python", self.pydeps)
            command = command.replace("5433", str(self.port))
            if command.startswith("sqlml serve"):
                self.serve(command)
            else:
                self.check(["bash", "-c", command])

    def serve(self, command: str) -> None:
        args = [*command.split(), "--port", str(self.port)]
        self.gateway = subprocess.Popen(args, cwd=self.folder, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert self.gateway.poll() is None, self.gateway.communicate()[1]
                assert time.monotonic() < deadline, "the gateway did not start"
                time.sleep(0.1)

    def check(self, command: list[str]) -> str:
        done = subprocess.run(
            command, cwd=self.folder, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, f"{command}:\n{done.stdout}\n{done.stderr}"
        assert "ERROR" not in done.stderr, f"{command}:\n{done.stderr}"
        return done.stdout

    def load_demo_tables(self) -> None:
        """The demo's two tables, copied into the PostgreSQL database's schema shop (in place
        of the test template's tables of the same names)."""
        import duckdb
        import pgcluster
        import psycopg2

        source = duckdb.connect(str(self.folder / "demo.duckdb"), read_only=True)
        try:
            tables = {
                name: source.sql(f"SELECT * FROM shop.{name} ORDER BY id").to_arrow_table()
                for name in ("customers", "new_customers")
            }
        finally:
            source.close()
        con = psycopg2.connect(self.pg_dsn)
        with con, con.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS shop.customers, shop.new_customers")
        con.close()
        for name, table in tables.items():
            pgcluster.load_table(self.pg_dsn, "shop", name, table)

    def close(self) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            self.gateway.communicate(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_readme_runs_in_order(
    tmp_path: Path, pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every README block, as a new user runs them one after the other."""
    import pgcluster

    if shutil.which("psql") is None or shutil.which("sqlml") is None:
        unavailable("psql and the sqlml command are needed to run the README")
    monkeypatch.chdir(tmp_path)
    blocks = readme_blocks()
    demo = next(i for i, b in enumerate(blocks) if "examples/demo.sql" in b[2])
    before = [b for b in blocks[:demo] if b[1] != "text"]
    order = [blocks[demo], *before, *blocks[demo + 1 :]]
    assert [b[1] for b in before] == ["sql"], "only the statements at the top come before"
    run = ReadmeRun(tmp_path, pg_database, pgcluster.pydeps())
    try:
        for section, language, text in order:
            run.block(section, language, text)
    finally:
        run.close()
    assert run.gateway is not None, "the gateway's block ran"
