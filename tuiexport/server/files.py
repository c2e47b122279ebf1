"""Sending export files: finished artifacts (conditional, HEAD, gzip, sendfile) and runs in
progress (following the part file, chunked, cut unless the run succeeded)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, overload
from urllib.parse import quote

from tuiexport import config, service
from tuiexport.exporters import registry
from tuiexport.management import history, liveness
from tuiexport.management.history import new_log_id, record_served, served_incomplete
from tuiexport.management.views import RunView
from tuiexport.server.runs import RETRY_AFTER, ActiveRun, artifact_file
from tuiexport.server.transport import PROBLEM_TYPE, BaseHandler, ClientGone, http_date

if TYPE_CHECKING:
    from tuiexport.exporters.base import Writer

#: Stream pieces of this size; big enough for few syscalls, small enough for a quick first byte.
CHUNK = 256 * 1024
#: While a run has produced nothing yet, answer with headers after this long anyway, so that
#: clients and proxies see the response begin.
HEADERS_AFTER = 0.5
#: zlib level for on-the-fly gzip: level 1 keeps most of the ratio at several times the speed.
GZIP_LEVEL = 1


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class FileResponses(BaseHandler):
    """The file-sending half of the share handler."""

    def serve_artifact(self, run: RunView, path: Path, *, record: bool) -> None:
        """A finished artifact: conditional GET, HEAD, gzip, or sendfile of the bytes as they are."""
        writer = registry.get_writer(run.profile, run.output)
        gzip = self.accepts_gzip() and not is_zip(writer)
        etag = f'"{run.sha256}-gz"' if gzip else f'"{run.sha256}"'
        when = run.finished or run.started
        common = [
            ("ETag", etag),
            ("Last-Modified", http_date(_utc(when))),
            ("Cache-Control", "private, no-cache"),
            ("Vary", "Accept-Encoding"),
        ]
        if self.not_modified(run.sha256, when):
            self.start_response(304, common)
            return
        log_id = None
        if record and self.command != "HEAD":
            log_id = new_log_id()
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except OSError:
            self.send_problem(
                410, f"The file of run {run.log_id} is gone; try again.", type=PROBLEM_TYPE + "gone"
            )
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            headers = [
                ("Content-Type", writer.media_type),
                ("Content-Disposition", disposition(run.export_name, when, writer.extension)),
                *common,
                ("X-Log-Id", log_id or run.log_id),
            ]
            if gzip:
                headers.append(("Content-Encoding", "gzip"))
            else:
                headers.append(("Content-Length", str(size)))
            if self.command == "HEAD":
                self.start_response(200, headers)
                return
            beat: contextlib.AbstractContextManager[object] = contextlib.nullcontext()

            def complete() -> None:
                # Before the last byte: a client that has the whole file finds it recorded so.
                if log_id is not None:
                    history.served_complete(log_id, run.status)

            if log_id is not None:
                # Recorded before the bytes go out, so a client that has the file also finds its
                # history entry: "running" (with heartbeats) until all but the last byte went
                # out, then the source's status, or "cancelled" when the client broke off; a
                # server that dies meanwhile leaves it to the next start to mark "interrupted".
                record_served(run, log_id=log_id, pending=True)
                beat = liveness.Heartbeat(log_id)
            sent = False
            try:
                with beat:
                    if gzip:
                        self.begin_stream(200, headers)
                        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
                        while chunk := f.read(CHUNK):
                            self.write_chunk(compressor.compress(chunk))
                        self.write_chunk(compressor.flush())
                        complete()
                        self.end_stream()  # the last chunk: the body is complete only now
                    else:
                        self.start_response(200, headers)
                        self.send_file(f, size, before_last=complete)
                sent = True
            finally:
                if log_id is not None and not sent:
                    served_incomplete(log_id, self.bytes_sent, size)

    def send_file(
        self, f: BinaryIO, size: int, before_last: Callable[[], None] = lambda: None
    ) -> None:
        """os.sendfile on a blocking socket, bounded by SO_SNDTIMEO: socket.sendfile() with a
        Python timeout polls a non-blocking socket instead, and loses a quarter of the throughput
        with several clients on two cores.

        ``before_last`` runs before the last byte goes out: no client has the whole file before
        it ran (the history says the download is complete before the client can know it is)."""
        sock = self.connection
        split = max(size - 1, 0)
        if not hasattr(os, "sendfile") or type(sock) is not socket.socket:
            for start, end in ((0, split), (split, size)):
                if start == split:
                    before_last()
                try:  # TLS: plain sends
                    sent = sock.sendfile(f, start, end - start) if end > start else 0
                except (OSError, ValueError) as exc:
                    raise ClientGone() from exc
                self.bytes_sent += sent
                if sent != end - start:
                    raise ClientGone()
            return
        timeout = self.limits.send_timeout
        seconds = int(timeout)
        timeval = struct.pack("ll", seconds, int((timeout - seconds) * 1e6))
        sock.settimeout(None)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        offset, fd, out = 0, f.fileno(), sock.fileno()
        try:
            for end in (split, size):
                if end == size:
                    before_last()
                while offset < end:
                    try:
                        sent = os.sendfile(out, fd, offset, end - offset)
                    except BlockingIOError as exc:  # SO_SNDTIMEO passed: the client stopped
                        raise ClientGone() from exc
                    except OSError as exc:
                        raise ClientGone() from exc
                    if sent == 0:  # the file shrank under us
                        raise ClientGone()
                    offset += sent
                    self.bytes_sent += sent
        finally:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 0, 0))
                sock.settimeout(timeout)
            except OSError:
                pass

    def stream_run(self, active: ActiveRun, *, record: bool) -> None:
        """Answer with a run in progress: follow its part file while it grows (not for ZIPs, whose
        directory is written last), and end the response cleanly only when the run succeeded.

        The head goes out as soon as there is data, or after HEADERS_AFTER seconds at most (the
        selection of a big catalog takes a moment before the first byte is written)."""
        prepared = active.prepared
        writer = prepared.writer
        if is_zip(writer) or not prepared.part_path.resolve().is_relative_to(
            config.artifacts_dir().resolve()
        ):
            prepared.done.wait()
            self.after_run(active, record=record)
            return
        f = None
        give_up = time.monotonic() + HEADERS_AFTER
        while not prepared.done.is_set() and time.monotonic() < give_up:
            f = f or _open_or_none(prepared.part_path)
            if f is not None and os.fstat(f.fileno()).st_size > 0:
                break
            prepared.done.wait(0.01)
        if prepared.done.is_set():
            # Finished before we began: answer with the whole file (length, ETag, sendfile).
            if f is not None:
                f.close()
            self.after_run(active, record=record)
            return
        gzip = self.accepts_gzip()
        headers = [
            ("Content-Type", writer.media_type),
            (
                "Content-Disposition",
                disposition(prepared.definition.name, _utc(prepared.run.started), writer.extension),
            ),
            ("Cache-Control", "private, no-cache"),
            ("Vary", "Accept-Encoding"),
            ("X-Log-Id", active.log_id),
        ]
        if gzip:
            headers.append(("Content-Encoding", "gzip"))
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
        digest = hashlib.sha256()
        try:
            self.begin_stream(200, headers)
            while True:
                finished = prepared.done.is_set()
                if f is None:
                    f = _open_or_none(prepared.part_path)
                    if f is None and finished:
                        # Renamed before we opened it: read the finished file from the start.
                        outcome = active.outcome()
                        path = (
                            artifact_file(outcome)
                            if outcome.status in ("success", "warning")
                            else None
                        )
                        f = _open_or_none(path) if path else None
                        if f is None:
                            break
                        finished = True
                chunk = f.read(CHUNK) if f is not None else b""
                if chunk:
                    digest.update(chunk)
                    self.write_chunk(compressor.compress(chunk) if compressor else chunk)
                    continue
                if finished:
                    break
                prepared.done.wait(0.02)
        except ClientGone:
            if (
                record
            ):  # the run goes on (its artifact serves the next request); this download ended
                record_served(
                    service.get_run(active.log_id),
                    complete=False,
                    sent=self.bytes_sent,
                    note=f"Followed run {active.log_id} while it was running.",
                )
            raise
        finally:
            if f is not None:
                f.close()
        outcome = active.outcome()
        if outcome.status not in ("success", "warning") or outcome.sha256 != digest.hexdigest():
            # Cut the response without its last chunk: the client sees a broken transfer, never a
            # file that looks complete. The run's own history entry says what went wrong.
            self.close_connection = True
            raise ClientGone()
        served = None
        if record:
            served = record_served(
                outcome,
                note=f"Served run {outcome.log_id} while it was running "
                "(the same export was requested again before it finished).",
            )
        try:
            if compressor:
                self.write_chunk(compressor.flush())
            self.end_stream()
        except ClientGone:
            if served is not None:
                served_incomplete(served.log_id, self.bytes_sent, outcome.size)
            raise

    def after_run(self, active: ActiveRun, *, record: bool) -> None:
        outcome = active.outcome()
        path = artifact_file(outcome) if outcome.status in ("success", "warning") else None
        if path is not None:
            self.serve_artifact(outcome, path, record=record)
        elif outcome.status == "cancelled":
            self.send_problem(
                503,
                f"The run {outcome.log_id} was cancelled (the server is stopping); try again.",
                headers=[("Retry-After", str(RETRY_AFTER))],
                type=PROBLEM_TYPE + "cancelled",
            )
        else:
            detail = " ".join(outcome.messages[-1:]) or "The export failed."
            self.send_problem(
                500,
                f"The run {outcome.log_id} failed: {detail}",
                type=PROBLEM_TYPE + "run-failed",
                logId=outcome.log_id,
            )

    # --- HTTP details -------------------------------------------------------------------

    def begin_stream(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.chunked = self.request_version != "HTTP/1.0"
        if self.chunked:
            headers = [*headers, ("Transfer-Encoding", "chunked")]
        else:
            self.close_connection = True  # the end of the body is the end of the connection
        self.start_response(status, headers)

    def write_chunk(self, data: bytes) -> None:
        if not data:  # an empty chunk would end the body
            return
        if self.chunked:
            self.write(b"%X\r\n%b\r\n" % (len(data), data))
        else:
            self.write(data)

    def end_stream(self) -> None:
        if self.chunked:
            self.write(b"0\r\n\r\n")

    def accepts_gzip(self) -> bool:
        for item in (self.headers.get("accept-encoding") or "").split(","):
            coding, _, params = item.strip().partition(";")
            if coding.strip().lower() in ("gzip", "x-gzip"):
                q = params.strip().lower()
                return not (q.startswith("q=") and q[2:].strip() in ("0", "0.0", "0.00", "0.000"))
        return False

    def not_modified(self, sha256: str | None, when: datetime) -> bool:
        inm = self.headers.get("if-none-match")
        if inm is not None:
            if inm.strip() == "*":
                return True
            tags = {t.strip().removeprefix("W/").strip('"') for t in inm.split(",")}
            return bool(sha256) and bool(tags & {sha256, f"{sha256}-gz"})
        ims = self.headers.get("if-modified-since")
        if ims:
            try:
                since = parsedate_to_datetime(ims)
            except (TypeError, ValueError):
                return False
            if since.tzinfo is None:
                since = since.replace(tzinfo=UTC)
            return _utc(when).replace(microsecond=0) <= since
        return False


def _open_or_none(path: str | os.PathLike[str]) -> BinaryIO | None:
    try:
        return open(path, "rb")
    except OSError:
        return None


def is_zip(writer: Writer) -> bool:
    return writer.extension in ("zip", "xlsx") or writer.media_type == "application/zip"


def disposition(name: str, when: datetime, extension: str) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients beside the UTF-8 ``filename*``."""
    plain = service.download_name(name, when, extension, ascii_only=True)
    full = service.download_name(name, when, extension)
    if plain == full:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"
