// The shape of a CLI command module: one file per command under commands/, each a function of the context.
import type { Argv, CommandModule, Options } from 'yargs';
import type { Io } from './io.js';
import type { OptionSpec, Specs } from '../util/option-spec.js';

/** Arguments every command handler receives next to its own. */
export interface Ctx {
  io: Io;
  /** Run another command line with the same Io (used by `demo`); resolves to its exit code. */
  run(argv: readonly string[]): Promise<number>;
}

// Handlers declare the parsed arguments they use; the builder above them is what guarantees them. yargs
// types a module by its parsed arguments, which differ per command, so the list of modules is typed `any`.
/* eslint-disable @typescript-eslint/no-explicit-any */
export type Command = (ctx: Ctx) => CommandModule<object, any>;
export const defineCommand = <T>(m: {
  command: string;
  describe: string;
  builder: (y: Argv) => Argv<any>;
  handler: (argv: T) => Promise<void>;
}): CommandModule<object, any> => m as unknown as CommandModule<object, any>;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** One declared option (src/util/option-spec.ts) as a yargs option. */
export function yargsOption(o: OptionSpec, describe = o.describe): Options {
  return {
    type: o.type === 'list' ? 'string' : o.type,
    ...(o.default !== undefined ? { default: o.default } : {}),
    ...(o.required ? { demandOption: true } : {}),
    ...(o.alias ? { alias: [...o.alias] } : {}),
    ...(o.choices ? { choices: [...o.choices] } : {}),
    ...(o.hidden ? { hidden: true } : {}),
    describe,
  };
}

/** A table of declared options as yargs options. */
export const yargsOptions = (specs: Specs): Record<string, Options> =>
  Object.fromEntries(Object.entries(specs).map(([name, o]) => [name, yargsOption(o)]));
