"""The sObjects the sandbox knows (Contact, Lead, Account with Person Accounts, User), their
fields as ``describe`` reports them, and the value rules of each field type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STRING_TYPES = frozenset(
    {"id", "string", "email", "phone", "textarea", "picklist", "reference", "url"}
)
SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "datetime": "xsd:dateTime",
    "date": "xsd:date",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    label: str = ""
    length: int = 0
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    default: Any = None
    defaulted_on_create: bool = False
    external_id: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    calculated: bool = False
    custom: bool = False

    @property
    def required(self) -> bool:
        """Must be given on create (REQUIRED_FIELD_MISSING otherwise)."""
        return self.createable and not self.nillable and not self.defaulted_on_create

    @property
    def is_string(self) -> bool:
        return self.type in STRING_TYPES

    def describe(self) -> dict[str, Any]:
        numeric = self.type in ("int", "double", "currency")
        return {
            "aggregatable": self.type not in ("textarea",),
            "autoNumber": False,
            "byteLength": self.length * 3 if self.is_string else 0,
            "calculated": self.calculated,
            "caseSensitive": False,
            "createable": self.createable,
            "custom": self.custom,
            "defaultValue": self.default if self.type != "boolean" else bool(self.default),
            "defaultedOnCreate": self.defaulted_on_create,
            "digits": 9 if self.type == "int" else 0,
            "externalId": self.external_id,
            "filterable": self.type != "textarea" or self.length <= 255,
            "groupable": self.type not in ("textarea", "datetime", "double", "currency"),
            "idLookup": self.type == "id" or self.external_id or self.name == "Email",
            "label": self.label or self.name,
            "length": self.length,
            "name": self.name,
            "nillable": self.nillable,
            "picklistValues": [
                {"active": True, "defaultValue": v == self.default, "label": v, "value": v}
                for v in self.picklist
            ],
            "precision": 18 if self.type == "currency" else (18 if numeric else 0),
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "restrictedPicklist": self.restricted,
            "scale": 2 if self.type == "currency" else 0,
            "soapType": SOAP_TYPES.get(self.type, "xsd:string"),
            "sortable": self.type != "textarea" or self.length <= 255,
            "type": self.type,
            "unique": False,
            "updateable": self.updateable,
        }


def _ro(name: str, type_: str, **kw: Any) -> Field:
    return Field(name, type_, createable=False, updateable=False, **kw)


def _system_fields() -> list[Field]:
    user = ("User",)
    return [
        _ro("CreatedDate", "datetime", label="Created Date", nillable=False),
        _ro(
            "CreatedById",
            "reference",
            label="Created By ID",
            length=18,
            nillable=False,
            reference_to=user,
            relationship_name="CreatedBy",
        ),
        _ro("LastModifiedDate", "datetime", label="Last Modified Date", nillable=False),
        _ro(
            "LastModifiedById",
            "reference",
            label="Last Modified By ID",
            length=18,
            nillable=False,
            reference_to=user,
            relationship_name="LastModifiedBy",
        ),
        _ro("SystemModstamp", "datetime", label="System Modstamp", nillable=False),
    ]


def _owner() -> Field:
    return Field(
        "OwnerId",
        "reference",
        label="Owner ID",
        length=18,
        nillable=False,
        defaulted_on_create=True,
        reference_to=("User",),
        relationship_name="Owner",
    )


def _head(prefix_label: str) -> list[Field]:
    return [
        _ro("Id", "id", label=f"{prefix_label} ID", length=18, nillable=False),
        _ro("IsDeleted", "boolean", label="Deleted", nillable=False, default=False),
    ]


SALUTATIONS = ("Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx.")
LEAD_SOURCES = ("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other")
LEAD_STATUSES = (
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
)
INDUSTRIES = ("Banking", "Consulting", "Education", "Manufacturing", "Retail", "Technology")
EXTERNAL_ID = Field(
    "Contactsync_Id__c", "string", label="Contactsync Id", length=64, external_id=True, custom=True
)


def _person_name_fields() -> list[Field]:
    return [
        Field("LastName", "string", label="Last Name", length=80, nillable=False),
        Field("FirstName", "string", label="First Name", length=40),
        Field("Salutation", "picklist", label="Salutation", length=40, picklist=SALUTATIONS),
        _ro("Name", "string", label="Full Name", length=121, nillable=False, calculated=True),
    ]


CONTACT_FIELDS = [
    *_head("Contact"),
    Field(
        "AccountId",
        "reference",
        label="Account ID",
        length=18,
        reference_to=("Account",),
        relationship_name="Account",
    ),
    _ro("IsPersonAccount", "boolean", label="Is Person Account", nillable=False, default=False),
    *_person_name_fields(),
    Field("MailingStreet", "textarea", label="Mailing Street", length=255),
    Field("MailingCity", "string", label="Mailing City", length=40),
    Field("MailingState", "string", label="Mailing State/Province", length=80),
    Field("MailingPostalCode", "string", label="Mailing Zip/Postal Code", length=20),
    Field("MailingCountry", "string", label="Mailing Country", length=80),
    Field("Phone", "phone", label="Business Phone", length=40),
    Field("MobilePhone", "phone", label="Mobile Phone", length=40),
    Field("HomePhone", "phone", label="Home Phone", length=40),
    Field("OtherPhone", "phone", label="Other Phone", length=40),
    Field("Email", "email", label="Email", length=80),
    Field("Title", "string", label="Title", length=128),
    Field("Department", "string", label="Department", length=80),
    Field("LeadSource", "picklist", label="Lead Source", length=255, picklist=LEAD_SOURCES),
    Field("Birthdate", "date", label="Birthdate"),
    Field("Description", "textarea", label="Contact Description", length=32000),
    _owner(),
    Field(
        "HasOptedOutOfEmail",
        "boolean",
        label="Email Opt Out",
        nillable=False,
        default=False,
        defaulted_on_create=True,
    ),
    Field(
        "DoNotCall",
        "boolean",
        label="Do Not Call",
        nillable=False,
        default=False,
        defaulted_on_create=True,
    ),
    *_system_fields(),
    EXTERNAL_ID,
]

LEAD_FIELDS = [
    *_head("Lead"),
    *_person_name_fields(),
    Field("Title", "string", label="Title", length=128),
    Field("Company", "string", label="Company", length=255, nillable=False),
    Field("Street", "textarea", label="Street", length=255),
    Field("City", "string", label="City", length=40),
    Field("State", "string", label="State/Province", length=80),
    Field("PostalCode", "string", label="Zip/Postal Code", length=20),
    Field("Country", "string", label="Country", length=80),
    Field("Phone", "phone", label="Phone", length=40),
    Field("MobilePhone", "phone", label="Mobile Phone", length=40),
    Field("Email", "email", label="Email", length=80),
    Field("Website", "url", label="Website", length=255),
    Field("Description", "textarea", label="Description", length=32000),
    Field("LeadSource", "picklist", label="Lead Source", length=255, picklist=LEAD_SOURCES),
    Field(
        "Status",
        "picklist",
        label="Status",
        length=255,
        nillable=False,
        default="Open - Not Contacted",
        defaulted_on_create=True,
        picklist=LEAD_STATUSES,
        restricted=True,
    ),
    Field("Industry", "picklist", label="Industry", length=255, picklist=INDUSTRIES),
    Field("NumberOfEmployees", "int", label="Employees"),
    Field("AnnualRevenue", "currency", label="Annual Revenue"),
    _owner(),
    _ro("IsConverted", "boolean", label="Converted", nillable=False, default=False),
    *_system_fields(),
    EXTERNAL_ID,
]

ACCOUNT_FIELDS = [
    *_head("Account"),
    Field("Name", "string", label="Account Name", length=255, nillable=False),
    Field(
        "RecordTypeId",
        "reference",
        label="Record Type ID",
        length=18,
        reference_to=("RecordType",),
        relationship_name="RecordType",
        defaulted_on_create=True,
    ),
    Field("Type", "picklist", label="Account Type", length=255, picklist=("Prospect", "Customer")),
    Field("BillingStreet", "textarea", label="Billing Street", length=255),
    Field("BillingCity", "string", label="Billing City", length=40),
    Field("BillingState", "string", label="Billing State/Province", length=80),
    Field("BillingPostalCode", "string", label="Billing Zip/Postal Code", length=20),
    Field("BillingCountry", "string", label="Billing Country", length=80),
    Field("Phone", "phone", label="Account Phone", length=40),
    Field("Website", "url", label="Website", length=255),
    Field("Industry", "picklist", label="Industry", length=255, picklist=INDUSTRIES),
    Field("NumberOfEmployees", "int", label="Employees"),
    Field("Description", "textarea", label="Account Description", length=32000),
    _owner(),
    _ro("IsPersonAccount", "boolean", label="Is Person Account", nillable=False, default=False),
    Field("FirstName", "string", label="First Name", length=40),
    Field("LastName", "string", label="Last Name", length=80),
    Field("Salutation", "picklist", label="Salutation", length=40, picklist=SALUTATIONS),
    Field("PersonEmail", "email", label="Email", length=80),
    Field("PersonMobilePhone", "phone", label="Mobile", length=40),
    Field("PersonHomePhone", "phone", label="Home Phone", length=40),
    Field("PersonOtherPhone", "phone", label="Other Phone", length=40),
    Field("PersonTitle", "string", label="Title", length=128),
    Field("PersonDepartment", "string", label="Department", length=80),
    Field("PersonMailingStreet", "textarea", label="Mailing Street", length=255),
    Field("PersonMailingCity", "string", label="Mailing City", length=40),
    Field("PersonMailingState", "string", label="Mailing State/Province", length=80),
    Field("PersonMailingPostalCode", "string", label="Mailing Zip/Postal Code", length=20),
    Field("PersonMailingCountry", "string", label="Mailing Country", length=80),
    _ro(
        "PersonContactId",
        "reference",
        label="Person Contact ID",
        length=18,
        reference_to=("Contact",),
        relationship_name="PersonContact",
    ),
    *_system_fields(),
]

USER_FIELDS = [
    _ro("Id", "id", label="User ID", length=18, nillable=False),
    _ro("Username", "string", label="Username", length=80, nillable=False),
    _ro("LastName", "string", label="Last Name", length=80, nillable=False),
    _ro("FirstName", "string", label="First Name", length=40),
    _ro("Name", "string", label="Full Name", length=121, nillable=False, calculated=True),
    _ro("Alias", "string", label="Alias", length=8, nillable=False),
    _ro("Email", "email", label="Email", length=128, nillable=False),
    _ro("IsActive", "boolean", label="Active", nillable=False, default=True),
    _ro("CreatedDate", "datetime", label="Created Date", nillable=False),
    _ro("LastModifiedDate", "datetime", label="Last Modified Date", nillable=False),
    _ro("SystemModstamp", "datetime", label="System Modstamp", nillable=False),
]


@dataclass
class SObject:
    name: str
    label: str
    label_plural: str
    key_prefix: str
    fields: list[Field]
    writable: bool = True
    by_name: dict[str, Field] = field(init=False)
    by_lower: dict[str, Field] = field(init=False)
    relationships: dict[str, Field] = field(init=False)

    def __post_init__(self) -> None:
        self.by_name = {f.name: f for f in self.fields}
        self.by_lower = {f.name.lower(): f for f in self.fields}
        self.relationships = {
            f.relationship_name.lower(): f for f in self.fields if f.relationship_name
        }

    def field(self, name: str) -> Field | None:
        return self.by_lower.get(name.lower())

    def urls(self, version: str) -> dict[str, str]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "sobject": base,
            "describe": f"{base}/describe",
            "rowTemplate": f"{base}/{{ID}}",
            "listviews": f"{base}/listviews",
        }

    def summary(self, version: str) -> dict[str, Any]:
        return {
            "activateable": False,
            "createable": self.writable,
            "custom": False,
            "customSetting": False,
            "deletable": self.writable,
            "deprecatedAndHidden": False,
            "feedEnabled": True,
            "hasSubtypes": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.label_plural,
            "layoutable": True,
            "mergeable": self.writable,
            "mruEnabled": True,
            "name": self.name,
            "queryable": True,
            "replicateable": True,
            "retrieveable": True,
            "searchable": True,
            "triggerable": True,
            "undeletable": self.writable,
            "updateable": self.writable,
            "urls": self.urls(version),
        }

    def describe(self, version: str, record_types: list[dict[str, Any]]) -> dict[str, Any]:
        out = self.summary(version)
        out["fields"] = [f.describe() for f in self.fields]
        out["recordTypeInfos"] = record_types
        out["childRelationships"] = []
        out["compactLayoutable"] = True
        out["searchLayoutable"] = True
        return out


OBJECTS: dict[str, SObject] = {
    o.name: o
    for o in (
        SObject("Account", "Account", "Accounts", "001", ACCOUNT_FIELDS),
        SObject("Contact", "Contact", "Contacts", "003", CONTACT_FIELDS),
        SObject("Lead", "Lead", "Leads", "00Q", LEAD_FIELDS),
        SObject("User", "User", "Users", "005", USER_FIELDS, writable=False),
    )
}
OBJECTS_LOWER = {name.lower(): o for name, o in OBJECTS.items()}
PREFIXES = {o.key_prefix: o.name for o in OBJECTS.values()}

# Person-account fields of Account mirrored onto the person's read-only Contact. As in a real
# org, the person's mailing address is PersonMailing* (Billing* stays the account's own), and
# title, department and other phone have Person* twins too.
PERSON_CONTACT_MAP = {
    "FirstName": "FirstName",
    "LastName": "LastName",
    "Salutation": "Salutation",
    "PersonEmail": "Email",
    "PersonMobilePhone": "MobilePhone",
    "PersonHomePhone": "HomePhone",
    "PersonOtherPhone": "OtherPhone",
    "Phone": "Phone",
    "PersonTitle": "Title",
    "PersonDepartment": "Department",
    "PersonMailingStreet": "MailingStreet",
    "PersonMailingCity": "MailingCity",
    "PersonMailingState": "MailingState",
    "PersonMailingPostalCode": "MailingPostalCode",
    "PersonMailingCountry": "MailingCountry",
    "OwnerId": "OwnerId",
    "Description": "Description",
}
PERSON_ONLY_FIELDS = frozenset(
    {
        "FirstName",
        "LastName",
        "Salutation",
        "PersonEmail",
        "PersonMobilePhone",
        "PersonHomePhone",
        "PersonOtherPhone",
        "PersonTitle",
        "PersonDepartment",
        "PersonMailingStreet",
        "PersonMailingCity",
        "PersonMailingState",
        "PersonMailingPostalCode",
        "PersonMailingCountry",
    }
)


def get_object(name: str) -> SObject | None:
    return OBJECTS_LOWER.get(name.lower())
