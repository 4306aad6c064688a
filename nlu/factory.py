"""Build the NLU service from settings (called by the composition root and the CLI).

The settings type lives in ``app.settings`` (``NluSection``); this module only needs its
fields, so it takes anything shaped like it (:class:`NluSettings`) and never imports ``app``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import SecretStr

from knowledge_base.embedders import Embedder
from nlu.breaker import CircuitBreaker
from nlu.embedded import EmbeddedConfig, EmbeddedParser
from nlu.entities import SynonymTable
from nlu.rasa_client import RasaClient, RetryPolicy
from nlu.rasa_data import load_nlu_data
from nlu.rasa_service import TOKEN_FILE, resolve_token
from nlu.service import NluMetrics, NluService

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class NluSettings(Protocol):
    """The fields of ``app.settings.NluSection`` the NLU service is built from."""

    rasa_url: str
    rasa_token: SecretStr | None
    rasa_timeout_s: float
    rasa_attempt_timeout_s: float
    rasa_attempts: int
    rasa_backoff_s: float
    breaker_failures: int
    breaker_cooldown_s: float
    model_dir: Path
    confidence_threshold: float
    embedder: str
    max_chars: int
    data_dir: Path
    rasa_project: Path
    rasa_venv: Path
    rasa_python: str
    rasa_port: int


def source_path(path: Path) -> Path:
    """Project files (Rasa data, config) are relative to the repository, not the cwd."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def rasa_dir(settings: NluSettings) -> Path:
    """Where Rasa models, their fingerprints and logs are kept (``<model_dir>/rasa``)."""
    return settings.model_dir / "rasa"


def embedded_dir(settings: NluSettings) -> Path:
    return settings.model_dir / "embedded"


def rasa_token(settings: NluSettings, *, create: bool = False) -> str | None:
    """The configured token (env) or the one ``hwcrm nlu serve`` generated."""
    configured = settings.rasa_token.get_secret_value() if settings.rasa_token else None
    return resolve_token(configured, settings.model_dir / TOKEN_FILE, create=create)


def build_embedded_parser(
    settings: NluSettings, embedder: Embedder | None = None
) -> EmbeddedParser:
    return EmbeddedParser(
        source_path(settings.data_dir),
        embedded_dir(settings),
        EmbeddedConfig(embedder=settings.embedder),
        embedder=embedder,
        max_chars=settings.max_chars,
    )


def build_rasa_client(settings: NluSettings) -> RasaClient | None:
    """A client for ``nlu.rasa_url``, or None when no Rasa service is configured."""
    if not settings.rasa_url.strip():
        return None
    try:
        synonyms = SynonymTable(load_nlu_data(source_path(settings.data_dir)).synonyms)
    except (OSError, ValueError):
        synonyms = SynonymTable()
    return RasaClient(
        settings.rasa_url.strip(),
        rasa_token(settings),
        timeout_s=settings.rasa_attempt_timeout_s,
        retry=RetryPolicy(
            attempts=max(1, settings.rasa_attempts), backoff_s=settings.rasa_backoff_s
        ),
        breaker=CircuitBreaker(settings.breaker_failures, settings.breaker_cooldown_s),
        synonyms=synonyms,
    )


def build_nlu_service(
    settings: NluSettings,
    *,
    embedder: Embedder | None = None,
    metrics: NluMetrics | None = None,
) -> NluService:
    """The router: Rasa when ``nlu.rasa_url`` is set (with the embedded fallback), else embedded.

    Nothing heavy happens here: the embedded model loads (or trains) on first use or on
    :meth:`NluService.warm_up`.
    """
    return NluService(
        build_embedded_parser(settings, embedder),
        build_rasa_client(settings),
        budget_s=settings.rasa_timeout_s,
        rasa_threshold=settings.confidence_threshold,
        max_chars=settings.max_chars,
        metrics=metrics,
    )
