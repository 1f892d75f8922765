// Name mapping from the weight files users bring to our module tree, which uses torchvision
// >= 0.13 detection names exactly (backbone.body.*, backbone.fpn.inner_blocks.{i}.0.*, rpn.head.conv.0.0.*,
// roi_heads.mask_head.{i}.0.*, roi_heads.keypoint_head.{0,2,..,14}.*).
//
// Sources:
//  - detection: torchvision maskrcnn / keypointrcnn / fasterrcnn _resnet50_fpn state dicts, in the legacy
//    spelling the COCO_V1 .pth files use (renamed exactly as torchvision's own _load_from_state_dict
//    hooks do) or already modern (unchanged).
//  - resnet: a classification ResNet (torchvision resnet50/101, or the seed's resnet101_caffe.pth,
//    which uses the same module names): conv1/bn1/layer1-4 go under backbone.body, fc is dropped.
//    The Caffe conversions expect BGR input in 0-255 minus the Caffe means; the mapping only renames.
//  - vgg16: torchvision vgg16 names (the seed's vgg16_caffe.pth): features.{i} -> backbone.body.features.{i};
//    classifier.0 / classifier.3 (fc6, fc7: the seed's RCNN_top) -> roi_heads.box_head.fc6 / fc7,
//    classifier.6 (ImageNet logits) is dropped (vggClassifier: 'drop' drops fc6/fc7 as well).
// Everywhere: a DataParallel `module.` prefix is stripped and BatchNorm `num_batches_tracked` is
// dropped (our FrozenBN keeps weight, bias, running_mean, running_var under the same names).

export type WeightsSource = 'detection' | 'resnet' | 'vgg16' | 'none';

export interface MapOptions {
  /** Default 'auto': detected from the keys (see detectSource). */
  source?: WeightsSource | 'auto';
  vggClassifier?: 'box_head' | 'drop';
}

export interface MapResult<T> {
  source: WeightsSource;
  mapped: Map<string, T>;
  /** [from, to] for every key whose name changed. */
  renamed: [string, string][];
  /** Keys deliberately not carried over (num_batches_tracked, classifier logits). */
  dropped: string[];
}

export function detectSource(keys: Iterable<string>): WeightsSource {
  const ks = [...keys].map((k) => k.replace(/^module\./, ''));
  if (ks.some((k) => /^(backbone|rpn|roi_heads)\./.test(k))) return 'detection';
  if (ks.includes('features.0.weight')) return 'vgg16';
  if (ks.includes('conv1.weight') && ks.some((k) => k.startsWith('layer1.'))) return 'resnet';
  return 'none';
}

/** Our name for one key, or null if it is dropped. */
export function mapKeyName(key: string, source: WeightsSource, opts: MapOptions = {}): string | null {
  const k = key.replace(/^module\./, '');
  if (k.endsWith('.num_batches_tracked')) return null;
  let m: RegExpMatchArray | null;
  switch (source) {
    case 'detection':
      if ((m = k.match(/^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$/))) return `backbone.fpn.${m[1]}_blocks.${m[2]}.0.${m[3]}`;
      if ((m = k.match(/^rpn\.head\.conv\.(weight|bias)$/))) return `rpn.head.conv.0.0.${m[1]}`;
      if ((m = k.match(/^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$/))) return `roi_heads.mask_head.${Number(m[1]) - 1}.0.${m[2]}`;
      return k;
    case 'resnet':
      if (/^fc\./.test(k)) return null;
      if (/^(conv1|bn1|layer[1-4])\./.test(k)) return `backbone.body.${k}`;
      return k;
    case 'vgg16':
      if ((m = k.match(/^features\.(\d+)\.(weight|bias)$/))) return `backbone.body.features.${m[1]}.${m[2]}`;
      if ((m = k.match(/^classifier\.(0|3)\.(weight|bias)$/))) return (opts.vggClassifier ?? 'box_head') === 'drop' ? null : `roi_heads.box_head.${m[1] === '0' ? 'fc6' : 'fc7'}.${m[2]}`;
      if (/^classifier\.6\./.test(k)) return null;
      return k;
    case 'none':
      return k;
  }
}

export function mapTorchvisionKeys<T>(keys: Map<string, T>, opts: MapOptions = {}): MapResult<T> {
  const source = !opts.source || opts.source === 'auto' ? detectSource(keys.keys()) : opts.source;
  const mapped = new Map<string, T>();
  const renamed: [string, string][] = [];
  const dropped: string[] = [];
  const from = new Map<string, string>();
  for (const [k, v] of keys) {
    const to = mapKeyName(k, source, opts);
    if (to === null) {
      dropped.push(k);
      continue;
    }
    // e.g. both `conv.weight` and `conv.0.0.weight` in one file: refuse rather than pick one
    if (mapped.has(to)) throw new Error(`mapTorchvisionKeys: ${from.get(to)} and ${k} both map to ${to}`);
    mapped.set(to, v);
    from.set(to, k);
    if (to !== k) renamed.push([k, to]);
  }
  return { source, mapped, renamed, dropped };
}
