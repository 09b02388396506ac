"""What a remote delete means for the hub (seed 003's auto-removal), and the mass-delete
circuit breaker."""

from __future__ import annotations

from enum import StrEnum

from contactsync.domain.link import Link
from contactsync.engine.merge import SpokeView

# A breaker that trips on 2 of 3 contacts would stop every small team's legitimate cleanup.
MASS_DELETE_MINIMUM = 10


class DeleteAction(StrEnum):
    ARCHIVE = "archive"  # auto-removal allows it: archive in the hub; other spokes follow theirs
    RESTORE = "restore"  # not allowed: drop the link; the next push re-creates the record
    UNLINK = "unlink"  # a personal address-book record: the hub keeps the contact (seed 000)


def on_remote_delete(link: Link, spoke: SpokeView) -> DeleteAction:
    if spoke.auto_removal.from_provider:
        return DeleteAction.ARCHIVE
    if link.marked or spoke.shared_system:
        return DeleteAction.RESTORE
    return DeleteAction.UNLINK


def mass_delete(vanished: int, linked: int, threshold: float) -> bool:
    """True when so many linked records vanished in one run that propagating would be
    reckless: the spoke pauses with an error for a human to look."""
    return vanished >= MASS_DELETE_MINIMUM and vanished > threshold * max(linked, 1)
