import grpc
import pytest

from ctrl_worker.rpc.errors import invalid, rpc_method


class AbortCalled(Exception):
    pass


class FakeContext:
    def abort(self, code, details):
        self.code, self.details = code, details
        raise AbortCalled


class Telemetry:
    def __init__(self):
        self.calls = []

    def rpc_done(self, method, seconds, ok):
        self.calls.append((method, ok))


class Service:
    def __init__(self):
        self.telemetry = Telemetry()

    @rpc_method
    def Bad(self, request, context):
        raise invalid("field", "is wrong ")

    @rpc_method
    def Boom(self, request, context):
        raise KeyError("surprise")

    @rpc_method
    def Stream(self, request, context):
        yield 1
        raise MemoryError()

    @rpc_method
    def Good(self, request, context):
        return 42


def test_request_errors_keep_their_code_and_lose_stray_whitespace():
    service, context = Service(), FakeContext()
    with pytest.raises(AbortCalled):
        service.Bad(None, context)
    assert (context.code, context.details) == (grpc.StatusCode.INVALID_ARGUMENT, "field: is wrong")
    assert service.telemetry.calls == [("Bad", False)]


def test_unexpected_errors_become_internal_and_out_of_memory_resource_exhausted():
    service, context = Service(), FakeContext()
    with pytest.raises(AbortCalled):
        service.Boom(None, context)
    assert context.code == grpc.StatusCode.INTERNAL
    assert "KeyError" in context.details
    stream = service.Stream(None, context)
    assert next(stream) == 1
    with pytest.raises(AbortCalled):
        next(stream)
    assert context.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert service.Good(None, context) == 42
    assert service.telemetry.calls[-1] == ("Good", True)


@pytest.mark.parametrize(
    "error, code",
    [
        (RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried 1 TB"),
         grpc.StatusCode.RESOURCE_EXHAUSTED),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (OSError(36, "File name too long", "x" * 300), grpc.StatusCode.INVALID_ARGUMENT),
        (UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte"), grpc.StatusCode.INVALID_ARGUMENT),
        (RecursionError("maximum recursion depth exceeded"), grpc.StatusCode.INVALID_ARGUMENT),
        # Bugs of the worker's own code stay INTERNAL, so that they are seen and fixed.
        (TypeError("unsupported operand"), grpc.StatusCode.INTERNAL),
        (RuntimeError("shape mismatch"), grpc.StatusCode.INTERNAL),
    ],
)
def test_errors_are_classified_by_their_cause(error, code):
    from ctrl_worker.rpc.errors import _status_for

    assert _status_for(error)[0] == code


def test_status_messages_stay_below_the_header_limit():
    from ctrl_worker.rpc.errors import MAX_STATUS_CHARS, _status_for, shorten

    for text in ["x" * 100_000, "é" * 100_000, "\u4e2d" * 50_000]:
        code, message = _status_for(invalid("field", f"got {text!r}"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and message.startswith("field: got '")
        encoded = sum(1 if " " <= c <= "~" else 3 * len(c.encode()) for c in message)
        assert encoded <= MAX_STATUS_CHARS and message.endswith("more characters)")
    assert shorten("y" * 1000, 100).startswith("'yyy") and len(shorten("y" * 1000, 100)) < 130
    assert shorten("short") == "'short'"


@pytest.mark.parametrize(
    "error",
    [
        pytest.param("accelerator", id="torch.AcceleratorError"),
        pytest.param("message", id="CUDA error as a RuntimeError"),
        pytest.param("collective", id="failed all-reduce"),
    ],
)
def test_unrecoverable_device_and_group_errors_answer_unavailable_then_exit(monkeypatch, error):
    """A poisoned CUDA context or a broken process group cannot serve again: the call says so and
    the process exits (code 75) just after, so the orchestrator restarts it."""
    import threading

    import torch

    from ctrl_worker.ctrl.data_parallel import CollectiveError
    from ctrl_worker.rpc import errors

    exits = []
    exited = threading.Event()
    monkeypatch.setattr(errors, "exit_process", lambda code: (exits.append(code), exited.set()))
    monkeypatch.setattr(errors, "_exiting", threading.Event())
    monkeypatch.setattr(errors, "_FATAL_DELAY_S", 0.01)
    raised = {
        "accelerator": torch.AcceleratorError("CUDA error: an illegal memory access was encountered"),
        "message": RuntimeError("CUDA error: device-side assert triggered"),
        "collective": CollectiveError("the gradient all-reduce failed (a rank is gone, or timed out): Connection closed by peer"),
    }[error]
    code, message = errors._status_for(raised)
    assert code == grpc.StatusCode.UNAVAILABLE
    assert message.startswith("unrecoverable ") and "the worker exits" in message
    assert exited.wait(5)
    assert exits == [errors.FATAL_EXIT_CODE]
    # Out of memory stays recoverable: the caller may retry smaller.
    assert errors._status_for(torch.OutOfMemoryError("CUDA out of memory"))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
