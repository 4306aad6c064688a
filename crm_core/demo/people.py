"""Names, companies, phones and e-mail addresses for demo customers, fast at any scale.

Faker is slow per call (tens of microseconds), so it fills *pools* once per seed (Chinese
names from `zh_CN`, English names from `en_US` + `en_GB`, company names) and customers combine
pool entries with a seeded `random.Random`. Uniqueness of phones, e-mails and Telegram ids
comes from bijections of the customer id (an affine map modulo the size of the number
space), not from a set of everything generated so far: memory stays flat at a million rows.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from faker import Faker

# Mobile prefixes that libphonenumber accepts as valid for every subscriber number
# (checked in tests/crm/test_demo.py).
CN_MOBILE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "176", "177", "178", "180", "181", "182", "183",
    "184", "185", "186", "187", "188", "189", "191", "193", "195", "198", "199",
)  # fmt: skip
UK_MOBILE_PREFIXES = tuple(f"7{d}" for d in (*range(71, 76), *range(77, 90)))
# US area codes with the customer's time zone.
US_AREA_CODES: tuple[tuple[str, str], ...] = (
    ("212", "America/New_York"), ("646", "America/New_York"), ("718", "America/New_York"),
    ("917", "America/New_York"), ("617", "America/New_York"), ("404", "America/New_York"),
    ("305", "America/New_York"), ("312", "America/Chicago"), ("773", "America/Chicago"),
    ("214", "America/Chicago"), ("713", "America/Chicago"), ("512", "America/Chicago"),
    ("303", "America/Denver"), ("602", "America/Phoenix"), ("415", "America/Los_Angeles"),
    ("408", "America/Los_Angeles"), ("650", "America/Los_Angeles"), ("510", "America/Los_Angeles"),
    ("213", "America/Los_Angeles"), ("310", "America/Los_Angeles"), ("619", "America/Los_Angeles"),
    ("702", "America/Los_Angeles"), ("206", "America/Los_Angeles"), ("503", "America/Los_Angeles"),
)  # fmt: skip

ZH_EMAIL_DOMAINS = ("163.com", "126.com", "foxmail.com", "sina.com", "outlook.com")
EN_EMAIL_DOMAINS = (
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
    "hotmail.co.uk",
)

# Affine bijections x -> (a*x + b) mod m; `a` is coprime with every modulus used here.
_MULT = 7919 * 104729  # two primes; coprime with 2, 3 and 5


def scramble(value: int, modulus: int, offset: int = 0, multiplier: int = _MULT) -> int:
    """A bijection of 0..modulus-1 that looks random (unique output for unique input).

    `multiplier` must be coprime with `modulus`.
    """
    return (value * multiplier + offset) % modulus


@dataclass
class NamePools:
    """Pools of names and companies drawn once with Faker for one seed."""

    zh_last: list[str]
    zh_first: list[str]
    zh_roman: list[str]
    en_first: list[str]
    en_last: list[str]
    zh_companies: list[str]
    en_companies: list[str]

    @classmethod
    def build(cls, seed: int, companies_zh: int, companies_en: int) -> NamePools:
        zh = Faker("zh_CN")
        zh.seed_instance(seed)
        en = Faker(["en_US", "en_GB"])
        en.seed_instance(seed + 1)
        zh_last = [zh.last_name() for _ in range(400)]
        zh_first = [zh.first_name() for _ in range(2500)]
        zh_roman = sorted(
            {
                zh.first_romanized_name().lower() + zh.last_romanized_name().lower()
                for _ in range(3000)
            }
        )
        en_first = [_ascii(en.first_name()) for _ in range(1500)]
        en_last = [_ascii(en.last_name()) for _ in range(1500)]
        return cls(
            zh_last=zh_last,
            zh_first=zh_first,
            zh_roman=zh_roman,
            en_first=[n for n in en_first if n],
            en_last=[n for n in en_last if n],
            zh_companies=_unique(zh.company, companies_zh),
            en_companies=_unique(en.company, companies_en),
        )


def _ascii(name: str) -> str:
    return "".join(ch for ch in name if ch.isascii() and (ch.isalpha() or ch in " -'")).strip()


def _unique(make: Callable[[], str], count: int) -> list[str]:
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < count:
        name = str(make())
        attempts += 1
        if name in seen:
            # Faker repeats itself after a few thousand; a branch suffix keeps names unique.
            name = f"{name} ({attempts})"
        seen[name] = None
    return list(seen)


def cn_mobile(customer_id: int, rng: random.Random, offset: int) -> str:
    """+86 mobile: a valid prefix 1[3-9]x and 8 digits unique per customer id."""
    prefix = CN_MOBILE_PREFIXES[rng.randrange(len(CN_MOBILE_PREFIXES))]
    return f"+86{prefix}{scramble(customer_id, 10**8, offset):08d}"


def uk_mobile(customer_id: int, rng: random.Random, offset: int) -> str:
    """+44 7xxx mobile, unique per customer id (below ten million customers)."""
    prefix = UK_MOBILE_PREFIXES[rng.randrange(len(UK_MOBILE_PREFIXES))]
    return f"+44{prefix}{scramble(customer_id, 10**7, offset):07d}"


def us_phone(customer_id: int, rng: random.Random, offset: int) -> tuple[str, str]:
    """(+1 number, time zone): a real area code; exchange and line unique per customer id."""
    area, tz = US_AREA_CODES[rng.randrange(len(US_AREA_CODES))]
    x = scramble(customer_id, 800 * 10_000, offset)
    exchange, line = 200 + x // 10_000, x % 10_000
    return f"+1{area}{exchange}{line:04d}", tz


def email_for(
    customer_id: int, language: str, first: str, last: str, rng: random.Random, pools: NamePools
) -> str:
    """A unique, plausible address: the customer id scrambled into the numeric suffix.

    Local parts are letters (and dots) followed by digits, so two different ids never give the
    same address even when the letters happen to collide.
    """
    number = scramble(customer_id, 10**7, 1_234_567)
    if language == "zh":
        if rng.random() < 0.45:
            return f"{10_000_000 + scramble(customer_id, 10**9, 7_654_321)}@qq.com"
        roman = pools.zh_roman[rng.randrange(len(pools.zh_roman))]
        domain = ZH_EMAIL_DOMAINS[rng.randrange(len(ZH_EMAIL_DOMAINS))]
        return f"{roman}{number}@{domain}"
    local = f"{first}.{last}".lower().replace(" ", "").replace("'", "").replace("-", "")
    domain = EN_EMAIL_DOMAINS[rng.randrange(len(EN_EMAIL_DOMAINS))]
    return f"{local}{number}@{domain}"
