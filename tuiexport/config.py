"""Settings and locations.

Settings come from a TOML file (``config.toml`` in the user config directory, or the file named by
``TUIEXPORT_CONFIG``) with environment overrides. ``TUIEXPORT_HOME`` moves every location (database,
artifacts, downloads, config) under one folder, which tests and portable installs use.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from tuiexport.errors import UserError

APP_NAME = "tuiexport"
API_VERSION = "1.0"


class ConfigError(UserError):
    """The configuration file cannot be used; the message is one sentence for the user."""


#: The run endings a notification can be sent for (``held``: a run stopped by the publish gate).
NotifyStatus = Literal["success", "warning", "failed", "cancelled", "held"]
#: The run endings that notify unless ``notify_on`` says otherwise.
NOTIFY_DEFAULT: tuple[NotifyStatus, ...] = ("failed", "held", "warning")


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: Contract limit: the most products one export may hold.
    contract_limit: int = 200_000
    #: How many artifacts per export are kept on disk (history rows stay).
    keep_artifacts: int = 5
    #: Catalog default language: the fallback for texts missing in an export's language.
    default_language: str = "de"
    #: Share server.
    server_host: str = "127.0.0.1"
    server_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8421
    base_url: str = ""
    #: Exports the share servers run at once, counted across every server on the database.
    max_concurrent_runs: int = 4
    #: ``tuiexport serve`` runs exports itself (false: it queues them for ``tuiexport worker``
    #: processes, a server of a cluster with dedicated workers; ``serve --no-exports`` too).
    run_exports: bool = True
    #: Seconds a share download waits for its run while the run is ``queued`` (no export
    #: process took it yet); then 503 with Retry-After, and the run stays queued.
    queue_wait: Annotated[float, msgspec.Meta(ge=0)] = 30.0
    #: Folders; empty means the platform default (or under TUIEXPORT_HOME).
    artifacts_dir: str = ""
    downloads_dir: str = ""
    #: Artifacts in an S3-compatible object store, ``s3://bucket/prefix`` (endpoint, region,
    #: profile as URL options; credentials the boto3 way); empty means the artifacts folder.
    #: See docs/operations/object-storage.md.
    artifacts_url: str = ""
    #: Seconds a presigned URL of the object store is valid when the share server answers a
    #: download with a redirect to it; 0 (the default): the server streams every file itself.
    artifacts_redirect: Annotated[int, msgspec.Meta(ge=0, le=604800)] = 0
    #: Who is named as producer of definitions created here; empty means the login name.
    producer: str = ""
    #: The TUI changes nothing: no create, save, delete, rotate (``tuiexport --read-only`` too).
    read_only: bool = False
    #: In read-only mode, downloads may still run (they write a file and a history row).
    read_only_downloads: bool = True
    #: The TUI's Textual theme (``textual-dark``, ``textual-light``, ``nord``, ``gruvbox``, …).
    theme: str = "textual-dark"
    #: The TUI's keys by binding id (``[keymap]`` in config.toml), e.g. ``download = "f5,ctrl+g"``.
    keymap: dict[str, str] = {}
    #: Notifications (management.notify, docs/guide/notifications.md): which run endings notify
    #: (a list; in the environment, comma-separated), the webhook, its HMAC secret (best given as
    #: TUIEXPORT_WEBHOOK_SECRET), and retries: attempts in all, the first pause (doubling each
    #: time, at most notify_backoff_max), and how long an exiting process waits for deliveries.
    notify_on: list[NotifyStatus] = msgspec.field(default_factory=lambda: list(NOTIFY_DEFAULT))
    webhook_url: str = ""
    webhook_secret: str = ""
    webhook_timeout: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    notify_attempts: Annotated[int, msgspec.Meta(ge=1, le=100)] = 8
    notify_backoff: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    notify_backoff_max: Annotated[float, msgspec.Meta(ge=0)] = 3600.0
    notify_exit_wait: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    #: Email through an SMTP server (empty smtp_host: no email). smtp_port 0: 587 for
    #: starttls, 465 for ssl, 25 for none. The password is best given as TUIEXPORT_SMTP_PASSWORD.
    smtp_host: str = ""
    smtp_port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 0
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout: Annotated[float, msgspec.Meta(gt=0)] = 30.0
    mail_from: str = ""
    mail_to: list[str] = []


# platformdirs and tomllib (about a tenth of a ``--run``'s imports) are imported where they are
# needed: with TUIEXPORT_HOME set and no configuration file, never.


def _home() -> Path | None:
    home = os.environ.get("TUIEXPORT_HOME")
    return Path(home).expanduser() if home else None


def data_dir() -> Path:
    home = _home()
    if home:
        return home
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def config_path() -> Path:
    explicit = os.environ.get("TUIEXPORT_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    home = _home()
    if home:
        return home / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / "config.toml"


def default_db_path() -> Path:
    return data_dir() / "tuiexport.sqlite"


def load_settings() -> Settings:
    """Read the config file (if any), then apply ``TUIEXPORT_*`` environment overrides."""
    raw: dict[str, Any] = {}
    path = config_path()
    if path.exists():
        import tomllib

        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(f"Cannot read the configuration file {path}: {reason}.") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"The configuration file {path} is not UTF-8 text; save it as UTF-8."
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"The configuration file {path} is not valid TOML: {exc}.") from None
    from_env: set[str] = set()
    defaults = Settings()
    for field in Settings.__struct_fields__:
        value = os.environ.get(f"TUIEXPORT_{field.upper()}")
        if value is not None:
            # A list in the environment is comma-separated: TUIEXPORT_NOTIFY_ON=failed,held
            is_list = isinstance(getattr(defaults, field), list)
            raw[field] = [v.strip() for v in value.split(",") if v.strip()] if is_list else value
            from_env.add(field)
    try:
        loaded = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        where = re.search(r"\$\.(\w+)", str(exc))
        if where and where.group(1) in from_env:
            name = f"TUIEXPORT_{where.group(1).upper()}"
            raise ConfigError(f"The environment variable {name} is invalid: {exc}.") from None
        raise ConfigError(f"The configuration in {path} is invalid: {exc}.") from None
    if loaded.contract_limit < 1:
        # 0 would export nothing and -5 would lift the limit: neither is a contract.
        source = (
            "TUIEXPORT_CONTRACT_LIMIT"
            if "TUIEXPORT_CONTRACT_LIMIT" in os.environ
            else f"contract_limit in {path}"
        )
        raise ConfigError(
            f"The contract limit ({source}) must be a whole number of at least 1, "
            f"not {loaded.contract_limit}."
        )
    if loaded.artifacts_url:
        from tuiexport.storage.base import StorageError, parse_s3_url

        source = (
            "TUIEXPORT_ARTIFACTS_URL" if "artifacts_url" in from_env else f"artifacts_url in {path}"
        )
        try:
            parse_s3_url(loaded.artifacts_url)
        except StorageError as exc:
            raise ConfigError(f"{str(exc).rstrip('.')} ({source}).") from None
    if loaded.webhook_url and not re.match(r"https?://[^/?#]", loaded.webhook_url, re.I):
        source = "TUIEXPORT_WEBHOOK_URL" if "webhook_url" in from_env else f"webhook_url in {path}"
        raise ConfigError(f"The webhook URL ({source}) must start with http:// or https://.")
    return loaded


_settings: Settings | None = None


def settings() -> Settings:
    global _settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def reset_settings(value: Settings | None = None) -> None:
    """Forget cached settings (tests, or after the environment changed)."""
    global _settings
    _settings = value


def artifacts_dir() -> Path:
    configured = settings().artifacts_dir
    return Path(configured).expanduser() if configured else data_dir() / "artifacts"


def downloads_dir() -> Path:
    configured = settings().downloads_dir
    if configured:
        return Path(configured).expanduser()
    home = _home()
    if home:
        return home / "downloads"
    import platformdirs

    return Path(platformdirs.user_downloads_dir())
