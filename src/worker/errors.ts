import { status } from "@grpc/grpc-js";

/** The worker could not be started or did not become ready in time. */
export class WorkerStartError extends Error {
  override name = "WorkerStartError";
  constructor(
    message: string,
    readonly stderrTail: string[] = [],
  ) {
    super(stderrTail.length ? `${message}\nlast lines of the worker's stderr:\n  ${stderrTail.join("\n  ")}` : message);
  }
}

/** The worker process exited while calls were pending, or before a call was made. */
export class WorkerCrashedError extends Error {
  override name = "WorkerCrashedError";
  constructor(
    readonly exitCode: number | undefined,
    readonly signal: string | undefined,
    readonly stderrTail: string[],
  ) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    const tail = stderrTail.length ? `\nlast lines of the worker's stderr:\n  ${stderrTail.join("\n  ")}` : "";
    super(`the ctrl worker ${how}; start a new worker to continue${tail}`);
  }
}

/** A call the worker answered with a gRPC error status (bad input, missing handle, ...). */
export class WorkerCallError extends Error {
  override name = "WorkerCallError";
  readonly codeName: string;
  constructor(
    readonly method: string,
    readonly code: status,
    readonly details: string,
  ) {
    const codeName = status[code] ?? String(code);
    super(`${method}: ${codeName}: ${details}`);
    this.codeName = codeName;
  }
}

/** The worker was closed on purpose; calls made afterwards get this. */
export class WorkerClosedError extends Error {
  override name = "WorkerClosedError";
  constructor() {
    super("the ctrl worker was closed; start a new one");
  }
}

/** The worker's process is alive but stopped answering health checks; it was killed. */
export class WorkerHungError extends Error {
  override name = "WorkerHungError";
  constructor(
    readonly failedChecks: number,
    readonly lastError: string,
  ) {
    super(
      `the ctrl worker stopped answering health checks (${failedChecks} in a row failed; last: ${lastError}), ` +
        "so it was killed; start a new worker to continue",
    );
  }
}

/** A worker that died or hung (and was killed by the watchdog): a fresh one can continue. */
export function isWorkerLoss(error: unknown): error is WorkerCrashedError | WorkerHungError {
  return error instanceof WorkerCrashedError || error instanceof WorkerHungError;
}
