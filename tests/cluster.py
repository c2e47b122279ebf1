"""The processes of a tuiexport cluster on one machine, for tests and ``make cluster-demo``:
``tuiexport serve`` and ``tuiexport worker`` processes on one database, sharing one artifacts
folder (TUIEXPORT_HOME), each with its stderr in a file of its own (a pipe nobody reads would
stop a chatty server), and nginx in front of the servers as a round-robin load balancer."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest


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


NGINX_CONF = """
worker_processes 1;
daemon off;
{user}
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream tuiexport {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://tuiexport;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 600s;
            proxy_buffering off;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


@contextmanager
def balancer(upstreams: list[str]) -> Iterator[str]:
    """nginx on a loopback port as a round-robin load balancer over ``upstreams``
    (``http://host:port`` each); yields its URL. Skips the test where nginx is missing."""
    nginx = nginx_binary()
    if nginx is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    folder = Path(tempfile.mkdtemp(prefix="tuiexport-nginx-"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    servers = "\n".join(f"        server {urlsplit(u).netloc};" for u in upstreams)
    conf = folder / "nginx.conf"
    user = "user root;" if os.geteuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(dir=folder, port=port, servers=servers, user=user))
    proc = subprocess.Popen(
        [nginx, "-c", str(conf), "-p", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = folder / "error.log"
                    raise AssertionError(
                        f"nginx did not start: {log.read_text() if log.exists() else ''}"
                    ) from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def s3_env(store: Any, artifacts_url: str, config_dir: Path) -> dict[str, str]:
    """The settings of a process whose artifacts live in the S3 store ``store``
    (tests/s3_cluster.S3Server) under ``artifacts_url``: its endpoint and keys the boto3 way,
    and no ``~/.aws`` of this machine (``config_dir`` holds the empty files instead)."""
    return {
        **store.env(),
        "AWS_CONFIG_FILE": str(config_dir / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(config_dir / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "TUIEXPORT_ARTIFACTS_URL": artifacts_url,
    }


def s3_client(store: Any) -> Any:
    """A boto3 client of the store (tests/s3_cluster.S3Server)."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        aws_access_key_id=store.access_key,
        aws_secret_access_key=store.secret_key,
        region_name=store.region,
    )


def make_bucket(store: Any, bucket: str) -> Any:
    """The bucket in the store (made if missing); returns a client."""
    client = s3_client(store)
    with suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(Bucket=bucket)
    return client


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


T = TypeVar("T")


def wait(what: str, check: Callable[[], T | None], timeout: float = 120) -> T:
    """What ``check`` returns once it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def trigger_and_fetch(
    front: str, export_id: str, key: str
) -> tuple[dict[str, Any], list[tuple[int, dict[str, str], bytes]]]:
    """An API trigger through ``front``, its status until the run ended and its file twice,
    all through ``front`` (round robin: the requests go to every server): the run's JSON and
    the two file answers."""
    status, _, started = api(f"{front}/api/v1/exports/{export_id}/runs", key, "POST")
    assert status == 202, started
    log_id = started["logId"]
    done = wait(
        "the run's end through the balancer",
        lambda: (
            (a := api(f"{front}/api/v1/runs/{log_id}", key))[2]["status"]
            not in ("queued", "running")
            and a
        ),
    )
    run: dict[str, Any] = done[2]
    files = [
        request(f"{front}/api/v1/runs/{log_id}/file", headers={"Authorization": f"Bearer {key}"})
        for _ in range(2)
    ]
    return run, files


def demo(argv: list[str] | None = None) -> int:
    """``make cluster-demo``: a throw-away PostgreSQL, two ``tuiexport serve --no-exports``, one
    ``tuiexport worker`` and nginx in front, on loopback, until Ctrl+C (everything is removed
    then). ``--s3`` (``make cluster-demo S3=1``): the artifacts in a throw-away S3 store (a
    one-node Ceph radosgw, tests/s3_cluster.py) instead of the shared folder."""
    import argparse

    from tests.pg_cluster import running_cluster
    from tests.shared_catalog import make_catalog
    from tuiexport import db as dbmod
    from tuiexport import service, setup
    from tuiexport.management import apikeys

    parser = argparse.ArgumentParser(prog="python -m tests.cluster")
    parser.add_argument("--s3", action="store_true", help="artifacts in a throw-away S3 store")
    parser.add_argument("--products", type=int, default=2000, help="demo catalog size")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="tuiexport-cluster-"))
    try:
        with ExitStack() as stack:
            env: dict[str, str] = {}
            if args.s3:
                from tests.s3_cluster import running_store

                print("S3: starting a one-node Ceph radosgw (about 20 s)…", flush=True)
                store = stack.enter_context(running_store())
                make_bucket(store, "tuiexport")
                env = s3_env(store, "s3://tuiexport/runs", home)
            pg = stack.enter_context(running_cluster())
            print(f"PostgreSQL: {pg.url}; demo catalog of {args.products:,} products…", flush=True)
            make_catalog(pg.url, args.products)
            setup.prepare_database(pg.url, load_sample=False)
            _, key = apikeys.create_key("demo")
            exports = service.list_definitions()
            dbmod.close_database()
            cluster = stack.enter_context(processes(pg.url, home, **env))
            servers = [cluster.serve("--no-exports"), cluster.serve("--no-exports")]
            worker = cluster.worker()
            front = stack.enter_context(balancer([s.url for s in servers]))
            print(f"servers: {', '.join(s.url for s in servers)}; worker pid {worker.pid}")
            print(f"logs (and the artifacts folder without --s3): {home}")
            if env:
                print(
                    f"artifacts: {env['TUIEXPORT_ARTIFACTS_URL']} on {env['AWS_ENDPOINT_URL']} "
                    f"(AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']} "
                    f"AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']})"
                )
            print(f"load balancer (nginx, round robin): {front}")
            for export in exports:
                print(f"  {export.name:<6} {front}{service.share_path(export)}")
            print(f"API key: {key}")
            print(
                f"  curl -X POST -H 'Authorization: Bearer {key}' "
                f"{front}/api/v1/exports/{exports[0].export_id}/runs"
            )
            print("Ctrl+C stops and removes everything.", flush=True)
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            while not stop.wait(0.5):
                pass
    except pytest.skip.Exception as exc:
        print(f"cluster-demo: {exc.msg}.", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(demo())
