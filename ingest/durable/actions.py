"""The action tree the SDK emits, and a model of how the Durable extension replays it.

The SDK (replay schema V2+) returns every action since the start of the execution, one
top-level action per `yield` that schedules something new, with `task_all`/`task_any` as
compound actions holding only the children not scheduled before. The runtime gives each leaf
the next sequence id, depth-first, which is the order in which the SDK numbers the tasks.

The extension replays that list in .NET (`OutOfProcOrchestrationShim.ProcessAsyncActionsV2`,
azure-functions-durable-extension `src/WebJobs.Extensions.DurableTask/Listener/
OutOfProcOrchestrationShim.cs` lines 199-219 at a7c6d694): it invokes the top-level actions
one after the other and `await`s each before invoking the next, with .NET semantics
(`Task.WhenAll` ends when *all* children end, `Task.WhenAny` when one does). Durable Task
numbers each call when the shim invokes it. So a top-level action emitted while an earlier
one is unfinished in .NET is invoked late (work starts later in Azure), and its .NET ids
differ from the SDK's exactly when a `*_with_retry` task took ids in between (its retry
timers and re-attempts are numbered when they happen, in both runtimes): then results are
misattributed. `ActionTracker` models the shim's cursor to detect both, precisely.
See docs/durable-replay.md.
"""

from __future__ import annotations

from typing import Any, Optional

from azure.durable_functions.models.actions.ActionType import ActionType

COMPOUND_TYPES = (int(ActionType.WHEN_ALL), int(ActionType.WHEN_ANY))


class ActionNode:
    """One action of the tree: a leaf (with a sequence id) or a compound."""

    __slots__ = ("kind", "children", "done")

    def __init__(self, kind: str, children: Optional[list[ActionNode]] = None,
                 done: bool = False) -> None:
        self.kind = kind
        """"all", "any" or "leaf"."""
        self.children = children or []
        self.done = done
        """True once finished in the .NET sense (sticky)."""

    def finished(self) -> bool:
        """Whether `await` on this action would have returned in the extension."""
        if not self.done and self.kind != "leaf":
            if self.kind == "all":
                self.done = all(child.finished() for child in self.children)
            else:
                self.done = not self.children or any(c.finished() for c in self.children)
        return self.done


def signature(action: dict[str, Any]) -> Any:
    """What Durable Task compares on replay: the kind and target of each call.

    Inputs, timer due times and the cancel flag are left out: the extension does not check
    them, and `timer.cancel()` changes the flag of an already-emitted action.
    """
    action_type = action.get("actionType")
    if action_type in COMPOUND_TYPES:
        return (action_type, tuple(signature(c) for c in action.get("compoundActions") or ()))
    return (action_type, action.get("functionName"))


def describe(sig: Any) -> str:
    """Readable form of a `signature`, e.g. `WHEN_ALL[CALL_ACTIVITY(load)]`."""
    action_type, detail = sig
    name = ActionType(action_type).name if action_type in _ACTION_TYPES else str(action_type)
    if action_type in COMPOUND_TYPES:
        return f"{name}[{', '.join(describe(child) for child in detail)}]"
    return f"{name}({detail})"


_ACTION_TYPES = {int(member) for member in ActionType}


def compound_kind(action: dict[str, Any]) -> str:
    """"all" for WhenAll, "any" for WhenAny."""
    return "all" if action["actionType"] == int(ActionType.WHEN_ALL) else "any"


class ActionTracker:
    """Top-level actions of one execution and how far the extension's shim has invoked them.

    Call `retry_allocation()` whenever a retry takes a sequence id without resuming the
    orchestrator, `leaf_done` when a task has its final outcome, `settle()`
    after each delivered message and after adding new top-level actions.
    """

    def __init__(self) -> None:
        self._tops: list[ActionNode] = []
        self._stamps: list[tuple[int, Any]] = []
        """Per top-level action: retry allocations so far and the time when it was emitted."""
        self._cursor = 0
        """How many top-level actions the shim has invoked."""
        self._free_at: Optional[int] = 0
        """Retry allocations at the moment the shim stopped awaiting (None while it awaits)."""
        self._retry_allocations = 0
        self._by_id: dict[int, ActionNode] = {}
        self.misattributed: Optional[int] = None
        """Index of the first top-level action the extension would number differently."""
        self.delayed: list[tuple[int, float]] = []
        """(top-level index, seconds) of actions the extension would invoke later than here."""

    def leaf(self, task_id: int) -> ActionNode:
        """Create a leaf for a sequence id."""
        node = ActionNode("leaf")
        self._by_id[task_id] = node
        return node

    def leaf_done(self, task_id: int) -> None:
        """Record that the task with this (first-attempt) id has its final outcome."""
        node = self._by_id.pop(task_id, None)
        if node is not None:
            node.done = True

    def retry_allocation(self) -> None:
        """A retry timer or re-attempt took a sequence id (in both runtimes, at this event)."""
        self._retry_allocations += 1

    def add_top(self, node: ActionNode, now: Any) -> None:
        """Append a top-level action the SDK emitted now."""
        self._tops.append(node)
        self._stamps.append((self._retry_allocations, now))

    @property
    def invoked(self) -> int:
        """How many top-level actions the shim would have invoked (call `settle` first)."""
        return self._cursor

    @property
    def not_invoked(self) -> int:
        """Top-level actions the shim would not have invoked yet (call `settle` first)."""
        return len(self._tops) - self._cursor

    def settle(self, now: Any) -> None:
        """Advance the shim's cursor as far as .NET would at this point of the history."""
        while True:
            if self._free_at is None:
                if not self._tops[self._cursor - 1].finished():
                    return
                self._free_at = self._retry_allocations
            if self._cursor == len(self._tops):
                return
            # The shim invokes the next action now: .NET numbers it after `_free_at` retry
            # allocations, the SDK numbered it after the count stamped when it was emitted.
            allocations, emitted = self._stamps[self._cursor]
            if allocations != self._free_at and self.misattributed is None:
                self.misattributed = self._cursor
            lag = (now - emitted).total_seconds()
            if lag > 0:
                self.delayed.append((self._cursor, lag))
            self._cursor += 1
            self._free_at = None


def find_nondeterminism(known: list[Any], top_level: list[dict[str, Any]]) -> Optional[str]:
    """Describe how this replay's actions differ from earlier ones, or None if they do not.

    Args:
        known: Signatures of the top-level actions seen in earlier replays.
        top_level: Top-level actions the SDK returned now.
    """
    if len(top_level) < len(known):
        return (f"Non-deterministic orchestration detected: the replay scheduled "
                f"{len(top_level)} actions where an earlier one scheduled {len(known)}. "
                f"Orchestrator code must make the same calls in the same order on every replay.")
    for index, (action, before) in enumerate(zip(top_level, known)):
        now = signature(action)
        if now != before:
            return (f"Non-deterministic orchestration detected: action #{index} was "
                    f"{describe(before)} in an earlier replay and is {describe(now)} now. "
                    f"Orchestrator code must make the same "
                    f"calls in the same order on every replay (no datetime.now(), random, "
                    f"set iteration or changing configuration inside the orchestrator).")
    return None
