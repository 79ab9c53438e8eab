"""Deterministic orchestration: the card order workflow and its pure state machine."""
