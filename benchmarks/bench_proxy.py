"""sqlml serve in proxy mode (over PostgreSQL), against the same PostgreSQL directly.

  pgbench_select   pgbench -S (select-only) with --clients clients for --seconds seconds, -M
                   simple and -M prepared: through `sqlml serve --database postgresql://...`
                   (a separate process, as a user runs it) and directly; the issue's target is
                   gateway TPS >= 0.7x direct. With pgbouncer installed (Debian's package), the
                   same through pgbouncer in session mode: the limit, a proxy written in C on
                   the same two cores
  bulk             SELECT of --rows rows x (id, f0..f9) fetched by psycopg2, through the
                   gateway and directly (target >= 0.5x)
  predict_latency  a single-row ML.PREDICT through the proxy (psycopg2, simple protocol), p50
                   and p99 over --calls calls, next to the same statement through sqlml.connect
                   on the server (the in-process path)

The PostgreSQL is a throwaway cluster (tests/pgcluster.py), fsync off.

Usage: python benchmarks/bench_proxy.py [--clients 8] [--seconds 15] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2

import sqlml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import pgcluster

PGBIN = "/usr/lib/postgresql/15/bin"
PREDICT = (
    "SELECT predicted_y FROM ML.PREDICT(MODEL bench.m,"
    " (SELECT 0.1::float8 AS f0, 0.2::float8 AS f1, 0.3::float8 AS f2))"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pgbench(dsn_env: dict[str, str], *args: str) -> float | None:
    done = subprocess.run(
        [shutil.which("pgbench") or f"{PGBIN}/pgbench", *args],
        env={**os.environ, **dsn_env},
        capture_output=True,
        text=True,
        check=True,
    )
    if "-i" in args:
        return None
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", done.stdout)
    if match is None:
        raise RuntimeError(done.stdout + done.stderr)
    return float(match.group(1))


@contextlib.contextmanager
def pgbouncer(pg_port: str) -> Iterator[int | None]:
    """pgbouncer in session mode in front of the cluster (trust), or None if not installed."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="sqlml-pgbouncer-"))
    folder.chmod(0o777)
    port = free_port()
    (folder / "users.txt").write_text('"postgres" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"[databases]\nbench = host=127.0.0.1 port={pg_port} dbname=bench\n[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nauth_type = trust\n"
        f"auth_file = {folder}/users.txt\npool_mode = session\nmax_client_conn = 100\n"
        f"default_pool_size = 20\nlogfile = {folder}/log\nunix_socket_dir =\n"
    )
    command = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer will not run as root
        command = ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(command)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)
        subprocess.run(["pkill", "-f", str(folder)], check=False)
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_port(port: int) -> None:
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def bulk(dsn: str, rows: int) -> float:
    con = psycopg2.connect(dsn)
    try:
        with con.cursor() as cur:
            started = time.perf_counter()
            cur.execute(f"SELECT * FROM bench.wide LIMIT {rows}")
            got = cur.fetchall()
            elapsed = time.perf_counter() - started
        assert len(got) == rows
        return elapsed
    finally:
        con.close()


def latencies(dsn: str, calls: int) -> list[float]:
    con = psycopg2.connect(dsn)
    con.autocommit = True
    out = []
    with con.cursor() as cur:
        for _ in range(calls):
            started = time.perf_counter()
            cur.execute(PREDICT)
            cur.fetchall()
            out.append(time.perf_counter() - started)
    con.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    with pgcluster.server() as server:
        dsn = pgcluster.create_database(server, "bench")
        pgcluster.install(dsn)
        admin = psycopg2.connect(dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute("CREATE SCHEMA bench")
            cur.execute(
                "CREATE TABLE bench.wide AS SELECT g AS id,"
                + ", ".join(f"random() AS f{i}" for i in range(10))
                + f" FROM generate_series(1, {args.rows}) AS g"
            )
            cur.execute(
                "CREATE TABLE bench.train AS SELECT f0, f1, f2, f0 + f1 > 1 AS y"
                " FROM bench.wide LIMIT 5000"
            )
        admin.close()
        direct_env = {"PGHOST": "127.0.0.1", "PGPORT": dsn.rsplit(":", 1)[1].split("/")[0]}
        direct_env |= {"PGUSER": "postgres", "PGDATABASE": "bench"}
        pgbench(direct_env, "-i", "-s", "10", "-q")
        port = free_port()
        gateway = subprocess.Popen(
            [sys.executable, "-m", "sqlml.cli", "serve", "--database", dsn, "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for_port(port)
            gateway_env = {**direct_env, "PGPORT": str(port)}
            gateway_dsn = f"postgresql://postgres@127.0.0.1:{port}/bench"
            common = ["-S", "-n", "-c", str(args.clients), "-j", "2", "-T", str(args.seconds)]
            print(f"pgbench select-only, scale 10, {args.clients} clients, {args.seconds} s")
            with pgbouncer(direct_env["PGPORT"]) as bouncer_port:
                for mode in ("simple", "prepared"):
                    direct = pgbench(direct_env, *common, "-M", mode) or 0.0
                    through = pgbench(gateway_env, *common, "-M", mode) or 0.0
                    line = (
                        f"  -M {mode:8s} direct {direct:7.0f} tps  gateway {through:7.0f} tps"
                        f"  ratio {through / direct:.2f} (target >= 0.7)"
                    )
                    if bouncer_port is not None:
                        bounced = pgbench(
                            {**direct_env, "PGPORT": str(bouncer_port)}, *common, "-M", mode
                        )
                        bounced = bounced or 0.0
                        line += (
                            f"  pgbouncer {bounced:7.0f} tps  ratio {bounced / direct:.2f}"
                            f"  gateway/pgbouncer {through / bounced:.2f}"
                        )
                    print(line, flush=True)
            direct_s = min(bulk(dsn, args.rows) for _ in range(2))
            through_s = min(bulk(gateway_dsn, args.rows) for _ in range(2))
            print(
                f"bulk {args.rows} rows x 11: direct {direct_s:.2f} s, gateway {through_s:.2f} s,"
                f" throughput ratio {direct_s / through_s:.2f} (target >= 0.5)"
            )
            con = psycopg2.connect(gateway_dsn)
            con.autocommit = True
            with con.cursor() as cur:
                cur.execute(
                    "CREATE MODEL bench.m OPTIONS (model_type='logistic_reg',"
                    " input_label_cols=['y']) AS SELECT * FROM bench.train"
                )
            con.close()
            latencies(gateway_dsn, 50)  # warm up
            through_l = latencies(gateway_dsn, args.calls)
            local = sqlml.connect(dsn, autocommit=True)
            in_process = []
            for _ in range(args.calls):
                started = time.perf_counter()
                local.execute(PREDICT).fetchall()
                in_process.append(time.perf_counter() - started)
            local.close()
            for name, values in (("gateway", through_l), ("sqlml.connect", in_process)):
                q = statistics.quantiles(values, n=100)
                print(
                    f"single-row ML.PREDICT via {name:13s}: p50 {q[49] * 1e3:.2f} ms,"
                    f" p99 {q[98] * 1e3:.2f} ms over {len(values)} calls"
                )
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)


if __name__ == "__main__":
    main()
