"""A virtual environment with dbt, made once per machine, for the dbt tests (tests/test_dbt.py).

dbt-core 1.11 pins pathspec below 0.13 and the check's mypy needs pathspec 1.x: dbt cannot be
installed into the environment ./check runs in. dbt runs as a command anyway, so the tests give
it an environment of its own on top of this one (its own packages first, then this
environment's: sqlml and its dependencies as installed here, a virtualenv's included, through a
.pth file that adds this environment's site-packages with their own .pth files), made under a
lock the first time a test asks, and marked
complete last: a run that died halfway leaves a folder the next run makes again.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

# dbt-core below 1.12 (1.12 downloads at build time); the adapters of the two engines
DBT = ["dbt-core>=1.10,<1.12", "dbt-duckdb>=1.10,<1.12", "dbt-postgres>=1.10,<1.12"]
COMPLETE = ".sqlml-complete"


def folder() -> Path:
    digest = hashlib.sha256(" ".join([sys.version, sys.prefix, *DBT]).encode()).hexdigest()[:12]
    return Path(os.environ.get("SQLML_TEST_DBT", f"/tmp/sqlml-test-dbt-{digest}"))


def dbt() -> str:
    """The dbt command of the environment, made first if it is not."""
    where = folder()
    command = where / "bin" / "dbt"
    if (where / COMPLETE).exists():
        return str(command)
    where.parent.mkdir(parents=True, exist_ok=True)
    with open(where.parent / f".{where.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # (released when the file closes, or the process dies)
        if not (where / COMPLETE).exists():
            shutil.rmtree(where, ignore_errors=True)
            subprocess.run(
                [sys.executable, "-m", "venv", "--system-site-packages", str(where)], check=True
            )
            found = subprocess.run(
                [
                    str(where / "bin" / "python"),
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ],
                check=True,
                capture_output=True,
                text=True,
            )
            here = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
            lines = "".join(f"import site; site.addsitedir({path!r})\n" for path in sorted(here))
            (Path(found.stdout.strip()) / "_sqlml_tests_parent.pth").write_text(lines)
            pip = [str(where / "bin" / "python"), "-m", "pip", "install", "--quiet", *DBT]
            subprocess.run(pip, check=True, capture_output=True)
            (where / COMPLETE).touch()
    return str(command)
