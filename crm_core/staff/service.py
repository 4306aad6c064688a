"""Staff members: roles, Telegram ids, console logins with argon2-hashed passwords."""

from __future__ import annotations

import contextlib
import functools
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.clock import Clock
from crm_core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from crm_core.staff.models import ROLES, StaffUser
from crm_core.staff.schemas import StaffDTO

LOGIN_RE = re.compile(r"^[A-Za-z0-9._@-]{3,64}$")
MIN_PASSWORD_LENGTH = 8
LANGUAGES = ("zh", "en")


def _to_dto(staff: StaffUser) -> StaffDTO:
    return StaffDTO(
        id=staff.id,
        name=staff.name,
        role=staff.role,
        login=staff.login,
        telegram_user_id=staff.telegram_user_id,
        languages=staff.languages,
        active=staff.active,
        has_password=staff.password_hash is not None,
        created_at=staff.created_at,
    )


class StaffService:
    """Adds, lists, finds, deactivates and authenticates staff members."""

    def __init__(
        self, session: AsyncSession, clock: Clock, *, hasher: PasswordHasher | None = None
    ) -> None:
        self._session = session
        self._clock = clock
        self._hasher = hasher or PasswordHasher()

    async def add_staff(
        self,
        name: str,
        role: str,
        *,
        telegram_user_id: int | None = None,
        login: str | None = None,
        password: str | None = None,
        languages: str = "zh,en",
    ) -> StaffDTO:
        """Add a staff member. A console login needs a password (hashed with argon2)."""
        name = (name or "").strip()
        if not name:
            raise ValidationFailed("staff name must not be empty")
        if len(name) > 200:
            raise ValidationFailed("staff name is longer than 200 characters")
        role = _valid_role(role)
        langs = _valid_languages(languages)
        if telegram_user_id is not None:
            if telegram_user_id <= 0:
                raise ValidationFailed("a Telegram user id is a positive number")
            other = await self._session.scalar(
                select(StaffUser).where(StaffUser.telegram_user_id == telegram_user_id)
            )
            if other is not None:
                raise Conflict(
                    f"Telegram user {telegram_user_id} already belongs to staff member "
                    f"#{other.id} ({other.name})"
                )
        password_hash: str | None = None
        if login is not None:
            login = login.strip()
            if not LOGIN_RE.match(login):
                raise ValidationFailed(
                    "a login is 3-64 characters: letters, digits and . _ @ - only"
                )
            if await self._session.scalar(select(StaffUser.id).where(StaffUser.login == login)):
                raise Conflict(f"the login {login!r} is already taken")
            if password is None:
                raise ValidationFailed("a console login needs a password")
            password_hash = self._hash(password)
        elif password is not None:
            raise ValidationFailed("a password was given without a login")
        staff = StaffUser(
            name=name,
            role=role,
            telegram_user_id=telegram_user_id,
            login=login,
            password_hash=password_hash,
            languages=langs,
            active=True,
            created_at=self._clock.now(),
        )
        self._session.add(staff)
        await self._session.flush()
        return _to_dto(staff)

    async def list_staff(self, *, include_inactive: bool = False) -> list[StaffDTO]:
        """Staff members by id; deactivated ones only when asked."""
        stmt = select(StaffUser).order_by(StaffUser.id)
        if not include_inactive:
            stmt = stmt.where(StaffUser.active.is_(True))
        return [_to_dto(s) for s in (await self._session.scalars(stmt)).all()]

    async def get(self, staff_id: int) -> StaffDTO:
        """One staff member (active or not); NotFound when the id is unknown."""
        return _to_dto(await self._load(staff_id))

    async def find(self, staff_id: int) -> StaffDTO | None:
        """One staff member or None."""
        staff = await self._session.get(StaffUser, staff_id)
        return None if staff is None else _to_dto(staff)

    async def get_by_telegram_id(
        self, telegram_user_id: int, *, include_inactive: bool = False
    ) -> StaffDTO | None:
        """The staff member with this Telegram account (active ones only unless asked)."""
        stmt = select(StaffUser).where(StaffUser.telegram_user_id == telegram_user_id)
        if not include_inactive:
            stmt = stmt.where(StaffUser.active.is_(True))
        staff = await self._session.scalar(stmt)
        return None if staff is None else _to_dto(staff)

    async def deactivate(self, staff_id: int) -> StaffDTO:
        """Deactivate a staff member (idempotent). Their history stays attributed to them."""
        staff = await self._load(staff_id)
        staff.active = False
        await self._session.flush()
        return _to_dto(staff)

    async def set_password(self, staff_id: int, password: str) -> None:
        """Set or replace a staff member's console password (needs a login)."""
        staff = await self._load(staff_id)
        if staff.login is None:
            raise ValidationFailed(f"staff member #{staff_id} has no console login")
        staff.password_hash = self._hash(password)
        await self._session.flush()

    async def set_login(self, staff_id: int, login: str) -> StaffDTO:
        """Give a staff member a console login (unique)."""
        staff = await self._load(staff_id)
        login = (login or "").strip()
        if not LOGIN_RE.match(login):
            raise ValidationFailed("a login is 3-64 characters: letters, digits and . _ @ - only")
        other = await self._session.scalar(select(StaffUser.id).where(StaffUser.login == login))
        if other is not None and other != staff_id:
            raise Conflict(f"the login {login!r} is already taken")
        staff.login = login
        await self._session.flush()
        return _to_dto(staff)

    async def authenticate(self, login: str, password: str) -> StaffDTO | None:
        """The active staff member with this login and password, or None (no hint which failed)."""
        staff = await self._session.scalar(select(StaffUser).where(StaffUser.login == login))
        if staff is None or staff.password_hash is None or not staff.active:
            # Same work either way, so timing does not reveal which logins exist.
            self._dummy_verify(password)
            return None
        try:
            self._hasher.verify(staff.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if self._hasher.check_needs_rehash(staff.password_hash):
            staff.password_hash = self._hash(password)
            await self._session.flush()
        return _to_dto(staff)

    @staticmethod
    def require_role(staff: StaffDTO | None, *roles: str) -> StaffDTO:
        """Return `staff` when active and in one of `roles` (any role when none given)."""
        if staff is None:
            raise PermissionDenied("not a staff member")
        if not staff.active:
            raise PermissionDenied(f"staff member #{staff.id} is deactivated")
        if roles and staff.role not in roles:
            raise PermissionDenied(
                f"this needs the role {' or '.join(roles)}; {staff.name} is {staff.role}"
            )
        return staff

    async def _load(self, staff_id: int) -> StaffUser:
        staff = await self._session.get(StaffUser, staff_id)
        if staff is None:
            raise NotFound(f"no staff member #{staff_id}")
        return staff

    def _hash(self, password: str) -> str:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValidationFailed(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        if not password.strip():
            raise ValidationFailed("a password must not be only spaces")
        return self._hasher.hash(password)

    def _dummy_verify(self, password: str) -> None:
        with contextlib.suppress(VerificationError, InvalidHashError):
            self._hasher.verify(_dummy_hash(), password)


@functools.cache
def _dummy_hash() -> str:
    """A hash of a throw-away string, for constant-time failed logins."""
    return PasswordHasher().hash("not-a-real-password-0000")


def _valid_role(role: str) -> str:
    value = (role or "").strip().lower()
    if value not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    return value


def _valid_languages(languages: str) -> str:
    items = [x.strip().lower() for x in (languages or "").split(",") if x.strip()]
    if not items or any(x not in LANGUAGES for x in items):
        raise ValidationFailed("staff languages are a comma-separated list of zh and en")
    return ",".join(dict.fromkeys(items))
