"""HTTP/1.1 on asyncio (standard library only), hardened: connections, the parser, responses.

One event loop in one thread owns every socket. A connection is a small protocol object and one
coroutine: an idle or slow client costs a few KiB, not a thread. Deadlines are per connection
and per phase (waiting for the next request, reading the head, reading a body, each send), and
TLS handshakes run inside the loop with their own deadline. A global connection cap answers 503
past it. What blocks (database lookups, runs, file reads for gzip) runs on a bounded thread pool;
the loop only parses, writes and ``sendfile``-s.

A request is parsed on the loop, then its :class:`Exchange` (the route handler) runs on the pool
and returns a :class:`Response`: bytes, a file range (sent with ``loop.sendfile``), or a stream
(pulled piece by piece from the pool). Errors are ``application/problem+json``; the access log
redacts secrets.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import email.utils
import fcntl
import functools
import re
import socket
import ssl
import struct
import sys
import termios
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, BinaryIO
from urllib.parse import unquote_plus, urlsplit

import msgspec

SERVER_NAME = "tuiexport"
#: Seconds an access log line may wait to be written with others (a sink with ``flush``).
LOG_EVERY = 0.05
#: Files up to this size are sent with one write; larger ones with loop.sendfile.
SMALL_FILE = 256 * 1024
SERVER_VERSION = f"{SERVER_NAME}/1.0"
PROBLEM_TYPE = "/api/v1/problems#"


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile or broken client from holding the server."""

    #: The whole request head (request line and headers), bytes.
    head_bytes: int = 16 * 1024
    #: Header lines per request.
    header_count: int = 64
    #: Request body, bytes (the API takes small JSON bodies only).
    body_bytes: int = 64 * 1024
    #: Seconds a kept-alive connection may wait for its next request line.
    idle_timeout: float = 15.0
    #: Seconds from the first byte of a request to the end of its head, and to read a body.
    head_timeout: float = 10.0
    #: Seconds one send may wait for a client that stopped reading.
    send_timeout: float = 60.0
    #: Seconds for a TLS handshake.
    handshake_timeout: float = 10.0
    #: Open connections at most; past it a new connection gets 503 and is closed.
    max_connections: int = 20_000
    #: Threads for blocking work (database lookups, file reads for gzip, streaming).
    workers: int = 16
    #: Seconds :meth:`ServerHandle.stop` lets downloads finish before it cuts them.
    stop_grace: float = 3.0


class Headers(dict[str, str]):
    """Request headers, names lower-cased (look them up lower-cased: ``get("if-range")``); a
    repeated header is joined with ", ". Read only once parsed: the heads a client repeats
    share one parsed copy (see :meth:`Connection._parse`)."""


_REDACT = [
    (re.compile(r"(?i)(token=)[^&\s\"]*"), r"\1***"),
    (re.compile(r"tuix_[A-Za-z0-9_\-]*"), "tuix_***"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1***"),
]
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\\]")
_QUERY_PAIR = re.compile(r"([?&;])([^=&;\s]*)=([^&;\s\"]*)")


def _redact_pair(match: re.Match[str]) -> str:
    name = match.group(2)
    if "token" in unquote_plus(name, errors="replace").lower():
        return f"{match.group(1)}{name}=***"
    return match.group(0)


def redact(text: str) -> str:
    """The access log never shows a share token or an API key, nor raw control characters.

    A query parameter whose *decoded* name contains "token" is redacted too (``?%74oken=``)."""
    text = _QUERY_PAIR.sub(_redact_pair, text)
    for pattern, replacement in _REDACT:
        text = pattern.sub(replacement, text)
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@functools.lru_cache(maxsize=256)
def _redacted(requestline: str) -> str:
    """:func:`redact` of a request line (a client asks the same URL again and again)."""
    return redact(requestline)


@functools.lru_cache(maxsize=1024)
def http_date(when: datetime) -> str:
    return email.utils.format_datetime(when, usegmt=True)


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
HeaderList = Sequence[tuple[str, str]]


# --- what a handler answers ---------------------------------------------------------------


@dataclass
class FileBody:
    """Bytes ``offset`` to ``offset + count`` of an open file, sent with ``loop.sendfile``.

    ``confirm``: after the last byte, wait until the client's TCP stack acknowledged every byte
    (Linux ``SIOCOUTQ``), so ``on_complete`` means the client has the file; a client that broke
    off gets ``on_incomplete(bytes sent)``. Both run on the loop and must not block."""

    file: BinaryIO
    offset: int
    count: int
    confirm: bool = False
    on_start: Callable[[], None] | None = None
    #: Blocking work to finish (on the pool) before the head goes out.
    before_send: Callable[[], object] | None = None
    on_complete: Callable[[], object] | None = None
    on_incomplete: Callable[[int], object] | None = None
    on_end: Callable[[], None] | None = None
    #: The whole file's bytes, when they are in memory (``file`` reads them).
    data: bytes | None = None
    #: Called instead of ``on_incomplete`` when, after ``on_start``, nothing went out at all.
    on_abandon: Callable[[], None] | None = None


#: A stream yields this when it has nothing yet (the loop waits a moment and asks again).
WAIT = b""


@dataclass
class Head:
    """The first item of a :class:`StreamBody` that answers with a chunked stream."""

    status: int
    headers: list[tuple[str, str]]


@dataclass
class StreamBody:
    """Pieces pulled from ``chunks`` on the pool. The first item other than :data:`WAIT` is a
    :class:`Head` (then the pieces follow, sent chunked, and the generator's return value is the
    trailer fields) or a whole :class:`Response` to send instead. The generator raising
    :class:`ClientGone` cuts the response without its last chunk; when the client goes away,
    :class:`ClientGone` is thrown into the generator (so it can record it)."""

    chunks: Iterator[bytes | Head | Response]
    #: bytes sent of the body so far (set by the loop; the generator may read it)
    sent: list[int] = field(default_factory=lambda: [0])


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | FileBody | StreamBody = b""
    #: Send no body (HEAD, 304) even if a length is given.
    bodiless: bool = False


@dataclass(eq=False, slots=True)
class Memo:
    """An answer kept for a request head that clients repeat byte for byte (a poller, a
    consumer revalidating, a health check): while :attr:`holds` says so, the loop answers the
    same head with the same bytes straight from here (no parsing, routing or handler), with the
    current ``Date``. Only answers made by :meth:`Exchange.fast` that depend on nothing but the
    head and what :attr:`holds` checks (the share cache's generation, the health check's age)
    are kept, only bodies in bytes (never a file or a stream), never a closing one. The same
    bytes parse the same way, so the head is as valid as when it was first answered."""

    holds: Callable[[], bool]
    on_hit: Callable[[], None] | None
    #: the status line with its CRLF
    start: bytes
    #: the header lines after Server and Date, and the blank line
    rest: bytes
    body: bytes
    #: what the access log says after the client and the time: '"request line" status size '
    log_tail: str
    #: A download recorded per request: makes its log ID (the value between :attr:`rest` and
    #: :attr:`after` in the head) and what to call once it was delivered, or not.
    again: Callable[[], tuple[str, Delivery]] | None = None
    after: bytes = b""


#: Seconds until the loop asks :meth:`Exchange.fast` again about a request it could not answer
#: yet, and how many times in a row before the pool answers it.
RETRY_AFTER = 0.001
RETRIES = 20

#: Request heads answered from a :class:`Memo`, per server, at most, and the bytes of their
#: bodies together (the bodies of small files are those the share cache keeps anyway).
MEMOS = 512
MEMO_BYTES = 16 << 20


# --- the exchange: one request, handled on the pool -----------------------------------------


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: str
    version: str
    headers: Headers
    body: bytes
    client: str
    requestline: str
    close: bool
    #: time.monotonic() when the request's first byte arrived
    started: float = 0.0


class Exchange:
    """One request and its answer. Subclasses add the routes (:meth:`dispatch`); they run on a
    pool thread and answer by calling ``send_*`` (which build :attr:`response`)."""

    def __init__(self, request: Request, server: HTTPServer):
        self.request = request
        self.server = server
        self.limits = server.limits
        self.command = request.method
        self.path = request.target
        self.headers = request.headers
        self.body = request.body
        self.request_version = request.version
        self.close_connection = request.close
        self.response: Response | None = None
        #: Set by :meth:`fast` when it could not answer only for a moment: the loop asks again
        #: shortly instead of sending the request to the pool.
        self.later = False
        #: Set by :meth:`fast` when its answer may be kept for this very request head (see
        #: :class:`Memo`): (whether it still holds, what to do on each reuse or None).
        self.memo: tuple[Callable[[], bool], Callable[[], None] | None] | None = None
        #: A small file recorded per download may be kept too: (the value of its head that
        #: differs per download, what makes the next value and its delivery; see Memo.again).
        self.memo_again: tuple[str, Callable[[], tuple[str, Delivery]]] | None = None

    @property
    def headers_sent(self) -> bool:
        return self.response is not None

    def run(self) -> Response:
        try:
            self.dispatch()
        except ClientGone:
            self.close_connection = True
            if self.response is None:
                self.send_problem(500, "The server failed on this request; see its log.")
        except Exception:  # noqa: BLE001 - a bug: the client gets a 500 problem, the operator a traceback
            sys.stderr.write(
                f"tuiexport serve: error handling {redact(self.request.requestline)!s}:\n"
            )
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            self.response = None
            self.send_problem(500, "The server failed on this request; see its log.")
        if self.response is None:
            self.send_problem(500, "The server gave no answer to this request.")
        assert self.response is not None
        return self.response

    def dispatch(self) -> None:  # overridden by the routes
        self.send_problem(404, "There is nothing here.")

    def fast(self) -> bool:
        """Answer on the event loop itself when that cannot block (overridden by the routes);
        False: :meth:`run` answers on the pool."""
        return False

    # --- responses ----------------------------------------------------------------------

    def start_response(self, status: int, headers: HeaderList = ()) -> None:
        """A response with these headers and no body (HEAD, 304)."""
        self.response = Response(status, list(headers), bodiless=True)

    def send_bytes(
        self, status: int, body: bytes, content_type: str, headers: HeaderList = ()
    ) -> None:
        head = [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers]
        bodiless = self.command == "HEAD" or status in (204, 304)
        self.response = Response(status, head, b"" if bodiless else body, bodiless=bodiless)

    def send_json(self, status: int, data: object, headers: HeaderList = ()) -> None:
        self.send_bytes(
            status,
            msgspec.json.encode(data),
            "application/json",
            [("Cache-Control", "no-store"), *headers],
        )

    def send_problem(
        self, status: int, detail: str, *, headers: HeaderList = (), **extra: Any
    ) -> None:
        if status in _CLOSING:
            self.close_connection = True
        body = problem_body(status, _title(status), detail, **extra)
        self.send_bytes(status, body, "application/problem+json", headers)


@functools.cache  # statuses come from the code, never from a client: a bounded set
def _title(status: int) -> str:
    return HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"


# --- the server -----------------------------------------------------------------------------


class HTTPServer:
    """The listening socket, the loop thread, the pool, and every open connection."""

    def __init__(
        self,
        address: tuple[str, int],
        exchange: type[Exchange],
        *,
        limits: Limits,
        ssl_context: ssl.SSLContext | None = None,
        access_log: Callable[[str], None] | None = None,
    ):
        self.limits = limits
        self.exchange = exchange
        self.ssl_context = ssl_context
        self.access_log = access_log
        #: (second, its time stamp in the access log)
        self._log_second: tuple[int, str] = (0, "")
        self._log_flush = False
        self.connections: set[Connection] = set()
        #: downloads sent whose acknowledgement is awaited (see confirm)
        self.confirming: set[_Unconfirmed] = set()
        #: request heads (bytes) and what they parsed to (see Connection._parse)
        self.parsed: dict[bytes, _Head] = {}
        #: request heads (bytes) and the answers kept for them (see Memo)
        self.memos: dict[bytes, Memo] = {}
        self.memo_bytes = 0
        self.stopping = False
        self.pool = ThreadPoolExecutor(max(1, limits.workers), thread_name_prefix="tuiexport-http")
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        infos = socket.getaddrinfo(
            address[0], address[1], family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
        sock = socket.socket(infos[0][0], socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(infos[0][4])
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self.socket = sock
        self.server_address: tuple[str, int] = sock.getsockname()[:2]
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._thread = threading.Thread(target=self._run, name="tuiexport-http", daemon=True)
        self._ready = threading.Event()

    # --- lifecycle (called from other threads) -------------------------------------------

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.set_default_executor(self.pool)
        self.loop.run_until_complete(self._listen())
        self._ready.set()
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    async def _listen(self) -> None:
        self._server = await self.loop.create_server(
            lambda: Connection(self),
            sock=self.socket,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl_context else None,
            backlog=1024,
        )

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the loop and return its result (from another thread)."""

        async def wrapper() -> Any:
            return fn()

        if not self._thread.is_alive():
            return None
        future = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(timeout)

    def stop_accepting(self) -> None:
        def close() -> None:
            self.stopping = True
            if self._server is not None:
                self._server.close()

        self.call(close)

    @property
    def active(self) -> int:
        """Connections still open (busy ones and idle ones)."""
        return len(self.connections)

    def busy(self) -> int:
        return int(
            self.call(lambda: sum(1 for c in self.connections if c.busy) + len(self.confirming))
            or 0
        )

    def cut_idle(self) -> None:
        """Close connections that wait for their next request (stop: no grace needed): not
        those whose last answer is not confirmed yet (a download still in flight), and with a
        FIN, not a reset, so a client still reading an answer it was sent gets all of it."""
        self.call(lambda: _close([c for c in self.connections if not c.busy and not c.pending]))

    def cut_all(self) -> None:
        """Close every connection now (stop, after the grace period)."""
        self.call(lambda: _abort(list(self.connections)))

    def close(self) -> None:
        """Stop the loop and the pool (after the connections are gone)."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        with contextlib.suppress(OSError):
            self.socket.close()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if hasattr(self.access_log, "flush"):
            self._flush_log()  # the last lines (the loop is gone)

    # --- delivery ---------------------------------------------------------------------------

    def confirm(self, item: _Unconfirmed) -> None:
        """Call ``on_complete`` of a sent file once its client acknowledged every byte of it,
        ``on_incomplete`` when it went away (or stalled past the send deadline) first. The files
        of one connection wait in a queue, confirmed in the order they were sent: looked at now
        when nothing is waiting before it, at the connection's next request (a client that asks
        again has what it got before), and by one timer per connection, after 1 ms, then less
        and less often."""
        self.confirming.add(item)
        connection = item.connection
        connection.pending.append(item)
        if len(connection.pending) == 1:
            # At once first: on loopback the acknowledgement is often in before send() returned.
            self.check_delivered(connection)

    def check_delivered(self, connection: Connection) -> None:
        """Confirm what the client of ``connection`` acknowledged (see :meth:`confirm`), in
        order; the rest waits for the connection's timer."""
        pending = connection.pending
        acked = connection._acked()
        now = self.loop.time()
        while pending:
            item = pending[0]
            whole = acked is None or acked >= item.target
            if not whole and not connection.lost and now <= item.deadline:
                break
            pending.popleft()
            self.confirming.discard(item)
            connection._confirm_delay = 0.001
            body = item.body
            try:
                if whole:
                    if body.on_complete is not None:
                        body.on_complete()
                elif body.on_incomplete is not None:
                    assert acked is not None
                    body.on_incomplete(max(0, item.sent - (item.target - acked)))
            finally:
                if body.on_end is not None:
                    body.on_end()
        timer = connection._confirm_timer
        if not pending:
            if timer is not None:  # confirmed before its timer (at the next request, mostly)
                timer.cancel()
                connection._confirm_timer = None
        elif timer is None:
            delay = connection._confirm_delay
            connection._confirm_delay = min(delay * 2, 0.05)
            connection._confirm_timer = self.loop.call_later(delay, self._confirm_later, connection)

    def _confirm_later(self, connection: Connection) -> None:
        connection._confirm_timer = None
        self.check_delivered(connection)

    # --- the log ---------------------------------------------------------------------------

    def log(self, client: str, requestline: str, status: int, size: int, took: float) -> None:
        if self.access_log is not None:
            self._log_line(client, f'"{_redacted(requestline)}" {status} {size} ', took)

    def log_memo(self, client: str, memo: Memo, took: float) -> None:
        """:meth:`log` of an answer from a :class:`Memo` (its line's middle made once)."""
        if self.access_log is not None:
            self._log_line(client, memo.log_tail, took)

    def _log_line(self, client: str, middle: str, took: float) -> None:
        """``middle``: '"request line" status size ' of the access log's line."""
        sink = self.access_log
        assert sink is not None
        second = int(time.time())
        if self._log_second[0] != second:
            self._log_second = (second, time.strftime("%d/%b/%Y %H:%M:%S"))
        with contextlib.suppress(Exception):  # a broken log sink must not break serving
            sink(f"{client} - [{self._log_second[1]}] {middle}{took * 1000:.1f}ms")
        if not self._log_flush and hasattr(sink, "flush"):
            # A sink that collects lines writes them together, at most LOG_EVERY seconds late
            # (one write for many requests, not one per turn of the loop).
            self._log_flush = True
            self.loop.call_later(LOG_EVERY, self._flush_log)

    def _flush_log(self) -> None:
        self._log_flush = False
        with contextlib.suppress(Exception):
            self.access_log.flush()  # type: ignore[union-attr]  # checked in log()


#: A parsed request head: method, target, path, query, version, headers, request line, close.
_Head = tuple[str, str, str, str, str, Headers, str, bool]
#: Parsed request heads kept by their bytes per server (see Connection._parse), and the
#: largest head kept.
PARSED_HEADS = 512
PARSED_BYTES = 4096

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]*)(:[0-9]*)?")
_METHOD = re.compile(r"[A-Z]+")


class BadRequest(Exception):
    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Connection(asyncio.Protocol):
    """One client connection: a buffer, flow control, and the coroutine that serves it."""

    def __init__(self, server: HTTPServer):
        self.server = server
        self.limits = server.limits
        self.loop = server.loop
        self.buffer = bytearray()
        self.eof = False
        self.lost = False
        self.busy = False
        self.paused_writing = False
        #: bytes written to this connection (heads and bodies), and what the client had
        #: acknowledged when it went away
        self.written = 0
        self.final_acked: int | None = None
        #: files sent on this connection whose delivery is not confirmed yet, in order
        self.pending: collections.deque[_Unconfirmed] = collections.deque()
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._confirm_delay = 0.001
        self.transport: asyncio.Transport | None = None
        #: the socket, over plain TCP (not TLS): where _acked asks the kernel
        self._tcp_socket: socket.socket | Any = None
        self.client = "-"
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        #: The coroutine waits for the next request (with an empty buffer): data_received may
        #: answer what arrives itself (see _answer_at_once).
        self._idle = False
        #: Loop time when a kept-alive connection waiting for its next request is closed.
        self._idle_until = 0.0
        #: A request the loop parsed but could not answer at once, for the coroutine:
        #: (request, its exchange, the response fast() made or None).
        self._handoff: tuple[Request, Exchange, Response | None] | None = None
        #: A request :meth:`Exchange.fast` could not answer *yet* (see Exchange.later) waits in
        #: the buffer for this timer, which asks again (at most RETRIES times in a row).
        self._retry: asyncio.TimerHandle | None = None
        self._retries = 0

    # --- protocol callbacks ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "-"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if transport.get_extra_info("sslcontext") is None:
                self._tcp_socket = sock
                if self._acked() is None:  # no TCP_INFO here
                    self._tcp_socket = None
        server = self.server
        if server.stopping or len(server.connections) >= self.limits.max_connections:
            self._refuse()
            return
        server.connections.add(self)
        self._task = self.loop.create_task(self._serve())

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.pending:
            self.server.check_delivered(self)
        if self._idle:
            self._answer_at_once()
            if (not self.buffer or self._retry is not None) and self._handoff is None:
                return  # answered (or asked again soon): the coroutine goes on waiting
        if len(self.buffer) > self.limits.head_bytes + self.limits.body_bytes + 65536:
            assert self.transport is not None
            self.transport.pause_reading()  # resumed when the buffer is consumed
        self._wake()

    def _ask_again(self) -> None:
        """The timer of a request that fast() could not answer yet: ask again on the loop;
        after RETRIES times (or once the connection is no longer waiting), the coroutine takes
        it (the pool answers)."""
        self._retry = None
        if not self.buffer or self._handoff is not None or self.lost:
            return
        if self._idle and self._retries < RETRIES:
            self._retries += 1
            self._answer_at_once()
            if self._retry is not None or (not self.buffer and self._handoff is None):
                return
        self._retries = 0
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return True  # keep the write side open: a half-closed client still gets its answer

    def connection_lost(self, exc: Exception | None) -> None:
        # The socket is still open here: what the client acknowledged is known one last time.
        self.final_acked = self._acked()
        self.lost = True
        self.eof = True
        self.server.connections.discard(self)
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if self.pending:
            self.server.check_delivered(self)  # what it acknowledged is whole, the rest not

    def pause_writing(self) -> None:
        self.paused_writing = True

    def resume_writing(self) -> None:
        self.paused_writing = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _refuse(self) -> None:
        body = problem_body(
            503, "Service Unavailable", "The server is busy; try again in a few seconds."
        )
        head = (
            f"HTTP/1.1 503 Service Unavailable\r\nServer: {SERVER_VERSION}\r\n"
            f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 5\r\nConnection: close\r\n\r\n"
        ).encode()
        assert self.transport is not None
        self.transport.write(head + body)
        self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # --- waiting ---------------------------------------------------------------------------

    async def _wait_data(self, deadline: float) -> bool:
        """Wait for more bytes (or EOF) until ``deadline`` (loop time); False when it passed."""
        if self.eof:
            return True
        if self.transport is not None and self.transport.is_reading() is False:
            self.transport.resume_reading()
        waiter = self._waiter = self.loop.create_future()
        timer = self.loop.call_at(deadline, self._expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self.eof or self.loop.time() < deadline

    @staticmethod
    def _expire(waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the transport's buffer is below its high-water mark (send deadline)."""
        if not self.paused_writing or self.lost:
            if self.lost:
                raise ClientGone()
            return
        drain = self._drain = self.loop.create_future()
        try:
            await asyncio.wait_for(drain, self.limits.send_timeout)
        except TimeoutError as exc:
            raise ClientGone() from exc
        finally:
            self._drain = None
        if self.lost:
            raise ClientGone()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.lost or self.transport is None or self.transport.is_closing():
            raise ClientGone()
        self.transport.write(data)
        self.written += len(data)

    # --- the connection's life -------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while not self.server.stopping:
                request = await self._read_request()
                if request is None:
                    break
                self.busy = True
                handoff, self._handoff = self._handoff, None
                if handoff is not None and handoff[0] is request:
                    keep = await self._answer(request, handoff[1], handoff[2])
                else:
                    keep = await self._answer(request)
                self.busy = False
                if not keep:
                    break
        except (ClientGone, ConnectionError, OSError, ssl.SSLError):
            pass
        except Exception:  # noqa: BLE001 - a bug in the transport: log it, drop this connection only
            sys.stderr.write("tuiexport serve: internal error on a connection:\n")
            traceback.print_exc(file=sys.stderr)
        finally:
            self.busy = False
            if self.pending and not self.lost:
                with contextlib.suppress(Exception):
                    await self._acknowledged()
            if self.transport is not None and not self.transport.is_closing():
                self.transport.close()
            self.server.connections.discard(self)

    async def _acknowledged(self) -> None:
        """Before this server closes a connection whose last file is not confirmed yet: wait
        (send deadline) until the client acknowledged every byte, or went away. Closing at once
        would lose the acknowledgements still in flight (a delayed ACK: up to 40 ms), and a
        download the client got whole would be recorded as broken off."""
        deadline = self.loop.time() + self.limits.send_timeout
        delay = 0.001
        while not self.lost and self.loop.time() < deadline:
            acked = self._acked()
            if acked is None or acked >= self.written:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _read_request(self) -> Request | None:
        limits = self.limits
        # Idle: wait for the first byte of the next request (blank lines before it are allowed).
        # Requests the loop answers at once (see _answer_at_once) move the deadline on.
        self._idle_until = self.loop.time() + limits.idle_timeout
        while True:
            while self.buffer[:2] == b"\r\n" or self.buffer[:1] == b"\n":
                del self.buffer[: 2 if self.buffer[:1] == b"\r" else 1]
            if self._handoff is not None:
                return self._handoff[0]
            if self.buffer:
                break
            if self.eof or self.server.stopping:
                return None
            self._idle = True
            try:
                await self._wait_data(self._idle_until)
            finally:
                self._idle = False
            if (
                not self.buffer
                and self._handoff is None
                and not self.eof
                and self.loop.time() >= self._idle_until
            ):
                return None  # silent for idle_timeout since the last request
        started = time.monotonic()
        deadline = self.loop.time() + limits.head_timeout
        searched = 0
        while True:
            match = _HEAD_END.search(self.buffer, max(0, searched - 3))
            if match is not None:
                break
            searched = len(self.buffer)
            if searched > limits.head_bytes:
                if b"\n" not in self.buffer[: limits.head_bytes]:
                    await self._refuse_head(414, "The request line is too long.")
                else:
                    await self._refuse_head(
                        431, f"The request headers are larger than {limits.head_bytes:,} bytes."
                    )
                return None
            if self.eof:
                if self.buffer.strip():
                    await self._refuse_head(400, "The request ended before its headers did.")
                return None
            if not await self._wait_data(deadline):
                await self._refuse_head(408, "The request headers did not arrive in time.")
                return None
        end = match.end()
        if end > limits.head_bytes:
            await self._refuse_head(
                431, f"The request headers are larger than {limits.head_bytes:,} bytes."
            )
            return None
        raw = bytes(self.buffer[: match.start()])
        del self.buffer[:end]
        try:
            request = self._parse(raw)
            request.body = await self._read_body(request.headers, deadline)
        except BadRequest as exc:
            await self._send_problem_raw(exc.status, exc.detail, raw.split(b"\n", 1)[0], started)
            return None
        request.started = started
        return request

    def _parse(self, raw: bytes) -> Request:
        """The request whose head (without its blank line) is ``raw``; BadRequest when it is not
        valid HTTP/1.1. A client repeats its heads byte for byte (a poller, a revalidating
        consumer): what a head parsed to is kept by its bytes (only valid ones, at most
        :data:`PARSED_HEADS` of them, each at most :data:`PARSED_BYTES`), so a repeated head
        costs one dictionary look-up. The same bytes always parse the same way."""
        parsed = self.server.parsed
        head = parsed.get(raw)
        if head is None:
            head = self._parse_head(raw)
            if len(raw) <= PARSED_BYTES:
                if len(parsed) >= PARSED_HEADS:
                    parsed.clear()
                parsed[raw] = head
        method, target, path, query, version, headers, requestline, close = head
        return Request(
            method, target, path, query, version, headers, b"", self.client, requestline, close
        )

    def _parse_head(self, raw: bytes) -> _Head:
        limits = self.limits
        # ISO-8859-1 maps each byte to one character: split and check as text, decoded once.
        lines = raw.decode("iso-8859-1").split("\n")
        requestline = lines[0].removesuffix("\r")
        if not requestline.isascii():
            raise BadRequest(400, "The request line is not valid HTTP.")
        words = requestline.split(" ")
        if len(words) != 3 or not words[2].startswith("HTTP/"):
            raise BadRequest(400, "The request line is not valid HTTP.")
        method, target, version = words
        number = version[5:]
        if len(number) != 3 or number[1] != "." or not (number[0] + number[2]).isdigit():
            raise BadRequest(400, "The HTTP version in the request line is not valid.")
        if number not in ("1.0", "1.1"):
            # 400, not 505: HTTP/2 arrives via ALPN/upgrade, never in an HTTP/1 request line.
            raise BadRequest(400, "Use HTTP/1.1.")
        if not _METHOD.fullmatch(method):
            raise BadRequest(400, "The request line is not valid HTTP.")
        if len(target) > limits.head_bytes:
            raise BadRequest(414, "The request line is too long.")
        headers = Headers()
        hosts = 0
        if len(lines) - 1 > limits.header_count:
            raise BadRequest(431, f"The request has more than {limits.header_count} headers.")
        for line in lines[1:]:
            text = line.removesuffix("\r")
            name, sep, value = text.partition(":")
            if not sep or not _TOKEN.fullmatch(name):
                # Includes obs-fold (a line starting with a space), which RFC 9112 lets us refuse.
                raise BadRequest(400, "A request header is malformed.")
            key, value = name.lower(), value.strip(" \t")
            if "\r" in value or "\x00" in value:  # (no "\n": the head was split on it)
                raise BadRequest(400, "A request header is malformed.")
            if key == "host":
                hosts += 1
            if key in headers:
                if key in ("content-length", "host"):
                    if key == "host":
                        raise BadRequest(400, "The request has more than one Host header.")
                    if headers[key] != value:
                        raise BadRequest(400, "The request has conflicting Content-Length headers.")
                    continue
                headers[key] = f"{headers[key]}, {value}"
            else:
                headers[key] = value
        # RFC 9112 3.2: a client sends Host in every HTTP/1.1 request, exactly once.
        if number == "1.1" and hosts == 0:
            raise BadRequest(400, "An HTTP/1.1 request needs a Host header.")
        host = headers.get("host")
        if host is not None and not _HOST.fullmatch(host):
            raise BadRequest(400, "The Host header is not valid.")
        # The request target: origin-form, or absolute-form (RFC 9112 3.2.2: accepted, its
        # authority replaces Host).
        if target.startswith("/"):
            path_query = target
        elif target[:7].lower() == "http://" or target[:8].lower() == "https://":
            parts = urlsplit(target)
            if not parts.netloc or "@" in parts.netloc:
                raise BadRequest(400, "The request target is not a valid absolute URL.")
            headers["host"] = parts.netloc
            path_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            target = path_query
        else:
            raise BadRequest(400, "The request line is not valid HTTP.")
        path, _, query = path_query.partition("?")
        connection = (headers.get("connection") or "").lower()
        close = "close" in connection or (number == "1.0" and "keep-alive" not in connection)
        return (
            method,
            target,
            path,
            query.partition("#")[0],
            version,
            headers,
            requestline,
            close,
        )

    async def _read_body(self, headers: Headers, deadline: float) -> bytes:
        limits = self.limits
        if headers.get("transfer-encoding"):
            raise BadRequest(411, "Send the request body with a Content-Length, not chunked.")
        raw = headers.get("content-length")
        if raw is None:
            return b""
        if not raw.isdigit() or len(raw) > 18:
            raise BadRequest(400, "The Content-Length header is not a number.")
        length = int(raw)
        if length > limits.body_bytes:
            raise BadRequest(413, f"The request body is larger than {limits.body_bytes:,} bytes.")
        if length and (headers.get("expect") or "").lower() == "100-continue":
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        while len(self.buffer) < length:
            if self.eof:
                raise ClientGone()
            if not await self._wait_data(deadline):
                raise BadRequest(408, "The request body did not arrive in time.")
        body = bytes(self.buffer[:length])
        del self.buffer[:length]
        return body

    async def _refuse_head(self, status: int, detail: str) -> None:
        line = bytes(self.buffer.split(b"\n", 1)[0][:200])
        await self._send_problem_raw(status, detail, line, time.monotonic())

    async def _send_problem_raw(
        self, status: int, detail: str, line: bytes, started: float
    ) -> None:
        body = problem_body(status, _title(status), detail)
        response = Response(
            status,
            [("Content-Type", "application/problem+json"), ("Content-Length", str(len(body)))],
            body,
        )
        requestline = line.removesuffix(b"\r").decode("iso-8859-1")
        with contextlib.suppress(ClientGone):
            self.write(self._head(response, "HTTP/1.1", close=True) + body)
        self.server.log(self.client, requestline, status, len(body), time.monotonic() - started)
        if status in (413, 431):
            await self._linger()

    async def _linger(self) -> None:
        """After refusing an oversized request, read (and drop) what the client is still sending
        for a moment, so it sees our answer instead of a reset."""
        if self.transport is None:
            return
        with contextlib.suppress(OSError, RuntimeError, NotImplementedError):
            if self.transport.can_write_eof():
                self.transport.write_eof()
        deadline = self.loop.time() + 1.0
        while not self.eof and self.loop.time() < deadline:
            self.buffer.clear()
            await self._wait_data(deadline)

    # --- answering -------------------------------------------------------------------------

    def _answer_at_once(self) -> None:
        """The hot path, in ``data_received`` while the coroutine waits for the next request:
        complete bodiless requests whose answer needs nothing but the loop (``/healthz``, a 304,
        a small file the share cache knows) are parsed, answered and logged right here, without
        waking the coroutine (no future, no timer, no task step per request). A head answered
        before whose :class:`Memo` still holds costs a dictionary look-up and one write. The
        first request that needs more (a body, the pool, a stream, a refusal, a closing answer,
        a full send buffer) is handed to the coroutine as it is, and everything after it waits
        for the coroutine: nothing is answered out of order. A malformed head is left in the
        buffer for the coroutine, which parses it again and refuses it."""
        if self._retry is not None:
            return  # the first request waits for its timer (see _ask_again)
        buffer = self.buffer
        server = self.server
        memos = server.memos
        transport = self.transport
        while buffer and self._handoff is None:
            if (
                self.paused_writing
                or server.stopping
                or transport is None
                or transport.is_closing()
                or buffer[0] in b"\r\n"  # blank lines before a request: the coroutine's
            ):
                return
            if memos:
                # A kept head has no line break of its own at its end and no blank line inside
                # (it was cut at the first one), so the first CRLF CRLF ends it exactly where
                # the parser's search would.
                end = buffer.find(b"\r\n\r\n")
                memo = memos.get(bytes(buffer[:end])) if end > 0 else None
                if memo is not None and memo.holds():
                    del buffer[: end + 4]
                    started = time.monotonic()
                    # One join: a chain of + copies a small file's body once per piece.
                    if memo.again is None:
                        self.write(b"".join((memo.start, _date_block(), memo.rest, memo.body)))
                    else:
                        value, delivery = memo.again()
                        self.write(
                            b"".join(
                                (
                                    memo.start,
                                    _date_block(),
                                    memo.rest,
                                    value.encode("latin-1"),
                                    memo.after,
                                    memo.body,
                                )
                            )
                        )
                        deadline = self.loop.time() + self.limits.send_timeout
                        item = _Unconfirmed(self, self.written, delivery, len(memo.body), deadline)
                        server.confirm(item)
                    if memo.on_hit is not None:
                        memo.on_hit()
                    self._idle_until = self.loop.time() + self.limits.idle_timeout
                    server.log_memo(self.client, memo, time.monotonic() - started)
                    continue
            match = _HEAD_END.search(buffer)
            if match is None or match.end() > self.limits.head_bytes:
                return
            raw = bytes(buffer[: match.start()])
            try:
                request = self._parse(raw)
            except BadRequest:
                return
            if "content-length" in request.headers or "transfer-encoding" in request.headers:
                return  # a body to read (with its deadline): the coroutine's
            request.started = time.monotonic()
            exchange = server.exchange(request, server)
            try:
                done = exchange.fast()
            except Exception:  # noqa: BLE001 - the fast path is an optimisation: the pool decides
                done = False
            if not done and exchange.later and self._retries < RETRIES:
                # Answerable here in a moment (the share cache cannot tell for a millisecond
                # whether the database changed): left in the buffer, asked again by a timer,
                # rather than a trip to the pool.
                self._retry = self.loop.call_later(RETRY_AFTER, self._ask_again)
                return
            self._retries = 0
            del buffer[: match.end()]
            response = exchange.response if done else None
            if (
                response is None
                or exchange.close_connection
                or not self._send_at_once(request, response, exchange, raw)
            ):
                exchange.response = response
                self._handoff = (request, exchange, response)
                self._idle = False
                return
            self._idle_until = self.loop.time() + self.limits.idle_timeout

    def _send_at_once(
        self, request: Request, response: Response, exchange: Exchange, raw: bytes
    ) -> bool:
        """Send a response that needs no waiting (bytes, or a small file whose delivery is
        confirmed beside the connection) and log it; False (nothing done) for any other. An
        answer in bytes that :meth:`Exchange.fast` allowed to be kept is kept for ``raw``."""
        body = response.body
        memo = exchange.memo if len(raw) <= PARSED_BYTES else None
        if isinstance(body, FileBody):
            if not self._small_file(body):
                return False
            start = _status_bytes(response.status)
            rest = self._head_rest(response, request.version, close=False)
            sent = self._send_small_file(start + _date_block() + rest, body)
            again = exchange.memo_again
            if memo is not None and again is not None and body.data is not None:
                # A whole small file in memory, recorded per download: kept with a hole for
                # the value that differs per download (its log ID).
                hole = f": {again[0]}\r\n".encode("latin-1")
                at = rest.find(hole)
                if at >= 0 and rest.find(hole, at + 1) < 0:
                    self._keep(
                        raw,
                        request,
                        response.status,
                        Memo(
                            memo[0],
                            memo[1],
                            start,
                            rest[: at + 2],
                            body.data,
                            "",
                            again[1],
                            rest[at + len(hole) - 2 :],
                        ),
                    )
        elif isinstance(body, bytes):
            start = _status_bytes(response.status)
            rest = self._head_rest(response, request.version, close=False)
            self.write(start + _date_block() + rest + body)
            sent = len(body)
            if memo is not None:
                self._keep(raw, request, response.status, Memo(*memo, start, rest, body, ""))
        else:
            return False
        self.server.log(
            self.client,
            request.requestline,
            response.status,
            sent,
            time.monotonic() - request.started,
        )
        return True

    def _keep(self, raw: bytes, request: Request, status: int, memo: Memo) -> None:
        """Keep ``memo`` for the request head ``raw`` (see :class:`Memo`)."""
        server = self.server
        memos = server.memos
        old = memos.pop(raw, None)
        if old is not None:
            server.memo_bytes -= len(old.body)
        if len(memos) >= MEMOS or server.memo_bytes + len(memo.body) > MEMO_BYTES:
            memos.clear()
            server.memo_bytes = 0
        memo.log_tail = f'"{_redacted(request.requestline)}" {status} {len(memo.body)} '
        memos[raw] = memo
        server.memo_bytes += len(memo.body)

    def _head(self, response: Response, version: str, *, close: bool) -> bytes:
        return (
            _status_bytes(response.status)
            + _date_block()
            + self._head_rest(response, version, close=close)
        )

    @staticmethod
    def _head_rest(response: Response, version: str, *, close: bool) -> bytes:
        """The head's lines after ``Server`` and ``Date``, and its blank line."""
        lines = [f"{name}: {value}\r\n" for name, value in response.headers]
        if close:
            lines.append("Connection: close\r\n")
        elif version == "HTTP/1.0":
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def _answer(
        self,
        request: Request,
        exchange: Exchange | None = None,
        response: Response | None = None,
    ) -> bool:
        """Handle one request; True when the connection may serve another. ``exchange``: one
        whose fast() was already asked (``response``: its answer, None: the pool's)."""
        started = request.started
        if exchange is None:
            exchange = self.server.exchange(request, self.server)
            try:
                if exchange.fast():
                    response = exchange.response
            except Exception:  # noqa: BLE001 - the fast path is an optimisation: the pool decides
                response = None
        if response is None:
            exchange.response = None
            try:
                response = await self.loop.run_in_executor(self.server.pool, exchange.run)
            except RuntimeError:  # the pool is shut down: the server is stopping
                return False
        sent = 0
        status = response.status
        try:
            status, sent = await self._send(exchange, request, response)
        finally:
            self.server.log(
                self.client, request.requestline, status, sent, time.monotonic() - started
            )
        return not exchange.close_connection and not self.server.stopping and not self.lost

    async def _send(
        self, exchange: Exchange, request: Request, response: Response
    ) -> tuple[int, int]:
        body = response.body
        close = exchange.close_connection
        if isinstance(body, StreamBody):
            return await self._send_stream(exchange, request, body)
        head = self._head(response, request.version, close=close)
        if isinstance(body, FileBody):
            return response.status, await self._send_file(head, body)
        self.write(head + body if body else head)
        if response.status in (413, 431) and close:
            await self._linger()
        else:
            await self.drain()
        return response.status, len(body)

    def _small_file(self, body: FileBody) -> bool:
        """Whether ``body`` goes out at once (:meth:`_send_small_file`)."""
        return (
            body.count <= SMALL_FILE
            and body.before_send is None
            and (not body.confirm or self._tcp_socket is not None)
        )

    def _send_small_file(self, head: bytes, body: FileBody) -> int:
        """A small file with its head in one write (loop.sendfile's hand-over costs more than
        the copy: measured about 170 ms per response under keep-alive load against 12 ms),
        its delivery confirmed beside the connection. Returns the bytes sent. When nothing
        went out (the file shrank; the connection was closing: then ``on_abandon``, where given,
        instead of ``on_incomplete``), no download began."""
        sent = 0
        complete = False
        began = False
        try:
            body.file.seek(body.offset)
            data = body.file.read(body.count)
            if len(data) != body.count:
                raise ClientGone()  # the file shrank under us
            if body.on_start is not None:
                body.on_start()
            began = True
            try:
                self.write(head + data)  # counts head and data in self.written
            except ClientGone:
                if body.on_abandon is not None:
                    began = False
                    body.on_abandon()
                raise
            sent = len(data)
            complete = True
            self._watch(body, sent)
            return sent
        finally:
            if began:
                _closed(body, complete, sent)
            else:
                body.file.close()

    def _watch(self, body: FileBody, sent: int) -> None:
        """After the last byte of ``body``: ``on_complete`` once the client acknowledged it (or at
        once without ``confirm``), watched beside the connection, which goes on with its next
        request (waiting here would cost a delayed ACK, up to 40 ms, per download)."""
        if body.confirm:
            deadline = self.loop.time() + self.limits.send_timeout
            self.server.confirm(_Unconfirmed(self, self.written, body, sent, deadline))
            return
        if body.on_complete is not None:
            body.on_complete()
        if body.on_end is not None:
            body.on_end()

    async def _send_file(self, head: bytes, body: FileBody) -> int:
        if self._small_file(body):
            sent = self._send_small_file(head, body)
            await self.drain()
            return sent
        sent = 0
        complete = False
        try:
            if body.on_start is not None:
                body.on_start()
            if body.before_send is not None:
                await self.loop.run_in_executor(self.server.pool, body.before_send)
            offset, end = body.offset, body.offset + body.count
            if body.count <= SMALL_FILE:
                # Small, but its delivery is awaited here (TLS: see _acked).
                body.file.seek(offset)
                data = body.file.read(body.count)
                if len(data) != body.count:
                    raise ClientGone()  # the file shrank under us
                self.write(head + data)
                offset = end
                sent = len(data)
                await self.drain()
            else:
                self.write(head)
            piece = 64 << 20
            transport = self.transport
            assert transport is not None
            # A file without a descriptor (an object of the artifact store) is read on the pool
            # in pieces of a MiB (loop.sendfile's own fallback reads 16 KiB per hop).
            copy = self._copy_pieces if not _has_fd(body.file) else self.loop.sendfile
            while offset < end:
                if self.lost:
                    raise ClientGone()
                count = min(piece, end - offset)
                try:
                    n = await asyncio.wait_for(
                        copy(transport, body.file, offset, count),
                        self.limits.send_timeout + count / (64 * 1024),
                    )
                except (TimeoutError, OSError, RuntimeError) as exc:
                    raise ClientGone() from exc
                if n == 0:
                    raise ClientGone()  # the file shrank under us
                offset += n
                sent += n
                self.written += n
            if body.confirm and self._acked() is not None:
                complete = True  # plain TCP: the acknowledgements are watched beside it
                self._watch(body, sent)
                return sent
            if body.confirm:
                await self._delivered()
            complete = True
            if body.on_complete is not None:
                body.on_complete()
            if body.on_end is not None:
                body.on_end()
            return sent
        finally:
            _closed(body, complete, sent)

    async def _copy_pieces(
        self, transport: asyncio.Transport, file: BinaryIO, offset: int, count: int
    ) -> int:
        """``loop.sendfile`` for a file without a descriptor: pieces of a MiB read on the pool
        and written as they come. Returns the bytes sent (fewer: the file ended)."""
        sent = 0
        while sent < count:
            data = await self.loop.run_in_executor(
                self.server.pool, _read_at, file, offset + sent, min(count - sent, 1 << 20)
            )
            if not data:
                break
            transport.write(data)
            sent += len(data)
            await self.drain()
        return sent

    def _acked(self) -> int | None:
        """Bytes of this connection the client's TCP stack acknowledged (Linux TCP_INFO
        ``tcpi_bytes_acked``); None over TLS (its records are not our bytes) or where unknown."""
        if self.final_acked is not None:
            return self.final_acked
        sock = self._tcp_socket
        if sock is None:
            return None
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 136)
        except (OSError, AttributeError):
            return None
        if len(info) < 128:
            return None
        return int(struct.unpack_from("Q", info, 120)[0])

    async def _delivered(self) -> None:
        """Wait until every byte written was acknowledged by the client's TCP stack."""
        transport = self.transport
        assert transport is not None
        sock = transport.get_extra_info("socket")
        deadline = self.loop.time() + self.limits.send_timeout
        delay = 0.0005
        while True:
            if self.lost:
                raise ClientGone()
            if transport.get_write_buffer_size() == 0:
                if sock is None:
                    return
                try:
                    queued = struct.unpack(
                        "i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
                    )[0]
                except OSError:
                    return  # no such ioctl here: the kernel took it, which is all we know
                if queued == 0:
                    return
            if self.loop.time() > deadline:
                raise ClientGone()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _send_stream(
        self, exchange: Exchange, request: Request, body: StreamBody
    ) -> tuple[int, int]:
        pool = self.server.pool
        chunks = body.chunks
        sent = 0
        head_sent = False
        status = 200
        chunked = request.version != "HTTP/1.0"
        try:
            while True:
                try:
                    finished, item = await self.loop.run_in_executor(pool, _next, chunks)
                    if finished:
                        raise _Finished(item)
                except _Finished as stop:
                    trailer: list[tuple[str, str]] = stop.value or []
                    if chunked:
                        fields = "".join(f"{n}: {v}\r\n" for n, v in trailer)
                        self.write(f"0\r\n{fields}\r\n".encode("latin-1"))
                    await self.drain()
                    if not chunked:
                        exchange.close_connection = True
                    return status, sent
                except ClientGone:
                    exchange.close_connection = True
                    if not head_sent:
                        # Nothing went out: say so properly.
                        exchange.send_problem(500, "The export failed; see the run's history.")
                        assert exchange.response is not None
                        return await self._send(exchange, request, exchange.response)
                    self.abort()
                    return status, sent
                if isinstance(item, Response):
                    return await self._send(exchange, request, item)
                if isinstance(item, Head):
                    status = item.status
                    headers = list(item.headers)
                    if chunked:
                        headers.append(("Transfer-Encoding", "chunked"))
                    else:
                        exchange.close_connection = True
                    self.write(
                        self._head(
                            Response(status, headers),
                            request.version,
                            close=exchange.close_connection,
                        )
                    )
                    head_sent = True
                    continue
                if not item:
                    if self.lost:
                        raise ClientGone()
                    await asyncio.sleep(0.02)
                    continue
                if chunked:
                    self.write(b"%X\r\n" % len(item))
                    self.write(item)
                    self.write(b"\r\n")
                else:
                    self.write(item)
                sent += len(item)
                body.sent[0] = sent
                await self.drain()
        except ClientGone:
            exchange.close_connection = True
            with contextlib.suppress(Exception):
                await self.loop.run_in_executor(pool, _throw, chunks)
            self.abort()
            return status, sent


@dataclass(eq=False, slots=True)
class Delivery:
    """What to call once a response's bytes reached the client or did not (see
    :meth:`HTTPServer.confirm`; a :class:`FileBody` has the same three)."""

    on_complete: Callable[[], object] | None = None
    on_incomplete: Callable[[int], object] | None = None
    on_end: Callable[[], None] | None = None


@dataclass(eq=False, slots=True)
class _Unconfirmed:
    """A file sent on ``connection`` whose bytes up to ``target`` (of everything written to it)
    the client has not acknowledged yet."""

    connection: Connection
    target: int
    body: FileBody | Delivery
    sent: int
    deadline: float


class _Finished(Exception):
    def __init__(self, value: Any):
        super().__init__()
        self.value = value


def _next(chunks: Iterator[Any]) -> tuple[bool, Any]:
    """(False, the next item) or (True, the generator's return value): StopIteration cannot
    cross a future."""
    try:
        return False, next(chunks)
    except StopIteration as stop:
        return True, stop.value


def _close(connections: list[Connection]) -> None:
    for connection in connections:
        if connection.transport is not None:
            connection.transport.close()


def _abort(connections: list[Connection]) -> None:
    for connection in connections:
        connection.abort()


def _throw(chunks: Iterator[Any]) -> None:
    throw = getattr(chunks, "throw", None)
    if throw is None:
        return
    with contextlib.suppress(ClientGone, StopIteration):
        throw(ClientGone())
    with contextlib.suppress(Exception):
        chunks.close()  # type: ignore[attr-defined]  # a generator (checked by throw above)


@functools.cache  # statuses come from the code: a bounded set
def _status_line(status: int) -> str:
    return f"HTTP/1.1 {status} {_title(status)}"


@functools.cache  # statuses come from the code: a bounded set
def _status_bytes(status: int) -> bytes:
    return f"{_status_line(status)}\r\n".encode("latin-1")


_DATE_CACHE: list[Any] = [0, b""]


def _date_block() -> bytes:
    """The ``Server`` and ``Date`` lines of a head (the date changes once a second)."""
    second = int(time.time())
    if _DATE_CACHE[0] != second:
        when = http_date(datetime.fromtimestamp(second, UTC))
        _DATE_CACHE[1] = f"Server: {SERVER_VERSION}\r\nDate: {when}\r\n".encode("latin-1")
        _DATE_CACHE[0] = second
    return bytes(_DATE_CACHE[1])


def _has_fd(file: BinaryIO) -> bool:
    try:
        file.fileno()
    except (AttributeError, OSError):  # io.UnsupportedOperation is an OSError
        return False
    return True


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    file.seek(offset)
    return file.read(size)


def _closed(body: FileBody, complete: bool, sent: int) -> None:
    """A file body's sending ended: its file closed, and if it did not go out whole, its
    ``on_incomplete`` and ``on_end`` called (a whole one calls them when acknowledged)."""
    body.file.close()
    if not complete:
        if body.on_incomplete is not None:
            body.on_incomplete(sent)
        if body.on_end is not None:
            body.on_end()
