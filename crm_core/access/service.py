"""Console logins (rate limit, lockout, server-side sessions) and REST API keys.

Login rules (`AccessSettings`): more than `login_ip_limit` attempts from one address within
`login_window_s` → rate limited; `login_max_failures` failed attempts for one login within
`lockout_s` → that login is locked until `lockout_s` after the latest failure (a correct
password does not unlock it early). Every attempt is a `login_attempts` row (login, address,
success — never the password).

Sessions: a 256-bit random token in the cookie, its SHA-256 in `console_sessions`; valid
until `session_ttl_s` after login and `session_idle_s` after the last request, while the
staff member stays active. Each session has its own CSRF token.

API keys: `hwk_<prefix>_<secret>`; the prefix finds the row, the SHA-256 of the whole key is
compared in constant time. Shown once; revoked keys stop working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.access.models import ApiKey, ConsoleSession, LoginAttempt
from crm_core.access.schemas import ApiKeyDTO, LoginOutcome, SessionInfo
from crm_core.clock import Clock
from crm_core.errors import NotFound, ValidationFailed
from crm_core.staff.models import StaffUser
from crm_core.staff.service import StaffService

SCOPES: tuple[str, ...] = (
    "customers:read",
    "customers:write",
    "orders:read",
    "orders:write",
    "products:read",
    "products:write",
    "tickets:read",
    "warranty:read",
    "webhooks:manage",
)
KEY_PREFIX = "hwk_"
TOUCH_EVERY = timedelta(seconds=60)  # last_seen/last_used are written at most once a minute


@dataclass(frozen=True)
class AccessSettings:
    """Limits of console logins and sessions (from `console.*` settings)."""

    session_ttl_s: int = 12 * 3600
    session_idle_s: int = 2 * 3600
    login_window_s: int = 60
    login_ip_limit: int = 20
    login_max_failures: int = 5
    lockout_s: int = 15 * 60


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class AccessService:
    """Logins, sessions and API keys. Nothing here commits."""

    def __init__(
        self, session: AsyncSession, clock: Clock, settings: AccessSettings | None = None
    ) -> None:
        self._session = session
        self._clock = clock
        self._settings = settings or AccessSettings()
        self._staff = StaffService(session, clock)

    # --- logins ----------------------------------------------------------------------------

    async def login(
        self, login: str, password: str, *, ip: str, user_agent: str = ""
    ) -> LoginOutcome:
        """Check a login attempt against the rate limit, the lockout and the password; on
        success open a session."""
        s = self._settings
        now = self._clock.now()
        login = (login or "").strip()[:64]
        ip = (ip or "?")[:64]
        since_window = now - timedelta(seconds=s.login_window_s)
        from_ip = await self._session.scalar(
            select(func.count())
            .select_from(LoginAttempt)
            .where(LoginAttempt.ip == ip, LoginAttempt.at > since_window)
        )
        if int(from_ip or 0) >= s.login_ip_limit:
            await self._attempt(login, ip, success=False)
            return LoginOutcome("rate_limited", retry_after_s=s.login_window_s)
        since_lock = now - timedelta(seconds=s.lockout_s)
        failures = list(
            (
                await self._session.scalars(
                    select(LoginAttempt.at)
                    .where(
                        LoginAttempt.login == login,
                        LoginAttempt.success.is_(False),
                        LoginAttempt.at > since_lock,
                    )
                    .order_by(LoginAttempt.at.desc())
                    .limit(s.login_max_failures)
                )
            ).all()
        )
        if len(failures) >= s.login_max_failures:
            await self._attempt(login, ip, success=False)
            until = failures[0] + timedelta(seconds=s.lockout_s)
            return LoginOutcome("locked", retry_after_s=max(1, int((until - now).total_seconds())))
        staff = await self._staff.authenticate(login, password or "")
        await self._attempt(login, ip, success=staff is not None)
        if staff is None:
            return LoginOutcome("invalid")
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        language = staff.languages.split(",")[0] if staff.languages else "en"
        self._session.add(
            ConsoleSession(
                token_hash=sha256(token),
                staff_id=staff.id,
                csrf_token=csrf,
                language=language if language in ("zh", "en") else "en",
                ip=ip,
                user_agent=(user_agent or "")[:200],
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=s.session_ttl_s),
            )
        )
        await self._session.flush()
        return LoginOutcome("ok", staff=staff, token=token, csrf=csrf)

    async def session_for(self, token: str | None) -> SessionInfo | None:
        """The valid session behind a cookie token, or None (unknown, expired, idle too
        long, logged out, or its staff member was deactivated)."""
        if not token:
            return None
        row = await self._session.scalar(
            select(ConsoleSession).where(ConsoleSession.token_hash == sha256(token))
        )
        now = self._clock.now()
        if row is None or row.revoked_at is not None or row.expires_at <= now:
            return None
        if row.last_seen_at + timedelta(seconds=self._settings.session_idle_s) <= now:
            return None
        staff = await self._staff.find(row.staff_id)
        if staff is None or not staff.active:
            return None
        if now - row.last_seen_at >= TOUCH_EVERY:
            row.last_seen_at = now
            await self._session.flush()
        return SessionInfo(row.id, staff, row.csrf_token, row.language)

    async def logout(self, token: str | None) -> None:
        """End the session behind a cookie token (nothing when there is none)."""
        if token:
            await self._session.execute(
                update(ConsoleSession)
                .where(ConsoleSession.token_hash == sha256(token))
                .values(revoked_at=self._clock.now())
            )

    async def end_sessions_of(self, staff_id: int) -> int:
        """Log a staff member out everywhere (password change, deactivation)."""
        result = await self._session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.staff_id == staff_id, ConsoleSession.revoked_at.is_(None))
            .values(revoked_at=self._clock.now())
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def set_language(self, session_id: int, language: str) -> None:
        """The session's UI language, remembered for the staff member's next logins too."""
        if language not in ("zh", "en"):
            raise ValidationFailed("the console speaks zh or en")
        row = await self._session.get(ConsoleSession, session_id)
        if row is None:
            raise NotFound(f"no console session #{session_id}")
        row.language = language
        staff = await self._session.get(StaffUser, row.staff_id)
        if staff is not None:
            others = [x for x in staff.languages.split(",") if x and x != language]
            staff.languages = ",".join([language, *others])
        await self._session.flush()

    async def _attempt(self, login: str, ip: str, *, success: bool) -> None:
        self._session.add(LoginAttempt(login=login, ip=ip, success=success, at=self._clock.now()))
        await self._session.flush()

    # --- API keys --------------------------------------------------------------------------

    async def create_key(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        rate_limit_per_minute: int = 600,
        created_by_staff_id: int | None = None,
    ) -> tuple[ApiKeyDTO, str]:
        """A new API key and its plaintext (shown once, never stored)."""
        name = (name or "").strip()
        if not name or len(name) > 100:
            raise ValidationFailed("an API key needs a name of 1-100 characters")
        wanted = sorted({s.strip() for s in scopes if s.strip()})
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown:
            raise ValidationFailed(
                f"unknown scope(s) {', '.join(unknown)}; choose from {', '.join(SCOPES)}"
            )
        if not wanted:
            raise ValidationFailed(f"an API key needs at least one scope: {', '.join(SCOPES)}")
        if not 1 <= rate_limit_per_minute <= 100_000:
            raise ValidationFailed("the rate limit is 1-100000 requests per minute")
        prefix = secrets.token_hex(6)
        plaintext = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
        row = ApiKey(
            name=name,
            prefix=prefix,
            key_hash=sha256(plaintext),
            scopes=wanted,
            rate_limit_per_minute=rate_limit_per_minute,
            created_by_staff_id=created_by_staff_id,
            created_at=self._clock.now(),
        )
        self._session.add(row)
        await self._session.flush()
        return ApiKeyDTO.model_validate(row), plaintext

    async def list_keys(self, *, include_revoked: bool = False) -> list[ApiKeyDTO]:
        stmt = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            stmt = stmt.where(ApiKey.revoked_at.is_(None))
        return [ApiKeyDTO.model_validate(r) for r in (await self._session.scalars(stmt)).all()]

    async def revoke_key(self, key_id: int) -> ApiKeyDTO:
        """Revoke a key (idempotent); it stops working on the next request."""
        row = await self._session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key #{key_id}")
        if row.revoked_at is None:
            row.revoked_at = self._clock.now()
            await self._session.flush()
        return ApiKeyDTO.model_validate(row)

    async def authenticate_key(self, plaintext: str | None) -> ApiKeyDTO | None:
        """The active key behind `plaintext`, or None (malformed, unknown, wrong, revoked)."""
        if not plaintext or not plaintext.startswith(KEY_PREFIX):
            return None
        prefix, _, rest = plaintext[len(KEY_PREFIX) :].partition("_")
        if not prefix or not rest:
            return None
        row = await self._session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        if row is None or not hmac.compare_digest(row.key_hash, sha256(plaintext)):
            return None
        if row.revoked_at is not None:
            return None
        now = self._clock.now()
        if row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY:
            row.last_used_at = now
            await self._session.flush()
        return ApiKeyDTO.model_validate(row)
