"""The shop's own tables (SQLModel) in the example's own SQLite file.

Not a function: firehook skips names that start with ``_``; functions import it as
``import _shop`` (the functions folder is on their ``sys.path``).  The database is
``shop.db`` beside ``firehook.yaml``, or ``SHOP_DATABASE_URL``.
"""

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Column, Engine, UniqueConstraint
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel, create_engine

HERE = Path(__file__).resolve().parent.parent  # examples/shop
_engines: dict[str, Engine] = {}


def utcnow() -> datetime:
    return datetime.now(UTC)


class ShopModel(SQLModel, registry=registry()):
    """The shop's tables live in their own metadata, apart from firehook's."""


class Order(ShopModel, table=True):
    __tablename__ = "orders"

    id: int | None = Field(default=None, primary_key=True)
    customer: str
    amount_cents: int = 0
    status: str = Field(default="unpaid", index=True)  # unpaid, paid, cancelled
    created_at: datetime = Field(default_factory=utcnow)
    paid_at: datetime | None = None
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None


class LotteryEntry(ShopModel, table=True):
    __tablename__ = "lottery_entries"

    id: int | None = Field(default=None, primary_key=True)
    user: str
    entered_at: datetime = Field(default_factory=utcnow)
    draw_id: int | None = Field(default=None, foreign_key="lottery_draws.id", index=True)


class LotteryDraw(ShopModel, table=True):
    """One draw, with everything needed to check it: the seed and the entries in order."""

    __tablename__ = "lottery_draws"
    __table_args__ = (UniqueConstraint("schedule", "scheduled_time"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule: str
    scheduled_time: str  # ISO 8601 with the schedule's offset, as the timer event gave it
    prize: str | None = None
    seed: str  # sha256 hex of "<schedule>|<scheduled_time>"
    entry_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    winners: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    drawn_at: datetime = Field(default_factory=utcnow)
    job_id: str | None = None


def database_url() -> str:
    return os.environ.get("SHOP_DATABASE_URL") or f"sqlite:///{HERE / 'shop.db'}"


def engine() -> Engine:
    url = database_url()
    eng = _engines.get(url)
    if eng is None:
        eng = _engines[url] = create_engine(url)
        ShopModel.metadata.create_all(eng)
    return eng


def draw_seed(schedule: str, scheduled_time: str) -> str:
    return hashlib.sha256(f"{schedule}|{scheduled_time}".encode()).hexdigest()


def pick(seed: str, entry_ids: list[int], count: int) -> list[int]:
    """``count`` distinct entries, uniformly: a Fisher-Yates shuffle driven by SHA-256.

    Fully specified (no dependence on Python's ``random``), so anyone can recompute a
    draw from its recorded seed and entry list.
    """
    pool = list(entry_ids)
    chosen: list[int] = []
    for i in range(min(count, len(pool))):
        digest = hashlib.sha256(f"{seed}:{i}".encode()).digest()
        j = i + int.from_bytes(digest, "big") % (len(pool) - i)  # bias < 2^-200
        pool[i], pool[j] = pool[j], pool[i]
        chosen.append(pool[i])
    return chosen
