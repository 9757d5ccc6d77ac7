"""Durable orchestrators (deterministic: no I/O, no wall clock, no randomness).

May import: the Durable SDK and, of the library, only pure modules (`shared.contract`,
`shared.retry`, `shared.run_store`'s naming, `shared.redaction`'s text helpers): nothing that does I/O.
"""

from orchestrations.ingestion import BATCH_ORCHESTRATOR, ORCHESTRATOR, bp

__all__ = ["BATCH_ORCHESTRATOR", "ORCHESTRATOR", "bp"]
