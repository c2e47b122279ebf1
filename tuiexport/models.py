"""Peewee models: the product catalog and the export management state.

Timestamps are stored in UTC (naive ``datetime``); SQLite keeps them as ``YYYY-MM-DD HH:MM:SS``
text, which is what the exporters format in SQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
import peewee as pw

from tuiexport.db import database


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def tuples(query: pw.BaseQuery) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` as plain tuples: ``iter(query.tuples())``, typed. (The stubs peewee
    ships type ``.tuples()`` as the query itself, so iterating it would yield model instances.)"""
    return iter(query.tuples())


_json = msgspec.json.Encoder(order="sorted")


class JSONField(pw.TextField):
    """A JSON column of ``type``: Python values in and out, encoded and decoded by msgspec in this
    one place (objects with their keys sorted, text as UTF-8, not escaped). An empty column reads
    as ``default()``."""

    def __init__(self, type: Any, default: Callable[[], Any], **kwargs: Any) -> None:
        self.type = type
        self._decoder = msgspec.json.Decoder(type)
        self._empty = default
        super().__init__(default=default, **kwargs)

    def db_value(self, value: Any) -> str | None:
        return None if value is None else _json.encode(value).decode()

    def python_value(self, value: Any) -> Any:
        if value is None or value == "":
            return self._empty()
        return self._decoder.decode(value)


class BaseModel(pw.Model):
    class Meta:
        database = database
        legacy_table_names = False


# --- catalog -------------------------------------------------------------------------------


class Manufacturer(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    short_name = pw.CharField(default="")


class ProductType(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    group_code = pw.CharField(max_length=3)


class Supplier(BaseModel):
    id = pw.IntegerField(primary_key=True)
    name = pw.CharField()
    partner = pw.BooleanField(default=False, index=True)


CONDITIONS = ("new", "used", "refurbished")
STOCK_STATUSES = ("in_stock", "low_stock", "out_of_stock", "on_order", "unknown")
LANGUAGES = ("de", "en", "fr", "it", "nl", "es")


class Product(BaseModel):
    puid = pw.BigIntegerField(primary_key=True)
    ean = pw.CharField(null=True, index=True)
    manufacturer_sku = pw.CharField(null=True, index=True)
    manufacturer = pw.ForeignKeyField(Manufacturer, null=True, index=True, on_delete="SET NULL")
    product_type = pw.ForeignKeyField(ProductType, null=True, index=True, on_delete="SET NULL")
    #: 0–3; >= 1 means the product has a catalogue id.
    qualification = pw.SmallIntegerField(default=0)
    condition = pw.CharField(default="new")
    image_url = pw.CharField(null=True)
    image_exportable = pw.BooleanField(default=False)
    weight = pw.FloatField(null=True)
    eclass = pw.CharField(null=True)
    created = pw.DateTimeField(default=utcnow)
    updated = pw.DateTimeField(default=utcnow, index=True)
    # Offer summary, derived from supplier_item by schema.refresh_offer_summary(): bit s is set
    # when supplier s (ids 0..62) has an offer / an offer in stock / an offer with a price. It lets
    # selections count a million products by scanning one narrow index instead of probing offers.
    offer_mask = pw.BigIntegerField(default=0)
    stock_mask = pw.BigIntegerField(default=0)
    price_mask = pw.BigIntegerField(default=0)
    # The lowest and highest net price (> 0) of the product's offers, NULL when none has one
    # (derived and kept like the masks). With the masks they decide a price range for nearly
    # every product without looking at its offers (see selection._offer_rule).
    price_low = pw.FloatField(null=True)
    price_high = pw.FloatField(null=True)


class ProductText(BaseModel):
    product = pw.ForeignKeyField(Product, on_delete="CASCADE", backref="texts")
    lang = pw.CharField(max_length=2)
    name = pw.TextField(default="")
    short_description = pw.TextField(default="")
    long_description = pw.TextField(default="")

    class Meta:
        primary_key = pw.CompositeKey("product", "lang")


class SupplierItem(BaseModel):
    id = pw.AutoField()
    product = pw.ForeignKeyField(Product, on_delete="CASCADE", backref="offers")
    supplier = pw.ForeignKeyField(Supplier, on_delete="CASCADE")
    supplier_sku = pw.CharField(default="")
    #: Net price; NULL when the supplier gives none.
    price = pw.FloatField(null=True)
    currency = pw.CharField(max_length=3, default="EUR")
    stock = pw.IntegerField(null=True)
    stock_status = pw.CharField(default="unknown")
    condition = pw.CharField(default="new")
    updated = pw.DateTimeField(default=utcnow)

    class Meta:
        indexes = ((("product", "supplier"), True),)


CATALOG_MODELS = [Manufacturer, ProductType, Supplier, Product, ProductText, SupplierItem]


# --- management ----------------------------------------------------------------------------


class Meta(BaseModel):
    key = pw.CharField(primary_key=True)
    value = pw.TextField()


class Selection(BaseModel):
    id = pw.AutoField()
    name = pw.CharField()
    #: False while the name is generated from the rules; True once the user named it.
    name_custom = pw.BooleanField(default=False)
    #: Criteria as JSON (tuiexport.selection.Criteria).
    criteria = pw.TextField(default="{}")
    created = pw.DateTimeField(default=utcnow)
    updated = pw.DateTimeField(default=utcnow)


class ExportDefinition(BaseModel):
    id = pw.AutoField()
    export_id = pw.CharField(unique=True)
    name = pw.CharField()
    selection = pw.ForeignKeyField(Selection, null=True, on_delete="SET NULL", backref="exports")
    if TYPE_CHECKING:  # peewee adds the id accessor of the foreign key
        selection_id: int | None
    profile = pw.CharField(default="standard")
    output = pw.CharField(default="csv")
    language = pw.CharField(max_length=2, default="de")
    long_descriptions = pw.BooleanField(default=True)
    product_limit = pw.IntegerField(null=True)
    #: The user's export options (exporters.base.ExportOptions, defaults left out), e.g.
    #: {"csv_variant": "excel"}.
    options = JSONField(dict[str, Any], default=dict)
    producer = pw.CharField(default="")
    created = pw.DateTimeField(default=utcnow)
    updated = pw.DateTimeField(default=utcnow)


class ShareLink(BaseModel):
    """One consumer's share URL of an export ("Shop A", "Marketplace B"): its own token, renamed,
    rotated and revoked on its own (written only by tuiexport.management.links). A revoked link
    stays, so that the history rows that name it keep their meaning."""

    id = pw.AutoField()
    export = pw.ForeignKeyField(
        ExportDefinition,
        field=ExportDefinition.export_id,
        column_name="export_id",
        on_delete="CASCADE",
        backref="links",
    )
    if TYPE_CHECKING:  # peewee adds the id accessor of the foreign key
        export_id: str
    name = pw.CharField()
    #: Kept as the export's single token was: plain, compared in constant time by the server.
    token = pw.CharField()
    created = pw.DateTimeField(default=utcnow)
    rotated = pw.DateTimeField(null=True)
    revoked = pw.DateTimeField(null=True)
    #: The last request through the link (at most a minute old: the share server writes it once
    #: a minute per link), also one that got no file: a 304 or a HEAD shows its consumer alive.
    last_seen = pw.DateTimeField(null=True)


class Run(BaseModel):
    id = pw.AutoField()
    log_id = pw.CharField(unique=True)
    export_id = pw.CharField(index=True)
    export_name = pw.CharField()
    trigger = pw.CharField()  # tui / cli / api
    #: running, success, warning, failed, cancelled, interrupted, held, discarded
    status = pw.CharField(index=True)
    started = pw.DateTimeField(default=utcnow, index=True)
    finished = pw.DateTimeField(null=True)
    heartbeat = pw.DateTimeField(default=utcnow)
    api_version = pw.CharField(default="")
    profile = pw.CharField()
    output = pw.CharField()
    file_format = pw.CharField()
    product_count = pw.IntegerField(default=0)
    omitted_count = pw.IntegerField(default=0)
    size = pw.BigIntegerField(null=True)
    sha256 = pw.CharField(null=True)
    artifact_path = pw.TextField(null=True)
    #: True while artifact_path still exists (retention removes old artifacts, the row stays).
    artifact_kept = pw.BooleanField(default=False)
    #: What the run said, in order.
    messages = JSONField(list[str], default=list)
    #: Products per supplier in this run.
    supplier_shares = JSONField(dict[str, int], default=dict)
    fingerprint = pw.CharField(default="", index=True)
    #: The status a run reaches once its file is in place: written (with size, SHA-256, counts
    #: and messages) just before the final rename, so that the next start can tell a run killed
    #: after its file was complete from one killed while writing. Empty until then.
    outcome = pw.CharField(default="")
    host = pw.CharField(default="")
    pid = pw.IntegerField(default=0)
    #: Who runs it: ``<boot id>/<PID namespace>/<process start time>`` (liveness.process_identity);
    #: with the pid it tells a live process from a dead one that had the same pid.
    owner = pw.CharField(default="")
    #: A delta (issue 12): the log ID the consumer sent as ``since`` and the full run whose
    #: state the delta brings them to; both empty for any other run.
    delta_since = pw.CharField(default="")
    delta_base = pw.CharField(default="")
    added_count = pw.IntegerField(default=0)
    changed_count = pw.IntegerField(default=0)
    removed_count = pw.IntegerField(default=0)
    #: The share link whose request this row is (a served download, or a run a share request
    #: started), by ID and by its name at that moment; None / "" for everything else. Indexed
    #: with ``started`` (schema.EXTRA_INDEXES: a model index would precede the column).
    link_id = pw.IntegerField(null=True)
    link_name = pw.CharField(default="")
    #: A served download: the run whose file it sent ("" for a run: it sent its own).
    source_log_id = pw.CharField(default="")
    #: A served download that was a byte range ending before the file's last byte: a piece of a
    #: download (resumed, or fetched in ranges), recorded but not counted as a fetch; the range
    #: that delivers the last byte counts, so a download counts once however it was fetched.
    partial = pw.BooleanField(default=False)


class ApiKey(BaseModel):
    id = pw.AutoField()
    name = pw.CharField()
    prefix = pw.CharField(index=True)
    key_hash = pw.CharField(unique=True)
    created = pw.DateTimeField(default=utcnow)
    last_used = pw.DateTimeField(null=True)
    revoked = pw.DateTimeField(null=True)


# --- notifications (written only by tuiexport.management.notify) ---------------------------


class Notification(BaseModel):
    """One event to deliver on one channel (a webhook POST, an email) for a run that ended with
    a status the settings name (``notify_on``). It stays ``pending`` until it is delivered or
    its attempts are used up (``failed``), so that the next process resends what one left."""

    id = pw.AutoField()
    log_id = pw.CharField(index=True)
    channel = pw.CharField()  # webhook / email
    #: Where it goes, without credentials or query string (shown in the run's details).
    target = pw.TextField()
    #: The event as JSON, exactly as it is sent (its bytes are signed at each attempt).
    payload = pw.TextField()
    state = pw.CharField(default="pending", index=True)  # pending, delivered, failed
    attempts = pw.IntegerField(default=0)
    created = pw.DateTimeField(default=utcnow)
    next_attempt = pw.DateTimeField(default=utcnow)
    #: A process that is attempting it (liveness.owner()) and until when that claim holds.
    claimed_by = pw.CharField(default="")
    claimed_until = pw.DateTimeField(null=True)


class NotificationAttempt(BaseModel):
    """One delivery attempt and its outcome: HTTP status or the error."""

    id = pw.AutoField()
    notification = pw.ForeignKeyField(Notification, on_delete="CASCADE", backref="tries")
    if TYPE_CHECKING:  # peewee adds the id accessor of the foreign key
        notification_id: int
    log_id = pw.CharField(index=True)
    attempt = pw.IntegerField()
    at = pw.DateTimeField(default=utcnow)
    ok = pw.BooleanField(default=False)
    #: The receiver's HTTP status (webhooks); None when none came back.
    http_status = pw.IntegerField(null=True)
    #: Why it failed, one line (empty when it was delivered).
    error = pw.TextField(default="")


NOTIFICATION_MODELS = [Notification, NotificationAttempt]

MANAGEMENT_MODELS = [
    Meta,
    Selection,
    ExportDefinition,
    ShareLink,
    Run,
    ApiKey,
    *NOTIFICATION_MODELS,
]
ALL_MODELS = CATALOG_MODELS + MANAGEMENT_MODELS
