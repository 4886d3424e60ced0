// RUN/curves.svg: training and holdout loss, and holdout mAP, against images seen. A plain SVG with
// two panels, redrawn after every round; no charting library for two polylines.

export interface CurvePoint {
  images: number;
  trainLoss: number;
  holdoutLoss: number;
  map: number;
}

const W = 640;
const H = 240;
const PAD = 44;

function panel(points: CurvePoint[], top: number, title: string, series: { key: keyof CurvePoint; colour: string; label: string }[], yMin: number, yMax: number): string {
  const xMax = Math.max(1, ...points.map((p) => p.images));
  const x = (v: number): number => PAD + ((W - 2 * PAD) * v) / xMax;
  const y = (v: number): number => top + H - PAD / 2 - ((H - PAD) * (v - yMin)) / Math.max(1e-9, yMax - yMin);
  let out = `<text x="${PAD}" y="${top + 14}" font-size="13" font-family="sans-serif">${title}</text>`;
  out += `<line x1="${PAD}" y1="${y(yMin)}" x2="${W - PAD}" y2="${y(yMin)}" stroke="#999"/><line x1="${PAD}" y1="${y(yMin)}" x2="${PAD}" y2="${y(yMax)}" stroke="#999"/>`;
  for (const v of [yMin, (yMin + yMax) / 2, yMax]) out += `<text x="${PAD - 4}" y="${y(v) + 4}" font-size="10" text-anchor="end" font-family="sans-serif">${v.toPrecision(3)}</text>`;
  out += `<text x="${W - PAD}" y="${y(yMin) + 14}" font-size="10" text-anchor="end" font-family="sans-serif">${xMax.toLocaleString('en')} images</text>`;
  series.forEach((s, i) => {
    const pts = points.filter((p) => Number.isFinite(p[s.key])).map((p) => `${x(p.images).toFixed(1)},${y(p[s.key]).toFixed(1)}`);
    if (pts.length) out += `<polyline fill="none" stroke="${s.colour}" stroke-width="2" points="${pts.join(' ')}"/>`;
    out += `<text x="${W - PAD - 150 + i * 80}" y="${top + 14}" font-size="11" fill="${s.colour}" font-family="sans-serif">${s.label}</text>`;
  });
  return out;
}

export function curvesSvg(points: CurvePoint[]): string {
  const losses = points.flatMap((p) => [p.trainLoss, p.holdoutLoss]).filter(Number.isFinite);
  const lo = Math.min(...losses, Infinity);
  const hi = Math.max(...losses, -Infinity);
  const body =
    panel(points, 0, 'loss (binary cross-entropy)', [{ key: 'trainLoss', colour: '#1f77b4', label: 'train' }, { key: 'holdoutLoss', colour: '#d62728', label: 'holdout' }], Number.isFinite(lo) ? lo : 0, Number.isFinite(hi) ? hi : 1) +
    panel(points, H, 'holdout mAP', [{ key: 'map', colour: '#2ca02c', label: 'mAP' }], 0, 1);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" viewBox="0 0 ${W} ${2 * H}"><rect width="100%" height="100%" fill="white"/>${body}</svg>\n`;
}
