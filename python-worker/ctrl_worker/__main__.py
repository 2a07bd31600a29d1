"""`python -m ctrl_worker`: start the worker. Normally spawned by the TypeScript orchestrator.

Data parallel: start one worker a rank with torchrun and --distributed, e.g. `torchrun
--nproc-per-node 2 -m ctrl_worker --distributed --listen tcp:127.0.0.1:50051`; each joins the
torch.distributed group before it serves (rank LOCAL_RANK listens on 50051 + LOCAL_RANK).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ctrl_worker", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--listen",
        default="unix",
        help="'unix' (private socket, default) or 'tcp:127.0.0.1:PORT' (token required); with --distributed and a PORT "
        "other than 0, each worker listens on PORT + LOCAL_RANK, so one torchrun command line serves several ranks a machine",
    )
    parser.add_argument("--telemetry", default=None, help="ZeroMQ address of the orchestrator's SUB socket, e.g. ipc:///tmp/x")
    parser.add_argument("--worker-id", default=f"worker-{os.getpid()}", help="name carried by telemetry events")
    parser.add_argument(
        "--device", default="auto", help="'auto' (CUDA when available; cuda:LOCAL_RANK with --distributed), 'cpu', 'cuda' or 'cuda:N'"
    )
    parser.add_argument("--max-message-mb", type=int, default=64, help="largest gRPC message accepted or sent")
    parser.add_argument("--max-samples", type=int, default=4096, help="largest batch one trajectory may hold")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 leaves torch's default")
    parser.add_argument("--no-watch-stdin", action="store_true", help="do not exit when stdin closes")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join the torch.distributed group of torchrun's RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (LOCAL_RANK "
        "optional) before serving: nccl on CUDA, gloo on the CPU; without this flag those variables are ignored",
    )
    parser.add_argument(
        "--distributed-timeout-s",
        type=float,
        default=600.0,
        help="with --distributed: how long to wait for every rank to join, and for each collective (default 600)",
    )
    args = parser.parse_args(argv)
    if not math.isfinite(args.distributed_timeout_s) or args.distributed_timeout_s <= 0:
        parser.error("--distributed-timeout-s must be positive")
    if args.max_message_mb < 1:
        parser.error("--max-message-mb must be at least 1")
    if args.max_samples < 1:
        parser.error("--max-samples must be at least 1")
    if args.threads < 0:
        parser.error("--threads must be 0 or more")
    return args


def resolve_device(spec: str, local_rank: int | None = None):
    """The --device; `local_rank` (with --distributed) picks the GPU that 'auto' means."""
    import torch

    if spec == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        if local_rank is None:
            return torch.device("cuda")
        if local_rank >= torch.cuda.device_count():
            raise SystemExit(f"--device auto: LOCAL_RANK={local_rank}, but torch sees {torch.cuda.device_count()} GPUs")
        return torch.device("cuda", local_rank)
    try:
        device = torch.device(spec)
    except RuntimeError as error:
        raise SystemExit(f"--device: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device: CUDA was asked for but torch sees no GPU")
    if device.type not in {"cpu", "cuda"}:
        raise SystemExit(f"--device: expected cpu or cuda, got {spec!r}")
    return device


def listen_for_rank(listen: str, local_rank: int) -> str:
    """tcp:HOST:PORT becomes tcp:HOST:PORT+LOCAL_RANK (PORT 0, any free port, and 'unix' stay)."""
    if not listen.startswith("tcp:"):
        return listen
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return listen  # a malformed address is refused by the server with its own message
    shifted = int(port) + local_rank
    if shifted > 65535:
        raise SystemExit(f"--listen: PORT + LOCAL_RANK = {port} + {local_rank} is above 65535")
    return f"{host}:{shifted}"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Logs go to stderr; stdout carries only the readiness line.
    logging.basicConfig(stream=sys.stderr, level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from .ctrl import data_parallel
    from .rpc.server import ServerOptions, serve

    listen, local_rank = args.listen, None
    if args.distributed:
        local_rank = data_parallel.read_env().local_rank  # checked before anything starts
        listen = listen_for_rank(args.listen, local_rank)
    device = resolve_device(args.device, local_rank)
    options = ServerOptions(
        listen=listen,
        telemetry=args.telemetry,
        worker_id=args.worker_id,
        device=args.device,
        max_message_bytes=args.max_message_mb * 1024 * 1024,
        max_samples=args.max_samples,
        watch_stdin=not args.no_watch_stdin,
    )
    if args.distributed:
        # Before serving: the readiness line means every rank has joined.
        group = data_parallel.init_from_env(device, args.distributed_timeout_s)
        logging.getLogger("ctrl_worker").info(
            "joined the %s group: rank %d of %d (local rank %d, device %s)",
            group.backend, group.rank, group.world_size, group.local_rank, device,
        )
    try:
        serve(options, device)
    finally:
        data_parallel.close()


if __name__ == "__main__":
    main()
