"""Instance-id rules of Durable Functions, as the extension and Durable Task apply them.

Sources (azure-functions-durable-extension at a7c6d694, Azure/durabletask at 52170329):
- `start_new`: `DurableClient.StartNewAsync` (`src/WebJobs.Extensions.DurableTask/
  ContextImplementations/DurableClient.cs` lines 33, 178-215) rejects ids that start with `@`,
  contain `/ \\ # ?` or control characters, or are longer than 256 characters. An existing
  instance is overwritten unless its status is one of the de-dupe statuses; the default
  `OverridableExistingInstanceStates = NonRunningStates` (`Options/DurableTaskOptions.cs`
  line 188, `OverridableStates.cs` lines 35-54) de-dupes Running, ContinuedAsNew, Pending and
  Suspended: a Completed, Failed or Terminated instance is replaced.
- sub-orchestrations: the extension only rejects the caller's own id, its parent's id and a
  leading `@` (`ContextImplementations/DurableOrchestrationContext.cs` lines 593-607). Durable
  Task then sends an ExecutionStarted message with a new execution id
  (`src/DurableTask.Core/TaskOrchestrationDispatcher.cs`, `ProcessCreateSubOrchestrationInstanceDecision`)
  and the Azure Storage backend never de-dupes it (`src/DurableTask.AzureStorage/
  OrchestrationSessionManager.cs` lines 252-255: "De-dupe protection for sub-orchestrations is
  not implemented"): the new execution loads no history (`Tracking/AzureTableTrackingStore.cs`
  lines 164-202) and replaces whatever instance had the id, finished or running. The MSSQL
  backend instead discards it ("Target is in the Completed state", microsoft/durabletask-mssql
  issue #148) and the parent waits for ever.
The id is also the Azure Table partition key of the history and instances tables, hence the
character rules for sub-orchestrations too.
"""

from __future__ import annotations

import unicodedata
from typing import Optional

MAX_INSTANCE_ID_LENGTH = 256


def instance_id_problem(instance_id: str) -> Optional[str]:
    """Why Durable would reject this instance id, or None if it is valid."""
    if not instance_id:
        return "an orchestration instance id must not be empty"
    if instance_id.startswith("@"):
        return f"orchestration instance ids must not start with @ ('{instance_id[:80]}')"
    if any(c in "/\\#?" or unicodedata.category(c) == "Cc" for c in instance_id):
        return (f"orchestration instance ids must not contain /, \\, #, ?, or control characters "
                f"('{instance_id[:80]!r}')")
    if len(instance_id) > MAX_INSTANCE_ID_LENGTH:
        return (f"instance ID lengths must not exceed {MAX_INSTANCE_ID_LENGTH} characters "
                f"({len(instance_id)}: '{instance_id[:80]}...')")
    return None
