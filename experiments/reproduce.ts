/**
 * The paper's comparison on the embedded default: CTRL against classifier-free guidance,
 * reconstruction guidance, classifier guidance and best-of-N; one and two controls; accuracy
 * against the number of labelled images.
 *
 *   node --import tsx experiments/reproduce.ts [--quick] [--out DIR] [--threads N] [--config overrides.json]
 *
 * (`make reproduce`, `make reproduce QUICK=1`). Writes DIR/table.json, table.md and report.html.
 */
import { Command, Option } from "commander";
import { integer, readJsonObject } from "../src/cli/options.js";
import { FULL, QUICK, parseReproduceConfig } from "../src/reproduce/config.js";
import { runReproduce } from "../src/reproduce/reproduce.js";

interface Flags {
  quick?: boolean;
  out?: string;
  threads?: number;
  device?: string;
  config?: string;
  python?: string;
  verbose?: boolean;
}

const program = new Command()
  .name("reproduce")
  .description("CTRL against the baselines on the embedded default (table.json, table.md, report.html)")
  .option("--quick", "the QUICK preset: every experiment, smaller (under 20 minutes on a 2-core CPU)")
  .option("--out <dir>", "output folder (default: runs/reproduce)")
  .option("--threads <n>", "torch CPU threads per worker (0: torch's default)", integer(0, 256))
  .addOption(new Option("--device <device>", "worker device: auto, cpu, cuda or cuda:N"))
  .option("--config <file.json>", "fields laid over the preset, section by section")
  .option("--python <path>", "Python interpreter for the workers")
  .option("--verbose", "print the workers' logs")
  .showHelpAfterError()
  .action(async (flags: Flags) => {
    const preset = flags.quick ? QUICK : FULL;
    const overrides = flags.config ? await readJsonObject("--config", flags.config) : {};
    const input: Record<string, unknown> = { ...preset };
    for (const [key, value] of Object.entries(overrides)) {
      const current = input[key];
      const isSection = typeof value === "object" && value !== null && !Array.isArray(value) && typeof current === "object" && current !== null;
      input[key] = isSection ? { ...(current as object), ...(value as object) } : value;
    }
    if (flags.out) input.outDir = flags.out;
    if (flags.threads !== undefined) input.threads = flags.threads;
    if (flags.device) input.device = flags.device;
    const config = parseReproduceConfig(input);
    const result = await runReproduce(config, { python: flags.python, verbose: flags.verbose, preset: flags.quick ? "QUICK" : "FULL" });
    process.stdout.write(`${result.rows.length} rows in ${(result.seconds / 60).toFixed(1)} min: ${result.outDir}/table.md, report.html\n`);
  });

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`reproduce: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
