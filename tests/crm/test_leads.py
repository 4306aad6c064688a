"""Sales leads: creation rules, the stage pipeline, owners and listings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.settings import CrmSection
from crm_core.audit.models import AuditEntry
from crm_core.clock import FixedClock
from crm_core.errors import InvalidTransition, NotFound, PermissionDenied, ValidationFailed
from crm_core.leads.schemas import LeadCreate
from crm_core.leads.service import LeadService
from tests.crm.people_factories import make_customer, make_product, make_staff

pytestmark = pytest.mark.usefixtures("sqlite_template", "pg_schema_url")


def service(session: AsyncSession, clock: FixedClock) -> LeadService:
    return LeadService(session, clock, CrmSection())


async def test_lead_for_a_customer_with_skus_and_categories(session, clock):
    customer = await make_customer(session)
    await make_product(session, sku="GPU-RTX4070S")
    lead = await service(session, clock).create_lead(
        LeadCreate(
            customer_id=customer.id,
            products_of_interest=["GPU-RTX4070S", "psu", "显卡", "Graphics Card"],
            budget=Decimal("8000"),
        )
    )
    assert lead.stage == "new" and lead.customer_id == customer.id
    assert lead.products_of_interest == ["GPU-RTX4070S", "psu", "gpu"]
    assert lead.budget == Decimal("8000.00") and lead.currency == "CNY"
    assert lead.created_at == clock.now()


async def test_lead_for_a_prospect_normalises_the_contact(session, clock):
    svc = service(session, clock)
    by_phone = await svc.create_lead(
        LeadCreate(prospect_name="Zhou Min", prospect_contact="138 1234 5678", source="bot")
    )
    by_mail = await svc.create_lead(LeadCreate(prospect_contact="Zhou@Example.com"))
    by_handle = await svc.create_lead(LeadCreate(prospect_contact="@zhoumin"))
    assert by_phone.prospect_contact == "+8613812345678" and by_phone.source == "bot"
    assert by_mail.prospect_contact == "zhou@example.com"
    assert by_handle.prospect_contact == "@zhoumin"


async def test_lead_rules_are_enforced_with_clear_messages(session, clock):
    svc = service(session, clock)
    cases = [
        (LeadCreate(), "needs a customer, or a prospect"),
        (LeadCreate(prospect_name="A", budget=Decimal("-1")), "cannot be negative"),
        (LeadCreate(prospect_name="A", products_of_interest=["NOPE-1"]), "unknown product"),
        (LeadCreate(prospect_name="A", source="fax"), "unknown lead source"),
    ]
    for data, message in cases:
        with pytest.raises(ValidationFailed, match=message):
            await svc.create_lead(data)
    with pytest.raises(NotFound):
        await svc.create_lead(LeadCreate(customer_id=999))


async def test_lead_goes_through_the_whole_pipeline_to_won(session, clock):
    svc = service(session, clock)
    lead = await svc.create_lead(LeadCreate(prospect_name="Zhou Min"))
    for stage in ("contacted", "quoted", "won"):
        lead = await svc.move_to_stage(lead.id, stage, actor="staff:1")
    assert lead.stage == "won" and lead.is_closed
    stages = (
        await session.scalars(select(AuditEntry.details).where(AuditEntry.action == "stage"))
    ).all()
    assert [d["to"] for d in stages] == ["contacted", "quoted", "won"]


async def test_lead_can_be_lost_from_any_open_stage(session, clock):
    svc = service(session, clock)
    for path in ([], ["contacted"], ["contacted", "quoted"]):
        lead = await svc.create_lead(LeadCreate(prospect_name="Zhou Min"))
        for stage in path:
            await svc.move_to_stage(lead.id, stage)
        assert (await svc.move_to_stage(lead.id, "lost")).stage == "lost"


async def test_won_and_lost_leads_are_final(session, clock):
    svc = service(session, clock)
    lost = await svc.create_lead(LeadCreate(prospect_name="A"))
    await svc.move_to_stage(lost.id, "lost")
    with pytest.raises(InvalidTransition, match="final"):
        await svc.move_to_stage(lost.id, "contacted")
    won = await svc.create_lead(LeadCreate(prospect_name="B"))
    for stage in ("contacted", "quoted", "won"):
        await svc.move_to_stage(won.id, stage)
    with pytest.raises(InvalidTransition, match="final"):
        await svc.move_to_stage(won.id, "lost")


async def test_skipping_stages_is_an_invalid_transition(session, clock):
    svc = service(session, clock)
    lead = await svc.create_lead(LeadCreate(prospect_name="A"))
    with pytest.raises(InvalidTransition, match="cannot go from new to quoted"):
        await svc.move_to_stage(lead.id, "quoted")
    with pytest.raises(InvalidTransition):
        await svc.move_to_stage(lead.id, "won")
    with pytest.raises(ValidationFailed, match="unknown lead stage"):
        await svc.move_to_stage(lead.id, "negotiating")


async def test_owner_must_be_active_staff_with_a_sales_role(session, clock):
    svc = service(session, clock)
    lead = await svc.create_lead(LeadCreate(prospect_name="A"))
    marketer = await make_staff(session, role="marketer")
    gone = await make_staff(session, role="agent", active=False)
    assert (await svc.assign_owner(lead.id, marketer.id)).owner_staff_id == marketer.id
    with pytest.raises(PermissionDenied, match="deactivated"):
        await svc.assign_owner(lead.id, gone.id)
    with pytest.raises(NotFound):
        await svc.assign_owner(lead.id, 4242)


async def test_leads_are_listed_by_stage_and_owner(session, clock):
    svc = service(session, clock)
    agent = await make_staff(session)
    a = await svc.create_lead(LeadCreate(prospect_name="A", owner_staff_id=agent.id))
    b = await svc.create_lead(LeadCreate(prospect_name="B"))
    c = await svc.create_lead(LeadCreate(prospect_name="C", owner_staff_id=agent.id))
    await svc.move_to_stage(c.id, "contacted")
    assert [x.id for x in await svc.list_leads(stage="new")] == [b.id, a.id]
    assert [x.id for x in await svc.list_leads(owner_staff_id=agent.id)] == [c.id, a.id]
    assert [x.id for x in await svc.list_leads(stage="contacted", owner_staff_id=agent.id)] == [
        c.id
    ]
