// `npm run bench -- [pairs|all] [--quick]`: our hot paths next to their references, one row each.
import yargs from 'yargs';
import { benchPairs } from './pairs.js';

const BENCHES: Record<string, (o: { quick: boolean }) => Promise<unknown>> = { pairs: benchPairs };

const argv = await yargs(process.argv.slice(2))
  .scriptName('npm run bench --')
  .command('$0 [which]', 'Run benchmarks', (y) => y.positional('which', { choices: [...Object.keys(BENCHES), 'all'], default: 'all' }))
  .option('quick', { type: 'boolean', default: false, describe: 'Fewer images and runs' })
  .strict()
  .parseAsync();
const which = argv.which === 'all' ? Object.keys(BENCHES) : [argv.which as string];
for (const name of which) await BENCHES[name]!({ quick: argv.quick });
