import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { SERIES_COLORS, curvesSvg, formatTick, niceLinearAxis, niceLogAxis, renderCurvesPng, type CurvePanel } from '../model/tools/plot.ts';

const hex = (c: string): [number, number, number] => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)) as [number, number, number];

test('plot: nice ticks', () => {
  const a = niceLinearAxis(0, 3000);
  assert.equal(a.ticks, [0, 500, 1000, 1500, 2000, 2500, 3000]);
  assert.ok(a.lo < 0 && a.hi > 3000, 'padded so lines at the extremes are not cut');
  assert.equal(niceLinearAxis(0.1, 0.52).ticks, [0.1, 0.2, 0.3, 0.4, 0.5]);
  const c = niceLinearAxis(5, 5); // constant
  assert.ok(c.lo < 5 && c.hi > 5 && c.ticks.includes(5));
  const z = niceLinearAxis(0, 0);
  assert.ok(z.lo < 0 && z.hi > 0 && z.ticks.includes(0));
  assert.equal(niceLogAxis(0.001, 10).ticks, [0.001, 0.01, 0.1, 1, 10]);
  assert.equal(niceLogAxis(0.06, 3).ticks, [0.1, 0.2, 0.5, 1, 2]);
  const narrow = niceLogAxis(3.1, 3.4);
  assert.ok(narrow.ticks.length >= 2 && narrow.ticks.every((t) => t >= narrow.lo && t <= narrow.hi));
  assert.equal([0, 0.5, 0.02, 123456, 1e-5, -2.5].map(formatTick), ['0', '0.5', '0.02', '1.23e5', '1e-5', '-2.5']);
});

const panels: CurvePanel[] = [
  { title: 'losses', xLabel: 'iteration', logY: true, series: [
    { name: 'loss', points: Array.from({ length: 200 }, (_, i) => [i, 2 * Math.exp(-i / 50) + 0.05] as [number, number]) },
    { name: 'with <xml> & zero', points: [[0, 1], [50, 0], [100, -1], [150, 0.3], [199, 0.2]] }] },
  { title: 'lr', xLabel: 'iteration', series: [{ name: 'lr', points: [[0, 0.02], [100, 0.02], [200, 0.002]] }] },
  { title: 'AP', xLabel: 'iteration', series: [{ name: 'box', points: [[100, 0.3]] }, { name: 'mask', points: [[0, NaN], [50, 0.1], [100, 0.2], [150, Infinity], [200, 0.4], [250, 0.45]] }] },
  { title: 'constant', xLabel: 'iteration', series: [{ name: 'c', points: [[0, 7], [10, 7], [20, 7]] }] },
  { title: 'empty', xLabel: 'iteration', series: [{ name: 'nothing yet', points: [] }] },
];

test('plot: SVG is well formed for empty, single-point, NaN, constant and log-with-zero series', () => {
  const { svg, widthPx, heightPx, plotRects } = curvesSvg(panels);
  assert.is(widthPx, 3 * 480);
  assert.is(heightPx, 2 * 320);
  assert.is(plotRects.length, 5);
  assert.not.match(svg, /NaN|Infinity|undefined/);
  assert.match(svg, /with &lt;xml&gt; &amp; zero/);
  assert.match(svg, /2 values &lt;= 0 not shown/);
  assert.match(svg, /no data/);
  assert.match(svg, /<circle/); // the single point
  assert.throws(() => curvesSvg(panels, { panelWidthPx: 50 }), /160x120/);
});

test('plot: PNG written, decodes at the expected size, curves drawn in every panel with data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'plot-'));
  try {
    const path = join(dir, 'sub', 'curves.png');
    const layout = await renderCurvesPng(path, panels, { panelWidthPx: 400, panelHeightPx: 260 });
    assert.ok(existsSync(path));
    assert.equal(readdirSync(join(dir, 'sub')), ['curves.png'], 'no temporary file left');
    const { data, info } = await sharp(path).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.is(info.width, 3 * 400);
    assert.is(info.height, 2 * 260);
    assert.is(layout.widthPx, info.width);
    const count = (r: { x: number; y: number; w: number; h: number }, pred: (p: number[]) => boolean): number => {
      let n = 0;
      for (let y = Math.ceil(r.y) + 2; y < r.y + r.h - 2; y++) for (let x = Math.ceil(r.x) + 2; x < r.x + r.w - 2; x++) {
        const o = (y * info.width + x) * 3;
        if (pred([data[o], data[o + 1], data[o + 2]])) n++;
      }
      return n;
    };
    // Series pixels, antialiased ones included: blue (tab10 #1f77b4) has b >> r, orange (#ff7f0e) r >> b; grid and text are grey.
    const [bR, , bB] = hex(SERIES_COLORS[0]), [oR, , oB] = hex(SERIES_COLORS[1]);
    assert.ok(bB - bR > 100 && oR - oB > 100);
    const blue = (p: number[]) => p[2] - p[0] > 40, orange = (p: number[]) => p[0] - p[2] > 40;
    layout.plotRects.forEach((r, i) => {
      const nonWhite = count(r, (p) => p[0] + p[1] + p[2] < 3 * 235);
      assert.ok(nonWhite > 50, `panel ${i}: only ${nonWhite} non-white pixels`);
    });
    // The empty panel has only its legend swatch; every legend has one per series, so counts are taken above that.
    const swatch = count(layout.plotRects[4], blue);
    assert.ok(swatch > 10 && swatch < 80, `empty panel: ${swatch} blue pixels, expected only the legend swatch`);
    assert.ok(count(layout.plotRects[0], blue) > swatch + 200, 'losses: first series line');
    assert.ok(count(layout.plotRects[0], orange) > swatch + 100, 'losses: second series drawn from its positive points');
    assert.ok(count(layout.plotRects[1], blue) > swatch + 200, 'lr line');
    assert.ok(count(layout.plotRects[2], blue) > swatch + 15, 'AP: the single point as a dot');
    assert.ok(count(layout.plotRects[2], orange) > swatch + 100, 'AP: mask line on both sides of the non-finite points');
    assert.ok(count(layout.plotRects[3], blue) > swatch + 200, 'constant line');
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test.run();
