import assert from "node:assert/strict";
import { test } from "node:test";
import { Watchdog } from "../../src/worker/watchdog.js";

const options = { intervalMs: 5, timeoutMs: 50, failures: 3 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("the watchdog declares a hang after N consecutive failed checks, once, with the last error", async () => {
  const outcomes = [false, false, true, false, false, false, false]; // a success resets the count
  let checks = 0;
  const hung: Array<[number, string]> = [];
  const dog = new Watchdog(
    async (timeoutMs) => {
      assert.equal(timeoutMs, 50);
      if (!outcomes[checks++]) throw new Error(`check ${checks} failed`);
    },
    (failed, last) => hung.push([failed, last]),
    options,
  );
  await sleep(200);
  dog.stop();
  assert.deepEqual(hung, [[3, "check 6 failed"]]);
  assert.equal(checks, 6, "no checks after the verdict");
});

test("a stopped watchdog checks no more", async () => {
  let checks = 0;
  const dog = new Watchdog(async () => void checks++, () => assert.fail("not hung"), options);
  await sleep(40);
  dog.stop();
  const seen = checks;
  assert.ok(seen > 0);
  await sleep(40);
  assert.equal(checks, seen);
});
