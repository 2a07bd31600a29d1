/** Parsers for CLI flags: each bad value fails with the flag's name and what was expected. */
import { readFile } from "node:fs/promises";
import { InvalidArgumentError } from "commander";

export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
}

/** "auto", or what `parse` accepts. */
export function autoOr<T>(parse: (value: string) => T) {
  return (value: string): T | "auto" => {
    if (value.trim() === "auto") return "auto";
    try {
      return parse(value);
    } catch (error) {
      throw new InvalidArgumentError(`${(error as Error).message.replace(/, got /, ' or "auto", got ')}`);
    }
  };
}

export function number(min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
}

/** The JSON object in a file given by a flag (e.g. --config); fails naming the flag. */
export async function readJsonObject(flag: string, file: string): Promise<Record<string, unknown>> {
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, "utf8"));
  } catch (error) {
    throw new Error(`${flag}: could not read ${file} as JSON: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error(`${flag}: ${file} must hold a JSON object`);
  return value as Record<string, unknown>;
}

/** Accumulates a repeatable flag's values. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
