"""Export benchmark: our formats against the sqlite3 shell on the same catalog, in one run.

    python bench/run.py                 # 100k and 1M demo products (builds them once)
    python bench/run.py --quick         # 100k only
    python bench/run.py --products 250000 --formats standard/csv,standard/jsonl
    python bench/run.py --validate both --products 1000000 --repeat 3   # validation off vs on

Catalogs live in bench/out/ (git-ignored) and are reused. Every measurement runs in its own
process: wall time is measured around the whole process (interpreter start included for ours);
CPU seconds are the whole process tree's (``RUSAGE_CHILDREN`` around the child: the export's
worker processes, or the shell's pipeline, included); peak RSS is the process *tree's*: the sum of
the resident sizes of the child and all its descendants, sampled every 20 ms (``tree_mb``), beside
the largest single process (``peak_mb``). The baselines are the sqlite3 command-line shell
exporting the equivalent query (the standard profile's columns, raw) with ``-csv -header``, and
the same piped through ``gzip -1``. Ratios compare against those; the targets come from issue 2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Catalogs and work folders; TUIEXPORT_BENCH_OUT moves them (two benches side by side).
OUT = Path(os.environ.get("TUIEXPORT_BENCH_OUT") or ROOT / "bench" / "out")
sys.path.insert(0, str(ROOT))

FORMATS = ["standard/csv", "standard/json", "standard/jsonl", "standard/xml", "bmecat12/xml"]
EXTRA_FORMATS = ["standardUpdate/csv", "developer/csv", "developer/jsonl", "standard/xlsx"]
#: (baseline, max ratio of the wall time) per format, from issue 15.
TARGETS = {
    "standard/csv": ("shell|gzip -1", 1.5),
    "standard/json": ("shell", 1.5),
    "standard/jsonl": ("shell", 1.2),
    "standard/xml": ("shell", 2.0),
    "bmecat12/xml": ("shell", 2.0),
}
RSS_LIMIT_MB = 150
COUNT_LIMIT_S = 0.5

# The standard profile's product and supplier-item columns, raw: what "rows out of SQLite into a
# file" costs without any formatting of ours.
BASELINE_SQL = """
SELECT p.puid, p.ean, p.manufacturer_sku, m.name, pt.name, pt.group_code,
       NULLIF(t.name, ''), NULLIF(t.short_description, ''), NULLIF(t.long_description, ''),
       p.qualification, p.condition, CASE WHEN p.image_exportable THEN p.image_url END,
       p.weight, p.eclass, p.created, p.updated
FROM product p
LEFT JOIN manufacturer m ON m.id = p.manufacturer_id
LEFT JOIN product_type pt ON pt.id = p.product_type_id
LEFT JOIN product_text t ON t.product_id = p.puid AND t.lang = 'de'
ORDER BY p.puid;
SELECT si.product_id, s.name, si.supplier_sku, si.price, si.currency, si.stock, si.stock_status,
       si.condition, si.updated
FROM supplier_item si JOIN supplier s ON s.id = si.supplier_id
ORDER BY si.product_id, si.supplier_id;
"""


# --- children (each measurement in a fresh process) ----------------------------------------


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu(who=resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child_export(db: str, export_id: str, target: str, manifest: str = "manifest") -> dict:
    from tuiexport import setup
    from tuiexport.engine import run_export
    from tuiexport.exporters import registry, validate

    if manifest == "no-manifest":  # what the fingerprints cost (--manifest-cost): none kept
        registry.supports_delta = lambda profile, output: False

    # The validation step timed where it runs (the engine calls validate.artifact): its own
    # wall and CPU seconds, which other load on the machine disturbs far less than the
    # difference of two whole exports.
    spent = {"validate_s": 0.0, "validate_cpu_s": 0.0}
    check = validate.artifact

    def timed(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return check(*args, **kwargs)
        finally:
            spent["validate_s"] += time.perf_counter() - wall
            spent["validate_cpu_s"] += time.process_time() - cpu

    validate.artifact = timed
    setup.prepare_database(db, load_sample=False)
    run = run_export(export_id, trigger="cli", output_path=target)
    return {
        **spent,
        "status": run.status,
        "products": run.product_count,
        "size": run.size,
        "messages": run.messages[:3],
        "peak_mb": max(_peak_mb(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024),
    }


def child_count(db: str) -> dict:
    from tuiexport import setup
    from tuiexport.selection import count

    setup.prepare_database(db, load_sample=False)
    criteria = count_criteria()
    times, n = [], 0
    for _ in range(3):
        t = time.perf_counter()
        n = count(criteria)
        times.append(time.perf_counter() - t)
    return {"count": n, "first_s": times[0], "best_s": min(times), "peak_mb": _peak_mb()}


def count_criteria():
    from tuiexport.selection import Criteria

    # Five rules, text search included.
    return Criteria(
        suppliers="partners",
        manufacturer_ids=[1, 2, 3],
        only_new=True,
        only_in_stock=True,
        search="usb",
    )


def child_shell(command: str) -> dict:
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return {
        "peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def child_generate(db: str, products: int) -> dict:
    from tuiexport import db as dbmod
    from tuiexport import setup
    from tuiexport.catalog.demo import generate_demo

    setup.prepare_database(db, load_sample=False)
    stats = generate_demo(products, seed=1)
    dbmod.close_database()
    return {"seconds": stats.seconds, "supplier_items": stats.supplier_items}


def child_setup(db: str, products: int) -> dict:
    """Create (once) a selection of every product and one definition per format."""
    from tuiexport import service, setup
    from tuiexport.selection import Criteria

    setup.prepare_database(db, load_sample=False)
    by_name = {d.name: d.export_id for d in service.list_definitions()}
    selection = None
    ids = {}
    for fmt in FORMATS + EXTRA_FORMATS:
        name = f"bench {fmt}"
        if name not in by_name:
            if selection is None:
                selection = service.create_selection(Criteria(suppliers="all"), name="bench: all")
            profile, output = fmt.split("/")
            by_name[name] = service.create_definition(
                name, selection_id=selection.id, profile=profile, output=output, language="de"
            ).export_id
        ids[fmt] = by_name[name]
        # The same definition with validation off (issue 11): --validate both compares the two.
        off = f"{name} (validation off)"
        if off not in by_name:
            profile, output = fmt.split("/")
            d = service.create_definition(
                off,
                selection_id=service.get_definition(by_name[name]).selection_id,
                profile=profile,
                output=output,
                language="de",
            )
            by_name[off] = service.update_definition(
                d.export_id, options={"validate": False}
            ).export_id
        ids[f"{fmt} off"] = by_name[off]
    return {"ids": ids}


CHILDREN = {
    "export": child_export,
    "count": child_count,
    "shell": child_shell,
    "generate": child_generate,
    "setup": child_setup,
}


# --- the parent ----------------------------------------------------------------------------


_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def _tree_rss_mb(root: int) -> float:
    """Resident size of ``root`` and all its descendants (Linux /proc), in MB."""
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm") as f:
                total += int(f.read().split()[1]) * _PAGE_MB
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue  # ended meanwhile
    return total


class TreeSampler:
    """Peak resident size of a process tree, sampled on a thread of the parent."""

    def __init__(self, pid: int, every: float = 0.02):
        self.pid, self.every, self.peak = pid, every, 0.0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.wait(self.every):
            self.peak = max(self.peak, _tree_rss_mb(self.pid))

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return self.peak


def spawn(kind: str, *args, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *map(str, args)]
    before = _cpu(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sampler = TreeSampler(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - t
    tree = sampler.stop()
    if proc.returncode != 0:
        raise SystemExit(f"bench child {kind} failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = wall
    # Every descendant was waited for by its parent, so its CPU is in RUSAGE_CHILDREN here.
    result["cpu_s"] = _cpu(resource.RUSAGE_CHILDREN) - before
    result["tree_mb"] = tree
    return result


def ensure_catalog(products: int) -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"demo-{products}.sqlite"
    if not path.exists():
        tmp = path.with_suffix(".building.sqlite")
        for leftover in OUT.glob(tmp.name + "*"):
            leftover.unlink()
        print(f"building a demo catalog of {products:,} products in {path} …", flush=True)
        r = spawn("generate", tmp, products)
        print(
            f"  built in {r['wall_s']:.1f} s ({r['supplier_items']:,} supplier items)", flush=True
        )
        os.replace(tmp, path)
    return path


def _workplace(products: int, name: str) -> tuple[Path, Path, dict[str, str]]:
    """The catalog of ``products``, an empty work folder ``name-products`` and the environment
    of the children that export from that catalog into that folder."""
    db = ensure_catalog(products)
    work = OUT / f"{name}-{products}"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    env = dict(os.environ)
    env.update(
        TUIEXPORT_HOME=str(work / "home"),
        TUIEXPORT_DB=str(db),
        TUIEXPORT_CONTRACT_LIMIT=str(max(products, 200_000) * 2),
    )
    env.pop("TUIEXPORT_CONFIG", None)
    return db, work, env


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    sqlite = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()
    return (
        f"{os.cpu_count()} × {model}, Python {platform.python_version()}, "
        f"sqlite3 shell {sqlite[0] if sqlite else '?'}, load average {os.getloadavg()[0]:.1f} at start"
    )


def _median(runs: list[dict]) -> dict:
    """The median of every figure over the runs (the first run's other values)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            out[key] = statistics.median(r[key] for r in runs)
    out["runs"] = len(runs)
    return out


#: What ``--validate`` runs of each format: the export with validation on, off, or both.
VALIDATE_CHOICES = {"on": ("",), "off": (" off",), "both": (" off", "")}
#: The variant ``--manifest-cost`` adds: validation off, and no fingerprint manifest kept.
NO_MANIFEST = " off, no manifest"


def bench_size(
    products: int,
    formats: list[str],
    keep: bool,
    repeat: int = 1,
    tuning: str = "",
    validate: str = "both",
    manifest_cost: bool = False,
) -> list[dict]:
    db, work, env = _workplace(products, "run")
    ids = spawn("setup", db, products, env=env)["ids"]

    rows: list[dict] = []
    sql_file = work / "baseline.sql"
    sql_file.write_text(BASELINE_SQL)
    shells = {
        "shell": f"sqlite3 -csv -header {db} < {sql_file} > {work / 'shell.csv'}",
        "shell|gzip -1": f"sqlite3 -csv -header {db} < {sql_file} | gzip -1 > {work / 'shell.csv.gz'}",
    }
    # Warm the page cache once so that neither side pays for the first read of the file.
    subprocess.run(f"cat {db} > /dev/null", shell=True, check=True)
    export_env = dict(env)
    if tuning:
        export_env["TUIEXPORT_TUNING"] = tuning
    # Interleaved pairs: each export right after the baseline it is compared with; the table
    # shows the medians of ``repeat`` pairs (other work on the machine hits both alike).
    # With validation off and on (issue 11's read-back), each against the same baseline run.
    variants = VALIDATE_CHOICES[validate] + ((NO_MANIFEST,) if manifest_cost else ())
    base_runs: dict[str, list[dict]] = {name: [] for name in shells}
    runs: dict[str, list[dict]] = {fmt + v: [] for fmt in formats for v in variants}
    for _ in range(repeat):
        for fmt in formats:
            baseline, _limit = TARGETS.get(fmt, ("shell", None))
            b = spawn("shell", shells[baseline], env=env)
            out_file = work / ("shell.csv.gz" if "gzip" in baseline else "shell.csv")
            b["size"] = out_file.stat().st_size
            base_runs[baseline].append(b)
            profile, output = fmt.split("/")
            target = work / f"{profile}.{'zip' if output == 'csv' else output}"
            for variant in variants:
                if variant == NO_MANIFEST:
                    args = (ids[fmt + " off"], target, "no-manifest")
                else:
                    args = (ids[fmt + variant], target)
                r = spawn("export", db, *args, env=export_env)
                r["ratio"] = r["wall_s"] / b["wall_s"]
                r["cpu_ratio"] = r["cpu_s"] / b["cpu_s"]
                r["load"] = os.getloadavg()[0]
                runs[fmt + variant].append(r)
                label = fmt + _variant_label(variant)
                print(
                    f"  {label:33s} {r['wall_s']:7.2f} s  {r['ratio']:5.2f}× {baseline}  "
                    f"CPU {r['cpu_s']:6.2f} s {r['cpu_ratio']:5.2f}×  tree {r['tree_mb']:6.1f} MB  "
                    f"{r['status']}  (load {r['load']:.1f})",
                    flush=True,
                )
                if not keep:
                    target.unlink(missing_ok=True)
    for p in work.glob("shell.csv*"):
        p.unlink()
    labels = {"shell": "sqlite3 -csv -header", "shell|gzip -1": "sqlite3 -csv -header \\| gzip -1"}
    for name, done in base_runs.items():
        if done:
            rows.append({"what": labels[name], "baseline_name": name, **_median(done)})
    for key, done in runs.items():
        fmt = key.removesuffix(NO_MANIFEST).removesuffix(" off")
        baseline, limit = TARGETS.get(fmt, ("shell", None))
        what = fmt + _variant_label(key[len(fmt) :])
        loads = [r["load"] for r in done]
        rows.append(
            {
                "what": what,
                "format": fmt,
                "baseline": baseline,
                "target": limit,
                **_median(done),
                "loads": f"{min(loads):.1f}–{max(loads):.1f}",
            }
        )

    c = spawn("count", db, env=env)
    rows.append({"what": "count: 5 rules + text search", **c})
    if not keep:
        shutil.rmtree(work / "home", ignore_errors=True)
    return rows


def _variant_label(variant: str) -> str:
    if variant == NO_MANIFEST:
        return " (validation off, no manifest)"
    return " (validation off)" if variant else ""


def report(results: dict[int, list[dict]]) -> str:
    lines = []
    for products, rows in results.items():
        lines.append(f"\n### {products:,} products\n")
        lines.append(
            "| What | Wall s | Ratio (wall) | Target | CPU s (tree) | Ratio (CPU) "
            "| Validation wait s | Tree peak RSS MB | Largest process MB | Output MB "
            "| Load average | Status |"
        )
        lines.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
        for r in rows:
            if r["what"].startswith("count"):
                ok = "ok" if r["best_s"] <= COUNT_LIMIT_S else "MISSED"
                lines.append(
                    f"| {r['what']} ({r['count']:,} products) | {r['best_s']:.3f} (first {r['first_s']:.3f}) "
                    f"| | ≤ {COUNT_LIMIT_S} s: {ok} | | | | | | | | |"
                )
                continue
            base = r.get("baseline", r.get("baseline_name", ""))
            ratio = f"{r['ratio']:.2f}× {base}" if "ratio" in r else "1.00×"
            cpu_ratio = f"{r['cpu_ratio']:.2f}×" if "cpu_ratio" in r else "1.00×"
            target = ""
            if r.get("target"):
                target = f"≤ {r['target']}×: {'ok' if r['ratio'] <= r['target'] else 'MISSED'}"
            size = f"{r['size'] / 1e6:.0f}" if r.get("size") else ""
            wait = f"{r['validate_s']:.2f}" if r.get("validate_s") else ""
            lines.append(
                f"| {r['what']} | {r['wall_s']:.2f} | {ratio} | {target} | {r['cpu_s']:.2f} | "
                f"{cpu_ratio} | {wait} | {r['tree_mb']:.0f} | {r['peak_mb']:.0f} | {size} | "
                f"{r.get('loads', '')} | {r.get('status', '')} |".replace(
                    "shell|gzip", "shell \\| gzip"
                )
            )
        lines.append(
            f"\nMedians of {max(r.get('runs', 1) for r in rows if 'target' in r)} interleaved "
            f"pair(s) per format (baselines: of all their runs); process-tree peak RSS "
            f"target ≤ {RSS_LIMIT_MB} MB:\n"
        )
        for r in rows:
            if r.get("format") in FORMATS + EXTRA_FORMATS:
                ok = "ok" if r["tree_mb"] <= RSS_LIMIT_MB else "MISSED"
                lines.append(f"- {r['what']}: {r['tree_mb']:.0f} MB {ok}")
        by_what = {r["what"]: r for r in rows}
        costs = [
            (r["format"], by_what.get(r["format"] + _variant_label(" off")), r)
            for r in rows
            if r["what"].endswith(_variant_label(NO_MANIFEST))
        ]
        if costs:
            lines.append("\nWhat the fingerprint manifests cost (validation off, medians):\n")
        for fmt, with_, without in costs:
            if with_ is not None:
                lines.append(
                    f"- {fmt}: wall {without['wall_s']:.2f} → {with_['wall_s']:.2f} s "
                    f"({with_['wall_s'] / without['wall_s'] - 1:+.0%}), CPU (tree) "
                    f"{without['cpu_s']:.2f} → {with_['cpu_s']:.2f} s "
                    f"({with_['cpu_s'] / without['cpu_s'] - 1:+.0%}), tree RSS "
                    f"{without['tree_mb']:.0f} → {with_['tree_mb']:.0f} MB"
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, action="append", help="catalog size (repeatable)")
    parser.add_argument("--quick", action="store_true", help="100k products only")
    parser.add_argument("--formats", help="comma-separated profile/output list")
    parser.add_argument("--all", action="store_true", help="also standardUpdate and developer")
    parser.add_argument("--keep", action="store_true", help="keep the exported files in bench/out")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved pairs per format")
    parser.add_argument(
        "--tuning",
        default="",
        help="writer tuning for the exports, as JSON (e.g. '{\"generic_path\": true}')",
    )
    parser.add_argument(
        "--validate",
        choices=sorted(VALIDATE_CHOICES),
        default="both",
        help="run each export with validation on, off or both (default), against one baseline",
    )
    parser.add_argument(
        "--manifest-cost",
        action="store_true",
        help="also run each export with validation off and no fingerprint manifest kept",
    )
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, *rest = args.child
        fn = CHILDREN[kind]
        params = [int(x) if x.isdigit() and kind in ("generate", "setup") else x for x in rest]
        print(json.dumps(fn(*params)))
        return 0
    if not shutil.which("sqlite3"):
        print("bench: the sqlite3 command-line shell is needed for the baselines.", file=sys.stderr)
        return 2
    sizes = args.products or ([100_000] if args.quick else [100_000, 1_000_000])
    formats = (
        args.formats.split(",") if args.formats else FORMATS + (EXTRA_FORMATS if args.all else [])
    )
    print(f"machine: {machine()}", flush=True)
    print(
        f"command: python bench/run.py {' '.join(argv if argv is not None else sys.argv[1:])}".rstrip()
    )
    results = {}
    for n in sizes:
        print(f"\n{n:,} products", flush=True)
        results[n] = bench_size(
            n, formats, args.keep, args.repeat, args.tuning, args.validate, args.manifest_cost
        )
    print(report(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
