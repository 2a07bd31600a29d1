/** The public API of ctrl, for experiment scripts. */
export * from "./worker/index.js";
export * from "./sampling/schedules.js";
export * from "./sampling/stepwise.js";
export * from "./eval/grid.js";
export { DType } from "./gen/ctrl/v1/worker.js";
export type { Backbone, HandleInfo, Tensor, WorkerInfo } from "./gen/ctrl/v1/worker.js";
