// The CLI: yargs with one module per command, strict flags, usage errors → exit 2, other failures → 1,
// each as one line on stderr. `runCli` returns the exit code, so tests call it without spawning.
import yargs, { type Argv } from 'yargs';
import type { Command, Ctx } from './command.js';
import { STDIN_ARG } from '../predict/inputs.js';
import { InterruptedError, UsageError, messageOf } from '../util/errors.js';
import { fsReason, isFsError } from '../util/fsx.js';
import { processIo, type Io } from './io.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { exportCommand } from './commands/export.js';
import { predCommand } from './commands/pred.js';
import { evalCommand } from './commands/eval.js';
import { vecCommand } from './commands/vec.js';
import { similarCommand } from './commands/similar.js';
import { trainCommand } from './commands/train.js';
import { pairsCommand } from './commands/pairs.js';
import { teachCommand } from './commands/teach.js';
import { synthCommand } from './commands/synth.js';
import { tagsCommand } from './commands/tags.js';
import { kpiCommand } from './commands/kpi.js';
import { galleryCommand } from './commands/gallery.js';
import { serveCommand } from './commands/serve.js';
import { quantizeCommand } from './commands/quantize.js';
import { hydrusCommand } from './commands/hydrus.js';

const COMMANDS: Command[] = [
  synthCommand,
  tagsCommand,
  pairsCommand,
  trainCommand,
  exportCommand,
  teachCommand,
  predCommand,
  evalCommand,
  vecCommand,
  similarCommand,
  kpiCommand,
  galleryCommand,
  serveCommand,
  hydrusCommand,
  quantizeCommand,
  demoCommand,
  doctorCommand,
];

export async function runCli(argv: readonly string[], io: Io = processIo): Promise<number> {
  const ctx: Ctx = { io, run: (args) => runCli(args, io) };
  // yargs drops a lone `-` from variadic positionals; pass it as /dev/stdin, which listImages reads as `-`.
  argv = argv.map((a) => (a === '-' ? STDIN_ARG : a));
  let parser: Argv = yargs([...argv])
    .scriptName('alt-i2v-ort')
    .usage('$0 <command> [options]\n\nTrain and run an illustration tagger (VGG16 transfer learning, ONNX Runtime).')
    .strict()
    .demandCommand(1, 'Expected a command; see --help')
    .recommendCommands()
    .help()
    .alias('help', 'h')
    .version()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg);
    });
  for (const c of COMMANDS) parser = parser.command(c(ctx));
  let helpText = '';
  parser = parser.showHelpOnFail(false);
  try {
    await parser.parseAsync([...argv], {}, (_err, _argv, output) => {
      helpText = output;
    });
    if (helpText) io.out(helpText);
    return 0;
  } catch (err) {
    io.err(`alt-i2v-ort: ${userMessage(err)}`);
    if (process.env.ALT_I2V_DEBUG) io.err(String((err as Error)?.stack));
    return exitCode(err);
  }
}

/** Full disks and broken devices are failures (1); a path the user named wrongly is a usage error (2). */
const FAILURE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EROFS', 'EIO', 'EMFILE']);

function exitCode(err: unknown): number {
  if (err instanceof UsageError || (err as Error)?.name === 'YError') return 2;
  if (err instanceof InterruptedError) return 130;
  if (isFsError(err) && !FAILURE_CODES.has(err.code!)) return 2;
  return 1;
}

/** One line for the user: file-system errors name the path in words; a bug in us says so. */
function userMessage(err: unknown): string {
  if (isFsError(err)) return `${err.path ? JSON.stringify(err.path) : 'a file'} cannot be accessed (${fsReason(err)})`;
  if (err instanceof TypeError || err instanceof ReferenceError || err instanceof SyntaxError) {
    return `internal error (${messageOf(err)}); please report it with the output of ALT_I2V_DEBUG=1`;
  }
  return messageOf(err);
}
