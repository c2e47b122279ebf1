"""PostgreSQL (the big-installation database): same service, same files as SQLite.

Starts a throw-away PostgreSQL cluster on a loopback port from the machine's PostgreSQL binaries;
skipped (with the reason) only where PostgreSQL is not installed.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg_cluster import running_cluster
from tuiexport import db as dbmod
from tuiexport import service, setup
from tuiexport.catalog.demo import generate_demo
from tuiexport.selection import Criteria

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with running_cluster() as cluster:
        yield cluster.url


def _build(target: str) -> dict[tuple[str, str], bytes]:
    """The same demo catalog and one definition per format; returns each format's file."""
    setup.prepare_database(target, load_sample=False)
    generate_demo(250, seed=11)
    everything = service.create_selection(Criteria(suppliers="all"))
    files = {}
    for profile, output in service.valid_pairs():
        d = service.create_definition(
            f"{profile}-{output}", selection_id=everything.id, profile=profile, output=output
        )
        run = service.run_export(d.export_id)
        assert run.status in ("success", "warning"), run.messages
        files[(profile, output)] = Path(run.artifact_path).read_bytes()
    picky = Criteria(
        suppliers="partners",
        only_in_stock=True,
        only_with_price=True,
        search="Gerät",
        price_min=10,
        price_max=5000,
        exclude=["1"],
    )
    files[("count", "")] = str(service.count_products(picky)).encode()
    files[("preview", "")] = json.dumps(
        [[r.puid, r.name, r.price] for r in service.preview(picky, n=10)]
    ).encode()
    dbmod.close_database()
    return files


def _comparable(key: tuple[str, str], data: bytes) -> object:
    """The file minus what differs by design between two runs (IDs, log ID, timestamps)."""
    _profile, output = key
    if output == "csv":
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {n: z.read(n) for n in z.namelist()}
    if output == "xlsx":  # docProps/core.xml holds the run's start time
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return {n: z.read(n) for n in z.namelist() if n != "docProps/core.xml"}
    if output == "json":
        doc = json.loads(data)
        doc.pop("meta", None)
        return doc
    if output == "xml":
        text = data.decode()
        text = re.sub(r"<meta>.*?</meta>", "", text, flags=re.S)
        return re.sub(r"<HEADER>.*?</HEADER>", "", text, flags=re.S)
    return data


def test_postgresql_gives_the_same_files_as_sqlite(pg_url, tmp_path):
    on_pg = _build(pg_url)
    on_sqlite = _build(str(tmp_path / "same.sqlite"))
    assert set(on_pg) == set(on_sqlite)
    for key in on_pg:
        assert _comparable(key, on_pg[key]) == _comparable(key, on_sqlite[key]), key
    assert int(on_pg[("count", "")]) > 0
