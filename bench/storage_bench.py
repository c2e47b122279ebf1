"""Streaming a run's file into the S3 store vs writing it to the local artifacts folder.

    .venv/bin/python bench/storage_bench.py [--mb 200] [--rounds 5]

Starts the throw-away radosgw of the tests (tests/s3_cluster.py: Debian's radosgw, ceph-mon and
ceph-osd), then writes the same ~200 MB file through both stores' writers, in interleaved pairs
(the order alternates), the way a run writes: 1 MiB writes, SHA-256 on the way, commit (local:
fsync + rename; S3: complete + metadata + verify). Prints the medians, the ratio S3 / local,
the peak of Python allocations while streaming into S3, and the load average before and after.

The file is generated (the same bytes every round), not a real export: wiring the store into runs
is the next step of issue 13; then this bench can stream a 1M-product export instead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="file size in MiB (default 200)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved pairs (default 5)")
    args = parser.parse_args()
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


if __name__ == "__main__":
    main()
