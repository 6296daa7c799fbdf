"""DM API bridges' credentials: which channels each may use, and the secret's digest.

Rows are kept after revocation (``revoked_at``), so ``make bridge ACTION=list``
shows what existed; a revoked bridge never authenticates again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import List, Optional, Sequence

import sqlalchemy as sa

from bot.gateway.store.base import StoreBase
from bot.gateway.store.schema import bridge_credentials


class BridgeExistsError(ValueError):
    """A bridge of that name is active; revoke it before issuing a new secret."""


@dataclass(frozen=True)
class Bridge:
    name: str
    channels: frozenset
    secret_sha256: str
    signs: bool
    created_at: float
    revoked_at: Optional[float]

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _bridge(row: sa.RowMapping) -> Bridge:
    return Bridge(name=row["name"], channels=frozenset(row["channels"].split(",")),
                  secret_sha256=row["secret_sha256"], signs=bool(row["signs"]),
                  created_at=row["created_at"], revoked_at=row["revoked_at"])


class BridgeStore(StoreBase):
    def add_bridge(self, name: str, channels: Sequence[str], secret_sha256: str,
                   signs: bool = False) -> None:
        """Record a new bridge; a revoked one of the same name is replaced."""
        with self._write() as db:
            old = db.execute(sa.select(bridge_credentials.c.revoked_at).where(
                bridge_credentials.c.name == name)).first()
            if old is not None and old.revoked_at is None:
                raise BridgeExistsError(f"bridge {name!r} exists; revoke it first")
            db.execute(bridge_credentials.delete().where(bridge_credentials.c.name == name))
            db.execute(bridge_credentials.insert().values(
                name=name, channels=",".join(sorted(set(channels))),
                secret_sha256=secret_sha256, signs=signs, created_at=time.time()))

    def active_bridge(self, *, name: Optional[str] = None,
                      secret_sha256: Optional[str] = None) -> Optional[Bridge]:
        """The unrevoked bridge with this name or this secret digest, if any."""
        column, value = ((bridge_credentials.c.name, name) if name is not None
                         else (bridge_credentials.c.secret_sha256, secret_sha256))
        with self._read() as db:
            row = db.execute(sa.select(bridge_credentials).where(
                column == value, bridge_credentials.c.revoked_at.is_(None))).mappings().first()
        return _bridge(row) if row else None

    def bridges(self) -> List[Bridge]:
        with self._read() as db:
            rows = db.execute(sa.select(bridge_credentials)
                              .order_by(bridge_credentials.c.name)).mappings().all()
        return [_bridge(r) for r in rows]

    def revoke_bridge(self, name: str) -> bool:
        """Revoke at once; False when there is no active bridge of that name."""
        with self._write() as db:
            return bool(db.execute(bridge_credentials.update().where(
                bridge_credentials.c.name == name, bridge_credentials.c.revoked_at.is_(None),
            ).values(revoked_at=time.time())).rowcount)
