"""Starts the gRPC server: a Unix socket in a private directory, or TCP with a token (loopback,
or any host with a token its owner set in CTRL_WORKER_TOKEN)."""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import secrets
import shutil
import sys
import tempfile
import threading
from concurrent import futures
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from ..gen.ctrl.v1 import worker_pb2_grpc as pb_grpc
from .service import Limits, WorkerService
from .telemetry import Telemetry

log = logging.getLogger("ctrl_worker")
READY_PREFIX = "CTRL_WORKER_READY "

# Every call holds a thread until it ends, and training or sampling calls run for minutes: these
# threads serve them. The control plane (below) has threads of its own.
HEAVY_THREADS = 8
CONTROL_THREADS = 2
# Calls that answer from memory at once. On their own threads they answer within milliseconds
# while every heavy thread is busy, so a client's health watchdog tells "busy" from "hung".
CONTROL_METHODS = frozenset({"/grpc.health.v1.Health/Check", "/ctrl.v1.Worker/GetInfo", "/ctrl.v1.Worker/ListHandles"})


@dataclass(frozen=True)
class ServerOptions:
    listen: str  # "unix" or "tcp:HOST:PORT" (loopback only)
    telemetry: str | None
    worker_id: str
    device: str
    max_message_bytes: int
    max_samples: int
    watch_stdin: bool


class _TokenAuth(grpc.ServerInterceptor):
    """Refuses calls whose `authorization` metadata is not `Bearer <token>`."""

    def __init__(self, token: str):
        self._expected = f"Bearer {token}".encode()

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "authorization: missing or wrong worker token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(self, continuation, handler_call_details):
        given = dict(handler_call_details.invocation_metadata).get("authorization", "")
        if hmac.compare_digest(given.encode(), self._expected):
            return continuation(handler_call_details)
        return self._deny


class _UndecodableRequests(grpc.ServerInterceptor):
    """Bytes that are no protobuf message of the method's type get INVALID_ARGUMENT; grpc itself
    would answer INTERNAL, which must mean a bug of the worker."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        deserialize, behaviour = handler.request_deserializer, handler.unary_unary or handler.unary_stream
        method = handler_call_details.method

        def safe_deserialize(data):
            try:
                return deserialize(data)
            except Exception as error:  # noqa: BLE001 - protobuf's DecodeError, or worse bytes
                return _Undecodable(f"request: not a valid {method} request message ({type(error).__name__})")

        def guarded(request, context):
            if isinstance(request, _Undecodable):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)
            return behaviour(request, context)

        kind = "unary_stream" if handler.response_streaming else "unary_unary"
        return handler._replace(request_deserializer=safe_deserialize, **{kind: guarded})


@dataclass(frozen=True)
class _Undecodable:
    message: str


class _ControlPlane(grpc.ServerInterceptor):
    """Runs CONTROL_METHODS on a thread pool of their own. grpcio runs a method's behaviour on its
    `experimental_thread_pool` attribute when it has one (grpc/_server.py,
    _select_thread_pool_for_behavior); tests/test_control_plane.py fails if that ever stops."""

    def __init__(self, pool: futures.ThreadPoolExecutor):
        self._pool = pool

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method not in CONTROL_METHODS or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary

        def behaviour(request, context):
            return inner(request, context)

        behaviour.experimental_thread_pool = self._pool
        return handler._replace(unary_unary=behaviour)


def create_server(service: WorkerService, max_message_bytes: int, token: str | None) -> tuple[grpc.Server, health.HealthServicer]:
    """The gRPC server with the worker and health services (no port yet); with `token`, calls must
    carry it. Used by `serve` and by in-process tests."""
    # The first interceptor sees the call first; _ControlPlane wraps what _UndecodableRequests made.
    interceptors: list[grpc.ServerInterceptor] = [_TokenAuth(token)] if token else []
    control_pool = futures.ThreadPoolExecutor(max_workers=CONTROL_THREADS, thread_name_prefix="ctrl-control")
    interceptors += [_ControlPlane(control_pool), _UndecodableRequests()]
    options = [("grpc.max_receive_message_length", max_message_bytes), ("grpc.max_send_message_length", max_message_bytes)]
    heavy_pool = futures.ThreadPoolExecutor(max_workers=HEAVY_THREADS, thread_name_prefix="ctrl-call")
    server = grpc.server(heavy_pool, interceptors=interceptors, options=options)
    pb_grpc.add_WorkerServicer_to_server(service, server)
    health_service = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    return server, health_service


TOKEN_ENV = "CTRL_WORKER_TOKEN"
MIN_TOKEN_LENGTH = 32


def _tcp_address(spec: str, token_given: bool) -> tuple[str, int]:
    """tcp:HOST:PORT. HOST must be loopback unless the token was given (CTRL_WORKER_TOKEN): a worker
    reachable from other machines (a torchrun rank the orchestrator attaches to) needs a secret its
    owner chose and shares with the orchestrator."""
    host, _, port = spec.removeprefix("tcp:").rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        raise SystemExit(f"--listen: TCP host must be an IP address such as 127.0.0.1, got {host!r}") from None
    if not loopback and not token_given:
        raise SystemExit(
            f"--listen: a host other than loopback ({host}) is reachable from other machines; set {TOKEN_ENV} "
            f"(at least {MIN_TOKEN_LENGTH} characters, shared with the orchestrator) to allow it"
        )
    if not port.isdigit():
        raise SystemExit(f"--listen: expected tcp:HOST:PORT, got {spec!r}")
    return host, int(port)


def _token_from_env() -> str | None:
    token = os.environ.get(TOKEN_ENV)
    if token is None:
        return None
    if len(token) < MIN_TOKEN_LENGTH or not token.isprintable() or token.strip() != token:
        raise SystemExit(f"{TOKEN_ENV}: expected at least {MIN_TOKEN_LENGTH} printable characters without surrounding spaces")
    return token


def serve(options: ServerOptions, device) -> None:
    import torch

    telemetry = Telemetry(options.telemetry, options.worker_id)
    token = None
    private_dir = None
    if options.listen == "unix":
        # mkdtemp makes the directory 0700: only this user can reach the socket inside.
        private_dir = tempfile.mkdtemp(prefix="ctrl-worker-")
        target = f"unix:{os.path.join(private_dir, 'worker.sock')}"
    elif options.listen.startswith("tcp:"):
        given = _token_from_env()
        host, port = _tcp_address(options.listen, given is not None)
        token = given or secrets.token_urlsafe(32)
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    else:
        raise SystemExit(f"--listen: expected 'unix' or 'tcp:HOST:PORT', got {options.listen!r}")

    service = WorkerService(device, Limits(options.max_message_bytes, options.max_samples), telemetry)
    server, health_service = create_server(service, options.max_message_bytes, token)
    port = server.add_insecure_port(target)
    if port == 0:
        raise SystemExit(f"could not listen on {target}")
    if target.startswith("unix:"):
        address = target
    else:
        address = f"{target.rsplit(':', 1)[0]}:{port}"
    server.start()
    for name in ("", "ctrl.v1.Worker"):
        health_service.set(name, health_pb2.HealthCheckResponse.SERVING)

    stopped = threading.Event()
    if options.watch_stdin:
        threading.Thread(target=_watch_parent, args=(stopped,), daemon=True).start()

    # A token from the environment is its owner's secret: not echoed to stdout (often a log file).
    given = token is not None and token == os.environ.get(TOKEN_ENV)
    ready = {
        "address": address,
        "token": None if given else token,
        "token_from_env": given,
        "pid": os.getpid(),
        "device": str(device),
        "torch": torch.__version__,
    }
    sys.stdout.write(READY_PREFIX + json.dumps(ready) + "\n")
    sys.stdout.flush()
    log.info("ctrl worker %s serving on %s (device %s)", options.worker_id, address, device)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        health_service.enter_graceful_shutdown()
        server.stop(grace=1).wait()
        telemetry.close()
        if private_dir:
            shutil.rmtree(private_dir, ignore_errors=True)
        log.info("ctrl worker %s stopped", options.worker_id)


def _watch_parent(stopped: threading.Event) -> None:
    """The parent holds our stdin open; end of file means it is gone, so shut down."""
    # os.read on the raw descriptor: a thread blocked in sys.stdin's buffered reader holds its lock
    # and makes interpreter shutdown abort.
    try:
        while os.read(0, 65536):
            pass
    except OSError:
        pass
    log.info("stdin closed: the orchestrator is gone, shutting down")
    stopped.set()
