"""What a sync run did (or, dry, would do): counts per spoke and the planned mutations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SpokeReport:
    account_id: str
    provider: str
    pulled: int = 0
    hub_created: int = 0
    hub_updated: int = 0
    echoes: int = 0
    conflicts: int = 0  # fields where the hub kept its value against this spoke's
    archived: int = 0
    restored: int = 0
    unlinked: int = 0
    merge_suggestions: int = 0
    excluded: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    failed: int = 0
    full_scan: bool = False
    breaker_tripped: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return self.created + self.updated + self.deleted


@dataclass
class PlannedMutation:
    account_id: str
    kind: str  # create | update | delete | hub_create | hub_update | archive | restore | merge
    contact_id: str | None
    remote_id: str | None = None
    fields: list[str] = field(default_factory=list)
    reason: str = ""


@dataclass
class RunReport:
    run_id: str
    dry_run: bool = False
    spokes: dict[str, SpokeReport] = field(default_factory=dict)
    planned: list[PlannedMutation] = field(default_factory=list)

    def spoke(self, account_id: str, provider: str) -> SpokeReport:
        if account_id not in self.spokes:
            self.spokes[account_id] = SpokeReport(account_id, provider)
        return self.spokes[account_id]

    @property
    def remote_writes(self) -> int:
        return sum(s.writes for s in self.spokes.values())

    @property
    def hub_writes(self) -> int:
        return sum(s.hub_created + s.hub_updated for s in self.spokes.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "spokes": {k: asdict(v) for k, v in self.spokes.items()},
            "planned": [asdict(p) for p in self.planned],
            "remote_writes": self.remote_writes,
            "hub_writes": self.hub_writes,
        }
