// RUN/curves.svg: training and holdout loss, and holdout mAP, by round (ticks) and images seen, y-axes
// from zero, the checkpoint `export` would pick marked, the frequency-only tagger's mAP as a dashed line,
// and the holdout size in the title. A plain SVG redrawn after a round (at most every 2 s: run.ts) and after the last; no charting library.

export interface CurvePoint {
  round: number;
  images: number;
  trainLoss: number;
  holdoutLoss: number;
  map: number;
}

export interface CurveContext {
  /** Holdout images the metrics are computed on. */
  holdout: number;
  /** mAP of a tagger that only knows each tag's frequency (the base rate). */
  baseMap?: number;
}

const W = 680;
const H = 250;
const PAD = 48;
const TEXT = 'font-family="sans-serif"';

interface Series {
  key: 'trainLoss' | 'holdoutLoss' | 'map';
  colour: string;
  label: string;
}

/** Round ticks: about eight, at round numbers. */
function roundTicks(last: number): number[] {
  const step = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000].find((s) => last / s <= 8) ?? Math.ceil(last / 8);
  const ticks: number[] = [];
  for (let r = step; r <= last; r += step) ticks.push(r);
  return ticks;
}

function panel(
  points: CurvePoint[],
  top: number,
  title: string,
  series: Series[],
  yMax: number,
  extra: (y: (v: number) => number, x: (r: number) => number) => string,
): string {
  const last = Math.max(1, ...points.map((p) => p.round));
  const x = (r: number): number => PAD + ((W - 2 * PAD) * r) / last;
  const y = (v: number): number => top + H - PAD - ((H - 1.5 * PAD) * v) / Math.max(1e-9, yMax);
  let out = `<text x="${PAD}" y="${top + 16}" font-size="13" ${TEXT}>${title}</text>`;
  out += `<line x1="${PAD}" y1="${y(0)}" x2="${W - PAD}" y2="${y(0)}" stroke="#999"/><line x1="${PAD}" y1="${y(0)}" x2="${PAD}" y2="${y(yMax)}" stroke="#999"/>`;
  for (const v of [0, yMax / 2, yMax])
    out += `<text x="${PAD - 4}" y="${y(v) + 4}" font-size="10" text-anchor="end" ${TEXT}>${Number(v.toPrecision(3))}</text>`;
  const byRound = new Map(points.map((p) => [p.round, p.images]));
  for (const r of roundTicks(last)) {
    out += `<line x1="${x(r)}" y1="${y(0)}" x2="${x(r)}" y2="${y(0) + 4}" stroke="#999"/><text x="${x(r)}" y="${y(0) + 15}" font-size="10" text-anchor="middle" ${TEXT}>${r}</text>`;
    const seen = byRound.get(r);
    if (seen !== undefined)
      out += `<text x="${x(r)}" y="${y(0) + 26}" font-size="8" fill="#888" text-anchor="middle" ${TEXT}>${seen.toLocaleString('en')}</text>`;
  }
  out += `<text x="${W - PAD}" y="${y(0) + 38}" font-size="10" text-anchor="end" ${TEXT}>round (images seen below)</text>`;
  series.forEach((s, i) => {
    const pts = points
      .filter((p) => Number.isFinite(p[s.key]))
      .map((p) => `${x(p.round).toFixed(1)},${y(p[s.key]).toFixed(1)}`);
    if (pts.length) out += `<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${pts.join(' ')}"/>`;
    out += `<text x="${W - PAD - 170 + i * 85}" y="${top + 16}" font-size="11" fill="${s.colour}" ${TEXT}>${s.label}</text>`;
  });
  return out + extra(y, x);
}

/** The round whose checkpoint `export` picks: the best holdout mAP, the later one on ties. */
export function bestRound(points: readonly CurvePoint[]): CurvePoint | undefined {
  let best: CurvePoint | undefined;
  for (const p of points) if (Number.isFinite(p.map) && (!best || p.map >= best.map)) best = p;
  return best;
}

export function curvesSvg(points: CurvePoint[], ctx: CurveContext): string {
  const losses = points.flatMap((p) => [p.trainLoss, p.holdoutLoss]).filter(Number.isFinite);
  const hi = losses.length ? Math.max(...losses) * 1.05 : 1;
  const best = bestRound(points);
  const loss = panel(
    points,
    0,
    `loss (binary cross-entropy), holdout of ${ctx.holdout} images`,
    [
      { key: 'trainLoss', colour: '#1f77b4', label: 'train' },
      { key: 'holdoutLoss', colour: '#d62728', label: 'holdout' },
    ],
    hi,
    () => '',
  );
  const map = panel(
    points,
    H,
    `holdout mAP (${ctx.holdout} images)`,
    [{ key: 'map', colour: '#2ca02c', label: 'mAP' }],
    1,
    (y, x) => {
      let out = '';
      if (ctx.baseMap !== undefined) {
        out += `<line x1="${PAD}" y1="${y(ctx.baseMap)}" x2="${W - PAD}" y2="${y(ctx.baseMap)}" stroke="#888" stroke-dasharray="5,4"/>`;
        out += `<text x="${W - PAD}" y="${y(ctx.baseMap) - 4}" font-size="10" fill="#666" text-anchor="end" ${TEXT}>frequency-only tagger ${ctx.baseMap.toFixed(3)}</text>`;
      }
      if (best) {
        out += `<circle cx="${x(best.round)}" cy="${y(best.map)}" r="5" fill="none" stroke="#000" stroke-width="1.5"><title>best</title></circle>`;
        out += `<text x="${x(best.round)}" y="${y(best.map) - 9}" font-size="10" text-anchor="middle" ${TEXT}>export picks round ${best.round} (${best.map.toFixed(3)})</text>`;
      }
      return out;
    },
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" viewBox="0 0 ${W} ${2 * H}"><rect width="100%" height="100%" fill="white"/>${loss}${map}</svg>\n`;
}
