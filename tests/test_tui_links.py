"""The share links screen (ctrl+k) at 80x24, keys pressed one at a time: per link its last
fetch, what it got, fetches in 7 days, its usual interval and the overdue mark; new, copy,
rename, new token and revoke, each on one link only."""

from __future__ import annotations

import http.client
import shlex
import sqlite3
from datetime import timedelta

from tests.server_helpers import TEST_LIMITS
from tests.test_tui_helpers import (  # noqa: F401 - the imported fixture
    BASE_URL,
    make_app,
    move_to,
    notifications,
    screen_text,
    settle,
    sync,
    tui_db,
    type_keys,
    until,
)
from tuiexport import service
from tuiexport.app import ExportApp
from tuiexport.cli import main
from tuiexport.management import runs
from tuiexport.models import SupplierItem, utcnow
from tuiexport.schema import bump_catalog_version
from tuiexport.screens.dialogs import ConfirmScreen, NameScreen
from tuiexport.screens.links import LinksScreen
from tuiexport.server import start_server


def fetched_daily(link, days_ago: int, times: int) -> None:
    """History rows of ``times`` daily downloads through ``link``, the last ``days_ago`` days
    ago (as the share server writes them)."""
    source = service.get_run("LOG0000001")
    for i in range(times):
        served = runs.by_log_id(service.record_served(source, link=link).log_id)
        assert served is not None
        started = utcnow() - timedelta(days=days_ago + i, minutes=5)
        runs.finish(served.id, "success", served.messages, started=started)


def links_of(name: str) -> dict[str, str]:
    return {k.name: k.token for k in service.list_links(name)}


async def open_links(pilot, export: str) -> LinksScreen:
    await move_to(pilot, export)
    await type_keys(pilot, "ctrl+k")
    assert await until(pilot, lambda: isinstance(pilot.app.screen, LinksScreen))
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, LinksScreen)
    return screen


async def type_text(pilot, text: str) -> None:
    await type_keys(pilot, *("space" if c == " " else c for c in text))


@sync
async def test_each_link_shows_how_its_consumer_fetches_and_marks_the_overdue_one(tui_db):  # noqa: F811 - the imported fixture
    shop = service.create_link("Shop feed", "Shop A")
    fetched_daily(shop, days_ago=3, times=5)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await open_links(pilot, "Shop feed")
        table = screen.query_one("#links-table")
        assert table.row_count == 2
        text = screen_text(app)
        assert "⚠ Shop A" in text and "never" in text  # the first link was never fetched
        assert "full LOG0000001" in text and "24 h" in text
        await type_keys(pilot, "down")
        assert "Shop A usually fetches every 24 h; last fetch 3 days ago." in screen_text(app)
        await type_keys(pilot, "escape")
        assert not isinstance(app.screen, LinksScreen)


@sync
async def test_ctrl_k_typed_in_the_filter_opens_the_links_of_the_match(tui_db):  # noqa: F811 - the imported fixture
    """A name typed on the list goes into the filter; ctrl+k there is the screen's command (the
    links of the highlighted match), not the field's delete-to-the-end."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_text(pilot, "shop")
        await pilot.pause(0.3)
        await settle(pilot)
        assert [v.name for v in app.screen.exports.definitions.views] == ["Shop feed"]
        await type_keys(pilot, "ctrl+k")
        assert await until(pilot, lambda: isinstance(pilot.app.screen, LinksScreen))
        await settle(pilot)
        assert "Shop feed" in screen_text(app)
        await type_keys(pilot, "escape")
        assert not isinstance(app.screen, LinksScreen)


def test_the_filter_leaves_every_screen_command_key_to_the_screen():
    from tuiexport.screens.main import BINDINGS
    from tuiexport.widgets.exports_pane import FilterInput

    screen_keys = {
        key.strip() for b in BINDINGS for key in b.key.split(",") if key.startswith("ctrl+")
    }
    filter_keys = {key.strip() for b in FilterInput.BINDINGS for key in b.key.split(",")}
    assert filter_keys & screen_keys == set()
    assert {"left", "right", "backspace", "home", "end", "enter"} <= filter_keys


def link_states(path) -> list[tuple[str, str, bool, bool]]:
    """Every link of every export: export name, link name, rotated, revoked."""
    with sqlite3.connect(path) as con:
        return con.execute(
            "SELECT d.name, l.name, l.rotated IS NOT NULL, l.revoked IS NOT NULL "
            "FROM share_link l JOIN export_definition d ON d.export_id = l.export_id "
            "ORDER BY l.id"
        ).fetchall()


@sync
async def test_new_copy_rename_rotate_and_revoke_one_link_at_a_time(tui_db, tmp_path):  # noqa: F811 - the imported fixture
    pristine = tmp_path / "replay.sqlite"
    with sqlite3.connect(tui_db) as src, sqlite3.connect(pristine) as dst:
        src.backup(dst)
    before = links_of("Shop feed")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await open_links(pilot, "Shop feed")
        await type_keys(pilot, "n")
        assert isinstance(app.screen, NameScreen)
        await type_text(pilot, "Marketplace B")
        await type_keys(pilot, "enter")
        assert await until(pilot, lambda: "Marketplace B" in links_of("Shop feed"))
        await settle(pilot)
        assert app.screen is screen and screen.current().link.name == "Marketplace B"
        # Copy the new link's URL.
        await type_keys(pilot, "c")
        market = service.list_links("Shop feed")[1]
        assert app.clipboard == service.link_url(market, BASE_URL)
        # Rename it: the URL stays.
        await type_keys(pilot, "r")
        assert isinstance(app.screen, NameScreen)
        await type_keys(pilot, "ctrl+u")  # clear the field
        await type_text(pilot, "Market C")
        await type_keys(pilot, "enter")
        assert await until(pilot, lambda: "Market C" in links_of("Shop feed"))
        assert links_of("Shop feed")["Market C"] == market.token
        # A new token for it alone.
        await settle(pilot)
        await type_keys(pilot, "t")
        assert isinstance(app.screen, ConfirmScreen)
        await type_keys(pilot, "y")
        assert await until(pilot, lambda: links_of("Shop feed")["Market C"] != market.token)
        assert links_of("Shop feed")["Default"] == before["Default"]
        # Revoke the first link: the other keeps working.
        await settle(pilot)
        await type_keys(pilot, "up", "d")
        assert isinstance(app.screen, ConfirmScreen)
        await type_keys(pilot, "y")
        assert await until(pilot, lambda: list(links_of("Shop feed")) == ["Market C"])
        await settle(pilot)
        assert screen.query_one("#links-table").row_count == 1
        commands = [e.command for e in app.commands if e.command.startswith("tuiexport links")]
        assert commands == [
            "tuiexport links create 'Shop feed' 'Marketplace B'",
            "tuiexport links rename 'Shop feed' 'Marketplace B' 'Market C'",
            "tuiexport links rotate 'Shop feed' 'Market C'",
            "tuiexport links revoke 'Shop feed' Default",
        ]
    # The command log's commands do the same through the CLI.
    for command in commands:
        assert main(["--db", str(pristine), *shlex.split(command)[1:]]) == 0, command
    assert link_states(pristine) == link_states(tui_db)


@sync
async def test_bad_names_are_notified_and_read_only_writes_nothing(tui_db):  # noqa: F811 - the imported fixture
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_links(pilot, "Shop feed")
        await type_keys(pilot, "n")
        await type_text(pilot, "default")
        await type_keys(pilot, "enter")
        await settle(pilot)
        assert any("has a share link named 'Default'" in n for n in notifications(app))
        assert list(links_of("Shop feed")) == ["Default"]
    before = links_of("Shop feed")
    app = ExportApp(server_url=BASE_URL, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_links(pilot, "Shop feed")
        await type_keys(pilot, "n", "t", "d")
        assert isinstance(app.screen, LinksScreen)
        assert any(n.startswith("Creating share links is off") for n in notifications(app))
        assert any(n.startswith("Revoking share links is off") for n in notifications(app))
    assert links_of("Shop feed") == before


def fetch(handle, path: str) -> tuple[int, str]:
    """GET ``path`` from the share server as a consumer does: (status, X-Log-Id)."""
    conn = http.client.HTTPConnection("127.0.0.1", handle.port, timeout=30)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        handle.flush_history()  # served downloads are recorded in batches
        return resp.status, resp.getheader("X-Log-Id") or ""
    finally:
        conn.close()


@sync
async def test_a_delta_fetch_shows_as_delta_since_its_cursor(tui_db):  # noqa: F811 - the imported fixture
    shop = service.create_link("Shop feed", "Shop A")
    path = service.share_path(service.get_definition("Shop feed"), shop)
    handle = start_server("127.0.0.1", 0, access_log=None, limits=TEST_LIMITS)
    try:
        # Shop A fetches the whole file, then (after a price change) what changed since.
        status, cursor = fetch(handle, path)
        assert status == 200 and cursor
        SupplierItem.update(price=SupplierItem.price + 1).execute()
        bump_catalog_version()
        status, delta_id = fetch(handle, f"{path}&since={cursor}")
        assert status == 200 and delta_id
    finally:
        handle.stop(grace=0.5)
    delta = service.get_run(delta_id)
    assert delta.is_delta and delta.link_name == "Shop A" and delta.changed_count > 0
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await open_links(pilot, "Shop feed")
        await type_keys(pilot, "down")
        assert f"delta → {delta.delta_base}" in screen_text(app)  # the row, in 80 columns
        detail = str(screen.query_one("#links-detail").content)
        assert (
            f"Last fetch: delta since {cursor} → run {delta.delta_base} (0 added, "
            f"{delta.changed_count} changed, 0 removed); next cursor {delta_id}."
        ) in detail
        # The other link never fetched; a full fetch says "full" and its run.
        await type_keys(pilot, "up")
        assert "never" in screen_text(app)
