// Dataset choice for the tools (train.ts / test.ts): names → COCO-format specs, and the `shapes`
// default with instances and person keypoints merged so one model trains box + mask + keypoint
// heads together (the instance file's person annotations carry the keypoints of the keypoint
// file; annotation ids match, data/shapes.ts).
import { existsSync } from 'node:fs';
import { datasetFromFiles, loadCoco, resolveDataset, type DatasetSpec, type LoadedCoco, type Split } from '../data/coco.ts';
import { COCO_KEYPOINT_FLIP_MAP } from '../data/images.ts';
import { prepareVoc, VOC_LAYOUT } from '../data/voc-coco.ts';
import { prepareVg, VG_LAYOUT } from '../data/vg.ts';
import type { CocoDataset } from '../data/coco-types.ts';

export type DatasetName = 'shapes' | 'coco2014' | 'coco2017' | 'keypoints_coco2017' | 'pascal_voc' | 'vg';
export const DATASET_NAMES: DatasetName[] = ['shapes', 'coco2014', 'coco2017', 'keypoints_coco2017', 'pascal_voc', 'vg'];

export interface ToolDataset {
  loaded: LoadedCoco;
  /** Ground truth for each evaluation kind this dataset supports. */
  gt: { bbox: CocoDataset; segm: CocoDataset | null; keypoints: CocoDataset | null };
  hasMasks: boolean;
  numKeypoints: number;
  /** Model labels whose category has keypoints (COCO: person). */
  keypointLabels: Set<number>;
}

/** Attaches keypoints from a person_keypoints file to an instances load (by annotation id). */
export function mergeKeypoints(inst: LoadedCoco, kp: LoadedCoco): LoadedCoco {
  const K = kp.numKeypoints;
  const byAnn = new Map<number, Float32Array>();
  for (const r of kp.records) {
    const t = r.targets;
    if (!t.keypoints) continue;
    t.annIds.forEach((id, i) => byAnn.set(id, t.keypoints!.subarray(i * K * 3, (i + 1) * K * 3)));
  }
  const records = inst.records.map((r) => {
    const n = r.targets.labels.length;
    const k = new Float32Array(n * K * 3);
    r.targets.annIds.forEach((id, i) => { const v = byAnn.get(id); if (v) k.set(v, i * K * 3); });
    return { ...r, targets: { ...r.targets, keypoints: k } };
  });
  return { ...inst, records, numKeypoints: K, keypointFlipMap: K === COCO_KEYPOINT_FLIP_MAP.length ? COCO_KEYPOINT_FLIP_MAP : kp.keypointFlipMap };
}

export interface DatasetArgs { dataset: DatasetName; ann?: string; images?: string; dataRoot?: string; keypoints: boolean; split: Split }

export async function loadToolDataset(a: DatasetArgs, log: ((m: string) => void) | null): Promise<ToolDataset> {
  let inst: LoadedCoco;
  let kp: LoadedCoco | null = null;
  if (a.ann || a.images) {
    if (!a.ann || !a.images) throw new Error('dataset: --ann and --images go together (a COCO-format annotation file and its image folder)');
    for (const [what, p] of [['--ann', a.ann], ['--images', a.images]] as const) {
      if (!existsSync(p)) throw new Error(`dataset: ${what} ${p} does not exist`);
    }
    inst = loadCoco(datasetFromFiles(a.ann, a.images), { log });
  } else {
    const spec = await specFor(a.dataset, a.split, a.dataRoot, false);
    inst = loadCoco(spec, { log });
    if (a.dataset === 'shapes' && a.keypoints) kp = loadCoco(await resolveDataset('shapes-keypoints', a.split), { log, filterEmptyImages: false, minKeypointsPerImage: 0 });
  }
  const loaded = kp ? mergeKeypoints(inst, kp) : inst;
  const keypointLabels = new Set<number>();
  const kpCats = (kp ?? inst).categories.filter((c) => Array.isArray(c.keypoints) && c.keypoints.length > 0);
  for (const c of kpCats) { const l = loaded.catIdToLabel.get(c.id); if (l !== undefined) keypointLabels.add(l); }
  const hasMasks = inst.dataset.annotations.some((x) => x.segmentation !== undefined && x.segmentation !== null && (!Array.isArray(x.segmentation) || x.segmentation.length > 0));
  return {
    loaded,
    gt: { bbox: inst.dataset, segm: hasMasks ? inst.dataset : null, keypoints: kp ? kp.dataset : loaded.numKeypoints ? inst.dataset : null },
    hasMasks, numKeypoints: loaded.numKeypoints, keypointLabels,
  };
}

const LAYOUT: Record<Exclude<DatasetName, 'shapes'>, string> = {
  coco2014: 'data/coco/annotations/instances_{train,val}2014.json + data/coco/images/{train,val}2014/',
  coco2017: 'data/coco/annotations/instances_{train,val}2017.json + data/coco/images/{train,val}2017/',
  keypoints_coco2017: 'data/coco/annotations/person_keypoints_{train,val}2017.json + data/coco/images/{train,val}2017/',
  pascal_voc: 'data/VOCdevkit/VOC2007/{Annotations,JPEGImages,ImageSets/Main}/ (converted by data/voc.ts)',
  vg: 'data/vg/{image_data.json,objects.json,objects_vocab.txt,images/VG_100K*/} (converted by data/vg.ts)',
};

async function specFor(name: DatasetName, split: Split, dataRoot: string | undefined, _kp: boolean): Promise<DatasetSpec> {
  switch (name) {
    case 'shapes': return resolveDataset('shapes', split);
    case 'coco2014': case 'coco2017': case 'keypoints_coco2017': {
      const n = name === 'keypoints_coco2017' ? 'coco2017-keypoints' : name;
      const spec = await resolveDataset(n, split, { dataRoot });
      if (!existsSync(spec.annPath) || !existsSync(spec.imagesDir)) throw new Error(`dataset ${name}: ${spec.annPath} or ${spec.imagesDir} does not exist; expected layout: ${LAYOUT[name]}`);
      return spec;
    }
    // converted once into a cached COCO JSON (data/voc-coco.ts, data/vg.ts); the loader is the same.
    // VOC: train = 07 trainval, val = 07 test (the seed's protocol); VG: boxes only.
    case 'pascal_voc': return prepareVoc(split, { root: dataRoot ? `${dataRoot}/VOCdevkit` : undefined, years: ['2007'] });
    case 'vg': return prepareVg(split, { root: dataRoot ? `${dataRoot}/vg` : undefined });
  }
}
