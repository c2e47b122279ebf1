"""Start-up: ``tuiexport --run`` of a 10-product export against ``python -c 'import peewee,
msgspec'``, interleaved in one run.

    python bench/startup_bench.py              # 15 interleaved pairs
    python bench/startup_bench.py --pairs 31

A cron job or a script that calls the CLI in a loop pays the interpreter's start and our
imports on every call; the baseline is what any peewee + msgspec program pays. Each pair runs
the baseline and the export back to back (fresh processes, same interpreter and flags), so load
from other work hits both alike; the report is the median of each and of the per-pair ratios,
in wall and in CPU seconds (a busy machine stretches wall time, much less CPU time), plus the
slowest imports of one ``-X importtime`` run. Target (issue 15): ≤ 1.5× the baseline.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 1.5


def _catalog(home: Path) -> Path:
    """A 10-product catalog with its definitions (tests/shared_catalog.py builds the same)."""
    from tests.shared_catalog import make_catalog

    path = home / "startup.sqlite"
    if not path.exists():
        make_catalog(path, 10)
    return path


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _slowest_imports(cmd: list[str], env: dict[str, str], n: int = 12) -> list[tuple[int, str]]:
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:]],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=True,
        cwd=ROOT,  # -m puts the working directory first on sys.path: this tree, not another
    )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            _, cumulative, name = line.split("|")
            depth = len(name) - len(name.lstrip())
            if depth <= 3:  # top-level imports and their direct children
                rows.append((int(cumulative), name.rstrip()))
    return sorted(rows, reverse=True)[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=15)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tuiexport-startup-") as tmp:
        home = Path(tmp)
        env = {**os.environ, "TUIEXPORT_HOME": str(home)}
        env.pop("TUIEXPORT_DB", None)
        # With bytecode caches, as an installed package has them (pip compiles on install; the
        # warm-up run writes them for a source tree). Without, every start compiles all of
        # tuiexport, which has nothing to do with its imports.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        db = _catalog(home)
        out = home / "out.json"
        ours = [sys.executable, "-m", "tuiexport", "--db", str(db), "--run", "Small"]
        ours += ["-o", str(out), "-q"]
        base = [sys.executable, "-c", "import peewee, msgspec"]
        for cmd in (ours, base):  # bytecode caches and the page cache warm
            _run(cmd, env)
        pairs = [(*_run(base, env), *_run(ours, env)) for _ in range(args.pairs)]
        imports = _slowest_imports(ours, env)
    b, b_cpu = (statistics.median(p[i] for p in pairs) for i in (0, 1))
    o, o_cpu = (statistics.median(p[i] for p in pairs) for i in (2, 3))
    ratio = statistics.median(p[2] / p[0] for p in pairs)
    cpu_ratio = statistics.median(p[3] / p[1] for p in pairs)
    load = os.getloadavg()
    print(
        f"\nStart-up, medians of {args.pairs} interleaved pairs; load average {load[0]:.2f} "
        f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores\n"
    )
    print("| what | wall ms | CPU ms |")
    print("|---|---|---|")
    print(
        f"| python -c 'import peewee, msgspec' (baseline) | {b * 1000:.0f} | {b_cpu * 1000:.0f} |"
    )
    print(f"| tuiexport --run (10 products, JSON file) | {o * 1000:.0f} | {o_cpu * 1000:.0f} |")
    ok = "ok" if min(ratio, cpu_ratio) <= TARGET_RATIO else "MISSED"
    print(
        f"| ratio (median of the pairs' ratios) | {ratio:.2f}× | {cpu_ratio:.2f}× "
        f"(≤ {TARGET_RATIO}×: {ok}) |"
    )
    print("\nslowest imports of one run (-X importtime, cumulative µs):")
    for cumulative, name in imports:
        print(f"  {cumulative:>8}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
