"""Runs into the S3 store vs into the local artifacts folder, and downloads from each (issue 13).

    TUIEXPORT_BENCH_OUT=/tmp/NAME .venv/bin/python bench/storage_bench.py \
        [--products 1000000] [--format standard/csv] [--rounds 1] [--downloads 3]
    .venv/bin/python bench/storage_bench.py --synthetic [--mb 200] [--rounds 5]

Starts the throw-away radosgw of the tests (tests/s3_cluster.py: Debian's radosgw, ceph-mon and
ceph-osd). The default measures what a user sees, on a copy of the demo catalog
(``$TUIEXPORT_BENCH_OUT/demo-N.sqlite``, e.g. a copy of /tmp/bench1m/demo-1000000.sqlite; it
gets two definitions and the history rows of the runs): ``tuiexport --run`` of one export
(validation off, so both arms write exactly once) into the local folder and into S3, in
interleaved pairs, wall time of the whole process; then two ``tuiexport serve`` processes, one
per store, and whole-file share downloads of each run's file through them (interleaved,
read by one client over loopback). Prints the medians, the ratios S3 / local, and the load
average before and after.

``--synthetic``: the same ~200 MB generated file through both stores' writers (1 MiB writes,
SHA-256 on the way, commit), with the peak of Python allocations while streaming into S3.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.s3_cluster import running_store  # noqa: E402 - after the path above
from tuiexport.storage import ArtifactStore, LocalStore  # noqa: E402

MiB = 1 << 20
CHUNK = MiB  # what the engine's hashing writer hands on


def _block() -> bytes:
    """1 MiB of XML-ish text that is not one repeated line."""
    lines = []
    for i in range(20_000):
        lines.append(f'<PRODUCT puid="{i}"><NAME>Kabel {i * 7919 % 100_003}</NAME></PRODUCT>\n')
    text = "".join(lines).encode()
    return (text * (MiB // len(text) + 1))[:MiB]


def stream(store: ArtifactStore, key: str, block: bytes, mb: int) -> float:
    began = time.perf_counter()
    with store.create(key) as out:
        for _ in range(mb):
            out.write(block)
        stored = out.commit()
    seconds = time.perf_counter() - began
    assert stored.size == mb * MiB
    store.delete(key)
    return seconds


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def synthetic(args: argparse.Namespace) -> None:
    block = _block()
    digest = hashlib.sha256()
    for _ in range(args.mb):
        digest.update(block)
    print(f"load average before: {load()}")
    began = time.perf_counter()
    with running_store() as server, tempfile.TemporaryDirectory() as tmp:
        print(f"radosgw fixture up in {server.started_in:.1f} s at {server.endpoint}")
        for name, value in server.env().items():
            os.environ[name] = value
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        import boto3

        boto3.client("s3").create_bucket(Bucket="bench")
        from tuiexport.storage.s3 import S3Store

        s3 = S3Store.from_url("s3://bench/runs")
        local = LocalStore(Path(tmp) / "artifacts")
        arms: dict[str, Callable[[int], float]] = {
            "local": lambda i: stream(local, f"e/run{i}.xml", block, args.mb),
            "s3": lambda i: stream(s3, f"e/run{i}.xml", block, args.mb),
        }
        arms["s3"](-1)  # warm-up: pools, connections
        times: dict[str, list[float]] = {"local": [], "s3": []}
        for i in range(args.rounds):
            order = ["local", "s3"] if i % 2 == 0 else ["s3", "local"]
            for arm in order:
                times[arm].append(arms[arm](i))
        tracemalloc.start()
        stream(s3, "e/peak.xml", block, args.mb)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    print(f"total {time.perf_counter() - began:.0f} s; load average after: {load()}")
    local_s, s3_s = statistics.median(times["local"]), statistics.median(times["s3"])
    size = args.mb
    print(f"file: {size} MiB, {args.rounds} interleaved pairs, medians:")
    print(f"  local folder  {local_s:6.2f} s  {size / local_s:7.1f} MiB/s  {_all(times['local'])}")
    print(f"  S3 (radosgw)  {s3_s:6.2f} s  {size / s3_s:7.1f} MiB/s  {_all(times['s3'])}")
    print(f"  ratio S3 / local: {s3_s / local_s:.2f}")
    print(
        f"  peak Python allocations streaming {size} MiB into S3: {peak / MiB:.1f} MiB "
        f"(part size {s3.part_size // MiB} MiB)"
    )


def _all(values: list[float]) -> str:
    return "(" + ", ".join(f"{v:.2f}" for v in values) + ")"


# --- runs and downloads of a real export --------------------------------------------------


def _child(env: dict[str, str], *args: str) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"tuiexport {' '.join(args)} failed: {done.stderr[-2000:]}")
    return time.perf_counter() - began, done.stdout.strip()


def _definitions(db: Path, fmt: str) -> dict[str, str]:
    """Two identical definitions (validation off), one per store, so that neither server
    finds the other's run: {"local": export ID, "s3": export ID}."""
    from tuiexport import db as dbmod
    from tuiexport import service, setup
    from tuiexport.selection import Criteria

    setup.prepare_database(db, load_sample=False)
    try:
        by_name = {d.name: d for d in service.list_definitions()}
        selection = None
        ids = {}
        profile, output = fmt.split("/")
        for arm in ("local", "s3"):
            name = f"storage-bench {arm} {fmt}"
            if name not in by_name:
                if selection is None:
                    selection = service.create_selection(
                        Criteria(suppliers="all"), name="storage-bench: all"
                    )
                made = service.create_definition(
                    name, selection_id=selection.id, profile=profile, output=output, language="de"
                )
                by_name[name] = service.update_definition(
                    made.export_id, options={"validate": False}
                )
            ids[arm] = by_name[name].export_id
        return ids
    finally:
        dbmod.close_database()


def _share_path(db: Path, export_id: str) -> str:
    from tuiexport import db as dbmod
    from tuiexport import service, setup

    setup.prepare_database(db, load_sample=False)
    try:
        return service.share_path(service.get_definition(export_id))
    finally:
        dbmod.close_database()


def _serve(env: dict[str, str], db: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tuiexport", "--db", str(db), "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return proc, port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"tuiexport serve ended: {log.read_text()[-2000:]}") from None
            time.sleep(0.2)
    raise SystemExit("tuiexport serve did not start within 60 s")


def _download(port: int, path: str) -> tuple[float, int]:
    """One whole share download: seconds and bytes."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    began = time.perf_counter()
    conn.request("GET", path)
    answer = conn.getresponse()
    size = 0
    while chunk := answer.read(1 << 20):
        size += len(chunk)
    seconds = time.perf_counter() - began
    conn.close()
    if answer.status != 200:
        raise SystemExit(f"the share download answered {answer.status}")
    return seconds, size


def exports(args: argparse.Namespace) -> None:
    out = Path(os.environ.get("TUIEXPORT_BENCH_OUT", ""))
    db = out / f"demo-{args.products}.sqlite"
    if not os.environ.get("TUIEXPORT_BENCH_OUT") or not db.is_file():
        raise SystemExit(
            f"Copy a demo catalog to {db} and set TUIEXPORT_BENCH_OUT (never the shared one)."
        )
    work = out / "storage-bench"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    ids = _definitions(db, args.format)
    print(f"load average before: {load()}")
    began = time.perf_counter()
    with running_store() as server:
        print(f"radosgw fixture up in {server.started_in:.1f} s at {server.endpoint}")
        base = {k: v for k, v in os.environ.items() if not k.startswith("TUIEXPORT_")}
        base.update(server.env(), AWS_EC2_METADATA_DISABLED="true")
        base["AWS_CONFIG_FILE"] = str(work / "aws-config")
        base["AWS_SHARED_CREDENTIALS_FILE"] = str(work / "aws-credentials")
        base["TUIEXPORT_CONTRACT_LIMIT"] = str(max(args.products, 200_000) * 2)
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name=server.region,
        )
        client.create_bucket(Bucket="bench")
        envs = {
            "local": {**base, "TUIEXPORT_HOME": str(work / "local-home")},
            "s3": {
                **base,
                "TUIEXPORT_HOME": str(work / "s3-home"),
                "TUIEXPORT_ARTIFACTS_URL": "s3://bench/runs",
            },
        }
        runs: dict[str, list[float]] = {"local": [], "s3": []}
        where: dict[str, str] = {}
        for i in range(args.rounds):
            for arm in ("local", "s3") if i % 2 == 0 else ("s3", "local"):
                seconds, printed = _child(envs[arm], "--db", str(db), "--run", ids[arm], "-q")
                runs[arm].append(seconds)
                where[arm] = printed
                print(f"  run {i + 1} {arm:5}  {seconds:7.1f} s  (load {load()})", flush=True)
        local_size = Path(where["local"]).stat().st_size
        # What validating from the store (instead of the local spool) would add: the object
        # read back once more.
        began_read = time.perf_counter()
        body = client.get_object(Bucket="bench", Key=where["s3"].removeprefix("s3://bench/"))
        while body["Body"].read(1 << 20):
            pass
        reread = time.perf_counter() - began_read
        servers = {arm: _serve(envs[arm], db, work / f"serve-{arm}.log") for arm in envs}
        fetch: dict[str, list[float]] = {"local": [], "s3": []}
        try:
            paths = {arm: _share_path(db, ids[arm]) for arm in envs}
            for i in range(args.downloads):
                for arm in ("local", "s3") if i % 2 == 0 else ("s3", "local"):
                    seconds, size = _download(servers[arm][1], paths[arm])
                    if size != local_size:
                        raise SystemExit(f"{arm}: {size:,} bytes downloaded, not {local_size:,}")
                    fetch[arm].append(seconds)
                    print(f"  download {i + 1} {arm:5}  {seconds:6.2f} s  (load {load()})")
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                proc.wait(30)
    print(f"total {time.perf_counter() - began:.0f} s; load average after: {load()}")
    mb = local_size / MiB
    print(f"{args.products:,} products, {args.format} (validation off), {mb:,.0f} MiB; medians:")
    run_local, run_s3 = statistics.median(runs["local"]), statistics.median(runs["s3"])
    print(f"  run into the local folder  {run_local:7.1f} s  {_all(runs['local'])}")
    print(f"  run into S3 (radosgw)      {run_s3:7.1f} s  {_all(runs['s3'])}")
    print(f"  ratio S3 / local: {run_s3 / run_local:.2f}")
    print(f"  reading the object back from S3 once: {reread:.1f} s ({mb / reread:.0f} MiB/s)")
    get_local, get_s3 = statistics.median(fetch["local"]), statistics.median(fetch["s3"])
    print(f"  download, local file (sendfile)     {get_local:6.2f} s  {mb / get_local:7.1f} MiB/s")
    print(f"  download, from S3 through the server {get_s3:6.2f} s  {mb / get_s3:7.1f} MiB/s")
    print(f"  ratio S3 / local: {get_s3 / get_local:.2f}")
    shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--synthetic", action="store_true", help="a generated file, no export")
    parser.add_argument("--mb", type=int, default=200, help="--synthetic: MiB (default 200)")
    parser.add_argument("--rounds", type=int, default=0, help="interleaved pairs (1; 5 synthetic)")
    parser.add_argument("--products", type=int, default=1_000_000, help="catalog size (1M)")
    parser.add_argument("--format", default="standard/csv", help="profile/output (standard/csv)")
    parser.add_argument("--downloads", type=int, default=3, help="interleaved download pairs (3)")
    args = parser.parse_args()
    if args.synthetic:
        args.rounds = args.rounds or 5
        synthetic(args)
    else:
        args.rounds = args.rounds or 1
        exports(args)


if __name__ == "__main__":
    main()
