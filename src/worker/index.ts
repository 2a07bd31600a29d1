export * from "./errors.js";
export * from "./progress.js";
export * from "./spawn.js";
export * from "./telemetry.js";
export * from "./tensors.js";
export * from "./worker.js";
export * from "./watchdog.js";
