"""Helpers shared by the customer flows: the per-update flow context, FSM states, rendering,
the knowledge-base and handoff calls, and the attempt limiter for account linking."""
