"""Share server against nginx, as ratios measured in the same run (issue 10).

    .venv/bin/python bench/server_bench.py [--products 1000000] [--seconds 5] [--repeat 3]

The server runs as ``tuiexport serve`` in its own process; nginx (``/usr/sbin/nginx``, one
worker, access log off, sendfile on) is started with its own config on another loopback port
and serves the same files. Without nginx or wrk the ratios are skipped with a sentence.

1. First *body* byte of a share URL whose export must run (JSON Lines of the whole catalog):
   the head now goes out with the first byte of data, so head and first body byte coincide.
2. One large download (that artifact) and 8 concurrent: share URL vs nginx (curl).
3. ``/healthz`` and a 304 revalidation, ``wrk -t2 -c32``: requests/s vs nginx (its /healthz is
   ``return 200``, its 304 its own ETag of the same small file).
4. A small artifact (about 30 KB), full downloads with history rows, wrk: vs nginx; the rows
   written are counted.
5. 2,000 idle connections and 200 slowloris sockets held open: a normal client's success and
   median latency against the same client without them; the server's peak RSS.

Beside 3 and 4, the floor: a minimal standard-library asyncio Protocol (no parsing beyond
counting request ends, one fixed keep-alive answer of the same size) in its own process, loaded
the same way, so each figure can also be read as a fraction of what Python's asyncio reaches
here at all. ``--workers N`` runs nginx with N workers and the floor as N processes sharing the
port (SO_REUSEPORT); ``--quick`` measures only 3 and 4 (no fresh export, no large downloads, no
idle connections).

The demo catalog is copied (sqlite3 backup) from ``OUT/demo-N.sqlite`` or, for 1M products,
``/tmp/bench1m/demo-1000000.sqlite``, to ``OUT/server-N.sqlite``, which this bench may change.
``OUT`` is ``bench/out``, or ``TUIEXPORT_BENCH_OUT`` (as for bench/run.py).
A benchmark, not a test: it prints, it does not assert. Report the load average with it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

OUT = Path(os.environ.get("TUIEXPORT_BENCH_OUT") or Path(__file__).resolve().parent / "out")
#: The shared 1M demo catalog (read only: copied, never written).
SHARED_1M = Path("/tmp/bench1m/demo-1000000.sqlite")

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
    if not shared.exists() and products == 1_000_000 and SHARED_1M.exists():
        shared = SHARED_1M
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
    large = service.create_definition(
        "server-bench-jsonl", selection_id=selection.id, profile="standard", output="jsonl"
    )
    # Only a file published unchecked streams while it is written (a validated one is answered
    # once the run ended): the first-byte figure measures streaming.
    large = service.update_definition(large.export_id, options={"validate": False})
    small = service.create_definition(
        "server-bench-small",
        selection_id=selection.id,
        profile="standard",
        output="jsonl",
        product_limit=28,
    )
    from tuiexport import db

    db.close_database()
    return large, small


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


# --- the servers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_ours(db_path: Path) -> tuple[subprocess.Popen, str, Path]:
    log = OUT / "server-bench-serve.log"
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", str(db_path), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env=os.environ.copy(),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "serving on" in log.read_text(errors="replace"):
            return proc, f"http://127.0.0.1:{port}", log
        if proc.poll() is not None:
            raise SystemExit(f"tuiexport serve ended: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise SystemExit("tuiexport serve did not start within 60 s")


NGINX_CONF = """
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ default_type application/json; return 200 '{{"status":"ok"}}'; }}
        location = /large {{ alias {large}; }}
        location = /small {{ alias {small}; }}
    }}
}}
"""


def start_nginx(large: Path, small: Path, workers: int = 1) -> tuple[subprocess.Popen, str] | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        print("nginx is not installed (apt-get install nginx): the nginx ratios are skipped.")
        return None
    folder = OUT / "nginx"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(dir=folder, port=port, large=large, small=small, workers=workers)
    )
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return proc, f"http://127.0.0.1:{port}"
        time.sleep(0.05)
    proc.kill()
    print("nginx did not start: the nginx ratios are skipped.")
    return None


_FLOOR = r"""
import asyncio, os, socket, sys
port, size, processes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
body = b"x" * size
ANSWER = (b"HTTP/1.1 200 OK\r\nServer: floor\r\nContent-Type: application/json\r\n"
          b"Content-Length: %d\r\n\r\n" % size) + body

class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.rest = transport, b""

    def data_received(self, data):
        data = self.rest + data
        n = data.count(b"\r\n\r\n")
        if n:
            self.transport.write(ANSWER * n)
            data = data[data.rfind(b"\r\n\r\n") + 4:]
        self.rest = data

def serve():
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(Floor, sock=sock))
    loop.run_forever()

for _ in range(processes - 1):
    if os.fork() == 0:
        serve()
serve()
"""


def start_floor(size: int, processes: int) -> tuple[subprocess.Popen, str]:
    """The floor: a bare asyncio Protocol answering one fixed response of ``size`` body bytes to
    every request end it sees, in ``processes`` processes sharing one port."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _FLOOR, str(port), str(size), str(processes)],
        start_new_session=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return proc, f"http://127.0.0.1:{port}/"
        time.sleep(0.05)
    raise SystemExit("the asyncio floor server did not start")


def stop_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(10)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


# --- idle and slowloris ----------------------------------------------------------------------


def health_latencies(base: str, count: int) -> tuple[int, list[float]]:
    host, port = base.split("//")[1].split(":")
    ok, times = 0, []
    for _ in range(count):
        started = time.perf_counter()
        try:
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            if data.startswith(b"HTTP/1.1 200"):
                ok += 1
        except OSError:
            pass
        times.append(time.perf_counter() - started)
        time.sleep(0.01)
    return ok, times


def hostile_load(base: str, idle: int, slow: int, seconds: float, pid: int) -> dict:
    """Hold ``idle`` silent connections and ``slow`` slowloris ones (reopened when cut) while a
    normal client asks /healthz; returns its success, latencies and the server's peak RSS."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(hard, idle + slow + 512):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, idle + slow + 512), hard))
    host, port = base.split("//")[1].split(":")
    stop = threading.Event()
    peak = [rss_mb(pid)]

    def hold_idle() -> None:
        socks: list[socket.socket] = []
        while not stop.is_set():
            socks = [s for s in socks if s.fileno() >= 0]
            while len(socks) < idle and not stop.is_set():
                with contextlib.suppress(OSError):
                    socks.append(socket.create_connection((host, int(port)), timeout=5))
            stop.wait(1.0)
            for s in list(socks):  # reopen those the server closed (idle timeout)
                with contextlib.suppress(OSError):
                    s.setblocking(False)
                    if s.recv(1) == b"":
                        s.close()
                        socks.remove(s)
                with contextlib.suppress(OSError):
                    s.setblocking(True)
        for s in socks:
            s.close()

    def slowloris() -> None:
        socks: list[socket.socket] = []
        while not stop.is_set():
            while len(socks) < slow:
                with contextlib.suppress(OSError):
                    s = socket.create_connection((host, int(port)), timeout=5)
                    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\n")
                    socks.append(s)
            for s in list(socks):
                try:
                    s.sendall(b"X-a: b\r\n")
                except OSError:
                    s.close()
                    socks.remove(s)
            stop.wait(1.0)
        for s in socks:
            s.close()

    def sample() -> None:
        while not stop.wait(0.25):
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], rss_mb(pid))

    threads = [threading.Thread(target=f, daemon=True) for f in (hold_idle, slowloris, sample)]
    for t in threads:
        t.start()
    time.sleep(3.0)  # let the connections pile up
    ok, times = health_latencies(base, int(seconds * 20))
    stop.set()
    for t in threads:
        t.join(10)
    return {"ok": ok, "n": len(times), "median": median(times), "rss": peak[0]}


# --- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per requests/s measurement")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved pairs per figure")
    parser.add_argument(
        "--workers", type=int, default=1, help="nginx workers and floor processes (default 1)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only the requests/s figures (healthz, 304, small downloads, the asyncio floor)",
    )
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


def runs_of(db_path: Path, export_id: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(db_path)) as conn:
        return conn.execute(
            "SELECT status, artifact_path, sha256 FROM run WHERE export_id = ? ORDER BY id DESC",
            (export_id,),
        ).fetchall()


def _run(args: argparse.Namespace) -> int:
    large, small = prepare(args.products)
    db_path = catalog(args.products)
    from tuiexport import service

    proc, base, _log = start_ours(db_path)
    rows: list[tuple[str, float, str]] = []
    nginx = None
    try:
        if not args.quick:
            # 1. first body byte of a fresh run
            fb = first_byte(int(base.rsplit(":", 1)[1]), service.share_path(large))
            _status, artifact_path, _sha = next(
                r for r in runs_of(db_path, large.export_id) if r[1]
            )
            print(
                f"first byte, share URL running a fresh JSON Lines export of the catalog "
                f"({fb['bytes'] / 1e6:,.0f} MB, "
                f"{'streamed while produced' if fb['chunked'] else 'after the run'}): "
                f"head {fb['head']:.3f} s, first body byte {fb['body']:.3f} s, whole "
                f"{fb['all']:.1f} s ({load()})"
            )
            rows.append(
                ("first body byte, fresh export (s)", fb["body"], f"budget {BUDGET_FIRST_BYTE}")
            )
        fetch = subprocess.run(
            [
                "curl",
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                base + service.share_path(small),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert fetch.stdout == "200", fetch
        small_row = next(r for r in runs_of(db_path, small.export_id) if r[1])
        small_file = Path(small_row[1])
        big = small_file if args.quick else Path(artifact_path)
        print(
            f"small artifact: {small_file.stat().st_size:,} bytes; large: {big.stat().st_size / 1e6:,.0f} MB"
        )
        started = start_nginx(big, small_file, args.workers)
        if started is not None:
            nginx, nbase = started
        wrk = shutil.which("wrk")
        if wrk is None:
            print("wrk is not installed (apt-get install wrk): the requests/s ratios are skipped.")

        # 2. large downloads
        if nginx is not None and not args.quick:
            for clients in (1, 8):
                times: dict[str, list[float]] = {"nginx": [], "ours": []}
                for _ in range(args.repeat):
                    for name, url in (
                        ("nginx", nbase + "/large"),
                        ("ours", base + service.share_path(large)),
                    ):
                        seconds, size = download_many(url, clients)
                        assert size == big.stat().st_size, (name, size)
                        times[name].append(seconds)
                ratio = median(times["nginx"]) / median(times["ours"])
                rate = clients * big.stat().st_size / median(times["ours"]) / 1e9
                print(
                    f"large download, {clients} client(s): {rate:.2f} GB/s, {ratio:.2f}x nginx ({load()})"
                )
                rows.append((f"large download x{clients} / nginx", ratio, ">= 0.9"))

        # 3. healthz and 304; 4. small downloads with history rows
        if nginx is not None and wrk:
            nginx_etag = subprocess.run(
                ["curl", "-sI", nbase + "/small"], capture_output=True, text=True, check=False
            ).stdout
            netag = re.search(r"(?i)etag: (\S+)", nginx_etag).group(1)
            cases = [
                ("/healthz", base + "/healthz", [], nbase + "/healthz", [], ">= 0.5", 15),
                (
                    "304 revalidation",
                    base + service.share_path(small),
                    [f'If-None-Match: "{small_row[2]}"'],
                    nbase + "/small",
                    [f"If-None-Match: {netag}"],
                    ">= 0.5",
                    0,
                ),
                (
                    "small download with history row",
                    base + service.share_path(small),
                    [],
                    nbase + "/small",
                    [],
                    ">= 0.3",
                    small_file.stat().st_size,
                ),
            ]
            for name, ours, oh, theirs, th, target, floor_size in cases:
                before = len(runs_of(db_path, small.export_id))
                floor, floor_url = start_floor(floor_size, args.workers)
                mine, ref, bare = [], [], []
                try:
                    for _ in range(args.repeat):
                        ref.append(requests_per_second(theirs, args.seconds, th)[0])
                        rps, note = requests_per_second(ours, args.seconds, oh)
                        mine.append(rps)
                        bare.append(requests_per_second(floor_url, args.seconds, [])[0])
                finally:
                    stop_group(floor)
                ratio = median(mine) / median(ref)
                extra = ""
                if "history" in name:
                    time.sleep(1.0)  # the last batch
                    made = len(runs_of(db_path, small.export_id)) - before
                    extra = f", {made:,} history rows written for {sum(mine) * args.seconds:,.0f} downloads"
                print(
                    f"{name}, wrk -t2 -c32: {median(mine):,.0f} req/s vs nginx {median(ref):,.0f} "
                    f"-> {ratio:.2f}x ({note}{extra}; {load()})"
                )
                print(
                    f"  floor (bare asyncio Protocol, {floor_size:,}-byte body, "
                    f"{args.workers} process(es)): {median(bare):,.0f} req/s = "
                    f"{median(bare) / median(ref):.2f}x nginx; ours = "
                    f"{median(mine) / median(bare):.2f}x the floor"
                )
                rows.append((f"{name} / nginx", ratio, target))
                rows.append(
                    (f"  floor / nginx ({args.workers} worker(s))", median(bare) / median(ref), "")
                )
                rows.append(("  ours / floor", median(mine) / median(bare), ""))

        # 5. idle + slowloris
        if not args.quick:
            _calm_ok, calm = health_latencies(base, 100)
            hostile = hostile_load(base, 2000, 200, args.seconds * 2, proc.pid)
            lat = hostile["median"] / median(calm)
            print(
                f"2,000 idle + 200 slowloris: {hostile['ok']}/{hostile['n']} normal requests ok, median "
                f"{hostile['median'] * 1000:.1f} ms vs {median(calm) * 1000:.1f} ms calm ({lat:.2f}x), "
                f"server RSS peak {hostile['rss']:.0f} MB ({load()})"
            )
            rows.append(
                ("hostile: normal client success (%)", 100 * hostile["ok"] / hostile["n"], "100")
            )
            rows.append(("hostile: latency / calm", lat, "<= 3"))
            rows.append(("hostile: server RSS (MB)", hostile["rss"], "<= 200"))
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30)
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
    print()
    print(f"{'measure':<48} {'value':>10} {'target':>10}")
    for name, value, target in rows:
        print(f"{name:<48} {value:>10.3f} {target:>10}")
    print(load())
    return 0


if __name__ == "__main__":
    sys.exit(main())
