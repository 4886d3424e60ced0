// One parser for the options of a request, from its query string and its form fields alike: names take
// dashes or underscores, a repeated field accumulates, and a value that does not parse is a 400 naming
// the field (never a silent default or clamp).
import type { FastifyRequest } from 'fastify';
import { predDefaults, PRED_OPTIONS, type PredArgs, type PredOptionSpec } from '../select/pred-spec.js';
import { camel } from '../util/option-spec.js';
import { HttpError } from './http-error.js';

export class Fields {
  private readonly values = new Map<string, string[]>();

  add(name: string, value: string): void {
    const key = name.replace(/_/g, '-');
    this.values.set(key, [...(this.values.get(key) ?? []), value]);
  }

  /** The last value given for `name`. */
  one(name: string): string | undefined {
    return this.values.get(name)?.at(-1);
  }

  /** Every value given for `name` (repeated fields), or undefined. */
  all(name: string): string[] | undefined {
    return this.values.get(name);
  }

  number(name: string, min = -Infinity, max = Infinity): number | undefined {
    const v = this.one(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      const range = Number.isFinite(min) && Number.isFinite(max) ? ` between ${min} and ${max}` : '';
      throw new HttpError(400, `Expected a number${range} for ${name} but received ${JSON.stringify(v)}`);
    }
    return n;
  }

  integer(name: string, min: number, max: number): number | undefined {
    const n = this.number(name, min, max);
    if (n !== undefined && !Number.isInteger(n))
      throw new HttpError(400, `Expected an integer between ${min} and ${max} for ${name} but received ${n}`);
    return n;
  }

  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.one(name);
    if (v !== undefined && !choices.includes(v as T))
      throw new HttpError(400, `Expected one of ${choices.join(', ')} for ${name} but received ${JSON.stringify(v)}`);
    return v as T | undefined;
  }

  /** A flag: present with no value, 1, true or yes. */
  flag(name: string): boolean {
    return ['1', 'true', 'yes', ''].includes(this.one(name)?.toLowerCase() ?? 'no');
  }
}

/** The query string's fields. */
export function queryFields(req: FastifyRequest): Fields {
  const f = new Fields();
  for (const [k, v] of new URL(req.url, 'http://x').searchParams) f.add(k, v);
  return f;
}

/**
 * pred's options from a request's fields (`general-threshold=0.4`, `exclude=a,b`, `rating=all`, …): every
 * option of the spec that is not `cliOnly` (file paths and run-level options are not request fields),
 * parsed by its type, its default where absent.
 */
export function predArgs(f: Fields): PredArgs {
  const out: Record<string, unknown> = predDefaults();
  for (const [name, o] of Object.entries(PRED_OPTIONS) as [string, PredOptionSpec][]) {
    if (o.cliOnly || f.one(name) === undefined) continue;
    out[camel(name)] =
      o.type === 'number'
        ? f.number(name)
        : o.type === 'boolean'
          ? f.flag(name)
          : o.type === 'list'
            ? f.all(name)
            : o.choices
              ? f.choice(name, o.choices as readonly string[])
              : f.one(name);
  }
  return out as PredArgs;
}
