/** Spawns the Python worker with execa and waits for its readiness line, with a deadline. */
import { existsSync, rmSync } from "node:fs";
import os from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import readline from "node:readline";
import { execa, type ResultPromise } from "execa";
import { WorkerStartError } from "./errors.js";

export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const WORKER_DIR = path.join(PROJECT_ROOT, "python-worker");
const READY_PREFIX = "CTRL_WORKER_READY ";

export interface SpawnOptions {
  /** Python interpreter; default: $CTRL_PYTHON, else python-worker/.venv (made by `make setup`), else python3. */
  python?: string;
  /** Arguments that start the worker; tests replace them to simulate broken workers. */
  entry?: string[];
  /** "auto" (CUDA when available), "cpu", "cuda" or "cuda:N". */
  device?: string;
  /** "unix" (default): a socket in a private directory. "tcp": loopback, random port, token required. */
  transport?: "unix" | "tcp";
  /** ZeroMQ address the worker's telemetry PUB socket connects to. */
  telemetryAddress?: string;
  workerId?: string;
  /** Largest gRPC message in MiB, on both sides. Default 64. */
  maxMessageMb?: number;
  /** Largest number of samples in one trajectory. Default 4096. */
  maxSamples?: number;
  /** torch CPU threads; default: torch's choice. */
  threads?: number;
  /** How long to wait for the readiness line. Default 120 s (importing torch is slow on small machines). */
  readyTimeoutMs?: number;
  /** Extra environment for the worker. */
  env?: Record<string, string>;
  /** Receives each line the worker writes to stderr (its log). */
  onLog?: (line: string) => void;
  /** Lines of stderr kept for error messages. Default 30. */
  stderrTailLines?: number;
  /** Join a torch.distributed process group at start (data parallel; see group.ts). */
  distributed?: DistributedRank;
}

/** One rank's place in a process group, passed as torchrun's environment variables. */
export interface DistributedRank {
  rank: number;
  worldSize: number;
  /** Where rank 0 hosts the rendezvous store. */
  masterAddr: string;
  masterPort: number;
  /** This worker's index among the group's workers on this machine. */
  localRank: number;
}

export interface ExitInfo {
  exitCode: number | undefined;
  signal: string | undefined;
}

export interface SpawnedWorker {
  address: string;
  token: string | undefined;
  pid: number;
  maxMessageBytes: number;
  process: ResultPromise;
  exited: Promise<ExitInfo>;
  stderrTail: () => string[];
}

function distributedEnv(rank: DistributedRank | undefined): Record<string, string> {
  if (!rank) return {};
  return {
    RANK: String(rank.rank),
    WORLD_SIZE: String(rank.worldSize),
    MASTER_ADDR: rank.masterAddr,
    MASTER_PORT: String(rank.masterPort),
    LOCAL_RANK: String(rank.localRank),
  };
}

export function defaultPython(): string {
  if (process.env.CTRL_PYTHON) return process.env.CTRL_PYTHON;
  const venv = path.join(WORKER_DIR, ".venv", "bin", "python");
  return existsSync(venv) ? venv : "python3";
}

interface ReadyLine {
  address: string;
  token: string | null;
  /** The token is CTRL_WORKER_TOKEN from the worker's environment (not echoed). */
  token_from_env?: boolean;
  pid: number;
}

export async function spawnWorker(options: SpawnOptions = {}): Promise<SpawnedWorker> {
  const python = options.python ?? defaultPython();
  const maxMessageMb = options.maxMessageMb ?? 64;
  const args = options.entry ?? [
    "-m",
    "ctrl_worker",
    "--listen",
    options.transport === "tcp" ? "tcp:127.0.0.1:0" : "unix",
    "--device",
    options.device ?? "auto",
    "--max-message-mb",
    String(maxMessageMb),
    "--max-samples",
    String(options.maxSamples ?? 4096),
    ...(options.threads ? ["--threads", String(options.threads)] : []),
    ...(options.telemetryAddress ? ["--telemetry", options.telemetryAddress] : []),
    ...(options.workerId ? ["--worker-id", options.workerId] : []),
    ...(options.distributed ? ["--distributed"] : []),
  ];
  const pythonPath = [WORKER_DIR, process.env.PYTHONPATH].filter(Boolean).join(path.delimiter);
  const env: Record<string, string> = { PYTHONUNBUFFERED: "1", ...options.env, ...distributedEnv(options.distributed), PYTHONPATH: pythonPath };
  const child = execa(python, args, {
    // The caller's folder: relative paths in requests mean what they mean to the caller.
    cwd: process.cwd(),
    env,
    stdin: "pipe", // held open: the worker exits when it closes, i.e. when we are gone
    stdout: "pipe",
    stderr: "pipe",
    buffer: false,
    reject: false,
    cleanup: true,
  });

  const tailSize = options.stderrTailLines ?? 30;
  const tail: string[] = [];
  readline.createInterface({ input: child.stderr }).on("line", (line) => {
    tail.push(line);
    if (tail.length > tailSize) tail.shift();
    options.onLog?.(line);
  });
  const stderrTail = () => [...tail];

  const exited: Promise<ExitInfo> = child.then((result) => ({
    exitCode: result.exitCode,
    signal: result.signal,
  }));
  // Spawn failures (no such interpreter) surface through the result too.
  const spawnFailure = child.then((result) => (result.failed && result.exitCode === undefined ? result : undefined));

  const ready = new Promise<ReadyLine>((resolve) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      if (line.startsWith(READY_PREFIX)) resolve(JSON.parse(line.slice(READY_PREFIX.length)) as ReadyLine);
      else options.onLog?.(`[stdout] ${line}`);
    });
  });

  const timeoutMs = options.readyTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const outcome = await Promise.race([ready, exited.then((info) => ({ exit: info })), deadline]);
  clearTimeout(timer);

  if (outcome === "timeout") {
    child.kill("SIGKILL");
    await exited;
    throw new WorkerStartError(
      `the worker (${python} ${args.join(" ")}) printed no readiness line within ${timeoutMs / 1000} s`,
      stderrTail(),
    );
  }
  if ("exit" in outcome) {
    const failure = await spawnFailure;
    const why = failure
      ? `could not be started: ${failure.shortMessage}. Run \`make setup\`, or set CTRL_PYTHON to a Python that has the worker's requirements.`
      : outcome.exit.signal
        ? `was killed by ${outcome.exit.signal} before it was ready`
        : `exited with code ${outcome.exit.exitCode} before it was ready`;
    throw new WorkerStartError(`the worker (${python}) ${why}`, stderrTail());
  }
  // A worker removes its socket's folder when it stops; one that was killed cannot.
  void exited.then(() => removeSocketFolder(outcome.address));
  return {
    address: outcome.address,
    token: outcome.token ?? (outcome.token_from_env ? (env.CTRL_WORKER_TOKEN ?? process.env.CTRL_WORKER_TOKEN) : undefined),
    pid: outcome.pid,
    maxMessageBytes: maxMessageMb * 1024 * 1024,
    process: child,
    exited,
    stderrTail,
  };
}

/**
 * Removes the private folder of a killed worker's Unix socket (`unix:<tmp>/ctrl-worker-XXX/worker.sock`,
 * made by the worker's mkdtemp); any other address is left alone.
 */
export function removeSocketFolder(address: string, tmpDir = os.tmpdir()): void {
  if (!address.startsWith("unix:")) return;
  const folder = path.dirname(address.slice("unix:".length));
  if (path.dirname(folder) !== path.resolve(tmpDir) || !path.basename(folder).startsWith("ctrl-worker-")) return;
  rmSync(folder, { recursive: true, force: true });
}
