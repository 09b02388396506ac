"""Realistic generated people, shared by every sandbox so that seeding two providers with the same
seed yields deliberate overlaps: the same person in Google and Salesforce with the email in
another case and the phone in another format, as it happens in a real sales team.

Deterministic: the same (seed, provider, index) always gives the same record, without keeping a
random generator's state between calls, so 100,000 records can be produced lazily.
"""

from __future__ import annotations

import itertools
import random
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field

import phonenumbers

FIRST_NAMES = [
    "José",
    "Zoë",
    "Łukasz",
    "Søren",
    "Chloé",
    "Renée",
    "Björn",
    "İsmail",
    "Ana-María",
    "François",
    "Ólafur",
    "Dmitri",
    "Mei",
    "Aoife",
    "Siobhán",
    "Jürgen",
    "Małgorzata",
    "Nuño",
    "Anaïs",
    "Ayşe",
    "John",
    "Mary",
    "James",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Sarah",
    "Pam",
    "Jim",
    "Dwight",
    "Angela",
    "Oscar",
    "Kelly",
    "Stanley",
    "Phyllis",
    "Meredith",
    "Creed",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Chen",
    "Wei",
    "Lucía",
    "Mateo",
    "Дмитрий",
    "Анна",
    "太郎",
    "花子",
    "Nguyễn",
]
LAST_NAMES = [
    "García",
    "Müller",
    "Wróbel",
    "Kierkegård",
    "Dubois",
    "O'Connor",
    "Åkesson",
    "Yılmaz",
    "Núñez",
    "Lefèvre",
    "Jónsson",
    "Ivanov",
    "Ní Bhriain",
    "Schröder",
    "Brzęczyszczykiewicz",
    "de la Peña",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Halpert",
    "Beesly",
    "Schrute",
    "Martin",
    "Martinez",
    "Kapoor",
    "Hudson",
    "Vance",
    "Palmer",
    "Tanaka",
    "Suzuki",
    "Sharma",
    "Patel",
    "Haddad",
    "Khan",
    "Wang",
    "Li",
    "Fernández",
    "Rossi",
    "Иванова",
    "山田",
    "Trần",
    "van der Berg",
    "D'Amico",
    "St. John",
]
COMPANIES = [
    ("Dunder Mifflin", "dundermifflin.com"),
    ("Acme Corp", "acme.example"),
    ("Initech", "initech.example"),
    ("Globex Corporation", "globex.example"),
    ("Umbrella GmbH", "umbrella.de"),
    ("Société Générale Conseil", "sgconseil.fr"),
    ("Müller & Söhne KG", "mueller-soehne.de"),
    ("Nordisk Ålesund AS", "nordisk.no"),
    ("Tanaka Shōji K.K.", "tanaka-shoji.jp"),
    ("Stark Industries", "stark.example"),
    ("Wayne Enterprises", "wayne.example"),
    ("Hooli", "hooli.example"),
    ("Pied Piper", "piedpiper.example"),
    ("Vandelay Industries", "vandelay.example"),
    ("Wonka Industries", "wonka.example"),
    ("Cyberdyne Systems", "cyberdyne.example"),
    ("Soylent Corp", "soylent.example"),
    ("Tyrell Corporation", "tyrell.example"),
    ("Los Pollos Hermanos", "lospollos.example"),
    ("Oceanic Airlines", "oceanic.example"),
    ("Gringotts Bank", "gringotts.example"),
    ("Bluth Company", "bluth.example"),
    ("Prestige Worldwide", "prestige.example"),
    ("Sterling Cooper", "sterlingcooper.example"),
    ("Monsters, Inc.", "monsters.example"),
    ("Krusty Krab", "krustykrab.example"),
    ("Açaí Brasil Ltda", "acaibrasil.com.br"),
    ("Zürich Präzision AG", "zh-praezision.ch"),
]
TITLES = [
    "Account Executive",
    "VP Sales",
    "Head of Procurement",
    "CTO",
    "Office Manager",
    "Regional Manager",
    "Sales Engineer",
    "Directrice commerciale",
    "Einkaufsleiter",
    "Customer Success Manager",
    "CFO",
    "Operations Lead",
    "Buyer",
    "Founder",
]
DEPARTMENTS = ["Sales", "Procurement", "Engineering", "Finance", "Operations", "Marketing", ""]
CITIES = {
    "US": [
        ("New York", "10001", "350 5th Ave"),
        ("San Francisco", "94105", "1 Market St"),
        ("Scranton", "18503", "1725 Slough Ave"),
        ("Austin", "73301", "500 Congress Ave"),
    ],
    "GB": [("London", "EC1A 1BB", "10 Downing St"), ("Manchester", "M1 1AE", "1 Piccadilly")],
    "DE": [("Berlin", "10115", "Friedrichstraße 43"), ("München", "80331", "Marienplatz 8")],
    "FR": [("Paris", "75008", "12 rue de Rivoli"), ("Lyon", "69002", "3 place Bellecour")],
    "JP": [("Tokyo", "100-0005", "1-1 Marunouchi")],
    "BR": [("São Paulo", "01310-100", "Av. Paulista 1000")],
    "IN": [("Bengaluru", "560001", "MG Road 12")],
    "ES": [("Madrid", "28013", "Gran Vía 1")],
}
# (region, national number templates: X is any digit, N is 2-9) that phonenumbers accepts as valid.
PHONE_TEMPLATES = {
    "US": ["212NXXXXXX", "415NXXXXXX", "617NXXXXXX", "312NXXXXXX", "512NXXXXXX", "570NXXXXXX"],
    "GB": ["2079460XXX", "7700900XXX", "1614960XXX"],
    "DE": ["30XXXXXXXX", "151XXXXXXXX", "89XXXXXXX"],
    "FR": ["1XXXXXXXX", "6XXXXXXXX", "4XXXXXXXX"],
    "JP": ["3XXXXXXXX", "90XXXXXXXX"],
    "BR": ["11NXXXXXXX", "119XXXXXXXX"],
    "IN": ["98XXXXXXXX", "80XXXXXXXX"],
    "ES": ["91XXXXXXX", "6XXXXXXXX"],
}
REGIONS = list(PHONE_TEMPLATES)
REGION_WEIGHTS = [50, 10, 10, 8, 5, 5, 6, 6]
_REGION_CUM_WEIGHTS = list(itertools.accumulate(REGION_WEIGHTS))  # what choices() derives per call
PROVIDER_NUMBERS = {"google": 1, "microsoft": 2, "salesforce": 3, "aircall": 4}


@dataclass(frozen=True)
class Phone:
    e164: str
    region: str
    label: str  # work | mobile | home


@dataclass(frozen=True)
class Email:
    address: str
    label: str  # work | personal


@dataclass(frozen=True)
class Person:
    universe_index: int
    first_name: str
    last_name: str
    company: str
    company_domain: str
    title: str
    department: str
    region: str
    emails: tuple[Email, ...]
    phones: tuple[Phone, ...]
    street: str
    city: str
    postal_code: str
    notes: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def ascii_fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _fill(template: str, rng: random.Random) -> str:
    out = []
    for ch in template:
        if ch == "X":
            out.append(str(rng.randrange(10)))
        elif ch == "N":
            out.append(str(rng.randrange(2, 10)))
        else:
            out.append(ch)
    return "".join(out)


def _phone(region: str, rng: random.Random, label: str) -> Phone:
    code = phonenumbers.country_code_for_region(region)
    for _ in range(50):
        national = _fill(rng.choice(PHONE_TEMPLATES[region]), rng)
        # What phonenumbers.parse would build (no template starts with 0), without its cost.
        number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
        if phonenumbers.is_valid_number(number):
            return Phone(
                phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
                region,
                label,
            )
    raise RuntimeError(f"could not generate a valid {region} phone number")  # pragma: no cover


def person(seed: int, universe_index: int) -> Person:
    """The person at ``universe_index`` of the universe named by ``seed``."""
    rng = random.Random(f"{seed}:person:{universe_index}")
    first = rng.choice(FIRST_NAMES)
    last = rng.choice(LAST_NAMES)
    company, domain = rng.choice(COMPANIES)
    region = rng.choices(REGIONS, cum_weights=_REGION_CUM_WEIGHTS)[0]
    local_first = ascii_fold(first) or f"p{universe_index}"
    local_last = ascii_fold(last) or "contact"
    emails = [Email(f"{local_first}.{local_last}.{universe_index}@{domain}", "work")]
    if rng.random() < 0.4:
        emails.append(Email(f"{local_first}{local_last}{universe_index}@gmail.com", "personal"))
    phones = [_phone(region, rng, "work")]
    if rng.random() < 0.6:
        phones.append(_phone(region, rng, "mobile"))
    if rng.random() < 0.15:
        phones.append(_phone(rng.choice(REGIONS), rng, "home"))
    city, postal, street = rng.choice(CITIES[region])
    return Person(
        universe_index=universe_index,
        first_name=first,
        last_name=last,
        company=company,
        company_domain=domain,
        title=rng.choice(TITLES),
        department=rng.choice(DEPARTMENTS),
        region=region,
        emails=tuple(emails),
        phones=tuple(phones),
        street=street,
        city=city,
        postal_code=postal,
        notes=rng.choice(["", "", "Met at SaaStr", "Prefers email", "Renewal due in Q3"]),
    )


def people_for(
    provider: str, count: int, seed: int = 0, overlap: float = 0.3, start: int = 0
) -> Iterator[Person]:
    """``count`` people for one provider. A share ``overlap`` of them come from the pool every
    provider draws from with this seed (so they appear in several systems); the rest are this
    provider's own."""
    if not 0.0 <= overlap <= 1.0:
        raise ValueError("overlap must be between 0 and 1")
    number = PROVIDER_NUMBERS.get(provider, 9)
    for i in range(start, start + count):
        # The pick is shared by every provider: an overlapping person is in all of them.
        pick = random.Random(f"{seed}:shared:{i}").random()
        universe_index = i if pick < overlap else number * 10_000_000 + i
        yield person(seed, universe_index)


def _parsed(phone: Phone) -> phonenumbers.PhoneNumber:
    """``phonenumbers.parse(phone.e164)``, built directly when the number is one of ours (a
    bulk seed formats hundreds of thousands of numbers; parsing was most of its time)."""
    prefix = f"+{phonenumbers.country_code_for_region(phone.region)}"
    national = phone.e164[len(prefix) :]
    if phone.e164.startswith(prefix) and national.isdigit() and not national.startswith("0"):
        return phonenumbers.PhoneNumber(country_code=int(prefix[1:]), national_number=int(national))
    return phonenumbers.parse(phone.e164)


def format_phone(phone: Phone, style: int, home_region: str = "US") -> str:
    """The number as a person would have typed it: styles 0..3 give national (in the home
    region), international with spaces, E.164, and a dotted or dashed variant."""
    number = _parsed(phone)
    fmt = phonenumbers.PhoneNumberFormat
    if style % 4 == 0:
        if phone.region == home_region:
            return phonenumbers.format_number(number, fmt.NATIONAL)
        return phonenumbers.format_number(number, fmt.INTERNATIONAL)
    if style % 4 == 1:
        return phonenumbers.format_number(number, fmt.INTERNATIONAL)
    if style % 4 == 2:
        return phone.e164
    return phonenumbers.format_number(number, fmt.INTERNATIONAL).replace(" ", ".").replace("-", ".")


def vary_email(address: str, style: int) -> str:
    """The same mailbox as another system may hold it (emails are case-insensitive)."""
    if style % 3 == 1:
        local, _, domain = address.partition("@")
        return f"{local.title()}@{domain.upper()}"
    return address
