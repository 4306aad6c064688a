"""Domain errors. Delivery layers turn them into clear messages (CLI), replies (bot), HTTP codes."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every expected, explainable failure of a CRM rule."""


class NotFound(DomainError):
    """The requested record does not exist (or is not visible to the caller)."""


class ValidationFailed(DomainError):
    """Input broke a rule (bad phone number, negative quantity, ...)."""


class Conflict(DomainError):
    """The change collides with existing data (duplicate key, already linked, ...)."""


class InvalidTransition(DomainError):
    """A state machine was asked for a transition it does not allow."""


class PermissionDenied(DomainError):
    """The actor's role does not allow this."""
