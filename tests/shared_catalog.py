"""A demo catalog on a real SQLite file shared by several processes, and how to run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tuiexport import db as dbmod
from tuiexport import service, setup
from tuiexport.selection import Criteria


def tx(home: Path, *args: str, timeout: float = 120, **kw: Any) -> subprocess.CompletedProcess[str]:
    """``tuiexport ARGS`` in a child process with its own TUIEXPORT_HOME (``kw``: more
    ``subprocess.run`` arguments)."""
    env = {**os.environ, "TUIEXPORT_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "tuiexport", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        **kw,
    )


def make_catalog(path: Path | str, products: int) -> None:
    """A demo catalog with a big export ("Big", JSON Lines), a BMEcat one ("Cat"), a small one
    ("Small", limit 50) and one that other processes keep changing ("Other")."""
    from tuiexport.catalog.demo import generate_demo

    setup.prepare_database(path, load_sample=False)
    generate_demo(products, seed=3)
    chosen = service.create_selection(Criteria(suppliers="all"), name="All")
    service.create_definition("Big", selection_id=chosen.id, profile="developer", output="jsonl")
    service.create_definition("Cat", selection_id=chosen.id, profile="bmecat12", output="xml")
    service.create_definition(
        "Small", selection_id=chosen.id, profile="standard", output="json", product_limit=50
    )
    service.create_definition("Other", selection_id=chosen.id, output="csv")
    dbmod.close_database()


def products_in(data: bytes) -> int:
    return sum(line.startswith(b'{"product":') for line in data.splitlines())
