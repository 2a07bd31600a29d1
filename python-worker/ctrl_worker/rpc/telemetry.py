"""One-way telemetry: msgpack events on a ZeroMQ PUB socket that connects to the orchestrator.

The orchestrator binds a SUB socket and several workers may connect to it. Nothing depends on
these events for correctness: with no address configured, publishing is a no-op, and a full
queue drops events instead of blocking the worker.
"""

from __future__ import annotations

import os
import resource
import threading
import time

import msgpack


class Telemetry:
    def __init__(self, address: str | None, worker_id: str):
        self.worker_id = worker_id
        self._lock = threading.Lock()  # zmq sockets are not thread-safe; handlers run in a pool
        self._socket = None
        if address:
            import zmq

            self._context = zmq.Context.instance()
            self._socket = self._context.socket(zmq.PUB)
            self._socket.setsockopt(zmq.SNDHWM, 10_000)
            self._socket.setsockopt(zmq.LINGER, 200)
            self._socket.connect(address)

    def publish(self, topic: str, **fields) -> None:
        if self._socket is None:
            return
        event = {"topic": topic, "worker": self.worker_id, "pid": os.getpid(), "time": time.time(), **fields}
        payload = msgpack.packb(event, use_bin_type=True)
        import zmq

        with self._lock:
            try:
                self._socket.send_multipart([topic.encode(), payload], flags=zmq.NOBLOCK)
            except zmq.Again:
                pass  # the subscriber is slow or gone: drop, never block the worker

    def progress(self, task: str, step: int, total: int, **fields) -> None:
        self.publish("progress", task=task, step=step, total=total, **fields)

    def rpc_done(self, method: str, seconds: float, ok: bool) -> None:
        self.publish("rpc", method=method, seconds=seconds, ok=ok, **memory_snapshot())

    def close(self) -> None:
        if self._socket is not None:
            with self._lock:
                self._socket.close()
                self._socket = None


def memory_snapshot() -> dict[str, int]:
    """Peak resident memory of the process and, on CUDA, the allocator's current and peak bytes."""
    snapshot = {"max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    try:
        import torch

        if torch.cuda.is_available():
            snapshot["cuda_allocated_bytes"] = torch.cuda.memory_allocated()
            snapshot["cuda_peak_bytes"] = torch.cuda.max_memory_allocated()
    except ImportError:
        pass
    return snapshot
