"""The processes of a tuiexport cluster on one machine, for tests: ``tuiexport serve`` and
``tuiexport worker`` processes on one database, sharing one artifacts folder (TUIEXPORT_HOME),
each with its stderr in a file of its own (a pipe nobody reads would stop a chatty server)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    url: str = ""

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait(10)


@dataclass
class Processes:
    database: str
    home: Path
    env: dict[str, str] = field(default_factory=dict)
    started: list[Process] = field(default_factory=list)

    def _start(self, name: str, args: list[str], ready: str, env: dict[str, str]) -> Process:
        log = self.home / f"{name}-{len(self.started)}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "tuiexport", "--db", self.database, *args],
                stdout=subprocess.DEVNULL,
                stderr=out,
                env={
                    **os.environ,
                    "TUIEXPORT_HOME": str(self.home),
                    "PYTHONUNBUFFERED": "1",
                    **self.env,
                    **env,
                },
            )
        found = Process(popen, log)
        self.started.append(found)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            match = re.search(ready, found.output())
            if match:
                found.url = match.group(1) if match.groups() else ""
                return found
            if popen.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"tuiexport {name} did not start: {found.output()}")

    def serve(self, *args: str, **env: str) -> Process:
        return self._start(
            "serve",
            ["serve", "--port", "0", *args],
            r"serving on (http://127\.0\.0\.1:\d+)",
            env,
        )

    def worker(self, *args: str, **env: str) -> Process:
        return self._start("worker", ["worker", *args], r"worker running", env)

    def close(self) -> None:
        for process in self.started:
            process.stop()


@contextmanager
def processes(database: str, home: Path, **env: str) -> Iterator[Processes]:
    found = Processes(database, home, env)
    try:
        yield found
    finally:
        found.close()


def request(
    url: str, method: str = "GET", headers: dict[str, str] | None = None, timeout: float = 120
) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request: ``(status, headers with lower-case names, body)``."""
    req = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return (
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                response.read(),
            )
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def api(url: str, key: str, method: str = "GET") -> tuple[int, dict[str, str], Any]:
    status, head, body = request(url, method, {"Authorization": f"Bearer {key}"})
    return status, head, json.loads(body) if body else None
