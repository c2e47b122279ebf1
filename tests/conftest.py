"""Shared fixtures: every test gets its own TUIEXPORT_HOME (database, artifacts, downloads)."""

from __future__ import annotations

import os

import pytest

from tuiexport import config, setup
from tuiexport import db as dbmod


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    """No test ever touches the user's real data or config."""
    home = tmp_path / "home"
    home.mkdir()
    # Every TUIEXPORT_* variable of the caller's shell (a database, an artifacts URL, a webhook,
    # tuning) is a setting: none may leak into a test.
    for var in [name for name in os.environ if name.startswith("TUIEXPORT_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("TUIEXPORT_HOME", str(home))
    config.reset_settings()
    yield home
    config.reset_settings()
    dbmod.close_database()


@pytest.fixture
def empty_db(tmp_path):
    """A fresh, empty database file (schema only)."""
    database = setup.prepare_database(tmp_path / "t.sqlite", load_sample=False)
    yield database
    dbmod.close_database()


@pytest.fixture(scope="session")
def s3_server():
    """A throw-away S3-compatible store (radosgw, tests/s3_cluster.py) on loopback, started
    once per test process (about 20 s) and shared by its tests: give each its own key prefix."""
    from tests.s3_cluster import running_store

    with running_store() as server:
        yield server
