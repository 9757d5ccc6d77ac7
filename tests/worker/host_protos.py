"""A stand-in for the protobuf module the Functions host hands the Python worker.

Why a stand-in: on Python 3.13+ the worker library (`azure-functions-runtime`) receives the
generated `FunctionRpc.proto` classes from the host-side proxy, which only ships inside the
Functions host. This module mirrors the messages, fields and enum values the library touches
(names and numbers as in `FunctionRpc.proto`). Like protobuf it rejects unknown fields, wrong
scalar types and two members of one `oneof`, so a value the real host could not carry fails here
too. Runs inside the worker venv (Python 3.13); it imports nothing outside the standard library.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar


class Message:
    """A protobuf-like message: keyword fields with defaults, type checks and `oneof` groups."""

    FIELDS: ClassVar[dict[str, Any]] = {}
    """Field name -> default factory; a `type` value also type-checks assignments."""
    ONEOFS: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self, **kwargs: Any) -> None:
        for name in kwargs:
            if name not in self.FIELDS:
                raise ValueError(f'Protocol message {type(self).__name__} has no "{name}" field.')
        for group, members in self.ONEOFS.items():
            set_members = [m for m in members if kwargs.get(m) is not None]
            if len(set_members) > 1:
                raise ValueError(f"{type(self).__name__}: oneof {group} got {set_members}")
        self._set = {k for k, v in kwargs.items() if v is not None}
        in_oneof = {m for members in self.ONEOFS.values() for m in members}
        for name, kind in self.FIELDS.items():
            value = kwargs.get(name)
            if value is None:
                # An unset oneof member stays None (the worker reads them through WhichOneof);
                # other fields read as protobuf defaults: "", 0, False, {}, [] or an empty message.
                value = None if name in in_oneof or kind is object else kind()
            elif isinstance(kind, type) and kind is not object and not isinstance(value, kind):
                # protobuf: int fields take bool too, double fields take int; nothing else coerces
                if not (kind is float and isinstance(value, int) and not isinstance(value, bool)):
                    raise TypeError(f"{type(self).__name__}.{name}: {type(value).__name__} "
                                    f"is not {kind.__name__}")
            setattr(self, name, value)

    def WhichOneof(self, group: str) -> str | None:  # noqa: N802 - protobuf's name
        """The member of `group` that was set, like protobuf's `WhichOneof`."""
        return next((m for m in self.ONEOFS[group] if m in self._set), None)

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's name
        return name in self._set

    def __repr__(self) -> str:
        shown = {k: getattr(self, k) for k in sorted(self._set)}
        return f"{type(self).__name__}({shown})"


class RpcException(Message):
    FIELDS = {"source": str, "stack_trace": str, "message": str, "is_user_exception": bool, "type": str}


class StatusResult(Message):
    Failure, Success, Cancelled = 0, 1, 2
    FIELDS = {"status": int, "result": str, "exception": RpcException, "logs": list}


class RpcHttpCookie(Message):
    class SameSite:
        Lax, Strict, ExplicitNone = 1, 2, 3

    FIELDS = {"name": str, "value": str, "domain": object, "path": object, "expires": object,
              "secure": object, "http_only": object, "same_site": int, "max_age": object}


setattr(RpcHttpCookie.SameSite, "None", 0)


class NullableString(Message):
    FIELDS = {"value": str}
    ONEOFS = {"string": ("value",)}


class NullableBool(Message):
    FIELDS = {"value": bool}
    ONEOFS = {"bool": ("value",)}


class NullableDouble(Message):
    FIELDS = {"value": float}
    ONEOFS = {"double": ("value",)}


class NullableTimestamp(Message):
    FIELDS = {"value": object}
    ONEOFS = {"timestamp": ("value",)}


class TypedData(Message):
    FIELDS: ClassVar[dict[str, Any]] = {}  # filled below: RpcHttp refers back to TypedData
    ONEOFS = {"data": ("string", "json", "bytes", "stream", "http", "int", "double",
                       "collection_bytes", "collection_string", "collection_double",
                       "collection_sint64", "model_binding_data", "collection_model_binding_data")}


class RpcHttp(Message):
    FIELDS = {"method": str, "url": str, "headers": dict, "body": TypedData, "params": dict,
              "status_code": str, "query": dict, "enable_content_negotiation": bool,
              "rawBody": TypedData, "identities": list, "cookies": list, "nullable_headers": dict,
              "nullable_params": dict, "nullable_query": dict}


TypedData.FIELDS = {"string": str, "json": str, "bytes": bytes, "stream": bytes, "http": RpcHttp,
                    "int": int, "double": float, "collection_bytes": object,
                    "collection_string": object, "collection_double": object,
                    "collection_sint64": object, "model_binding_data": object,
                    "collection_model_binding_data": object}


class RpcSharedMemory(Message):
    FIELDS = {"name": str, "offset": int, "count": int, "type": int}


class ParameterBinding(Message):
    FIELDS = {"name": str, "data": TypedData, "rpc_shared_memory": RpcSharedMemory}
    ONEOFS = {"rpc_data": ("data", "rpc_shared_memory")}


class BindingInfo(Message):
    # enum Direction { in = 0; out = 1; inout = 2; }  enum DataType { undefined..stream }
    out, inout = 1, 2
    undefined, string, binary, stream = 0, 1, 2, 3
    FIELDS = {"type": str, "direction": int, "data_type": int, "properties": dict}


setattr(BindingInfo, "in", 0)


class RpcRetryOptions(Message):
    class RetryStrategy:
        exponential_backoff, fixed_delay = 0, 1

    FIELDS = {"max_retry_count": int, "delay_interval": dt.timedelta,
              "minimum_interval": dt.timedelta, "maximum_interval": dt.timedelta,
              "retry_strategy": object}


class RpcFunctionMetadata(Message):
    FIELDS = {"name": str, "directory": str, "script_file": str, "entry_point": str,
              "bindings": dict, "is_proxy": bool, "status": StatusResult, "language": str,
              "raw_bindings": list, "function_id": str, "managed_dependency_enabled": bool,
              "retry_options": object, "properties": dict}


class WorkerMetadata(Message):
    FIELDS = {"runtime_name": str, "runtime_version": str, "worker_version": str,
              "worker_bitness": str, "custom_properties": dict}


class WorkerInitResponse(Message):
    FIELDS = {"worker_version": str, "capabilities": dict, "worker_metadata": WorkerMetadata,
              "result": StatusResult}


class FunctionMetadataResponse(Message):
    FIELDS = {"function_metadata_results": object, "result": StatusResult,
              "use_default_metadata_indexing": bool}


class FunctionLoadResponse(Message):
    FIELDS = {"function_id": str, "result": StatusResult, "is_dependency_downloaded": bool}


class RpcTraceContext(Message):
    FIELDS = {"trace_parent": str, "trace_state": str, "attributes": dict}


class RetryContext(Message):
    FIELDS = {"retry_count": int, "max_retry_count": int, "exception": RpcException}


class InvocationRequest(Message):
    FIELDS = {"invocation_id": str, "function_id": str, "input_data": list,
              "trigger_metadata": dict, "trace_context": RpcTraceContext,
              "retry_context": RetryContext}


class InvocationResponse(Message):
    FIELDS = {"invocation_id": str, "output_data": list, "return_value": object,
              "result": StatusResult}


class WorkerInitRequest(Message):
    FIELDS = {"host_version": str, "capabilities": dict, "log_categories": dict,
              "worker_directory": str, "function_app_directory": str}
