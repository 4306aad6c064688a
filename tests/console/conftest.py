"""Console fixtures: the real app (ASGI, in process) on the `db` fixture (SQLite + PostgreSQL)
with one staff member per role and a few customers."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI

from app.console import build_console_app
from app.container import Container
from app.settings import load_settings
from crm_core.clock import FixedClock
from crm_core.customers.schemas import CustomerCreate
from crm_core.db import unit_of_work
from crm_core.services import CrmServices
from crm_core.staff.service import StaffService
from tests.conftest import Database

PASSWORD = "correct horse battery"
ROLES = ("admin", "agent", "marketer")


@dataclass
class Console:
    app: FastAPI
    container: Container
    db: Database
    staff: dict[str, int]
    customers: list[int]

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("10.0.0.1", 1234))
        kwargs.setdefault("base_url", "http://console")
        return httpx.AsyncClient(transport=transport, **kwargs)  # type: ignore[arg-type]

    async def crm(self) -> AsyncIterator[CrmServices]:
        async with unit_of_work(self.db.sessions) as session:
            yield CrmServices(session, self.container.clock, self.container.settings.crm)


async def login(client: httpx.AsyncClient, login: str, password: str = PASSWORD) -> httpx.Response:
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return await client.post(
        "/login", data={"login": login, "password": password, "csrf": token.group(1), "next": "/"}
    )


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert found is not None
    return found.group(1)


@pytest.fixture
async def console(db: Database, clock: FixedClock) -> Console:
    settings = load_settings()
    container = Container(settings=settings, engine=db.engine, sessions=db.sessions, clock=clock)
    staff: dict[str, int] = {}
    customers: list[int] = []
    async with unit_of_work(db.sessions) as session:
        crm = CrmServices(session, clock, settings.crm)
        # Cheap argon2 parameters for the fixture's hashes (the first login re-hashes them
        # with the real ones, as for any outdated hash).
        fast = StaffService(session, clock, hasher=PasswordHasher(time_cost=1, memory_cost=1024))
        for role in ROLES:
            member = await fast.add_staff(
                f"{role.title()} User", role, login=role, password=PASSWORD, languages="en,zh"
            )
            staff[role] = member.id
        for i, (name, phone) in enumerate(
            [("张伟", "+8613800000001"), ("James Carter", "+447911123456"), ("陈静", None)]
        ):
            created = await crm.customers.create_customer(
                CustomerCreate(
                    name=name,
                    phone=phone,
                    telegram_user_id=5000 + i,
                    language="zh" if i != 1 else "en",
                )
            )
            customers.append(created.id)
    app = build_console_app(container, deliver_webhooks=False)
    return Console(app, container, db, staff, customers)
