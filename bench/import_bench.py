"""Catalog import benchmark: ``tuiexport catalog import`` against the sqlite3 shell, in one run.

    python bench/import_bench.py                      # 100k products, 3 interleaved pairs
    python bench/import_bench.py --products 1000000 --pairs 1

The input is a demo catalog (seed 1) dumped in the import schema (JSON Lines), built once and
kept in bench/out/ (git-ignored). The baseline is the sqlite3 command-line shell loading the same
rows (the demo catalog's own tables, dumped as CSV) into the same schema: an empty tuiexport
database with every index, the offer-mask triggers and the full-text table in place, each table
with ``.import`` (one transaction per table; the full-text rows go through a staging table, as
``.import`` cannot set the rowid). Ours is the whole CLI process, interpreter start included.

Every measurement starts from a fresh copy of the same empty database, in its own process; wall
time, CPU seconds (user + system of the process and its children) and peak RSS are measured
around it. Pairs are interleaved (shell, ours, shell, ours, ...) and the median of the pairs'
ratios is reported, with the load average: other work on the machine moves both alike. The target
is issue 15's: at most 1.3 times the shell's wall time, memory flat.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

TARGET = 1.3

#: (table, the CSV's columns in table order): the demo catalog's rows, for the shell.
TABLES = [
    ("supplier", "*"),
    ("manufacturer", "*"),
    ("product_type", "*"),
    ("product", "*"),
    ("product_text", "*"),
    ("supplier_item", "*"),
]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT)
    env.pop("TUIEXPORT_DB", None)
    return env


def _python(code: str, *args: str) -> None:
    subprocess.run([sys.executable, "-c", code, *args], check=True, env=_env())


def ensure_inputs(products: int) -> tuple[Path, Path, Path]:
    """(the JSON Lines file, the folder of CSV files for the shell, an empty tuiexport database)."""
    OUT.mkdir(parents=True, exist_ok=True)
    src = OUT / f"import-src-{products}.sqlite"
    jsonl = OUT / f"import-{products}.jsonl"
    csv_dir = OUT / f"import-{products}-csv"
    empty = OUT / "import-empty.sqlite"
    if not empty.exists():
        _python(
            "import sys; from tuiexport import setup, db;"
            "setup.prepare_database(sys.argv[1], load_sample=False); db.close_database()",
            str(empty),
        )
    if not jsonl.exists():
        if not src.exists():
            print(f"building a {products:,}-product demo catalog (once) …", file=sys.stderr)
            _python(
                "import sys; from tuiexport import setup, db;"
                "from tuiexport.catalog.demo import generate_demo;"
                "setup.prepare_database(sys.argv[1], load_sample=False);"
                "generate_demo(int(sys.argv[2]), seed=1); db.close_database()",
                str(src),
                str(products),
            )
        _python(
            "import sys; from tuiexport import setup, db;"
            "from tuiexport.catalog.dump import export_jsonl;"
            "setup.prepare_database(sys.argv[1], load_sample=False, create=False);"
            "export_jsonl(sys.argv[2]); db.close_database()",
            str(src),
            str(jsonl) + ".tmp",
        )
        os.replace(str(jsonl) + ".tmp", jsonl)
    if not (csv_dir / "done").exists():
        csv_dir.mkdir(exist_ok=True)
        for table, columns in TABLES:
            with open(csv_dir / f"{table}.csv", "wb") as out:
                subprocess.run(
                    ["sqlite3", "-csv", str(src), f"SELECT {columns} FROM {table} ORDER BY rowid"],
                    stdout=out,
                    check=True,
                )
        with open(csv_dir / "search.csv", "wb") as out:
            subprocess.run(
                [
                    "sqlite3",
                    "-csv",
                    str(src),
                    "SELECT rowid, text FROM product_search ORDER BY rowid",
                ],
                stdout=out,
                check=True,
            )
        (csv_dir / "done").touch()
    return jsonl, csv_dir, empty


def shell_script(csv_dir: Path) -> str:
    lines = [".bail on", ".mode csv"]
    for table, _ in TABLES:
        lines.append(f".import {csv_dir / (table + '.csv')} {table}")
    lines += [
        "CREATE TEMP TABLE search_rows (id INTEGER, text TEXT);",
        f".import {csv_dir / 'search.csv'} search_rows",
        "INSERT INTO product_search (rowid, text) SELECT id, text FROM search_rows;",
        "DROP TABLE search_rows;",
    ]
    return "\n".join(lines) + "\n"


def measure(command: list[str], *, stdin: str | None = None) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command,
        input=stdin.encode() if stdin is not None else None,
        check=True,
        env=_env(),
        stdout=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall": wall,
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "sys": after.ru_stime - before.ru_stime,
        # ru_maxrss of the children is the largest child so far: measured per process below.
        "rss_mb": after.ru_maxrss / 1024,
    }


def fresh_copy(empty: Path, target: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    shutil.copyfile(empty, target)


def peak_rss(command: list[str]) -> float:
    """Peak RSS (MB) of one run of ``command`` on its own (GNU time's view of it)."""
    time_bin = shutil.which("time") or "/usr/bin/time"
    if not Path(time_bin).exists():
        return float("nan")
    result = subprocess.run(
        [time_bin, "-f", "%M", *command], env=_env(), capture_output=True, text=True, check=True
    )
    return int(result.stderr.strip().splitlines()[-1]) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args(argv)
    if not shutil.which("sqlite3"):
        print("bench: the sqlite3 command-line shell is needed for the baseline.", file=sys.stderr)
        return 2
    jsonl, csv_dir, empty = ensure_inputs(args.products)
    script = shell_script(csv_dir)
    target = OUT / "import-target.sqlite"
    ours_cmd = [sys.executable, "-m", "tuiexport", "--db", str(target), "catalog", "import"]
    ours_cmd += [str(jsonl)]
    pairs = []
    print(
        f"catalog import, {args.products:,} products ({jsonl.stat().st_size / 1e6:,.0f} MB of "
        f"JSON Lines), load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    for i in range(args.pairs):
        fresh_copy(empty, target)
        shell = measure(["sqlite3", str(target)], stdin=script)
        fresh_copy(empty, target)
        ours = measure(ours_cmd)
        load = os.getloadavg()[0]
        pairs.append((shell, ours))
        print(
            f"  pair {i + 1}: shell {shell['wall']:6.1f} s wall {shell['cpu']:6.1f} s CPU "
            f"({shell['sys']:.1f} sys) · ours {ours['wall']:6.1f} s wall {ours['cpu']:6.1f} s "
            f"CPU ({ours['sys']:.1f} sys) · {ours['wall'] / shell['wall']:.2f}× wall, "
            f"{ours['cpu'] / shell['cpu']:.2f}× CPU · load {load:.1f}",
            flush=True,
        )
    fresh_copy(empty, target)
    rss = peak_rss(ours_cmd)
    wall = statistics.median(o["wall"] / s["wall"] for s, o in pairs)
    cpu = statistics.median(o["cpu"] / s["cpu"] for s, o in pairs)
    verdict = "meets" if wall <= TARGET else "misses"
    print(
        f"median of {len(pairs)} pairs: {wall:.2f}× the shell's wall time, {cpu:.2f}× its CPU "
        f"time ({verdict} the target ≤ {TARGET}×); peak RSS of our import {rss:.0f} MB; "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    for suffix in ("", "-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
