"""Request errors and their mapping to gRPC status codes.

Every handler raises `RequestError` (or one of its helpers) for bad input; `rpc_method` turns it
into a gRPC status whose message names the field, and turns anything unexpected into INTERNAL
without taking the worker down. One kind of error does take it down: a device or process-group
failure after which nothing the worker holds can be used again (a CUDA error other than running
out of memory poisons the CUDA context; a failed collective breaks the torch.distributed group).
The call gets UNAVAILABLE and the process exits with FATAL_EXIT_CODE a moment later, so that the
orchestrator sees a crash and restarts it (src/ctrl/recovery.ts) instead of calling a dead GPU.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import threading
import time
import traceback

import grpc

log = logging.getLogger("ctrl_worker")


class RequestError(Exception):
    """A request the worker refuses; `code` is the gRPC status it travels as."""

    def __init__(self, code: grpc.StatusCode, field: str | None, message: str):
        self.code = code
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


def invalid(field: str, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, field, message)


def not_found(field: str, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.NOT_FOUND, field, message)


def precondition(field: str | None, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.FAILED_PRECONDITION, field, message)


def exhausted(field: str | None, message: str) -> RequestError:
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, field, message)


# The status message travels as the grpc-message header, percent-encoded (a non-ASCII byte takes
# three characters); past the peer's header limit (8 KiB by default) the call fails with "Stream
# removed" instead of the message. This budget keeps it well below.
MAX_STATUS_CHARS = 4000


def shorten(value: object, limit: int = 200, quote: bool = True) -> str:
    """repr(value) (str(value) without `quote`), cut to about `limit` characters: error messages
    echo user input, which can be huge."""
    text = repr(value) if quote else str(value)
    if len(text) <= limit:
        return text
    return f"{text[: limit - 40]}... ({len(text) - limit + 40} more characters)"


def _status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    code, message = _classify(error)
    # Leading or trailing whitespace makes the grpc-message header invalid: clients then see "".
    return code, _fit_header(" ".join(message.split()))


def _fit_header(message: str) -> str:
    """The message cut so that its percent-encoded form stays within MAX_STATUS_CHARS."""
    used = 0
    for i, char in enumerate(message):
        used += 1 if " " <= char <= "~" else 3 * len(char.encode("utf-8", "replace"))
        if used > MAX_STATUS_CHARS - 60:
            return f"{message[:i]}... (message cut, {len(message) - i} more characters)"
    return message


def _classify(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, RequestError):
        return error.code, str(error)
    if is_out_of_memory(error):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"out of memory: {error}"
    if is_fatal(error):
        log.error("unrecoverable %s: %s; exiting with code %d", type(error).__name__, error, FATAL_EXIT_CODE)
        exit_soon()
        return grpc.StatusCode.UNAVAILABLE, f"unrecoverable {type(error).__name__}, the worker exits: {error}"
    user_data = _user_data_error(error)
    if user_data is not None:
        # Request paths reach files and parsers below the boundaries that name the field; what
        # escapes them is still a problem with the user's data, not a bug of the worker.
        log.warning("user data error outside a boundary: %s: %s", type(error).__name__, error)
        return grpc.StatusCode.INVALID_ARGUMENT, user_data
    log.error("internal error:\n%s", "".join(traceback.format_exception(error)))
    return grpc.StatusCode.INTERNAL, f"internal error in the worker: {type(error).__name__}: {error}"


def _user_data_error(error: BaseException) -> str | None:
    """A message for errors that only the user's files or inputs cause, None for anything else."""
    if isinstance(error, OSError):
        where = f" ({shorten(error.filename)})" if error.filename else ""
        return f"file system error{where}: {error.strerror or error}"
    if isinstance(error, UnicodeError):
        return f"undecodable text: {error}"
    if isinstance(error, RecursionError):
        return "input nested too deeply to parse"
    return None


# Messages of allocation failures that torch raises as a plain RuntimeError (CPU allocator, and
# CUDA builds older than torch.OutOfMemoryError).
_OOM_MESSAGES = ("DefaultCPUAllocator: can't allocate memory", "not enough memory", "CUDA out of memory", "out of memory")


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import torch

        if isinstance(error, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    return isinstance(error, RuntimeError) and any(m in str(error) for m in _OOM_MESSAGES)


FATAL_EXIT_CODE = 75  # EX_TEMPFAIL: try again with a fresh process
_FATAL_DELAY_S = 0.5  # time for the status to reach the client before the process goes
_exiting = threading.Event()


def is_fatal(error: BaseException) -> bool:
    """A CUDA error (not out-of-memory, caught before) or a failed collective: the process's device
    context or process group cannot be used again."""
    try:
        import torch
        import torch.distributed as dist
    except ImportError:
        return False
    if isinstance(error, (torch.AcceleratorError, dist.DistError)):
        return True
    return isinstance(error, RuntimeError) and ("CUDA error" in str(error) or "device-side assert" in str(error))


def exit_process(code: int) -> None:
    os._exit(code)  # not sys.exit: threads blocked in a dead device or collective would hold it up


def exit_soon() -> None:
    """Exits the process with FATAL_EXIT_CODE shortly (once), after the failing call's status is sent."""
    if _exiting.is_set():
        return
    _exiting.set()
    timer = threading.Timer(_FATAL_DELAY_S, lambda: exit_process(FATAL_EXIT_CODE))
    timer.daemon = True
    timer.start()


def _call_scope(service):
    """The service's handle registry's scope for one call (its leases), if it has one."""
    handles = getattr(service, "handles", None)
    return handles.call_scope() if hasattr(handles, "call_scope") else contextlib.nullcontext()


def cancelled(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.CANCELLED, None, message)


def rpc_method(handler):
    """Wraps a servicer method (unary or server-streaming) so that no exception escapes it, and
    reports its duration to the servicer's telemetry."""
    name = handler.__name__

    def finish(self, started: float, ok: bool) -> None:
        telemetry = getattr(self, "telemetry", None)
        if telemetry is not None:
            telemetry.rpc_done(name, time.perf_counter() - started, ok)

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streaming(self, request, context):
            started = time.perf_counter()
            with _call_scope(self):
                try:
                    yield from handler(self, request, context)
                except Exception as error:  # noqa: BLE001 - the worker must survive any request
                    finish(self, started, ok=False)
                    context.abort(*_status_for(error))
            finish(self, started, ok=True)

        return streaming

    @functools.wraps(handler)
    def unary(self, request, context):
        started = time.perf_counter()
        with _call_scope(self):
            try:
                response = handler(self, request, context)
            except Exception as error:  # noqa: BLE001 - the worker must survive any request
                finish(self, started, ok=False)
                context.abort(*_status_for(error))
        finish(self, started, ok=True)
        return response

    return unary
