/** Worker groups: spawned ranks join one gloo group; running ranks are attached in rank order. */
import assert from "node:assert/strict";
import { test } from "node:test";
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
