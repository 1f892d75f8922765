import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseVocXml } from '../data/voc.ts';
import { IssueCounter } from '../data/report.ts';

const xml = (objs: string): string => `<annotation><filename>000005.jpg</filename><size><width>500</width><height>375</height><depth>3</depth></size>${objs}</annotation>`;
const obj = (name: string, b: number[], difficult = 0): string =>
  `<object><name>${name}</name><truncated>0</truncated><difficult>${difficult}</difficult><bndbox><xmin>${b[0]}</xmin><ymin>${b[1]}</ymin><xmax>${b[2]}</xmax><ymax>${b[3]}</ymax></bndbox></object>`;

test('voc: 1-based inclusive pixel boxes -> continuous 0-based xyxy, difficult kept', () => {
  const a = parseVocXml(xml(obj('chair', [263, 211, 324, 339]) + obj('chair', [1, 1, 500, 375], 1)), 'x.xml');
  assert.is(a.fileName, '000005.jpg');
  assert.equal([a.widthPx, a.heightPx], [500, 375]);
  assert.equal(Array.from(a.boxesXyxy), [262, 210, 324, 339, 0, 0, 500, 375]);
  assert.equal(a.objects.map((o) => o.difficult), [false, true]);
});

test('voc: xmin = 0 does not wrap (seed uint16 bug): clamped to 0 and counted', () => {
  const issues = new IssueCounter('voc');
  const a = parseVocXml(xml(obj('dog', [0, 5, 10, 20])), 'zero.xml', { issues });
  assert.equal(Array.from(a.boxesXyxy), [0, 4, 10, 20]);
  assert.ok(a.boxesXyxy.every((v) => v >= 0 && v < 1000));
  assert.is(issues.report.counts.vocBoxClamped, 1);
  assert.match(issues.report.examples.vocBoxClamped[0], /0-based/);
});

test('voc: 0-based mode and degenerate boxes', () => {
  const issues = new IssueCounter('voc');
  const a = parseVocXml(xml(obj('cat', [0, 0, 9, 9]) + obj('cat', [20, 20, 10, 30])), 'z.xml', { oneBased: false, issues });
  assert.equal(Array.from(a.boxesXyxy), [0, 0, 10, 10]);
  assert.is(issues.report.counts.vocDegenerateBox, 1);
  assert.throws(() => parseVocXml('<annotation><size><width>0</width></size></annotation>', 'bad.xml'), /bad\.xml: <size>/);
});

test.run();
