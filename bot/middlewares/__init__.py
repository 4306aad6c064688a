"""aiogram middlewares: one concern each (see bot/runtime.py for their order)."""
