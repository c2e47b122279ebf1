"""A deterministic, realistic demo catalog, fast enough for a million products.

The same seed gives the same catalog, row for row: every value comes from one
``random.Random(seed)`` and a base date derived from the seed, never from the wall clock.

Demo generation never replaces anything. Manufacturers, product types and suppliers are matched
by name (an existing row is reused, a missing one is added after the highest id); products get
puids above the highest puid already in the catalog. Running it twice therefore doubles the
catalog, and a demo catalog can sit beside an imported one.

Speed comes from generating plain tuples from precomputed pools in one thread while the main
thread writes the previous batch with ``executemany`` (SQLite releases the GIL while it works),
one transaction per batch so other processes get the database in between. The products' offer
masks are computed once at the end (``schema.bulk_offer_load``), not by a trigger per offer, and
a big demo into a small catalog builds the secondary indexes once at the end instead of inserting
into them row by row (queries from other processes are slow meanwhile).
"""

from __future__ import annotations

import math
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import msgspec
import peewee as pw

from tuiexport import db as dbmod
from tuiexport import schema
from tuiexport.catalog import demo_data as data
from tuiexport.catalog.writer import (
    OFFER_COLUMNS,
    PRODUCT_COLUMNS,
    TEXT_COLUMNS,
    analyze,
    bulk_load,
    insert_sql,
    search_text,
)
from tuiexport.models import (
    Manufacturer,
    Product,
    ProductText,
    ProductType,
    Supplier,
    SupplierItem,
    tuples,
)

#: The first demo puid in an empty catalog: beyond 32 bits on purpose, as real puids are.
FIRST_PUID = 5_000_000_000
#: Products per batch (one transaction, one progress step).
BATCH = 10_000


class DemoStats(msgspec.Struct, kw_only=True):
    products: int
    texts: int
    supplier_items: int
    first_puid: int
    last_puid: int
    seed: int
    base_date: datetime
    seconds: float


def base_date(seed: int) -> datetime:
    """The demo catalog's "now": a fixed day derived from the seed (not the wall clock)."""
    return datetime(2025, 1, 1) + timedelta(days=seed % 365)


# --- reference rows ------------------------------------------------------------------------


def _ensure_by_name(
    model: type[Manufacturer] | type[ProductType] | type[Supplier],
    key_field: pw.Field,
    rows: list[tuple[Any, ...]],
) -> tuple[list[int], list[tuple[Any, ...]]]:
    """Ids for ``rows`` (first value is the match key); insert the missing ones after max(id)."""
    existing = {key: id_ for id_, key in tuples(model.select(model.id, key_field))}
    next_id = (model.select(model.id).order_by(model.id.desc()).limit(1).scalar() or 0) + 1
    ids, new = [], []
    for row in rows:
        if row[0] in existing:
            ids.append(existing[row[0]])
        else:
            ids.append(next_id)
            new.append((next_id, *row))
            next_id += 1
    return ids, new


def _reference_rows() -> tuple[list[int], list[int], list[int]]:
    mfr_ids, new_m = _ensure_by_name(
        Manufacturer, Manufacturer.name, [(m.name, m.short_name) for m in data.MANUFACTURERS]
    )
    type_ids, new_t = _ensure_by_name(
        ProductType, ProductType.name, [(t.name, t.code) for t in data.PRODUCT_TYPES]
    )
    sup_ids, new_s = _ensure_by_name(
        Supplier, Supplier.name, [(s.name, s.partner) for s in data.SUPPLIERS]
    )
    with dbmod.database.atomic():
        if new_m:
            Manufacturer.insert_many(
                new_m, fields=[Manufacturer.id, Manufacturer.name, Manufacturer.short_name]
            ).execute()
        if new_t:
            ProductType.insert_many(
                new_t, fields=[ProductType.id, ProductType.name, ProductType.group_code]
            ).execute()
        if new_s:
            Supplier.insert_many(
                new_s, fields=[Supplier.id, Supplier.name, Supplier.partner]
            ).execute()
    return mfr_ids, type_ids, sup_ids


# --- generation ----------------------------------------------------------------------------

_SKU_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
_MODEL_LETTERS = "ABCEGKLMPSTVXZ"
_MODEL_SUFFIX = ["", "", "", " Gen 2", " Gen 3", " Pro", " Plus", " G4", " Max"]
_SKU_PATTERNS = [
    "##@@####@@",
    "@@###@@#",
    "###-####",
    "@###@@@#@",
    "#####-###",
    "@@-####-@@",
    "@#@##@@/##",
]
_OFFER_COUNT_CUM = [30, 55, 75, 87, 95, 100]  # 1..6 offers
# Coprime to the 12 demo suppliers: a start and a step pick distinct suppliers.
_STEPS = (1, 5, 7, 11)


class _Pools:
    """Everything that can be computed once per run instead of once per product."""

    def __init__(
        self,
        rng: random.Random,
        base: datetime,
        mfr_ids: list[int],
        type_ids: list[int],
        sup_ids: list[int],
    ):
        self.types = []
        type_index = {}
        for i, t in enumerate(data.PRODUCT_TYPES):
            type_index[t.code] = i
            self.types.append(
                (
                    type_ids[i],
                    t.noun_de,
                    t.noun_en,
                    t.eclass,
                    math.log(t.price[0]),
                    math.log(t.price[1]) - math.log(t.price[0]),
                    t.weight[0],
                    t.weight[1] - t.weight[0],
                    t.specs,
                )
            )
        self.mfrs = []
        for i, m in enumerate(data.MANUFACTURERS):
            prefix = m.gs1_prefix
            prefix_sum = sum(int(d) * (3 if k % 2 else 1) for k, d in enumerate(prefix))
            # (type index, series names): a type the brand has no series for gets a bare model.
            kinds = [(type_index[code], names or [""]) for code, names in m.series.items()]
            self.mfrs.append(
                (
                    mfr_ids[i],
                    m.brand or m.name,
                    m.short_name.lower(),
                    prefix,
                    prefix_sum,
                    kinds,
                    rng.choice(_SKU_PATTERNS),
                )
            )
        self.mfr_cum = []
        acc = 0
        for m in data.MANUFACTURERS:
            acc += m.weight
            self.mfr_cum.append(acc)
        self.sups = [(sup_ids[i], s.sku_prefix + "-") for i, s in enumerate(data.SUPPLIERS)]
        # Weighted digit sums of item references: positions 7-9 weigh 1,3,1 and 10-12 weigh 3,1,3.
        self.sum_a = [(n // 100) + 3 * (n // 10 % 10) + (n % 10) for n in range(1000)]
        self.sum_b = [3 * (n // 100) + (n // 10 % 10) + 3 * (n % 10) for n in range(1000)]
        self.days = [(base - timedelta(days=d)).strftime("%Y-%m-%d") for d in range(1200)]
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]


def _sku(rng: random.Random, pattern: str) -> str:
    r = rng.random
    return "".join(
        str(int(r() * 10)) if ch == "#" else _SKU_CHARS[int(r() * 24)] if ch == "@" else ch
        for ch in pattern
    )


#: One batch of rows: products, texts, offers, search texts.
_Batch = tuple[list[Any], list[Any], list[Any], list[Any]]


def _batches(
    rng: random.Random, pools: _Pools, count: int, first_puid: int, ean_offset: int
) -> Iterator[_Batch]:
    r = rng.random
    choices = rng.choices
    mfrs, types, sups, days, clock = pools.mfrs, pools.types, pools.sups, pools.days, pools.clock
    sum_a, sum_b = pools.sum_a, pools.sum_b
    nsup = len(sups)
    statuses = ("in_stock", "low_stock", "out_of_stock", "on_order", "unknown")
    puid = first_puid
    done = 0
    while done < count:
        n = min(BATCH, count - done)
        products, texts, offers, search = [], [], [], []
        picks = choices(mfrs, cum_weights=pools.mfr_cum, k=n)
        for i in range(n):
            index = done + i
            m_id, m_name, m_short, prefix, prefix_sum, kinds, sku_pattern = picks[i]
            t_index, m_series = kinds[int(r() * len(kinds))]
            t_id, noun_de, noun_en, eclass, lp0, lpw, w0, ww, specs = types[t_index]
            series = m_series[int(r() * len(m_series))]
            model = (
                f"{_MODEL_LETTERS[int(r() * 14)]}{int(r() * 990) + 10}{_MODEL_SUFFIX[int(r() * 9)]}"
            )
            if series:
                model = f"{series} {model}"
            else:
                series = model
            chosen = [spec[int(r() * len(spec))] for spec in specs]

            # EAN-13: the manufacturer's company prefix and an item reference that is unique
            # within a run (7919 is coprime to 10**6, so the mapping is a bijection).
            item = (index * 7919 + ean_offset) % 1_000_000
            hi, lo = divmod(item, 1000)
            check = (10 - (prefix_sum + sum_a[hi] + sum_b[lo]) % 10) % 10
            ean = f"{prefix}{item:06d}{check}" if r() >= 0.02 else None
            sku = _sku(rng, sku_pattern)

            qual_r = r()
            qualification = (
                0 if qual_r < 0.10 else 1 if qual_r < 0.40 else 2 if qual_r < 0.75 else 3
            )
            cond_r = r()
            condition = "new" if cond_r < 0.92 else "refurbished" if cond_r < 0.97 else "used"
            img_r = r()
            image_url = (
                f"https://media.demo-catalog.example/{m_short}/{puid}.jpg"
                if img_r >= 0.06
                else None
            )
            exportable = 1 if img_r >= 0.06 + 0.94 * 0.2 else 0
            created_day = int(r() * 1095) + 1
            updated_day = int(r() * created_day)
            created = f"{days[created_day]} {clock[int(r() * 86400)]}"
            updated = f"{days[updated_day]} {clock[int(r() * 86400)]}"
            products.append(
                (
                    puid,
                    ean,
                    sku,
                    m_id,
                    t_id,
                    qualification,
                    condition,
                    image_url,
                    exportable,
                    round(w0 + r() * ww, 3),
                    eclass,
                    created,
                    updated,
                )
            )

            name_de = f"{m_name} {model} {noun_de}, " + ", ".join(c[0] for c in chosen[:2])
            name_en = f"{m_name} {model} {noun_en}, " + ", ".join(c[1] for c in chosen[:2])
            short_de = short_en = long_de = long_en = ""
            if qualification >= 1:
                short_de = ", ".join(c[0] for c in chosen)
                short_en = ", ".join(c[1] for c in chosen)
            if qualification >= 2:
                k = int(r() * 5)
                e = int(r() * 5)
                long_de = (
                    data.LONG_INTRO_DE[k].format(series=series, mfr=m_name)
                    + "\n\n"
                    + "\n".join("• " + c[0] for c in chosen)
                    + "\n\n"
                    + data.LONG_EXTRA_DE[e]
                )
                long_en = (
                    data.LONG_INTRO_EN[k].format(series=series, mfr=m_name)
                    + "\n\n"
                    + "\n".join("• " + c[1] for c in chosen)
                    + "\n\n"
                    + data.LONG_EXTRA_EN[e]
                )
            texts.append((puid, "de", name_de, short_de, long_de))
            has_en = r() < 0.8
            if has_en:
                texts.append((puid, "en", name_en, short_en, long_en))
            search.append(
                (puid, search_text((name_de, name_en) if has_en else (name_de,), sku, ean))
            )

            # Offers: 1-6 distinct suppliers; some products have no price anywhere.
            k_r = r() * 100
            k = 1
            while _OFFER_COUNT_CUM[k - 1] <= k_r:
                k += 1
            start = int(r() * nsup)
            step = _STEPS[int(r() * 4)]
            no_price = r() < 0.03
            base_price = math.exp(lp0 + r() * lpw)
            for j in range(k):
                s_id, s_prefix = sups[(start + j * step) % nsup]
                price = (
                    None if no_price or r() < 0.03 else round(base_price * (0.94 + r() * 0.12), 2)
                )
                st_r = r()
                if st_r < 0.55:
                    status, stock = statuses[0], int(r() * 496) + 5
                elif st_r < 0.67:
                    status, stock = statuses[1], int(r() * 4) + 1
                elif st_r < 0.82:
                    status, stock = statuses[2], 0
                elif st_r < 0.92:
                    status, stock = statuses[3], 0
                else:
                    status, stock = statuses[4], None
                offers.append(
                    (
                        puid,
                        s_id,
                        f"{s_prefix}{int(r() * 90_000_000) + 10_000_000}",
                        price,
                        "EUR",
                        stock,
                        status,
                        condition,
                        f"{days[int(r() * 15)]} {clock[int(r() * 86400)]}",
                    )
                )
            puid += 1 + int(r() * 9)  # increasing, not contiguous
        done += n
        yield products, texts, offers, search


# --- writing -------------------------------------------------------------------------------


def _statements(param: str) -> tuple[str, str, str, str]:
    return (
        insert_sql(Product, PRODUCT_COLUMNS, param),
        insert_sql(ProductText, TEXT_COLUMNS, param),
        insert_sql(SupplierItem, OFFER_COLUMNS, param),
        f"INSERT INTO {schema.FTS_TABLE} (rowid, text) VALUES (?, ?)",
    )


def _produce(
    gen: Iterator[_Batch], out: queue.Queue[_Batch | BaseException | None], stop: threading.Event
) -> None:
    """Generate batches into ``out``, then None (or the exception); give up once ``stop`` is set."""

    def put(item: _Batch | BaseException | None) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in gen:
            if not put(batch):
                return
        put(None)
    except BaseException as exc:  # noqa: BLE001 - handed to the writer, which re-raises it
        put(exc)


def generate_demo(
    products: int, seed: int = 1, progress: Callable[[int, int], None] | None = None
) -> DemoStats:
    """Add ``products`` demo products (with texts, offers, search index); see the module doc.

    ``progress(done, total)`` is called after every batch with product counts.
    """
    started = time.monotonic()
    db = dbmod.database.obj
    sqlite = dbmod.is_sqlite(db)
    rng = random.Random(seed)
    base = base_date(seed)
    mfr_ids, type_ids, sup_ids = _reference_rows()
    pools = _Pools(rng, base, mfr_ids, type_ids, sup_ids)
    current_max = Product.select(Product.puid).order_by(Product.puid.desc()).limit(1).scalar()
    first_puid = FIRST_PUID if current_max is None or current_max < FIRST_PUID else current_max + 1
    # Item references continue where an earlier run on this catalog would have stopped.
    ean_offset = (first_puid * 7919) % 1_000_000

    p_sql, t_sql, o_sql, s_sql = _statements("?" if sqlite else "%s")
    work: queue.Queue[_Batch | BaseException | None] = queue.Queue(maxsize=2)
    stop = threading.Event()
    producer = threading.Thread(
        target=_produce,
        args=(_batches(rng, pools, products, first_puid, ean_offset), work, stop),
        name="demo-generator",
        daemon=True,
    )
    producer.start()
    done = n_texts = n_offers = 0
    last_puid = first_puid
    try:
        # Offer masks are computed in one pass at the end, not by a trigger per offer (see
        # writer.bulk_load), and a big demo builds the secondary indexes once at the end.
        with bulk_load(db, products):
            while True:
                batch = work.get()
                if batch is None:
                    break
                if isinstance(batch, BaseException):
                    raise batch
                p_rows, t_rows, o_rows, s_rows = batch
                if not sqlite:  # PostgreSQL has real booleans
                    p_rows = [(*row[:8], bool(row[8]), *row[9:]) for row in p_rows]
                # Raw cursors raise the driver's errors; the wrapper turns them into peewee's.
                with pw.__exception_wrapper__, db.atomic():  # type: ignore[attr-defined]  # not in peewee's stubs
                    cursor = db.cursor()
                    cursor.executemany(p_sql, p_rows)
                    cursor.executemany(t_sql, t_rows)
                    cursor.executemany(o_sql, o_rows)
                    if sqlite:
                        cursor.executemany(s_sql, s_rows)
                done += len(p_rows)
                n_texts += len(t_rows)
                n_offers += len(o_rows)
                last_puid = p_rows[-1][0]
                if progress is not None:
                    progress(done, products)
    finally:
        stop.set()
        producer.join()
        if done:  # interrupted or not, the batches written so far are catalog changes
            schema.bump_catalog_version()
    analyze(db)
    return DemoStats(
        products=done,
        texts=n_texts,
        supplier_items=n_offers,
        first_puid=first_puid,
        last_puid=last_puid,
        seed=seed,
        base_date=base,
        seconds=round(time.monotonic() - started, 2),
    )
