"""FSM states of the customer flows (memory storage embedded, Redis in production)."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class LinkStates(StatesGroup):
    """Account linking by order number + the last 4 digits of the phone on the record."""

    order_number = State()
    phone_digits = State()


class FaultStates(StatesGroup):
    """Fault report: pick or type the device, describe the symptom, then the outcome."""

    device = State()
    symptom = State()
    outcome = State()
    ticket_open = State()


class ProductStates(StatesGroup):
    """Product question: waiting for the question itself."""

    question = State()


class SalesStates(StatesGroup):
    """Purchase inquiry: waiting for the category (buttons) or a description; for an
    accessory ("a PSU for my graphics card"), waiting for the device's model."""

    category = State()
    accessory_device = State()


class RatingStates(StatesGroup):
    """After a 1-5 rating: waiting for the optional comment."""

    comment = State()
