"""A real share server on an ephemeral loopback port, and small clients, for the server tests."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest

from tests import tiny_catalog
from tuiexport import config, service
from tuiexport.management import apikeys
from tuiexport.selection import Criteria
from tuiexport.server import Limits, ServerHandle, start_server

JSON_TYPES = ("application/json", "application/problem+json")
#: Short bounds so the abuse tests finish in seconds.
TEST_LIMITS = Limits(
    idle_timeout=2.0, head_timeout=1.0, send_timeout=5.0, max_connections=64, stop_grace=1.0
)
OUTPUTS = (
    ("standard", "jsonl"),
    ("standard", "csv"),
    ("standard", "xml"),
    ("standard", "json"),
    ("bmecat12", "xml"),
)


@dataclass
class Served:
    handle: ServerHandle
    log: list[str]
    exports: dict[str, service.DefinitionView]
    key: str
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def port(self) -> int:
        return self.handle.port

    def url(self, path: str) -> str:
        return self.handle.url + path

    def share(self, name: str) -> str:
        return service.share_path(service.get_definition(self.exports[name].export_id))

    def request(
        self,
        method: str,
        path: str,
        headers: dict | None = None,
        body: bytes | None = None,
        timeout: float = 15.0,
    ):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            # History rows of downloads are written in batches: wait for them, so that a test
            # sees its download in the history as a user does a moment later.
            self.handle.flush_history()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def api(self, method: str, path: str, key: str | None = "default", **kw):
        headers = dict(kw.pop("headers", None) or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {self.key if key == 'default' else key}"
        status, head, data = self.request(method, path, headers=headers, **kw)
        return (
            status,
            head,
            (json.loads(data) if data and head.get("content-type") in JSON_TYPES else data),
        )


def build_exports() -> dict[str, service.DefinitionView]:
    tiny_catalog.build()
    selection = service.create_selection(Criteria(suppliers="all"), name="All")
    exports = {}
    for profile, output in OUTPUTS:
        name = f"{profile}-{output}"
        exports[name] = service.create_definition(
            name, selection_id=selection.id, profile=profile, output=output
        )
    exports["draft"] = service.create_definition("draft")  # invalid: no selection
    return exports


def streamed(served: Served, name: str) -> str:
    """The share path of ``name`` with validation switched off: only a file that is published
    as it is written (no validation, no publish gate to pass) streams while its run writes it."""
    service.update_definition(served.exports[name].export_id, options={"validate": False})
    return served.share(name)


@pytest.fixture(name="served")
def served_fixture(empty_db, monkeypatch):
    monkeypatch.setenv("TUIEXPORT_MAX_CONCURRENT_RUNS", "8")
    config.reset_settings()
    exports = build_exports()
    _, key = apikeys.create_key("tests")
    log: list[str] = []
    handle = start_server("127.0.0.1", 0, access_log=log.append, limits=TEST_LIMITS)
    try:
        yield Served(handle, log, exports, key)
    finally:
        handle.stop(grace=0.5)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")
