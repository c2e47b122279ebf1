"""Read-only mode, the keymap and the theme: in the TUI (Pilot, one key at a time) and at start."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from textual.widgets import Input

from tests.test_tui_helpers import move_to, settle, sync, tui_db, type_keys  # noqa: F401
from tuiexport import config, service
from tuiexport.app import ExportApp
from tuiexport.models import ExportDefinition, Run
from tuiexport.screens.help import HelpScreen, binding_ids

pytestmark = pytest.mark.usefixtures("tui_db")


def write_config(home, text: str) -> None:
    (home / "config.toml").write_text(text, encoding="utf-8")
    config.reset_settings()


def app_with(**kwargs):
    from tests.test_tui_helpers import BASE_URL
    from tuiexport.app import ExportApp

    return ExportApp(server_url=BASE_URL, **kwargs)


def warnings(app) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "warning"]


@sync
async def test_read_only_changes_nothing_and_says_why():
    app = app_with(read_only=True)
    before = [(r.name, r.share_token, r.selection_id) for r in service.list_definitions()]
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        status = str(app.screen.query_one("#status").render())
        assert status.startswith("read-only")
        await type_keys(pilot, "ctrl+n")
        assert "Creating exports is off: this TUI is read-only (--read-only)." in warnings(app)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "enter", *"XY", "ctrl+s")
        assert any(w.startswith("Saving is off") for w in warnings(app))
        await type_keys(pilot, "ctrl+x")
        assert any(w.startswith("Changing an export's selection is off") for w in warnings(app))
        app.screen.exports.definitions.focus()
        await settle(pilot)
        await type_keys(pilot, "f7", "f8")
        assert any(w.startswith("Giving exports new share tokens is off") for w in warnings(app))
        assert any(w.startswith("Deleting exports is off") for w in warnings(app))
        # The key bar dims what would write.
        line = app.screen.query_one("KeyBar").render()
        dimmed = {
            line.plain[span.start : span.end].strip()
            for span in line.spans
            if "dim" in str(span.style)
        }
        assert "Save" in dimmed and "New" in dimmed and "Download" not in dimmed
    after = [(r.name, r.share_token, r.selection_id) for r in service.list_definitions()]
    assert after == before


@sync
async def test_read_only_downloads_follow_the_setting(isolated_home):
    write_config(isolated_home, "read_only = true\nread_only_downloads = false\n")
    app = app_with()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f5")
        assert any(
            w
            == "Downloading is off: this TUI is read-only (read_only = true in the configuration)."
            for w in warnings(app)
        )
        assert not app.screen.downloads.running
    assert Run.select().where(Run.trigger == "tui").count() == 0


@sync
async def test_read_only_may_still_download_by_default():
    app = app_with(read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await move_to(pilot, "Shop feed")
        await type_keys(pilot, "f5")
        for _ in range(300):
            if not app.screen.downloads.running:
                break
            await pilot.pause(0.05)
        await settle(pilot, 0.2)
    assert Run.select().where(Run.trigger == "tui").get().status == "success"


@sync
async def test_keymap_and_theme_from_the_config(isolated_home):
    write_config(
        isolated_home,
        'theme = "nord"\n[keymap]\nnew = "ctrl+b"\nhelp = "f1"\n',
    )
    app = app_with()
    async with app.run_test(size=(160, 48)) as pilot:  # wide: the key bar cuts nothing
        await settle(pilot)
        assert app.theme == "nord"
        line = app.screen.query_one("KeyBar").render().plain
        assert "^b New" in line
        count = ExportDefinition.select().count()
        await type_keys(pilot, "ctrl+b")
        assert ExportDefinition.select().count() == count + 1
        assert app.focused is app.screen.query_one("#ed-name", Input)
        await type_keys(pilot, "escape", "escape", "f1")
        assert isinstance(app.screen, HelpScreen)
        shown = "\n".join(s.text for s in app.screen._compositor.render_strips())
        new_line = next(line for line in shown.splitlines() if " New " in f"{line} ")
        assert "ctrl+b" in new_line and "ctrl+n" not in new_line


def test_every_binding_id_is_documented():
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "guide" / "tui.md").read_text()
    missing = [i for i in sorted(binding_ids(ExportApp.BINDINGS)) if f"`{i}`" not in page]
    assert not missing, f"docs/guide/tui.md does not list the binding ids {missing}"


@pytest.mark.parametrize(
    ("toml", "sentence"),
    [
        ('theme = "neon"\n', "tuiexport: Unknown theme 'neon' in the configuration; use one of "),
        (
            '[keymap]\ndownlaod = "f5"\n',
            "tuiexport: Unknown key binding id 'downlaod' in [keymap]; the ids are ",
        ),
    ],
)
def test_bad_look_settings_are_one_sentence_before_the_tui(isolated_home, toml, sentence):
    write_config(isolated_home, toml)
    env = {**os.environ, "TUIEXPORT_HOME": str(isolated_home)}
    done = subprocess.run(
        [sys.executable, "-m", "tuiexport", "--no-server"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(sentence) and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_read_only_goes_with_the_tui_only(capsys):
    from tuiexport.cli import main

    assert main(["--read-only", "--run", "Shop feed"]) == 2
    assert "--read-only is for the TUI" in capsys.readouterr().err
    assert service.get_definition("Shop feed")
