"""The domain model at the edges: bad input is refused with errors that name the field and what
is wrong, without echoing the value."""

from __future__ import annotations

from typing import Any

import pytest

from contactsync.domain import (
    ConnectedAccount,
    HubContact,
    InvalidInput,
    Link,
    Organisation,
    PhoneNumber,
    SyncSettings,
)
from contactsync.domain.contact import to_e164
from contactsync.store.base import Store
from tests import factories as f


def problems(model: type[Any], data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InvalidInput) as err:
        model.parse(data)
    return {p["field"]: p["problem"] for p in err.value.problems}


def contact_data(**kw: Any) -> dict[str, Any]:
    return {"org_id": "org-a", "id": "c-1", "given_name": "Zoë", **kw}


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        (contact_data(id="c#1"), "id", "letters, digits"),
        (contact_data(org_id=""), "org_id", "letters, digits"),
        (contact_data(id="x" * 129), "id", "1-128"),
        (
            contact_data(emails=[{"address": "not-an-email"}]),
            "emails.0.address",
            "not a valid email",
        ),
        (
            contact_data(phones=[{"raw": "555", "e164": "+1555"}]),
            "phones.0.e164",
            "not a valid phone",
        ),
        (contact_data(phones=[{"raw": "x", "e164": "+1 415 555 2671"}]), "phones.0.e164", "E.164"),
        (contact_data(given_name="x" * 256), "given_name", "at most 255"),
        (contact_data(notes="x" * 32_001), "notes", "at most 32000"),
        (contact_data(visibility="secret"), "visibility", "'organisation' or 'personal'"),
        (contact_data(colour="blue"), "colour", "Extra inputs are not permitted"),
        (
            contact_data(emails=[{"address": f"a{i}@x.com"} for i in range(21)]),
            "emails",
            "at most 20",
        ),
    ],
)
def test_contact_rejects_bad_input_naming_the_field(
    data: dict[str, Any], field: str, says: str
) -> None:
    found = problems(HubContact, data)
    assert field in found, found
    assert says in found[field]


def test_error_never_echoes_the_value() -> None:
    with pytest.raises(InvalidInput) as err:
        HubContact.parse(contact_data(emails=[{"address": "secret-person@@example"}]))
    assert "secret-person" not in str(err.value)


def test_contact_needs_something_to_identify_it() -> None:
    found = problems(HubContact, {"org_id": "o", "id": "c"})
    assert "a name, an email, a phone or a company" in found["(body)"]


def test_personal_contact_needs_an_owner() -> None:
    found = problems(HubContact, contact_data(visibility="personal"))
    assert "owner_user_id" in found["(body)"]


def test_phone_numbers_keep_raw_and_normalise_to_e164() -> None:
    phone = PhoneNumber.parse("(415) 555-2671", "US", "work")
    assert (phone.raw, phone.e164) == ("(415) 555-2671", "+14155552671")
    assert PhoneNumber.parse("030 1234567", "DE").e164 == "+49301234567"
    assert PhoneNumber.parse("+44 20 7946 0018", "US").e164 == "+442079460018"
    with pytest.raises(ValueError, match="not a valid phone number"):
        PhoneNumber.parse("12", "US")
    lenient = PhoneNumber.lenient("ext. 42", "US")
    assert (lenient.raw, lenient.e164) == ("ext. 42", None)
    assert to_e164("n/a") is None


def test_emails_are_deduplicated_case_insensitively() -> None:
    contact = f.contact(emails=["Pam@Example.com", "pam@example.com", "pam@home.example"])
    assert [e.key for e in contact.emails] == ["pam@example.com", "pam@home.example"]


def test_organisation_region_and_self_scope() -> None:
    assert "default_region" in problems(
        Organisation, {"org_id": "o", "id": "o", "name": "x", "default_region": "XX"}
    )
    assert "(body)" in problems(Organisation, {"org_id": "o", "id": "p", "name": "x"})


def test_connected_account_rules() -> None:
    base = {"org_id": "o", "id": "a", "owner_user_id": "u", "address": "rep@example.com"}
    assert "provider" in problems(ConnectedAccount, {**base, "provider": "myspace"})
    found = problems(ConnectedAccount, {**base, "provider": "google", "status": "needs_reconnect"})
    assert "status_reason" in found["(body)"]
    google = ConnectedAccount.parse({**base, "provider": "google"})
    office = ConnectedAccount.parse({**base, "provider": "microsoft"})
    exchange = ConnectedAccount.parse({**base, "provider": "exchange"})
    assert (google.mail_history_days, exchange.mail_history_days, office.mail_history_days) == (
        182,
        365,
        730,
    )


def test_sync_settings_rules() -> None:
    base = {"org_id": "o", "id": "s", "account_id": "a"}
    assert "direction" in problems(SyncSettings, {**base, "direction": "sideways"})
    assert "scope" in problems(SyncSettings, {**base, "scope": {"kind": "list_view"}})
    assert "conflict" in problems(SyncSettings, {**base, "conflict": {"rule": "source_priority"}})
    assert "schedule.interval_minutes" in problems(
        SyncSettings, {**base, "schedule": {"interval_minutes": 0}}
    )
    rule = {"hub_field": "title", "remote_field": "Title"}
    assert "(body)" in problems(SyncSettings, {**base, "field_mapping": [rule, rule]})
    assert "field_mapping.0.hub_field" in problems(
        SyncSettings, {**base, "field_mapping": [{"hub_field": "shoe_size", "remote_field": "X"}]}
    )


def test_link_ids_are_deterministic_and_key_safe() -> None:
    graph_id = "AAMkAGI2TG93AAA=/+x"
    key = Link.key("acc-ms", "contact", graph_id)
    assert key == Link.key("acc-ms", "contact", graph_id)
    assert key != Link.key("acc-ms", "contact", graph_id + "y")
    link = f.link(remote_id=graph_id, account_id="acc-ms", object_type="contact")
    assert link.id == key


def test_bad_input_writes_nothing(store: Store) -> None:
    with pytest.raises(InvalidInput):
        HubContact.parse(contact_data(emails=[{"address": "nope"}]))
    assert store.page(HubContact, "org-a", limit=10).items == []


def test_a_number_made_by_to_e164_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    import contactsync.domain.contact as contact_module

    made = contact_module.to_e164("(415) 555-2671", "US")
    assert made == "+14155552671"

    def refuse(value: str | None) -> str | None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(contact_module, "_e164", refuse)
    assert contact_module.PhoneNumber(raw="(415) 555-2671", e164=made).e164 == made
    # Anything else is still checked.
    with pytest.raises(ValueError, match="parsed again"):  # pydantic wraps the assertion
        contact_module.PhoneNumber(raw="x", e164="+14155550000")


@pytest.mark.parametrize("number", ["+14155552671", "+390612345678", "+442079460018"])
def test_a_number_just_written_reads_back_as_itself_without_parsing(
    number: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connector reading the answer to its own write passes the E.164 numbers it sent: each
    is its own E.164 form in any region, as a parse would say; anything else is parsed."""
    import contactsync.domain.contact as contact_module

    parsed = PhoneNumber.lenient(number, "GB", "work")
    assert parsed.e164 == number
    calls: list[str] = []
    real = contact_module.to_e164

    def counting(raw: str, region: str = "US") -> str | None:
        calls.append(raw)
        return real(raw, region)

    monkeypatch.setattr(contact_module, "to_e164", counting)
    assert PhoneNumber.lenient(number, "GB", "work", written={number}) == parsed
    assert calls == []
    other = PhoneNumber.lenient("(415) 555-2671", "US", written={number})
    assert other.e164 == "+14155552671"
    assert calls == ["(415) 555-2671"]
