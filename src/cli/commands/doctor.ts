// `doctor [--device cpu|cuda] [--gradcheck] [--plan]`: what the runtime can do here, whether the training
// graphs' gradients are right on this device, and which provider runs each node of them. The first stop
// for a broken CUDA set-up.
import { defineCommand, yargsOptions, type Command } from '../command.js';
import { checkedOptions, type ArgsOf, type Specs } from '../../util/option-spec.js';
import { DEVICES, cudaMissingMessage, executionProviders, runtimeReport } from '../../runtime/providers.js';
import { gradcheck, gradcheckConfig } from '../../../training/gradcheck.js';
import { addonStatus } from '../../train/native-binding.js';
import { BUILD_HINT } from '../../train/engines.js';
import { int8Line } from '../../runtime/cpu.js';
import { FFMPEG_HINT, ffmpegVersion } from '../../data/video.js';
import { placementGraphs, placementLine, profileGraph } from '../../train/placement.js';

export const OPTIONS = {
  device: { type: 'string', choices: DEVICES, default: 'cpu', describe: 'Device to check' },
  gradcheck: { type: 'boolean', default: false, describe: 'Finite-difference check of the tiny model on the device' },
  plan: {
    type: 'boolean',
    default: false,
    describe:
      'Run every training and export graph once on the device: the nodes its provider does not take, the copies they cost',
  },
} as const satisfies Specs;

export const doctorCommand: Command = ({ io }) =>
  defineCommand({
    command: 'doctor',
    describe: 'Report ONNX Runtime, execution providers and the native addon; --gradcheck verifies gradients',
    builder: (y) => y.options(yargsOptions(OPTIONS)),
    handler: async (argv: ArgsOf<typeof OPTIONS>) => {
      const { device } = checkedOptions(OPTIONS, argv);
      const r = runtimeReport();
      io.out(`onnxruntime: ${r.ortVersion} (${r.libDir})`);
      io.out(
        `backends: ${r.backends.map((b) => `${b.name}${b.bundled ? '' : ' (needs provider libraries)'}`).join(', ')}`,
      );
      io.out(`cuda provider libraries: ${r.cudaMissing.length === 0 ? 'present' : `missing ${r.cudaMissing.length}`}`);
      io.out(int8Line());
      const ffmpeg = ffmpegVersion();
      io.out(`ffmpeg (video frames): ${ffmpeg ?? `not found: ${FFMPEG_HINT}`}`);
      const addon = addonStatus();
      io.out(`native addon: ${addon.ok ? `loads (${addon.file})` : `NOT loading: ${addon.reason}`}`);
      io.out(
        addon.ok
          ? 'training engines: native (CPU and CUDA, state on the device) and ort (onnxruntime-node, CPU); train uses native'
          : `training engines: ort only (onnxruntime-node, CPU; state copied each step); for the native engine (several times faster on the full model: README, "Benchmarks"; and CUDA): ${BUILD_HINT}`,
      );
      if (device === 'cuda' && r.cudaMissing.length > 0) throw new Error(cudaMissingMessage(r.cudaMissing));
      if (argv.plan)
        for (const [name, bytes] of placementGraphs(device))
          io.out(`plan on ${device}: ${placementLine(await profileGraph(name, bytes(), device, 2))}`);
      if (!argv.gradcheck) return;
      const c = gradcheckConfig();
      const res = await gradcheck(c, {
        executionProviders: executionProviders(device),
        perturb: process.env.ALT_I2V_GRADCHECK_PERTURB,
      });
      io.out(
        `gradcheck on ${device}: tiny model (${c.widths.join('/')} @ ${c.imageSize}px, freeze ${c.freeze}), loss ${res.ortLoss.toFixed(6)} vs float64 reference ${res.refLoss.toFixed(6)}`,
      );
      for (const row of res.rows)
        io.out(`  ${row.name.padEnd(15)} max rel error ${row.maxRelErr.toExponential(2)} (${row.checked} entries)`);
      const worst = Math.max(...res.rows.map((x) => x.maxRelErr));
      io.out(`gradcheck: worst ${worst.toExponential(2)}, tolerance ${res.tolerance}: ${res.ok ? 'ok' : 'FAILED'}`);
      if (!res.ok)
        throw new Error(
          `gradcheck failed on ${device}: worst relative error ${worst.toExponential(2)} exceeds ${res.tolerance}`,
        );
    },
  });
