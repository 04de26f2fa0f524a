"""Customers: who a call is billed to, by a match on its user, project or tag, and at which markup.

The id is the order customers were added in: a call matching two customers belongs to the
one with the lower id (the first added wins).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.storage.tables import Base, BigId


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    match_kind: Mapped[str] = mapped_column(String(10))  # user | project | tag
    match_value: Mapped[str] = mapped_column(String(200))
    markup: Mapped[str] = mapped_column(String(40))  # an exact percent as text ("20", "-12.5"), see parse_markup
    created_at: Mapped[datetime]
