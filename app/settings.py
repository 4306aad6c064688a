"""Typed settings: `config.yml` defaults, overridden by `HWCRM_*` environment variables.

Secrets (bot token, console secret key, database password) come from the environment only;
`Settings.redacted()` is what may be shown or logged.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from sqlalchemy.engine import make_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_FILE = PROJECT_ROOT / "config.yml"
SECRET_KEYS = {
    ("bot", "token"),
    ("console", "secret_key"),
    ("bot", "webhook_secret"),
    ("nlu", "rasa_token"),
}


class AppSection(BaseModel):
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    default_language: Literal["zh", "en"] = "en"
    default_timezone: str = "Asia/Shanghai"


class DbSection(BaseModel):
    url: str = "sqlite+aiosqlite:///var/hwcrm.sqlite3"
    echo: bool = False
    pool_size: int = 10

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class LifecycleRules(BaseModel):
    new_days: int = 90
    active_days: int = 365
    loyal_min_orders: int = 3
    loyal_window_days: int = 730
    at_risk_days: int = 365
    churned_days: int = 730


class CrmSection(BaseModel):
    currency: str = "CNY"
    warranty_expiring_days: int = 30
    return_window_days: int = 14
    doa_window_days: int = 30
    ticket_sla_hours: dict[str, int] = Field(
        default_factory=lambda: {"urgent": 4, "high": 8, "normal": 24, "low": 72}
    )
    lifecycle: LifecycleRules = Field(default_factory=LifecycleRules)
    rfm_quantiles: int = 5


class ImportSection(BaseModel):
    max_file_bytes: int = 0
    batch_size: int = 2000


class KbSection(BaseModel):
    """Knowledge base: ingestion, index, hybrid search (see knowledge_base/README.md)."""

    articles_dir: Path = Path("knowledge_base/articles")
    index_dir: Path = Path("var/kb")
    embedder: str = "use-multilingual"
    chunk_size: int = 700
    chunk_overlap: int = 100
    max_file_bytes: int = 5_000_000
    answer_threshold: float = 0.5
    calibration_file: Path = Path("knowledge_base/calibration.json")
    # Hybrid search: weighted reciprocal rank fusion of dense and lexical article rankings.
    rrf_k: int = 60
    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    # Second dense retriever for English queries over the English chunks ("" = off).
    english_embedder: str = "sentence-transformers:minilm"
    english_weight: float = 3.0
    candidates: int = 100
    # faiss index: auto = exact (flat) up to exact_index_max vectors, HNSW above.
    index_type: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    exact_index_max: int = 200_000
    hnsw_m: int = 32
    hnsw_ef_construction: int = 80
    hnsw_ef_search: int = 256
    ivf_nlist: int = 0
    ivf_nprobe: int = 32
    keep_versions: int = 3
    reload_interval_s: float = 1.0


class NluSection(BaseModel):
    """NLU: the Rasa service (optional) and the embedded classifier (see nlu/service.py)."""

    rasa_url: str = ""
    rasa_token: SecretStr | None = None
    # Per message: the time Rasa may take (all attempts) before the embedded classifier answers.
    rasa_timeout_s: float = 1.5
    rasa_attempt_timeout_s: float = 0.8
    rasa_attempts: int = 3
    rasa_backoff_s: float = 0.05
    breaker_failures: int = 3
    breaker_cooldown_s: float = 15.0
    model_dir: Path = Path("var/nlu")
    # Rasa answers below this confidence become out_of_scope (the embedded classifier uses
    # the threshold chosen on validation data when it was trained).
    confidence_threshold: float = 0.5
    embedder: str = "use-multilingual"
    max_chars: int = 1000
    data_dir: Path = Path("nlu/rasa/data")
    rasa_project: Path = Path("nlu/rasa")
    rasa_venv: Path = Path(".venv-rasa")
    rasa_python: str = "python3.10"
    rasa_port: int = 5005


class BotSection(BaseModel):
    token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_secret: SecretStr | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8081
    staff_chat_id: int = 0
    fsm_storage: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    event_loop: Literal["auto", "asyncio", "uvloop"] = "auto"


class HandoffTeam(BaseModel):
    """A team of agents that handoffs are routed to. Every non-empty criterion must match;
    the most specific matching team wins (ties: the first listed)."""

    name: str
    intents: list[str] = Field(default_factory=list)  # e.g. [purchase_inquiry]
    categories: list[str] = Field(default_factory=list)  # product category keys, e.g. [gpu]
    languages: list[Literal["zh", "en"]] = Field(default_factory=list)
    members: list[int | str] = Field(default_factory=list)  # staff ids (or logins)
    expected_wait_minutes: int | None = None  # overrides handoff.expected_wait_minutes


class CannedReply(BaseModel):
    """A canned reply agents send with `/canned <name>`, in the customer's language."""

    zh: str
    en: str


def _default_teams() -> list[HandoffTeam]:
    return [
        HandoffTeam(name="sales", intents=["purchase_inquiry"], members=[2, 4]),
        HandoffTeam(name="support-zh", languages=["zh"], members=[2, 3, 5]),
        HandoffTeam(name="support-en", languages=["en"], members=[4, 5]),
    ]


def _default_canned() -> dict[str, CannedReply]:
    return {
        "hello": CannedReply(
            zh="您好！我是客服，正在查看您的问题，请稍等。",
            en="Hello! I'm looking into your request now, one moment please.",
        ),
        "serial": CannedReply(
            zh="请提供设备的序列号（SN 开头的 12 位字符，通常在机身或包装盒的标签上）。",
            en="Could you send the unit's serial number? It starts with SN and has 12 "
            "characters; you'll find it on the label on the device or its box.",
        ),
        "rma": CannedReply(
            zh="我们已为您登记保修返修：请将设备连同配件妥善包装寄回，"
            "我们收到后 3 个工作日内检测。",
            en="Your warranty repair (RMA) is registered: please pack the unit with its "
            "accessories and send it back; we test it within 3 business days of arrival.",
        ),
        "bye": CannedReply(
            zh="感谢您的耐心！如还有问题，随时在这里给我们留言。",
            en="Thank you for your patience! If anything else comes up, just write here.",
        ),
    }


class HandoffSection(BaseModel):
    """Agent handoff: routing, timeouts, canned replies (see bot/handoff.py)."""

    claim_timeout_s: int = 300  # unclaimed this long → the customer is told the expected wait
    queue_timeout_s: int = 14_400  # unclaimed this long → back to the bot (0 = never)
    inactivity_timeout_s: int = 1_800  # agent-owned, silent this long → back to the bot
    sweep_interval_s: float = 30.0
    expected_wait_minutes: int = 15  # shown to a waiting customer (team value overrides)
    staff_language: Literal["zh", "en"] = "en"  # language of the staff-group texts
    card_messages: int = 8  # last messages shown on the customer card
    card_devices: int = 8
    notify_by_dm: bool = True  # also DM the team's agents (works once they started the bot)
    default_team: str = "support-en"  # when no team matches
    teams: list[HandoffTeam] = Field(default_factory=_default_teams)
    canned: dict[str, CannedReply] = Field(default_factory=_default_canned)


class ConsoleSection(BaseModel):
    """The staff console and REST API (`hwcrm console`; see console/README.md)."""

    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: SecretStr | None = None
    root_path: str = ""  # the path prefix a reverse proxy serves the console under
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-* headers are trusted
    secure_cookies: Literal["auto", "always", "never"] = "auto"  # auto: when the request is https
    session_ttl_s: int = 12 * 3600  # a login lasts at most this long
    session_idle_s: int = 2 * 3600  # ... and ends after this long without a request
    login_window_s: int = 60  # login rate limit window
    login_ip_limit: int = 20  # attempts per address and window
    login_max_failures: int = 5  # failed attempts of one login before it is locked
    lockout_s: int = 900  # how long a login stays locked
    api_rate_limit_per_minute: int = 600  # default per-key limit of new API keys
    api_max_batch: int = 1000  # records per upsert request
    webhook_tolerance_s: int = 300  # receivers refuse signatures older than this
    webhook_max_attempts: int = 6  # delivery attempts before a delivery is marked failed
    webhook_timeout_s: float = 10.0


class RateLimitSection(BaseModel):
    """One outbound rate limit for everything the bot sends (bot/ratelimit.py)."""

    per_second: float = 30.0  # all messages of the bot; 0 = no global limit
    burst: float = 5.0  # bucket size (must exceed reply_reserve by at least 1)
    reply_reserve: float = 3.0  # tokens pushes leave for replies and agents' messages
    per_chat_interval_s: float = 1.0  # pushes: at most one message per chat per interval
    backend: Literal["auto", "memory", "redis"] = "auto"  # auto: redis with fsm_storage redis
    redis_prefix: str = "hwcrm:rl"


class SchedulerSection(BaseModel):
    """Campaign scheduling and delivery (bot/scheduler/)."""

    timezone: str = "Asia/Shanghai"  # the marketers' time zone (one-shot campaign times)
    # Run the scheduler and sender inside `hwcrm bot` / `hwcrm chat`: auto = on SQLite (the
    # embedded default, one process); production runs `hwcrm scheduler` processes instead.
    in_bot: Literal["auto", "on", "off"] = "auto"
    jobs_table: str = "apscheduler_jobs"
    reconcile_interval_s: float = 3.0  # picks up campaigns scheduled by another process
    rules_interval_s: float = 300.0  # automation rules evaluated this often
    misfire_grace_s: int = 3600  # a campaign time missed by less than this still fires
    leader_retry_s: float = 2.0  # a follower tries to become the leader this often
    leader_check_s: float = 1.0  # the leader checks its lock connection this often
    concurrency: int = 16  # pushes in flight per sender (= at most rows `sending`)
    claim_batch: int = 16
    poll_interval_s: float = 0.5  # idle sender: how often it looks for due rows
    retry_base_s: float = 30.0  # transient error: retry after base * 2^attempts
    retry_max_s: float = 3600.0
    db_backoff_max_s: float = 30.0  # database errors: the sender backs off up to this
    rate_limit: RateLimitSection = Field(default_factory=RateLimitSection)


class RuleBase(BaseModel):
    """What every automation rule has: an on/off switch and the kind of message it sends."""

    enabled: bool = True
    kind: Literal["marketing", "service"] = "marketing"


class PostPurchaseRule(RuleBase):
    """Check-in N days after delivery with knowledge-base tips for the product's category."""

    kind: Literal["marketing", "service"] = "service"
    days_after_delivery: int = 7
    window_days: int = 7  # deliveries older than days_after_delivery + this are not caught up
    tips: int = 2  # knowledge-base articles cited (1-2)


class AccessoryRule(RuleBase):
    """Owns a product of a source category (bought >= min_days ago), no compatible accessory."""

    source_categories: list[str] = Field(default_factory=lambda: ["gpu", "cpu", "motherboard"])
    min_days_since_purchase: int = 14
    max_days_since_purchase: int = 365
    items: int = 3  # accessories per push


class WarrantyExpiringRule(RuleBase):
    """Extended-warranty offer when a unit's warranty ends within `within_days`."""

    within_days: int = 30
    extension_months: int = 12


class TicketSurveyRule(RuleBase):
    """Satisfaction survey `hours_after_resolution` after a ticket is resolved, if not rated."""

    kind: Literal["marketing", "service"] = "service"
    hours_after_resolution: int = 24
    window_days: int = 7


class ReEngagementRule(RuleBase):
    """A win-back message once per at-risk episode (lifecycle stage `at_risk`)."""


class RulesSection(BaseModel):
    post_purchase: PostPurchaseRule = Field(default_factory=PostPurchaseRule)
    accessory: AccessoryRule = Field(default_factory=AccessoryRule)
    warranty_expiring: WarrantyExpiringRule = Field(default_factory=WarrantyExpiringRule)
    ticket_survey: TicketSurveyRule = Field(default_factory=TicketSurveyRule)
    re_engagement: ReEngagementRule = Field(default_factory=ReEngagementRule)


class CampaignsSection(BaseModel):
    """Marketing automation and the delivery rules checked at send time (crm_core.campaigns)."""

    quiet_hours_start: str = "21:00"  # customer's local time; pushes wait until quiet_hours_end
    quiet_hours_end: str = "09:00"
    frequency_cap: int = 2  # at most this many promotions per customer ...
    frequency_window_days: int = 7  # ... in this many days (service messages do not count)
    busy_defer_minutes: int = 30  # live agent conversation / open complaint: look again then
    max_attempts: int = 5  # transient Telegram errors, then `failed`
    attribution_days: int = 14  # an order this soon after a delivered push is a conversion
    stale_sending_minutes: int = 10  # `sending` older than this = unknown (crash window)
    marketer_timezone: str = "Asia/Shanghai"  # one-shot times typed without a zone
    sample_size: int = 10
    rules: RulesSection = Field(default_factory=RulesSection)


class YamlConfigSource(PydanticBaseSettingsSource):
    """Reads `config.yml` (or `$HWCRM_CONFIG_FILE`) and refuses secrets in it."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = Path(os.environ.get("HWCRM_CONFIG_FILE", DEFAULT_CONFIG_FILE))
        data: dict[str, Any] = {}
        if path.is_file():
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{path}: top level must be a mapping of sections")
            data = loaded
        for section, key in SECRET_KEYS:
            if (data.get(section) or {}).get(key):
                raise ValueError(
                    f"{path}: '{section}.{key}' is a secret; set "
                    f"HWCRM_{section.upper()}__{key.upper()} in the environment instead"
                )
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self._data.items() if v is not None}


class Settings(BaseSettings):
    """All settings of the product, one section per package."""

    model_config = SettingsConfigDict(
        env_prefix="HWCRM_", env_nested_delimiter="__", extra="ignore"
    )

    app: AppSection = Field(default_factory=AppSection)
    db: DbSection = Field(default_factory=DbSection)
    crm: CrmSection = Field(default_factory=CrmSection)
    import_: ImportSection = Field(default_factory=ImportSection, alias="import")
    kb: KbSection = Field(default_factory=KbSection)
    nlu: NluSection = Field(default_factory=NluSection)
    bot: BotSection = Field(default_factory=BotSection)
    handoff: HandoffSection = Field(default_factory=HandoffSection)
    console: ConsoleSection = Field(default_factory=ConsoleSection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    campaigns: CampaignsSection = Field(default_factory=CampaignsSection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSource(settings_cls))

    def redacted(self) -> dict[str, Any]:
        """The settings as plain data with every secret masked (safe to print or log)."""
        data = self.model_dump(mode="json", by_alias=True)
        for section, key in SECRET_KEYS:
            if data.get(section, {}).get(key):
                data[section][key] = "********"
        if data["nlu"].get("rasa_token"):
            data["nlu"]["rasa_token"] = "********"
        data["db"]["url"] = redact_url(self.db.url)
        data["bot"]["redis_url"] = redact_url(self.bot.redis_url)
        return data


def redact_url(url: str) -> str:
    """A database/redis URL with its password replaced by asterisks."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from config.yml + environment (+ explicit overrides for tests)."""
    return Settings(**overrides)
