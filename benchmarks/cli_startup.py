"""How long the command line takes to start: each command run N times in fresh subprocesses.

What a user waits for before a command does anything is Python's start-up plus the imports the
command pays for. Compared with ``python -c pass`` (the floor: the interpreter alone), as ratios,
because this machine is shared and noisy.

  python_pass     python -c pass
  libraries       python -c "import duckdb, pyarrow, sqlglot": what any DuckDB command needs
  import_sqlml    python -c "import sqlml"
  connect         python -c "import sqlml; sqlml.connect(':memory:').close()"
  help            sqlml --help
  models          sqlml models -d <a DuckDB file with one stored model>
  run_select      sqlml run -d <the same file> <a script: SELECT 1>

Usage: python benchmarks/cli_startup.py [--repeat N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _seconds(command: list[str], repeat: int) -> float:
    """The median wall time of ``repeat`` runs (the first, warming the file cache, not counted)."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def _database(folder: Path) -> Path:
    """A DuckDB file holding one small model, made in a subprocess (this one stays cold)."""
    path = folder / "models.duckdb"
    script = (
        "import sqlml\n"
        f"con = sqlml.connect({str(path)!r}, autocommit=True)\n"
        "con.execute('CREATE TABLE t AS SELECT i::DOUBLE AS x, i % 2 = 0 AS y FROM range(100) r(i)')\n"
        "con.execute(\"CREATE MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y'])"
        ' AS SELECT x, y FROM t")\n'
        "con.close()\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cli = shutil.which("sqlml")
    if cli is None:
        sys.exit("the sqlml command is not on PATH (pip install -e .)")
    with tempfile.TemporaryDirectory() as folder:
        database = _database(Path(folder))
        script = Path(folder) / "select.sql"
        script.write_text("SELECT 1 AS one;\n")
        commands = {
            "python_pass": [sys.executable, "-c", "pass"],
            "libraries": [sys.executable, "-c", "import duckdb, pyarrow, sqlglot"],
            "import_sqlml": [sys.executable, "-c", "import sqlml"],
            "connect": [sys.executable, "-c", "import sqlml; sqlml.connect(':memory:').close()"],
            "help": [cli, "--help"],
            "models": [cli, "models", "-d", str(database)],
            "run_select": [cli, "run", "-d", str(database), str(script)],
        }
        results = {name: _seconds(command, args.repeat) for name, command in commands.items()}
    floor = results["python_pass"]
    print(f"median of {args.repeat} runs each (python {sys.version.split()[0]})")
    for name, seconds in results.items():
        print(f"  {name:14} {seconds * 1000:8.0f} ms   {seconds / floor:6.1f}x python -c pass")


if __name__ == "__main__":
    main()
