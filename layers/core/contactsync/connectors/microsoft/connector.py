"""The Microsoft Graph connector: one mailbox's Outlook contacts as the engine's ``contact``
stream, covering two folders (seed 003):

- the default Contacts folder, the user's address book: its contacts are unmarked, except those
  the user gave the "Salesforce" category, which asks for them to be synced;
- the dedicated "Salesforce Contacts" folder: its contacts are marked (synced).

Reads follow each folder's delta (see ``delta.py``); the cursor keeps both delta links in one
JSON value. Markers:

- a contact in the folder without the category: ``marker_repair`` (the engine sends an Update
  with ``marked=True`` and the category is put back);
- a categorised contact outside the folder: marked, ``marker_repair``; the repair "moves" it
  into the folder (Graph cannot move a contact: it is copied into the folder with the category
  and the original deleted; the result names the copy, and the engine's link follows it);
- a contact the user moved out of the folder: the folder's delta reports it ``@removed`` (the
  engine restores or deletes per auto-removal) and it turns up in the address book with a new
  id, still categorised. Graph gives nothing to tie the two together (no stable id without
  extended properties or immutable ids, neither in the sandbox), so a removal from the folder
  is remembered for ``move_window_minutes`` and explains one categorised newcomer: that one
  loses the category and is reported unmarked. Read order makes this race-free: the address
  book first (its categorised contacts held back), the folder second, then the decision.

Writes go in ``$batch`` requests of 20 (creates in their own batches, which are never retried
blindly: a lost answer makes them "uncertain"), one batch at a time. Updates are PATCHes that
carry only the changed properties, ``If-Match`` the etag, and an explicit ``displayName`` with
any name change (read first, so a displayName the user chose is kept).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from contactsync.connectors.base import (
    ChangePage,
    Connector,
    ConnectorError,
    ConnectorStats,
    ContactFields,
    Create,
    CursorExpired,
    Delete,
    InvalidRequest,
    Mutation,
    MutationError,
    MutationResult,
    RemoteRecord,
    Uncertain,
    Update,
)
from contactsync.connectors.http import Clock, SystemClock
from contactsync.connectors.microsoft import delta, errors, subscriptions
from contactsync.connectors.microsoft.client import (
    BatchAnswer,
    BatchItem,
    Credentials,
    GraphClient,
    MicrosoftConfig,
    TokenSource,
    path_id,
    user_path,
)
from contactsync.connectors.microsoft.models import (
    NAME_FIELDS,
    SELECT,
    STREAM,
    RawContact,
    contact_properties,
    copy_properties,
    default_mapping,
    display_name_for,
    odata_string,
    parse_contact,
    representable,
    same_person,
    to_record,
    updated_display_name,
    with_category,
    without_category,
)
from contactsync.connectors.microsoft.subscriptions import Subscription, folder_resource
from contactsync.domain.accounts import Provider
from contactsync.domain.sync import FieldRule

log = logging.getLogger(__name__)

SecretsCallback = Callable[[dict[str, str]], None]
CLIENT_STATE_SECRET = "webhook_client_state"
# prepare() renews a subscription that has less than this left.
RENEW_BEFORE_HOURS = 24
SEARCH_TOP = 50


def _session(config: MicrosoftConfig, session: requests.Session | None) -> requests.Session:
    if session is not None:
        return session
    built = requests.Session()
    if config.ca_bundle:
        built.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
        built.verify = config.ca_bundle
    return built


def _parsed(answer: BatchAnswer) -> RawContact | None:
    """The contact a successful batch item answered with."""
    if not answer.ok or not isinstance(answer.body, dict):
        return None
    return parse_contact(answer.body)


@dataclass
class _Work:
    """One mutation on its way through the batches."""

    index: int
    mutation: Mutation
    result: MutationResult | None = None
    current: RawContact | None = None
    current_raw: dict[str, Any] = field(default_factory=dict)
    copy_id: str | None = None  # a move into the folder: the copy made
    copy: RawContact | None = None


class MicrosoftConnector(Connector):
    provider = Provider.MICROSOFT

    def __init__(
        self,
        config: MicrosoftConfig,
        credentials: Credentials,
        *,
        user: str,
        session: requests.Session | None = None,
        clock: Clock | None = None,
        secrets: Mapping[str, str] | None = None,
        on_secret_rotated: SecretsCallback | None = None,
    ) -> None:
        self.config = config
        self.user = config.user_id or user
        self.clock: Clock = clock or SystemClock()
        self.stats = ConnectorStats()
        self._secrets = dict(secrets or {})
        self.session = _session(config, session)
        self.tokens = TokenSource(config, credentials, self.session, self.stats, on_secret_rotated)
        self.graph = GraphClient(self.session, config, self.tokens, self.clock, self.stats)
        self._folder_id: str | None = None
        self._category_ready = False

    # ---- the contract ---------------------------------------------------------------------

    def streams(self) -> Sequence[str]:
        return [STREAM]

    def default_mapping(self, stream: str) -> list[FieldRule]:
        self._check_stream(stream)
        return default_mapping()

    def representable(self, fields: ContactFields) -> ContactFields:
        return representable(fields)

    def prepare(self) -> None:
        """Creates the "Salesforce Contacts" folder and the "Salesforce" master category when
        missing, and (with ``webhook_url`` configured and a ``webhook_client_state`` secret)
        makes sure both folders have a live subscription. Idempotent."""
        self.synced_folder_id()
        self._ensure_category()
        state = self._secrets.get(CLIENT_STATE_SECRET)
        if self.config.webhook_url and state:
            self._ensure_subscriptions(self.config.webhook_url, state)

    def read(self, stream: str, cursor: str | None) -> Iterator[ChangePage]:
        self._check_stream(stream)
        if cursor is None:
            state = delta.CursorState(
                user=self.user,
                default=delta.FolderCursor(folder=self.config.default_folder),
                synced=delta.FolderCursor(folder=self.synced_folder_id()),
            )
            yield from self._read(state, full=True)
            return
        state = delta.CursorState.load(cursor)
        if state.user.casefold() != self.user.casefold():
            raise CursorExpired("mailbox_changed", "the cursor belongs to another mailbox")
        self._folder_id = state.synced.folder
        yield from self._read(state, full=False)

    def apply(self, stream: str, mutations: Sequence[Mutation]) -> list[MutationResult]:
        self._check_stream(stream)
        work = [_Work(i, m) for i, m in enumerate(mutations)]
        try:
            self._apply(work)
        except ConnectorError as exc:  # setup failed (token, folder): every open item says so
            for item in work:
                if item.result is None:
                    item.result = self._failed(item.mutation, errors.from_exception(exc))
        return [
            item.result or self._failed(item.mutation, MutationError("transient", "not_attempted"))
            for item in work
        ]

    def find_created(self, stream: str, hub_id: str, fields: ContactFields) -> RemoteRecord | None:
        """There is no place for our hub id in the sandbox (no extended properties), so the
        record a lost create made is searched: by its first email address (Graph's
        ``emailAddresses/any`` filter), else by name, else by company, in the synced folder
        then the address book; the newest one matching the name and emails is it."""
        self._check_stream(stream)
        query = self._search_filter(fields)
        if query is None:
            return None
        matches = same_person(fields)
        folders = [self.synced_folder_id(), self.config.default_folder]
        for folder in folders:
            found = [
                raw for raw in self._search(folder, query) if matches(raw) and not raw.is_removed
            ]
            if found:
                newest = max(found, key=lambda r: (r.created_date_time or "", r.id))
                return self._record(newest, in_folder=folder == folders[0])
        return None

    # ---- webhooks (issue 6) ---------------------------------------------------------------

    def create_subscription(
        self,
        notification_url: str,
        client_state: str,
        *,
        folder: str = "synced",
        lifecycle_url: str | None = None,
    ) -> Subscription:
        """Subscribes ``notification_url`` to the changes of one folder ("synced" or
        "default"). Graph validates the URL before answering."""
        return subscriptions.create(
            self.graph,
            self.clock,
            resource=self.subscription_resource(folder),
            notification_url=notification_url,
            client_state=client_state,
            minutes=self.config.subscription_minutes,
            lifecycle_url=lifecycle_url,
        )

    def renew_subscription(self, subscription_id: str) -> Subscription:
        return subscriptions.renew(
            self.graph, self.clock, subscription_id, self.config.subscription_minutes
        )

    def delete_subscription(self, subscription_id: str) -> None:
        with contextlib.suppress(errors.RemoteNotFound):  # already gone (expired, removed)
            subscriptions.delete(self.graph, subscription_id)

    def subscriptions(self) -> list[Subscription]:
        """This mailbox's subscriptions made by this app."""
        mine = {self.subscription_resource(f).casefold() for f in ("synced", "default")}
        listed = subscriptions.listing(self.graph, self.clock)
        return [s for s in listed if s.resource.casefold() in mine]

    def reauthorize_webhooks(self) -> None:
        """Graph's ``reauthorizationRequired``: renew every subscription of this mailbox."""
        for subscription in self.subscriptions():
            self.renew_subscription(subscription.id)

    def subscription_resource(self, folder: str) -> str:
        if folder == "synced":
            return folder_resource(self.user, self.synced_folder_id())
        if folder == "default":
            return folder_resource(self.user, self.config.default_folder)
        raise InvalidRequest("unknown_folder", 'folder is "synced" or "default"')

    def _ensure_subscriptions(self, url: str, client_state: str) -> None:
        existing = [s for s in self.subscriptions() if s.notification_url == url]
        soon = self.clock.now().timestamp() + RENEW_BEFORE_HOURS * 3600
        for folder in ("synced", "default"):
            resource = self.subscription_resource(folder).casefold()
            mine = [s for s in existing if s.resource.casefold() == resource]
            for extra in mine[1:]:
                self.delete_subscription(extra.id)
            if not mine:
                self.create_subscription(
                    url, client_state, folder=folder, lifecycle_url=self.config.lifecycle_url
                )
            elif mine[0].expires_at.timestamp() < soon:
                try:
                    self.renew_subscription(mine[0].id)
                except errors.RemoteNotFound:
                    self.create_subscription(
                        url, client_state, folder=folder, lifecycle_url=self.config.lifecycle_url
                    )

    # ---- folder and category --------------------------------------------------------------

    def synced_folder_id(self) -> str:
        """The "Salesforce Contacts" folder's id, created under the default folder when it is
        missing (a 409 ErrorFolderExists from a concurrent create: looked up again)."""
        if self._folder_id is None:
            found = self._find_folder()
            if found is None:
                try:
                    created = self.graph.post_json(
                        f"{user_path(self.user)}/contactFolders",
                        "folders.create",
                        {"displayName": self.config.folder_name},
                        idempotent=False,
                    )
                    found = created.get("id") if isinstance(created.get("id"), str) else None
                except errors.Conflict:
                    found = self._find_folder()
                except Uncertain:
                    found = self._find_folder()
            if not found:
                raise InvalidRequest("folder_missing", "the synced folder could not be made")
            self._folder_id = found
        return self._folder_id

    def _find_folder(self) -> str | None:
        params = {
            "$filter": f"displayName eq {odata_string(self.config.folder_name)}",
            "$select": "id,displayName",
        }
        for page in self.graph.pages(
            f"{user_path(self.user)}/contactFolders", "folders.list", params
        ):
            for folder in page:
                name = folder.get("displayName")
                if isinstance(name, str) and name.casefold() == self.config.folder_name.casefold():
                    folder_id = folder.get("id")
                    if isinstance(folder_id, str):
                        return folder_id
        return None

    def _ensure_category(self) -> None:
        if self._category_ready:
            return
        path = f"{user_path(self.user)}/outlook/masterCategories"
        wanted = self.config.category.casefold()
        names = {
            str(c.get("displayName", "")).casefold()
            for page in self.graph.pages(path, "categories.list")
            for c in page
        }
        if wanted not in names:
            # A 409 (made meanwhile) or a lost answer (made by this attempt): it exists.
            with contextlib.suppress(errors.Conflict, Uncertain):
                self.graph.post_json(
                    path,
                    "categories.create",
                    {"displayName": self.config.category, "color": self.config.category_color},
                    idempotent=False,
                )
        self._category_ready = True

    # ---- reading --------------------------------------------------------------------------

    def _record(
        self, raw: RawContact, *, in_folder: bool, written: Container[str] = ()
    ) -> RemoteRecord:
        now = self.clock.now()
        region = self.config.default_region
        if in_folder:
            repair = not raw.is_removed and not raw.has_category(self.config.category)
            marked, marker_repair = True, repair
        elif not raw.is_removed and raw.has_category(self.config.category):
            # Categorised outside the folder: a request to sync it (moved in by the repair).
            marked, marker_repair = True, True
        else:
            marked, marker_repair = False, False
        return to_record(
            raw,
            region=region,
            now=now,
            marked=marked,
            marker_repair=marker_repair,
            written=written,
        )

    def _read(self, state: delta.CursorState, *, full: bool) -> Iterator[ChangePage]:
        """Address book first, synced folder second. A complete read (``full``) hands each page
        over with a resumable cursor; an incremental one holds the address book's categorised
        contacts back until the folder's removals are known, and commits at the end."""
        held: list[RawContact] = []
        removed_now = 0
        for key in ("default", "synced"):
            in_folder = key == "synced"
            cursor = state.synced if in_folder else state.default
            for page in self._rounds(cursor, in_folder):
                records: list[RemoteRecord] = []
                for item in page.items:
                    raw = parse_contact(item)
                    if raw is None:
                        log.warning("unreadable Graph contact skipped")
                        continue
                    if in_folder and raw.is_removed:
                        removed_now += 1
                    if self._hold(raw, in_folder, full):
                        held.append(raw)
                        continue
                    records.append(self._record(raw, in_folder=in_folder))
                cursor.link = page.link
                if full:
                    yield ChangePage(
                        records, state.dump(), last=in_folder and page.final, full_scan=True
                    )
                elif records:
                    yield ChangePage(records, None, last=False)
        if not full:
            records = self._settle(held, state, removed_now)
            yield ChangePage(records, state.dump(), last=True)

    def _rounds(self, cursor: delta.FolderCursor, in_folder: bool) -> Iterator[delta.DeltaPage]:
        try:
            yield from delta.rounds(self.graph, self.user, cursor, self.config.page_size)
        except errors.RemoteNotFound as exc:
            if in_folder:
                self._folder_id = None  # deleted by the user: made again by the full resync
            raise CursorExpired("folder_gone", "the folder of the delta link is gone") from exc

    def _hold(self, raw: RawContact, in_folder: bool, full: bool) -> bool:
        return (
            not full
            and not in_folder
            and not raw.is_removed
            and raw.has_category(self.config.category)
        )

    def _settle(
        self, held: list[RawContact], state: delta.CursorState, removed_now: int
    ) -> list[RemoteRecord]:
        """Decides the categorised contacts found outside the folder. Each recent removal from
        the folder explains one of them: a contact the user moved out, which loses the category
        (seed 003: moving it out of the folder unsyncs it) and is reported unmarked. The others
        are requests to sync."""
        now = self.clock.now().timestamp()
        state.prune(now, self.config.move_window_minutes * 60)
        for _ in range(removed_now):
            state.note_removal(now)
        moved = held[: len(state.removals)]
        requests_ = held[len(state.removals) :]
        records = [self._record(raw, in_folder=False) for raw in requests_]
        if not moved:
            return records
        stripped = self._strip_category(moved)
        for raw in moved:
            after = stripped.get(raw.id)
            if after is None:
                continue  # changed meanwhile: its next change brings it back to decide again
            state.removals.pop(0)
            records.append(self._record(after, in_folder=False))
        return records

    def _strip_category(self, contacts: list[RawContact]) -> dict[str, RawContact]:
        items = [
            BatchItem(
                id=str(n),
                method="PATCH",
                url=self._contact_url(raw.id),
                body={"categories": without_category(raw.categories, self.config.category)},
                headers={"If-Match": raw.etag} if raw.etag else {},
            )
            for n, raw in enumerate(contacts)
        ]
        answers = self.graph.batch(items, idempotent=True)
        done: dict[str, RawContact] = {}
        for item, raw in zip(items, contacts, strict=True):
            answer = answers[item.id]
            after = _parsed(answer)
            if after is not None:
                done[raw.id] = after
        return done

    # ---- writing --------------------------------------------------------------------------

    def _apply(self, work: list[_Work]) -> None:
        if any(isinstance(w.mutation, Create | Update) and w.mutation.marked for w in work):
            self.synced_folder_id()
            self._ensure_category()
        for item in work:
            mutation = item.mutation
            if (
                isinstance(mutation, Update)
                and not self._needs_current(mutation)
                and not mutation.fields.provided()
            ):
                item.result = MutationResult(
                    mutation, ok=True, remote_id=mutation.remote_id, version=mutation.version
                )
        self._read_current([w for w in work if w.result is None and self._wants_current(w)])
        self._create([w for w in work if w.result is None and self._creates(w)])
        self._write([w for w in work if w.result is None])

    @staticmethod
    def _needs_current(mutation: Update) -> bool:
        names = any(getattr(mutation.fields, n) is not None for n in NAME_FIELDS)
        repair = bool(mutation.marked) and not mutation.fields.provided()
        return names or repair

    def _wants_current(self, item: _Work) -> bool:
        return isinstance(item.mutation, Update) and self._needs_current(item.mutation)

    def _creates(self, item: _Work) -> bool:
        """Creates, and the copies that move a categorised contact into the folder."""
        if isinstance(item.mutation, Create):
            return True
        return item.current is not None and self._moves_in(item)

    def _moves_in(self, item: _Work) -> bool:
        mutation = item.mutation
        current = item.current
        return (
            isinstance(mutation, Update)
            and bool(mutation.marked)
            and not mutation.fields.provided()
            and current is not None
            and current.parent_folder_id != self.synced_folder_id()
        )

    def _contact_url(self, contact_id: str) -> str:
        return f"/{user_path(self.user)}/contacts/{path_id(contact_id)}"

    def _read_current(self, work: list[_Work]) -> None:
        """The contacts an update must see first (name changes: their displayName; marker
        repairs: folder and categories, and everything when it must be copied)."""
        if not work:
            return
        items = [
            BatchItem(id=str(w.index), method="GET", url=self._contact_url(w.mutation.remote_id))
            for w in work
            if isinstance(w.mutation, Update)
        ]
        answers = self.graph.batch(items, idempotent=True)
        for w in work:
            assert isinstance(w.mutation, Update)
            answer = answers[str(w.index)]
            if not answer.ok:
                w.result = self._answer_failed(w.mutation, answer)
                continue
            raw = parse_contact(answer.body) if isinstance(answer.body, dict) else None
            if raw is None:
                w.result = self._failed(w.mutation, MutationError("transient", "bad_response"))
                continue
            version = w.mutation.version
            if version and raw.etag and version != raw.etag and w.mutation.fields.provided():
                # Changed since the engine read it: re-read and merge first (412's meaning).
                w.result = self._failed(
                    w.mutation, MutationError("conflict", "ErrorIrresolvableConflict")
                )
                continue
            w.current = raw
            w.current_raw = dict(answer.body)
            repair = not w.mutation.fields.provided() and not self._moves_in(w)
            if repair and raw.has_category(self.config.category):
                w.result = self._ok(w.mutation, raw)  # the marker is back already

    def _create(self, work: list[_Work]) -> None:
        """Creates (and move-in copies) in their own batches: never retried blindly."""
        items: list[BatchItem] = []
        for w in work:
            if isinstance(w.mutation, Create):
                items.append(self._create_item(w.index, w.mutation))
                continue
            existing = self._existing_copy(w)
            if existing is not None:
                w.copy_id, w.copy = existing.id, existing
                continue
            body = copy_properties(
                w.current_raw,
                with_category(w.current.categories if w.current else [], self.config.category),
            )
            items.append(
                BatchItem(
                    id=str(w.index),
                    method="POST",
                    url=f"/{user_path(self.user)}/contactFolders/"
                    f"{path_id(self.synced_folder_id())}/contacts",
                    body=body,
                )
            )
        if not items:
            return
        answers = self.graph.batch(items, idempotent=False)
        by_index = {str(w.index): w for w in work}
        for item in items:
            w = by_index[item.id]
            answer = answers[item.id]
            raw = _parsed(answer)
            if raw is None:
                w.result = self._create_failed(w.mutation, answer)
            elif isinstance(w.mutation, Create):
                w.result = self._ok(w.mutation, raw)
            else:
                w.copy_id, w.copy = raw.id, raw

    def _create_item(self, index: int, mutation: Create) -> BatchItem:
        body = contact_properties(mutation.fields, display_name_for(mutation.fields))
        if mutation.marked:
            body["categories"] = [self.config.category]
            url = f"/{user_path(self.user)}/contactFolders/{path_id(self.synced_folder_id())}"
            url += "/contacts"
        else:
            url = f"/{user_path(self.user)}/contacts"
        return BatchItem(id=str(index), method="POST", url=url, body=body)

    def _existing_copy(self, w: _Work) -> RawContact | None:
        """A copy a previous, uncertain move already made (same name and emails, in the
        folder): used instead of making a second one."""
        if w.current is None:
            return None
        fields = to_record(
            w.current, region=self.config.default_region, now=self.clock.now(), marked=False
        ).fields
        query = self._search_filter(fields)
        if query is None:
            return None
        matches = same_person(fields)
        found = [r for r in self._search(self.synced_folder_id(), query) if matches(r)]
        return max(found, key=lambda r: (r.created_date_time or "", r.id)) if found else None

    def _write(self, work: list[_Work]) -> None:
        """PATCHes and DELETEs (and the deletes that finish moves), idempotent batches."""
        items: list[BatchItem] = []
        for w in work:
            mutation = w.mutation
            if isinstance(mutation, Delete):
                items.append(
                    BatchItem(str(w.index), "DELETE", self._contact_url(mutation.remote_id))
                )
            elif isinstance(mutation, Update) and w.copy_id is not None:
                assert w.current is not None
                headers = {"If-Match": w.current.etag} if w.current.etag else {}
                url = self._contact_url(w.current.id)
                items.append(BatchItem(str(w.index), "DELETE", url, None, headers))
            elif isinstance(mutation, Update):
                items.append(self._patch_item(w, mutation))
        if not items:
            return
        answers = self.graph.batch(items, idempotent=True)
        rollback: list[_Work] = []
        by_index = {str(w.index): w for w in work}
        for item in items:
            w = by_index[item.id]
            answer = answers[item.id]
            if isinstance(w.mutation, Delete):
                gone = answer.ok or answer.status == 404
                w.result = (
                    MutationResult(w.mutation, ok=True, remote_id=w.mutation.remote_id)
                    if gone
                    else self._answer_failed(w.mutation, answer)
                )
            elif w.copy_id is not None:
                if answer.ok or answer.status == 404:
                    assert w.copy is not None
                    w.result = self._ok(w.mutation, w.copy)
                else:
                    w.result = self._answer_failed(w.mutation, answer)
                    rollback.append(w)
            else:
                raw = _parsed(answer)
                w.result = (
                    self._ok(w.mutation, raw) if raw else self._answer_failed(w.mutation, answer)
                )
        self._roll_back(rollback)

    def _patch_item(self, w: _Work, mutation: Update) -> BatchItem:
        fields = mutation.fields
        display = None
        if w.current is not None and any(getattr(fields, n) is not None for n in NAME_FIELDS):
            display = updated_display_name(w.current, fields)
        body = contact_properties(fields, display)
        current = w.current
        if (
            mutation.marked
            and current is not None
            and not current.has_category(self.config.category)
            and current.parent_folder_id == self.synced_folder_id()
        ):
            body["categories"] = with_category(current.categories, self.config.category)
        etag = mutation.version or (current.etag if current is not None else None)
        if current is not None and not fields.provided():
            etag = current.etag  # a marker repair: against what we just read
        headers = {"If-Match": etag} if etag else {}
        url = self._contact_url(mutation.remote_id)
        return BatchItem(str(w.index), "PATCH", url, body, headers)

    def _roll_back(self, work: list[_Work]) -> None:
        """A move whose original changed meanwhile (412): the copy goes again, the original
        stays, and the engine re-reads it."""
        items = [
            BatchItem(str(w.index), "DELETE", self._contact_url(w.copy_id))
            for w in work
            if w.copy_id is not None
        ]
        if items:
            self.graph.batch(items, idempotent=True)

    # ---- results --------------------------------------------------------------------------

    def _ok(self, mutation: Mutation, raw: RawContact) -> MutationResult:
        fields = mutation.fields if isinstance(mutation, Create | Update) else None
        # The numbers this write sent (phone_properties sends E.164 where there is one).
        written = {p.e164 for p in (fields.phones or ()) if p.e164} if fields else set()
        record = self._record(
            raw, in_folder=raw.parent_folder_id == self._folder_id, written=written
        )
        return MutationResult(mutation, ok=True, remote_id=raw.id, version=raw.etag, record=record)

    @staticmethod
    def _failed(mutation: Mutation, error: MutationError) -> MutationResult:
        return MutationResult(mutation, ok=False, error=error)

    def _answer_failed(self, mutation: Mutation, answer: BatchAnswer) -> MutationResult:
        if isinstance(answer.body, ConnectorError):
            return self._failed(mutation, errors.from_exception(answer.body))
        return self._failed(mutation, errors.item_error(answer.status, answer.body, answer.headers))

    def _create_failed(self, mutation: Mutation, answer: BatchAnswer) -> MutationResult:
        """A create's failure; a 5xx (or a 2xx we cannot read) may have made it: uncertain."""
        result = self._answer_failed(mutation, answer)
        error = result.error
        if error is not None and (answer.status >= 500 or answer.ok or error.kind == "transient"):
            return self._failed(
                mutation, MutationError("uncertain", error.code, error.message, error.retry_after)
            )
        return result

    # ---- searching ------------------------------------------------------------------------

    def _search_filter(self, fields: ContactFields) -> str | None:
        if fields.emails:
            address = odata_string(fields.emails[0].address)
            return f"emailAddresses/any(a:a/address eq {address})"
        if fields.given_name or fields.family_name:
            return (
                f"givenName eq {odata_string(fields.given_name or '')}"
                f" and surname eq {odata_string(fields.family_name or '')}"
            )
        if fields.company:
            return f"companyName eq {odata_string(fields.company)}"
        return None

    def _search(self, folder: str, query: str) -> Iterator[RawContact]:
        params = {
            "$filter": query,
            "$select": ",".join((*SELECT, "createdDateTime")),
            "$top": str(SEARCH_TOP),
        }
        path = f"{user_path(self.user)}/contactFolders/{path_id(folder)}/contacts"
        for page in itertools.islice(self.graph.pages(path, "contacts.search", params), 4):
            for item in page:
                raw = parse_contact(item)
                if raw is not None:
                    yield raw

    @staticmethod
    def _check_stream(stream: str) -> None:
        if stream != STREAM:
            raise InvalidRequest("unknown_stream", f"Outlook has one stream, {STREAM!r}")
