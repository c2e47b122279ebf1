"""The export's worker processes: importable standard-library-only modules, run by import path."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tuiexport
from tuiexport.exporters import bmecat_mapping, fingerprints, parallel, text, worker

PACKAGE = Path(tuiexport.__file__).resolve().parent
#: What a worker process imports of ours: the worker, its handlers and what they import.
WORKER_MODULES = [worker.__name__, fingerprints.__name__, bmecat_mapping.__name__, text.__name__]


def test_worker_modules_import_only_the_standard_library():
    probe = (
        "import sys, json\n"
        f"for name in {WORKER_MODULES!r}:\n"
        "    __import__(name)\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    out = subprocess.run(
        # As the worker starts (see parallel._ProcessLane): -E -s, the package root as cwd.
        [sys.executable, "-E", "-s", "-X", "importtime", "-c", probe],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(json.loads(out.stdout))
    for heavy in ("peewee", "msgspec", "textual", "rich", "lxml", "psycopg2"):
        assert heavy not in loaded, heavy
    ours = {m for m in loaded if m.split(".")[0] == "tuiexport"}
    assert ours == {"tuiexport", "tuiexport.exporters", *WORKER_MODULES}
    # -X importtime lists what was imported from where: ours came from this source tree.
    assert "import time:" in out.stderr and "tuiexport.exporters.worker" in out.stderr


def test_no_source_strings_are_executed_anywhere_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ("exec", "eval", "compile"), f"{path}:{node.lineno}"


def _sqlite(tmp_path: Path) -> str:
    import sqlite3

    path = tmp_path / "w.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (n INTEGER PRIMARY KEY, s TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(50)])
    return f"file:{path}?mode=ro"


@pytest.mark.parametrize("lane", [parallel._ProcessLane, parallel._ThreadLane])
def test_ordered_map_gives_results_in_task_order(tmp_path, lane):
    sql = "SELECT t.n, t.s FROM json_each(?1) AS c JOIN t ON t.n = c.value ORDER BY t.n"
    uri = _sqlite(tmp_path)
    lanes = [lane(uri, sql, "") for _ in range(2)]
    try:
        tasks = [json.dumps(list(range(i, i + 5))) for i in range(0, 50, 5)]
        results = list(parallel.ordered_map(lanes, tasks, window=4))
    finally:
        for each in lanes:
            each.close()
    assert [row[0] for chunk in results for row in chunk] == list(range(50))
    assert results[0][0] == (0, "v0")


def test_a_failing_worker_is_one_sentence(tmp_path):
    lane = parallel._ProcessLane(_sqlite(tmp_path), "SELECT * FROM no_such_table", "")
    try:
        result = lane.submit("[1]")
        with pytest.raises(RuntimeError, match=r"^Export worker failed: OperationalError: no such"):
            result()
    finally:
        lane.close()
    assert lane.proc.returncode is not None
