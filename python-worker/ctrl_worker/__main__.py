"""`python -m ctrl_worker`: start the worker. Normally spawned by the TypeScript orchestrator."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ctrl_worker", description=__doc__)
    parser.add_argument("--listen", default="unix", help="'unix' (private socket, default) or 'tcp:127.0.0.1:PORT' (token required)")
    parser.add_argument("--telemetry", default=None, help="ZeroMQ address of the orchestrator's SUB socket, e.g. ipc:///tmp/x")
    parser.add_argument("--worker-id", default=f"worker-{os.getpid()}", help="name carried by telemetry events")
    parser.add_argument("--device", default="auto", help="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'")
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message accepted or sent")
    parser.add_argument("--max-samples", type=int, default=4096, help="largest batch one trajectory may hold")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 leaves torch's default")
    parser.add_argument("--no-watch-stdin", action="store_true", help="do not exit when stdin closes")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.max_message_mb < 1:
        parser.error("--max-message-mb must be at least 1")
    if args.max_samples < 1:
        parser.error("--max-samples must be at least 1")
    if args.threads < 0:
        parser.error("--threads must be 0 or more")
    return args


def resolve_device(spec: str):
    import torch

    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise SystemExit(f"--device: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device: CUDA was asked for but torch sees no GPU")
    if device.type not in {"cpu", "cuda"}:
        raise SystemExit(f"--device: expected cpu or cuda, got {spec!r}")
    return device


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Logs go to stderr; stdout carries only the readiness line.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from .rpc.server import ServerOptions, serve

    options = ServerOptions(
        listen=args.listen,
        telemetry=args.telemetry,
        worker_id=args.worker_id,
        device=args.device,
        max_message_bytes=args.max_message_mb * 1024 * 1024,
        max_samples=args.max_samples,
        watch_stdin=not args.no_watch_stdin,
    )
    serve(options, resolve_device(args.device))


if __name__ == "__main__":
    main()
