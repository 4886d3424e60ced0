// Options declared as data, once: a table of specs (type, default, aliases, choices, range) from which
// the CLI derives its yargs options (src/cli/command.ts `yargsOptions`), TypeScript derives the parsed
// arguments' type (`ArgsOf`), and `checkedOptions` checks every value against its range or choices —
// so a default or a limit is written in one place. Imports nothing of ours but the error builders.
import { checkChoice, checkInteger, checkNumber, expected } from './errors.js';

export interface OptionSpec {
  /** `list`: a string that may repeat or hold commas; the values accumulate. */
  type: 'number' | 'string' | 'boolean' | 'list';
  default?: string | number | boolean;
  alias?: readonly string[];
  /** The values allowed (numbers for a `number` option with a few values, e.g. --scale 255 or 1). */
  choices?: readonly string[] | readonly number[];
  /** The closed range of a number, and whether it must be a whole number. */
  range?: readonly [number, number];
  integer?: boolean;
  /** Must be given (no default). */
  required?: boolean;
  hidden?: boolean;
  describe: string;
}

export type Specs = Record<string, OptionSpec>;

/** `log-every` → `logEvery`, as yargs names parsed arguments. */
export type Camel<S extends string> = S extends `${infer H}-${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
export const camel = (name: string): string => name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

type ValueOf<O> = O extends { choices: readonly (infer C)[] }
  ? C
  : O extends { type: 'number' }
    ? number
    : O extends { type: 'boolean' }
      ? boolean
      : O extends { type: 'list' }
        ? string | string[]
        : string;
type Present<S> = { [K in keyof S]: S[K] extends { default: unknown } | { required: true } ? K : never }[keyof S];

/** The parsed arguments of a spec table: camel-case names, present where there is a default or it is required. */
export type ArgsOf<S extends Specs> = { [K in Present<S> & string as Camel<K>]: ValueOf<S[K]> } & {
  [K in Exclude<keyof S, Present<S>> & string as Camel<K>]?: ValueOf<S[K]>;
};

/** Every option of `specs` at its default (those without one absent). */
export function defaultsOf<S extends Specs>(specs: S): Partial<ArgsOf<S>> {
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(specs)) if (o.default !== undefined) out[camel(name)] = o.default;
  return out as Partial<ArgsOf<S>>;
}

/** One value checked against its spec (range, whole number, choices), named `flag` in the message. */
export function checkOption(flag: string, o: OptionSpec, value: unknown): unknown {
  if (value === undefined) return value;
  if (o.type === 'number' && o.range) {
    const [min, max] = o.range;
    return o.integer ? checkInteger(flag, value, min, max) : checkNumber(flag, value, min, max);
  }
  if (o.choices && o.type === 'number') {
    if (!(o.choices as readonly unknown[]).includes(value))
      throw expected(`one of ${o.choices.join(', ')}`, flag, value);
    return value;
  }
  if (o.choices) return checkChoice(flag, value, o.choices as readonly string[]);
  return value;
}

/**
 * The options of `specs` from `args` (the parsed command line: only the spec's own keys are taken, in
 * camel case), each checked; a usage error of one line names the first bad one.
 */
export function checkedOptions<S extends Specs>(specs: S, args: ArgsOf<S>): ArgsOf<S> {
  const out: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(specs)) {
    const value = (args as Record<string, unknown>)[camel(name)];
    if (value !== undefined) out[camel(name)] = checkOption(`--${name}`, o, value);
  }
  return out as ArgsOf<S>;
}
