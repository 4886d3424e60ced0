// `npm run bench -- [pairs|pred|wd|resize|serve|torch|tiny|native|trainloop|loop|quantize|teach|coverage|hydrus|all] [--with-reference] [--quick] [--device cpu|cuda] [--against DIR]`: our hot paths next to
// their references, one table row each. Each bench is imported only when asked for (the GPU machine
// has no sharp).
import yargs from 'yargs';

type BenchOptions = {
  quick: boolean;
  device?: 'cpu' | 'cuda';
  batches?: number[];
  withReference?: boolean;
  against?: string;
  rehearse?: boolean;
};
const BENCHES: Record<string, () => Promise<(o: BenchOptions) => Promise<unknown>>> = {
  pairs: async () => (await import('./pairs.js')).benchPairs,
  native: async () => (await import('./native.js')).benchNative,
  trainloop: async () => (await import('./trainloop.js')).benchTrainloop,
  loop: async () => (await import('./loop.js')).benchLoop,
  pred: async () => (await import('./pred.js')).benchPred,
  torch: async () => (await import('./torch.js')).benchTorch,
  tiny: async () => (await import('./tiny.js')).benchTiny,
  wd: async () => (await import('./wd.js')).benchWd,
  resize: async () => (await import('./resize.js')).benchResize,
  serve: async () => (await import('./serve.js')).benchServe,
  quantize: async () => (await import('./quantize.js')).benchQuantize,
  teach: async () => (await import('./teach.js')).benchTeach,
  coverage: async () => (await import('./coverage.js')).benchCoverage,
  hydrus: async () => (await import('./hydrus.js')).benchHydrus,
};

const argv = await yargs(process.argv.slice(2))
  .scriptName('npm run bench --')
  .command('$0 [which]', 'Run benchmarks', (y) =>
    y.positional('which', { choices: [...Object.keys(BENCHES), 'all'], default: 'all' }),
  )
  .option('quick', { type: 'boolean', default: false, describe: 'Fewer images and runs' })
  .option('device', {
    choices: ['cpu', 'cuda'] as const,
    default: 'cpu' as const,
    describe: 'Device for the native bench',
  })
  .option('batches', { type: 'array', describe: 'Batch sizes for the CUDA bench' })
  .option('rehearse', {
    type: 'boolean',
    default: false,
    describe: "native: the CUDA run's cases with the tiny model on the CPU (bench/gpu.sh --dry-run)",
  })
  .option('against', { type: 'string', describe: 'Another build (a checkout with dist/ built) for the resize bench' })
  .option('with-reference', {
    type: 'boolean',
    default: false,
    describe: 'Install the Debian references (PyTorch, PIL) first',
  })
  .strict()
  .parseAsync();
// `all --quick` runs the rows users compare us by (data preparation, prediction fp32 and int8, training
// against PyTorch, full and tiny); the full `all` adds the internal comparisons (graph variants, native vs onnxruntime-node, loop).
const QUICK_ALL = ['pairs', 'pred', 'torch', 'tiny'];
// resize compares two builds: only when asked for, with --against.
const ALL = Object.keys(BENCHES).filter((b) => b !== 'resize');
const which = argv.which === 'all' ? (argv.quick ? QUICK_ALL : ALL) : [argv.which as string];
for (const name of which)
  await (
    await BENCHES[name]!()
  )({
    quick: argv.quick,
    device: argv.device,
    batches: argv.batches?.map(Number),
    withReference: argv.withReference,
    against: argv.against,
    rehearse: argv.rehearse,
  });
