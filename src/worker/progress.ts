/** A dependency-free progress bar on stderr, fed by telemetry progress events. */
import type { ProgressEvent, TelemetrySubscriber } from "./telemetry.js";

export interface ProgressBarOptions {
  stream?: NodeJS.WriteStream;
  width?: number;
  /** showProgress only: the tasks that get a bar (default: all). */
  tasks?: string[];
}

export class ProgressBar {
  private readonly stream: NodeJS.WriteStream;
  private readonly width: number;
  private first: { step: number; time: number } | undefined;
  private lastDecile = -1;
  private done = false;

  constructor(
    private readonly label: string,
    options: ProgressBarOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.width = options.width ?? 30;
  }

  /** One line of text for `step` of `total`, e.g. "sample [#####-----] 5/10 2.0 it/s". */
  render(step: number, total: number, now = Date.now()): string {
    const fraction = total > 0 ? Math.min(1, step / total) : 0;
    const filled = Math.round(fraction * this.width);
    // The rate is measured from the first update seen, so a bar created late still reads true.
    this.first ??= { step, time: now };
    const seconds = (now - this.first.time) / 1000;
    const rate = seconds > 0 ? (step - this.first.step) / seconds : 0;
    const speed = rate > 0 ? ` ${rate.toFixed(1)} it/s, ${((total - step) / rate).toFixed(0)} s left` : "";
    return `${this.label} [${"#".repeat(filled)}${"-".repeat(this.width - filled)}] ${step}/${total}${speed}`;
  }

  update(step: number, total: number): void {
    if (this.done) return;
    const line = this.render(step, total);
    if (this.stream.isTTY) {
      this.stream.write(`\r${line}\x1b[K`);
    } else {
      // Logs get a line per tenth, not a line per step.
      const decile = Math.floor((10 * step) / Math.max(total, 1));
      if (decile !== this.lastDecile) this.stream.write(`${line}\n`);
      this.lastDecile = decile;
    }
    if (step >= total) this.finish();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    if (this.stream.isTTY) this.stream.write("\n");
  }
}

/** Drives one bar per task from a subscriber's progress events; returns a function that stops it. */
export function showProgress(telemetry: TelemetrySubscriber, options: ProgressBarOptions = {}): () => void {
  const bars = new Map<string, ProgressBar>();
  const listener = (event: ProgressEvent) => {
    if (options.tasks && !options.tasks.includes(event.task)) return;
    const key = `${event.worker}:${event.task}`;
    let bar = bars.get(key);
    if (!bar || event.step === 1) {
      bar = new ProgressBar(event.task, options);
      bars.set(key, bar);
    }
    bar.update(event.step, event.total);
  };
  telemetry.on("progress", listener);
  return () => {
    telemetry.off("progress", listener);
    for (const bar of bars.values()) bar.finish();
  };
}
