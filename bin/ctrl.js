#!/usr/bin/env node
// Runs the TypeScript CLI directly through tsx: no build step between an edit and `npx ctrl`.
import { register } from "tsx/esm/api";

register();
await import("../src/cli.ts");
