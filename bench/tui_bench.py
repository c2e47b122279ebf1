"""TUI responsiveness, measured with the Pilot (headless, real compositor, real SQLite).

500 export definitions and 100,000 history rows on a demo catalog; prints
- first paint: App start → first frame, and → definitions and history on screen;
- key latency (key press → next frame) median / p95 for cursor moves and row expansion;
- key latency while an export of the whole catalog runs in its worker, and its ratio to idle.

    .venv/bin/python bench/tui_bench.py [--products 200000] [--keys 200]

The budget (issue 4): first paint ≤ 1.5 s, median ≤ 50 ms, p95 ≤ 150 ms, during a run ≤ 2× idle.
A benchmark, not a test: it prints, it does not assert.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path


def build(home: Path, products: int, definitions: int, runs: int) -> dict:
    os.environ["TUIEXPORT_HOME"] = str(home)
    # The whole catalog is exported, whatever its size (the default contract limit is 200,000).
    os.environ.setdefault("TUIEXPORT_CONTRACT_LIMIT", "100000000")
    from tuiexport import config, service
    from tuiexport.catalog.demo import generate_demo
    from tuiexport.models import Run
    from tuiexport.selection import Criteria

    config.reset_settings()
    reuse = (home / "bench.sqlite").exists()
    service.prepare_database(home / "bench.sqlite", load_sample=False)
    if reuse:  # built by an earlier run with --home
        from tuiexport.catalog.stats import catalog_stats

        big = service.get_definition("Whole catalog run")
        return {
            "demo_seconds": 0.0,
            "big_export": big.export_id,
            "reused": str(home),
            "products_in_catalog": catalog_stats().products,
            "definitions_in_db": len(service.list_definitions()),
            "history_rows_in_db": service.count_history(),
        }
    t = time.perf_counter()
    generate_demo(products)
    demo_s = time.perf_counter() - t
    everything = service.create_selection(Criteria(suppliers="all"), name="Whole catalog")
    partners = service.create_selection(Criteria(suppliers="partners", only_in_stock=True))
    pairs = service.valid_pairs()
    ids = []
    for i in range(definitions):
        profile, output = pairs[i % len(pairs)]
        view = service.create_definition(
            f"Export {i:03d} [{profile}]",
            selection_id=(everything if i % 2 else partners).id,
            profile=profile,
            output=output,
        )
        ids.append((view.export_id, view.name))
    start = datetime(2025, 1, 1)
    statuses = ("success", "success", "success", "warning", "failed", "cancelled")
    batch = []
    for i in range(runs):
        export_id, name = ids[i % len(ids)]
        began = start + timedelta(minutes=5 * i)
        batch.append(
            {
                "log_id": f"B{i:09d}",
                "export_id": export_id,
                "export_name": name,
                "trigger": "cli",
                "status": statuses[i % len(statuses)],
                "started": began,
                "finished": began + timedelta(seconds=30),
                "heartbeat": began,
                "api_version": "",
                "profile": "standard",
                "output": "csv",
                "file_format": "standard CSV (ZIP)",
                "product_count": 1000 + i % 5000,
                "size": 10_000 + i,
            }
        )
        if len(batch) == 5000:
            Run.insert_many(batch).execute()
            batch = []
    if batch:
        Run.insert_many(batch).execute()
    big = service.create_definition(
        "Whole catalog run", selection_id=everything.id, profile="standard", output="jsonl"
    )
    return {"demo_seconds": round(demo_s, 1), "big_export": big.export_id}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(keys: int, big_export: str, size: tuple[int, int]) -> dict:
    from textual import events

    from tuiexport.app import ExportApp

    frames: list[float] = []
    app = ExportApp(server_url="http://127.0.0.1:8421")
    original = app._display

    def display(screen, renderable):
        if renderable is not None:
            frames.append(time.perf_counter())
        return original(screen, renderable)

    app._display = display
    started = time.perf_counter()
    result: dict = {}
    async with app.run_test(size=size) as pilot:
        while not frames:
            await asyncio.sleep(0.001)
        result["first_frame_s"] = frames[0] - started
        screen = app.screen
        while not (screen.exports.loaded and screen.exports.history.row_count):
            await asyncio.sleep(0.005)
        await pilot.pause()
        result["data_on_screen_s"] = time.perf_counter() - started

        async def latency(key: str) -> float:
            """Key event in (as the terminal driver delivers it) → next frame out.

            Not Pilot.press: it waits until the process is idle by CPU time, which a running
            export in another thread never is."""
            before = len(frames)
            char = key if len(key) == 1 else None
            t = time.perf_counter()
            app._driver.send_message(events.Key(key, char))
            deadline = t + 5.0
            while len(frames) == before and time.perf_counter() < deadline:
                await asyncio.sleep(0.0005)
            latency = (frames[before] if len(frames) > before else time.perf_counter()) - t
            await asyncio.sleep(0.02)  # a fast typist's gap; lets follow-up frames finish
            return latency

        async def series(pattern: list[str], n: int) -> list[float]:
            return [await latency(pattern[i % len(pattern)]) for i in range(n)]

        moves = ["down"] * 40 + ["up"] * 40
        result["idle_move"] = await series(moves, keys)
        # Expand and collapse (enter toggles; escape from the editor closes it again).
        expand = []
        for _i in range(max(keys // 4, 10)):
            expand.append(await latency("enter"))
            await latency("escape")
            await latency("down")
        result["idle_expand"] = expand

        lst = screen.exports.definitions
        lst.move_cursor(lst.index_of(big_export))
        await pilot.pause()
        await latency("f5")
        bar = screen.downloads
        # The big export is the last row: start upwards, so that every key press moves the cursor
        # (a "down" on the last row changes nothing and would only time the next progress frame).
        moves_back = ["up"] * 40 + ["down"] * 40
        during, t_run = [], time.perf_counter()
        while bar.running and len(during) < keys:
            during.append(await latency(moves_back[len(during) % len(moves_back)]))
        result["during_run_move"] = during
        result["during_run_still_running"] = bar.running
        while bar.running:
            await asyncio.sleep(0.05)
        result["export_seconds"] = time.perf_counter() - t_run
        result["notes"] = [str(n.message) for n in app._notifications][-3:]
    return result


def summarise(name: str, values: list[float]) -> dict:
    return {
        "n": len(values),
        "median_ms": round(statistics.median(values) * 1000, 1) if values else None,
        "p95_ms": round(percentile(values, 95) * 1000, 1) if values else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200_000)
    parser.add_argument("--definitions", type=int, default=500)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=200)
    parser.add_argument("--size", default="160x48", help="terminal WIDTHxHEIGHT (default 160x48)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    parser.add_argument(
        "--home", help="keep the data in this folder and reuse it next time (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tui-bench-") as tmp:
        home = Path(args.home or tmp).expanduser().resolve()
        home.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        setup = build(home, args.products, args.definitions, args.runs)
        setup["setup_seconds"] = round(time.perf_counter() - t, 1)
        width, height = (int(n) for n in args.size.lower().split("x"))
        raw = asyncio.run(measure(args.keys, setup.pop("big_export"), (width, height)))
    idle = summarise("idle", raw["idle_move"])
    during = summarise("during", raw["during_run_move"])
    figures = {
        "terminal": args.size,
        "products": setup.pop("products_in_catalog", args.products),
        "definitions": setup.pop("definitions_in_db", args.definitions),
        "history_rows": setup.pop("history_rows_in_db", args.runs),
        **setup,
        "first_frame_s": round(raw["first_frame_s"], 3),
        "data_on_screen_s": round(raw["data_on_screen_s"], 3),
        "cursor_move": idle,
        "expand": summarise("expand", raw["idle_expand"]),
        "cursor_move_during_export": during,
        "during_vs_idle_median": round(during["median_ms"] / idle["median_ms"], 2)
        if during["n"]
        else None,
        "export_seconds": round(raw["export_seconds"], 1),
        "notifications": raw["notes"],
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:28} {value}")
    return figures


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
