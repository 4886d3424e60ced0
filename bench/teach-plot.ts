// docs/teach.svg: the teach bench's holdout mean AP by positives per tag (log scale), the taught head
// beside the float64 logistic regression, the model trained from scratch on all tags and the base rate.
// A plain SVG, as RUN/curves.svg is.

interface Point {
  count: number;
  headAp: number;
  lrAp: number;
}

const W = 560;
const H = 280;
const PAD = 52;
const TEXT = 'font-family="sans-serif"';

export function teachPlot(r: {
  counts: Record<string, unknown>[];
  scratchAp: number;
  baseRate: number;
  taught: string[];
}): string {
  const pts = r.counts as unknown as Point[];
  const lx = (c: number): number =>
    PAD +
    ((Math.log(c) - Math.log(pts[0]!.count)) / (Math.log(pts.at(-1)!.count) - Math.log(pts[0]!.count))) * (W - 2 * PAD);
  const ly = (ap: number): number => H - PAD - ap * (H - 2 * PAD);
  const line = (ys: number[], colour: string, dash = ''): string =>
    `<polyline fill="none" stroke="${colour}" stroke-width="2" ${dash} points="${pts.map((p, i) => `${lx(p.count).toFixed(1)},${ly(ys[i]!).toFixed(1)}`).join(' ')}"/>`;
  const flat = (y: number, colour: string, label: string): string =>
    `<line x1="${PAD}" x2="${W - PAD}" y1="${ly(y)}" y2="${ly(y)}" stroke="${colour}" stroke-dasharray="5,4"/><text x="${W - PAD}" y="${ly(y) - 4}" font-size="10" text-anchor="end" fill="${colour}" ${TEXT}>${label} ${y.toFixed(3)}</text>`;
  let s = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}"><rect width="${W}" height="${H}" fill="white"/>`;
  s += `<text x="${W / 2}" y="18" font-size="13" text-anchor="middle" ${TEXT}>teach: ${r.taught.length} tags the base never saw, holdout mean AP by positives per tag</text>`;
  for (const t of [0, 0.25, 0.5, 0.75, 1])
    s += `<line x1="${PAD}" x2="${W - PAD}" y1="${ly(t)}" y2="${ly(t)}" stroke="#eee"/><text x="${PAD - 6}" y="${ly(t) + 4}" font-size="10" text-anchor="end" ${TEXT}>${t}</text>`;
  for (const p of pts)
    s += `<text x="${lx(p.count)}" y="${H - PAD + 16}" font-size="10" text-anchor="middle" ${TEXT}>${p.count}</text>`;
  s += `<text x="${W / 2}" y="${H - 12}" font-size="11" text-anchor="middle" ${TEXT}>positives per taught tag (log scale)</text>`;
  s += flat(r.scratchAp, '#888', 'from scratch on all tags');
  s += flat(r.baseRate, '#c33', 'base rate');
  s += line(
    pts.map((p) => p.lrAp),
    '#2a7',
    'stroke-dasharray="3,3"',
  );
  s += line(
    pts.map((p) => p.headAp),
    '#25c',
  );
  s += `<text x="${PAD + 8}" y="${PAD - 14}" font-size="11" fill="#25c" ${TEXT}>taught head (teach)</text><text x="${PAD + 150}" y="${PAD - 14}" font-size="11" fill="#2a7" ${TEXT}>float64 logistic regression</text>`;
  return `${s}</svg>\n`;
}
