/**
 * Tells a hung worker from a busy one: health checks run on the worker's own control threads and
 * answer within milliseconds however busy its calls are, so a run of failed checks while the
 * process is alive means it is stuck (deadlocked, stopped, swapping) and will not answer again.
 */

export interface WatchdogOptions {
  /** Time between health checks. Default 10 s. */
  intervalMs?: number;
  /** Deadline of one health check. Default 5 s. */
  timeoutMs?: number;
  /** Consecutive failed checks that declare the worker hung. Default 3. */
  failures?: number;
}

export const WATCHDOG_DEFAULTS: Required<WatchdogOptions> = { intervalMs: 10_000, timeoutMs: 5_000, failures: 3 };

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private failed = 0;
  private stopped = false;

  /** `check` rejects when the worker is not healthy within `timeoutMs` (it gets the deadline). */
  constructor(
    private readonly check: (timeoutMs: number) => Promise<void>,
    private readonly onHung: (failedChecks: number, lastError: string) => void,
    private readonly options: Required<WatchdogOptions>,
  ) {
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  // One check at a time: the next is scheduled when the last has settled.
  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), this.options.intervalMs);
    this.timer.unref(); // the watchdog alone never keeps the program running
  }

  private async tick(): Promise<void> {
    try {
      await this.check(this.options.timeoutMs);
      this.failed = 0;
    } catch (error) {
      this.failed += 1;
      if (!this.stopped && this.failed >= this.options.failures) {
        this.stop();
        this.onHung(this.failed, error instanceof Error ? error.message : String(error));
        return;
      }
    }
    this.schedule();
  }
}
