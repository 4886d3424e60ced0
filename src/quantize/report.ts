// `quantize`'s report, a line each: the file and its layers in int8, the tags file copied, the mode and
// why, the float rewrites applied, the head's form, and the agreement with the float model.
import { imagesText, type Agreement } from './agreement.js';
import type { QuantizeResult } from './quantize.js';

/** What `quantize` prints: the file and its layers, the tags file copied, the mode, the agreement. */
export function quantizeReport(r: QuantizeResult): string[] {
  const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
  const layers = [...new Map(r.layers.map((l) => [l.weight, l])).values()]; // a tiled MLP's nodes share their weights
  const ops = ['MatMul', 'Gemm', 'Conv']
    .map((op) => [op, layers.filter((l) => l.op === op).length] as const)
    .filter(([, n]) => n > 0)
    .map(([op, n]) => `${n} ${op}`);
  const lines = [
    `wrote ${r.file}: ${layers.length} layers in int8 (${ops.join(', ')}), ${mb(r.bytesBefore)} → ${mb(r.bytesAfter)}`,
  ];
  if (r.tagsCopied) lines.push(`copied the tags file beside it: ${r.tagsCopied}`);
  lines.push(
    r.mode === 'static'
      ? `mode static: activations at ranges calibrated on ${r.calibrated} images${r.why ? ` (${r.why})` : ''}`
      : `mode dynamic: activations quantized at run time${r.why ? ` (${r.why})` : ''}`,
  );
  const n = r.norms;
  if (n.count > 0)
    lines.push(
      `${n.count} layer norm${n.count === 1 ? '' : 's'} as instance norms (ONNX Runtime's vectorized kernel), γ and β of ${n.folded} folded into the layers after them`,
    );
  if (r.residuals > 0)
    lines.push(
      `${r.residuals} residual add${r.residuals === 1 ? '' : 's'} in their branch's layout (a Transpose fewer each)`,
    );
  if (r.tiled > 0)
    lines.push(
      `${r.tiled} MLP${r.tiled === 1 ? '' : 's'} a tile of rows at a time (their hidden activations stay in cache)`,
    );
  const h = r.head;
  const tried = h.tried ? ` (F1 ${h.tried.int8.toFixed(4)} with it in int8, ${h.tried.float.toFixed(4)} float)` : '';
  lines.push(`head ${h.layer.node} (${h.layer.op} ${h.layer.k} × ${h.layer.n}): ${h.float ? 'float' : 'int8'}${tried}`);
  lines.push(
    r.agreement
      ? agreementLine(r.agreement)
      : 'not checked on images: give --images DIR to compare int8 and float tags before keeping it',
  );
  return lines;
}

/** The agreement of the int8 model's tags and scores with the float model's, on one line. */
export function agreementLine(a: Agreement): string {
  const none =
    a.given.float + a.given.int8 === 0
      ? '; neither model gives a tag on them at the thresholds used, so F1 measures nothing: judge by |Δp|, or check at a lower --threshold'
      : '';
  return `agreement on ${imagesText(a.images)}: F1 ${a.f1.toFixed(4)} of int8 tags against float tags (${a.given.float} float, ${a.given.int8} int8), +${a.addedPerImage.toFixed(2)} / −${a.droppedPerImage.toFixed(2)} tags per image, |Δp| max ${a.maxDelta.toFixed(4)} mean ${a.meanDelta.toFixed(5)}${none}${unreadable(a.unreadable)}`;
}

/** The images neither model could read, named (the first three, then how many more). */
function unreadable(files: readonly string[]): string {
  if (files.length === 0) return '';
  const named = files.slice(0, 3).map((f) => JSON.stringify(f));
  const more = files.length > 3 ? ` and ${files.length - 3} more` : '';
  return `; ${files.length} image${files.length === 1 ? '' : 's'} unreadable: ${named.join(', ')}${more}`;
}
