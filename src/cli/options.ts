/** Parsers for CLI flags: each bad value fails with the flag's name and what was expected. */
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

export function number(min: number, max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (value.trim() === "" || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected a number in [${min}, ${max}], got ${JSON.stringify(value)}`);
    }
    return parsed;
  };
}

/** Accumulates a repeatable flag's values. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
