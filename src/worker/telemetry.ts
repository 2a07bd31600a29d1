/**
 * The orchestrator's end of the telemetry channel: a ZeroMQ SUB socket that every worker's PUB
 * socket connects to, carrying msgpack events (progress, rpc timings, memory). One-way and lossy
 * by design: nothing depends on it for correctness.
 */
import { EventEmitter } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { unpack } from "msgpackr";
import { Subscriber } from "zeromq";

export interface TelemetryEvent {
  topic: string;
  worker: string;
  pid: number;
  /** Seconds since the epoch, worker clock. */
  time: number;
  [field: string]: unknown;
}

export interface ProgressEvent extends TelemetryEvent {
  topic: "progress";
  task: string;
  step: number;
  total: number;
}

export interface RpcEvent extends TelemetryEvent {
  topic: "rpc";
  method: string;
  seconds: number;
  ok: boolean;
  max_rss_bytes: number;
  cuda_allocated_bytes?: number;
  cuda_peak_bytes?: number;
}

export class TelemetrySubscriber {
  private readonly events = new EventEmitter();
  private closed = false;

  private constructor(
    private readonly socket: Subscriber,
    readonly address: string,
    private readonly privateDir: string | undefined,
  ) {
    socket.subscribe();
    void this.receive();
  }

  /** Binds a SUB socket; by default on an ipc:// path inside a new private directory. */
  static async bind(address?: string): Promise<TelemetrySubscriber> {
    let privateDir: string | undefined;
    if (!address) {
      privateDir = mkdtempSync(path.join(os.tmpdir(), "ctrl-telemetry-"));
      address = `ipc://${path.join(privateDir, "telemetry.sock")}`;
    }
    const socket = new Subscriber();
    await socket.bind(address);
    return new TelemetrySubscriber(socket, address, privateDir);
  }

  on(topic: "progress", listener: (event: ProgressEvent) => void): this;
  on(topic: "rpc", listener: (event: RpcEvent) => void): this;
  on(topic: "*" | string, listener: (event: TelemetryEvent) => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the overloads above type it
  on(topic: string, listener: (event: any) => void): this {
    this.events.on(topic, listener);
    return this;
  }

  off(topic: string, listener: (event: ProgressEvent) => void): this;
  off(topic: string, listener: (event: RpcEvent) => void): this;
  off(topic: string, listener: (event: TelemetryEvent) => void): this;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the overloads above type it
  off(topic: string, listener: (event: any) => void): this {
    this.events.off(topic, listener);
    return this;
  }

  private async receive(): Promise<void> {
    try {
      for await (const [, payload] of this.socket) {
        if (!payload) continue;
        const event = unpack(payload) as TelemetryEvent;
        this.events.emit(event.topic, event);
        this.events.emit("*", event);
      }
    } catch (error) {
      if (!this.closed) throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    if (this.privateDir) rmSync(this.privateDir, { recursive: true, force: true });
  }
}
