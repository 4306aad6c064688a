"""Text utilities: language detection (zh/en) and the lexical tokenizer.

The tokenizer feeds BM25. It must keep what dense retrieval misses matchable:
- hardware model numbers: "RTX 4070", "rtx4070", "4070ti", "4070 Ti" share tokens
  (`rtx`, `4070`, `rtx4070`, `4070ti`), so any spelling finds any other;
- Windows stop codes: hex numbers are normalised without leading zeros, so "0x7B",
  "0x0000007B" and the bare "0000007B" are all the token `0x7b`;
- Chinese: jieba's search-mode segmentation plus character bigrams (robust to typos and to
  words jieba does not know), with a small stop-word list.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from typing import Any

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RE = re.compile(f"[{CJK}]")
_KANA_HANGUL_RE = re.compile("[\u3040-\u30ff\uac00-\ud7af]")
_LATIN_WORD_RE = re.compile(r"[a-zA-Z]{2,}")
_OTHER_LETTER_RE = re.compile(
    r"[\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\u0dff\u0e00-\u0e7f]"
)

# Frequent English function words: a Latin-script text is English when enough of its words
# are among them (French, German or Spanish text has far fewer).
_EN_COMMON = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "you",
        "your",
        "my",
        "i",
        "we",
        "our",
        "they",
        "not",
        "no",
        "do",
        "does",
        "did",
        "can",
        "if",
        "when",
        "how",
        "what",
        "why",
        "which",
        "from",
        "by",
        "as",
        "at",
        "will",
        "would",
        "should",
        "could",
        "have",
        "has",
        "had",
        "there",
        "their",
        "then",
        "than",
        "so",
        "but",
        "all",
        "any",
        "may",
        "must",
        "into",
        "out",
        "up",
        "use",
        "used",
        "using",
        "please",
        "after",
        "before",
        "new",
        "also",
        "only",
        "more",
    ]
)

_EN_STOP = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "it",
        "this",
        "that",
        "these",
        "those",
        "i",
        "me",
        "my",
        "we",
        "our",
        "you",
        "your",
        "he",
        "she",
        "they",
        "them",
        "its",
        "at",
        "by",
        "as",
        "from",
        "but",
        "if",
        "then",
        "so",
        "do",
        "does",
        "did",
        "doing",
        "can",
        "could",
        "would",
        "should",
        "will",
        "shall",
        "have",
        "has",
        "had",
        "having",
        "am",
        "not",
        "no",
        "yes",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "why",
        "when",
        "where",
        "there",
        "here",
        "all",
        "any",
        "some",
        "just",
        "very",
        "too",
        "also",
        "into",
        "out",
        "about",
        "up",
        "down",
        "over",
        "again",
        "once",
        "only",
        "own",
        "same",
        "than",
        "s",
        "t",
        "don",
        "ll",
        "ve",
        "re",
        "d",
        "m",
        "please",
        "hi",
        "hello",
        "thanks",
        "thank",
        "get",
        "got",
        "im",
        "ive",
        "dont",
        "cant",
        "wont",
        "doesnt",
        "isnt",
    ]
)

_ZH_STOP = frozenset(
    [
        "的",
        "了",
        "吗",
        "呢",
        "吧",
        "啊",
        "呀",
        "嘛",
        "我",
        "你",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "是",
        "在",
        "有",
        "和",
        "与",
        "及",
        "就",
        "都",
        "也",
        "还",
        "又",
        "把",
        "被",
        "让",
        "给",
        "对",
        "从",
        "到",
        "这",
        "那",
        "这个",
        "那个",
        "一个",
        "怎么",
        "怎么办",
        "怎样",
        "如何",
        "什么",
        "为什么",
        "吗？",
        "请问",
        "一下",
        "能",
        "会",
        "要",
        "可以",
        "是不是",
        "有没有",
        "没有",
        "不",
        "很",
        "太",
        "之",
        "其",
        "而",
        "或",
        "等",
        "个",
        "上",
        "下",
        "中",
        "里",
    ]
)

_TOKEN_RE = re.compile(
    rf"(?P<hex>0x[0-9a-f]+)|(?P<word>[a-z0-9]+(?:[-_/.][a-z0-9]+)*)|(?P<cjk>[{CJK}]+)"
)
_BARE_STOP_CODE_RE = re.compile(r"^0{2,}[0-9a-f]{1,6}$")
_RUNS_RE = re.compile(r"[a-z]+|[0-9]+")

_jieba_lock = threading.Lock()
_jieba: Any = None


def _jieba_module() -> Any:
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            _jieba = jieba
    return _jieba


def normalise(text: str) -> str:
    """NFKC (full-width → ASCII) and lower case."""
    return unicodedata.normalize("NFKC", text).lower()


def normalise_hex(token: str) -> str:
    """`0x0000007B` / `0x7b` / `0000007b` → `0x7b`."""
    digits = token[2:] if token.startswith("0x") else token
    return "0x" + (digits.lstrip("0") or "0")


def _stem(word: str) -> str:
    """A light English suffix stripper (applied to documents and queries alike)."""
    if len(word) <= 4 or not word.isalpha():
        return word
    for suffix, repl in (
        ("ies", "y"),
        ("sses", "ss"),
        ("ing", ""),
        ("ed", ""),
        ("es", ""),
        ("s", ""),
    ):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            if suffix == "es" and not word.endswith(("shes", "ches", "xes", "sses", "zes")):
                continue
            return word[: len(word) - len(suffix)] + repl
    return word


def _word_tokens(word: str) -> list[str]:
    out: list[str] = []
    parts = re.split(r"[-_/.]", word)
    if _BARE_STOP_CODE_RE.match(word) and len(word) == 8:
        return [normalise_hex(word)]
    for part in parts:
        if not part:
            continue
        if _BARE_STOP_CODE_RE.match(part) and len(part) == 8:
            out.append(normalise_hex(part))
            continue
        if part in _EN_STOP:
            continue
        out.append(_stem(part))
        runs = _RUNS_RE.findall(part)
        if len(runs) > 1:
            out.extend(r for r in runs if len(r) >= 2 and r not in _EN_STOP)
    if len(parts) > 1:
        joined = "".join(parts)
        if any(c.isdigit() for c in joined):
            out.append(joined)
    return out


def _cjk_tokens(run: str) -> list[str]:
    jieba = _jieba_module()
    out = [w for w in jieba.lcut_for_search(run) if w.strip() and w not in _ZH_STOP]
    out.extend(run[i : i + 2] for i in range(len(run) - 1))
    return out


def tokenize(text: str) -> list[str]:
    """Tokens for BM25 (documents and queries alike)."""
    text = normalise(text)
    tokens: list[str] = []
    prev_word: str | None = None
    for match in _TOKEN_RE.finditer(text):
        kind = match.lastgroup
        value = match.group()
        if kind == "hex":
            tokens.append(normalise_hex(value))
            prev_word = None
        elif kind == "word":
            tokens.extend(_word_tokens(value))
            # "RTX 4070" → rtx4070, "4070 Ti" → 4070ti: model numbers written apart.
            if prev_word is not None and _joinable(prev_word, value):
                tokens.append(prev_word + value)
            prev_word = value
        else:
            tokens.extend(_cjk_tokens(value))
            prev_word = None
    return tokens


def _joinable(left: str, right: str) -> bool:
    if not (left.isalnum() and right.isalnum()):
        return False
    left_digit = any(c.isdigit() for c in left)
    right_digit = any(c.isdigit() for c in right)
    if left_digit and right.isalpha() and len(right) <= 5 and right not in _EN_STOP:
        return True  # 4070 ti, 7800 x3d, 9070 xt
    return bool(left.isalpha() and len(left) <= 5 and right_digit and left not in _EN_STOP)


_IDENTIFIER_RE = re.compile(
    r"0x[0-9a-f]+|\b0{2,}[0-9a-f]{1,6}\b|\b(?=[a-z0-9]*\d)(?=[a-z0-9]*[a-z])[a-z0-9]{3,}\b|\b\d{4}\b"
)


def has_identifier(text: str) -> bool:
    """Does the text name something exactly: a stop code, a model number (4070ti, B650)?"""
    return _IDENTIFIER_RE.search(normalise(text)) is not None


def tokenize_many(texts: Iterable[str]) -> list[list[str]]:
    return [tokenize(t) for t in texts]


def detect_language(text: str) -> str | None:
    """`zh`, `en`, or None when the text is in neither (or too short to tell)."""
    cjk = len(_CJK_RE.findall(text))
    kana = len(_KANA_HANGUL_RE.findall(text))
    words = [w.lower() for w in _LATIN_WORD_RE.findall(text)]
    other = len(_OTHER_LETTER_RE.findall(text))
    if kana > max(3, 0.05 * (cjk + kana)):
        return None  # Japanese or Korean
    if cjk >= 5 and cjk >= 0.5 * len(words) and cjk > other:
        return "zh"
    if not words or other > sum(len(w) for w in words):
        return "zh" if cjk >= 2 and not words else None
    if len(words) < 8:
        return "en"
    common = sum(1 for w in words if w in _EN_COMMON)
    return "en" if common / len(words) >= 0.08 else None


def query_language(text: str) -> str:
    """The language of a customer query: Chinese as soon as it has Chinese characters."""
    return "zh" if len(_CJK_RE.findall(text)) >= 2 else "en"
