"""Share server throughput and latency, as ratios measured in one run.

    .venv/bin/python bench/server_bench.py [--products 1000000] [--seconds 5] [--repeat 3]

1. First byte of a share URL whose export must run (standard JSON Lines of the whole demo
   catalog): time to the response head and to the first body byte; the whole download too.
2. Downloading that unchanged artifact through the share URL vs a bare ``socket.sendfile``
   server on the same file, with 1 and 8 concurrent clients (curl; a Python client without it).
3. 304 revalidation of the share URL and ``/healthz``: requests/s with 32 connections
   (wrk when installed, else a threaded http.client load generator in another process).

The demo catalog comes from ``bench/out/demo-N.sqlite`` (built by the export bench; built here
with ``generate_demo`` when missing) and is copied to ``bench/out/server-N.sqlite``, which this
bench may change. A benchmark, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import socketserver
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

#: The issue's budgets, printed beside the measurements.
BUDGET_SENDFILE_RATIO = 0.8
BUDGET_RPS = 3000
BUDGET_FIRST_BYTE = 1.0


# --- setup ------------------------------------------------------------------------------------


def catalog(products: int) -> Path:
    """A private copy of the demo catalog (sqlite3 backup: consistent even while others read it)."""
    OUT.mkdir(exist_ok=True)
    mine = OUT / f"server-{products}.sqlite"
    if mine.exists():
        return mine
    shared = OUT / f"demo-{products}.sqlite"
    started = time.perf_counter()
    if shared.exists():
        src, dst = sqlite3.connect(shared), sqlite3.connect(mine)
        with dst:
            src.backup(dst)
        src.close()
        dst.close()
        print(f"copied {shared.name} to {mine.name} in {time.perf_counter() - started:.1f} s")
    else:
        from tuiexport import db, setup
        from tuiexport.catalog.demo import generate_demo

        setup.prepare_database(mine, load_sample=False)
        generate_demo(products)
        db.close_database()
        print(f"built {mine.name} ({products:,} products) in {time.perf_counter() - started:.1f} s")
    return mine


def prepare(products: int):
    home = OUT / "server-home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ["TUIEXPORT_HOME"] = str(home)
    os.environ["TUIEXPORT_CONTRACT_LIMIT"] = str(max(products, 200_000))
    from tuiexport import config, service
    from tuiexport.selection import Criteria

    config.reset_settings()
    service.prepare_database(catalog(products), load_sample=False)
    for d in service.list_definitions():
        if d.name.startswith("server-bench"):
            service.delete_definition(d.export_id)
    selection = service.create_selection(Criteria(suppliers="all"), name="server-bench: everything")
    return service.create_definition(
        "server-bench-jsonl", selection_id=selection.id, profile="standard", output="jsonl"
    )


# --- clients ----------------------------------------------------------------------------------


def first_byte(port: int, path: str) -> dict:
    """Raw socket: time to the first response byte, to the first body byte, to the end."""
    started = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", port), timeout=600)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n".encode())
    data = sock.recv(65536)
    head_at = time.perf_counter()
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise SystemExit(f"the server closed the connection after {data[:300]!r}")
        data += more
    head, body = data.split(b"\r\n\r\n", 1)
    while not body:
        body = sock.recv(65536)
        if not body:
            raise SystemExit(f"the server sent no body: {head.decode(errors='replace')}")
    body_at = time.perf_counter()
    total = len(body)
    buffer = bytearray(1 << 20)
    while n := sock.recv_into(buffer):
        total += n
    sock.close()
    return {
        "head": head_at - started,
        "body": body_at - started,
        "all": time.perf_counter() - started,
        "bytes": total,
        "chunked": b"chunked" in head.lower(),
    }


def download_many(url: str, clients: int) -> tuple[float, int]:
    """Seconds for ``clients`` concurrent full downloads, and bytes per download."""
    curl = shutil.which("curl")
    if curl:
        cmd = [curl, "-s", "-o", "/dev/null", "-w", "%{size_download}", url]
        started = time.perf_counter()
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(clients)]
        sizes = [int(p.communicate()[0]) for p in procs]
        return time.perf_counter() - started, min(sizes)
    code = (
        "import sys, urllib.request\n"
        "r = urllib.request.urlopen(sys.argv[1]); b = bytearray(1 << 20); n = 0\n"
        "while k := r.readinto(b): n += k\n"
        "print(n)\n"
    )
    started = time.perf_counter()
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url], stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    sizes = [int(p.communicate()[0]) for p in procs]
    return time.perf_counter() - started, min(sizes)


_LOADGEN = r"""
import http.client, sys, threading, time
host, port, path, seconds, conns = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
headers = dict(h.split(": ", 1) for h in sys.argv[6:])
counts, stop = [0] * conns, time.monotonic() + seconds
def worker(i):
    c = http.client.HTTPConnection(host, port, timeout=10)
    while time.monotonic() < stop:
        c.request("GET", path, headers=headers); r = c.getresponse(); r.read()
        counts[i] += 1
threads = [threading.Thread(target=worker, args=(i,)) for i in range(conns)]
[t.start() for t in threads]; [t.join() for t in threads]
print(sum(counts) / seconds)
"""


def requests_per_second(
    url: str, seconds: float, headers: list[str], connections: int = 32
) -> tuple[float, str]:
    wrk = shutil.which("wrk")
    if wrk:
        args = [wrk, "-t2", f"-c{connections}", f"-d{seconds:g}s", "--latency"]
        for h in headers:
            args += ["-H", h]
        out = subprocess.run(
            [*args, url], capture_output=True, text=True, timeout=seconds + 30, check=False
        ).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        note = (
            "wrk"
            + (f", {bad.group(1)} non-2xx/3xx" if bad else "")
            + (f", {errors.group(1)}" if errors else "")
        )
        return rps, note
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _LOADGEN,
            host,
            port,
            path,
            str(seconds),
            str(connections),
            *headers,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    ).stdout
    return float(out.strip()), "python http.client load generator (wrk not installed)"


# --- the baseline -----------------------------------------------------------------------------


def bare_sendfile_server(path: Path) -> socketserver.ThreadingTCPServer:
    """The floor: read a request head, answer with the file via socket.sendfile."""

    class Handler(socketserver.StreamRequestHandler):
        disable_nagle_algorithm = True

        def handle(self):
            while True:
                line = self.rfile.readline()
                if not line:
                    return
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                size = path.stat().st_size
                self.wfile.write(
                    f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nContent-Type: application/jsonl\r\n\r\n".encode()
                )
                with open(path, "rb") as f:
                    self.connection.sendfile(f)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per requests/s measurement")
    parser.add_argument("--repeat", type=int, default=5, help="downloads: best of this many")
    # parse_known_args: bench/run.py may call main() with its own command line in sys.argv.
    args, _ = parser.parse_known_args(argv)
    saved = {k: os.environ.get(k) for k in ("TUIEXPORT_HOME", "TUIEXPORT_CONTRACT_LIMIT")}
    try:
        return _run(args)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        from tuiexport import config

        config.reset_settings()


def _run(args: argparse.Namespace) -> int:

    definition = prepare(args.products)
    from tuiexport import service
    from tuiexport.server import start_server

    handle = start_server("127.0.0.1", 0, access_log=None)
    share = service.share_path(definition)
    rows = []
    try:
        fb = first_byte(handle.port, share)
        run = service.list_history(export_id=definition.export_id)[0]
        if run.status not in ("success", "warning"):
            raise SystemExit(f"the export run {run.log_id} ended {run.status}: {run.messages}")
        print(
            f"first byte, share URL running a {run.product_count:,}-product JSON Lines export "
            f"({fb['bytes'] / 1e6:,.0f} MB, {'chunked while produced' if fb['chunked'] else 'after the run'}): "
            f"head {fb['head']:.3f} s, first body byte {fb['body']:.3f} s, whole download {fb['all']:.1f} s "
            f"(budget {BUDGET_FIRST_BYTE:.1f} s)"
        )
        rows.append(("first body byte, running export (s)", fb["body"], BUDGET_FIRST_BYTE))
        artifact = Path(run.artifact_path)

        bare = bare_sendfile_server(artifact)
        bare_url = f"http://127.0.0.1:{bare.server_address[1]}/file"
        ours_url = handle.url + share
        for clients in (1, 8):
            # Interleaved, best of --repeat each: the machine's load drifts between rounds.
            times: dict[str, list[float]] = {"bare": [], "ours": []}
            for _ in range(args.repeat):
                for name, url in (("bare", bare_url), ("ours", ours_url)):
                    seconds, size = download_many(url, clients)
                    assert size == artifact.stat().st_size, (name, size)
                    times[name].append(seconds)
            best = {name: clients * artifact.stat().st_size / min(t) for name, t in times.items()}
            ratio = best["ours"] / best["bare"]
            print(
                f"download of the unchanged artifact, {clients} client(s): share URL "
                f"{best['ours'] / 1e9:.2f} GB/s, bare sendfile {best['bare'] / 1e9:.2f} GB/s -> "
                f"{ratio:.2f}x (budget >= {BUDGET_SENDFILE_RATIO}x)"
            )
            rows.append(
                (f"share URL / bare sendfile, {clients} client(s)", ratio, BUDGET_SENDFILE_RATIO)
            )
        bare.shutdown()
        bare.server_close()

        etag = f'"{run.sha256}"'
        for name, url, headers in (
            ("304 revalidation", ours_url, [f"If-None-Match: {etag}"]),
            ("/healthz", handle.url + "/healthz", []),
        ):
            rps, note = requests_per_second(url, args.seconds, headers)
            print(
                f"{name}, 32 connections: {rps:,.0f} requests/s ({note}; budget >= {BUDGET_RPS:,})"
            )
            rows.append((f"{name} (req/s)", rps, BUDGET_RPS))
    finally:
        handle.stop()
        from tuiexport import db

        db.close_database()
    print()
    print(f"{'measure':<48} {'value':>10} {'budget':>10}")
    for name, value, budget in rows:
        print(f"{name:<48} {value:>10.3f} {budget:>10}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
