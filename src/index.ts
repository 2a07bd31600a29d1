/** The public API of ctrl, for experiment scripts. */
export * from "./worker/index.js";
export * from "./sampling/schedules.js";
export * from "./sampling/stepwise.js";
export * from "./eval/grid.js";
export { DType } from "./gen/ctrl/v1/worker.js";
export type { Backbone, HandleInfo, Tensor, WorkerInfo } from "./gen/ctrl/v1/worker.js";
export * from "./ctrl/config.js";
export * from "./ctrl/pipeline.js";
export * from "./ctrl/random.js";
export * from "./ctrl/truncation.js";
export * from "./ctrl/controls.js";
export * from "./ctrl/oracle.js";
export * from "./rewards/expression.js";
export * from "./rewards/oracles.js";
export * from "./eval/metrics.js";
