import assert from "node:assert/strict";
import { test } from "node:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { removeSocketFolder } from "../../src/worker/spawn.js";
import { tempDir } from "../helpers.js";

test("a killed worker's socket folder is removed; any other address or folder is left alone", () => {
  const tmp = tempDir();
  const folder = (name: string) => {
    const dir = path.join(tmp, name);
    mkdirSync(dir);
    writeFileSync(path.join(dir, "worker.sock"), "");
    return dir;
  };
  const worker = folder("ctrl-worker-abc");
  removeSocketFolder(`unix:${path.join(worker, "worker.sock")}`, tmp);
  assert.equal(existsSync(worker), false);

  const other = folder("mine");
  removeSocketFolder(`unix:${path.join(other, "worker.sock")}`, tmp);
  assert.ok(existsSync(other), "a folder not named ctrl-worker-* stays");

  const nested = path.join(folder("outer"), "ctrl-worker-x");
  mkdirSync(nested);
  removeSocketFolder(`unix:${path.join(nested, "worker.sock")}`, tmp);
  assert.ok(existsSync(nested), "only folders directly in the temporary folder");

  const tcp = folder("ctrl-worker-tcp");
  removeSocketFolder("127.0.0.1:50051", tmp);
  removeSocketFolder(`unix:${path.join(tcp, "worker.sock")}`, path.join(tmp, "elsewhere"));
  assert.ok(existsSync(tcp), "TCP addresses and other temporary folders are not touched");
});
