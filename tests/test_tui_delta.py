"""Downloading the changes since a run (a delta, issue 12) from the TUI's run details at 80x24,
keys pressed one at a time: the delta file in the downloads folder, the notification with its
counts, the command log's ``tuiexport --run … --since …`` (replayed through the real CLI), the
refusal of a format without deltas, and read-only mode."""

from __future__ import annotations

import shlex
import zipfile
from pathlib import Path

from tests.test_tui_helpers import (  # noqa: F401 - the imported fixture
    BASE_URL,
    make_app,
    notifications,
    settle,
    sync,
    tui_db,
    type_keys,
    until,
)
from tuiexport import config, service
from tuiexport.app import ExportApp
from tuiexport.cli import main
from tuiexport.models import Product, Run, SupplierItem
from tuiexport.schema import bump_catalog_version
from tuiexport.screens.run_details import RunDetailsScreen


def deltas() -> list[Run]:
    return list(Run.select().where(Run.delta_base != "").order_by(Run.id))


async def open_newest_run(pilot) -> RunDetailsScreen:
    """Tab to the history (newest run first), Enter on it."""
    await type_keys(pilot, "tab", "enter")
    assert await until(pilot, lambda: isinstance(pilot.app.screen, RunDetailsScreen))
    screen = pilot.app.screen
    assert isinstance(screen, RunDetailsScreen)
    return screen


@sync
async def test_changes_since_a_run_are_downloaded_notified_and_logged(tui_db):  # noqa: F811 - the imported fixture
    cursor = service.run_export("Shop feed", trigger="cli")
    assert cursor.status == "success"
    # After the run: one price changed, one product removed from the catalog.
    first, second = (
        p for (p,) in SupplierItem.select(SupplierItem.product).distinct().tuples().limit(2)
    )
    SupplierItem.update(price=SupplierItem.price + 1).where(SupplierItem.product == first).execute()
    Product.delete().where(Product.puid == second).execute()
    bump_catalog_version()
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = await open_newest_run(pilot)
        assert screen.run.log_id == cursor.log_id
        await type_keys(pilot, "s")
        assert not isinstance(app.screen, RunDetailsScreen)  # the download bar shows it
        assert await until(pilot, lambda: len(deltas()) == 1, seconds=60)
        await settle(pilot, 0.2)
        assert await until(pilot, lambda: not app.screen.downloads.running, seconds=10)
        delta = service.get_run(deltas()[0].log_id)
        assert (delta.trigger, delta.delta_since, delta.status) == ("tui", cursor.log_id, "success")
        assert delta.removed_count >= 1 and delta.changed_count + delta.removed_count >= 2
        path = Path(delta.artifact_path or "")
        assert path.parent == config.downloads_dir() and path.name.endswith("_delta.zip")
        with zipfile.ZipFile(path) as zf:
            assert str(second) in zf.read("removed.csv").decode()
        assert any(
            n.startswith(
                f"{delta.added_count} added, {delta.changed_count} changed, "
                f"{delta.removed_count} removed since {cursor.log_id}: saved to {path}"
            )
            and f"Next cursor: {delta.log_id}" in n
            for n in notifications(app)
        )
        command = app.commands[-1].command
        assert command == (
            f"tuiexport --run 'Shop feed' --since {cursor.log_id} -o {config.downloads_dir()}/"
        )
    # The command log's line does the same from cron: a second delta with the same counts.
    assert main(["--db", str(tui_db), *shlex.split(command)[1:]]) == 0
    again = deltas()[-1]
    assert len(deltas()) == 2 and again.delta_since == cursor.log_id
    assert (again.added_count, again.changed_count, again.removed_count) == (
        delta.added_count,
        delta.changed_count,
        delta.removed_count,
    )


@sync
async def test_a_format_without_deltas_and_read_only_mode_are_refused(tui_db, isolated_home):  # noqa: F811 - the imported fixture
    bmecat = service.run_export("Marketplace BMEcat", trigger="cli")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_newest_run(pilot)
        await type_keys(pilot, "s")
        reason = service.delta_refusal("bmecat12", "xml")
        assert reason and reason in notifications(app)
        assert isinstance(app.screen, RunDetailsScreen) and not deltas()
    service.run_export("Shop feed", trigger="cli")
    # Read-only without downloads: refused, saying why; with downloads allowed (the default) it
    # runs.
    (isolated_home / "config.toml").write_text("read_only_downloads = false\n")
    config.reset_settings()
    app = ExportApp(server_url=BASE_URL, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_newest_run(pilot)
        await type_keys(pilot, "s")
        assert any(n.startswith("Downloading is off") for n in notifications(app))
        assert not deltas() and not app.commands
    (isolated_home / "config.toml").write_text("")
    config.reset_settings()
    app = ExportApp(server_url=BASE_URL, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await open_newest_run(pilot)
        await type_keys(pilot, "s")
        assert await until(pilot, lambda: len(deltas()) == 1, seconds=60)
        assert await until(pilot, lambda: not app.screen.downloads.running, seconds=10)
    assert bmecat.log_id not in {d.delta_since for d in deltas()}
