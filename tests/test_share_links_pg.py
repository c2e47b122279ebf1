"""Named share links on PostgreSQL: a version 6 database keeps its share URLs as first links,
and links are revoked independently on a server that caches nothing (every request asks)."""

from __future__ import annotations

import http.client
from collections.abc import Iterator

import pytest

from tests.pg_cluster import running_cluster
from tests.server_helpers import TEST_LIMITS
from tuiexport import db as dbmod
from tuiexport import schema, service, setup
from tuiexport.catalog.demo import generate_demo
from tuiexport.selection import Criteria
from tuiexport.server import start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    with running_cluster() as cluster:
        yield cluster.url


def get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_a_version_6_postgresql_database_migrates_and_links_revoke_alone(pg_url):
    database = setup.prepare_database(pg_url, load_sample=False)
    generate_demo(50, seed=3)
    everything = service.create_selection(Criteria(suppliers="all"))
    export = service.create_definition(
        "Feed", selection_id=everything.id, profile="standard", output="jsonl"
    )
    # Make it look like version 6: one token per export, no links, no link columns.
    for sql in (
        "ALTER TABLE export_definition ADD COLUMN share_token VARCHAR(255) NOT NULL DEFAULT ''",
        "UPDATE export_definition SET share_token = (SELECT token FROM share_link "
        "WHERE share_link.export_id = export_definition.export_id)",
        "DROP TABLE share_link",
        "DROP INDEX run_link_started",
        "ALTER TABLE run DROP COLUMN link_id, DROP COLUMN link_name, DROP COLUMN source_log_id",
        "UPDATE meta SET value = '6' WHERE key = 'schema_version'",
    ):
        database.execute_sql(sql)
    dbmod.close_database()
    setup.prepare_database(pg_url, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    (first,) = service.list_links(export.export_id)
    assert first.name == "Default" and first.token == export.share_token
    shop = service.create_link(export.export_id, "Shop A")
    market = service.create_link(export.export_id, "Marketplace B")
    handle = start_server("127.0.0.1", 0, access_log=lambda line: None, limits=TEST_LIMITS)
    try:
        for link in (first, shop, market, shop):
            assert get(handle.port, service.link_path(link)) == 200
        service.revoke_link(export.export_id, "Shop A")
        assert get(handle.port, service.link_path(shop)) == 404
        assert get(handle.port, service.link_path(market)) == 200
        assert get(handle.port, service.link_path(first)) == 200
        handle.flush_history()
    finally:
        handle.stop(grace=0.5)
    named = [r.link_name for r in reversed(service.list_history(export_id=export.export_id))]
    assert named == ["Default", "Shop A", "Marketplace B", "Shop A", "Marketplace B", "Default"]
