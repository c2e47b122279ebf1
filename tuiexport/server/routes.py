"""The routes of API 1.0: share downloads, the management API, OpenAPI, health."""

from __future__ import annotations

import functools
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs, unquote, unquote_plus

import msgspec

from tuiexport import config, service
from tuiexport.errors import Busy, Gone, InvalidDefinition, NotFound, UserError
from tuiexport.management.views import DefinitionView, LinkActivity, LinkView, RunView
from tuiexport.server.cache import BUSY, Miss, ShareCache
from tuiexport.server.files import FileResponses, _utc, disposition
from tuiexport.server.recorder import Recorder
from tuiexport.server.runs import (
    RETRY_AFTER,
    ActiveRun,
    RunManager,
    artifact_file,
)
from tuiexport.server.transport import PROBLEM_TYPE, SMALL_FILE, redact

_EXPORT_ID = (
    r"(?P<export_id>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})"
)
_LOG_ID = r"(?P<log_id>[0-9A-Za-z]{4,32})"
_LINK = rf"/api/v1/exports/{_EXPORT_ID}/links/(?P<link_id>[0-9]{{1,18}})"

#: (path pattern, {method: handler method name}). HEAD is allowed wherever GET is.
ROUTES = [
    (re.compile(r"/healthz"), {"GET": "healthz"}),
    (re.compile(r"/api/v1/openapi\.json"), {"GET": "openapi"}),
    (re.compile(r"/api/v1/exports"), {"GET": "list_exports"}),
    (re.compile(rf"/api/v1/exports/{_EXPORT_ID}/download"), {"GET": "share_download"}),
    (re.compile(rf"/api/v1/exports/{_EXPORT_ID}/runs"), {"POST": "trigger_run"}),
    (re.compile(rf"/api/v1/runs/{_LOG_ID}"), {"GET": "run_status"}),
    (re.compile(rf"/api/v1/runs/{_LOG_ID}/file"), {"GET": "run_file"}),
    # The publish gate (issue 11): the operator's decision on a held run.
    (re.compile(rf"/api/v1/runs/{_LOG_ID}/(?P<decision>approve|discard)"), {"POST": "decide_run"}),
    # Named share links (issue 12): one per consumer, each with its own token.
    (
        re.compile(rf"/api/v1/exports/{_EXPORT_ID}/links"),
        {"GET": "list_links", "POST": "create_link"},
    ),
    (re.compile(_LINK), {"PATCH": "rename_link", "DELETE": "revoke_link"}),
    (re.compile(_LINK + "/rotate"), {"POST": "rotate_link"}),
]

_SHARE = re.compile(rf"/api/v1/exports/{_EXPORT_ID}/download")
#: Seconds a /healthz database check is reused (answered on the event loop meanwhile).
HEALTH_FRESH = 1.0

NOT_SHARED = (
    "There is no export at this address, or its share token is wrong or was rotated or revoked."
)


class App:
    """What every request of one server shares."""

    def __init__(self, base_url: str, openapi: bytes, run_exports: bool = True):
        self.base_url = base_url.rstrip("/")
        self.openapi = openapi
        self.recorder = Recorder()
        self.shares = ShareCache(self.recorder.data_version)
        self.runs = RunManager(on_end=lambda run: self.shares.invalidate(), run_exports=run_exports)
        #: (when, problem) of the last database check of /healthz (problem None: it answered)
        self.health: tuple[float, str | None] | None = None

    def close(self) -> None:
        """After the transport stopped: write the queued history rows, drop the cache."""
        self.recorder.close()
        self.shares.close()


class ShareHandler(FileResponses):
    app: App  # set on the subclass start_server creates

    # --- routing ------------------------------------------------------------------------

    def dispatch(self) -> None:
        # Decode per segment: an encoded "/" (%2F) never creates a new segment, ".." is just text.
        path = "/".join(
            unquote(segment, errors="replace") for segment in self.request.path.split("/")
        )
        query = self.request.query
        # "?%74oken=" (the name "token" percent-encoded) is refused, not read as the token: the
        # one spelling of the share token is the plain one (and the log redacts every spelling).
        if any(_disguised_token(pair.partition("=")[0]) for pair in re.split("[&;]", query)):
            self.send_problem(
                400,
                "Query parameter names must not be percent-encoded; write them plainly "
                "(e.g. '?token=…').",
                type=PROBLEM_TYPE + "bad-query",
            )
            return
        try:
            self.query = parsed_query(query)
        except ValueError:
            self.send_problem(400, "The query string has too many parameters.")
            return
        for pattern, methods in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            method = "GET" if self.command == "HEAD" and "GET" in methods else self.command
            name = methods.get(method)
            if name is None:
                allow = ", ".join(sorted({*methods, *(("HEAD",) if "GET" in methods else ())}))
                self.send_problem(
                    405,
                    f"{self.command} is not allowed here; use {allow}.",
                    headers=[("Allow", allow)],
                )
                return
            try:
                self.call(name, match.groupdict())
            except Busy as exc:
                self.send_problem(
                    503,
                    str(exc),
                    headers=[("Retry-After", str(RETRY_AFTER))],
                    type=PROBLEM_TYPE + "busy",
                )
            except UserError as exc:
                extra = {"reasons": exc.reasons} if hasattr(exc, "reasons") else {}
                kind = (
                    "invalid-definition"
                    if extra
                    else "not-found"
                    if isinstance(exc, NotFound)
                    else "error"
                )
                self.send_problem(exc.http_status, str(exc), type=PROBLEM_TYPE + kind, **extra)
            except Exception as exc:
                reason = service.database_lost(exc)
                if reason is None or self.headers_sent:
                    raise
                # The database server restarts or is away: the client comes back later; the
                # operator gets one line, not a traceback (the next request reconnects).
                sys.stderr.write(
                    f"tuiexport serve: the database does not answer ({reason}); "
                    f"answered 503 to {redact(self.request.requestline)}\n"
                )
                self.send_problem(
                    503,
                    f"The database does not answer at the moment; try again in {RETRY_AFTER} "
                    "seconds.",
                    headers=[("Retry-After", str(RETRY_AFTER))],
                    type=PROBLEM_TYPE + "database-unreachable",
                )
            return
        self.send_problem(404, "There is nothing at this address; see /api/v1/openapi.json.")

    def call(self, name: str, args: dict[str, str]) -> None:
        """The route's handler; once more when the database connection of this thread turns
        out to be broken before any answer went out (a PostgreSQL restart: every pool thread's
        connection from before it is dead, and the first query on it says so). Asking again is
        safe: what a handler writes (an admission, a link change) is one transaction, and an
        admission made twice follows the first by the cluster-wide rules."""
        try:
            getattr(self, name)(**args)
        except Exception as exc:
            if self.headers_sent or service.database_lost(exc) is None:
                raise
            getattr(self, name)(**args)

    def fast(self) -> bool:
        """On the event loop, when nothing blocks: ``/healthz`` from a check at most a second
        old, and a share URL whose state is in the share cache (a current artifact: 304, HEAD,
        a range or the file). Anything else goes to the pool."""
        if self.command not in ("GET", "HEAD"):
            return False
        path = self.request.path
        if path == "/healthz":
            checked = self.app.health
            # Only where the share cache has its SQLite probe: a database server (PostgreSQL)
            # can go away at any moment, so /healthz asks it every time.
            if (
                not self.app.recorder.probes
                or checked is None
                or time.monotonic() - checked[0] > HEALTH_FRESH
                or checked[1]
            ):
                return False
            app, running = self.app, self.app.runs.count()
            self.send_health(running)
            # The same answer while this check is fresh and as many runs are under way.
            self.memo = (
                lambda: (
                    app.health is checked
                    and time.monotonic() - checked[0] <= HEALTH_FRESH
                    and app.runs.count() == running
                ),
                None,
            )
            return True
        match = _SHARE.fullmatch(path)
        query = self.request.query
        if match is None or "%" in query or "+" in query:
            return False
        shares = self.app.shares
        state, generation = shares.look(match.group("export_id").lower())
        if state is BUSY:
            self.later = True  # the loop asks again in a moment
            return False
        if isinstance(state, Miss) or state is None or state.path is None:
            return False  # unknown exports take the pool's (equally slow) path: same timing
        self.query = parsed_query(query)
        if "since" in self.query:
            return False  # a delta is made on the pool
        link = state.link(self.param("token"))
        if not state.definition.valid or link is None:
            return False
        current = state.current
        if current is None:
            return False
        self.share_link = link
        recorder = self.recorder
        recorder.seen(link)
        # An answer without a file (304, HEAD, 416) depends on the head and the cached state
        # only: the same while nothing changed (a request through the link is still seen).
        self.memo = (lambda: shares.holds(generation), lambda: recorder.seen(link))
        if not isinstance(state.path, Path) and not self.not_modified(
            current.sha256, current.finished or current.started
        ):
            return False  # a file in the object store is read on the pool (only 304s here)
        small = current.size is not None and current.size <= SMALL_FILE
        data = self.app.shares.small_file(state.path, SMALL_FILE) if small else None
        self.serve_artifact(current, state.path, record=True, data=data)
        return True

    def param(self, name: str) -> str:
        values = self.query.get(name)
        return values[0] if values else ""

    def authorized(self) -> bool:
        """Management endpoints: a valid, unrevoked API key as ``Authorization: Bearer``."""
        scheme, _, key = (self.headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and service.api_key_valid(key.strip()):
            return True
        detail = (
            "This API key is not valid or was revoked."
            if key
            else "Send an API key as 'Authorization: Bearer <key>' (create one with 'tuiexport apikey create NAME')."
        )
        self.send_problem(
            401,
            detail,
            headers=[("WWW-Authenticate", 'Bearer realm="tuiexport"')],
            type=PROBLEM_TYPE + "unauthorized",
        )
        return False

    # --- small endpoints ----------------------------------------------------------------

    def healthz(self) -> None:
        problem = service.database_unreachable()
        self.app.health = (time.monotonic(), problem)
        if problem is not None:
            self.send_problem(
                503,
                problem,
                headers=[("Retry-After", str(RETRY_AFTER))],
                type=PROBLEM_TYPE + "database-unreachable",
            )
            return
        self.send_health()

    def send_health(self, running: int | None = None) -> None:
        self.send_json(
            200,
            {
                "status": "ok",
                "apiVersion": config.API_VERSION,
                "runningExports": self.app.runs.count() if running is None else running,
            },
        )

    def openapi(self) -> None:
        self.send_bytes(200, self.app.openapi, "application/json", [("Cache-Control", "no-cache")])

    def list_exports(self) -> None:
        if not self.authorized():
            return
        self.send_json(
            200,
            {
                "apiVersion": config.API_VERSION,
                "exports": [self.definition_json(d) for d in service.list_definitions()],
            },
        )

    def trigger_run(self, export_id: str) -> None:
        if not self.authorized():
            return
        definition = service.get_definition(export_id)
        if not definition.valid:
            raise_invalid(definition)
        active = self.app.runs.start(definition)
        status_url = f"{self.app.base_url}/api/v1/runs/{active.log_id}"
        self.send_json(
            202,
            {
                "logId": active.log_id,
                "status": active.prepared.run.status,  # queued: for an export process
                "statusUrl": status_url,
                "fileUrl": status_url + "/file",
            },
            [("Location", status_url)],
        )

    def run_status(self, log_id: str) -> None:
        if not self.authorized():
            return
        run = service.get_run(log_id)
        notes = [self.notification_json(n) for n in service.run_notifications(run.log_id)]
        self.send_json(200, {**self.run_json(run), "notifications": notes})

    def run_file(self, log_id: str) -> None:
        if not self.authorized():
            return
        run = service.get_run(log_id)
        if run.status == "running":
            self.send_problem(
                409,
                f"The run {run.log_id} is still running; fetch its file when its status "
                "is success.",
                headers=[("Retry-After", str(RETRY_AFTER))],
                type=PROBLEM_TYPE + "running",
            )
            return
        if run.status not in ("success", "warning"):
            held = run.status == "held"
            self.send_problem(
                409,
                f"The run {run.log_id} is held by the publish gate; POST .../approve publishes "
                "its file."
                if held
                else f"The run {run.log_id} ended as {run.status}; it has no file.",
                type=PROBLEM_TYPE + "no-file",
            )
            return
        path = artifact_file(run)
        if path is None:
            kind, detail = service.why_artifact_missing(run)
            # Gone when it was removed, or is not for the network (-o PATH); a file that this
            # server cannot reach (made on another host without shared storage) is the
            # installation's problem, not the client's.
            status = 503 if kind == "elsewhere" else 410
            self.send_problem(
                status, detail, type=PROBLEM_TYPE + ("gone" if status == 410 else kind)
            )
            return
        self.serve_artifact(run, path, record=True)

    def decide_run(self, log_id: str, decision: str) -> None:
        """Approve (publish) or discard a held run; 409 when it is not held."""
        if not self.authorized():
            return
        decide = service.approve_run if decision == "approve" else service.discard_run
        run = decide(log_id, by="api")
        self.app.shares.invalidate()
        self.send_json(200, self.run_json(run))

    # --- the share URL ------------------------------------------------------------------

    def share_download(self, export_id: str) -> None:
        state = self.app.shares.resolve(export_id.lower())
        link = state.link(self.param("token")) if state is not None else None
        if state is None or link is None:
            self.send_problem(404, NOT_SHARED, type=PROBLEM_TYPE + "not-found")
            return
        self.share_link = link
        self.recorder.seen(link)
        definition = state.definition
        if not definition.valid:
            raise_invalid(definition)
        if "since" in self.query:
            self.share_delta(definition, self.param("since"))
            return
        if state.path is not None and (not isinstance(state.path, Path) or state.path.is_file()):
            assert state.current is not None  # the path is the current run's artifact
            small = state.current.size is not None and state.current.size <= SMALL_FILE
            stored = not isinstance(state.path, Path)  # read once, kept with the cache
            data = self.app.shares.small_file(state.path, SMALL_FILE) if small and stored else None
            self.serve_artifact(state.current, state.path, record=True, data=data)
            return
        if self.command == "HEAD":
            # Answering HEAD must not start a run; the length and ETag are known only after one.
            writer = service.get_writer(definition.profile, definition.output)
            self.start_response(
                200,
                [
                    ("Content-Type", writer.media_type),
                    (
                        "Content-Disposition",
                        disposition(definition.name, datetime.now(UTC), writer.extension),
                    ),
                    ("Cache-Control", "private, no-cache"),
                ],
            )
            return
        active, current, started_here = self.app.runs.follow_or_start(definition, link)
        if active is None:
            assert current is not None  # follow_or_start returns a run or a current artifact
            path = artifact_file(current)
            if path is None:  # removed by retention in this very moment
                raise Busy("The export's file is being replaced; try again in a moment.")
            self.serve_artifact(current, path, record=True)
            return
        # The request that started the run is recorded by the run itself; followers get a row.
        self.stream_run(active, record=not started_here)

    def share_delta(self, definition: DefinitionView, since: str) -> None:
        """``…/download?token=…&since=LOGID`` (issue 12): what changed since the consumer's
        run, in the export's format; its X-Log-Id is the next cursor. 410 for a cursor the
        server has no manifest for: fetch the full feed then."""
        if not since.strip():
            self.send_problem(
                400,
                "since needs a log ID: the X-Log-Id of the last file you fetched "
                "(leave since out for the full feed).",
                type=PROBLEM_TYPE + "bad-query",
            )
            return
        reason = service.delta_refusal(definition.profile, definition.output)
        if reason:
            self.send_problem(409, reason, type=PROBLEM_TYPE + "no-delta")
            return
        if self.command == "HEAD":  # a HEAD never starts a run
            writer = service.get_writer(definition.profile, definition.output)
            self.start_response(
                200, [("Content-Type", writer.media_type), ("Cache-Control", "private, no-cache")]
            )
            return
        try:
            run = service.run_delta(
                definition.export_id,
                since,
                trigger="api",
                api_version=config.API_VERSION,
                link=self.share_link,
            )
        except Gone as exc:
            self.send_problem(410, str(exc), type=PROBLEM_TYPE + "cursor-gone")
            return
        finally:
            self.app.shares.invalidate()  # a full run may have been made first
        path = artifact_file(run)
        if run.status not in ("success", "warning") or path is None:
            self.send_problem(
                500,
                f"The delta {run.log_id} {run.status}: "
                + without_paths(run.messages[-1] if run.messages else "see its history."),
                type=PROBLEM_TYPE + "error",
            )
            return
        self.serve_artifact(run, path, record=False)

    def after_run(self, active: ActiveRun, *, record: bool) -> None:
        """A share request whose run was not published (it failed, or the publish gate held
        it) gets the last published file, saying so in ``X-Tuiexport-Unpublished`` and in the
        download's history row; a problem only when there is no such file."""
        outcome = active.outcome()
        if outcome.status in ("held", "failed"):
            previous = service.published_artifact(outcome.export_id)
            path = artifact_file(previous) if previous is not None else None
            if previous is not None and path is not None:
                why = (
                    "was held by the publish gate"
                    if outcome.status == "held"
                    else "failed and was not published"
                )
                self.serve_artifact(
                    previous,
                    path,
                    record=True,
                    extra=(
                        ("X-Tuiexport-Unpublished", f"{outcome.log_id}; status={outcome.status}"),
                        ("X-Tuiexport-Served-Run", previous.log_id),
                    ),
                    note=f"Served the artifact of run {previous.log_id}: run {outcome.log_id}, "
                    f"which this request waited for, {why}.",
                )
                return
            if outcome.status == "held":
                self.send_problem(
                    409,
                    f"The run {outcome.log_id} is held by the publish gate and no earlier file "
                    "of this export is left to serve; approve or discard the run.",
                    type=PROBLEM_TYPE + "held",
                    logId=outcome.log_id,
                )
                return
        super().after_run(active, record=record)

    # --- named share links (management API) -----------------------------------------------

    def list_links(self, export_id: str) -> None:
        if not self.authorized():
            return
        activity = service.link_activity(export_id)
        self.send_json(
            200,
            {
                "apiVersion": config.API_VERSION,
                "links": [self.link_json(a.link, a) for a in activity],
            },
        )

    def create_link(self, export_id: str) -> None:
        if not self.authorized():
            return
        link = service.create_link(export_id, self.link_name())
        self.app.shares.invalidate()
        location = f"{self.app.base_url}/api/v1/exports/{link.export_id}/links/{link.link_id}"
        self.send_json(201, self.link_json(link), [("Location", location)])

    def rename_link(self, export_id: str, link_id: str) -> None:
        if not self.authorized():
            return
        link = service.rename_link(export_id, int(link_id), self.link_name())
        self.app.shares.invalidate()
        self.send_json(200, self.link_json(link))

    def rotate_link(self, export_id: str, link_id: str) -> None:
        if not self.authorized():
            return
        link = service.rotate_link(export_id, int(link_id))
        self.app.shares.invalidate()
        self.send_json(200, self.link_json(link))

    def revoke_link(self, export_id: str, link_id: str) -> None:
        if not self.authorized():
            return
        link = service.revoke_link(export_id, int(link_id))
        self.app.shares.invalidate()
        self.send_json(200, self.link_json(link))

    def link_name(self) -> str:
        """The ``{"name": …}`` a create or rename sends."""
        try:
            return msgspec.json.decode(self.body or b"", type=_LinkName).name
        except msgspec.DecodeError:
            raise UserError(
                'Send the link\'s name as a JSON object, e.g. {"name": "Shop A"}.'
            ) from None

    def link_json(self, link: LinkView, activity: LinkActivity | None = None) -> dict[str, Any]:
        shared = link.revoked is None
        data: dict[str, Any] = {
            "linkId": link.link_id,
            "exportId": link.export_id,
            "name": link.name,
            "url": self.app.base_url + service.link_path(link) if shared else None,
            "created": _utc(link.created),
            "rotated": _utc(link.rotated),
            "revoked": _utc(link.revoked),
        }
        if activity is not None:
            data |= {
                "lastFetch": _utc(activity.last_fetch),
                "lastLogId": activity.last_log_id,
                "got": activity.got,
                "gotRun": activity.got_run,
                "fetches7d": activity.fetches_7d,
                "lastSeen": _utc(activity.last_seen),
                "usualInterval": activity.usual_interval,
                "overdue": activity.overdue,
                "warning": activity.warning or None,
            }
        return data

    # --- JSON shapes --------------------------------------------------------------------

    def run_json(self, run: RunView) -> dict[str, Any]:
        status_url = f"{self.app.base_url}/api/v1/runs/{run.log_id}"
        return {
            "logId": run.log_id,
            "exportId": run.export_id,
            "exportName": run.export_name,
            "trigger": run.trigger,
            "status": run.status,
            "started": _utc(run.started),
            "finished": _utc(run.finished),
            "apiVersion": run.api_version,
            "profile": run.profile,
            "output": run.output,
            "fileFormat": run.file_format,
            "productCount": run.product_count,
            "omittedCount": run.omitted_count,
            "size": run.size,
            "sha256": run.sha256,
            "messages": [without_paths(m) for m in run.messages],
            "statusUrl": status_url,
            "fileUrl": status_url + "/file" if run.status in ("success", "warning") else None,
            "delta": {
                "since": run.delta_since,
                "base": run.delta_base,
                "added": run.added_count,
                "changed": run.changed_count,
                "removed": run.removed_count,
            }
            if run.is_delta
            else None,
        }

    def notification_json(self, n: service.NotificationView) -> dict[str, Any]:
        return {
            "channel": n.channel,
            "target": n.target,
            "state": n.state,
            "attempts": [
                {"attempt": t.attempt, "at": _utc(t.at), "ok": t.ok, "httpStatus": t.http_status}
                | ({"error": t.error} if t.error else {})
                for t in n.tries
            ],
            "nextAttempt": _utc(n.next_attempt),
        }

    def definition_json(self, d: DefinitionView) -> dict[str, Any]:
        return {
            "exportId": d.export_id,
            "name": d.name,
            "profile": d.profile,
            "output": d.output,
            "fileFormat": d.file_format,
            "language": d.language,
            "selection": d.selection_name,
            "productLimit": d.effective_limit,
            "valid": d.valid,
            "reasons": d.reasons,
            "shareUrl": self.app.base_url + service.share_path(d) if d.links else None,
            "links": [
                {
                    "linkId": k.link_id,
                    "name": k.name,
                    "url": self.app.base_url + service.link_path(k),
                }
                for k in d.links
            ],
            "created": _utc(d.created),
            "updated": _utc(d.updated),
            "lastRun": self.run_json(d.last_run) if d.last_run else None,
        }


#: An absolute file path in a message: POSIX (/a/b…), Windows (C:\\a\\b…) or an object in the
#: artifacts store (s3://bucket/key…).
_PATH = re.compile(
    r"(?<![\w.:/])(?:/(?:[^\s/'\"]+/)+|[A-Za-z]:\\(?:[^\s\\'\"]+\\)+|s3://(?:[^\s/'\"]+/)*)"
    r"([^\s/\\'\"]*)"
)


def without_paths(message: str) -> str:
    """A run's message as the API shows it: no server file path, only the file's name
    ("written to /srv/…/artifacts/x.jsonl" becomes "written to x.jsonl")."""
    return _PATH.sub(lambda m: m.group(1) or "(a server folder)", message)


@functools.lru_cache(maxsize=256)
def parsed_query(query: str) -> dict[str, list[str]]:
    """The query's parameters (read only: shared by every request with that query string; a
    client asks the same share URL again and again). ValueError: more than 16 of them."""
    return parse_qs(query, keep_blank_values=True, max_num_fields=16)


class _LinkName(msgspec.Struct, forbid_unknown_fields=True):
    name: str


def _disguised_token(name: str) -> bool:
    return name != "token" and unquote_plus(name, errors="replace") == "token"


def raise_invalid(definition: DefinitionView) -> NoReturn:
    raise InvalidDefinition(definition.name, definition.reasons)
