"""Builders for Durable Task history events, in the JSON shape the extension sends to Python.

Every event carries `EventType`, `EventId`, `IsPlayed` and `Timestamp`; the rest are the
fields the SDK's replay (`TaskOrchestrationExecutor`) reads. Events that schedule work
(TaskScheduled, TimerCreated, SubOrchestrationInstanceCreated) use the task's sequence
number as `EventId`; completions point back to it with `TaskScheduledId` / `TimerId`.
All other events use `EventId` -1, as Durable Task does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from azure.durable_functions.models.history import HistoryEventType

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
"""The SDK's own datetime format (`azure.durable_functions.constants.DATETIME_STRING_FORMAT`)."""


def format_timestamp(moment: datetime) -> str:
    """Format an aware (or naive UTC) datetime the way the extension does."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime(TIMESTAMP_FORMAT)


def parse_timestamp(text: str) -> datetime:
    """Parse a `fireAt`/`Timestamp` string into an aware UTC datetime."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _event(event_type: HistoryEventType, at: datetime, event_id: int = -1,
           **fields: Any) -> dict[str, Any]:
    event = {"EventType": int(event_type), "EventId": event_id, "IsPlayed": False,
             "Timestamp": format_timestamp(at)}
    event.update(fields)
    return event


def execution_started(at: datetime, name: str, input_json: Optional[str], instance_id: str,
                      execution_id: str, parent: Optional[dict[str, Any]] = None,
                      version: str = "") -> dict[str, Any]:
    """ExecutionStarted: the orchestration's name and input (a JSON string or None)."""
    return _event(HistoryEventType.EXECUTION_STARTED, at, Name=name, Input=input_json,
                  Version=version,
                  OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
                  ParentInstance=parent)


def execution_completed(at: datetime, status: str, result: Optional[str]) -> dict[str, Any]:
    """ExecutionCompleted with `OrchestrationStatus` Completed or Failed."""
    return _event(HistoryEventType.EXECUTION_COMPLETED, at, OrchestrationStatus=status,
                  Result=result)


def execution_terminated(at: datetime, reason: Optional[str]) -> dict[str, Any]:
    """ExecutionTerminated, recorded when a client terminates the instance."""
    return _event(HistoryEventType.EXECUTION_TERMINATED, at, Input=reason)


def orchestrator_started(at: datetime) -> dict[str, Any]:
    """OrchestratorStarted opens an episode; its Timestamp is `context.current_utc_datetime`."""
    return _event(HistoryEventType.ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: datetime) -> dict[str, Any]:
    """OrchestratorCompleted closes an episode."""
    return _event(HistoryEventType.ORCHESTRATOR_COMPLETED, at)


def task_scheduled(at: datetime, task_id: int, name: str,
                   input_json: Optional[str]) -> dict[str, Any]:
    """TaskScheduled: an activity call (one attempt) with sequence number `task_id`."""
    return _event(HistoryEventType.TASK_SCHEDULED, at, task_id, Name=name, Input=input_json)


def task_completed(at: datetime, task_id: int, result_json: Optional[str]) -> dict[str, Any]:
    """TaskCompleted: `Result` is the activity output as a JSON string."""
    return _event(HistoryEventType.TASK_COMPLETED, at, TaskScheduledId=task_id,
                  Result=result_json)


def task_failed(at: datetime, task_id: int, reason: str, details: str) -> dict[str, Any]:
    r"""TaskFailed: the SDK raises `Exception(f"{Reason} \n {Details}")` in the orchestrator."""
    return _event(HistoryEventType.TASK_FAILED, at, TaskScheduledId=task_id, Reason=reason,
                  Details=details)


def timer_created(at: datetime, timer_id: int, fire_at: datetime) -> dict[str, Any]:
    """TimerCreated with sequence number `timer_id`."""
    return _event(HistoryEventType.TIMER_CREATED, at, timer_id, FireAt=format_timestamp(fire_at))


def timer_fired(at: datetime, timer_id: int, fire_at: datetime) -> dict[str, Any]:
    """TimerFired: matched to its timer by `TimerId`."""
    return _event(HistoryEventType.TIMER_FIRED, at, TimerId=timer_id,
                  FireAt=format_timestamp(fire_at))


def sub_orchestration_created(at: datetime, task_id: int, name: str, instance_id: str,
                              input_json: Optional[str]) -> dict[str, Any]:
    """SubOrchestrationInstanceCreated with sequence number `task_id`."""
    return _event(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED, at, task_id, Name=name,
                  InstanceId=instance_id, Input=input_json)


def sub_orchestration_completed(at: datetime, task_id: int,
                                result_json: Optional[str]) -> dict[str, Any]:
    """SubOrchestrationInstanceCompleted: `Result` is the child's output as a JSON string."""
    return _event(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED, at,
                  TaskScheduledId=task_id, Result=result_json)


def sub_orchestration_failed(at: datetime, task_id: int, reason: str,
                             details: str) -> dict[str, Any]:
    """SubOrchestrationInstanceFailed, shaped like TaskFailed."""
    return _event(HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED, at,
                  TaskScheduledId=task_id, Reason=reason, Details=details)
