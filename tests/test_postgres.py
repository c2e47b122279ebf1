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


def test_a_version_6_postgresql_database_gets_price_ranges_and_their_trigger(pg_url):
    """Schema version 7 on PostgreSQL: the price range columns, computed for every product,
    and the trigger function that keeps them."""
    import psycopg2

    from tuiexport import schema

    admin = psycopg2.connect(pg_url)
    admin.autocommit = True
    admin.cursor().execute("CREATE DATABASE v6")
    admin.close()
    url = pg_url.rsplit("/", 1)[0] + "/v6"
    ranges = (
        "SELECT p.puid, p.price_low, p.price_high, MIN(s.price), MAX(s.price) FROM product p "
        "LEFT JOIN supplier_item s ON s.product_id = p.puid AND s.price > 0 GROUP BY p.puid"
    )
    database = setup.prepare_database(url, load_sample=False)
    try:
        generate_demo(60, seed=3)
        database.execute_sql("DROP INDEX product_filter_puid")
        for column in ("price_low", "price_high"):
            database.execute_sql(f"ALTER TABLE product DROP COLUMN {column}")
        database.execute_sql(  # a version 6 trigger function, which knows no price range
            "CREATE OR REPLACE FUNCTION supplier_item_mask() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN RETURN NULL; END $$"
        )
        schema.set_meta("schema_version", "6")
        dbmod.close_database()
        database = setup.prepare_database(url, load_sample=False)
        assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
        rows = database.execute_sql(ranges).fetchall()
        assert any(low is not None for _, low, *_ in rows)
        assert all(row[1:3] == row[3:] for row in rows)
        database.execute_sql(
            "DELETE FROM supplier_item WHERE id IN (SELECT MIN(id) FROM supplier_item "
            "GROUP BY product_id)"
        )
        database.execute_sql("UPDATE supplier_item SET price = price * 3 WHERE mod(id, 2) = 0")
        rows = database.execute_sql(ranges).fetchall()
        assert all(row[1:3] == row[3:] for row in rows)
    finally:
        dbmod.close_database()


def test_served_download_rows_are_written_in_batches_on_postgresql(pg_url, tmp_path):
    """The recorder's prepared INSERT (runs.create_many) speaks PostgreSQL too: downloads of a
    share URL leave one history row each, copying their source run."""
    import urllib.request

    from tuiexport.server import start_server

    setup.prepare_database(pg_url, load_sample=False)
    generate_demo(30, seed=3)
    everything = service.create_selection(Criteria(suppliers="all"))
    d = service.create_definition("pg-served", selection_id=everything.id, output="jsonl")
    source = service.run_export(d.export_id)
    handle = start_server("127.0.0.1", 0, access_log=None)
    try:
        url = handle.url + service.share_path(d)
        bodies = {urllib.request.urlopen(url, timeout=30).read() for _ in range(5)}
        assert bodies == {Path(source.artifact_path).read_bytes()}
        assert handle.flush_history()
    finally:
        handle.stop(grace=0.5)
    rows = [r for r in service.list_history(20, export_id=d.export_id) if r.log_id != source.log_id]
    assert len(rows) == 5 and len({r.log_id for r in rows}) == 5
    assert {(r.status, r.sha256, r.size, r.trigger) for r in rows} == {
        (source.status, source.sha256, source.size, "api")
    }
    dbmod.close_database()
