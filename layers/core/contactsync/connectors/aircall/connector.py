"""The Aircall connector: one company's contacts as the engine's ``contact`` stream.

Reads: full scans by creation-date keyset (under the 10,000-record cap) and incremental reads
by ``updated_at`` (see ``paging.py``); Aircall keeps no tombstones, so a full scan runs again
whenever the last complete one is older than ``reconcile_hours``, or sooner when a count
shows contacts gone, and the engine finds deletes by absence; ``contact.deleted`` webhooks
report them as records too (``parse_webhook``).

Writes: one request per operation (Aircall has no batch endpoints), paced under the company's
shared rate limit. Aircall accepts duplicates, so a create first searches by phone number and
links an existing contact of the same name instead of making a twin (its values then merge
into the hub under the conflict policy, like any pulled change); a create whose answer is
lost is reported "uncertain" and ``find_created`` finds it the same way (Aircall has no field
to stamp our hub id on). Phone numbers and emails change only through their detail
sub-resources: the connector diffs current against wanted and adds, changes or removes
details, never removing a contact's last phone number.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import requests

from contactsync.connectors.aircall.client import (
    AircallApi,
    AircallConfig,
    Credentials,
    build_session,
    make_http,
)
from contactsync.connectors.aircall.errors import RemoteNotFound, invalid, mutation_error
from contactsync.connectors.aircall.models import (
    STREAM,
    ContactList,
    DetailKind,
    DetailPlan,
    RawContact,
    Wanted,
    create_payload,
    default_mapping,
    email_key,
    phone_key,
    plan_details,
    representable,
    same_person,
    text_payload,
    to_record,
    wanted_emails,
    wanted_phones,
)
from contactsync.connectors.aircall.paging import (
    CursorState,
    Scanner,
    ScanPosition,
    incremental_pages,
)
from contactsync.connectors.aircall.webhooks import WEBHOOK_TOKEN, ensure_webhook, parse_delivery
from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ConnectorError,
    ConnectorStats,
    ContactFields,
    Create,
    Delete,
    InvalidRequest,
    Mutation,
    MutationResult,
    RemoteRecord,
    Update,
)
from contactsync.connectors.http import Clock, SystemClock
from contactsync.domain.accounts import Provider
from contactsync.domain.sync import FieldRule

log = logging.getLogger(__name__)

# After one of these, the rest of a batch is not attempted: it would fail the same way, and
# more requests into a throttled or failing API only make it worse.
_STOP_KINDS = frozenset({"throttled", "auth", "quota", "transient"})
_NEEDS_PHONE = "Aircall needs at least one phone number in international form (+ country code)"

SecretsCallback = Callable[[dict[str, str]], None]


def _contact_id(remote_id: str) -> int | None:
    """Aircall ids are positive integers; anything else names no contact."""
    return int(remote_id) if remote_id.isascii() and remote_id.isdigit() else None


@dataclass
class _Edit:
    """The contact as the last answer showed it, and whether a later removal made that stale."""

    latest: RawContact | None = None
    stale: bool = False
    calls: int = field(default=0)

    def got(self, contact: RawContact) -> None:
        self.latest, self.stale = contact, False
        self.calls += 1

    def removed(self) -> None:
        self.stale = True
        self.calls += 1


class AircallConnector(Connector):
    provider = Provider.AIRCALL

    def representable(self, fields: ContactFields) -> ContactFields:
        return representable(fields)

    def __init__(
        self,
        config: AircallConfig,
        credentials: Credentials,
        *,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        secrets: Mapping[str, str] | None = None,
        on_secret_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.stats = ConnectorStats()
        self._secrets = dict(secrets or {})
        self._on_secret_rotated = on_secret_rotated
        self.session = build_session(credentials, session, config.ca_bundle)
        self.http, self.governor = make_http(self.session, config, self.clock, self.stats)
        self.api = AircallApi(self.http, config.api_base)

    # ---- the contract ---------------------------------------------------------------------

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def default_mapping(self, stream: str) -> list[FieldRule]:
        self._check_stream(stream)
        return default_mapping()

    def prepare(self) -> None:
        """Registers (or repairs) the contact.* webhook at ``webhook_url`` and reports its id
        and token through ``on_secret_rotated``. Idempotent; nothing without a webhook_url."""
        changed = ensure_webhook(self.api, self.config, self._secrets)
        if changed:
            self._secrets.update(changed)
            if self._on_secret_rotated is not None:
                self._on_secret_rotated(dict(changed))

    def parse_webhook(self, body: bytes | str | Mapping[str, object]) -> list[RemoteRecord]:
        """One verified delivery as records (``deleted=True`` for contact.deleted); raises
        WebhookRejected (answer 401) when the token is not our webhook's."""
        return parse_delivery(
            body,
            self._secrets.get(WEBHOOK_TOKEN),
            self.config.default_region,
        )

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        self._check_stream(stream)
        state = CursorState.load(cursor) if cursor is not None else None
        if state is not None and state.scan is not None:
            yield from self._full_scan(state, resumed=True)
        elif state is None or self._reconciliation_due(state):
            yield from self._full_scan(state, resumed=False)
        elif self._deletes_since(state):
            log.info("aircall contacts were deleted since the last read: full scan")
            yield from self._full_scan(state, resumed=False)
        else:
            yield from self._incremental(state)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        self._check_stream(stream)
        results: list[MutationResult] = []
        stopped: ConnectorError | None = None
        for mutation in mutations:
            if stopped is not None:
                results.append(MutationResult(mutation, ok=False, error=mutation_error(stopped)))
                continue
            try:
                results.append(self._apply_one(mutation))
            except ConnectorError as exc:
                results.append(MutationResult(mutation, ok=False, error=mutation_error(exc)))
                if exc.kind in _STOP_KINDS:
                    stopped = exc
        return results

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        """Aircall has no field for our hub id: the twin is found by phone number (or email)
        and name. The newest match is the one a lost create made."""
        self._check_stream(stream)
        twin = self._twin(fields)
        return to_record(twin, self.config.default_region) if twin is not None else None

    # ---- reading --------------------------------------------------------------------------

    def _reconciliation_due(self, state: CursorState) -> bool:
        if state.reconciled is None:
            return True
        age = self.clock.now().timestamp() - state.reconciled
        return age >= self.config.reconcile_hours * 3600

    def _deletes_since(self, state: CursorState) -> bool:
        """Whether contacts we read were deleted since: the number created at or before the
        watermark only falls through deletes (one request). A delete found this way brings
        the reconciliation forward, at most once per ``delete_rescan_minutes``; until then the
        count stays short and the next read checks again. A contact.deleted webhook that
        triggers a pull is answered this way too."""
        if state.tally is None or self.config.delete_rescan_minutes is None:
            return False
        if state.reconciled is not None:
            since = self.clock.now().timestamp() - state.reconciled
            if since < self.config.delete_rescan_minutes * 60:
                return False
        scanner = Scanner(self.api, self.config.per_page, self.config.query_cap)
        return scanner.created_up_to(state.tally.second) < state.tally.count

    def _full_scan(self, state: CursorState | None, *, resumed: bool) -> Iterator[ChangePage]:
        """A complete read. A scan resumed from a cursor (the previous run stopped mid-way)
        is not flagged ``full_scan``: the records it read before the stop are not in this
        run's view, and absence would wrongly mean deleted. Its completion still counts as the
        reconciliation (deletes are then learnt from webhooks or the next one)."""
        scanner = Scanner(self.api, self.config.per_page, self.config.query_cap)
        previous = state or CursorState()
        if resumed and previous.scan is not None:
            start = previous.scan
        else:
            now = self.clock.now().timestamp()
            start = ScanPosition(0, [], scanner.newest_update(), now)
        region = self.config.default_region
        for page in scanner.pages(start):
            if page.done:
                after = CursorState(start.watermark, start.started, tally=page.position.tally)
            else:
                after = CursorState(
                    previous.watermark, previous.reconciled, page.position, previous.tally
                )
            yield ChangePage(
                records=[to_record(c, region) for c in page.contacts],
                cursor=after.dump(),
                last=page.done,
                full_scan=not resumed,
            )

    def _incremental(self, state: CursorState) -> Iterator[ChangePage]:
        region = self.config.default_region
        for page in incremental_pages(
            self.api, state.watermark, state.tally, self.config.per_page, self.config.query_cap
        ):
            cursor = None
            if page.done:
                cursor = CursorState(page.watermark, state.reconciled, tally=page.tally).dump()
            yield ChangePage(
                records=[to_record(c, region) for c in page.contacts],
                cursor=cursor,
                last=page.done,
            )

    # ---- writing --------------------------------------------------------------------------

    def _apply_one(self, mutation: Mutation) -> MutationResult:
        if isinstance(mutation, Create):
            return self._create(mutation)
        if isinstance(mutation, Update):
            return self._update(mutation)
        return self._delete(mutation)

    def _result(self, mutation: Mutation, contact: RawContact | None) -> MutationResult:
        if contact is None:
            remote_id = None if isinstance(mutation, Create) else mutation.remote_id
            return MutationResult(mutation, ok=True, remote_id=remote_id)
        return MutationResult(
            mutation,
            ok=True,
            remote_id=str(contact.id),
            version=str(contact.updated_at),
            record=to_record(contact, self.config.default_region),
        )

    def _create(self, mutation: Create) -> MutationResult:
        phones = wanted_phones(mutation.fields)
        if not phones:
            return MutationResult(mutation, ok=False, error=invalid("needs_phone", _NEEDS_PHONE))
        twin = self._twin(mutation.fields) if self.config.search_before_create else None
        if twin is not None:
            # Aircall allows duplicates: link the existing contact instead of making a twin,
            # and write nothing to it. No record either: the link takes the hub's values, so
            # the twin's own values (a second number, other notes) differ from it and are
            # merged under the spoke's conflict policy when the engine next reads the twin,
            # instead of being overwritten here.
            return MutationResult(
                mutation, ok=True, remote_id=str(twin.id), version=str(twin.updated_at)
            )
        created = self.api.create_contact(create_payload(mutation.fields, phones))
        return self._result(mutation, created)

    def _update(self, mutation: Update) -> MutationResult:
        contact_id = _contact_id(mutation.remote_id)
        if contact_id is None:
            raise RemoteNotFound("not_found", "not an Aircall contact id")
        fields = mutation.fields
        if fields.phones is not None and not wanted_phones(fields):
            return MutationResult(mutation, ok=False, error=invalid("needs_phone", _NEEDS_PHONE))
        details = fields.phones is not None or fields.emails is not None
        current = self.api.get_contact(contact_id) if details else None
        return self._result(mutation, self._converge(contact_id, current, fields))

    def _delete(self, mutation: Delete) -> MutationResult:
        contact_id = _contact_id(mutation.remote_id)
        if contact_id is not None:
            with contextlib.suppress(RemoteNotFound):  # already gone: the wanted state holds
                self.api.delete_contact(contact_id)
        return MutationResult(mutation, ok=True, remote_id=mutation.remote_id)

    def _converge(
        self, contact_id: int, current: RawContact | None, fields: ContactFields
    ) -> RawContact | None:
        """Brings the contact to ``fields``: details first (removals of emails, then phones
        changed, added, and only then removed, so the last one never goes), then names,
        company and information. Returns the contact as it now is (None when nothing was
        changed and it was not read)."""
        text = text_payload(fields)
        phones, emails = DetailPlan(), DetailPlan()
        if current is not None:
            text = {k: v for k, v in text.items() if (getattr(current, k) or "") != v}
            region = self.config.default_region
            if fields.phones is not None:
                phones = plan_details(
                    current.phone_numbers, wanted_phones(fields), phone_key(region)
                )
            if fields.emails is not None:
                emails = plan_details(current.emails, wanted_emails(fields), email_key)
        edit = _Edit()
        self._remove(contact_id, "email", emails.remove, edit)
        self._put(contact_id, "phone", phones, edit)
        self._remove(contact_id, "phone", phones.remove, edit)
        self._put(contact_id, "email", emails, edit)
        if text:
            edit.got(self.api.update_contact(contact_id, text))
        if edit.calls == 0:
            return current
        if edit.stale or edit.latest is None:
            edit.got(self.api.get_contact(contact_id))
        return edit.latest

    def _put(self, contact_id: int, kind: DetailKind, plan: DetailPlan, edit: _Edit) -> None:
        for detail_id, wanted in plan.change:
            edit.got(
                self.api.change_detail(contact_id, kind, detail_id, wanted.label, wanted.value)
            )
        for wanted in plan.add:
            edit.got(self.api.add_detail(contact_id, kind, wanted.label, wanted.value))

    def _remove(self, contact_id: int, kind: DetailKind, ids: list[int], edit: _Edit) -> None:
        for detail_id in ids:
            with contextlib.suppress(RemoteNotFound):  # removed meanwhile
                self.api.remove_detail(contact_id, kind, detail_id)
            edit.removed()

    def _twin(self, fields: ContactFields) -> RawContact | None:
        """The newest existing contact with one of these phone numbers (or, without any, this
        email) and the same name."""
        phones: list[Wanted] = wanted_phones(fields)
        if phones:
            found = self._search(phone_number=phones[0].value)
        else:
            emails = wanted_emails(fields)
            if not emails:
                return None
            found = self._search(email=emails[0].value)
        twins = [c for c in found.contacts if same_person(c, fields)]
        return max(twins, key=lambda c: (c.created_at, c.id)) if twins else None

    def _search(self, **query: str) -> ContactList:
        return self.api.search_contacts(
            **query, order_by="created_at", order="desc", per_page=self.config.per_page, page=1
        )

    @staticmethod
    def _check_stream(stream: str) -> None:
        if stream != STREAM:
            raise InvalidRequest("unknown_stream", f"Aircall has one stream, {STREAM!r}")
