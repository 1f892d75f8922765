// Pascal VOC XML annotations (boxes only; `difficult` kept). VOC pixel indices are 1-based and
// inclusive: pixel columns xmin..xmax. In the continuous, 0-based, no-+1 convention used by the
// rest of data/ that is x1 = xmin - 1, x2 = xmax. Computed in float: the seed stored xmin - 1
// in uint16, so a (0-based) xmin of 0 wrapped to 65535 and gave NaN losses; here it is clamped
// to 0 and counted.
import { readFileSync } from 'node:fs';
import { IssueCounter, type IssueReport } from './report.ts';

export interface VocObject { name: string; difficult: boolean; truncated: boolean }

export interface VocAnnotation {
  fileName: string;
  widthPx: number;
  heightPx: number;
  /** [n*4] continuous 0-based x1,y1,x2,y2. */
  boxesXyxy: Float32Array;
  objects: VocObject[];
}

export interface VocOptions {
  /** true (VOC proper): coordinates are 1-based inclusive pixel indices. false: 0-based inclusive. */
  oneBased?: boolean;
  issues?: IssueCounter;
}

function tag(xml: string, name: string): string | undefined {
  const m = new RegExp(`<${name}>\\s*([^<]*?)\\s*</${name}>`).exec(xml);
  return m ? m[1] : undefined;
}

/** Parses one VOC XML document; `source` names it in messages. */
export function parseVocXml(xml: string, source: string, opts: VocOptions = {}): VocAnnotation {
  const issues = opts.issues ?? new IssueCounter(`voc: ${source}`);
  const oneBased = opts.oneBased ?? true;
  const sizeXml = /<size>([\s\S]*?)<\/size>/.exec(xml)?.[1] ?? '';
  const W = Number(tag(sizeXml, 'width')), H = Number(tag(sizeXml, 'height'));
  if (!(W > 0 && H > 0)) throw new Error(`voc: ${source}: <size> has width=${tag(sizeXml, 'width')} height=${tag(sizeXml, 'height')}, need positive numbers`);
  const boxes: number[] = [];
  const objects: VocObject[] = [];
  const objRe = /<object>([\s\S]*?)<\/object>/g;
  let m: RegExpExecArray | null;
  let k = 0;
  while ((m = objRe.exec(xml))) {
    const o = m[1];
    const name = tag(o, 'name') ?? '';
    const bb = /<bndbox>([\s\S]*?)<\/bndbox>/.exec(o)?.[1];
    const where = `${source}: object ${k++} ('${name}')`;
    if (!bb) { issues.add('vocMissingBndbox', `${where}: no <bndbox>: skipped`); continue; }
    const [xmin, ymin, xmax, ymax] = ['xmin', 'ymin', 'xmax', 'ymax'].map((t) => Number(tag(bb, t)));
    if (![xmin, ymin, xmax, ymax].every(Number.isFinite)) { issues.add('vocBadCoordinate', `${where}: non-numeric bndbox: skipped`); continue; }
    const off = oneBased ? 1 : 0;
    let x1 = xmin - off, y1 = ymin - off, x2 = xmax - off + 1, y2 = ymax - off + 1;
    if (x1 < 0 || y1 < 0 || x2 > W || y2 > H) {
      issues.add('vocBoxClamped', `${where}: box [${xmin}, ${ymin}, ${xmax}, ${ymax}] outside ${W}x${H}${oneBased && (xmin === 0 || ymin === 0) ? ' (0 in 1-based VOC: annotations may be 0-based)' : ''}: clamped`);
      x1 = Math.max(0, x1); y1 = Math.max(0, y1); x2 = Math.min(W, x2); y2 = Math.min(H, y2);
    }
    if (x2 <= x1 || y2 <= y1) { issues.add('vocDegenerateBox', `${where}: box [${xmin}, ${ymin}, ${xmax}, ${ymax}] has no area: dropped`); continue; }
    boxes.push(x1, y1, x2, y2);
    objects.push({ name, difficult: tag(o, 'difficult') === '1', truncated: tag(o, 'truncated') === '1' });
  }
  return { fileName: tag(xml, 'filename') ?? '', widthPx: W, heightPx: H, boxesXyxy: new Float32Array(boxes), objects };
}

export function loadVocFiles(xmlPaths: string[], opts: VocOptions & { log?: ((m: string) => void) | null } = {}): { annotations: VocAnnotation[]; report: IssueReport } {
  const issues = opts.issues ?? new IssueCounter(`voc: ${xmlPaths.length} files`);
  const annotations = xmlPaths.map((p) => parseVocXml(readFileSync(p, 'utf8'), p, { ...opts, issues }));
  const log = opts.log === undefined ? (m: string) => console.warn(m) : opts.log;
  const kinds = Object.keys(issues.report.counts);
  if (log && kinds.length) log(`${issues.report.source}: ${kinds.map((k) => `${issues.report.counts[k]} ${k}`).join(', ')}`);
  return { annotations, report: issues.report };
}
