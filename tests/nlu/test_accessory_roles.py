""" "X for my Y": the accessory category and the device, told apart for every backend.

`nlu.entities.assign_roles` reads only the message and the entity spans, so the embedded
backend (rule extractor), Rasa (its own spans) and the router all give the same roles.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nlu.embedded import EmbeddedParser
from nlu.entities import ROLE_ACCESSORY, ROLE_DEVICE, RuleEntityExtractor, assign_roles
from nlu.rasa_client import RasaClient
from nlu.rasa_data import load_nlu_data
from nlu.rasa_service import RasaModel, RasaServer, train_rasa
from nlu.schemas import ParseResult
from nlu.service import NluService

from .conftest import RASA_PROJECT, ROOT
from .test_rasa_client import rasa_body

EXTRACTOR = RuleEntityExtractor.from_data(load_nlu_data(RASA_PROJECT / "data"))

# (message, accessory, device category, device model) as customers write them.
ACCESSORY_REQUESTS = [
    ("给我的显卡配个电源，预算500", "psu", "gpu", None),
    ("a PSU for my graphics card, budget 500", "psu", "gpu", None),
    ("need a cooler for my 7800X3D", "cooler", None, "Ryzen 7 7800X3D"),
    ("RAM for my B650 board", "ram", None, "B650"),
    ("B650主板配什么内存", "ram", "motherboard", "B650"),
    ("4090配多大的电源", "psu", None, "RTX 4090"),
    ("买个电源给我的4070用", "psu", None, "RTX 4070"),
    ("想给4070配个机箱，500以内", "case", None, "RTX 4070"),
    ("which case fits my RTX 4070", "case", None, "RTX 4070"),
    ("my 4090 needs a new psu", "psu", None, "RTX 4090"),
    ("i need a psu, my gpu is a 4070", "psu", "gpu", "RTX 4070"),
    ("适合7800X3D的散热器有哪些", "cooler", None, "Ryzen 7 7800X3D"),
    ("need new ram for my motherboard", "ram", "motherboard", None),
    ("a psu for my RTX 9999 please", "psu", None, "RTX 9999"),  # not in the catalog: said so
]

NOT_ACCESSORY_REQUESTS = [
    "我的显卡坏了",
    "7800X3D加B650套装多少钱",
    "能开发票吗，公司要买一批键盘鼠标",
    "in case my gpu dies, what's the warranty",
    "my psu makes a clicking noise",
    "want to buy 2 Corsair RM850x units",
    "do you have 4090 in stock",
]


def _roles(result: ParseResult) -> tuple[str | None, str | None, str | None]:
    return (
        result.with_role("product_category", ROLE_ACCESSORY),
        result.with_role("product_category", ROLE_DEVICE),
        result.with_role("product_model", ROLE_DEVICE),
    )


def _parse(text: str) -> ParseResult:
    entities = assign_roles(text, EXTRACTOR.extract(text))
    return ParseResult(
        text=text, intent="purchase_inquiry", confidence=1.0, entities=entities, backend="t"
    )


@pytest.mark.parametrize(("text", "accessory", "category", "model"), ACCESSORY_REQUESTS)
def test_the_accessory_and_the_device_are_told_apart(
    text: str, accessory: str, category: str | None, model: str | None
) -> None:
    assert _roles(_parse(text)) == (accessory, category, model)


@pytest.mark.parametrize("text", NOT_ACCESSORY_REQUESTS)
def test_messages_that_are_not_x_for_my_y_get_no_roles(text: str) -> None:
    entities = EXTRACTOR.extract(text)
    assert assign_roles(text, entities) == entities


def test_roles_do_not_change_the_entities_the_bot_already_reads() -> None:
    text = "给我的显卡配个电源"
    plain = EXTRACTOR.extract(text)
    roled = assign_roles(text, plain)
    assert [(e.entity, e.value, e.start, e.end) for e in roled] == [
        (e.entity, e.value, e.start, e.end) for e in plain
    ]


async def test_rasa_spans_get_the_same_roles_through_the_router(
    tiny_parser: EmbeddedParser,
) -> None:
    text = "need a psu for my rtx 4070, budget 600"
    entities = [
        {"entity": "product_category", "value": "psu", "start": 7, "end": 10,
         "extractor": "RegexEntityExtractor"},
        {"entity": "product_model", "value": "RTX 4070", "start": 18, "end": 26,
         "extractor": "RegexEntityExtractor"},
    ]  # fmt: skip
    body = rasa_body(text, "purchase_inquiry", 0.95, entities=entities)
    client = RasaClient(
        "http://rasa.test",
        "t",
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body)),
    )
    result = await NluService(tiny_parser, client).parse(text)
    assert result.backend == "rasa"
    assert _roles(result) == ("psu", None, "RTX 4070")


@pytest.fixture(scope="module")
def product_parser() -> EmbeddedParser:
    """The embedded backend on the product's data (the model cache the bot tests share)."""
    cache = ROOT / "var" / "test-cache" / "hwcrm-nlu-embedded"
    cache.mkdir(parents=True, exist_ok=True)
    parser = EmbeddedParser(RASA_PROJECT / "data", cache)
    parser.model()
    return parser


@pytest.mark.parametrize(
    ("text", "accessory", "device"),
    [
        ("给我的显卡配个电源，预算500", "psu", ("gpu", None)),
        ("a PSU for my graphics card, budget 500", "psu", ("gpu", None)),
        ("need a cooler for my 7800X3D", "cooler", (None, "Ryzen 7 7800X3D")),
        ("想给4070配个机箱，500以内", "case", (None, "RTX 4070")),
    ],
)
async def test_the_embedded_backend_reads_an_accessory_purchase_with_roles(
    product_parser: EmbeddedParser, text: str, accessory: str, device: tuple[str, str]
) -> None:
    result = await NluService(product_parser).parse(text)
    assert result.backend == "embedded" and result.intent == "purchase_inquiry"
    assert _roles(result) == (accessory, *device)


# --- the real Rasa service ------------------------------------------------------------------


@pytest.fixture(scope="module")
def rasa_server(
    rasa_venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RasaServer, str]]:
    model: RasaModel = train_rasa(rasa_venv, RASA_PROJECT, ROOT / "var" / "nlu" / "rasa")
    token = secrets.token_urlsafe(16)
    log = tmp_path_factory.mktemp("rasa-acc") / "server.log"
    with RasaServer(rasa_venv, model.path, token=token, log_path=log) as server:
        server.wait_ready(timeout_s=600)
        yield server, token


@pytest.mark.rasa
@pytest.mark.slow
@pytest.mark.timeout(3600)
async def test_real_rasa_reads_an_accessory_purchase_as_a_purchase_with_roles(
    rasa_server: tuple[RasaServer, str], tiny_parser: EmbeddedParser
) -> None:
    server, token = rasa_server
    async with RasaClient(server.url, token, timeout_s=5.0) as client:
        service = NluService(tiny_parser, client)
        zh = await service.parse("给我的显卡配个电源，预算500")
        en = await service.parse("need a cooler for my 7800X3D")
    assert zh.backend == en.backend == "rasa"
    assert zh.intent == en.intent == "purchase_inquiry"
    assert _roles(zh)[:2] == ("psu", "gpu")
    assert _roles(en)[0] == "cooler" and _roles(en)[2] == "Ryzen 7 7800X3D"
