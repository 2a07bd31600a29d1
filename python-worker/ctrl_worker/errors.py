"""Request errors and their mapping to gRPC status codes.

Every handler raises `RequestError` (or one of its helpers) for bad input; `rpc_method` turns it
into a gRPC status whose message names the field, and turns anything unexpected into INTERNAL
without taking the worker down.
"""

from __future__ import annotations

import functools
import inspect
import logging
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


def _status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    code, message = _classify(error)
    # Leading or trailing whitespace makes the grpc-message header invalid: clients then see "".
    return code, " ".join(message.split())


def _classify(error: BaseException) -> tuple[grpc.StatusCode, str]:
    if isinstance(error, RequestError):
        return error.code, str(error)
    if _is_out_of_memory(error):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, f"out of memory: {error}"
    log.error("internal error:\n%s", "".join(traceback.format_exception(error)))
    return grpc.StatusCode.INTERNAL, f"internal error in the worker: {type(error).__name__}: {error}"


def _is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, MemoryError):
        return True
    try:
        import torch

        return isinstance(error, torch.OutOfMemoryError)
    except (ImportError, AttributeError):
        return False


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
        try:
            response = handler(self, request, context)
        except Exception as error:  # noqa: BLE001 - the worker must survive any request
            finish(self, started, ok=False)
            context.abort(*_status_for(error))
        finish(self, started, ok=True)
        return response

    return unary
