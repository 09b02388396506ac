"""The domain model: what the hub knows, validated at the edges (pydantic v2).

Nothing here does I/O. Every entity carries its organisation (tenancy is part of every key) and
a version for optimistic concurrency.
"""

from contactsync.domain.accounts import (
    AccountStatus,
    ConnectedAccount,
    Provider,
)
from contactsync.domain.activity import Activity, ActivityKind, ConnectionStrength, Contribution
from contactsync.domain.base import Entity, Version
from contactsync.domain.changelog import ChangeLogEntry, FieldChange
from contactsync.domain.company import Account
from contactsync.domain.contact import (
    ContactField,
    EmailAddress,
    FieldProvenance,
    HubContact,
    PhoneNumber,
    PostalAddress,
    Visibility,
)
from contactsync.domain.cursor import Cursor, Lease
from contactsync.domain.errors import (
    ContactsyncError,
    InvalidInput,
    LeaseHeld,
    LeaseLost,
    NotFound,
    VersionConflict,
)
from contactsync.domain.link import Link
from contactsync.domain.merge import MergeSuggestion, SuggestionStatus
from contactsync.domain.org import Organisation, Role, SharingSettings, User
from contactsync.domain.sharing import AccessRequest, AccessStatus, SharingFlag, SharingTarget
from contactsync.domain.sync import (
    AutoRemoval,
    ConflictPolicy,
    ConflictRule,
    DefaultObject,
    Direction,
    FieldDirection,
    FieldRule,
    ObjectChoice,
    RecordError,
    Schedule,
    Scope,
    ScopeKind,
    SyncCounts,
    SyncSettings,
    SyncState,
    SyncStatus,
)

__all__ = [
    "AccessRequest",
    "AccessStatus",
    "Account",
    "AccountStatus",
    "Activity",
    "ActivityKind",
    "AutoRemoval",
    "ChangeLogEntry",
    "ConflictPolicy",
    "ConflictRule",
    "ConnectedAccount",
    "ConnectionStrength",
    "ContactField",
    "ContactsyncError",
    "Contribution",
    "Cursor",
    "DefaultObject",
    "Direction",
    "EmailAddress",
    "Entity",
    "FieldChange",
    "FieldDirection",
    "FieldProvenance",
    "FieldRule",
    "HubContact",
    "InvalidInput",
    "Lease",
    "LeaseHeld",
    "LeaseLost",
    "Link",
    "MergeSuggestion",
    "NotFound",
    "ObjectChoice",
    "Organisation",
    "PhoneNumber",
    "PostalAddress",
    "Provider",
    "RecordError",
    "Role",
    "Schedule",
    "Scope",
    "ScopeKind",
    "SharingFlag",
    "SharingSettings",
    "SharingTarget",
    "SuggestionStatus",
    "SyncCounts",
    "SyncSettings",
    "SyncState",
    "SyncStatus",
    "User",
    "Version",
    "VersionConflict",
    "Visibility",
]
