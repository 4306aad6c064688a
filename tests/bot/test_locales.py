"""Locale files: every key in zh and en with the same placeholders, every key the customer
flows use exists, and no customer-facing Chinese text hides in the flows' code."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot.i18n import LANGUAGES, Translator
from bot.keyboards import MENU_ACTIONS
from bot.routers.start import COMMANDS
from crm_core.catalog.categories import CATEGORY_KEYS
from crm_core.orders.models import ORDER_STATUSES, RETURN_STATUSES
from crm_core.orders.schemas import ReturnCode

BOT = Path(__file__).resolve().parents[2] / "bot"
FLOW_FILES = sorted(
    [
        *(
            BOT / "routers" / f"{name}.py"
            for name in (
                "start",
                "privacy",
                "faults",
                "warranty",
                "orders",
                "products",
                "sales",
                "feedback",
                "free_text",
            )
        ),
        *(BOT / "flows").glob("*.py"),
        BOT / "keyboards.py",
        BOT / "callbacks.py",
    ]
)
# Keys built at run time: the f-string template → every value it can take.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "category.{}": CATEGORY_KEYS,
    "command.{}": COMMANDS,
    "language.name.{}": LANGUAGES,
    "menu.{}": (*MENU_ACTIONS, "link"),
    "orders.status.{}": ORDER_STATUSES,
    "orders.return_status.{}": RETURN_STATUSES,
    "orders.eligibility.{}": tuple(code.value for code in ReturnCode),
}
KEY_RE = re.compile(r"[a-z_]+(\.[a-z_0-9{}]+)+")
CJK_RE = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def test_every_key_exists_in_both_languages_with_the_same_placeholders() -> None:
    assert Translator().check() == []


def _keys_in_code() -> set[str]:
    prefixes = {key.split(".")[0] for key in Translator().keys("en")}
    found: set[str] = set()
    for path in FLOW_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            value: str | None = None
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                value = node.value
            elif isinstance(node, ast.JoinedStr):
                value = "".join(
                    part.value if isinstance(part, ast.Constant) else "{}" for part in node.values
                )
            if value and KEY_RE.fullmatch(value) and value.split(".")[0] in prefixes:
                found.add(value)
    return found


def test_every_key_the_flows_use_exists() -> None:
    translator = Translator()
    used = _keys_in_code()
    assert len(used) > 100
    missing: list[str] = []
    for key in sorted(used):
        if "{}" in key:
            assert key in TEMPLATES, f"add {key!r} and its values to TEMPLATES"
            expanded = [key.replace("{}", value) for value in TEMPLATES[key]]
        else:
            expanded = [key]
        for lang in LANGUAGES:
            missing += [f"{k} ({lang})" for k in expanded if k not in translator.keys(lang)]
    assert missing == []


# What customers type, not what they read: the budget parser's zh/en vocabulary.
PARSING_TABLES = {"_NUMBER", "_BUDGET_PATTERNS", "_MULTIPLIERS", "_THOUSANDS"}


def _customer_facing_strings(tree: ast.Module) -> list[str]:
    """String constants, without docstrings and without the parsing tables."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id in PARSING_TABLES for target in node.targets
        ):
            skip.update(id(sub) for sub in ast.walk(node))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]


@pytest.mark.parametrize("path", FLOW_FILES, ids=lambda p: p.name)
def test_no_chinese_text_in_the_flows_code(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert [s for s in _customer_facing_strings(tree) if CJK_RE.search(s)] == []
