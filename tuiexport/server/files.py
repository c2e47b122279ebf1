"""Sending export files: finished artifacts (conditional, HEAD, ranges, gzip, sendfile) and runs
in progress (following the part file, chunked, cut unless the run succeeded)."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import io
import os
import re
import threading
import time
import zlib
from collections.abc import Generator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast, overload
from urllib.parse import quote

from tuiexport import config, service
from tuiexport.errors import NotFound
from tuiexport.management import liveness
from tuiexport.management.views import LinkView, RunView
from tuiexport.server.recorder import Recorder
from tuiexport.server.runs import RETRY_AFTER, ActiveRun, artifact_file
from tuiexport.server.transport import (
    PROBLEM_TYPE,
    SMALL_FILE,
    WAIT,
    ClientGone,
    Delivery,
    Exchange,
    FileBody,
    Head,
    Response,
    StreamBody,
    http_date,
)

if TYPE_CHECKING:
    from tuiexport.service import Writer

#: Stream pieces of this size; big enough for few syscalls, small enough for a quick first byte.
CHUNK = 256 * 1024
#: While a run has produced nothing yet, the response waits for its first byte; after this long
#: the head goes out anyway (proxies with a read timeout see the response begin). The first
#: byte a client sees is then the export's first byte, not an early head.
HEADERS_AFTER = 15.0
#: zlib level for on-the-fly gzip: level 1 keeps most of the ratio at several times the speed.
GZIP_LEVEL = 1
#: Downloads at least this large wait (on the pool, not the loop) until their history row is
#: written before their first byte goes out; smaller ones are recorded a few ms later.
RECORD_FIRST = 1 << 20
#: Downloads at least this large beat a heartbeat into their history row while they go out.
HEARTBEAT_FROM = 16 << 20

_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


@overload
def _utc(value: datetime) -> datetime: ...
@overload
def _utc(value: None) -> None: ...
def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


@functools.lru_cache(maxsize=256)  # the same few artifacts again and again
def repr_digest(sha256_hex: str) -> str:
    """RFC 9530 ``Repr-Digest`` of a representation whose SHA-256 is ``sha256_hex``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


class FileResponses(Exchange):
    """The file-sending half of the share handler (runs on a pool thread)."""

    #: Set on the subclass start_server creates.
    recorder: Recorder
    #: The share link this request came through (its downloads name it in the history).
    share_link: LinkView | None = None

    def serve_artifact(
        self,
        run: RunView,
        path: Path | service.StoredFile,
        *,
        record: bool,
        data: bytes | None = None,
        extra: tuple[tuple[str, str], ...] = (),
        note: str = "",
    ) -> None:
        """A finished artifact: conditional GET, HEAD, a byte range, gzip, or the bytes as they
        are (``loop.sendfile``). ``data``: the file's bytes, already in memory (a small one);
        ``extra`` headers go on every answer, ``note`` into the history row of the download.

        A file in the object store (``path`` a StoredFile) is answered the same way, its bytes
        streamed through the server from ranged reads of the store (or, where the settings
        allow, a redirect to a short-lived presigned URL: :meth:`redirect_to_store`)."""
        writer = service.get_writer(run.profile, run.output)
        when = run.finished or run.started
        etag_plain = f'"{run.sha256}"'
        common = [
            ("ETag", etag_plain),
            ("Last-Modified", http_date(_utc(when))),
            ("Cache-Control", "private, no-cache"),
            ("Vary", "Accept-Encoding"),
            ("Accept-Ranges", "bytes"),
            *extra,
        ]
        if self.not_modified(run.sha256, when):  # before opening anything: the cheap answer
            if self.accepts_gzip() and not is_zip(writer):
                common[0] = ("ETag", f'"{run.sha256}-gz"')
            self.start_response(304, common)
            return
        stored = path if isinstance(path, service.StoredFile) else None
        reader: service.SeekableReader | None = None
        if stored is not None and data is None:
            if self.redirect_to_store(run, stored, writer.extension, common, record=record):
                return
            if stored.size <= SMALL_FILE:
                data = self._read_stored(run, stored)
                if data is None:
                    return  # answered with a problem
        try:
            # The FileBody (or the finally below) closes it. An object in the store is read
            # from the range's start once the range is known (below).
            if data is not None:
                f: BinaryIO = io.BytesIO(data)
            elif isinstance(path, Path):
                f = open(path, "rb")  # noqa: SIM115
            else:
                reader = path.open()
                f = cast(BinaryIO, reader)
        except OSError:
            self.send_problem(
                410, f"The file of run {run.log_id} is gone; try again.", type=PROBLEM_TYPE + "gone"
            )
            return
        handed_over = False
        try:
            if data is not None:
                size = len(data)
            elif stored is not None:
                size = stored.size
            else:
                size = os.fstat(f.fileno()).st_size
            wanted = self.byte_range(size, etag_plain, http_date(_utc(when)))
            gzip = wanted is None and self.accepts_gzip() and not is_zip(writer)
            if gzip:
                common[0] = ("ETag", f'"{run.sha256}-gz"')
            headers = [
                ("Content-Type", writer.media_type),
                (
                    "Content-Disposition",
                    disposition(run.export_name, _utc(run.started), writer.extension, run.is_delta),
                ),
                *common,
            ]
            if wanted == "unsatisfiable":
                self.send_problem(
                    416,
                    f"The range is outside the file ({size:,} bytes).",
                    headers=[("Content-Range", f"bytes */{size}"), ("Accept-Ranges", "bytes")],
                    type=PROBLEM_TYPE + "range",
                )
                return
            if not gzip and run.sha256:
                headers.append(("Repr-Digest", repr_digest(run.sha256)))
            log_id = service.new_log_id() if record and self.command != "HEAD" else None
            headers.append(("X-Log-Id", log_id or run.log_id))
            if self.command == "HEAD":
                if not gzip:
                    headers.append(("Content-Length", str(size)))
                else:
                    headers.append(("Content-Encoding", "gzip"))
                self.start_response(200, headers)
                return
            if gzip:
                headers.append(("Content-Encoding", "gzip"))
                self.response = Response(
                    200, [], StreamBody(self._gzip(f, run, size, headers, log_id, note))
                )
                handed_over = True
                return
            status, offset, count = 200, 0, size
            if isinstance(wanted, tuple):
                status, (offset, count) = 206, wanted
                headers.append(("Content-Range", f"bytes {offset}-{offset + count - 1}/{size}"))
                note = note or (
                    f"Served bytes {offset:,}-{offset + count - 1:,} of {size:,} of the artifact "
                    f"of run {run.log_id} (a range request)."
                )
            headers.append(("Content-Length", str(count)))
            if reader is not None and not self._start_stored(run, reader, offset):
                return  # answered with a problem
            whole = data if data is not None and status == 200 else None
            body = FileBody(f, offset, count, confirm=log_id is not None, data=whole)
            if log_id is not None:
                partial = offset + count < size  # a piece of a download: not a fetch of its own
                self._record_file(
                    body, run, log_id, note, big=count >= HEARTBEAT_FROM, partial=partial
                )
            self.response = Response(status, headers, body)
            handed_over = True
        finally:
            if not handed_over:
                f.close()

    def redirect_to_store(
        self,
        run: RunView,
        stored: service.StoredFile,
        extension: str,
        common: list[tuple[str, str]],
        *,
        record: bool,
    ) -> bool:
        """Where ``artifacts_redirect`` allows it (seconds; 0, the default: never), a GET of a
        whole file in the object store is answered with a 307 to a presigned URL valid that
        long: the client fetches the bytes from the store itself. The token was checked here;
        the URL cannot be guessed and expires. True when it answered."""
        expires = config.settings().artifacts_redirect
        if not expires or self.command != "GET" or self.headers.get("range") is not None:
            return False
        name = disposition(run.export_name, _utc(run.started), extension, run.is_delta)
        try:
            url = stored.presigned_url(expires, name)
        except service.StorageError:
            return False  # no credentials to sign with: stream it through the server instead
        if url is None:
            return False
        self.start_response(
            307,
            [("Location", url), ("Cache-Control", "private, no-store"), *common[:2]],
        )
        if record:
            self.recorder.record(
                run,
                note=f"Redirected to the object store (a presigned URL valid {expires} s) for "
                f"the artifact of run {run.log_id}.",
                link=self.share_link,
            )
        return True

    def _read_stored(self, run: RunView, stored: service.StoredFile) -> bytes | None:
        """A small file of the object store, read whole (None: answered with a problem)."""
        try:
            data = stored.read(SMALL_FILE)
        except NotFound:
            data = None
        except service.StorageError as exc:
            self.send_problem(503, str(exc), type=PROBLEM_TYPE + "storage")
            return None
        if data is None or len(data) != stored.size:
            self.send_problem(
                410, f"The file of run {run.log_id} is gone; try again.", type=PROBLEM_TYPE + "gone"
            )
            return None
        return data

    def _start_stored(self, run: RunView, reader: service.SeekableReader, offset: int) -> bool:
        """Begin reading an object of the store at ``offset`` here, on the pool: a missing
        object or an unreachable store is a problem answer, not a broken transfer."""
        try:
            reader.start(offset)
        except NotFound:
            reader.close()
            self.send_problem(
                410, f"The file of run {run.log_id} is gone; try again.", type=PROBLEM_TYPE + "gone"
            )
            return False
        except service.StorageError as exc:
            reader.close()
            self.send_problem(503, str(exc), type=PROBLEM_TYPE + "storage")
            return False
        return True

    def _record_file(
        self,
        body: FileBody,
        run: RunView,
        log_id: str,
        note: str,
        *,
        big: bool,
        partial: bool = False,
    ) -> None:
        recorder = self.recorder
        link = self.share_link
        if body.count < RECORD_FIRST and not big:
            # A small download is one event, once its delivery is known (no "running" row
            # first: it is gone a moment after it began).
            def delivery(log_id: str) -> Delivery:
                return Delivery(
                    lambda: recorder.record(
                        run, log_id=log_id, note=note, link=link, partial=partial, expected=True
                    ),
                    lambda sent: recorder.record(
                        run,
                        log_id=log_id,
                        complete=False,
                        sent=sent,
                        note=note,
                        link=link,
                        partial=partial,
                        expected=True,
                    ),
                )

            first = delivery(log_id)
            body.on_start, body.on_abandon = recorder.expect, recorder.unexpect
            body.on_complete, body.on_incomplete = first.on_complete, first.on_incomplete
            if body.data is not None:
                # The same file to the same request head again: the same answer but its log ID
                # (see transport.Memo), recorded the same way.
                def again() -> tuple[str, Delivery]:
                    new = service.new_log_id()
                    recorder.expect()
                    return new, delivery(new)

                self.memo_again = (log_id, again)
            return
        beat = liveness.Heartbeat(log_id) if big else None

        written = threading.Event() if body.count >= RECORD_FIRST else None

        def start() -> None:
            recorder.begin(run, log_id, note, written, link, partial=partial)
            if beat is not None:
                beat.__enter__()

        if written is not None:
            # A large download starts once its row ("running") is in the database: a server
            # that dies in the middle leaves a row the next start marks interrupted.
            body.before_send = lambda: written.wait(10)

        def end() -> None:
            if beat is not None:
                beat.__exit__(None, None, None)

        body.on_start = start
        body.on_complete = lambda: recorder.end(log_id, complete=True, status=run.status)
        body.on_incomplete = lambda sent: recorder.end(
            log_id, complete=False, sent=sent, size=run.size
        )
        body.on_end = end

    def _gzip(
        self,
        f: BinaryIO,
        run: RunView,
        size: int,
        headers: list[tuple[str, str]],
        log_id: str | None,
        note: str = "",
    ) -> Generator[bytes | Head | Response, None, list[tuple[str, str]]]:
        """A finished artifact gzip-encoded on the fly; its digest goes in the trailer."""
        recorder = self.recorder
        done = False
        digest = hashlib.sha256()
        try:
            if log_id is not None:
                recorder.begin(run, log_id, note, link=self.share_link)
            yield Head(200, [*headers, ("Trailer", "Repr-Digest")])
            compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
            while chunk := f.read(CHUNK):
                if out := compressor.compress(chunk):
                    digest.update(out)
                    yield out
            out = compressor.flush()
            digest.update(out)
            if out:
                yield out
            done = True
            if log_id is not None:
                recorder.end(log_id, complete=True, status=run.status)
            return [("Repr-Digest", repr_digest(digest.hexdigest()))]
        finally:
            f.close()
            if log_id is not None and not done:
                recorder.end(log_id, complete=False, sent=0, size=size)

    def stream_run(self, active: ActiveRun, *, record: bool) -> None:
        """Answer with a run in progress: follow its part file while it grows (not for ZIPs, whose
        directory is written last), and end the response cleanly only when the run succeeded.

        The head goes out with the first byte of data (or after HEADERS_AFTER seconds at most),
        so a client's time to first byte is the export's. No ranges: the length is not known."""
        self.response = Response(200, [], StreamBody(self._follow(active, record=record)))

    def _follow(
        self, active: ActiveRun, *, record: bool
    ) -> Generator[bytes | Head | Response, None, list[tuple[str, str]]]:
        prepared = active.prepared
        writer = prepared.writer
        # Waits for the end instead of streaming: a ZIP, a file outside the artifacts folder,
        # and a file that may not be published (validation, the publish gate).
        if (
            is_zip(writer)
            or prepared.may_be_withheld
            or prepared.in_store
            or not prepared.part_path.resolve().is_relative_to(config.artifacts_dir().resolve())
        ):
            # While the run is queued, for queue_wait seconds at most: then the client is
            # told to come back (the run stays queued, and the next request follows it).
            give_up_queued = time.monotonic() + config.settings().queue_wait
            while not prepared.done.is_set():
                if active.queued and time.monotonic() >= give_up_queued:
                    self.still_queued(active)
                    assert self.response is not None
                    yield self.response
                    return []
                yield WAIT
            self.after_run(active, record=record)
            assert self.response is not None
            yield self.response
            return []
        f = None
        give_up = time.monotonic() + HEADERS_AFTER
        first = b""
        while not prepared.done.is_set() and time.monotonic() < give_up:
            f = f or _open_or_none(prepared.part_path)
            if f is not None and (first := f.read(CHUNK)):
                break
            yield WAIT
        if prepared.done.is_set() and not first:
            # Finished before we began: answer with the whole file (length, ETag, sendfile).
            if f is not None:
                f.close()
            self.after_run(active, record=record)
            assert self.response is not None
            yield self.response
            return []
        gzip = self.accepts_gzip()
        headers = [
            ("Content-Type", writer.media_type),
            (
                "Content-Disposition",
                disposition(prepared.definition.name, _utc(prepared.run.started), writer.extension),
            ),
            ("Cache-Control", "private, no-cache"),
            ("Vary", "Accept-Encoding"),
            ("Accept-Ranges", "none"),
            ("X-Log-Id", active.log_id),
        ]
        if gzip:
            headers.append(("Content-Encoding", "gzip"))
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if gzip else None
        digest = hashlib.sha256()
        sent_digest = hashlib.sha256()
        sent = 0
        failed = False

        def out(data: bytes) -> bytes:
            nonlocal sent
            data = compressor.compress(data) if compressor else data
            sent_digest.update(data)
            sent += len(data)
            return data

        try:
            yield Head(200, [*headers, ("Trailer", "Repr-Digest")])
            if first:
                digest.update(first)
                if piece := out(first):
                    yield piece
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
                        f = _open_or_none(path) if isinstance(path, Path) else None
                        if f is None:
                            break
                        finished = True
                chunk = f.read(CHUNK) if f is not None else b""
                if chunk:
                    digest.update(chunk)
                    if piece := out(chunk):
                        yield piece
                    continue
                if finished:
                    break
                yield WAIT
            outcome = active.outcome()
            if outcome.status not in ("success", "warning") or outcome.sha256 != digest.hexdigest():
                # Cut the response without its last chunk: the client sees a broken transfer,
                # never a file that looks complete. The run's own history entry says what
                # went wrong.
                self.close_connection = True
                failed = True
                raise ClientGone()
            if compressor is not None:
                tail = compressor.flush()
                sent_digest.update(tail)
                if tail:
                    yield tail
            if record:
                self.recorder.record(
                    outcome,
                    note=f"Served run {outcome.log_id} while it was running "
                    "(the same export was requested again before it finished).",
                    link=self.share_link,
                )
            return [("Repr-Digest", repr_digest(sent_digest.hexdigest()))]
        except ClientGone:
            if record and not failed:
                # The run goes on (its artifact serves the next request); this download ended.
                with contextlib.suppress(Exception):
                    self.recorder.record(
                        service.get_run(active.log_id),
                        complete=False,
                        sent=sent,
                        note=f"Followed run {active.log_id} while it was running.",
                        link=self.share_link,
                    )
            raise
        finally:
            if f is not None:
                f.close()

    def still_queued(self, active: ActiveRun) -> None:
        """503 for a download whose run no export process took within ``queue_wait``."""
        wait = config.settings().queue_wait
        self.send_problem(
            503,
            f"The run {active.log_id} of this export is queued and no export process took it "
            f"within {wait:g} seconds (all busy, or no 'tuiexport worker' running); it stays "
            f"queued: try again in {RETRY_AFTER} seconds.",
            headers=[("Retry-After", str(RETRY_AFTER))],
            type=PROBLEM_TYPE + "queued",
            logId=active.log_id,
        )

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

    def byte_range(self, size: int, etag: str, last_modified: str) -> tuple[int, int] | str | None:
        """RFC 9110 14.2: ``(offset, count)`` of a single satisfiable range, "unsatisfiable", or
        None (no Range, a multi-range or malformed one, or If-Range no longer matching: the
        whole file). GET only."""
        header = self.headers.get("range")
        if header is None or self.command != "GET":
            return None
        if_range = self.headers.get("if-range")
        if if_range is not None:
            if_range = if_range.strip()
            if if_range.startswith("W/") or if_range not in (etag, last_modified):
                return None  # If-Range uses strong comparison; a changed file comes whole
        match = _RANGE.fullmatch(header)
        if match is None:
            return None  # several ranges or another unit: we may ignore Range (RFC 9110)
        first, last = match.groups()
        if not first and not last:
            return None
        if not first:  # the last N bytes
            suffix = int(last)
            if suffix == 0 or size == 0:
                return "unsatisfiable"
            start = max(0, size - suffix)
            return start, size - start
        start = int(first)
        if start >= size:
            return "unsatisfiable"
        end = min(int(last), size - 1) if last else size - 1
        if end < start:
            return None  # invalid range-spec: ignored
        return start, end - start + 1

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


@functools.lru_cache(maxsize=256)  # the same few artifacts again and again
def disposition(name: str, when: datetime, extension: str, delta: bool = False) -> str:
    """RFC 6266: an ASCII ``filename`` for old clients beside the UTF-8 ``filename*`` (a delta's
    ends ``_delta.<ext>``, as the TUI names it, so it is never taken for the whole feed)."""
    plain = service.download_name(name, when, extension, ascii_only=True, delta=delta)
    full = service.download_name(name, when, extension, delta=delta)
    if plain == full:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(full, safe='')}"
