// Training curves as a PNG: an SVG built here (axes, nice-number ticks, grid, legend, one panel
// per title in a grid) rendered by sharp (librsvg). Non-finite points are skipped and break the
// line; on a log axis non-positive values are skipped too and counted in the panel title.
import { mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';

export interface CurveSeries { name: string; points: [number, number][] }
export interface CurvePanel { title: string; xLabel: string; series: CurveSeries[]; logY?: boolean }
export interface PlotOptions {
  /** Size of one panel; the image is cols x rows panels. Defaults 480 x 320. */
  panelWidthPx?: number;
  panelHeightPx?: number;
  /** Panels per row; default ceil(sqrt(panels)). */
  cols?: number;
}
export interface PanelRect { x: number; y: number; w: number; h: number }
export interface CurvesLayout {
  widthPx: number;
  heightPx: number;
  /** Plot area (inside the axes) of each panel, in image pixels. */
  plotRects: PanelRect[];
}

/** matplotlib's tab10: distinct, readable on white. */
export const SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

const FONT = "DejaVu Sans, Arial, Helvetica, sans-serif";
const MARGIN = { left: 66, right: 14, top: 30, bottom: 42 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Heckbert's nice number ("Graphics Gems", 1990): x rounded to 1, 2, 5 or 10 times a power of ten. */
function niceNum(x: number): number {
  const e = Math.floor(Math.log10(x));
  const f = x / 10 ** e;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * 10 ** e;
}

/** Fraction of the data range added on each side, so lines at the extremes are not cut by the frame. */
const AXIS_PAD = 0.04;

/** Nice step (1, 2 or 5 x 10^k) giving about `maxTicks` ticks over [lo, hi]; the ticks are its multiples inside. */
function linearTicks(lo: number, hi: number, maxTicks: number): { ticks: number[]; step: number } {
  const step = niceNum((hi - lo) / Math.max(maxTicks - 1, 1));
  const decimals = Math.min(20, Math.max(0, -Math.floor(Math.log10(step)) + 1));
  const ticks: number[] = [];
  for (let k = Math.ceil(lo / step - 1e-9); k <= Math.floor(hi / step + 1e-9); k++) ticks.push(Number((k * step).toFixed(decimals)));
  return { ticks, step };
}

/** Linear axis: the data range padded by AXIS_PAD on each side (a band around a constant), nice ticks inside. */
export function niceLinearAxis(lo: number, hi: number, maxTicks = 6): { lo: number; hi: number; ticks: number[]; step: number } {
  if (!(Number.isFinite(lo) && Number.isFinite(hi))) { lo = 0; hi = 1; }
  if (hi < lo) [lo, hi] = [hi, lo];
  if (hi === lo) { const d = Math.abs(lo) * 0.1 || 1; lo -= d; hi += d; } else { const d = (hi - lo) * AXIS_PAD; lo -= d; hi += d; }
  return { lo, hi, ...linearTicks(lo, hi, maxTicks) };
}

/** Log axis over positive [lo, hi], padded in log space: decades (if 3 fit), else 1-2-5 or 1..9 mantissas, else linear ticks. */
export function niceLogAxis(lo: number, hi: number): { lo: number; hi: number; ticks: number[] } {
  if (!(lo > 0 && hi > 0 && Number.isFinite(lo) && Number.isFinite(hi))) { lo = 1; hi = 10; }
  if (hi < lo) [lo, hi] = [hi, lo];
  let l0 = Math.log10(lo), l1 = Math.log10(hi);
  if (l1 === l0) { l0 -= 0.5; l1 += 0.5; } else { const d = (l1 - l0) * AXIS_PAD; l0 -= d; l1 += d; }
  const axLo = 10 ** l0, axHi = 10 ** l1;
  const e0 = Math.floor(l0), e1 = Math.ceil(l1);
  const decadeStep = Math.max(1, Math.ceil((e1 - e0) / 8));
  for (const [mantissas, minTicks] of [[[1], 3], [[1, 2, 5], 2], [[1, 2, 3, 4, 5, 6, 7, 8, 9], 2]] as const) {
    const ticks: number[] = [];
    for (let e = e0; e <= e1; e += mantissas.length === 1 ? decadeStep : 1) {
      for (const m of mantissas) {
        const t = Number((m * 10 ** e).toPrecision(12));
        if (t >= axLo && t <= axHi) ticks.push(t);
      }
    }
    if (ticks.length >= minTicks) return { lo: axLo, hi: axHi, ticks };
  }
  return { lo: axLo, hi: axHi, ticks: linearTicks(axLo, axHi, 4).ticks };
}

/** Short tick label: fixed for ordinary magnitudes, exponent form for tiny or huge ones. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number(v.toPrecision(6)));
}

interface Run { xs: number[]; ys: number[] }

/** Splits a series into drawable runs, dropping non-finite (or, on log axes, non-positive) points. */
function runsOf(points: [number, number][], logY: boolean): { runs: Run[]; dropped: number } {
  const runs: Run[] = [];
  let cur: Run | null = null;
  let dropped = 0;
  for (const p of points) {
    const ok = Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logY || p[1] > 0);
    if (!ok) { if (Array.isArray(p) && Number.isFinite(p[0]) && Number.isFinite(p[1])) dropped++; cur = null; continue; }
    if (!cur) { cur = { xs: [], ys: [] }; runs.push(cur); }
    cur.xs.push(p[0]); cur.ys.push(p[1]);
  }
  return { runs, dropped };
}

function panelSvg(panel: CurvePanel, ox: number, oy: number, W: number, H: number, id: number): { svg: string; rect: PanelRect } {
  const logY = panel.logY ?? false;
  const px = ox + MARGIN.left, py = oy + MARGIN.top;
  const pw = W - MARGIN.left - MARGIN.right, ph = H - MARGIN.top - MARGIN.bottom;
  const seriesRuns = panel.series.map((s) => runsOf(s.points ?? [], logY));
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const { runs } of seriesRuns) for (const r of runs) for (let i = 0; i < r.xs.length; i++) {
    xmin = Math.min(xmin, r.xs[i]); xmax = Math.max(xmax, r.xs[i]);
    ymin = Math.min(ymin, r.ys[i]); ymax = Math.max(ymax, r.ys[i]);
  }
  const empty = xmin > xmax;
  const xa = empty ? niceLinearAxis(0, 1) : niceLinearAxis(xmin, xmax, 6);
  const ya = logY ? niceLogAxis(empty ? 1 : ymin, empty ? 10 : ymax) : (empty ? niceLinearAxis(0, 1) : niceLinearAxis(ymin, ymax, 6));
  const sx = (x: number): number => px + ((x - xa.lo) / (xa.hi - xa.lo)) * pw;
  const sy = logY
    ? (y: number): number => py + ph - ((Math.log10(y) - Math.log10(ya.lo)) / (Math.log10(ya.hi) - Math.log10(ya.lo))) * ph
    : (y: number): number => py + ph - ((y - ya.lo) / (ya.hi - ya.lo)) * ph;
  const f = (v: number): string => v.toFixed(2);
  const out: string[] = [];
  const dropped = seriesRuns.reduce((s, r) => s + r.dropped, 0);
  const title = panel.title + (dropped ? ` (${dropped} values <= 0 not shown)` : '');
  out.push(`<text x="${f(px + pw / 2)}" y="${f(oy + 20)}" font-size="14" font-weight="bold" text-anchor="middle">${esc(title)}</text>`);
  out.push(`<rect x="${f(px)}" y="${f(py)}" width="${f(pw)}" height="${f(ph)}" fill="#ffffff" stroke="none"/>`);
  for (const t of xa.ticks) {
    const x = sx(t);
    out.push(`<line x1="${f(x)}" y1="${f(py)}" x2="${f(x)}" y2="${f(py + ph)}" stroke="#e4e4e4" stroke-width="1"/>`);
    out.push(`<line x1="${f(x)}" y1="${f(py + ph)}" x2="${f(x)}" y2="${f(py + ph + 4)}" stroke="#000" stroke-width="1"/>`);
    out.push(`<text x="${f(x)}" y="${f(py + ph + 16)}" font-size="11" text-anchor="middle">${esc(formatTick(t))}</text>`);
  }
  for (const t of ya.ticks) {
    const y = sy(t);
    if (y < py - 0.5 || y > py + ph + 0.5) continue;
    out.push(`<line x1="${f(px)}" y1="${f(y)}" x2="${f(px + pw)}" y2="${f(y)}" stroke="#e4e4e4" stroke-width="1"/>`);
    out.push(`<line x1="${f(px - 4)}" y1="${f(y)}" x2="${f(px)}" y2="${f(y)}" stroke="#000" stroke-width="1"/>`);
    out.push(`<text x="${f(px - 7)}" y="${f(y + 4)}" font-size="11" text-anchor="end">${esc(formatTick(t))}</text>`);
  }
  out.push(`<text x="${f(px + pw / 2)}" y="${f(py + ph + 34)}" font-size="12" text-anchor="middle">${esc(panel.xLabel)}</text>`);
  out.push(`<clipPath id="c${id}"><rect x="${f(px)}" y="${f(py)}" width="${f(pw)}" height="${f(ph)}"/></clipPath>`);
  out.push(`<g clip-path="url(#c${id})">`);
  seriesRuns.forEach(({ runs }, si) => {
    const color = SERIES_COLORS[si % SERIES_COLORS.length];
    for (const r of runs) {
      if (r.xs.length === 1) {
        out.push(`<circle cx="${f(sx(r.xs[0]))}" cy="${f(sy(r.ys[0]))}" r="3" fill="${color}"/>`);
        continue;
      }
      const d = r.xs.map((x, i) => `${i ? 'L' : 'M'}${f(sx(x))} ${f(sy(r.ys[i]))}`).join('');
      out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round"/>`);
    }
  });
  out.push('</g>');
  if (empty) out.push(`<text x="${f(px + pw / 2)}" y="${f(py + ph / 2)}" font-size="13" fill="#888" text-anchor="middle">no data</text>`);
  out.push(`<rect x="${f(px)}" y="${f(py)}" width="${f(pw)}" height="${f(ph)}" fill="none" stroke="#000" stroke-width="1"/>`);

  // Legend in the corner of the plot area that covers the fewest points.
  const named = panel.series.map((s, si) => ({ name: s.name, si })).filter((s) => s.name);
  if (named.length > 0) {
    const lw = Math.min(pw - 8, 34 + 6.6 * Math.max(...named.map((s) => s.name.length)));
    const lh = 8 + 15 * named.length;
    const corners = [[px + pw - lw - 6, py + 6], [px + 6, py + 6], [px + pw - lw - 6, py + ph - lh - 6], [px + 6, py + ph - lh - 6]];
    let best = corners[0], bestCount = Infinity;
    for (const [cx, cy] of corners) {
      let n = 0;
      for (const { runs } of seriesRuns) for (const r of runs) for (let i = 0; i < r.xs.length; i++) {
        const x = sx(r.xs[i]), y = sy(r.ys[i]);
        if (x >= cx && x <= cx + lw && y >= cy && y <= cy + lh) n++;
      }
      if (n < bestCount) { bestCount = n; best = [cx, cy]; }
    }
    const [lx, ly] = best;
    out.push(`<rect x="${f(lx)}" y="${f(ly)}" width="${f(lw)}" height="${f(lh)}" fill="#ffffff" fill-opacity="0.85" stroke="#bbbbbb" stroke-width="1"/>`);
    named.forEach(({ name, si }, k) => {
      const y = ly + 4 + 15 * k + 8;
      const color = SERIES_COLORS[si % SERIES_COLORS.length];
      out.push(`<line x1="${f(lx + 6)}" y1="${f(y)}" x2="${f(lx + 26)}" y2="${f(y)}" stroke="${color}" stroke-width="2.5"/>`);
      out.push(`<text x="${f(lx + 31)}" y="${f(y + 4)}" font-size="11">${esc(name)}</text>`);
    });
  }
  return { svg: out.join('\n'), rect: { x: px, y: py, w: pw, h: ph } };
}

/** The SVG document and where each panel's plot area lies. */
export function curvesSvg(panels: CurvePanel[], opts: PlotOptions = {}): CurvesLayout & { svg: string } {
  const W = opts.panelWidthPx ?? 480, H = opts.panelHeightPx ?? 320;
  if (!(W >= 160 && H >= 120)) throw new Error(`plot: panel size ${W}x${H} px is below the 160x120 minimum`);
  const n = Math.max(panels.length, 1);
  const cols = Math.max(1, Math.min(opts.cols ?? Math.ceil(Math.sqrt(n)), n));
  const rows = Math.ceil(n / cols);
  const widthPx = cols * W, heightPx = rows * H;
  const parts: string[] = [];
  const plotRects: PanelRect[] = [];
  panels.forEach((p, i) => {
    const { svg, rect } = panelSvg(p, (i % cols) * W, Math.floor(i / cols) * H, W, H, i);
    parts.push(svg);
    plotRects.push(rect);
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${widthPx}" height="${heightPx}" viewBox="0 0 ${widthPx} ${heightPx}" font-family="${FONT}">\n` +
    `<rect x="0" y="0" width="${widthPx}" height="${heightPx}" fill="#f7f7f7"/>\n${parts.join('\n')}\n</svg>\n`;
  return { svg, widthPx, heightPx, plotRects };
}

/** Renders the panels to a PNG at `path` (written to a temporary name, then renamed). */
export async function renderCurvesPng(path: string, panels: CurvePanel[], opts: PlotOptions = {}): Promise<CurvesLayout> {
  const { svg, ...layout } = curvesSvg(panels, opts);
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}.png`;
  await sharp(Buffer.from(svg)).png().toFile(tmp);
  renameSync(tmp, path);
  return layout;
}
