"""Where circuit states live: the interface every store (local SQLite, Azure Table) implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from .state import BreakerState

Mutation = Callable[[BreakerState], BreakerState]
"""Turns the current state into the next one. Must be pure: a store may call it more than once."""


class BreakerStore(ABC):
    """Persistent, shared circuit states, one per source.

    Many activity workers (threads, processes, hosts) update the same source at once, so
    `update` is the only way to change a state and it never loses an update.
    """

    @abstractmethod
    def get(self, source_name: str) -> BreakerState:
        """The stored state of `source_name`.

        Args:
            source_name: The source's key.

        Returns:
            The stored state, or a fresh CLOSED `BreakerState` when the source is unknown
            (nothing is written for it).
        """

    @abstractmethod
    def update(self, source_name: str, mutate: Mutation) -> BreakerState:
        """Atomically replace the state of `source_name` with `mutate(current)`.

        Concurrent updaters never lose an update. A lock-based store (SQLite) calls `mutate`
        once inside a transaction; an optimistic store (Azure Table with ETags) reads the
        entity, calls `mutate`, writes with `If-Match` and on a 412 conflict reads and calls
        `mutate` again. Hence `mutate` must be pure: no side effects, no clock reads, the
        result depending only on its argument.

        Args:
            source_name: The source's key.
            mutate: Computes the next state from the current one (a fresh CLOSED state when
                the source is unknown). It must keep `source_name`.

        Returns:
            The state that was stored.

        Raises:
            ValueError: `mutate` returned a state for another source.
        """

    @abstractmethod
    def list(self) -> list[BreakerState]:
        """Every stored state, ordered by source name."""

    @abstractmethod
    def reset(self, source_name: str) -> None:
        """Forget `source_name`, so it reads as a fresh CLOSED state; unknown names are fine."""


def apply_mutation(source_name: str, mutate: Mutation, current: BreakerState) -> BreakerState:
    """Call `mutate` and check it kept the source; shared by every store implementation.

    Args:
        source_name: The key being updated.
        mutate: The caller's mutation.
        current: The state read from storage.

    Returns:
        The next state.

    Raises:
        ValueError: The next state belongs to another source.
    """
    new_state = mutate(current)
    if not isinstance(new_state, BreakerState):
        raise TypeError(f"mutation for {source_name!r} returned {type(new_state).__name__}, not BreakerState")
    if new_state.source_name != source_name:
        raise ValueError(
            f"mutation for {source_name!r} returned a state for {new_state.source_name!r}"
        )
    return new_state
