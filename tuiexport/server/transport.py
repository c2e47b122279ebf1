"""HTTP/1.1 on the standard library, hardened: the server, the request parser, responses.

What the stdlib leaves open and this closes: a request head has a total size and line-count cap
(431) and a deadline (a client that trickles bytes is cut by the watchdog, not by a per-recv
timeout it can keep resetting); bodies have a cap (413); the thread count is bounded (503 when
full); Nagle is off (a 40 ms stall per small response otherwise); the Server header names no
Python version; errors are ``application/problem+json``; the access log redacts secrets.
"""

from __future__ import annotations

import contextlib
import email.utils
import http.server
import re
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Any

import msgspec

from tuiexport.db import database

SERVER_NAME = "tuiexport"
PROBLEM_TYPE = "/api/v1/problems#"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or broken client from holding a thread for long."""

    #: The whole request head (request line and headers), bytes.
    head_bytes: int = 16 * 1024
    #: Header lines per request.
    header_count: int = 64
    #: Request body, bytes (the API takes small JSON bodies only).
    body_bytes: int = 64 * 1024
    #: Seconds a kept-alive connection may wait for its next request line.
    idle_timeout: float = 15.0
    #: Seconds from the request line to the end of the head, and to read a body.
    head_timeout: float = 10.0
    #: Seconds one send may block on a client that stopped reading.
    send_timeout: float = 60.0
    #: Seconds for a TLS handshake.
    handshake_timeout: float = 10.0
    #: Connection threads at most; beyond that a connection gets 503 at once.
    max_threads: int = 256
    #: Seconds :meth:`ServerHandle.stop` lets downloads finish before it cuts them.
    stop_grace: float = 3.0


class Headers(dict[str, str]):
    """Request headers, names lower-cased; a repeated header is joined with ", "."""

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return super().get(name.lower(), default)


_REDACT = [
    (re.compile(r"(?i)(token=)[^&\s\"]*"), r"\1***"),
    (re.compile(r"tuix_[A-Za-z0-9_\-]*"), "tuix_***"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
]
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")


def redact(text: str) -> str:
    """The access log never shows a share token or an API key, nor raw control characters."""
    for pattern, replacement in _REDACT:
        text = pattern.sub(replacement, text)
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


class ShareHTTPServer(http.server.ThreadingHTTPServer):
    """One thread per connection, bounded; a watchdog enforces read deadlines."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHandler],
        *,
        limits: Limits,
        ssl_context: ssl.SSLContext | None = None,
        access_log: Callable[[str], None] | None = None,
    ):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.limits = limits
        self.ssl_context = ssl_context
        self.access_log = access_log
        self.active: set[BaseHandler] = set()
        self.active_lock = threading.Lock()
        self.stopping = threading.Event()
        super().__init__(address, handler)
        self._watchdog = threading.Thread(
            target=self._watch, name="tuiexport-http-watchdog", daemon=True
        )
        self._watchdog.start()

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls getfqdn(), a reverse DNS lookup that can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def process_request(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        assert isinstance(request, socket.socket)  # a TCP server: never a datagram
        with self.active_lock:
            full = len(self.active) >= self.limits.max_threads
        if full or self.stopping.is_set():
            self._refuse(request)
            return
        super().process_request(request, client_address)

    def _refuse(self, request: socket.socket) -> None:
        body = problem_body(
            503, "Service Unavailable", "The server is busy; try again in a few seconds."
        )
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/problem+json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
        ).encode()
        try:
            request.settimeout(0.5)
            if self.ssl_context is None:  # a TLS client would not understand plain bytes
                request.sendall(head + body)
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client misbehaviour is not a server error; anything else is logged once, without noise.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError, OSError)):
            return
        sys.stderr.write(f"tuiexport serve: internal error for {client_address[0]}:\n")
        traceback.print_exc(file=sys.stderr)

    def _watch(self) -> None:
        """Cut reads that passed their deadline (SHUT_RD: the handler sees EOF and may answer 408)."""
        tick = max(0.05, min(self.limits.head_timeout, self.limits.idle_timeout) / 20)
        while not self.stopping.wait(tick):
            now = time.monotonic()
            with self.active_lock:
                late = [h for h in self.active if h.deadline is not None and h.deadline < now]
            for handler in late:
                handler.deadline = None
                handler.timed_out = True
                with contextlib.suppress(OSError):
                    handler.connection.shutdown(socket.SHUT_RD)

    def cut_idle(self) -> None:
        """Close kept-alive connections that wait for their next request (stop: no grace needed)."""
        with self.active_lock:
            handlers = [h for h in self.active if getattr(h, "idle", False)]
        for handler in handlers:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RD)

    def cut_all(self) -> None:
        """Close every connection now (stop, after the grace period)."""
        with self.active_lock:
            handlers = list(self.active)
        for handler in handlers:
            with contextlib.suppress(OSError):
                handler.connection.shutdown(socket.SHUT_RDWR)


def problem_body(status: int, title: str, detail: str, **extra: Any) -> bytes:
    doc: dict[str, Any] = {
        "type": extra.pop("type", "about:blank"),
        "title": title,
        "status": status,
        "detail": detail,
    }
    doc.update(extra)
    return msgspec.json.encode(doc)


#: After these the connection's state is unknown (or the client is hostile): close it.
_CLOSING = frozenset({400, 408, 411, 413, 414, 431, 500, 505})


class ClientGone(Exception):
    """The client closed the connection or stopped reading; the response cannot go on."""


#: Response headers as (name, value) pairs.
_HeaderList = Sequence[tuple[str, str]]


class BaseHandler(http.server.BaseHTTPRequestHandler):
    """Request parsing with limits, responses, problem+json errors, one redacted log line per request."""

    protocol_version = "HTTP/1.1"
    server_version = f"{SERVER_NAME}/1.0"
    sys_version = ""
    disable_nagle_algorithm = True
    server: ShareHTTPServer
    # Parsed by parse_request below, not by the stdlib (whose headers are an email Message).
    headers: Headers  # type: ignore[assignment]

    # --- connection ---------------------------------------------------------------------

    def setup(self) -> None:
        self.deadline: float | None = None
        self.timed_out = False
        self.idle = False
        self.limits = self.server.limits
        self.connection = self.request
        with self.server.active_lock:
            self.server.active.add(self)
        try:
            if self.server.ssl_context is not None:
                self.deadline = time.monotonic() + self.limits.handshake_timeout
                self.request.settimeout(self.limits.handshake_timeout)
                self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
                self.deadline = None
            super().setup()
        except BaseException:
            with self.server.active_lock:
                self.server.active.discard(self)
            raise

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError, ClientGone):
            pass
        finally:
            if not database.is_closed():
                database.close()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.active_lock:
                self.server.active.discard(self)

    def version_string(self) -> str:
        return self.server_version

    def address_string(self) -> str:
        return str(self.client_address[0])

    # --- one request --------------------------------------------------------------------

    def handle_one_request(self) -> None:
        self._reset()
        if self.server.stopping.is_set():
            self.close_connection = True
            return
        self.connection.settimeout(self.limits.idle_timeout)
        self.deadline = time.monotonic() + self.limits.idle_timeout
        self.idle = True
        try:
            line = (
                b""
                if self.server.stopping.is_set()
                else self.rfile.readline(self.limits.head_bytes + 1)
            )
        except (OSError, ValueError):
            line = b""
        self.idle = False
        if not line:
            self.close_connection = True
            self.deadline = None
            return
        self.started = time.monotonic()
        self.deadline = self.started + self.limits.head_timeout
        self.connection.settimeout(self.limits.head_timeout)
        self.raw_requestline = line
        try:
            if not self.parse_request():
                return
            self.body = self.read_body()
            if self.body is None:
                return
            self.deadline = None
            self.connection.settimeout(self.limits.send_timeout)
            self.dispatch()
        except (BrokenPipeError, ConnectionResetError, ClientGone, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - a bug: the client gets a 500 problem, the operator a traceback
            self.close_connection = True
            sys.stderr.write(f"tuiexport serve: error handling {redact(self.requestline)!s}:\n")
            traceback.print_exc(file=sys.stderr)
            if not self.headers_sent:
                with contextlib.suppress(OSError):
                    self.send_problem(500, "The server failed on this request; see its log.")
        finally:
            self.deadline = None
            if self.status is not None:
                self.log_request(self.status, self.bytes_sent)

    def _reset(self) -> None:
        self.status: int | None = None
        self.bytes_sent = 0
        self.headers_sent = False
        self.requestline = ""
        self.request_version = "HTTP/1.1"
        self.command = ""
        self.path = ""
        self.headers = Headers()
        self.body = b""
        self._headers_buffer: list[bytes] = []

    def parse_request(self) -> bool:
        self.close_connection = True
        raw = self.raw_requestline
        if len(raw) > self.limits.head_bytes:
            self.request_version = "HTTP/1.1"
            self.send_problem(414, "The request line is too long.")
            return False
        self.requestline = requestline = raw.decode("iso-8859-1").rstrip("\r\n")
        words = requestline.split()
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            self.send_problem(400, "The request line is not valid HTTP.")
            return False
        command, target, version = words
        try:
            major, minor = version[5:].split(".")
            if not (major.isdigit() and minor.isdigit() and len(major) == 1 and len(minor) <= 2):
                raise ValueError
            number = (int(major), int(minor))
        except ValueError:
            self.send_problem(400, "The HTTP version in the request line is not valid.")
            return False
        if not (1, 0) <= number < (2, 0):
            # 400, not 505: HTTP/2 arrives via ALPN/upgrade, never in an HTTP/1 request line.
            self.request_version = "HTTP/1.1"
            self.send_problem(400, "Use HTTP/1.1.")
            return False
        self.request_version, self.command, self.path = version, command, target
        if not command.isalpha() or not target.startswith("/"):
            self.send_problem(400, "The request line is not valid HTTP.")
            return False
        if not self._read_headers(len(raw)):
            return False
        connection = (self.headers.get("connection") or "").lower()
        self.close_connection = "close" in connection or (
            number == (1, 0) and "keep-alive" not in connection
        )
        return True

    def _read_headers(self, used: int) -> bool:
        headers, count = Headers(), 0
        while True:
            try:
                line = self.rfile.readline(self.limits.head_bytes - used + 1)
            except (OSError, ValueError):
                line = b""
            used += len(line)
            if used > self.limits.head_bytes:
                self.send_problem(
                    431, f"The request headers are larger than {self.limits.head_bytes:,} bytes."
                )
                return False
            if not line or not line.endswith(b"\n"):
                if self.timed_out:
                    self.send_problem(408, "The request headers did not arrive in time.")
                return False
            if line in (b"\r\n", b"\n"):
                break
            count += 1
            if count > self.limits.header_count:
                self.send_problem(
                    431, f"The request has more than {self.limits.header_count} headers."
                )
                return False
            name, sep, value = line.decode("iso-8859-1").partition(":")
            if not sep or not name or name != name.strip() or " " in name:
                self.send_problem(400, "A request header is malformed.")
                return False
            key, value = name.lower(), value.strip()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.headers = headers
        return True

    def read_body(self) -> bytes | None:
        if self.headers.get("transfer-encoding"):
            self.send_problem(411, "Send the request body with a Content-Length, not chunked.")
            return None
        raw = self.headers.get("content-length")
        if raw is None:
            return b""
        if not raw.isdigit() or len(raw) > 18:
            self.send_problem(400, "The Content-Length header is not a number.")
            return None
        length = int(raw)
        if length > self.limits.body_bytes:
            self.send_problem(
                413, f"The request body is larger than {self.limits.body_bytes:,} bytes."
            )
            return None
        if length and (self.headers.get("expect") or "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = self.rfile.read(length) if length else b""
        if len(body) != length:
            if self.timed_out:
                self.send_problem(408, "The request body did not arrive in time.")
            else:
                self.close_connection = True
            return None
        return body

    def dispatch(self) -> None:  # overridden by the routes
        self.send_problem(404, "There is nothing here.")

    # --- responses ----------------------------------------------------------------------

    def start_response(self, status: int, headers: _HeaderList = ()) -> None:
        self.status = status
        self.send_response_only(status)
        self.send_header("Server", self.server_version)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")
        self.end_headers()
        self.headers_sent = True

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: _HeaderList = ()
    ) -> None:
        head = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        self.start_response(status, head)
        if self.command != "HEAD" and status not in (204, 304) and body:
            self.write(body)

    def send_json(self, status: int, data: object, headers: _HeaderList = ()) -> None:
        self.send_bytes(
            status,
            msgspec.json.encode(data),
            "application/json",
            [("Cache-Control", "no-store"), *headers],
        )

    def send_problem(
        self, status: int, detail: str, *, headers: _HeaderList = (), **extra: Any
    ) -> None:
        title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
        if status in _CLOSING:
            self.close_connection = True
        body = problem_body(status, title, detail, **extra)
        self.send_bytes(status, body, "application/problem+json", headers)
        if self.close_connection and status in (413, 431):
            self._linger()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self.send_problem(code, explain or message or HTTPStatus(code).description)

    def write(self, data: bytes | memoryview) -> None:
        try:
            self.wfile.write(data)
        except (OSError, ValueError) as exc:
            raise ClientGone() from exc
        self.bytes_sent += len(data)

    def _linger(self) -> None:
        """After refusing an oversized request, read (and drop) what the client is still sending
        for a moment, so it sees our answer instead of a reset."""
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(0.5)
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and self.connection.recv(65536):
                pass
        except OSError:
            pass

    # --- log ----------------------------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        took = (time.monotonic() - getattr(self, "started", time.monotonic())) * 1000
        self.log_message('"%s" %s %s %.1fms', self.requestline, code, size, took)

    def log_message(self, format: str, *args: Any) -> None:
        sink = self.server.access_log
        if sink is None:
            return
        line = f"{self.address_string()} - [{self.log_date_time_string()}] {format % args}"
        with contextlib.suppress(Exception):  # a broken log sink must not break serving
            sink(redact(line))
