import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { ProgressBar } from "../../src/worker/progress.js";

function sink() {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  }) as unknown as NodeJS.WriteStream;
  return { stream, lines };
}

test("the bar shows steps, rate and time left measured from its first update", () => {
  const bar = new ProgressBar("train", { width: 10, stream: sink().stream });
  assert.equal(bar.render(2, 10, 1000), "train [##--------] 2/10");
  assert.equal(bar.render(6, 10, 3000), "train [######----] 6/10 2.0 it/s, 2 s left");
});

test("without a terminal it writes one line per tenth, not per step", () => {
  const { stream, lines } = sink();
  const bar = new ProgressBar("sample", { stream });
  for (let step = 1; step <= 100; step++) bar.update(step, 100);
  assert.equal(lines.length, 11);
  assert.match(lines.at(-1)!, /100\/100/);
});
