import assert from "node:assert/strict";
import { test } from "node:test";
import { autoOr, integer } from "../../src/cli/options.js";

test("--workers takes a count or auto, and says so when given neither", () => {
  const parse = autoOr(integer(1, 64));
  assert.equal(parse("auto"), "auto");
  assert.equal(parse("2"), 2);
  assert.throws(() => parse("0"), /expected an integer in \[1, 64\] or "auto", got "0"/);
  assert.throws(() => parse("two"), /or "auto"/);
});
