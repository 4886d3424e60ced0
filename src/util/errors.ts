// Error kinds the CLI maps to exit codes: UsageError → 2, anything else → 1.
// One message builder so every check reads the same way: "Expected … for NAME but received …".

/** A bad flag, a missing or malformed input file: the user can fix it by changing the command. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Work stopped on SIGINT/SIGTERM after saving its state: exit code 130. */
export class InterruptedError extends Error {
  override name = 'InterruptedError';
}

/** Describe a received value briefly for an error message. */
export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (Array.isArray(value)) return `array of length ${value.length}`;
  return typeof value;
}

/** `Expected integer between 1 and 512 for batch but received 0` */
export function expected(what: string, name: string, received: unknown): UsageError {
  return new UsageError(`Expected ${what} for ${name} but received ${describe(received)}`);
}

export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw expected(`integer between ${min} and ${max}`, name, value);
  }
  return value;
}

export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw expected(`number between ${min} and ${max}`, name, value);
  }
  return value;
}

export function checkChoice<T extends string>(name: string, value: unknown, choices: readonly T[]): T {
  if (typeof value !== 'string' || !choices.includes(value as T)) {
    throw expected(`one of ${choices.join(', ')}`, name, value);
  }
  return value as T;
}

/** The message of an unknown thrown value, on one line. */
export function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
