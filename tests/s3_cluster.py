"""A throw-away S3-compatible object store on loopback: one Ceph monitor, one memstore OSD and a
radosgw, from Debian's packages (``radosgw``, ``ceph-mon``, ``ceph-osd``).

A real store, not a mock: it checks signatures and credentials, refuses a missing bucket, and
keeps multipart uploads until they are completed or aborted. Objects live in the OSD's memory and
go with it. Skipped with the reason where the binaries are missing (``.ci/run`` installs them).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BINARIES = ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    #: Seconds from the first command to the first answer of radosgw (reported by the tests).
    started_in: float
    root: Path

    def env(self) -> dict[str, str]:
        """The ``AWS_*`` variables a boto3 user would set for this store."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint,
        }


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            s = stack.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
        return ports


def _config(root: Path, fsid: str, mon_port: int, rgw_port: int) -> str:
    return f"""[global]
fsid = {fsid}
mon host = v1:127.0.0.1:{mon_port}
auth cluster required = none
auth service required = none
auth client required = none
ms bind msgr2 = false
run dir = {root}/run
log file = {root}/log/$name.log
admin socket = {root}/run/$name.asok
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon max pg per osd = 1000
osd objectstore = memstore
# The OSD's capacity (objects take memory only as they are written).
memstore device bytes = 4294967296
[mon.a]
mon data = {root}/mon
public addr = 127.0.0.1:{mon_port}
[osd.0]
osd data = {root}/osd0
# The fixture puts the OSD into the CRUSH map itself: an OSD that does it on start may send its
# command before it has the monitor map, and exits on "wrong fsid".
osd crush update on start = false
osd class update on start = false
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:{rgw_port}
rgw data = {root}/rgw
# Deleted objects' data is freed by the garbage collector: within seconds, not hours, so a
# bench that writes and deletes large files does not fill the OSD.
rgw gc obj min wait = 5
rgw gc processor period = 5
"""


def _log_tail(root: Path) -> str:
    lines = []
    for log in sorted((root / "log").glob("*.log")):
        tail = log.read_text(errors="replace").splitlines()[-5:]
        lines += [f"{log.name}: {line}" for line in tail]
    return "\n".join(lines)


@contextmanager
def running_store() -> Iterator[S3Server]:
    """Start the store with one user (random keys); stop it and remove its folder afterwards."""
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        pytest.skip(
            f"The Ceph binaries {', '.join(missing)} are not installed "
            "(apt-get install radosgw ceph-mon ceph-osd)"
        )
    began = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="tuiexport-s3-"))
    for sub in ("mon", "osd0", "run", "log", "rgw"):
        (root / sub).mkdir()
    mon_port, rgw_port = _free_ports(2)
    conf = root / "ceph.conf"
    fsid = str(uuid.uuid4())
    conf.write_text(_config(root, fsid, mon_port, rgw_port))
    daemons: list[subprocess.Popen[bytes]] = []
    logs = ExitStack()

    def run(*args: str, timeout: float = 60) -> str:
        for attempt in range(4):
            try:
                done = subprocess.run(
                    [*args[:1], "-c", str(conf), *args[1:]],
                    capture_output=True,
                    timeout=timeout,
                    stdin=subprocess.DEVNULL,
                )
            except subprocess.TimeoutExpired:
                message = f"{' '.join(args)} did not finish in {timeout} s\n{_log_tail(root)}"
                raise RuntimeError(message) from None
            output = (done.stderr or done.stdout).decode(errors="replace").strip()
            # A monitor just started may refuse its first client ("handle_command on fsid 0…",
            # seen on a loaded machine): that command changed nothing, so ask again.
            if done.returncode and "problem getting command descriptions" in output and attempt < 3:
                time.sleep(1)
                continue
            break
        if done.returncode:
            raise RuntimeError(f"{' '.join(args)} failed: {output}\n{_log_tail(root)}")
        return done.stdout.decode()

    def start(*args: str) -> None:
        # In the foreground (-f), so this process owns the daemon and can end it by its pid.
        daemons.append(
            subprocess.Popen(
                [args[0], "-c", str(conf), "-f", *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=logs.enter_context((root / "log" / f"{args[0]}.stderr").open("wb")),
            )
        )

    def wait_for(what: str, ready: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while True:
            for daemon in daemons:
                if daemon.poll() is not None:
                    raise RuntimeError(
                        f"{daemon.args[0]} exited ({daemon.returncode})\n{_log_tail(root)}"
                    )
            if ready():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {seconds} s\n{_log_tail(root)}")
            time.sleep(0.2)

    def osd_up() -> bool:
        return '"num_up_osds":1' in run("ceph", "osd", "stat", "-f", "json").replace(" ", "")

    def rgw_answers() -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{rgw_port}/", timeout=2).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer: it is up
        except OSError:
            return False
        return True

    try:
        subprocess.run(
            ["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
             f"[v1:127.0.0.1:{mon_port}]", str(root / "monmap")],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        run("ceph-mon", "--mkfs", "-i", "a", "--monmap", str(root / "monmap"))
        start("ceph-mon", "-i", "a")
        run("ceph", "--connect-timeout", "30", "osd", "create")  # waits for the monitor
        run("ceph-osd", "-i", "0", "--mkfs")
        run("ceph", "osd", "crush", "add", "osd.0", "1.0", "host=localhost", "root=default")
        for attempt in (1, 2):  # an OSD that lost a start-up race exits: once more, then fail
            start("ceph-osd", "-i", "0")
            try:
                wait_for("the OSD", osd_up, 60)
                break
            except RuntimeError:
                osd = daemons.pop()
                if attempt == 2 or osd.poll() is None:
                    daemons.append(osd)
                    raise

        start("radosgw", "-n", "client.rgw.a")
        wait_for("radosgw", rgw_answers, 120)
        access, secret = "T" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
        run("radosgw-admin", "user", "create", "--uid=tuiexport", "--display-name=tuiexport",
            f"--access-key={access}", f"--secret={secret}")  # fmt: skip
        yield S3Server(
            endpoint=f"http://127.0.0.1:{rgw_port}",
            access_key=access,
            secret_key=secret,
            region="us-east-1",
            started_in=time.monotonic() - began,
            root=root,
        )
    finally:
        for daemon in reversed(daemons):
            if daemon.poll() is None:
                daemon.send_signal(signal.SIGTERM)
        for daemon in reversed(daemons):
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait(timeout=15)
        logs.close()
        if not os.environ.get("TUIEXPORT_KEEP_S3"):  # keep the logs to look into a failure
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":  # python tests/s3_cluster.py: start one, print it, stop it
    with running_store() as server:
        print(f"up in {server.started_in:.1f} s: {server.endpoint} {server.access_key}")
        if os.environ.get("HOLD"):
            input("Enter stops it. ")
