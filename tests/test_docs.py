"""Docs are executable: every option and SQLSTATE is documented; the README's demo runs."""

from __future__ import annotations

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


def test_every_user_sqlstate_is_documented() -> None:
    states = {cls.sqlstate for cls in errors.registry().values()}
    internal = {"08000", "58000", "23000", "42000", "08P01", "28P01", "25P02"}  # gateway/engine
    for state in sorted(states - internal):
        assert f"| {state} |" in SQL_DOC, state


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
