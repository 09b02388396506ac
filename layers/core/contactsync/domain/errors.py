"""Typed errors. The API maps each to one HTTP status in one place; nothing recognises an error
by matching its message."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class ContactsyncError(Exception):
    """Base of every error this library raises on purpose."""


class InvalidInput(ContactsyncError, ValueError):
    """Input that breaks the model's rules. ``problems`` names each field and what is wrong,
    never echoing the value itself (it may be contact data)."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        self.problems = problems
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        super().__init__(f"invalid input: {summary}")

    @classmethod
    def from_validation_error(cls, exc: ValidationError, prefix: str = "") -> InvalidInput:
        problems = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = ".".join(str(part) for part in error["loc"]) or "(body)"
            problems.append({"field": f"{prefix}{loc}", "problem": error["msg"]})
        return cls(problems)

    @classmethod
    def one(cls, field: str, problem: str) -> InvalidInput:
        return cls([{"field": field, "problem": problem}])


class NotFound(ContactsyncError, LookupError):
    def __init__(self, kind: str, entity_id: str) -> None:
        self.kind = kind
        self.entity_id = entity_id
        super().__init__(f"{kind} {entity_id!r} not found")


class VersionConflict(ContactsyncError):
    """An optimistic-concurrency check failed: someone else wrote first; re-read and retry."""

    def __init__(self, kind: str, entity_id: str, expected: int, actual: int | None) -> None:
        self.kind = kind
        self.entity_id = entity_id
        self.expected = expected
        self.actual = actual
        where = "absent" if actual is None else f"at version {actual}"
        super().__init__(f"{kind} {entity_id!r}: expected version {expected}, found {where}")


class LeaseHeld(ContactsyncError):
    """Another worker holds the lease (one writer per cursor)."""

    def __init__(self, name: str, holder: str, expires_at: Any) -> None:
        self.name = name
        self.holder = holder
        self.expires_at = expires_at
        super().__init__(f"lease {name!r} is held until {expires_at}")


class LeaseLost(ContactsyncError):
    """This worker's lease expired and was taken over: its writes must stop (fencing)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"lease {name!r} is no longer held by this worker")
