"""The embedded demo: a small SQLite shop database and a workbook that ingests it.

Everything lives in one scratch folder (default `./demo`): `shop.sqlite`, `ingestion_config.xlsx`,
and the lake under `lake/`. No service or cloud account is needed.
"""

from __future__ import annotations

import datetime as dt
import random
import sqlite3
from pathlib import Path

DEMO_SOURCE = "demo_shop"
DEMO_DB_FILE = "shop.sqlite"
DEMO_WORKBOOK_FILE = "ingestion_config.xlsx"

_FIRST = ["Ana", "Bo", "Chloé", "Dmitri", "Eun-ji", "Femi", "Gábor", "Hiro", "Ines", "José"]
_LAST = ["Silva", "Nguyen", "Müller", "O'Brien", "Kowalski", "Öztürk", "Smith", "Tanaka"]
_PRODUCTS = ["Kettle", "Teapot", "Mug", "Grinder", "Filter", "Scale", "Tin", "Spoon"]


def create_demo_database(path: Path, customers: int = 200, orders: int = 2000, seed: int = 7) -> Path:
    """Create (or recreate) the demo SQLite database.

    Args:
        path: The database file to write.
        customers: Number of customers.
        orders: Number of orders.
        seed: Random seed, so every demo has the same data.

    Returns:
        The database path.
    """
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    base = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT,
                                    country TEXT, created_at TIMESTAMP NOT NULL);
            CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL,
                                   price NUMERIC(10, 2) NOT NULL, notes TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL,
                                 product_id INTEGER NOT NULL, quantity INTEGER NOT NULL,
                                 amount NUMERIC(12, 2) NOT NULL, status TEXT NOT NULL,
                                 updated_at TIMESTAMP NOT NULL);
            """
        )
        conn.executemany(
            "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
            [
                (
                    i,
                    f"{rng.choice(_FIRST)} {rng.choice(_LAST)}",
                    None if i % 9 == 0 else f"customer{i}@example.com",
                    rng.choice(["PT", "DE", "JP", "NG", "US", None]),
                    (base + dt.timedelta(hours=i)).replace(tzinfo=None).isoformat(sep=" "),
                )
                for i in range(1, customers + 1)
            ],
        )
        conn.executemany(
            "INSERT INTO products VALUES (?, ?, ?, ?)",
            [
                (i, name, round(rng.uniform(2, 120), 2), "line one\nline two ☕" if i % 3 == 0 else None)
                for i, name in enumerate(_PRODUCTS, start=1)
            ],
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    rng.randint(1, customers),
                    rng.randint(1, len(_PRODUCTS)),
                    (qty := rng.randint(1, 5)),
                    round(qty * rng.uniform(2, 120), 2),
                    rng.choice(["new", "paid", "shipped"]),
                    (base + dt.timedelta(minutes=7 * i)).replace(tzinfo=None).isoformat(sep=" "),
                )
                for i in range(1, orders + 1)
            ],
        )
    return path
