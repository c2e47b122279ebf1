"""The publish gate (issue 11): a run far smaller than the last published one is held, share
URLs go on serving the previous artifact, the operator approves or discards it (CLI, API, TUI)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from tests.server_helpers import TEST_LIMITS
from tests.shared_catalog import make_catalog, products_in, tx
from tuiexport import config, schema, service, setup
from tuiexport import db as dbmod
from tuiexport.errors import UserError
from tuiexport.management import apikeys
from tuiexport.models import Product, ProductText, SupplierItem
from tuiexport.server import start_server


def shrink_catalog(keep_every: int = 2) -> None:
    """Delete all but every ``keep_every``-th product (0: all): what a broken import leaves."""
    puids = sorted(p for (p,) in Product.select(Product.puid).tuples())
    gone = [p for i, p in enumerate(puids) if not keep_every or i % keep_every]
    for model, field in (
        (SupplierItem, SupplierItem.product),
        (ProductText, ProductText.product),
        (Product, Product.puid),
    ):
        model.delete().where(field.in_(gone)).execute()
    schema.bump_catalog_version()


@pytest.fixture
def catalog(isolated_home, monkeypatch):
    """200 demo products in the default database of the test's TUIEXPORT_HOME (so that child
    processes of the CLI find it), keeping one artifact per export."""
    monkeypatch.setenv("TUIEXPORT_KEEP_ARTIFACTS", "1")
    config.reset_settings()
    path = config.default_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    make_catalog(path, 200)
    setup.prepare_database(path, load_sample=False)
    yield path
    dbmod.close_database()


def request(handle, method, path, key=None):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=15)
    try:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        conn.request(method, path, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_a_halved_catalog_is_held_and_share_urls_keep_the_previous_artifact(catalog):
    big = service.get_definition("Big")
    share = service.share_path(big)
    _, key = apikeys.create_key("tests")
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        before = service.run_export("Big", trigger="cli")
        status, head, first = request(handle, "GET", share)
        assert status == 200 and products_in(first) == 200
        etag = head["etag"]
        assert etag == f'"{before.sha256}"'

        shrink_catalog()
        held = service.run_export("Big", trigger="cli")
        assert held.status == "held", held.messages
        assert f"100 products, 50 % fewer than run {before.log_id} (200); the limit is 30 %" in (
            " ".join(held.messages)
        )
        assert held.artifact_kept and Path(held.artifact_path).is_file()
        assert products_in(Path(held.artifact_path).read_bytes()) == 100

        # The share URL serves the previous file (not a new run the gate would hold again),
        # and retention (one artifact per export) removed neither file.
        status, head, again = request(handle, "GET", share)
        assert status == 200 and head["etag"] == etag and again == first
        assert Path(before.artifact_path).is_file() and Path(held.artifact_path).is_file()
        assert handle.flush_history()  # served rows are written in batches
        statuses = [r.status for r in service.list_history(export_id=big.export_id)]
        assert statuses.count("held") == 1 and len(statuses) == 4  # run, copy, held, copy

        status, _, body = request(handle, "GET", f"/api/v1/runs/{held.log_id}/file", key=key)
        assert status == 409 and "held by the publish gate" in json.loads(body)["detail"]
        # The API needs a key like the trigger; a run that is not held is a 409 problem.
        status, _, _ = request(handle, "POST", f"/api/v1/runs/{held.log_id}/approve")
        assert status == 401
        status, head, body = request(
            handle, "POST", f"/api/v1/runs/{before.log_id}/approve", key=key
        )
        assert status == 409 and head["content-type"] == "application/problem+json"
        assert "is not held" in json.loads(body)["detail"]

        status, _, body = request(handle, "POST", f"/api/v1/runs/{held.log_id}/approve", key=key)
        assert status == 200, body
        answer = json.loads(body)
        assert answer["status"] == "success" and answer["messages"][-1].startswith("Approved (api")
        status, head, now = request(handle, "GET", share)
        assert status == 200 and products_in(now) == 100
        assert head["etag"] == f'"{held.sha256}"' == f'"{hashlib.sha256(now).hexdigest()}"'
    finally:
        handle.stop(grace=0.5)


def test_discard_deletes_the_file_and_the_previous_artifact_serves(catalog):
    big = service.get_definition("Big")
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        first = service.run_export("Big")
        shrink_catalog()
        held = service.run_export("Big")
        assert held.status == "held"
        gone = service.discard_run(held.log_id, by="tui")
        assert gone.status == "discarded" and not gone.artifact_kept
        assert not Path(held.artifact_path).exists()
        assert f"run {first.log_id} stays the export's current file" in gone.messages[-1]
        status, head, body = request(handle, "GET", service.share_path(big))
        assert status == 200 and head["etag"] == f'"{first.sha256}"'
        assert products_in(body) == 200
        # Nothing ran again for the share request: the newest engine run is the discarded one.
        assert handle.flush_history()
        assert service.list_history(export_id=big.export_id)[1].log_id == held.log_id
    finally:
        handle.stop(grace=0.5)


def test_first_run_limits_and_the_notification_hook(catalog):
    # Nothing published yet: never held, even when empty.
    service.update_definition("Small", selection_id=None)
    empty = service.create_selection(service.Criteria(suppliers="all", price_max=0.0001), name="0")
    service.update_definition("Small", selection_id=empty.id)
    first = service.run_export("Small")
    assert first.status == "success" and first.product_count == 0

    # A webhook (nobody listens) shows that a held run passes through notify.run_ended.
    config.reset_settings(config.Settings(webhook_url="http://127.0.0.1:9/hook", keep_artifacts=1))
    service.run_export("Other")
    shrink_catalog(keep_every=4)  # 75 % fewer
    service.update_definition("Other", options={"gate_product_drop": 80})
    passed = service.run_export("Other")
    assert passed.status == "success", passed.messages  # within the limit of 80 %
    shrink_catalog(keep_every=0)
    held = service.run_export("Other")
    assert held.status == "held" and held.product_count == 0
    assert "0 products, run " in held.messages[1] and "gate_hold_empty" in held.messages[1]
    assert [n.channel for n in service.run_notifications(held.log_id)] == ["webhook"]

    # Off: the same drop publishes.
    service.update_definition(
        "Other", options={"gate_product_drop": None, "gate_hold_empty": False}
    )
    assert service.run_export("Other").status == "success"


def test_size_limit_and_option_validation(catalog):
    service.update_definition("Big", options={"gate_product_drop": None, "gate_size_drop": 10})
    service.run_export("Big")
    shrink_catalog()
    held = service.run_export("Big")
    assert held.status == "held"
    assert "% smaller than run" in held.messages[1] and "the limit is 10 %" in held.messages[1]
    for bad in ({"gate_size_drop": 101}, {"gate_product_drop": -1}, {"gate_product_drop": "x"}):
        with pytest.raises(UserError) as e:
            service.update_definition("Big", options=bad)
        assert "export options are invalid" in str(e.value)


def test_cli_approve_discard_and_exit_codes(catalog):
    env_home = config.default_db_path().parent  # the test's TUIEXPORT_HOME
    dbmod.close_database()  # the children write the same file
    assert tx(env_home, "--run", "Big").returncode == 0
    off = tx(env_home, "exports", "update", "Big", "--gate-product-drop", "off", "--json")
    assert off.returncode == 0 and '"gate_product_drop": null' in off.stdout, off.stdout
    bad = tx(env_home, "exports", "update", "Big", "--gate-product-drop", "150")
    assert bad.returncode == 2 and "not a percentage from 0 to 100" in bad.stderr
    assert tx(env_home, "exports", "update", "Big", "--gate-product-drop", "30").returncode == 0

    setup.prepare_database(config.default_db_path(), load_sample=False)
    shrink_catalog()
    dbmod.close_database()
    out = env_home / "feed.jsonl"
    out.write_bytes(b"the previous feed\n")
    run = tx(env_home, "--run", "Big", "-o", str(out))
    assert run.returncode == 3, run.stderr
    assert "held by the publish gate" in run.stderr and "50 % fewer" in run.stderr
    assert out.read_bytes() == b"the previous feed\n"  # -o PATH: the old file stays
    log_id = run.stderr.split("(log ID ")[1].split(")")[0]
    assert (env_home / f"feed.jsonl.held-{log_id}").is_file()

    unknown = tx(env_home, "history", "approve", "ZZZZZZZZZZ")
    assert unknown.returncode == 2 and "There is no run with log ID" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    missing = tx(env_home, "history", "discard")
    assert missing.returncode == 2 and "Name the held run" in missing.stderr

    approved = tx(env_home, "history", "approve", log_id)
    assert approved.returncode == 0, approved.stderr
    assert products_in(out.read_bytes()) == 100  # published at the path
    assert not (env_home / f"feed.jsonl.held-{log_id}").exists()
    again = tx(env_home, "history", "approve", log_id)
    assert again.returncode == 2 and "is not held (its status is success)" in again.stderr

    shown = tx(env_home, "history", log_id)
    assert "Approved (cli" in shown.stdout and "50 % fewer" in shown.stdout
    listed = tx(env_home, "history", "--status", "held")
    assert listed.returncode == 0 and listed.stdout.strip() == "No runs yet."


def test_tui_run_details_show_the_comparison_and_approve_or_discard(catalog):
    import asyncio
    import io

    from rich.console import Console
    from textual.widgets import Static

    from tuiexport.app import ExportApp
    from tuiexport.screens.dialogs import ConfirmScreen
    from tuiexport.screens.run_details import RunDetailsScreen

    first = service.run_export("Big", trigger="tui")
    shrink_catalog()
    held = service.run_export("Big", trigger="tui")
    assert held.status == "held"

    def shown(app) -> str:
        console = Console(width=140, record=True, file=io.StringIO())
        console.print(app.screen.query_one("#run-details", Static).content)
        return console.export_text()

    async def operate() -> None:
        app = ExportApp(server_url="http://127.0.0.1:9")
        async with app.run_test(size=(140, 50)) as pilot:
            await pilot.pause(0.2)
            app.push_screen(RunDetailsScreen(service.get_run(held.log_id)))
            await pilot.pause(0.2)
            text = shown(app)
            assert "Publish gate" in text and f"fewer than run {first.log_id} (200)" in text
            assert "a approves it" in text
            await pilot.press("a")
            await pilot.pause(0.2)
            assert service.get_run(held.log_id).status == "success"
            assert "Approved (tui" in shown(app)
            await pilot.press("d")  # not held any more: the key does nothing
            await pilot.pause(0.1)
            assert not isinstance(app.screen, ConfirmScreen)

            shrink_catalog()
            again = service.run_export("Big", trigger="tui")
            assert again.status == "held"
            await pilot.press("escape")
            app.push_screen(RunDetailsScreen(service.get_run(again.log_id)))
            await pilot.pause(0.2)
            await pilot.press("d")
            await pilot.pause(0.2)
            assert isinstance(app.screen, ConfirmScreen)
            await pilot.press("y")
            await pilot.pause(0.2)
            gone = service.get_run(again.log_id)
            assert gone.status == "discarded" and not Path(again.artifact_path).exists()
            assert "Discarded (tui" in shown(app)

    asyncio.run(operate())


def test_a_share_request_whose_own_run_is_held_gets_the_previous_zip(catalog):
    other = service.get_definition("Other")  # CSV in a ZIP: answered once the run has ended
    first = service.run_export("Other")
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        shrink_catalog()  # the share request below starts a run, which the gate holds
        status, head, body = request(handle, "GET", service.share_path(other))
        assert status == 200 and head["etag"] == f'"{first.sha256}"', body[:300]
        assert hashlib.sha256(body).hexdigest() == first.sha256
        assert handle.flush_history()
        statuses = [r.status for r in service.list_history(export_id=other.export_id)]
        assert statuses.count("held") == 1 and statuses[-1] == "success"
    finally:
        handle.stop(grace=0.5)


def _drop_last_line(path: Path) -> None:
    """What a writer that lost its last record leaves: a file that fails validation."""
    data = path.read_bytes()
    if path.name.endswith(".zip.part") or data[:2] == b"PK":
        path.write_bytes(data[: len(data) // 2])  # a truncated ZIP
    else:
        path.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1])


@pytest.mark.parametrize("name", ["Big", "Other"])  # JSON Lines (would stream), CSV in a ZIP
@pytest.mark.parametrize("how", ["failed", "held"])
def test_a_share_request_whose_own_run_is_not_published_gets_the_previous_file(
    catalog, monkeypatch, name, how
):
    """Issue 11: the request that starts the run waits for its end (nothing of the unvalidated
    file goes out, even after the streaming head delay), then gets the last published file, and
    says which run was not published and why."""
    from tuiexport.exporters import validate
    from tuiexport.exporters.base import ExportJob
    from tuiexport.server import files

    definition = service.get_definition(name)
    first = service.run_export(name)
    assert first.status == "success"
    monkeypatch.setattr(files, "HEADERS_AFTER", 0.2)
    original = ExportJob.check

    def slow_check(self, written):
        time.sleep(0.5)  # longer than the head delay: a streamed answer would have begun
        original(self, written)

    monkeypatch.setattr(ExportJob, "check", slow_check)
    if how == "failed":
        schema.bump_catalog_version()  # the catalog changed: the share request runs again
        monkeypatch.setattr(validate, "before_validate", _drop_last_line)
    else:
        shrink_catalog()  # the run the share request starts is past the gate's limit
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        status, head, body = request(handle, "GET", service.share_path(definition))
        assert status == 200, body[:300]
        assert "transfer-encoding" not in head and head["content-length"] == str(len(body))
        assert (
            hashlib.sha256(body).hexdigest() == first.sha256 and head["etag"] == f'"{first.sha256}"'
        )
        assert head["x-tuiexport-served-run"] == first.log_id
        unpublished, _, state = head["x-tuiexport-unpublished"].partition("; status=")
        assert state == how
        run = service.get_run(unpublished)
        assert run.status == how and run.log_id != first.log_id
        if how == "failed":
            assert "failed validation" in run.messages[-1]
        # The download has its own row, which says what was served and why.
        assert handle.flush_history()
        served = service.get_run(head["x-log-id"])
        assert served.sha256 == first.sha256 and served.status == "success"
        assert served.messages[0] == (
            f"Served the artifact of run {first.log_id}: run {run.log_id}, which this request "
            f"waited for, {'was held by the publish gate' if how == 'held' else 'failed and was not published'}."
        )
    finally:
        handle.stop(grace=0.5)


def test_an_unpublished_run_without_an_earlier_file_is_a_problem(catalog, monkeypatch):
    from tuiexport.exporters import validate

    monkeypatch.setattr(validate, "before_validate", _drop_last_line)
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        status, head, body = request(
            handle, "GET", service.share_path(service.get_definition("Big"))
        )
        assert status == 500 and head["content-type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["type"].endswith("run-failed")
        assert service.get_run(problem["logId"]).status == "failed"
        assert "failed validation" in problem["detail"]
    finally:
        handle.stop(grace=0.5)


def test_a_definition_without_validation_or_gate_still_streams(catalog, monkeypatch):
    """Validation off and nothing published yet (the gate cannot hold a first run): the file
    streams while it is written, as before."""
    from tuiexport.exporters.base import ExportJob
    from tuiexport.server import files

    big = service.update_definition("Big", options={"validate": False})
    monkeypatch.setattr(files, "HEADERS_AFTER", 0.2)
    original = ExportJob.check

    def slow_check(self, written):
        time.sleep(0.5)
        original(self, written)

    monkeypatch.setattr(ExportJob, "check", slow_check)
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        status, head, body = request(handle, "GET", service.share_path(big))
        assert status == 200 and head["transfer-encoding"] == "chunked"
        assert products_in(body) == 200
    finally:
        handle.stop(grace=0.5)


def test_after_a_failed_validation_share_requests_do_not_run_the_same_state_again(
    catalog, monkeypatch
):
    """A feed whose file fails validation is not run again for every consumer's request (each
    would wait for a whole export to get the previous file): the previous file serves at once,
    until the catalog or the definition changes."""
    from tuiexport.exporters import validate

    definition = service.get_definition("Big")
    first = service.run_export("Big")
    schema.bump_catalog_version()
    monkeypatch.setattr(validate, "before_validate", _drop_last_line)
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        status, head, _ = request(handle, "GET", service.share_path(definition))
        assert status == 200 and "x-tuiexport-unpublished" in head
        for _ in range(3):
            status, head, body = request(handle, "GET", service.share_path(definition))
            assert status == 200 and hashlib.sha256(body).hexdigest() == first.sha256
            assert "x-tuiexport-unpublished" not in head
        assert handle.flush_history()
        runs = [
            r
            for r in service.list_history(export_id=definition.export_id)
            if r.sha256 != first.sha256
        ]
        assert [r.status for r in runs] == ["failed"], "the failing state ran only once"
        schema.bump_catalog_version()  # a change: the next request runs again (and fails again)
        status, head, _ = request(handle, "GET", service.share_path(definition))
        assert status == 200 and "x-tuiexport-unpublished" in head
    finally:
        handle.stop(grace=0.5)
