"""Durable orchestrators (deterministic: no I/O, no wall clock, no randomness)."""

from orchestrations.ingestion import BATCH_ORCHESTRATOR, ORCHESTRATOR, bp

__all__ = ["BATCH_ORCHESTRATOR", "ORCHESTRATOR", "bp"]
