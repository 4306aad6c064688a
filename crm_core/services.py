"""One facade over every CRM service, bound to one unit of work (a session).

Delivery layers (bot handlers, console routes, scheduler jobs) receive a `CrmServices` for the
session of their update/request/job and call the service they need; each service is built on
first use.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from crm_core.analytics.service import AnalyticsService
from crm_core.audit.service import AuditService
from crm_core.catalog.accessories import AccessoryService
from crm_core.catalog.compatibility import CompatibilityService
from crm_core.catalog.service import CatalogService
from crm_core.clock import Clock
from crm_core.conversations.service import ConversationService
from crm_core.customers.service import CustomerService
from crm_core.leads.service import LeadService
from crm_core.orders.service import OrderService
from crm_core.staff.service import StaffService
from crm_core.tickets.service import TicketService
from crm_core.warranties.service import WarrantyService

if TYPE_CHECKING:
    from app.settings import CampaignsSection, CrmSection
    from crm_core.campaigns.delivery import DeliveryService
    from crm_core.campaigns.rules import RuleService
    from crm_core.campaigns.service import CampaignService, Texts


class CrmServices:
    """The CRM services of one unit of work. Nothing here commits."""

    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: CrmSection,
        campaigns: CampaignsSection | None = None,
        texts: Texts | None = None,
    ) -> None:
        self.session = session
        self.clock = clock
        self.settings = settings
        self._campaigns_settings = campaigns
        self._texts = texts

    @cached_property
    def campaign_settings(self) -> CampaignsSection:
        """The `campaigns:` section given by the composition root (its defaults otherwise)."""
        if self._campaigns_settings is not None:
            return self._campaigns_settings
        from app.settings import CampaignsSection  # defaults only; app/ passes the real one

        return CampaignsSection()

    @cached_property
    def customers(self) -> CustomerService:
        return CustomerService(self.session, self.clock, self.settings)

    @cached_property
    def orders(self) -> OrderService:
        return OrderService(self.session, self.clock, self.settings)

    @cached_property
    def warranties(self) -> WarrantyService:
        return WarrantyService(self.session, self.clock, self.settings)

    @cached_property
    def tickets(self) -> TicketService:
        return TicketService(self.session, self.clock, self.settings, self.warranties)

    @cached_property
    def conversations(self) -> ConversationService:
        return ConversationService(self.session, self.clock)

    @cached_property
    def leads(self) -> LeadService:
        return LeadService(self.session, self.clock, self.settings)

    @cached_property
    def staff(self) -> StaffService:
        return StaffService(self.session, self.clock)

    @cached_property
    def audit(self) -> AuditService:
        return AuditService(self.session, self.clock)

    @cached_property
    def catalog(self) -> CatalogService:
        return CatalogService(self.session)

    @cached_property
    def compatibility(self) -> CompatibilityService:
        return CompatibilityService(self.session)

    @cached_property
    def accessories(self) -> AccessoryService:
        return AccessoryService(self.session, self.compatibility)

    @cached_property
    def analytics(self) -> AnalyticsService:
        from crm_core.analytics.service import AnalyticsService

        return AnalyticsService(self.session, self.clock, self.settings)

    @cached_property
    def deliveries(self) -> DeliveryService:
        from crm_core.campaigns.delivery import DeliveryService

        return DeliveryService(self.session, self.clock, self.campaign_settings)

    @cached_property
    def campaigns(self) -> CampaignService:
        from crm_core.campaigns.service import CampaignService

        return CampaignService(
            self.session, self.clock, self.campaign_settings, self._texts, self.settings
        )

    @cached_property
    def rules(self) -> RuleService:
        from crm_core.campaigns.rules import RuleService

        if self._texts is None:
            raise RuntimeError("automation rules need the locale texts: CrmServices(texts=...)")
        return RuleService(
            self.session,
            self.clock,
            self.campaign_settings,
            self._texts,
            self.settings,
            self.accessories,
        )
