/**
 * A sweep over CTRL's settings: one run per combination of the grid's values and seed, then a
 * table and plots (accuracy and KL against each numeric field, accuracy against optimiser steps).
 *
 *   node --import tsx experiments/sweep.ts --config experiments/sweeps/kl-weight.json [--out DIR] [--dry-run]
 *   node --import tsx experiments/sweep.ts --config FILE --from-runs RUN_DIR... --out DIR
 *     (no runs: the table and plots of finished run folders, their grid values read from their configs)
 *
 * The sweep file: { "name", "base": {experiment config fields}, "grid": {"finetune.klWeight": [...]},
 * "seeds": [0, 1, 2] } (src/sweep/config.ts). Writes DIR (default runs/sweep-<name>)/sweep.json,
 * sweep.md, *.png and a run folder per point under DIR/runs/.
 */
import { Command } from "commander";
import { parseSweep } from "../src/sweep/config.js";
import { collectSweep, readSweepFile, runSweep } from "../src/sweep/run.js";

interface Flags {
  config: string;
  out?: string;
  dryRun?: boolean;
  fromRuns?: string[];
  python?: string;
  verbose?: boolean;
}

const program = new Command()
  .name("sweep")
  .description("run CTRL over a grid of settings and seeds; table and plots in the output folder")
  .requiredOption("--config <file.json>", "the sweep: name, base config, grid of dotted config paths, seeds")
  .option("--out <dir>", "output folder (default: runs/sweep-<name>)")
  .option("--dry-run", "validate the sweep and list its runs without running them")
  .option("--from-runs <dirs...>", "collect finished run folders instead of running the grid")
  .option("--python <path>", "Python interpreter for the worker")
  .option("--verbose", "print the worker's log")
  .showHelpAfterError()
  .action(async (flags: Flags) => {
    const sweep = parseSweep(readSweepFile(flags.config));
    const out = flags.out ?? `runs/sweep-${sweep.name}`;
    if (flags.fromRuns) {
      const collected = await collectSweep(sweep, flags.fromRuns, out);
      process.stdout.write(`${collected.length} runs collected: ${out}/sweep.md\n`);
      return;
    }
    if (flags.dryRun) {
      for (const p of sweep.points) process.stdout.write(`${JSON.stringify(p.values)} seed ${p.seed}\n`);
      process.stdout.write(`${sweep.points.length} runs into ${out}\n`);
      return;
    }
    const results = await runSweep(sweep, { out, python: flags.python, verbose: flags.verbose });
    process.stdout.write(`${results.length} runs: ${out}/sweep.md\n`);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`sweep: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
