"""Router: free_text."""

from __future__ import annotations

from aiogram import Router

router = Router(name="free_text")
