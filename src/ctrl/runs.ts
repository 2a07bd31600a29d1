/**
 * A run's folder: runs/<id>/ with the resolved config, metrics.jsonl, checkpoints, state.json
 * (what a resume needs), summary.json and report.html; runs/latest points at the newest run.
 * Nothing in an existing run is overwritten: new runs get new folders, files are replaced
 * atomically (write beside, fsync, then rename), so a kill mid-write leaves the old file whole.
 */
import {
  appendFileSync,
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeSync,
} from "node:fs";
import path from "node:path";

export class Run {
  private constructor(readonly dir: string) {}

  get id(): string {
    return path.basename(this.dir);
  }

  /** A new, empty run folder named by time, task and seed; `latest` is pointed at it. */
  static create(runsDir: string, task: string, seed: number, now = new Date()): Run {
    mkdirSync(runsDir, { recursive: true });
    const stamp = now.toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
    const base = `${stamp}-${task}-s${seed}`;
    for (let attempt = 0; ; attempt++) {
      const dir = path.join(runsDir, attempt === 0 ? base : `${base}-${attempt}`);
      try {
        mkdirSync(dir); // fails if it exists: never reuse another run's folder
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
        throw error;
      }
      const run = new Run(dir);
      run.pointLatest();
      return run;
    }
  }

  /** A folder at a fixed place, made if missing (an experiment's part of a larger run); `latest` is left alone. */
  static at(dir: string): Run {
    mkdirSync(dir, { recursive: true });
    return new Run(realpathSync(dir));
  }

  /** An existing run, for resuming. */
  static open(dir: string): Run {
    if (!existsSync(path.join(dir, "config.json"))) {
      throw new Error(`--resume: ${dir} is not a ctrl run folder (no config.json)`);
    }
    return new Run(realpathSync(dir));
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  writeJson(name: string, value: unknown): void {
    this.writeFile(name, `${JSON.stringify(value, null, 2)}\n`);
  }

  readJson<T>(name: string): T {
    return JSON.parse(readFileSync(this.path(name), "utf8")) as T;
  }

  has(name: string): boolean {
    return existsSync(this.path(name));
  }

  writeFile(name: string, content: string | Uint8Array): void {
    const target = this.path(name);
    mkdirSync(path.dirname(target), { recursive: true });
    const temporary = `${target}.tmp-${process.pid}`;
    const fd = openSync(temporary, "w");
    try {
      writeSync(fd, typeof content === "string" ? Buffer.from(content) : content);
      fsyncSync(fd); // the data reaches the disk before the rename makes it the file
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, target);
  }

  /** One JSON object per line in metrics.jsonl. */
  logMetrics(record: Record<string, unknown>): void {
    appendFileSync(this.path("metrics.jsonl"), `${JSON.stringify({ time: new Date().toISOString(), ...record })}\n`);
  }

  /** The size of metrics.jsonl: a resume point to cut it back to. */
  metricsBytes(): number {
    return this.has("metrics.jsonl") ? statSync(this.path("metrics.jsonl")).size : 0;
  }

  /**
   * Drops what was logged after `bytes` (work that a resume redoes), so no record is doubled;
   * the records there that `keep` accepts stay, in their order, after the cut.
   */
  truncateMetrics(bytes: number, keep: (record: Record<string, unknown>) => boolean = () => false): void {
    if (this.metricsBytes() <= bytes) return;
    const file = this.path("metrics.jsonl");
    const tail = readFileSync(file).subarray(bytes).toString("utf8");
    const kept = tail.split("\n").filter((line) => {
      try {
        return keep(JSON.parse(line) as Record<string, unknown>);
      } catch {
        return false; // a blank line, or one torn by a crash mid-write
      }
    });
    truncateSync(file, bytes);
    if (kept.length) appendFileSync(file, `${kept.join("\n")}\n`);
  }

  readMetrics(): Record<string, unknown>[] {
    if (!this.has("metrics.jsonl")) return [];
    return readFileSync(this.path("metrics.jsonl"), "utf8")
      .split("\n")
      .filter((line) => line.trim())
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  private pointLatest(): void {
    const runsDir = path.dirname(this.dir);
    const link = path.join(runsDir, "latest");
    const temporary = path.join(runsDir, `.latest-${process.pid}`);
    rmSync(temporary, { force: true });
    symlinkSync(path.basename(this.dir), temporary);
    renameSync(temporary, link);
  }
}
