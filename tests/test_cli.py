"""The first ten minutes with the command line (issue 12, point 7): it starts at once, a typo
or a busy port or file is one line with its SQLSTATE, a syntax error points at its place, and
the demo prints the same numbers, every column visible, on every run.

Every test runs the installed ``sqlml`` entry point in a process of its own, as a user does."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import sqlml_serve

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("sklearn", "skl2onnx", "onnx", "onnxruntime", "scipy", "pandas")


def sqlml_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [shutil.which("sqlml") or "sqlml", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=cwd)


def _loaded(code: str) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}\nimport sys\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return list(eval(done.stdout.strip().splitlines()[-1]))  # a list literal of names


def test_import_sqlml_loads_no_ml_library() -> None:
    """scikit-learn, skl2onnx, onnx, onnxruntime (and scipy, pandas) take seconds to import:
    only training and scoring load them, not ``import sqlml``, a connection, a query."""
    assert _loaded("import sqlml") == []
    assert _loaded("import sqlml.cli") == []
    connected = (
        "import sqlml\n"
        "con = sqlml.connect(':memory:', autocommit=True)\n"
        "assert con.execute('SELECT 41 + 1').fetchall() == [(42,)]\n"
        "con.close()"
    )
    assert _loaded(connected) == []


def test_sqlml_models_loads_no_ml_library(tmp_path: Path) -> None:
    """Listing the models of a database that has one reads the store, nothing more."""
    database = tmp_path / "m.duckdb"
    script = tmp_path / "train.sql"
    script.write_text(
        "CREATE TABLE t AS SELECT i::DOUBLE AS x, i % 2 = 0 AS y FROM range(50) r(i);\n"
        "CREATE MODEL m OPTIONS (model_type='logistic_reg', input_label_cols=['y'])"
        " AS SELECT x, y FROM t;\n"
    )
    assert sqlml_cli("run", "-d", str(database), str(script)).returncode == 0
    listing = (
        "import sys\nfrom sqlml.cli import main\n"
        f"sys.argv = ['sqlml', 'models', '-d', {str(database)!r}]\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code"
    )
    assert _loaded(listing) == []


def test_models_on_a_missing_file_is_3D000_and_creates_nothing(tmp_path: Path) -> None:
    typo = tmp_path / "typo.duckdb"
    done = sqlml_cli("models", "-d", str(typo))
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR 3D000: "), done.stderr
    assert "Traceback" not in done.stderr
    assert not typo.exists()


def test_run_creates_a_missing_file_and_says_so(tmp_path: Path) -> None:
    """``sqlml run`` makes a new database, as the demo needs, with a NOTICE (documented)."""
    script = tmp_path / "s.sql"
    script.write_text("CREATE TABLE t AS SELECT 1 AS x;\n")
    database = tmp_path / "new.duckdb"
    done = sqlml_cli("run", "-d", str(database), str(script))
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("NOTICE: "), done.stderr
    assert database.exists()
    again = sqlml_cli("models", "-d", str(database))
    assert again.returncode == 0, again.stderr
    assert "NOTICE" not in again.stderr


def test_a_syntax_error_points_at_its_line_and_column(tmp_path: Path) -> None:
    """As psql: ``LINE n:`` with the script's line, and a caret under the spot."""
    script = tmp_path / "bad.sql"
    script.write_text("SELECT 1;\n\n-- a comment\nSELECT 2,\n  3 FORM t;\nSELECT 4;\n")
    done = sqlml_cli("run", str(script))
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert lines[0].startswith("ERROR 42601: "), done.stderr
    assert lines[1] == "LINE 5:   3 FORM t;"
    assert lines[2] == " " * len("LINE 5:   3 FORM ") + "^"
    assert "4" not in done.stdout.splitlines()  # the statement after it did not run

    ml = tmp_path / "ml.sql"
    ml.write_text("SELECT 1;\nCREATE MODEL m OPTIONS (model_type=) AS SELECT 1 AS x;\n")
    done = sqlml_cli("run", str(ml))
    lines = done.stderr.splitlines()
    assert lines[0].startswith("ERROR 42601: "), done.stderr
    assert lines[1] == "LINE 2: CREATE MODEL m OPTIONS (model_type=) AS SELECT 1 AS x;"
    assert lines[2].index("^") == len("LINE 2: CREATE MODEL m OPTIONS (model_type=")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_on_a_port_in_use_is_one_line_and_never_says_serving(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = sqlml_cli("serve", "-d", str(tmp_path / "x.duckdb"), "-p", str(port))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr
    assert "serving" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    assert errors, done.stderr
    assert errors[0].startswith("ERROR 58000: "), done.stderr


def test_the_gateway_holds_its_file_from_the_start(tmp_path: Path) -> None:
    """``sqlml serve`` opens its DuckDB file before it says it serves and keeps it: a file
    it cannot open fails at once, not at the first client, and ``sqlml run`` / ``models``
    on the file it serves are one line (58000) with what to do instead."""
    database = tmp_path / "served.duckdb"
    script = tmp_path / "s.sql"
    script.write_text("SELECT 1;\n")
    assert sqlml_cli("run", "-d", str(database), str(script)).returncode == 0
    with sqlml_serve("-d", str(database)):
        for args in (["run", "-d", str(database), str(script)], ["models", "-d", str(database)]):
            done = sqlml_cli(*args)
            assert done.returncode == 1, done.stdout
            lines = done.stderr.splitlines()
            assert lines[0].startswith("ERROR 58000: "), done.stderr
            assert lines[-1].startswith("HINT: "), done.stderr
            assert "sqlml serve" in lines[-1]
            assert "Traceback" not in done.stderr


def _demo(folder: Path) -> subprocess.CompletedProcess[str]:
    done = sqlml_cli("run", "-d", str(folder / "demo.duckdb"), str(ROOT / "examples" / "demo.sql"))
    assert done.returncode == 0, done.stderr
    return done


def test_the_demo_prints_the_same_numbers_and_every_probability(tmp_path: Path) -> None:
    """The demo's data is seeded (its numbers are the same on every run, so the README and
    a user can quote them), and the predicted class's probability shows in every row."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _demo(tmp_path / "a"), _demo(tmp_path / "b")
    blocks = [
        [b for b in run.stdout.split("\n\n") if "trained_at" not in b] for run in (first, second)
    ]
    assert blocks[0] == blocks[1]
    predictions = next(b for b in blocks[0] if "predicted_churned_probs" in b).splitlines()
    rows = predictions[2:-1]
    assert len(rows) == 10
    for row in rows:
        cells = [c.strip() for c in row.split(" | ")]
        assert cells[4].count("prob: ") == 2, row  # both classes, neither cut off
        assert "…" not in cells[4]


def test_pydeps_folder_is_filled_once_under_a_lock(tmp_path: Path) -> None:
    """Two test runs at once (tests/pgcluster.py's fill_once): one fills, the other waits and
    uses the folder; a half-filled folder is never visible under its name, and a fill that
    dies leaves none."""
    folder = tmp_path / "pydeps"
    log = tmp_path / "fills.log"
    script = (
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from pathlib import Path\n"
        "import pgcluster\n"
        "def fill(target):\n"
        f"    with open({str(log)!r}, 'a') as f: f.write('fill\\n')\n"
        "    (target / 'first').write_text('1')\n"
        "    if sys.argv[2] == 'die': raise SystemExit(3)\n"
        "    time.sleep(1.5)\n"
        "    (target / 'second').write_text('2')\n"
        "pgcluster.fill_once(Path(sys.argv[1]), fill, [])\n"
        "print(sorted(p.name for p in Path(sys.argv[1]).iterdir()))\n"
    )
    died = subprocess.run([sys.executable, "-c", script, str(folder), "die"], check=False)
    assert died.returncode == 3
    assert not folder.exists()
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(folder), "fill"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    while any(run.poll() is None for run in runs):
        if folder.exists():  # whenever it is there under its name, it is complete
            assert (folder / "second").exists()
        time.sleep(0.02)
    outputs = [run.communicate()[0].strip() for run in runs]
    assert outputs == ["['.sqlml-complete', 'first', 'second']"] * 2
    assert log.read_text() == "fill\nfill\n"  # the one that died, and one of the two


@pytest.mark.parametrize("args", [["--help"], ["models", "--help"], ["serve", "--help"]])
def test_help_answers(args: list[str]) -> None:
    done = sqlml_cli(*args)
    assert done.returncode == 0
    assert "Usage:" in done.stdout
