"""Smoke test: the real `tuiexport` command in tmux, driven by keys, read back from the pane."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_tui_helpers import env_for_subprocess

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

TUIEXPORT = str(Path(sys.executable).with_name("tuiexport"))


def capture(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True, check=True
    ).stdout


def wait_for(session: str, predicate, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if predicate(screen):
            return screen
        time.sleep(0.2)
    raise AssertionError(f"timed out; the pane shows:\n{screen}")


@pytest.mark.slow
def test_tuiexport_in_tmux_downloads(tmp_path, isolated_home):
    env = env_for_subprocess(isolated_home)
    subprocess.run(
        [TUIEXPORT, "catalog", "demo", "--products", "3000"],
        env=env,
        check=True,
        capture_output=True,
    )
    session = f"tuiexport-smoke-{tmp_path.name}"
    env_args = [
        arg for key in ("TUIEXPORT_HOME", "TZ", "PATH") for arg in ("-e", f"{key}={env[key]}")
    ]
    subprocess.run(
        [
            "tmux",
            "new-session",
            "-d",
            "-s",
            session,
            "-x",
            "80",
            "-y",
            "24",
            *env_args,
            f"{TUIEXPORT} --no-server; sleep 5",
        ],
        check=True,
    )
    try:
        screen = wait_for(
            session, lambda s: "Exports (" in s and "History (" in s and "Shop feed" in s
        )
        assert "Developer dump" in screen and "History (0)" in screen
        subprocess.run(["tmux", "send-keys", "-t", session, "Home", "F5"], check=True)
        screen = wait_for(session, lambda s: "History (1)" in s and "success" in s)
        downloads = list((isolated_home / "downloads").iterdir())
        assert len(downloads) == 1 and downloads[0].stat().st_size > 0
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        wait_for(session, lambda s: "Exports (" not in s, timeout=10)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, check=False)
