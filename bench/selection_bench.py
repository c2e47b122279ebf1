"""Selection counts and the impact of an edit, against a full count of the catalog, in one run.

    python bench/selection_bench.py                       # bench/out/demo-1000000.sqlite
    python bench/selection_bench.py --db PATH --rounds 7  # a copy of your own (it is migrated)

Each selection is counted with ``selection.count`` (what the selection tab's live count and
``selections show`` run) on one connection, interleaved with the baseline ``SELECT count(*)
FROM product`` (a scan of the narrowest product index: what any count costs at least), and
reported as medians of the rounds: wall and CPU seconds (SQLite runs in this process, so the
process's CPU time is the query's), and the wall ratio against the baseline of the same rounds.
On a busy machine wall time grows with the load while CPU time stays near the quiet figure:
compare both, and quote the load average printed above the table.

Targets (issue 15): ≤ 0.5 s for a selection of up to six rules plus text search at 1M products,
≤ 0.1 s for include/exclude lists of 1,000 ids, a few hundred ms to ~1 s for the impact of an
edit (``service.selection_impact``, the check before a selection is saved). The impact lines
count the edited rules too (the selection tab passes its live count instead); the saved rules'
count is kept per catalog version, so like an edit in an open tab they measure it warm (the
first impact of a tab costs one count more).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))

COUNT_TARGET_S = 0.5
LIST_TARGET_S = 0.1
IMPACT_TARGET_S = 1.0


def _selections(idents: list[str]) -> list[tuple[str, object, float]]:
    from tuiexport.selection import Criteria

    five = {
        "suppliers": "all",
        "only_in_stock": True,
        "only_with_price": True,
        "price_min": 100.0,
        "price_max": 2000.0,
        "search": "notebook",
    }
    rng = {"price_min": 100.0, "price_max": 2000.0}
    six = {
        "suppliers": "partners",
        "only_with_catalog_id": True,
        "only_in_stock": True,
        "only_new": True,
        "only_exportable_images": True,
        "price_min": 20.0,
        "price_max": 200.0,
    }
    return [
        ("5 rules + text (issue 15)", Criteria(**five), COUNT_TARGET_S),
        (
            "6 rules + text",
            Criteria(
                suppliers="partners",
                only_in_stock=True,
                only_with_price=True,
                only_new=True,
                only_exportable_images=True,
                price_min=50.0,
                price_max=500.0,
                search="samsung",
            ),
            COUNT_TARGET_S,
        ),
        (
            "6 rules + 2-word text",
            Criteria(
                suppliers="list",
                supplier_ids=[1, 2, 3],
                manufacturer_ids=[1, 2, 3, 4, 5],
                only_with_catalog_id=True,
                only_in_stock=True,
                price_max=1000.0,
                search="usb kabel",
            ),
            COUNT_TARGET_S,
        ),
        (
            "5 rules + text (bench/run.py)",
            Criteria(
                suppliers="partners",
                manufacturer_ids=[1, 2, 3],
                only_new=True,
                only_in_stock=True,
                search="usb",
            ),
            COUNT_TARGET_S,
        ),
        ("price range only (100–2000 €)", Criteria(suppliers="all", **rng), COUNT_TARGET_S),
        ("price max only (≤ 500 €)", Criteria(suppliers="all", price_max=500.0), COUNT_TARGET_S),
        ("in stock only", Criteria(suppliers="all", only_in_stock=True), COUNT_TARGET_S),
        (
            "in stock + price range, no text",
            Criteria(suppliers="all", only_in_stock=True, **rng),
            COUNT_TARGET_S,
        ),
        ("suppliers: partners (default)", Criteria(), COUNT_TARGET_S),
        ("suppliers: all", Criteria(suppliers="all"), COUNT_TARGET_S),
        (
            "suppliers: list of 3",
            Criteria(suppliers="list", supplier_ids=[1, 2, 3]),
            COUNT_TARGET_S,
        ),
        ("suppliers: partners + price range", Criteria(**rng), COUNT_TARGET_S),
        (
            "suppliers: list of 3 + price range",
            Criteria(suppliers="list", supplier_ids=[1, 2, 3], **rng),
            COUNT_TARGET_S,
        ),
        ("6 rules, no text", Criteria(**six), COUNT_TARGET_S),
        ("include 1,000 ids", Criteria(suppliers="all", include=idents), LIST_TARGET_S),
        ("exclude 1,000 ids", Criteria(suppliers="all", exclude=idents), LIST_TARGET_S),
        ("exclude 1,000 + 5 rules + text", Criteria(**five, exclude=idents), COUNT_TARGET_S),
        ("exclude 1,000 + 6 rules, no text", Criteria(**six, exclude=idents), COUNT_TARGET_S),
    ]


def _idents(db) -> list[str]:
    """1,000 identifiers spread over the catalog: a third each puids, EANs and SKUs."""
    rows = db.execute_sql(
        "SELECT puid, ean, manufacturer_sku FROM product WHERE puid % 997 = 0 "
        "AND ean IS NOT NULL AND manufacturer_sku IS NOT NULL ORDER BY puid LIMIT 1000"
    ).fetchall()
    return [str(row[i % 3]) for i, row in enumerate(rows)]


def _timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _impact_cases(service) -> list[tuple[str, Callable[[], object]]]:
    from tuiexport.selection import Criteria

    def stored(name: str, criteria: Criteria) -> int:
        for view in service.list_selections():
            if view.name == name:
                service.update_selection(view.id, criteria=criteria, name=name)
                return view.id
        return service.create_selection(criteria, name=name).id

    five = Criteria(
        suppliers="all",
        only_in_stock=True,
        only_with_price=True,
        price_min=100.0,
        price_max=2000.0,
        search="notebook",
    )
    saved_five = stored("bench: impact 5 rules", five)
    saved_partners = stored("bench: impact partners", Criteria())
    edited_five = Criteria(
        suppliers="partners",
        only_in_stock=True,
        only_with_price=True,
        price_min=150.0,
        price_max=1500.0,
        search="notebook",
    )
    return [
        (
            "impact: 5 rules + text, price edited",
            lambda: service.selection_impact(saved_five, edited_five),
        ),
        (
            "impact: partners -> in stock, 100-2000",
            lambda: service.selection_impact(
                saved_partners, Criteria(only_in_stock=True, price_min=100.0, price_max=2000.0)
            ),
        ),
        (
            "impact: partners -> all in stock",
            lambda: service.selection_impact(
                saved_partners, Criteria(suppliers="all", only_in_stock=True)
            ),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=OUT / "demo-1000000.sqlite")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    if not args.db.exists():
        sys.path.insert(0, str(ROOT / "bench"))
        from run import ensure_catalog  # the export bench builds and caches the catalogs

        if args.db != OUT / "demo-1000000.sqlite":
            raise SystemExit(f"{args.db} does not exist")
        ensure_catalog(1_000_000)

    from tuiexport import service, setup
    from tuiexport.selection import count

    db = setup.prepare_database(args.db, load_sample=False)  # migrates it (new indexes)
    products = db.execute_sql("SELECT count(*) FROM product").fetchone()[0]
    selections = _selections(_idents(db))
    impacts = _impact_cases(service)

    def baseline() -> object:
        return db.execute_sql("SELECT count(*) FROM product").fetchone()[0]

    cases: list[tuple[str, Callable[[], object], float]] = [
        (label, (lambda c=criteria: count(c)), target) for label, criteria, target in selections
    ] + [(label, fn, IMPACT_TARGET_S) for label, fn in impacts]
    for _, fn, _ in cases:  # warm the page cache once, so that every round measures the same
        fn()
    rows: dict[str, list[tuple[float, float, float, object]]] = {label: [] for label, *_ in cases}
    for _ in range(args.rounds):
        for label, fn, _ in cases:  # interleaved: baseline, case, baseline, case …
            base_wall, _cpu, _n = _timed(baseline)
            wall, cpu, result = _timed(fn)
            rows[label].append((wall, cpu, base_wall, result))

    load = os.getloadavg()
    print(
        f"\nSelection counts at {products:,} products ({args.db.name}), medians of "
        f"{args.rounds} interleaved rounds; load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f} on {os.cpu_count()} cores\n"
    )
    print(
        f"| {'selection':40} | {'products':>9} | {'wall s':>7} | {'CPU s':>6} | "
        f"{'baseline s':>10} | {'× baseline':>10} | target |"
    )
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 9}|{'-' * 8}|{'-' * 12}|{'-' * 12}|--------|")
    missed = 0
    for label, _, target in cases:
        measured = rows[label]
        wall = statistics.median(m[0] for m in measured)
        cpu = statistics.median(m[1] for m in measured)
        base = statistics.median(m[2] for m in measured)
        result = measured[-1][3]
        shown = result if isinstance(result, int) else getattr(result, "after", "")
        ok = "ok" if min(wall, cpu) <= target else "MISSED"
        missed += ok != "ok"
        print(
            f"| {label:40} | {shown:>9,} | {wall:7.3f} | {cpu:6.3f} | {base:10.4f} | "
            f"{wall / base:10.1f} | ≤ {target:g} s {ok} |"
        )
    print(
        "\nbaseline: SELECT count(*) FROM product on the same connection; a target is met when "
        "the median wall or CPU time is within it (CPU: the figure a quiet machine shows)."
    )
    if missed:
        print(f"{missed} target(s) missed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
