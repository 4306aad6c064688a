"""Imports every CRM model so that `metadata` knows every table (Alembic, tests)."""

from crm_core.access.models import ApiKey, ConsoleSession, LoginAttempt
from crm_core.audit.models import AuditEntry
from crm_core.campaigns.models import (
    AutomationRuleSetting,
    Campaign,
    CampaignDelivery,
    CampaignEvent,
)
from crm_core.catalog.models import CompatibilityRule, Product
from crm_core.conversations.models import Conversation, Interaction, SatisfactionRating
from crm_core.customers.models import Company, ConsentEvent, Customer
from crm_core.db import Base
from crm_core.leads.models import Lead
from crm_core.orders.models import Order, OrderItem, OrderItemSerial, Return
from crm_core.staff.models import StaffUser
from crm_core.tickets.models import Ticket, TicketEvent
from crm_core.warranties.models import WarrantyExtension, WarrantyVoid
from crm_core.webhooks.models import WebhookDelivery, WebhookEndpoint
from knowledge_base.models import KbArticle, KbChunk  # noqa: F401  (KB tables for Alembic)

metadata = Base.metadata

__all__ = [
    "ApiKey",
    "AuditEntry",
    "AutomationRuleSetting",
    "Campaign",
    "CampaignDelivery",
    "CampaignEvent",
    "Company",
    "CompatibilityRule",
    "ConsentEvent",
    "ConsoleSession",
    "Conversation",
    "Customer",
    "Interaction",
    "Lead",
    "LoginAttempt",
    "Order",
    "OrderItem",
    "OrderItemSerial",
    "Product",
    "Return",
    "SatisfactionRating",
    "StaffUser",
    "Ticket",
    "TicketEvent",
    "WarrantyExtension",
    "WarrantyVoid",
    "WebhookDelivery",
    "WebhookEndpoint",
    "metadata",
]
