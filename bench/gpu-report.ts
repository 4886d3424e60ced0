// `node dist/bench/gpu-report.js DIR [--readme]`: what bench/gpu.sh measured, from its results in DIR
// (native-cuda.json, demo-fp32.txt and demo-fp16.txt, loop-gpu-host.json, coverage-cuda.json when the
// coverage step ran: the nodes off the GPU per graph, the train step's top ten ops), as one summary,
// DIR/gpu-DATE.json, and as README's table of the GPU run: printed, and with --readme written between
// README's `<!-- gpu-run -->` markers, so the device run's figures land without hand edits.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

interface StepRow {
  batch: number;
  imgPerS: Record<string, number>;
  side: string;
  precision: string;
  tflops: number;
  peakPercent?: number;
}
interface NativeResult {
  date: string;
  device: string;
  gpu?: string;
  rehearsal?: boolean;
  rows: Record<string, StepRow>;
}

const START = '<!-- gpu-run -->';
const END = '<!-- /gpu-run -->';

interface CoverageResult {
  rehearsal?: boolean;
  coverage: { graph: string; nodes: number; offDevice: { op: string; provider: string }[]; copies: number }[];
  profile: { graph: string; batch: number; top: { op: string; share: number }[] }[];
}

async function json<T>(file: string): Promise<T> {
  return JSON.parse(await readFile(file, 'utf8')) as T;
}

/** The holdout mAP a demo printed ("holdout mAP 0.377 (…)"), or undefined. */
async function demoMap(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => '');
  const m = /^holdout mAP (\d\.\d+)/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

export async function gpuReport(dir: string): Promise<{ summary: Record<string, unknown>; table: string }> {
  const native = await json<NativeResult>(path.join(dir, 'native-cuda.json'));
  const loop = await json<Record<string, unknown>>(path.join(dir, 'loop-gpu-host.json'));
  const demo = {
    fp32: await demoMap(path.join(dir, 'demo-fp32.txt')),
    fp16: await demoMap(path.join(dir, 'demo-fp16.txt')),
  };
  const steps = Object.entries(native.rows).map(([name, r]) => ({
    name,
    batch: r.batch,
    precision: r.precision,
    imgPerS: r.imgPerS[r.side]!,
    tflops: r.tflops,
    peakPercent: r.peakPercent ?? null,
  }));
  const where = native.rehearsal ? 'rehearsal on the CPU (tiny model)' : (native.gpu ?? native.device);
  const date = native.date.slice(0, 10);
  const lines = [
    `| ${where}, \`bench/gpu.sh\` ${date}: train step, batch, precision | img/s | TFLOP/s | of the dense peak |`,
    '|---|---|---|---|',
    ...steps.map(
      (s) =>
        `| ${s.name.replace(/-(tf32|fp16)$/, '')}, batch ${s.batch}, ${s.precision} | ${s.imgPerS.toFixed(1)} | ${s.tflops.toFixed(1)} | ${s.peakPercent === null ? '–' : `${s.peakPercent.toFixed(0)}%`} |`,
    ),
    `| demo holdout mAP, float32 / float16 | ${demo.fp32?.toFixed(3) ?? '–'} / ${demo.fp16?.toFixed(3) ?? '–'} | | |`,
  ];
  const coverage = await json<CoverageResult>(path.join(dir, 'coverage-cuda.json')).catch(() => undefined);
  if (coverage) lines.push('', ...coverageLines(coverage));
  const summary = {
    date: native.date,
    device: native.device,
    gpu: native.gpu,
    rehearsal: native.rehearsal === true,
    steps,
    demo,
    loop,
    ...(coverage ? { coverage: coverage.coverage, profile: coverage.profile } : {}),
  };
  await writeFile(path.join(dir, `gpu-${date}.json`), `${JSON.stringify(summary, null, 1)}\n`);
  return { summary, table: lines.join('\n') };
}

/** The coverage step's tables: each graph's nodes off the GPU and copies, then the train steps' top ten ops. */
function coverageLines(c: CoverageResult): string[] {
  const off = (g: CoverageResult['coverage'][number]): string => {
    if (!g.offDevice.length) return 'none';
    const by = new Map<string, number>();
    for (const n of g.offDevice) by.set(`${n.op} (${n.provider})`, (by.get(`${n.op} (${n.provider})`) ?? 0) + 1);
    return [...by].map(([k, n]) => (n > 1 ? `${n}× ${k}` : k)).join(', ');
  };
  return [
    `| graph (tiny model${c.rehearsal ? ', rehearsal on the CPU' : ''}) | nodes | nodes off the GPU | host ↔ device copies |`,
    '|---|---|---|---|',
    ...c.coverage.map((g) => `| ${g.graph} | ${g.nodes} | ${off(g)} | ${g.copies} |`),
    '',
    '| op profile | the ten ops with the most time, share of the step |',
    '|---|---|',
    ...c.profile.map(
      (p) =>
        `| ${p.graph}, batch ${p.batch} | ${p.top.map((t) => `${t.op} ${(100 * t.share).toFixed(1)}%`).join(', ')} |`,
    ),
  ];
}

/** `readme` with the text between the gpu-run markers replaced by `table`. */
export function withTable(readme: string, table: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${START} … ${END} block`);
  return `${readme.slice(0, a + START.length)}\n${table}\n${readme.slice(b)}`;
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: node dist/bench/gpu-report.js DIR [--readme]');
  const { table } = await gpuReport(dir);
  console.log(table);
  if (process.argv.includes('--readme'))
    await writeFile('README.md', withTable(await readFile('README.md', 'utf8'), table));
}
