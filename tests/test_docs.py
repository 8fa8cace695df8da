"""Docs are executable: every option and SQLSTATE is documented; the README's demo runs."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
