// ModelConfigs of the torchvision parity fixtures (test/fixtures/gen_model_fixtures.py, spec
// /work/notes/fixture-spec.md): maskrcnn_tiny and keypointrcnn_tiny exactly as torchvision builds them.
// Test-only: the parity test and its helpers use these; model/config.ts keeps the real presets.
import type { ModelConfig } from '../model/config.ts';

const RATIOS = Array.from({ length: 5 }, () => [0.5, 1, 2]);

function tinyCommon(name: string, numClasses: number, frozenBnEps: number, depth: 18 | 50): ModelConfig {
  return {
    name,
    numClasses,
    backbone: { depth, baseWidth: 64, blocks: [1, 1, 1, 1], norm: 'frozen', normEps: frozenBnEps, groups: 32, trainableLayers: 5 },
    fpn: { outChannels: 32, norm: 'none' },
    rpn: {
      anchorSizes: [[16], [32], [48], [64], [96]], aspectRatios: RATIOS, headConvs: 1,
      preNmsTopNTrain: 200, preNmsTopNTest: 100, postNmsTopNTrain: 100, postNmsTopNTest: 50,
      nmsThresh: 0.7, fgIouThresh: 0.7, bgIouThresh: 0.3, batchSizePerImage: 64, positiveFraction: 0.5,
      // torchvision rpn min_size 1e-3 (remove_small_boxes in filter_proposals)
      scoreThresh: 0, minSizePx: 1e-3, smoothL1Beta: 1 / 9,
    },
    box: {
      poolSize: 7, samplingRatio: 2, aligned: false, representation: 64, convs: 0, fgIouThresh: 0.5, bgIouThresh: 0.5,
      batchSizePerImage: 64, positiveFraction: 0.25, regWeights: [10, 10, 5, 5],
      // 50 proposals × (numClasses - 1) candidates: nothing truncated before the per-class NMS
      scoreThresh: 0.05, nmsThresh: 0.5, detectionsPerImage: 20, preNmsCandidates: 50 * (numClasses - 1), smoothL1Beta: 1 / 9,
    },
    mask: null,
    keypoint: null,
    maxGtPerImage: 4,
    sampler: 'firstK',
    minSizePx: 64, maxSizePx: 96,
  };
}

/** maskrcnn_tiny: ResNet(Bottleneck, [1,1,1,1]) FrozenBN, FPN 32, 5 classes, mask head (32×4, predictor 32). */
export function maskrcnnTiny(frozenBnEps: number): ModelConfig {
  return {
    ...tinyCommon('maskrcnn_tiny', 5, frozenBnEps, 50),
    mask: { poolSize: 14, samplingRatio: 2, aligned: false, convChannels: [32, 32, 32, 32], predictorChannels: 32, targetRule: 'soft', norm: 'none' },
  };
}

/** keypointrcnn_tiny: ResNet(BasicBlock, [1,1,1,1]) FrozenBN, FPN 32, 2 classes, keypoint head 8×32, 17 keypoints. */
export function keypointrcnnTiny(frozenBnEps: number): ModelConfig {
  return {
    ...tinyCommon('keypointrcnn_tiny', 2, frozenBnEps, 18),
    keypoint: { poolSize: 14, samplingRatio: 2, aligned: false, convChannels: Array(8).fill(32), numKeypoints: 17, norm: 'none' },
  };
}
