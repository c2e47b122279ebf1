"""Rebuild ``tuiexport/data/sample-catalog.jsonl.gz``: the demo catalog (seed 1) in the import schema.

    .venv/bin/python bench/make_sample.py [PRODUCTS]

Reproducible: the same product count gives the same bytes (demo generation is deterministic,
the gzip header carries no time or name).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tuiexport import db, setup
from tuiexport.catalog.demo import generate_demo
from tuiexport.catalog.dump import export_jsonl
from tuiexport.setup import sample_catalog

SAMPLE_CATALOG = Path(str(sample_catalog()))

PRODUCTS = 2_500


def main(products: int = PRODUCTS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setup.prepare_database(Path(tmp) / "sample.sqlite", load_sample=False)
        try:
            generate_demo(products, seed=1)
            records = export_jsonl(SAMPLE_CATALOG)
        finally:
            db.close_database()
    print(f"{SAMPLE_CATALOG}: {records:,} records, {SAMPLE_CATALOG.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else PRODUCTS)
