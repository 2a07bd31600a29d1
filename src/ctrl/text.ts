/** Prompts for a text-to-image backbone's condition c, drawn for training and cycled for evaluation. */
import type { ExperimentConfig } from "./config.js";
import type { Random } from "./random.js";
import type { TextCondition } from "../worker/worker.js";

/** One prompt per sample, drawn uniformly from `text.prompts` (the official code's recipe). */
export function trainingText(config: ExperimentConfig, random: Random, count: number): TextCondition | undefined {
  const text = config.text;
  if (!text) return undefined;
  return { prompts: Array.from({ length: count }, () => text.prompts[random.int(text.prompts.length)]!), guidanceScale: text.guidanceScale };
}

/** Sample i gets evaluation prompt i mod the list's length, so every method sees the same prompts. */
export function evaluationText(config: ExperimentConfig, count: number): TextCondition | undefined {
  const text = config.text;
  if (!text) return undefined;
  const prompts = text.evaluationPrompts ?? text.prompts;
  return { prompts: Array.from({ length: count }, (_, i) => prompts[i % prompts.length]!), guidanceScale: text.guidanceScale };
}
