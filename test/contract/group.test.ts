/** Worker groups: spawned ranks join one gloo group; running ranks are attached in rank order. */
import assert from "node:assert/strict";
import path from "node:path";
import readline from "node:readline";
import { test } from "node:test";
import { execa } from "execa";
import { defaultPython, WORKER_DIR } from "../../src/worker/spawn.js";
import { WorkerGroup } from "../../src/worker/group.js";

test("spawned workers form one gloo group; attaching to them orders them by rank and refuses an incomplete group", async () => {
  const token = "an-owner-chosen-secret-of-at-least-32-characters";
  // The "owners": two ranks listening on TCP with their owner's token, as torchrun would start them.
  const owners = await WorkerGroup.spawn(2, { device: "cpu", threads: 1, telemetry: false, watchdog: false, transport: "tcp", env: { CTRL_WORKER_TOKEN: token } });
  try {
    const infos = await Promise.all(owners.workers.map((worker) => worker.info()));
    assert.deepEqual(
      infos.map((info) => info.distributed),
      [
        { rank: 0, worldSize: 2, backend: "gloo", localRank: 0 },
        { rank: 1, worldSize: 2, backend: "gloo", localRank: 1 },
      ],
    );
    const [rank0, rank1] = owners.workers;
    const attached = await WorkerGroup.attach([rank1!.address, rank0!.address], { token, watchdog: false });
    assert.deepEqual(
      attached.workers.map((worker) => worker.pid),
      [rank0!.pid, rank1!.pid],
      "ordered by rank, whatever the order of the addresses",
    );
    await attached.close();
    await assert.rejects(WorkerGroup.attach([rank0!.address], { token, watchdog: false }), /attach: the workers belong to groups of 2 ranks, but 1 addresses were given/);
    await assert.rejects(WorkerGroup.attach([rank0!.address, rank0!.address], { token, watchdog: false }), /attach: two addresses reach the same rank \(ranks 0, 0\)/);
    assert.equal((await rank1!.info()).distributed?.rank, 1, "detaching leaves the owners' workers up");
  } finally {
    await owners.close();
  }
});

test("ranks started by torchrun as README says are attached in rank order", async () => {
  const token = "an-owner-chosen-secret-of-at-least-32-characters";
  const basePort = 20000 + Math.floor(Math.random() * 20000);
  const torchrun = path.join(path.dirname(defaultPython()), "torchrun");
  const args = ["--nnodes", "1", "--node-rank", "0", "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", String(basePort + 2)];
  const worker = ["-m", "ctrl_worker", "--distributed", "--device", "cpu", "--threads", "1", "--listen", `tcp:127.0.0.1:${basePort}`, "--no-watch-stdin"];
  const launcher = execa(torchrun, [...args, ...worker], {
    env: { PYTHONPATH: WORKER_DIR, CTRL_WORKER_TOKEN: token, PYTHONUNBUFFERED: "1" },
    reject: false,
    buffer: false,
  });
  try {
    // Each rank prints its readiness line once the whole group has joined.
    const ready: string[] = [];
    await new Promise<void>((resolve, reject) => {
      readline.createInterface({ input: launcher.stdout! }).on("line", (line) => {
        if (line.startsWith("CTRL_WORKER_READY ")) ready.push(line);
        if (ready.length === 2) resolve();
      });
      void launcher.then(() => reject(new Error("torchrun exited before its workers were ready")));
    });
    assert.ok(ready.every((line) => !line.includes(token)), "the owner's token is never printed");
    const group = await WorkerGroup.attach([`127.0.0.1:${basePort + 1}`, `127.0.0.1:${basePort}`], { token, watchdog: false });
    const infos = await Promise.all(group.workers.map((w) => w.info()));
    assert.deepEqual(
      infos.map((info) => [info.distributed?.rank, info.distributed?.localRank, info.distributed?.worldSize]),
      [
        [0, 0, 2],
        [1, 1, 2],
      ],
      "rank r listens on the base port + its local rank",
    );
    await group.close();
  } finally {
    launcher.kill("SIGTERM");
    await launcher;
  }
});
