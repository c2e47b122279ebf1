"""Named share links (issue 12): one per consumer, each with its own token, created, renamed,
rotated and revoked on its own; served downloads name their link; how each link fetches."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import timedelta

import pytest

from tests import tiny_catalog
from tests.server_helpers import build_exports, served_fixture  # noqa: F401  (fixture)
from tests.test_server_cli import start
from tuiexport import db as dbmod
from tuiexport import schema, service, setup
from tuiexport.cli import main
from tuiexport.errors import NotFound, UserError
from tuiexport.management import runs
from tuiexport.models import utcnow
from tuiexport.selection import Criteria


def feed() -> service.DefinitionView:
    tiny_catalog.build()
    selection = service.create_selection(Criteria(suppliers="all"), name="All")
    return service.create_definition(
        "Feed", selection_id=selection.id, profile="standard", output="jsonl"
    )


def path_of(link: service.LinkView) -> str:
    return service.link_path(link)


# --- the core ---------------------------------------------------------------------------------


def test_an_export_starts_with_one_link_and_gets_more_each_with_its_own_token(empty_db):
    export = feed()
    assert [k.name for k in export.links] == [schema.FIRST_LINK]
    assert export.share_token == export.links[0].token
    shop = service.create_link("Feed", "  Shop   A ")
    market = service.create_link(export.export_id, "Marketplace B")
    assert shop.name == "Shop A"
    tokens = {export.share_token, shop.token, market.token}
    assert len(tokens) == 3 and all(len(t) >= 22 for t in tokens)
    assert [k.name for k in service.list_links("Feed")] == ["Default", "Shop A", "Marketplace B"]
    # The export's share URL is still its first link's.
    assert service.share_path(service.get_definition("Feed")) == path_of(export.links[0])


def test_names_are_checked_and_links_found_by_name_or_id(empty_db):
    feed()
    shop = service.create_link("Feed", "Shop A")
    with pytest.raises(UserError, match="has a share link named 'Shop A'"):
        service.create_link("Feed", "shop a")
    with pytest.raises(UserError, match="Give the share link a name"):
        service.create_link("Feed", "   ")
    with pytest.raises(UserError, match="at most 80 characters"):
        service.create_link("Feed", "x" * 81)
    assert service.rename_link("Feed", "SHOP A", "Shop A (EU)").link_id == shop.link_id
    renamed = service.rename_link("Feed", shop.link_id, "Shop EU")
    assert renamed.name == "Shop EU" and renamed.token == shop.token  # the URL stays
    with pytest.raises(NotFound, match="There is no share link 'Shop A' of 'Feed'"):
        service.rotate_link("Feed", "Shop A")
    with pytest.raises(UserError, match="has a share link named 'Default'"):
        service.rename_link("Feed", "Shop EU", "default")


def test_rotate_and_revoke_touch_only_their_link(empty_db):
    export = feed()
    shop = service.create_link("Feed", "Shop A")
    market = service.create_link("Feed", "Marketplace B")
    rotated = service.rotate_link("Feed", "Shop A")
    assert rotated.token != shop.token and rotated.rotated is not None
    after = {k.name: k.token for k in service.list_links("Feed")}
    assert after == {
        "Default": export.share_token,
        "Shop A": rotated.token,
        "Marketplace B": market.token,
    }
    revoked = service.revoke_link("Feed", "Shop A")
    assert revoked.revoked is not None
    assert [k.name for k in service.list_links("Feed")] == ["Default", "Marketplace B"]
    assert [k.name for k in service.list_links("Feed", include_revoked=True)][1] == "Shop A"
    with pytest.raises(UserError, match="was revoked"):
        service.rotate_link("Feed", shop.link_id)
    # A revoked name may be given to a new link.
    assert service.create_link("Feed", "Shop A").token not in (shop.token, rotated.token)


def test_the_old_rotate_token_rotates_the_first_link_and_says_when_there_is_none(empty_db):
    export = feed()
    market = service.create_link("Feed", "Marketplace B")
    fresh = service.rotate_share_token("Feed")
    assert fresh.share_token != export.share_token
    assert service.list_links("Feed")[1].token == market.token
    service.revoke_link("Feed", "Default")
    service.revoke_link("Feed", "Marketplace B")
    view = service.get_definition("Feed")
    assert view.links == [] and view.share_token == ""
    with pytest.raises(
        UserError, match=r"has no share link .*'tuiexport links create \"Feed\" NAME'"
    ):
        service.share_url("Feed")
    with pytest.raises(UserError, match="has no share link"):
        service.rotate_share_token("Feed")


def test_deleting_an_export_deletes_its_links(empty_db):
    feed()
    service.create_link("Feed", "Shop A")
    service.delete_definition("Feed")
    assert empty_db.execute_sql("SELECT COUNT(*) FROM share_link").fetchone()[0] == 0


def test_tokens_match_in_constant_time_and_only_active_links():
    made = service.LinkView(link_id=1, export_id="e", name="A", token="t" * 32, created=utcnow())
    gone = service.LinkView(
        link_id=2, export_id="e", name="B", token="u" * 32, created=utcnow(), revoked=utcnow()
    )
    assert service.match_link([made, gone], "t" * 32) == made
    assert service.match_link([made, gone], "u" * 32) is None
    assert service.match_link([made], "") is None
    assert service.match_link([made], "t" * 31) is None
    assert service.match_link([made], "\udcff") is None  # a surrogate from a bad query string


# --- how each link fetches ----------------------------------------------------------------------


def _fetches(export, link, *hours_ago: float, status: str = "success") -> str:
    """History rows of downloads through ``link`` at these times, as the server writes them;
    returns the log ID of the run whose file they got."""
    source = service.run_export(export.export_id, trigger="cli")
    for ago in hours_ago:
        served = runs.by_log_id(service.record_served(source, link=link).log_id)
        assert served is not None
        runs.finish(served.id, status, served.messages, started=utcnow() - timedelta(hours=ago))
    return source.log_id


def test_activity_last_fetch_7_days_usual_interval_and_overdue(empty_db):
    export = feed()
    shop = service.create_link("Feed", "Shop A")
    market = service.create_link("Feed", "Marketplace B")
    # Shop A fetched daily, the last time 3 days ago; Marketplace B hourly until an hour ago.
    source = _fetches(export, shop, *(73 + 24 * i for i in range(6)))
    _fetches(export, market, *(1 + i for i in range(12)))
    _fetches(export, market, 0.2, status="cancelled")  # broken off: not a fetch
    by_name = {a.link.name: a for a in service.link_activity("Feed")}
    first, a, b = by_name["Default"], by_name["Shop A"], by_name["Marketplace B"]
    assert first.last_fetch is None and first.usual_interval is None and not first.overdue
    assert a.fetches_7d == 4  # 3, 4, 5 and 6 days (and an hour) ago
    assert a.usual_interval == 24 * 3600 and a.overdue
    assert a.warning == "Shop A usually fetches every 24 h; last fetch 3 days ago."
    assert a.got == "full" and a.got_run == source
    assert b.fetches_7d == 12 and b.usual_interval == 3600 and not b.overdue and not b.warning
    assert b.last_fetch is not None and utcnow() - b.last_fetch < timedelta(hours=1, minutes=1)


def test_fewer_than_three_fetches_have_no_usual_interval(empty_db):
    export = feed()
    shop = service.create_link("Feed", "Shop A")
    _fetches(export, shop, 100, 200)
    (a,) = [x for x in service.link_activity("Feed") if x.link.name == "Shop A"]
    assert a.last_fetch is not None and a.usual_interval is None and not a.overdue


def test_a_burst_of_fetches_is_no_schedule(empty_db):
    """Four downloads a few seconds apart (someone trying the URL) say nothing about how the
    consumer fetches: no usual interval, never overdue. Retries within a daily schedule do not
    move its interval."""
    export = feed()
    tried = service.create_link("Feed", "Tried by hand")
    daily = service.create_link("Feed", "Daily")
    _fetches(export, tried, 1.0, 1.001, 1.002, 1.003)
    _fetches(export, daily, 1, 1.01, 25, 49, 49.02, 73)
    by_name = {a.link.name: a for a in service.link_activity("Feed")}
    assert by_name["Tried by hand"].usual_interval is None
    assert not by_name["Tried by hand"].overdue
    assert by_name["Daily"].usual_interval is not None
    assert abs(by_name["Daily"].usual_interval - 24 * 3600) < 120
    assert not by_name["Daily"].overdue


# --- existing databases -------------------------------------------------------------------------


def test_a_version_6_database_keeps_its_share_url_as_the_first_link(tmp_path):
    path = tmp_path / "v6.sqlite"
    setup.prepare_database(path, load_sample=False)
    export = build_exports()["standard-jsonl"]
    dbmod.close_database()
    with sqlite3.connect(path) as con:  # make it look like version 6: one token per export
        con.execute(
            "ALTER TABLE export_definition ADD COLUMN share_token VARCHAR(255) NOT NULL DEFAULT ''"
        )
        con.execute(
            "UPDATE export_definition SET share_token = (SELECT token FROM share_link "
            "WHERE share_link.export_id = export_definition.export_id)"
        )
        con.execute("DROP TABLE share_link")
        con.execute("DROP INDEX run_link_started")
        for column in ("link_id", "link_name", "source_log_id"):
            con.execute(f"ALTER TABLE run DROP COLUMN {column}")
        con.execute("UPDATE meta SET value = '6' WHERE key = 'schema_version'")
    setup.prepare_database(path, load_sample=False)
    assert schema.get_meta("schema_version") == str(schema.SCHEMA_VERSION)
    (first,) = service.list_links(export.export_id)
    assert first.name == "Default" and first.token == export.share_token
    assert service.share_path(service.get_definition(export.export_id)) == path_of(first)
    dbmod.close_database()
    proc, url = start(path)
    try:
        body = urllib.request.urlopen(url + path_of(first), timeout=30).read()
        assert body.count(b"\n") == 20
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
    setup.prepare_database(path, load_sample=False)
    (run,) = [r for r in service.list_history(export_id=export.export_id) if r.trigger == "api"]
    assert run.link_name == "Default" and run.link_id == first.link_id


# --- the share server ---------------------------------------------------------------------------


def _links(served, *names):
    export = served.exports["standard-jsonl"]
    return export, [service.create_link(export.export_id, n) for n in names]


def test_revoking_shop_a_leaves_marketplace_b_working(served):
    export, (shop, market) = _links(served, "Shop A", "Marketplace B")
    for _ in range(2):  # the second time from the share cache (on the event loop)
        for link in (shop, market):
            status, head, _ = served.request("GET", path_of(link))
            assert status == 200 and head["x-log-id"]
    service.revoke_link(export.export_id, "Shop A")  # another connection, as the TUI or CLI
    assert served.request("GET", path_of(shop))[0] == 404
    assert served.request("GET", path_of(market))[0] == 200
    assert served.request("GET", served.share("standard-jsonl"))[0] == 200  # the first link
    rows = service.list_history(export_id=export.export_id)
    named = [r.link_name for r in reversed(rows)]
    # The first download ran the export (its own row names the link); the rest were served.
    assert named == [
        "Shop A",
        "Marketplace B",
        "Shop A",
        "Marketplace B",
        "Marketplace B",
        "Default",
    ]
    assert all(r.link_id == market.link_id for r in rows if r.link_name == "Marketplace B")
    first_run = rows[-1]
    assert first_run.source_log_id == "" and {r.source_log_id for r in rows[:-1]} == {
        first_run.log_id
    }


def test_a_consumer_that_revalidates_is_seen_and_not_overdue(served):
    """A 304 is no fetch (no history row), but it shows the consumer alive: a link that only
    revalidates while nothing changed is not marked overdue."""
    export, (shop,) = _links(served, "Shop A")
    status, head, _ = served.request("GET", served.share("standard-jsonl"))  # the file exists
    assert status == 200
    source = service.get_run(head["x-log-id"])
    for days in (3, 4, 5):  # Shop A fetched daily until 3 days ago
        row = runs.by_log_id(service.record_served(source, link=shop).log_id)
        runs.finish(row.id, "success", row.messages, started=utcnow() - timedelta(days=days))

    def shop_a():
        return next(a for a in service.link_activity(export.export_id) if a.link.name == "Shop A")

    assert shop_a().overdue and shop_a().last_seen is None
    etag = {"If-None-Match": f'"{service.get_run(source.log_id).sha256}"'}
    assert served.request("GET", path_of(shop), headers=etag)[0] == 304
    seen = shop_a()
    assert not seen.overdue and seen.last_seen is not None and seen.fetches_7d == 3
    assert utcnow() - seen.last_seen < timedelta(minutes=1)


def test_a_download_fetched_in_ranges_or_resumed_counts_once(served):
    """Issue 12: a byte range that ends before the file's last byte is a piece of a download:
    its history row is written (flagged partial) but it is no fetch; the range that delivers
    the last byte is. However a consumer splits or resumes a download, it counts once."""
    export, (shop, market) = _links(served, "Shop A", "Marketplace B")
    status, _, whole = served.request("GET", path_of(shop))  # runs the export: fetch 1
    assert status == 200
    size = len(whole)
    # Shop A fetches it again in three ranges (a download manager): fetch 2, once.
    pieces = [
        served.request("GET", path_of(shop), {"Range": spec})
        for spec in ("bytes=0-99", f"bytes=100-{size - 11}", f"bytes={size - 10}-")
    ]
    assert [p[0] for p in pieces] == [206, 206, 206]
    assert b"".join(p[2] for p in pieces) == whole
    # Marketplace B gets the first 50 bytes, then resumes from there (curl -C -): one fetch.
    assert served.request("GET", path_of(market), {"Range": "bytes=0-49"})[0] == 206
    assert served.request("GET", path_of(market), {"Range": "bytes=50-"})[0] == 206
    rows = {r.log_id: r for r in service.list_history(export_id=export.export_id)}
    ranged = [runs.by_log_id(p[1]["x-log-id"]) for p in pieces]
    assert [r.partial for r in ranged] == [True, True, False]
    assert all(rows[r.log_id].status == "success" for r in ranged)  # every piece is in history
    activity = {a.link.name: a for a in service.link_activity(export.export_id)}
    assert activity["Shop A"].fetches_7d == 2
    assert activity["Shop A"].last_log_id == pieces[-1][1]["x-log-id"]
    assert activity["Marketplace B"].fetches_7d == 1


def test_a_rotated_link_refuses_its_old_token_at_once(served):
    export, (shop, market) = _links(served, "Shop A", "Marketplace B")
    assert served.request("GET", path_of(shop))[0] == 200
    assert served.request("GET", path_of(shop))[0] == 200
    fresh = service.rotate_link(export.export_id, "Shop A")
    assert served.request("GET", path_of(shop))[0] == 404
    assert served.request("GET", path_of(fresh))[0] == 200
    assert served.request("GET", path_of(market))[0] == 200


def test_wrong_token_unknown_export_and_revoked_link_answer_alike(served):
    export, (shop,) = _links(served, "Shop A")
    assert served.request("GET", path_of(shop))[0] == 200
    service.revoke_link(export.export_id, shop.link_id)
    other = served.exports["standard-xml"]
    answers = [
        served.request("GET", path_of(shop)),
        served.request("GET", f"/api/v1/exports/{export.export_id}/download?token=nope"),
        served.request("GET", f"/api/v1/exports/{other.export_id}/download?token={shop.token}"),
        served.request(
            "GET", "/api/v1/exports/00000000-0000-4000-8000-000000000000/download?token=x"
        ),
    ]
    shapes = {
        (status, body, tuple(sorted((k, v) for k, v in head.items() if k != "date")))
        for status, head, body in answers
    }
    assert len(shapes) == 1 and next(iter(shapes))[0] == 404


def test_the_api_creates_renames_rotates_lists_and_revokes_links(served):
    export = served.exports["standard-jsonl"]
    base = f"/api/v1/exports/{export.export_id}/links"
    status, head, made = served.api("POST", base, body=b'{"name": "Shop A"}')
    assert (
        status == 201
        and made["name"] == "Shop A"
        and head["location"].endswith(f"/links/{made['linkId']}")
    )
    assert served.request("GET", path_of_url(made["url"]))[0] == 200
    status, _, renamed = served.api(
        "PATCH", f"{base}/{made['linkId']}", body=b'{"name": "Shop EU"}'
    )
    assert status == 200 and renamed["name"] == "Shop EU" and renamed["url"] == made["url"]
    status, _, rotated = served.api("POST", f"{base}/{made['linkId']}/rotate")
    assert status == 200 and rotated["url"] != made["url"] and rotated["rotated"]
    assert served.request("GET", path_of_url(made["url"]))[0] == 404
    assert served.request("GET", path_of_url(rotated["url"]))[0] == 200
    status, _, listed = served.api("GET", base)
    assert status == 200
    by_name = {k["name"]: k for k in listed["links"]}
    assert set(by_name) == {"Default", "Shop EU"}
    assert by_name["Shop EU"]["fetches7d"] == 2 and by_name["Shop EU"]["got"] == "full"
    assert by_name["Default"]["lastFetch"] is None
    status, _, gone = served.api("DELETE", f"{base}/{made['linkId']}")
    assert status == 200 and gone["revoked"] and gone["url"] is None
    assert served.request("GET", path_of_url(rotated["url"]))[0] == 404
    status, _, exports = served.api("GET", "/api/v1/exports")
    (shown,) = [e for e in exports["exports"] if e["exportId"] == export.export_id]
    assert [k["name"] for k in shown["links"]] == ["Default"]


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status", "detail"),
    [
        ("POST", "", b"", 400, "Send the link's name as a JSON object"),
        ("POST", "", b'{"name": 3}', 400, "Send the link's name as a JSON object"),
        ("POST", "", b'{"name": "A", "token": "mine"}', 400, "Send the link's name"),
        ("POST", "", b'{"name": "  "}', 400, "Give the share link a name"),
        ("POST", "", b'{"name": "Default"}', 400, "The export has a share link named"),
        ("PATCH", "/999999", b'{"name": "B"}', 404, "There is no share link '999999'"),
        ("POST", "/999999/rotate", b"", 404, "There is no share link '999999'"),
        ("DELETE", "/999999", b"", 404, "There is no share link '999999'"),
        ("PUT", "/1", b"", 405, "PUT is not allowed here"),
    ],
)
def test_the_links_api_refuses_bad_input_with_a_sentence(
    served, method, suffix, body, status, detail
):
    export = served.exports["standard-jsonl"]
    got, head, problem = served.api(
        method, f"/api/v1/exports/{export.export_id}/links{suffix}", body=body
    )
    assert got == status and head["content-type"] == "application/problem+json"
    assert problem["detail"].startswith(detail), problem


def test_the_links_api_needs_a_key_and_a_link_of_that_export(served):
    jsonl, xml = served.exports["standard-jsonl"], served.exports["standard-xml"]
    assert served.api("GET", f"/api/v1/exports/{jsonl.export_id}/links", key=None)[0] == 401
    shop = service.create_link(jsonl.export_id, "Shop A")
    # A link of another export is not found through this one.
    assert served.api("DELETE", f"/api/v1/exports/{xml.export_id}/links/{shop.link_id}")[0] == 404
    assert served.request("GET", path_of(shop))[0] == 200


def path_of_url(url: str) -> str:
    return url[url.index("/api/v1/") :]


def test_a_link_revoked_by_another_process_fails_on_a_running_server(tmp_path):
    db_path = tmp_path / "serve.sqlite"
    setup.prepare_database(db_path, load_sample=False)
    export = build_exports()["standard-jsonl"]
    shop = service.create_link(export.export_id, "Shop A")
    market = service.create_link(export.export_id, "Marketplace B")
    dbmod.close_database()
    proc, url = start(db_path)
    try:
        for link in (shop, market, shop, market):
            assert urllib.request.urlopen(url + path_of(link), timeout=30).status == 200
        cli = [sys.executable, "-m", "tuiexport", "--db", str(db_path), "links"]
        done = subprocess.run(
            [*cli, "revoke", export.export_id, "Shop A"], capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stderr
        assert "1 other link" not in done.stdout and "2 other links keep working" in done.stdout
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url + path_of(shop), timeout=30)
        assert refused.value.code == 404
        assert urllib.request.urlopen(url + path_of(market), timeout=30).status == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert shop.token not in err and market.token not in err


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def dbfile(tmp_path):
    path = tmp_path / "cli.sqlite"
    setup.prepare_database(path, load_sample=False)
    feed()
    dbmod.close_database()
    return str(path)


def cli(capsys, dbfile, *args) -> tuple[int, str, str]:
    code = main(["--db", dbfile, "links", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_cli_verbs(capsys, dbfile):
    code, out, _ = cli(
        capsys, dbfile, "create", "Feed", "Shop A", "--base-url", "https://f.example"
    )
    assert code == 0 and out.startswith("Share link 'Shop A' (2):\nhttps://f.example/api/v1/")
    code, out, _ = cli(capsys, dbfile, "create", "Feed", "Marketplace B", "--json")
    market = json.loads(out)
    assert code == 0 and market["name"] == "Marketplace B" and "token=" in market["url"]
    code, out, _ = cli(capsys, dbfile, "rename", "Feed", "2", "Shop EU")
    assert code == 0 and "to 'Shop EU'; its URL is unchanged" in out
    code, out, _ = cli(capsys, dbfile, "rotate", "Feed", "Marketplace B", "--json")
    assert code == 0 and json.loads(out)["url"] != market["url"]
    code, out, _ = cli(capsys, dbfile, "revoke", "Feed", "Shop EU")
    assert code == 0 and "2 other links keep working" in out
    code, out, _ = cli(capsys, dbfile, "list", "Feed", "--all")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["ID", "NAME", "LAST"]
    assert [line.split()[1] for line in lines[1:]] == ["Default", "Marketplace", "Shop"]
    assert "never" in lines[1] and "revoked" in lines[3]
    code, out, _ = cli(capsys, dbfile, "list", "Feed", "--json")
    assert [k["name"] for k in json.loads(out)] == ["Default", "Marketplace B"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("create", "Nope", "Shop A"), "There is no export 'Nope'"),
        (("create", "Feed", ""), "Give the share link a name"),
        (("create", "Feed", "default"), "The export has a share link named 'Default'"),
        (("rename", "Feed", "Shop Z", "B"), "There is no share link 'Shop Z' of 'Feed'"),
        (("rotate", "Feed", "42"), "There is no share link '42' of 'Feed'"),
        (("revoke", "Feed", "Shop Z"), "There is no share link 'Shop Z' of 'Feed'"),
    ],
)
def test_the_cli_refuses_bad_input_with_exit_2_and_a_sentence(capsys, dbfile, args, message):
    code, out, err = cli(capsys, dbfile, *args)
    assert code == 2 and out == ""
    assert err.startswith(f"tuiexport: {message}") and err.count("\n") == 1
    assert "Traceback" not in err
