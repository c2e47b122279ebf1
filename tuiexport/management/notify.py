"""Notifications: when a run ends with a status the settings name (``notify_on``: failed, held
and warning by default), a JSON event is POSTed to a webhook (signed with HMAC-SHA256) and/or
mailed through an SMTP server.

Never blocking the run: :func:`run_ended` (called once where a run's final status is written)
only stores one ``pending`` row per channel; a background thread of this process delivers them,
retrying with exponential backoff. Every attempt and its outcome is a row of its own, shown in
the run's details. What a process leaves undelivered stays ``pending`` in the database: a
process waits up to ``notify_exit_wait`` seconds at exit for deliveries that are due, and the
next process that ends a run (or ``tuiexport notify retry``) sends the rest. Delivery is at
least once: receivers drop repeats by the ``X-Tuiexport-Delivery`` header.

The signature (documented in docs/guide/notifications.md, which has a receiver that checks it)::

    X-Tuiexport-Timestamp: <Unix seconds of this attempt>
    X-Tuiexport-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import hmac
import json
import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec
import peewee as pw

from tuiexport import config
from tuiexport import db as dbmod
from tuiexport.db import database
from tuiexport.management.liveness import HOST, drop_connection
from tuiexport.management.views import RunView
from tuiexport.models import Notification, NotificationAttempt

if TYPE_CHECKING:
    import urllib.request

# smtplib, ssl, urllib.request and email are imported by the functions that deliver: every run
# passes through run_ended, and most queue nothing (a ``--run`` from cron would pay for them).

log = logging.getLogger(__name__)

EVENT = "run.ended"
EVENT_HEADER = "X-Tuiexport-Event"
DELIVERY_HEADER = "X-Tuiexport-Delivery"
TIMESTAMP_HEADER = "X-Tuiexport-Timestamp"
SIGNATURE_HEADER = "X-Tuiexport-Signature"
#: Run statuses whose file the API serves (the event then links to it).
FILE_STATUSES = ("success", "warning")
#: How long a process's claim on a delivery holds beyond the attempt's own timeout: a process
#: that died while attempting leaves it to the others after that.
CLAIM_SLACK = 30.0


class AttemptView(msgspec.Struct, kw_only=True):
    attempt: int
    at: datetime
    ok: bool
    #: The receiver's HTTP status (webhooks; None when none came back).
    http_status: int | None
    #: Why it failed, one line ("" when delivered).
    error: str

    @property
    def outcome(self) -> str:
        """One line: ``delivered, HTTP 200``, or ``failed:`` and why."""
        if not self.ok:
            return f"failed: {self.error}"
        return "delivered" + (f", HTTP {self.http_status}" if self.http_status else "")


class NotificationView(msgspec.Struct, kw_only=True):
    id: int
    log_id: str
    #: ``webhook`` or ``email``.
    channel: str
    #: The URL without credentials and query string, or the addresses.
    target: str
    #: ``pending`` (will be attempted at ``next_attempt``), ``delivered`` or ``failed`` (gave up).
    state: str
    attempts: int
    created: datetime
    next_attempt: datetime | None
    tries: list[AttemptView]


def _now() -> datetime:
    """UTC with microseconds (a backoff may be shorter than a second)."""
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(when: datetime | None) -> str | None:
    return f"{when:%Y-%m-%dT%H:%M:%SZ}" if when else None


def redact_url(url: str) -> str:
    """A URL as shown and stored: without user, password and query (which may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def channels(settings: config.Settings) -> list[tuple[str, str]]:
    """The configured channels as (channel, target shown)."""
    found = []
    if settings.webhook_url:
        found.append(("webhook", redact_url(settings.webhook_url)))
    if settings.smtp_host and settings.mail_to:
        found.append(("email", ", ".join(settings.mail_to)))
    return found


def event(run: RunView, settings: config.Settings) -> dict[str, Any]:
    """The JSON event of a run that ended (what the webhook receives and the email shows)."""
    links: dict[str, str] = {}
    base = settings.base_url.rstrip("/")
    if base:
        links["run"] = f"{base}/api/v1/runs/{run.log_id}"
        if run.status in FILE_STATUSES and run.artifact_kept:
            links["file"] = links["run"] + "/file"
    return {
        "event": EVENT,
        "id": uuid.uuid4().hex,
        "logId": run.log_id,
        "exportId": run.export_id,
        "exportName": run.export_name,
        "status": run.status,
        "trigger": run.trigger,
        "started": _iso(run.started),
        "finished": _iso(run.finished),
        "fileFormat": run.file_format,
        "productCount": run.product_count,
        "omittedCount": run.omitted_count,
        "size": run.size,
        "sha256": run.sha256,
        "messages": run.messages,
        "links": links,
        "host": HOST,
    }


# --- the hook ------------------------------------------------------------------------------


def run_ended(run: RunView) -> None:
    """A run's final status was written: store its notifications and wake the sender.

    Cheap and never raises: a notification that cannot even be stored is logged, and the run
    is what it is."""
    try:
        settings = config.settings()
        if run.status not in settings.notify_on:
            return
        targets = channels(settings)
        db = database.obj
        if not targets or db is None or dbmod.is_in_memory(db):
            return  # in-memory SQLite: another thread would see another, empty database
        payload = json.dumps(event(run, settings), ensure_ascii=False)
        now = _now()
        with database.atomic():
            for channel, target in targets:
                Notification.create(
                    log_id=run.log_id,
                    channel=channel,
                    target=target,
                    payload=payload,
                    created=now,
                    next_attempt=now,
                )
        _sender(db).wake()
    except Exception as exc:  # noqa: BLE001 - a notification must never fail the run
        log.warning("Could not queue the notification of run %s: %s", run.log_id, exc)


# --- delivering ----------------------------------------------------------------------------


@cache
def _opener() -> urllib.request.OpenerDirector:
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """A redirected POST would arrive as a GET without its body: a 3xx is a failed
        attempt."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(NoRedirect)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Tuiexport-Signature`` value: ``sha256=`` + HMAC-SHA256 of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _post(settings: config.Settings, payload: str) -> int:
    """POST the event; the HTTP status of a 2xx answer (anything else raises)."""
    import urllib.request

    body = payload.encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "tuiexport",
        EVENT_HEADER: EVENT,
        DELIVERY_HEADER: json.loads(payload)["id"],
        TIMESTAMP_HEADER: timestamp,
    }
    if settings.webhook_secret:
        headers[SIGNATURE_HEADER] = signature(settings.webhook_secret, timestamp, body)
    request = urllib.request.Request(settings.webhook_url, data=body, headers=headers)
    with _opener().open(request, timeout=settings.webhook_timeout) as answer:
        answer.read(1 << 16)
        return int(answer.status)


def mail_text(data: dict[str, Any]) -> tuple[str, str]:
    """The subject and plain-text body of a run's email."""
    subject = f"tuiexport: {data['exportName']} {data['status']} (log ID {data['logId']})"
    lines = [
        f"The export '{data['exportName']}' ({data['exportId']}) ended {data['status']}.",
        "",
        f"Log ID:    {data['logId']}",
        f"Trigger:   {data['trigger']}",
        f"Started:   {data['started']}",
        f"Finished:  {data['finished'] or '-'}",
        f"Format:    {data['fileFormat']}",
        f"Products:  {data['productCount']:,} (left out: {data['omittedCount']:,})",
        "",
        "Messages:",
        *(f"- {m}" for m in data["messages"]),
    ]
    if data["links"]:
        lines += ["", "Links:", *(f"{k}: {v}" for k, v in data["links"].items())]
    lines += ["", f"Sent by tuiexport on {data.get('host', HOST)}."]
    return subject, "\n".join(lines) + "\n"


def _mail(settings: config.Settings, payload: str) -> None:
    import smtplib
    import ssl
    from email.message import EmailMessage
    from email.utils import formatdate, make_msgid

    data = json.loads(payload)
    subject, text = mail_text(data)
    message = EmailMessage()
    message["From"] = settings.mail_from or f"tuiexport@{socket.getfqdn()}"
    message["To"] = ", ".join(settings.mail_to)
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid("tuiexport")
    message.set_content(text)
    message.add_attachment(
        json.dumps(data, ensure_ascii=False, indent=2).encode(),
        maintype="application",
        subtype="json",
        filename=f"{data['logId']}.json",
    )
    security = settings.smtp_security
    port = settings.smtp_port or {"starttls": 587, "ssl": 465, "none": 25}[security]
    context = ssl.create_default_context()
    timeout = settings.smtp_timeout
    smtp: smtplib.SMTP
    if security == "ssl":
        smtp = smtplib.SMTP_SSL(settings.smtp_host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(settings.smtp_host, port, timeout=timeout)
    with smtp:
        if security == "starttls":
            smtp.starttls(context=context)
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password)
        smtp.send_message(message)


def _reason(exc: BaseException, settings: config.Settings) -> tuple[int | None, str]:
    """(HTTP status, one line) for a failed attempt; never the secret or the password."""
    import smtplib
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        return exc.code, f"HTTP {exc.code} {exc.reason}".strip()
    if isinstance(exc, urllib.error.URLError):
        exc = exc.reason if isinstance(exc.reason, BaseException) else exc
    if isinstance(exc, TimeoutError | socket.timeout):
        return None, "No answer in time (timed out)."
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else ""
        return None, f"SMTP {exc.smtp_code} {text}".strip()
    text = " ".join(str(exc).split()) or type(exc).__name__
    for secret in (settings.webhook_secret, settings.smtp_password):
        if secret:
            text = text.replace(secret, "***")
    return None, text[:500]


def _claim(notification_id: int, settings: config.Settings) -> Notification | None:
    """Take a due, pending delivery for this process (None: another has it, or it is done)."""
    now = _now()
    hold = settings.webhook_timeout + settings.smtp_timeout + CLAIM_SLACK
    taken = (
        Notification.update(claimed_by=_ME, claimed_until=now + timedelta(seconds=hold))
        .where(
            Notification.id == notification_id,
            Notification.state == "pending",
            (Notification.claimed_until.is_null()) | (Notification.claimed_until < now),
        )
        .execute()
    )
    return Notification.get_by_id(notification_id) if taken else None


def attempt(notification_id: int, *, reschedule: bool = True) -> AttemptView | None:
    """One delivery attempt of a notification, recorded; None if it was not ours to attempt.

    A failure is retried at ``notify_backoff`` × 2^(attempt-1) seconds (at most
    ``notify_backoff_max``) until ``notify_attempts`` are used up; it is then ``failed``."""
    settings = config.settings()
    row = _claim(notification_id, settings)
    if row is None:
        return None
    status: int | None = None
    error = ""
    try:
        if row.channel == "webhook":
            if not settings.webhook_url:
                raise RuntimeError("No webhook_url is configured any more.")
            status = _post(settings, row.payload)
        else:
            if not (settings.smtp_host and settings.mail_to):
                raise RuntimeError("No smtp_host and mail_to are configured any more.")
            _mail(settings, row.payload)
    except Exception as exc:  # noqa: BLE001 - every failure of an attempt is its outcome
        status, error = _reason(exc, settings)
    number = row.attempts + 1
    when = _now()
    if not error:
        state, next_attempt = "delivered", None
    elif number >= settings.notify_attempts and reschedule:
        state, next_attempt = "failed", None
    elif reschedule:
        pause = min(settings.notify_backoff * 2 ** (number - 1), settings.notify_backoff_max)
        state, next_attempt = "pending", when + timedelta(seconds=pause)
    else:
        state, next_attempt = row.state, row.next_attempt
    with database.atomic():
        NotificationAttempt.create(
            notification=row.id,
            log_id=row.log_id,
            attempt=number,
            at=when,
            ok=not error,
            http_status=status,
            error=error,
        )
        Notification.update(
            state=state,
            attempts=number,
            next_attempt=next_attempt or when,
            claimed_by="",
            claimed_until=None,
        ).where(Notification.id == row.id).execute()
    return AttemptView(attempt=number, at=when, ok=not error, http_status=status, error=error)


def _due(before: datetime) -> list[int]:
    """Pending deliveries due before ``before`` that no other process is attempting."""
    now = _now()
    query = (
        Notification.select(Notification.id)
        .where(
            Notification.state == "pending",
            Notification.next_attempt <= before,
            (Notification.claimed_until.is_null())
            | (Notification.claimed_until < now)
            | (Notification.claimed_by == _ME),
        )
        .order_by(Notification.next_attempt)
    )
    return [row.id for row in query]


def _next_due() -> datetime | None:
    row = (
        Notification.select(pw.fn.MIN(Notification.next_attempt).alias("due"))
        .where(Notification.state == "pending")
        .scalar()
    )
    if isinstance(row, str):  # SQLite gives back text for an aggregate
        row = datetime.fromisoformat(row)
    return row if isinstance(row, datetime) else None


#: Who claims deliveries: this process.
_ME = f"{HOST}:{os.getpid()}"


class _Sender:
    """The background thread that delivers due notifications of one database."""

    #: Look for deliveries left by other processes at least this often (seconds).
    POLL = 60.0
    MIN_PAUSE = 0.2

    def __init__(self, db: pw.Database) -> None:
        self.db = db
        self._wake = threading.Event()
        self._stop = threading.Event()
        self.busy = False
        self._thread = threading.Thread(target=self._run, name="tuiexport-notify", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, wait: float = 0.0) -> None:
        """Stop after the attempt in flight (waiting up to ``wait`` seconds for it)."""
        self._stop.set()
        self._wake.set()
        if wait and self._thread is not threading.current_thread():
            self._thread.join(timeout=wait)

    def current(self) -> bool:
        return database.obj is self.db and not self._stop.is_set()

    def _run(self) -> None:
        try:
            while self.current():
                self._wake.clear()
                pause = self.POLL
                try:
                    self.busy = True
                    for notification_id in _due(_now()):
                        if not self.current():
                            return
                        attempt(notification_id)
                    due = _next_due()
                    if due is not None:  # (not sooner than MIN_PAUSE: another process
                        # may be attempting the one that is due, and it is not ours to take)
                        left = (due - _now()).total_seconds()
                        pause = min(max(left, self.MIN_PAUSE), self.POLL)
                except pw.PeeweeException as exc:
                    log.warning("Notifications: the database does not answer: %s", exc)
                    drop_connection()
                    pause = 5.0
                finally:
                    self.busy = False
                self._wake.wait(pause)
        finally:
            drop_connection()


_lock = threading.Lock()
_current: _Sender | None = None


def _sender(db: pw.Database) -> _Sender:
    global _current
    with _lock:
        if _current is None or not _current.current() or _current.db is not db:
            if _current is not None:
                _current.stop()
            else:
                atexit.register(_at_exit)
            _current = _Sender(db)
        return _current


def flush(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds until no delivery is due before then (or being
    attempted). True when nothing due is left; what stays pending is resent later."""
    sender = _current
    deadline = time.monotonic() + timeout
    until = _now() + timedelta(seconds=timeout)
    while sender is not None and sender.current():
        try:
            if not sender.busy and not _due(until):
                return True
        except pw.PeeweeException:
            return False
        if time.monotonic() >= deadline:
            return False
        sender.wake()
        time.sleep(0.05)
    return True


def _at_exit() -> None:
    """A process that ends (a cron ``--run`` right after its run) waits up to
    ``notify_exit_wait`` seconds for due deliveries; the rest stay pending in the database."""
    # At interpreter exit nothing is left to tell about a failure here.
    with contextlib.suppress(Exception, KeyboardInterrupt):  # ctrl+c ends the wait, quietly
        flush(config.settings().notify_exit_wait)
    if _current is not None:
        _current.stop(wait=0.5)
        # An attempt cut short by the exit leaves no claim behind: the next process may send it
        # at once (the receiver drops a repeat by its delivery id).
        with contextlib.suppress(Exception):
            if database.obj is _current.db:
                Notification.update(claimed_by="", claimed_until=None).where(
                    Notification.claimed_by == _ME
                ).execute()


# --- reading and resending -----------------------------------------------------------------


def run_notifications(log_id: str) -> list[NotificationView]:
    """A run's notifications with every attempt, in the order they were made."""
    rows = list(
        Notification.select()
        .where(Notification.log_id == (log_id or "").strip().upper())
        .order_by(Notification.id)
    )
    tries: dict[int, list[AttemptView]] = {row.id: [] for row in rows}
    if rows:
        query = (
            NotificationAttempt.select()
            .where(NotificationAttempt.notification.in_(list(tries)))
            .order_by(NotificationAttempt.id)
        )
        for t in query:
            tries[t.notification_id].append(
                AttemptView(
                    attempt=t.attempt, at=t.at, ok=t.ok, http_status=t.http_status, error=t.error
                )
            )
    return [
        NotificationView(
            id=row.id,
            log_id=row.log_id,
            channel=row.channel,
            target=row.target,
            state=row.state,
            attempts=row.attempts,
            created=row.created,
            next_attempt=row.next_attempt if row.state == "pending" else None,
            tries=tries[row.id],
        )
        for row in rows
    ]


def retry_notifications(log_id: str | None = None) -> list[tuple[NotificationView, bool]]:
    """``tuiexport notify retry``: attempt every undelivered notification (pending or failed;
    of one run with ``log_id``) once, now, in the foreground. A failed one that fails again
    stays failed; a pending one keeps its backoff. Returns each with whether it went out."""
    query = Notification.select(Notification.id, Notification.log_id).where(
        Notification.state.in_(["pending", "failed"])
    )
    if log_id:
        query = query.where(Notification.log_id == log_id.strip().upper())
    results = []
    for row in list(query.order_by(Notification.id)):
        was_failed = Notification.get_by_id(row.id).state == "failed"
        if was_failed:  # give it one more attempt; it stays failed if that fails too
            Notification.update(state="pending").where(Notification.id == row.id).execute()
        done = attempt(row.id, reschedule=not was_failed)
        if was_failed and (done is None or not done.ok):
            Notification.update(state="failed").where(
                Notification.id == row.id, Notification.state == "pending"
            ).execute()
        view = next(n for n in run_notifications(row.log_id) if n.id == row.id)
        results.append((view, bool(done and done.ok)))
    return results
