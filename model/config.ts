// Model configuration as plain typed data: one interface, presets as values, no registries.
// torchvision presets reproduce `maskrcnn_resnet50_fpn` / `keypointrcnn_resnet50_fpn` defaults
// (../shared/reference/torchvision-mask-rcnn.md §1.1); `shapes_small` is sized for 2 CPU cores.
import type { BoxWeights } from '../engine/ops-detect.ts';
import type { LossName } from './mask-rcnn.ts';

export type ResNetDepth = 18 | 34 | 50 | 101;
/** frozen: torchvision FrozenBatchNorm2d (eps configurable; COCO_V1 weights need 0); batch: train-mode BN; group: GroupNorm. */
export type NormKind = 'frozen' | 'batch' | 'group';
/** random: torchvision's BalancedPositiveNegativeSampler (randperm); firstK: first positives/negatives by index (parity tests). */
export type SamplerMode = 'random' | 'firstK';
/** soft: torchvision's RoI-Aligned target used as is (roi_heads.project_masks_on_boxes); threshold: >= 0.5 (Detectron2). */
export type MaskTargetRule = 'soft' | 'threshold';

export interface BackboneConfig {
  depth: ResNetDepth;
  /** Channels of the stem and of layer1's 3×3 (torchvision: 64); every later stage doubles. */
  baseWidth: number;
  /** Blocks per stage; default from depth (e.g. [3,4,6,3] for 50). */
  blocks?: [number, number, number, number];
  norm: NormKind;
  normEps: number;
  /** GroupNorm groups (norm === 'group'). */
  groups: number;
  /** torchvision trainable_backbone_layers: 0..5 (5 = everything trains; 3 freezes stem + layer1). */
  trainableLayers: number;
}

export interface FpnConfig { outChannels: number; norm: 'none' | 'group' }

export interface RpnConfig {
  anchorSizes: number[][];
  aspectRatios: number[][];
  /** Convs in the shared head (torchvision v1: 1). */
  headConvs: number;
  preNmsTopNTrain: number; preNmsTopNTest: number;
  postNmsTopNTrain: number; postNmsTopNTest: number;
  nmsThresh: number;
  fgIouThresh: number; bgIouThresh: number;
  batchSizePerImage: number; positiveFraction: number;
  scoreThresh: number;
  minSizePx: number;
  smoothL1Beta: number;
}

/** RoI pooler of a head: aligned false = torchvision's MultiScaleRoIAlign; true = Detectron2's ROIAlignV2 (half-cell shift). */
export interface BoxHeadConfig {
  poolSize: number;
  samplingRatio: number;
  aligned: boolean;
  /** TwoMLPHead representation size (torchvision 1024). */
  representation: number;
  /** Convs before the MLP (0 = torchvision v1's TwoMLPHead; v2 uses 4 with norm). */
  convs: number;
  fgIouThresh: number; bgIouThresh: number;
  batchSizePerImage: number; positiveFraction: number;
  regWeights: BoxWeights;
  scoreThresh: number; nmsThresh: number; detectionsPerImage: number;
  /** Candidates (proposal, class) kept by score before the per-class NMS at inference; more are counted and reported. */
  preNmsCandidates: number;
  smoothL1Beta: number;
}

/** roisPerImage: training RoIs per image for the branch (0 = every positive, torchvision); fewer keeps the highest-objectness positives. */
export interface MaskHeadConfig { poolSize: number; samplingRatio: number; aligned: boolean; convChannels: number[]; predictorChannels: number; targetRule: MaskTargetRule; norm: 'none' | 'group'; roisPerImage?: number }
export interface KeypointHeadConfig { poolSize: number; samplingRatio: number; aligned: boolean; convChannels: number[]; numKeypoints: number; norm: 'none' | 'group'; roisPerImage?: number }

export interface ModelConfig {
  name: string;
  /** Including background (torchvision: index 0 = background; COCO 91). */
  numClasses: number;
  backbone: BackboneConfig;
  fpn: FpnConfig;
  rpn: RpnConfig;
  box: BoxHeadConfig;
  mask: MaskHeadConfig | null;
  keypoint: KeypointHeadConfig | null;
  /** Static capacity of GT instances per image on the GPU; more is an error naming this field. */
  maxGtPerImage: number;
  sampler: SamplerMode;
  /** Image resize: short side / max long side (torchvision transform). */
  minSizePx: number;
  maxSizePx: number;
  /** Multiplies each loss in the total (detectron2's per-head LOSS_WEIGHT); unnamed losses weigh 1. */
  lossWeights?: Partial<Record<LossName, number>>;
}

const TV_ANCHORS = [[32], [64], [128], [256], [512]];
const TV_RATIOS = Array.from({ length: 5 }, () => [0.5, 1, 2]);

/** torchvision maskrcnn_resnet50_fpn (v1, COCO_V1 weights: FrozenBN eps 0 via overwrite_eps). */
export function maskrcnnResnet50Fpn(numClasses = 91): ModelConfig {
  return {
    name: 'maskrcnn_resnet50_fpn',
    numClasses,
    backbone: { depth: 50, baseWidth: 64, norm: 'frozen', normEps: 0, groups: 32, trainableLayers: 3 },
    fpn: { outChannels: 256, norm: 'none' },
    rpn: {
      anchorSizes: TV_ANCHORS, aspectRatios: TV_RATIOS, headConvs: 1,
      preNmsTopNTrain: 2000, preNmsTopNTest: 1000, postNmsTopNTrain: 2000, postNmsTopNTest: 1000,
      nmsThresh: 0.7, fgIouThresh: 0.7, bgIouThresh: 0.3, batchSizePerImage: 256, positiveFraction: 0.5,
      scoreThresh: 0, minSizePx: 1e-3, smoothL1Beta: 1 / 9,
    },
    box: {
      poolSize: 7, samplingRatio: 2, aligned: false, representation: 1024, convs: 0, fgIouThresh: 0.5, bgIouThresh: 0.5,
      batchSizePerImage: 512, positiveFraction: 0.25, regWeights: [10, 10, 5, 5],
      scoreThresh: 0.05, nmsThresh: 0.5, detectionsPerImage: 100, preNmsCandidates: 4096, smoothL1Beta: 1 / 9,
    },
    mask: { poolSize: 14, samplingRatio: 2, aligned: false, convChannels: [256, 256, 256, 256], predictorChannels: 256, targetRule: 'soft', norm: 'none' },
    keypoint: null,
    maxGtPerImage: 100,
    sampler: 'random',
    minSizePx: 800, maxSizePx: 1333,
  };
}

/** torchvision keypointrcnn_resnet50_fpn: 2 classes, 17 keypoints, post-NMS 2000/1000 as FasterRCNN's defaults. */
export function keypointrcnnResnet50Fpn(): ModelConfig {
  const c = maskrcnnResnet50Fpn(2);
  return {
    ...c,
    name: 'keypointrcnn_resnet50_fpn',
    mask: null,
    keypoint: { poolSize: 14, samplingRatio: 2, aligned: false, convChannels: Array(8).fill(512), numKeypoints: 17, norm: 'none' },
    minSizePx: 800,
  };
}

/**
 * The embedded `shapes` default for 2 CPU cores (lavapipe): box + mask + keypoint heads together,
 * a ResNet-18-layout backbone at 1/4 width with GroupNorm (training from scratch at batch 4,
 * He et al. 2019), narrow FPN and heads, fewer proposals and sampled RoIs. Sizes are the
 * measured choice recorded in model/README-model.md.
 */
export function shapesSmall(numClasses = 5): ModelConfig {
  return {
    name: 'shapes_small',
    numClasses,
    backbone: { depth: 18, baseWidth: 16, blocks: [1, 1, 1, 1], norm: 'group', normEps: 1e-5, groups: 8, trainableLayers: 5 },
    fpn: { outChannels: 32, norm: 'none' },
    rpn: {
      anchorSizes: [[16], [32], [64], [128], [256]], aspectRatios: TV_RATIOS, headConvs: 1,
      preNmsTopNTrain: 300, preNmsTopNTest: 300, postNmsTopNTrain: 150, postNmsTopNTest: 100,
      nmsThresh: 0.7, fgIouThresh: 0.7, bgIouThresh: 0.3, batchSizePerImage: 256, positiveFraction: 0.5,
      scoreThresh: 0, minSizePx: 1e-3, smoothL1Beta: 1 / 9,
    },
    box: {
      poolSize: 7, samplingRatio: 2, aligned: true, representation: 256, convs: 0, fgIouThresh: 0.5, bgIouThresh: 0.5,
      batchSizePerImage: 64, positiveFraction: 0.25, regWeights: [10, 10, 5, 5],
      scoreThresh: 0.05, nmsThresh: 0.5, detectionsPerImage: 20, preNmsCandidates: 1024, smoothL1Beta: 1 / 9,
    },
    mask: { poolSize: 14, samplingRatio: 2, aligned: true, convChannels: [32, 32], predictorChannels: 32, targetRule: 'threshold', norm: 'group', roisPerImage: 8 },
    keypoint: { poolSize: 14, samplingRatio: 2, aligned: true, convChannels: [32, 32, 32, 32], numKeypoints: 17, norm: 'group', roisPerImage: 4 },
    maxGtPerImage: 8,
    sampler: 'random',
    minSizePx: 192, maxSizePx: 288,
  };
}

export type PresetName = 'maskrcnn_resnet50_fpn' | 'keypointrcnn_resnet50_fpn' | 'shapes_small';
export function preset(name: PresetName): ModelConfig {
  switch (name) {
    case 'maskrcnn_resnet50_fpn': return maskrcnnResnet50Fpn();
    case 'keypointrcnn_resnet50_fpn': return keypointrcnnResnet50Fpn();
    case 'shapes_small': return shapesSmall();
  }
}

export const DEFAULT_BLOCKS: Record<ResNetDepth, [number, number, number, number]> = {
  18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3],
};
export const isBottleneck = (d: ResNetDepth) => d >= 50;

/** Clear error for configs that cannot work, naming the field and the limit. */
export function validateConfig(c: ModelConfig): void {
  const bad = (field: string, why: string) => { throw new Error(`config ${c.name}: ${field} ${why}`); };
  if (c.numClasses < 2) bad('numClasses', `must be >= 2 (background + 1), got ${c.numClasses}`);
  if (c.rpn.anchorSizes.length !== 5 || c.rpn.aspectRatios.length !== 5) bad('rpn.anchorSizes/aspectRatios', 'need one entry per FPN level P2..P5 + pool (5)');
  if (new Set(c.rpn.aspectRatios.map((r) => r.length * 1)).size !== 1) bad('rpn.aspectRatios', 'must give the same anchor count per level (the RPN head is shared)');
  if (c.backbone.norm === 'group' && c.backbone.baseWidth % c.backbone.groups) bad('backbone.groups', `${c.backbone.groups} must divide baseWidth ${c.backbone.baseWidth}`);
  if (c.backbone.trainableLayers < 0 || c.backbone.trainableLayers > 5) bad('backbone.trainableLayers', `must be in 0..5, got ${c.backbone.trainableLayers}`);
  if (c.maxGtPerImage < 1) bad('maxGtPerImage', `must be >= 1, got ${c.maxGtPerImage}`);
  if (c.box.positiveFraction <= 0 || c.box.positiveFraction > 1) bad('box.positiveFraction', `must be in (0, 1], got ${c.box.positiveFraction}`);
  if (c.keypoint && c.keypoint.numKeypoints < 1) bad('keypoint.numKeypoints', 'must be >= 1');
}

const LOSS_NAMES: readonly LossName[] = ['loss_objectness', 'loss_rpn_box_reg', 'loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_keypoint'];

/**
 * Applies `path=value` overrides (detectron2's `opts`, e.g. `box.batchSizePerImage=128`,
 * `lossWeights.loss_keypoint=0.5`, `rpn.anchorSizes=[[16],[32],[64],[128],[256]]`) to a copy of
 * the config. Values are JSON (bare words are strings); the path must exist (except under
 * lossWeights) and the value must have the type of the one it replaces.
 */
export function applyOverrides(c: ModelConfig, sets: readonly string[]): ModelConfig {
  const out = structuredClone(c) as ModelConfig;
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new Error(`config override "${set}": expected path=value, e.g. box.batchSizePerImage=128`);
    const path = set.slice(0, eq).split('.');
    const text = set.slice(eq + 1);
    let value: unknown;
    try { value = JSON.parse(text); } catch { value = text; }
    let node = out as unknown as Record<string, unknown>;
    for (let i = 0; i < path.length - 1; i++) {
      if (path[i] === 'lossWeights' && i === 0 && !node.lossWeights) node.lossWeights = {};
      const next = node[path[i]];
      if (next === null || typeof next !== 'object') throw new Error(`config override "${set}": ${path.slice(0, i + 1).join('.')} is ${next === null ? 'null (that head is off)' : 'not a section'} in ${c.name}; sections: ${Object.keys(node).join(', ')}`);
      node = next as Record<string, unknown>;
    }
    const leaf = path[path.length - 1];
    if (path[0] === 'lossWeights') {
      if (path.length !== 2 || !LOSS_NAMES.includes(leaf as LossName)) throw new Error(`config override "${set}": lossWeights.<name> with name one of ${LOSS_NAMES.join(', ')}`);
      if (typeof value !== 'number' || !(value >= 0)) throw new Error(`config override "${set}": a loss weight must be a number >= 0`);
    } else {
      if (!(leaf in node)) throw new Error(`config override "${set}": no field ${leaf} in ${path.slice(0, -1).join('.') || 'the config'}; fields: ${Object.keys(node).join(', ')}`);
      const old = node[leaf];
      const kind = (v: unknown) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
      if (old !== null && old !== undefined && kind(old) !== kind(value)) throw new Error(`config override "${set}": ${path.join('.')} is a ${kind(old)} (${JSON.stringify(old)}), got a ${kind(value)}`);
    }
    node[leaf] = value;
  }
  validateConfig(out);
  return out;
}
