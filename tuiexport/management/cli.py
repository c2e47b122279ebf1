"""CLI for export definitions, product selections, history, and headless ``--run``."""

from __future__ import annotations

import argparse
import stat
import sys
from pathlib import Path
from typing import Any

import msgspec

from tuiexport import service
from tuiexport.errors import RunFailed, RunHeld, UserError
from tuiexport.progress import TerminalProgress
from tuiexport.units import file_size


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def _emit(args: argparse.Namespace, data: object, text: str) -> None:
    from tuiexport.output import print_json

    if args.json:
        print_json(data)
    else:
        print(text)


# --- exports -------------------------------------------------------------------------------


def _definition_options(p: argparse.ArgumentParser, creating: bool) -> None:
    from tuiexport.output import whole_number

    p.add_argument("--name", required=False)
    p.add_argument("--selection", metavar="ID|NAME", help="product selection to use")
    if not creating:
        p.add_argument("--no-selection", action="store_true", help="remove the selection")
    p.add_argument("--profile", choices=service.PROFILES)
    p.add_argument("--output", choices=service.OUTPUTS, dest="output_format")
    p.add_argument("--language", choices=service.LANGUAGES)
    p.add_argument("--long-descriptions", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--limit",
        type=whole_number(0, MAX_INT),
        metavar="N",
        help="product limit (0: the contract limit)",
    )
    p.add_argument(
        "--excel",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="CSV for Excel: BOM, semicolon, decimal comma",
    )
    for flag, what in (("product", "product count"), ("size", "file size")):
        p.add_argument(
            f"--gate-{flag}-drop",
            type=_percent_or_off,
            metavar="PCT|off",
            help=f"publish gate: hold a run whose {what} fell by more than PCT %% "
            "against the last published run",
        )
    p.add_argument(
        "--gate-hold-empty",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="publish gate: hold a run without products",
    )
    p.add_argument(
        "--validate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="read each file back before it is published (default: on)",
    )
    _json_flag(p)


_OFF = "off"


def _percent_or_off(text: str) -> float | str:
    """A percentage 0–100 or ``off`` (the argument of the gate's limits)."""
    if text.strip().lower() in ("off", "none", ""):
        return _OFF
    try:
        value = float(text.strip().rstrip("%"))
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"'{text}' is not a percentage from 0 to 100 or 'off'")
    return value


def _changes(
    args: argparse.Namespace, current_options: dict[str, Any] | None = None
) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["name"] = args.name
    if args.selection is not None:
        changes["selection_id"] = service.get_selection(args.selection).id
    if getattr(args, "no_selection", False):
        changes["selection_id"] = None
    if args.profile is not None:
        changes["profile"] = args.profile
    if args.output_format is not None:
        changes["output"] = args.output_format
    if args.language is not None:
        changes["language"] = args.language
    if args.long_descriptions is not None:
        changes["long_descriptions"] = args.long_descriptions
    if args.limit is not None:
        changes["product_limit"] = args.limit or None
    if args.excel is not None:
        options = dict(current_options or {})
        if args.excel:
            options["csv_variant"] = "excel"
        else:
            options.pop("csv_variant", None)
        changes["options"] = options
    gate = {
        "gate_product_drop": args.gate_product_drop,
        "gate_size_drop": args.gate_size_drop,
        "gate_hold_empty": args.gate_hold_empty,
    }
    if any(value is not None for value in gate.values()):
        options = dict(changes.get("options", current_options or {}))
        for key, value in gate.items():
            if value is not None:
                options[key] = None if value == _OFF else value
        changes["options"] = options
    if args.validate is not None:
        options = dict(changes.get("options", current_options or {}))
        if args.validate:
            options.pop("validate", None)
        else:
            options["validate"] = False
        changes["options"] = options
    return changes


def _describe(d: service.DefinitionView) -> str:
    lines = [
        f"{d.name}  [{'valid' if d.valid else 'INVALID'}]",
        f"  export ID     {d.export_id}",
        f"  selection     {d.selection_name or '(none)'}"
        + (f" (#{d.selection_id})" if d.selection_id else ""),
        f"  data format   {d.file_format}",
        f"  language      {d.language}   long descriptions: {'yes' if d.long_descriptions else 'no'}",
        f"  limit         {d.effective_limit:,}" + ("" if d.product_limit else " (contract limit)"),
        f"  producer      {d.producer}",
        f"  created       {d.created:%Y-%m-%d %H:%M}   changed {d.updated:%Y-%m-%d %H:%M} (UTC)",
    ]
    if d.options:
        lines.append(f"  options       {d.options}")
    if d.last_run:
        r = d.last_run
        lines.append(
            f"  last run      {r.started:%Y-%m-%d %H:%M} {r.status} ({r.product_count:,} products, {r.log_id})"
        )
    lines.extend(f"  ! {reason}" for reason in d.reasons)
    return "\n".join(lines)


def exports_list(args: argparse.Namespace) -> int:
    views = service.list_definitions(sort=args.sort, filter_text=args.filter or "")
    rows = [
        f"{'!' if not v.valid else ' '} {v.export_id}  {v.name[:34]:<34}  {v.file_format[:26]:<26}  "
        + (
            f"{v.last_run.started:%Y-%m-%d %H:%M} {v.last_run.status}"
            if v.last_run
            else "never run"
        )
        for v in views
    ]
    _emit(
        args,
        views,
        "\n".join(rows) if rows else "No export definitions yet ('tuiexport exports create').",
    )
    return 0


def exports_show(args: argparse.Namespace) -> int:
    view = service.get_definition(args.export)
    _emit(args, view, _describe(view))
    return 0


def exports_create(args: argparse.Namespace) -> int:
    changes = _changes(args)
    # Without --name: "New export", numbered while that name is taken (names are unique).
    view = service.create_definition(changes.pop("name", None) or None, **changes)
    _emit(args, view, _describe(view))
    return 0


def exports_update(args: argparse.Namespace) -> int:
    current = service.get_definition(args.export)
    changes = _changes(args, current.options)
    if not changes:
        raise UserError(
            "Nothing to change: give at least one option (see 'tuiexport exports update --help')."
        )
    view = service.update_definition(current.export_id, **changes)
    _emit(args, view, _describe(view))
    return 0


def exports_delete(args: argparse.Namespace) -> int:
    name = service.delete_definition(args.export)
    _emit(args, {"deleted": name}, f"Deleted the export '{name}' (its history stays).")
    return 0


def exports_rotate(args: argparse.Namespace) -> int:
    view = service.rotate_share_token(args.export)
    url = service.share_url(view.export_id, args.base_url)
    _emit(
        args,
        {"exportId": view.export_id, "shareUrl": url},
        f"New share URL (the old one no longer works):\n{url}",
    )
    return 0


def exports_share_url(args: argparse.Namespace) -> int:
    view = service.get_definition(args.export)
    url = service.share_url(view.export_id, args.base_url)
    _emit(args, {"exportId": view.export_id, "shareUrl": url}, url)
    return 0


# --- selections ----------------------------------------------------------------------------


#: Criteria are a few hundred bytes; a file bigger than this is the wrong file.
_MAX_CRITERIA = 1 << 20


def _read_criteria(text: str | None) -> service.Criteria | None:
    if text is None:
        return None
    if text == "-":
        where = "standard input"
        data = sys.stdin.buffer.read(_MAX_CRITERIA + 1)
    elif text.startswith("@"):
        where = f"the criteria file {text[1:]}"
        try:
            with open(text[1:], "rb") as f:
                data = f.read(_MAX_CRITERIA + 1)
        except OSError as exc:
            raise UserError(f"Cannot read {where}: {exc.strerror}.") from exc
    else:
        return service.criteria_from_json(text)
    if len(data) > _MAX_CRITERIA:
        raise UserError(
            f"{where[0].upper()}{where[1:]} is larger than 1 MiB; criteria are short JSON."
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"{where[0].upper()}{where[1:]} is not UTF-8 text; save it as UTF-8."
        ) from None
    return service.criteria_from_json(data)


def _describe_selection(s: service.SelectionView, count: int | None) -> str:
    lines = [
        f"#{s.id} {s.name}"
        + ("" if s.name_custom else " (generated name)")
        + ("" if s.valid else "  [INVALID]"),
        f"  criteria  {service.criteria_to_json(s.criteria)}",
        f"  used by   {', '.join(s.used_by) if s.used_by else '(no export)'}",
    ]
    if count is not None:
        lines.append(f"  products  {count:,}")
    lines.extend(f"  ! {reason}" for reason in s.reasons)
    return "\n".join(lines)


def selections_list(args: argparse.Namespace) -> int:
    views = service.list_selections()
    rows = [
        f"{'!' if not v.valid else ' '} #{v.id:<5} {v.name}  "
        f"({len(v.used_by)} export{'' if len(v.used_by) == 1 else 's'})"
        for v in views
    ]
    _emit(
        args,
        views,
        "\n".join(rows) if rows else "No product selections yet ('tuiexport selections create').",
    )
    return 0


def selections_show(args: argparse.Namespace) -> int:
    view = service.get_selection(args.selection)
    count = service.count_products(view.criteria) if view.valid else None
    if args.json:
        _emit(args, {"selection": view, "count": count}, "")
        return 0
    text = _describe_selection(view, count)
    if args.preview:
        rows = service.preview(view.criteria, n=args.preview)
        text += "\n" + "\n".join(
            f"  {r.puid:>12}  {(r.ean or ''):<13}  {r.name[:40]:<40}  "
            + (f"{r.price:>9.2f}" if r.price is not None else "        –")
            for r in rows
        )
    print(text)
    return 0


def selections_create(args: argparse.Namespace) -> int:
    criteria = _read_criteria(args.criteria) or service.Criteria()
    view = service.create_selection(criteria, args.name)
    _emit(args, view, _describe_selection(view, None))
    return 0


def selections_update(args: argparse.Namespace) -> int:
    criteria = _read_criteria(args.criteria)
    if criteria is None and args.name is None:
        raise UserError("Nothing to change: give --criteria and/or --name.")
    view = service.update_selection(args.selection, criteria=criteria, name=args.name)
    _emit(args, view, _describe_selection(view, None))
    return 0


def selections_delete(args: argparse.Namespace) -> int:
    name = service.get_selection(args.selection).name
    service.delete_selection(args.selection, force=args.force)
    _emit(args, {"deleted": name}, f"Deleted the selection '{name}'.")
    return 0


# --- history -------------------------------------------------------------------------------


def history_cmd(args: argparse.Namespace) -> int:
    if args.log_id in ("approve", "discard"):
        return history_decide(args.log_id, args.held_id, args)
    if args.log_id == "diff":
        return history_diff(args.held_id, args.other_id, args)
    if args.held_id or args.other_id:
        raise UserError(
            f"'{args.held_id}' is one word too many: 'tuiexport history LOGID' shows a run, "
            "'tuiexport history approve|discard LOGID' decides a held one."
        )
    if args.log_id:
        run = service.get_run(args.log_id)
        notes = service.run_notifications(run.log_id)
        text = "\n".join(
            [
                f"{run.log_id}  {run.status}  {run.export_name}  ({run.export_id})",
                f"  trigger {run.trigger}   API version {run.api_version or '–'}   format {run.file_format}",
                *(
                    [f"  share link {run.link_name} ({run.link_id})"]
                    if run.link_id is not None
                    else []
                ),
                *([f"  served the file of run {run.source_log_id}"] if run.source_log_id else []),
                f"  started {run.started:%Y-%m-%d %H:%M:%S}   finished "
                + (f"{run.finished:%Y-%m-%d %H:%M:%S}" if run.finished else "–")
                + " (UTC)",
                f"  products {run.product_count:,} (left out: {run.omitted_count:,})   size {file_size(run.size, '–')}",
                f"  file {run.artifact_path or '–'}" + ("" if run.artifact_kept else " (not kept)"),
                f"  sha256 {run.sha256 or '–'}",
                *(f"  - {m}" for m in run.messages),
                *_notification_lines(notes),
            ]
        )
        _emit(args, {**msgspec.to_builtins(run), "notifications": notes}, text)
        return 0
    export_id = service.get_definition(args.export).export_id if args.export else None
    runs = service.list_history(limit=args.limit, export_id=export_id, status=args.status)
    rows = [
        f"{r.log_id}  {r.status:<11} {r.started:%Y-%m-%d %H:%M}  {r.export_name[:30]:<30}  "
        f"{r.api_version or '-':<4} {_format_of(r)[:24]:<24} {r.product_count:>9,}  {file_size(r.size, '–'):>8}"
        for r in runs
    ]
    _emit(args, runs, "\n".join(rows) if rows else "No runs yet.")
    return 0


def _format_of(run: service.RunView) -> str:
    return f"{run.file_format} delta" if run.is_delta else run.file_format


def history_decide(action: str, log_id: str | None, args: argparse.Namespace) -> int:
    """``tuiexport history approve|discard LOGID``: the operator's decision on a held run."""
    if not log_id:
        raise UserError(f"Name the held run: 'tuiexport history {action} LOGID'.")
    decide = service.approve_run if action == "approve" else service.discard_run
    run = decide(log_id, by="cli")
    _emit(args, run, f"{run.log_id}  {run.status}: {run.messages[-1]}")
    return 0


def history_diff(old: str | None, new: str | None, args: argparse.Namespace) -> int:
    """``tuiexport history diff LOGID_A LOGID_B``: what changed from run A to run B."""
    if not old or not new:
        raise UserError("Name two runs of one export: 'tuiexport history diff LOGID_A LOGID_B'.")
    diff = service.run_diff(old, new)
    _emit(args, diff, "\n".join(diff.lines()))
    return 0


def _notification_lines(notes: list[service.NotificationView]) -> list[str]:
    """A run's notifications and every attempt, for ``history LOGID``."""
    lines = ["  notifications:"] if notes else []
    for n in notes:
        state = {"delivered": "delivered", "failed": "failed, gave up"}.get(n.state, "pending")
        if n.state == "pending" and n.next_attempt:
            state += f", next attempt {n.next_attempt:%Y-%m-%d %H:%M:%S}"
        lines.append(f"    {n.channel} {n.target}: {state} ({n.attempts} attempts)")
        for t in n.tries:
            lines.append(f"      #{t.attempt} {t.at:%Y-%m-%d %H:%M:%S}  {t.outcome}")
    return lines


def notify_retry(args: argparse.Namespace) -> int:
    """``tuiexport notify retry [LOGID]``: send what is undelivered now, once each."""
    results = service.retry_notifications(args.log_id)
    lines = [
        f"{n.log_id}  {n.channel} {n.target}: "
        + ("delivered" if ok else f"not delivered ({n.tries[-1].error if n.tries else n.state})")
        for n, ok in results
    ]
    _emit(
        args,
        [{"delivered": ok, **msgspec.to_builtins(n)} for n, ok in results],
        "\n".join(lines) if lines else "Nothing to resend: every notification was delivered.",
    )
    if not all(ok for _, ok in results):
        raise RunFailed(
            f"{sum(not ok for _, ok in results)} of {len(results)} notifications could not be "
            "delivered; 'tuiexport history LOGID' shows every attempt."
        )
    return 0


# --- headless run --------------------------------------------------------------------------


def _check_output(path: Path) -> None:
    """The run replaces the file at ``path`` by renaming its finished file over it: a device or a
    pipe there would be replaced by a plain file (as root, /dev/full would be gone)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # not there yet (or not reachable): the run says why it cannot write
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UserError(
            f"-o {path} is not a regular file or a folder (a device or a pipe); "
            "name a file or a folder, or use '-o -' to write to standard output."
        )


def init_command(args: argparse.Namespace) -> int:
    """Create (or bring up to date) the database: the one explicit first-run step for scripts,
    containers and cron set-ups, which must not wait for someone to start the TUI."""
    from tuiexport.output import print_json

    service.prepare_database(args.db, load_sample=not args.no_sample)
    service.mark_interrupted()
    where = service.database_location()
    definitions = len(service.list_definitions())
    products = service.count_products(service.Criteria(suppliers="all"))
    if args.json:
        print_json({"database": where, "definitions": definitions, "products": products})
    else:
        print(
            f"The database {where} is ready: {products:,} products, "
            f"{definitions} export definitions."
        )
    return 0


def run_command(args: argparse.Namespace) -> int:
    """``tuiexport --run EXPORT [-o PATH|-] [--since LOGID]``: 0 success/warning, 1 failed,
    2 invalid/usage, 3 held by the publish gate, 4 a delta's cursor the export no longer has."""
    to_stdout = args.output == "-"
    output_path = None if to_stdout or not args.output else args.output
    if output_path is not None:
        _check_output(Path(output_path).expanduser())
    progress = TerminalProgress("products", sys.stderr.isatty() and not args.quiet)
    try:
        if args.since:
            run = service.run_delta(
                args.run, args.since, trigger="cli", output_path=output_path, progress=progress
            )
        else:
            run = service.run_export(
                args.run, trigger="cli", output_path=output_path, progress=progress
            )
    finally:
        progress.close()
    if run.status in ("failed", "cancelled"):
        raise RunFailed(
            f"The export '{run.export_name}' {run.status} (log ID {run.log_id}): {run.messages[-1]}"
        )
    if run.status == "held":
        raise RunHeld(
            f"The export '{run.export_name}' is held by the publish gate (log ID {run.log_id}): "
            f"{run.messages[1]} The file {run.artifact_path} is kept, not published; "
            f"'tuiexport history approve {run.log_id}' publishes it."
        )
    if run.status == "warning":
        for message in run.messages[1:]:
            print(f"tuiexport: warning: {message}", file=sys.stderr)
    if run.is_delta:  # the next cursor, for the script that keeps it
        print(
            f"tuiexport: delta {run.log_id}: {run.added_count:,} added, {run.changed_count:,} "
            f"changed, {run.removed_count:,} removed; next time: --since {run.log_id}",
            file=sys.stderr,
        )
    if to_stdout:
        import shutil

        with service.open_run_file(run) as src:
            shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
        sys.stdout.buffer.flush()
    else:
        print(run.artifact_path)
    return 0


# --- registration --------------------------------------------------------------------------


#: The largest number the database stores (64-bit integers).
MAX_INT = 2**63 - 1


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from tuiexport.output import whole_number

    p = sub.add_parser(
        "init",
        help="create the database (with the sample catalog and examples), or migrate it",
    )
    p.add_argument("--no-sample", action="store_true", help="schema only, no sample catalog")
    _json_flag(p)
    p.set_defaults(handler=init_command, needs_db=False)

    exports = sub.add_parser("exports", help="export definitions").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = exports.add_parser("list", help="list definitions")
    p.add_argument("--sort", choices=list(service.SORTS), default="name")
    p.add_argument("--filter", metavar="TEXT")
    _json_flag(p)
    p.set_defaults(handler=exports_list)
    for name, handler, helptext in (
        ("show", exports_show, "show one definition"),
        ("delete", exports_delete, "delete a definition (history stays)"),
    ):
        p = exports.add_parser(name, help=helptext)
        p.add_argument("export", metavar="EXPORT", help="export ID or unique name")
        _json_flag(p)
        p.set_defaults(handler=handler)
    p = exports.add_parser("create", help="create a definition")
    _definition_options(p, creating=True)
    p.set_defaults(handler=exports_create)
    p = exports.add_parser("update", help="change a definition")
    p.add_argument("export", metavar="EXPORT")
    _definition_options(p, creating=False)
    p.set_defaults(handler=exports_update)
    for name, handler, helptext in (
        ("rotate-token", exports_rotate, "new token for the first share link (its old URL stops)"),
        ("share-url", exports_share_url, "print the first share link's URL (see 'links')"),
    ):
        p = exports.add_parser(name, help=helptext)
        p.add_argument("export", metavar="EXPORT")
        p.add_argument("--base-url", metavar="URL", help="e.g. https://feeds.example.com")
        _json_flag(p)
        p.set_defaults(handler=handler)

    selections = sub.add_parser("selections", help="product selections").add_subparsers(
        dest="action", metavar="ACTION", required=True
    )
    p = selections.add_parser("list", help="list selections")
    _json_flag(p)
    p.set_defaults(handler=selections_list)
    p = selections.add_parser("show", help="show a selection with its product count")
    p.add_argument("selection", metavar="SELECTION", help="number or unique name")
    p.add_argument(
        "--preview",
        type=whole_number(0, 1_000_000),
        metavar="N",
        default=0,
        help="list the first N products",
    )
    _json_flag(p)
    p.set_defaults(handler=selections_show)
    for name, handler in (("create", selections_create), ("update", selections_update)):
        p = selections.add_parser(name, help=f"{name} a selection")
        if name == "update":
            p.add_argument("selection", metavar="SELECTION")
        p.add_argument("--criteria", metavar="JSON|@FILE|-", help="criteria as JSON (see the docs)")
        p.add_argument("--name", help="name ('' = generated from the rules)")
        _json_flag(p)
        p.set_defaults(handler=handler)
    p = selections.add_parser("delete", help="delete a selection")
    p.add_argument("selection", metavar="SELECTION")
    p.add_argument("--force", action="store_true", help="also if exports use it")
    _json_flag(p)
    p.set_defaults(handler=selections_delete)

    p = sub.add_parser(
        "history",
        help="runs, newest first; with a log ID: one run in full; "
        "approve|discard LOGID: decide a held run; diff LOGID_A LOGID_B: what changed",
        usage="tuiexport history [LOGID | approve LOGID | discard LOGID | diff LOGID_A LOGID_B] "
        "[options]",
    )
    p.add_argument("log_id", nargs="?", metavar="LOGID")
    p.add_argument("held_id", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("other_id", nargs="?", help=argparse.SUPPRESS)
    p.add_argument("--export", metavar="EXPORT")
    p.add_argument("--status", choices=list(service.RUN_STATUSES))
    p.add_argument("--limit", type=whole_number(1, 1_000_000), default=50)
    _json_flag(p)
    p.set_defaults(handler=history_cmd)

    notify = sub.add_parser("notify", help="notifications of runs (webhook, email)")
    actions = notify.add_subparsers(dest="action", metavar="ACTION", required=True)
    p = actions.add_parser(
        "retry", help="send every undelivered notification now (of one run with LOGID)"
    )
    p.add_argument("log_id", nargs="?", metavar="LOGID")
    _json_flag(p)
    p.set_defaults(handler=notify_retry)
