"""CLI of the share server: ``tuiexport serve`` and ``tuiexport apikey create|list|revoke``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from tuiexport import config


def serve(args: argparse.Namespace) -> int:
    from tuiexport import service
    from tuiexport.server import start_server

    settings = config.settings()
    handle = start_server(
        args.host or settings.server_host,
        settings.server_port if args.port is None else args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        base_url=args.base_url,
        run_exports=False if args.no_exports else None,
    )
    # On PostgreSQL a server that runs exports also runs those other servers queued (one
    # machine with SQLite has no other servers; the TUI's server never takes a cluster's runs).
    work = None
    if not args.no_exports and settings.run_exports:
        service.remove_orphan_parts()  # what a run killed here left (another host marked it)
    if not args.no_exports and settings.run_exports and service.cluster_database():
        work = service.Worker(settings.max_concurrent_runs, name="serve")
        work.start()
    _until_signal(
        f"serving on {handle.url} (share URLs start with {handle.base_url})",
        [*([work.stop] if work is not None else []), handle.stop],
    )
    return 0


def _until_signal(doing: str, stops: list[Callable[[], object]]) -> None:
    """Say what runs, wait for SIGINT/SIGTERM, then call ``stops`` in order (the signal
    handlers are put back)."""
    stop = threading.Event()
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    print(f"tuiexport: {doing}; Ctrl+C stops.", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        print("tuiexport: stopping (running exports are cancelled)…", file=sys.stderr, flush=True)
        for end in stops:
            end()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print("tuiexport: stopped.", file=sys.stderr, flush=True)


def worker(args: argparse.Namespace) -> int:
    """Run queued exports until SIGINT/SIGTERM (runs still going then end as cancelled)."""
    from tuiexport import service

    jobs = args.jobs or config.settings().max_concurrent_runs
    service.remove_orphan_parts()  # what a worker killed here left (another host marked it)
    work = service.Worker(jobs)
    sweeper = service.Sweeper(service.SWEEP_EVERY)
    work.start()
    sweeper.start()
    wakes = "woken by PostgreSQL" if service.cluster_database() else "looking every second"
    _until_signal(
        f"worker running queued exports of {service.database_location()}, {jobs} at once ({wakes})",
        [sweeper.stop, work.stop],
    )
    return 0


def apikey_create(args: argparse.Namespace) -> int:
    from tuiexport import service
    from tuiexport.output import print_json

    view, secret = service.create_key(args.name)
    if args.json:
        print_json(
            {"name": view.name, "prefix": view.prefix, "key": secret, "created": view.created}
        )
    else:
        print(secret)
        print(
            f"API key '{view.name}' created. It is shown only now: store it; the server keeps only "
            "a hash. Send it as 'Authorization: Bearer <key>'.",
            file=sys.stderr,
        )
    return 0


def apikey_list(args: argparse.Namespace) -> int:
    from tuiexport import service
    from tuiexport.output import print_json

    keys = service.list_keys(include_revoked=args.all)
    if args.json:
        print_json(
            [
                {
                    "name": k.name,
                    "prefix": k.prefix,
                    "created": k.created,
                    "lastUsed": k.last_used,
                    "revoked": k.revoked,
                }
                for k in keys
            ]
        )
        return 0
    if not keys:
        print("No API keys; create one with 'tuiexport apikey create NAME'.")
        return 0
    width = max(len(k.name) for k in keys)
    print(f"{'NAME':<{width}}  {'PREFIX':<13}  {'CREATED':<16}  {'LAST USED':<16}  STATE")
    for k in keys:
        used = f"{k.last_used:%Y-%m-%d %H:%M}" if k.last_used else "never"
        state = f"revoked {k.revoked:%Y-%m-%d %H:%M}" if k.revoked else "active"
        print(f"{k.name:<{width}}  {k.prefix:<13}  {k.created:%Y-%m-%d %H:%M}  {used:<16}  {state}")
    return 0


def apikey_revoke(args: argparse.Namespace) -> int:
    from tuiexport import service
    from tuiexport.output import print_json

    view = service.revoke_key(args.key)
    if args.json:
        print_json({"name": view.name, "prefix": view.prefix, "revoked": view.revoked})
    else:
        print(f"API key '{view.name}' ({view.prefix}…) revoked; the server refuses it from now on.")
    return 0


def register(sub: argparse._SubParsersAction[Any]) -> None:
    from tuiexport.output import whole_number

    p = sub.add_parser("serve", help="run the share server in the foreground")
    p.add_argument(
        "--host", help="address to listen on (default 127.0.0.1; 0.0.0.0 shares on the network)"
    )
    p.add_argument(
        "--port", type=whole_number(0, 65535), help="port (default 8421; 0 picks a free one)"
    )
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument(
        "--base-url", metavar="URL", help="public URL share links start with (behind a proxy)"
    )
    p.add_argument(
        "--no-exports",
        action="store_true",
        help="run no exports here: queue them for 'tuiexport worker' (run_exports in the config)",
    )
    p.set_defaults(handler=serve)

    p = sub.add_parser("worker", help="run queued exports for the share servers (a cluster)")
    p.add_argument(
        "--jobs",
        type=whole_number(1, 1000),
        help="exports run at once here (default: max_concurrent_runs in the config)",
    )
    p.set_defaults(handler=worker)

    keys = sub.add_parser("apikey", help="API keys for the management API").add_subparsers(
        dest="apikey_command", metavar="ACTION", required=True
    )
    p = keys.add_parser("create", help="create a key (shown once)")
    p.add_argument("name", help="who uses it, e.g. 'shop-nightly'")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=apikey_create)
    p = keys.add_parser("list", help="list keys (never the keys themselves)")
    p.add_argument("--all", action="store_true", help="include revoked keys")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=apikey_list)
    p = keys.add_parser("revoke", help="revoke a key by name or prefix")
    p.add_argument("key", metavar="NAME|PREFIX")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=apikey_revoke)
