"""The share server: standard library HTTP(S) in front of the service API.

The TUI runs it in a background thread and ``tuiexport serve`` in the foreground; both call
:func:`start_server` and keep the :class:`ServerHandle`::

    handle = start_server("127.0.0.1", 0)   # port 0: any free port
    print(handle.url)                        # where it actually listens
    handle.stop()                            # runs end as cancelled, sockets close
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import resource
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import Self

import msgspec

from tuiexport import config, service
from tuiexport.errors import UserError
from tuiexport.server import openapi
from tuiexport.server.routes import App, ShareHandler
from tuiexport.server.transport import HTTPServer, Limits, redact

__all__ = ["Limits", "ServerHandle", "redact", "start_server"]


def _stderr_line(line: str) -> None:
    """The default access log (each server replaces it with its own :class:`_StderrLog`)."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class _StderrLog:
    """The default access log: lines to stderr, written together at most 50 ms late
    (HTTPServer calls :meth:`flush`), not one write per request."""

    def __init__(self) -> None:
        self._lines: list[str] = []

    def __call__(self, line: str) -> None:
        self._lines.append(line + "\n")

    def flush(self) -> None:
        if self._lines:
            text = "".join(self._lines)
            self._lines.clear()
            sys.stderr.write(text)
            sys.stderr.flush()


class ServerHandle:
    """A running server. ``url`` is where it listens; ``base_url`` is what share URLs start with."""

    def __init__(self, server: HTTPServer, app: App, url: str):
        self.server = server
        self.app = app
        self.url = url
        self.host, self.port = server.server_address[:2]
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._sweeper = service.Sweeper(service.SWEEP_EVERY)

    @property
    def base_url(self) -> str:
        return self.app.base_url

    @property
    def running(self) -> bool:
        return self.server.alive and not self._stopped.is_set()

    def share_url(self, ref: str) -> str:
        """The share URL of an export as this server answers it."""
        return service.share_url(ref, self.base_url)

    def flush_history(self, timeout: float = 10.0) -> bool:
        """Wait until the history rows of the downloads so far are written (they are written
        in batches, a few milliseconds after each download); True when they are."""
        return self.app.recorder.flush(timeout)

    def stop(self, grace: float | None = None) -> None:
        """Stop cleanly: accept nothing new, cancel running exports (they end as ``cancelled`` and
        leave no partial file), let downloads finish for ``grace`` seconds, then close what is
        left, and write every queued history row."""
        with self._stop_lock:
            if self._stopped.is_set():
                return
            grace = self.server.limits.stop_grace if grace is None else grace
            self._sweeper.stop()
            self.server.stop_accepting()
            self.server.cut_idle()
            self.app.runs.close()
            deadline = time.monotonic() + grace
            while self.server.busy() and time.monotonic() < deadline:
                self.server.cut_idle()
                time.sleep(0.02)
            self.server.cut_all()
            deadline = time.monotonic() + 2.0
            while (self.server.active or self.server.busy()) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.server.close()
            self.app.close()
            self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stopped (or ``timeout`` passed); True when it stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    host: str = "127.0.0.1",
    port: int = 8421,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    base_url: str | None = None,
    access_log: Callable[[str], None] | None = _stderr_line,
    limits: Limits | None = None,
    run_exports: bool | None = None,
) -> ServerHandle:
    """Listen on ``host:port`` (port 0: a free one) and serve in a background thread.

    ``access_log`` gets one redacted line per request (None: no log; the default writes them
    to stderr, together at most 50 ms late; the TUI passes its own sink, since
    stderr is its screen). ``run_exports`` false: the server queues the runs it admits for
    ``tuiexport worker`` processes (default: the ``run_exports`` setting). Raises
    :class:`UserError` with one sentence when the port is taken, the address is unusable or
    the TLS files cannot be loaded."""
    if not service.database_is_open():
        service.prepare_database()
    context = _tls_context(tls_cert, tls_key)
    limits = limits or Limits()
    files = _raise_file_limit(limits.max_connections + 256)
    if files is not None and files - 256 < limits.max_connections:
        # Each connection is a file descriptor: past the process's limit no 503 could be sent.
        limits = dataclasses.replace(limits, max_connections=max(16, files - 256))
    if access_log is _stderr_line:
        access_log = _StderrLog()
    handler: type[ShareHandler] = type("Handler", (ShareHandler,), {})
    try:
        server = HTTPServer(
            (host, port), handler, limits=limits, ssl_context=context, access_log=access_log
        )
    except OSError as exc:
        raise _bind_error(exc, host, port) from exc
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    scheme = "https" if context else "http"
    url = f"{scheme}://{_shown(bound_host)}:{bound_port}"
    public = base_url or config.settings().base_url or url
    if bound_host in ("0.0.0.0", "::") and not (base_url or config.settings().base_url):
        # Every address: share URLs name the primary address (the one the default route
        # leaves from), which other hosts can reach without resolving this machine's name.
        public = f"{scheme}://{_shown(primary_address(bound_host == '::'))}:{bound_port}"
    if run_exports is None:
        run_exports = config.settings().run_exports
    app = App(public, msgspec.json.encode(openapi.document()), run_exports)
    handler.app = app
    handler.recorder = app.recorder
    handle = ServerHandle(server, app, url)
    server.start()
    handle._sweeper.start()
    return handle


def _shown(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def primary_address(ipv6: bool = False) -> str:
    """This machine's primary address: the source address of its default route (no packet is
    sent), else its host name's address, else the loopback address."""
    family, probe = (
        (socket.AF_INET6, ("2001:db8::1", 80)) if ipv6 else (socket.AF_INET, ("192.0.2.1", 80))
    )
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(probe)
            address = str(sock.getsockname()[0])
            if address not in ("0.0.0.0", "::"):
                return address
    except OSError:
        pass
    with contextlib.suppress(OSError):
        return socket.gethostbyname(socket.gethostname())
    return "::1" if ipv6 else "127.0.0.1"


def _raise_file_limit(wanted: int) -> int | None:
    """Raise the soft limit of open files towards ``wanted`` (at most the hard limit): every
    connection is a file descriptor. Returns the soft limit now (None: unlimited/unknown)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    except (ValueError, OSError):
        return None
    return None if soft == resource.RLIM_INFINITY else int(soft)


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not cert or not key:
        raise UserError("HTTPS needs both --tls-cert and --tls-key.")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise UserError(f"Cannot use the TLS certificate {cert} with key {key}: {reason}.") from exc
    return context


def _bind_error(exc: OSError, host: str, port: int) -> UserError:
    if exc.errno == errno.EADDRINUSE:
        return UserError(
            f"Port {port} is in use; stop the program using it or choose another port "
            "(--port, or server_port in config.toml)."
        )
    if exc.errno == errno.EACCES:
        return UserError(
            f"Port {port} needs administrator rights; choose a port above 1023 "
            "(--port, or server_port in config.toml)."
        )
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return UserError(f"Cannot listen on '{host}': it is not an address of this machine.")
    return UserError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.")
