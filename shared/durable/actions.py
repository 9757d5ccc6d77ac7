"""The action tree the SDK emits, and how the Durable extension would await it.

The SDK (replay schema V2+) returns every action since the start of the execution, one
top-level action per `yield`, with `task_all`/`task_any` as compound actions. The runtime
gives each leaf action that takes a sequence number the next id, in depth-first order,
which is the order in which the SDK numbers the tasks.

The extension's shim (`OutOfProcOrchestrationShim.ProcessAsyncActionsV2`) awaits the
top-level actions one after the other with .NET semantics, where `Task.WhenAll` finishes
only when *all* children have finished. The SDK's `task_all` fails as soon as one child
fails. So when an orchestrator catches a failed `task_all` and schedules more work while
siblings are still running, Azure schedules that work only after the siblings finish, and if
those siblings retry, their retry timers take sequence ids the SDK already gave to the new
work. `ActionTracker` detects that pattern so the runtime can warn about it.
"""

from __future__ import annotations

from typing import Any, Optional

from azure.durable_functions.models.actions.ActionType import ActionType

COMPOUND_TYPES = (int(ActionType.WHEN_ALL), int(ActionType.WHEN_ANY))


class ActionNode:
    """One action of the tree: a leaf (with a sequence id or an event name) or a compound."""

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
    return (action_type, action.get("functionName") or action.get("externalEventName"))


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
    """Top-level actions of one execution and which of them the extension still awaits."""

    def __init__(self) -> None:
        self._tops: list[ActionNode] = []
        self._first_open = 0
        self._by_id: dict[int, ActionNode] = {}
        self._by_event: dict[str, list[ActionNode]] = {}
        self.warned = False

    def leaf(self, task_id: Optional[int] = None, event: Optional[str] = None) -> ActionNode:
        """Create a leaf for a sequence id (or an external-event name)."""
        node = ActionNode("leaf")
        if task_id is not None:
            self._by_id[task_id] = node
        elif event is not None:
            self._by_event.setdefault(event, []).append(node)
        else:
            node.done = True
        return node

    def leaf_done(self, task_id: int) -> None:
        """Record that the task with this (first-attempt) id has its final outcome."""
        node = self._by_id.pop(task_id, None)
        if node is not None:
            node.done = True

    def event_done(self, name: str) -> None:
        """Record that an external event with this name arrived."""
        waiting = self._by_event.get(name)
        if waiting:
            waiting.pop(0).done = True

    def unfinished_before_new(self) -> bool:
        """True if the extension would still be awaiting an earlier top-level action."""
        while self._first_open < len(self._tops) and self._tops[self._first_open].finished():
            self._first_open += 1
        return self._first_open < len(self._tops)

    def add_top(self, node: ActionNode) -> None:
        """Append a new top-level action."""
        self._tops.append(node)


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
