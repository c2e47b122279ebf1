"""API keys for the management endpoints of the share server.

A key is shown once, when it is created; the database keeps only its SHA-256 (a 32-byte random
key needs no slow hash: there is nothing to brute-force) and a short public prefix to find it by.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

import msgspec

from tuiexport.db import database
from tuiexport.errors import NotFound, UserError
from tuiexport.models import ApiKey, utcnow

#: Every key starts with this, so a leaked key is recognisable (and the access log can redact it).
KEY_PREFIX = "tuix_"
_PREFIX_CHARS = 8
#: ``last_used`` is written at most this often per key: a busy client must not cost a write per request.
LAST_USED_EVERY = timedelta(seconds=60)


class ApiKeyView(msgspec.Struct, kw_only=True):
    name: str
    #: The public part shown in lists: ``tuix_`` + the first characters of the key.
    prefix: str
    created: datetime
    last_used: datetime | None
    revoked: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked is None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def _view(row: ApiKey) -> ApiKeyView:
    return ApiKeyView(
        name=row.name,
        prefix=row.prefix,
        created=row.created,
        last_used=row.last_used,
        revoked=row.revoked,
    )


def create_key(name: str) -> tuple[ApiKeyView, str]:
    """Create a key; returns its view and the key itself, which is never retrievable again."""
    name = " ".join((name or "").split())
    if not name:
        raise UserError("Give the API key a name, e.g. the host or script that will use it.")
    if len(name) > 80:
        raise UserError("An API key name may have at most 80 characters.")
    import secrets  # a new key only: not at every --run's start

    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[: len(KEY_PREFIX) + _PREFIX_CHARS]
    with database.atomic():
        if ApiKey.select().where(ApiKey.name == name, ApiKey.revoked.is_null()).exists():
            raise UserError(
                f"An active API key named '{name}' exists; choose another name or revoke it."
            )
        row = ApiKey.create(name=name, prefix=prefix, key_hash=_hash(secret))
    return _view(row), secret


def list_keys(include_revoked: bool = True) -> list[ApiKeyView]:
    query = ApiKey.select().order_by(ApiKey.created, ApiKey.id)
    if not include_revoked:
        query = query.where(ApiKey.revoked.is_null())
    return [_view(row) for row in query]


def revoke_key(ref: str) -> ApiKeyView:
    """Revoke the active key with this name or prefix; it is refused from then on."""
    ref = (ref or "").strip()
    with database.atomic():
        rows = list(
            ApiKey.select().where(
                (ApiKey.name == ref) | (ApiKey.prefix == ref), ApiKey.revoked.is_null()
            )
        )
        if not rows:
            raise NotFound(f"There is no active API key '{ref}' (see 'tuiexport apikey list').")
        if len(rows) > 1:
            raise UserError(
                f"Several API keys match '{ref}'; use the prefix shown by 'tuiexport apikey list'."
            )
        row = rows[0]
        row.revoked = utcnow()
        row.save()
    return _view(row)


def verify_key(secret: str | None) -> ApiKeyView | None:
    """The active key this secret belongs to, or None. The hash comparison is constant-time."""
    if not secret or not secret.startswith(KEY_PREFIX) or len(secret) > 200:
        return None
    prefix = secret[: len(KEY_PREFIX) + _PREFIX_CHARS]
    digest = _hash(secret)
    match = None
    for row in ApiKey.select().where(ApiKey.prefix == prefix):
        if hmac.compare_digest(row.key_hash, digest) and match is None:
            match = row
    if match is None or match.revoked is not None:
        return None
    now = utcnow()
    if match.last_used is None or now - match.last_used >= LAST_USED_EVERY:
        ApiKey.update(last_used=now).where(ApiKey.id == match.id).execute()
        match.last_used = now
    return _view(match)
