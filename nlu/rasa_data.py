"""Read and write Rasa NLU training data (YAML format 3.x) without importing Rasa.

Supported: ``intent`` blocks (examples as a ``- `` list in a literal block or as a list of
``{text: ...}`` items), entity annotations ``[text](entity)``, ``[text](entity:value)`` and
``[text]{"entity": "...", "value": "..."}``, ``synonym``, ``regex`` and ``lookup`` blocks.
Files without an ``nlu:`` key (domain, config, stories) are ignored when a folder is read.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Rasa's own annotation grammar (rasa/shared/nlu/training_data/entities_parser.py).
_ANNOTATION_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<list>.*?)\])"
)


@dataclass(frozen=True)
class EntitySpan:
    """An annotated entity inside an example's plain text."""

    entity: str
    start: int
    end: int
    text: str
    value: str


@dataclass(frozen=True)
class Example:
    """One training/test utterance with its intent and annotated entities."""

    text: str
    intent: str
    entities: tuple[EntitySpan, ...] = ()


@dataclass
class NluData:
    """Everything the Rasa NLU YAML files of a project define."""

    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)
    """Lower-cased surface form → synonym value."""
    regexes: dict[str, list[str]] = field(default_factory=dict)
    lookups: dict[str, list[str]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    @property
    def intents(self) -> list[str]:
        """Intent names in first-seen order."""
        return list(dict.fromkeys(e.intent for e in self.examples))

    def counts(self) -> Counter[str]:
        """Examples per intent."""
        return Counter(e.intent for e in self.examples)

    def extend(self, other: NluData) -> None:
        """Add another data set (files of one project read separately)."""
        self.examples.extend(other.examples)
        self.synonyms.update(other.synonyms)
        for name, patterns in other.regexes.items():
            self.regexes.setdefault(name, []).extend(patterns)
        for name, words in other.lookups.items():
            self.lookups.setdefault(name, []).extend(words)
        self.files.extend(other.files)


class NluDataError(ValueError):
    """The training data cannot be read; the message names the file and the problem."""


def parse_annotated(text: str, intent: str = "") -> Example:
    """Turn ``"my [gpu](product_category) died"`` into plain text plus entity spans."""
    plain: list[str] = []
    spans: list[EntitySpan] = []
    pos = 0
    length = 0
    for match in _ANNOTATION_RE.finditer(text):
        before = text[pos : match.start()]
        plain.append(before)
        length += len(before)
        surface = match.group("text")
        entity: str | None = match.group("entity")
        value: str | None = match.group("value")
        if match.group("dict") is not None:
            try:
                meta = json.loads("{" + match.group("dict") + "}")
            except json.JSONDecodeError as exc:
                raise NluDataError(f"bad entity annotation {match.group(0)!r}: {exc}") from exc
            entity = str(meta.get("entity", ""))
            raw_value = meta.get("value")
            value = None if raw_value is None else str(raw_value)
        elif match.group("list") is not None:
            try:
                metas = json.loads("[" + match.group("list") + "]")
            except json.JSONDecodeError as exc:
                raise NluDataError(f"bad entity annotation {match.group(0)!r}: {exc}") from exc
            entity = str(metas[0].get("entity", "")) if metas else ""
            raw_value = metas[0].get("value") if metas else None
            value = None if raw_value is None else str(raw_value)
        plain.append(surface)
        if entity:
            spans.append(
                EntitySpan(
                    entity=entity.strip(),
                    start=length,
                    end=length + len(surface),
                    text=surface,
                    value=(value if value is not None else surface).strip(),
                )
            )
        length += len(surface)
        pos = match.end()
    plain.append(text[pos:])
    return Example(text="".join(plain).strip(), intent=intent, entities=tuple(spans))


def _example_lines(raw: Any, where: str) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        lines = []
        for line in raw.splitlines():
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("- "):
                stripped = stripped[2:]
            elif stripped == "-":
                continue
            lines.append(stripped.strip())
        return [x for x in lines if x]
    if isinstance(raw, list):
        out = []
        for item in raw:
            if isinstance(item, dict) and "text" in item:
                out.append(str(item["text"]).strip())
            elif isinstance(item, str):
                out.append(item.strip())
            else:
                raise NluDataError(f"{where}: unsupported example {item!r}")
        return [x for x in out if x]
    raise NluDataError(f"{where}: 'examples' must be a block of '- ' lines or a list")


def load_nlu_file(path: Path) -> NluData:
    """Read one Rasa NLU YAML file (an empty NluData if it has no ``nlu:`` key)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise NluDataError(f"{path}: cannot read YAML: {exc}") from exc
    data = NluData(files=[path])
    if not isinstance(doc, dict) or "nlu" not in doc:
        return data
    blocks = doc.get("nlu") or []
    if not isinstance(blocks, list):
        raise NluDataError(f"{path}: 'nlu' must be a list of blocks")
    for index, block in enumerate(blocks):
        where = f"{path}: nlu[{index}]"
        if not isinstance(block, dict):
            raise NluDataError(f"{where}: a block must be a mapping")
        lines = _example_lines(block.get("examples"), where)
        if "intent" in block:
            intent = str(block["intent"]).strip()
            for line in lines:
                try:
                    example = parse_annotated(line, intent)
                except NluDataError as exc:
                    raise NluDataError(f"{where}: {exc}") from exc
                if example.text:
                    data.examples.append(example)
                    for span in example.entities:
                        if span.value != span.text:
                            data.synonyms[span.text.lower()] = span.value
        elif "synonym" in block:
            value = str(block["synonym"]).strip()
            for line in lines:
                data.synonyms[line.lower()] = value
        elif "regex" in block:
            data.regexes.setdefault(str(block["regex"]).strip(), []).extend(lines)
        elif "lookup" in block:
            data.lookups.setdefault(str(block["lookup"]).strip(), []).extend(lines)
    return data


def nlu_files(source: Path | str) -> list[Path]:
    """The YAML files of `source` (a file, or every ``*.yml``/``*.yaml`` under a folder)."""
    path = Path(source)
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    raise NluDataError(f"{path}: no such file or folder")


def load_nlu_data(sources: Path | str | Sequence[Path | str]) -> NluData:
    """Read Rasa NLU data from files and/or folders (folders recursively, sorted)."""
    items = [sources] if isinstance(sources, (str, Path)) else list(sources)
    data = NluData()
    for source in items:
        for path in nlu_files(source):
            data.extend(load_nlu_file(path))
    return data


def _annotate(example: Example) -> str:
    text = example.text
    out: list[str] = []
    pos = 0
    for span in sorted(example.entities, key=lambda s: s.start):
        if span.start < pos:
            continue
        out.append(text[pos : span.start])
        surface = text[span.start : span.end]
        if span.value == surface:
            out.append(f"[{surface}]({span.entity})")
        else:
            meta = json.dumps({"entity": span.entity, "value": span.value}, ensure_ascii=False)
            out.append(f"[{surface}]{meta}")
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def _clean_line(text: str) -> str:
    # One example per line; brackets would be read back as entity annotations.
    return " ".join(text.split()).replace("[", "(").replace("]", ")")


def dump_nlu_yaml(
    examples: Iterable[Example],
    *,
    synonyms: dict[str, str] | None = None,
    regexes: dict[str, list[str]] | None = None,
    lookups: dict[str, list[str]] | None = None,
) -> str:
    """Rasa NLU YAML (format 3.1) for `examples` grouped by intent, in first-seen order."""
    by_intent: dict[str, list[str]] = {}
    for example in examples:
        if example.entities:
            line = _annotate(
                Example(
                    text=" ".join(example.text.split()),
                    intent=example.intent,
                    entities=example.entities,
                )
            )
        else:
            line = _clean_line(example.text)
        if line.strip():
            by_intent.setdefault(example.intent, []).append(line)
    parts = ['version: "3.1"', "nlu:"]
    for intent, lines in by_intent.items():
        parts.append(f"- intent: {json.dumps(intent, ensure_ascii=False)}")
        parts.append("  examples: |")
        parts.extend(f"    - {line}" for line in lines)
    grouped: dict[str, list[str]] = {}
    for surface, value in (synonyms or {}).items():
        grouped.setdefault(value, []).append(surface)
    for kind, table in (("synonym", grouped), ("regex", regexes or {}), ("lookup", lookups or {})):
        for name, entries in table.items():
            parts.append(f"- {kind}: {json.dumps(name, ensure_ascii=False)}")
            parts.append("  examples: |")
            parts.extend(f"    - {entry}" for entry in entries)
    return "\n".join(parts) + "\n"
