import grpc
import pytest

from ctrl_worker.errors import invalid, rpc_method


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
