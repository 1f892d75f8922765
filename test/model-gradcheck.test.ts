// Finite-difference gradient check of the whole model's total loss (issue 12, "Parity with
// torchvision (tests)"): a tiny box + mask + keypoint Mask R-CNN with everything trainable
// (GroupNorm backbone, trainableLayers 5), first-k samplers, one fixed batch of two images (one
// without annotations). The autograd gradient of Σ losses with respect to chosen elements of the
// backbone, FPN, RPN head, box head/predictor, mask head/predictor and keypoint head/predictor is
// compared with central differences of the float32 GPU loss.
//
// What the gradient is a derivative of: torchvision detaches the proposals (objectness and deltas
// enter filter_proposals detached), so the autograd gradient treats the proposal boxes, and
// everything decided from them (RoI matcher, sampled RoIs, mask/keypoint targets, positives), as
// constants. A finite difference with live proposals would also see the proposals move, which is
// not part of the gradient by design. So the proposals of the unperturbed forward are captured and
// every perturbed evaluation reuses them (the RPN's own losses are still recomputed from the
// perturbed head outputs; its anchor matching depends only on anchors and GT). With that, no
// discrete decision downstream of the RPN can change between the ± evaluations; the remaining
// non-smooth points are ReLU and max-pool switches inside the network.
//
// Step sizes and tolerances (the loss is float32 on the GPU):
// - The named losses are read back and summed in float64 here, so a difference quotient carries
//   only the rounding noise of the losses the parameter feeds (a mask-head weight does not pay for
//   the keypoint loss's ulp at ~8). Noise, measured on lavapipe at steps too small for truncation
//   or ReLU switches (6 largest-|g| elements × 3 steps of stem conv, a backbone GroupNorm γ, FPN,
//   RPN objectness, cls_score, mask_fcn_logits, kps_score_lowres, keypoint head conv):
//   |f(x+h) - f(x-h) - g·2h| ≤ 2.1 ulp of the changed losses (median 0.2-0.6). We allow
//   NOISE_ULPS = 2 ulp per evaluation, 4 per difference: the absolute floor on a difference
//   quotient is F(h) = 2·NOISE_ULPS·Σ ulp(changed L_c) / (fl(x+h) - fl(x-h)).
// - Step: the smallest h whose floor on D(h/2) is a quarter of the relative tolerance,
//   h = 2·NOISE_ULPS·Σ ulp(L_c fed) / (RTOL/4 · |g|). Larger steps cross more ReLU / max-pool
//   switches (the backbone has many: GroupNorm-centred activations sit around 0); smaller ones
//   drown in rounding.
// - Two-step (Richardson-style) check: D(h) and D(h/2) must agree to SMOOTH_RTOL = RTOL/4 (plus
//   their floors), else the loss is not smooth at the resolvable scale around that element (a
//   switch inside [x-h, x+h]: D(h) of the rejected backbone elements is off by 1-15%, while at
//   10× smaller steps, too noisy for the gate, they converge to g) and the next-largest-|g|
//   element is tried. This gate never looks at the autograd gradient, so it cannot hide a wrong
//   backward; each group needs MIN_ACCEPTED smooth elements among its MAX_CANDIDATES largest-|g|.
// - Accepted: |D(h/2) - g| ≤ RTOL·max(|D(h/2)|, |g|) + F(h/2), RTOL = 1e-2.
// - Losses a parameter's part does not feed (e.g. the box losses for a mask-head weight) must not
//   change at all (bitwise) when it is perturbed.
// Measured on lavapipe (MRCNN_GRADCHECK_VERBOSE=1 prints every element): max relative error of
// accepted elements 1.2e-3 stem conv, 3.2e-3 layer2 conv, 7.0e-3 backbone GroupNorm γ, 2.8e-4 FPN,
// 1.2e-3 RPN objectness, 1.5e-6 RPN deltas, 6.5e-3 fc6, 1.3e-3 cls_score, 1.2e-4 bbox_pred,
// 6.3e-4 mask conv, 1.3e-3 mask GroupNorm γ, 6.2e-4 mask logits, 6.2e-4 keypoint conv, 7.6e-7
// keypoint deconv. It fails when a backward is wrong: GroupNorm dγ negated (rel err 2.0),
// multi-scale RoI Align backward scaled by 0.95 (backbone/FPN rel err ~5e-2), bilinear upsample
// backward scaled by 1.03 (keypoint head 2.9e-2, backbone 3-9e-2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as E from '../engine/index.ts';
import { MaskRCNN, type LossName } from '../model/mask-rcnn.ts';
import type { ModelConfig } from '../model/config.ts';
import { disposeGpuBatch, type GpuBatch } from '../model/transform.ts';
import { scene, tinyConfig } from './model-scene.ts';
import type { Proposals } from '../model/rpn.ts';

const RTOL = 1e-2;
const NOISE_ULPS = 2;
const MIN_ACCEPTED = 3;
const MAX_CANDIDATES = 10;
const SMOOTH_RTOL = RTOL / 4;
const STEP = 0;

/** Tiny box + mask + keypoint model (test/model-scene.ts), first-k samplers, everything trainable. */
function gradConfig(): ModelConfig {
  const c = tinyConfig(true, true);
  c.backbone = { ...c.backbone, trainableLayers: 5 };
  c.sampler = 'firstK';
  return c;
}

const BACKBONE_GN = ['bn1', 'layer1.0.bn1', 'layer1.0.bn2', 'layer2.0.bn1', 'layer2.0.bn2', 'layer2.0.downsample.1', 'layer3.0.bn1', 'layer3.0.bn2', 'layer3.0.downsample.1', 'layer4.0.bn1', 'layer4.0.bn2', 'layer4.0.downsample.1'].map((n) => `backbone.body.${n}.weight`);
const ALL: LossName[] = ['loss_objectness', 'loss_rpn_box_reg', 'loss_classifier', 'loss_box_reg', 'loss_mask', 'loss_keypoint'];

/**
 * Checked parameter groups: the losses their part feeds (the others must not move) and the tensors
 * whose largest-|g| elements are candidates (a group of several tensors pools its candidates).
 */
const CHECKED: { label: string; params: string[]; fed: LossName[] }[] = [
  { label: 'stem conv', params: ['backbone.body.conv1.weight'], fed: ALL },
  { label: 'layer2 conv', params: ['backbone.body.layer2.0.conv1.weight'], fed: ALL },
  { label: 'backbone GroupNorm γ', params: BACKBONE_GN, fed: ALL },
  { label: 'FPN 3×3', params: ['backbone.fpn.layer_blocks.0.0.weight'], fed: ALL },
  { label: 'RPN objectness', params: ['rpn.head.cls_logits.weight'], fed: ['loss_objectness'] },
  { label: 'RPN deltas', params: ['rpn.head.bbox_pred.weight'], fed: ['loss_rpn_box_reg'] },
  { label: 'box head fc6', params: ['roi_heads.box_head.fc6.weight'], fed: ['loss_classifier', 'loss_box_reg'] },
  { label: 'box classifier', params: ['roi_heads.box_predictor.cls_score.weight'], fed: ['loss_classifier'] },
  { label: 'box regressor', params: ['roi_heads.box_predictor.bbox_pred.weight'], fed: ['loss_box_reg'] },
  { label: 'mask head conv', params: ['roi_heads.mask_head.0.0.weight'], fed: ['loss_mask'] },
  { label: 'mask head GroupNorm γ', params: ['roi_heads.mask_head.0.1.weight'], fed: ['loss_mask'] },
  { label: 'mask logits', params: ['roi_heads.mask_predictor.mask_fcn_logits.weight'], fed: ['loss_mask'] },
  { label: 'keypoint head conv', params: ['roi_heads.keypoint_head.0.0.weight'], fed: ['loss_keypoint'] },
  { label: 'keypoint logits (deconv)', params: ['roi_heads.keypoint_predictor.kps_score_lowres.weight'], fed: ['loss_keypoint'] },
];

/** Distance from |v| to the next float32 (the unit in the last place of a float32 loss value). */
function ulp32(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -126 ? 2 ** -149 : 2 ** (Math.floor(Math.log2(a)) - 23);
}

interface ElementResult { name: string; index: number; g: number; h: number; dH: number; dH2: number; floor: number; smooth: boolean; relErr: number; ok: boolean }

test.before(async () => {
  await E.initEngine();
  E.setPoison(true);
  E.manualSeed(5);
});
// the finite-difference evaluations run unpoisoned; later suites in the same process expect it on
test.after(() => E.setPoison(true));

test('gradient check: total loss vs central differences for backbone, GroupNorm, FPN, RPN, box, mask and keypoint parameters', async () => {
  const cfg = gradConfig();
  const model = new MaskRCNN(cfg);
  model.train();
  const batch = scene(cfg);

  // Capture the unperturbed proposals once; reuse them in every perturbed evaluation (see header).
  const rpnForward = model.rpn.forward.bind(model.rpn);
  const held: { frozen: Proposals | null; captured: Proposals | null } = { frozen: null, captured: null };
  model.rpn.forward = (feats, b, training) => {
    const r = rpnForward(feats, b, training);
    if (held.frozen) return { proposals: held.frozen, losses: r.losses };
    held.captured = r.proposals;
    for (const t of [r.proposals.boxes, r.proposals.valid, r.proposals.scores]) t.keep();
    return r;
  };

  // Autograd pass: named losses and the gradient of their sum.
  let names: LossName[] = [];
  const baseT = E.tidy(() => {
    const l = model.forwardTrain(batch, STEP);
    names = Object.keys(l) as LossName[];
    const v = E.concat(names.map((n) => E.reshape(l[n]!, [1])), 0);
    E.backward(E.sum(v));
    v.keep();
    return v;
  });
  assert.equal(names, ALL, 'the tiny model has all six losses');
  const base = Float64Array.from(await E.toArray(baseT));
  baseT.dispose();
  held.frozen = held.captured;
  assert.ok(held.frozen, 'proposals captured');
  // The autograd pass ran poisoned (unwritten outputs would be NaN); the ~200 evaluations below
  // only re-run the same forward and are compared with it bit for bit first.
  E.setPoison(false);

  /** Named losses (float32 values) of a no-grad forward with the frozen proposals. */
  let evals = 0, evalMs = 0;
  const lossesNow = async (): Promise<Float32Array> => {
    const t0 = performance.now(); evals++;
    const v = E.tidy(() => E.noGrad(() => {
      const l = model.forwardTrain(batch, STEP);
      const t = E.concat(names.map((n) => E.reshape(l[n]!, [1])), 0);
      t.keep();
      return t;
    }));
    const a = (await E.toArray(v)) as Float32Array;
    v.dispose();
    evalMs += performance.now() - t0;
    return a;
  };
  const sum64 = (a: ArrayLike<number>) => { let s = 0; for (let k = 0; k < a.length; k++) s += a[k]; return s; };

  // The no-grad forward with frozen proposals reproduces the autograd pass bit for bit.
  assert.equal(Array.from(await lossesNow()), Array.from(base), 'no-grad forward with frozen proposals = training forward');
  for (let k = 0; k < names.length; k++) assert.ok(Number.isFinite(base[k]) && base[k] >= 0, `${names[k]} = ${base[k]}`);
  assert.ok(base[names.indexOf('loss_mask')] > 0 && base[names.indexOf('loss_keypoint')] > 0, 'mask and keypoint losses are live');

  const params = new Map(model.namedParameters());
  const setElem = (p: E.Tensor, i: number, v: number) => E.noGrad(() => {
    const src = E.fromArray([v], [1]);
    E.assignInto(E.narrow(E.reshape(p, [p.size]), 0, i, 1), src);
    src.dispose();
  });

  const failures: string[] = [];
  const lines: string[] = [];
  for (const { label, params: group, fed } of CHECKED) {
    const tensors: { name: string; p: E.Tensor; w: Float32Array; g: Float32Array }[] = [];
    for (const name of group) {
      const p = params.get(name);
      if (!p) throw new Error(`gradcheck: no parameter ${name}`);
      if (!p.grad) { failures.push(`${name}: no gradient after backward`); continue; }
      const [w, g] = (await E.toArrays([p, p.grad])) as Float32Array[];
      tensors.push({ name, p, w, g });
    }
    const fedIdx = fed.map((n) => names.indexOf(n));
    const uFed = sum64(fedIdx.map((k) => ulp32(base[k])));
    const order = tensors.flatMap((t) => Array.from(t.g.keys(), (i) => ({ t, i })))
      .sort((a, b) => Math.abs(b.t.g[b.i]) - Math.abs(a.t.g[a.i])).slice(0, MAX_CANDIDATES);
    const results: ElementResult[] = [];
    for (const { t: { name, p, w, g }, i } of order) {
      if (results.filter((r) => r.smooth).length >= MIN_ACCEPTED) break;
      const gi = g[i];
      if (gi === 0) break;
      const h = (2 * NOISE_ULPS * uFed) / ((RTOL / 4) * Math.abs(gi));
      const quotient = async (step: number) => {
        const xp = Math.fround(w[i] + step), xm = Math.fround(w[i] - step);
        setElem(p, i, xp); const lp = await lossesNow();
        setElem(p, i, xm); const lm = await lossesNow();
        setElem(p, i, w[i]);
        let uChanged = 0;
        for (let k = 0; k < names.length; k++) {
          const moved = lp[k] !== base[k] || lm[k] !== base[k];
          if (moved && !fedIdx.includes(k)) failures.push(`${name}[${i}]: ${names[k]} changed (${base[k]} -> ${lp[k]} / ${lm[k]}) though ${label} does not feed it`);
          if (moved) uChanged += ulp32(base[k]);
        }
        const dx = xp - xm;
        return { d: (sum64(lp) - sum64(lm)) / dx, floor: (2 * NOISE_ULPS * uChanged) / dx };
      };
      const a = await quotient(h);
      const b = await quotient(h / 2);
      const scale = Math.max(Math.abs(b.d), Math.abs(gi));
      const smooth = Math.abs(a.d - b.d) <= SMOOTH_RTOL * Math.max(Math.abs(a.d), Math.abs(b.d)) + a.floor + b.floor;
      const err = Math.abs(b.d - gi);
      const ok = err <= RTOL * scale + b.floor;
      results.push({ name, index: i, g: gi, h, dH: a.d, dH2: b.d, floor: b.floor, smooth, relErr: err / scale, ok });
    }
    const accepted = results.filter((r) => r.smooth);
    const row = results.map((r) => `${r.name}[${r.index}] g ${r.g.toExponential(3)} h ${r.h.toExponential(1)} D(h) ${r.dH.toExponential(4)} D(h/2) ${r.dH2.toExponential(4)} rel ${r.relErr.toExponential(1)} floor/|g| ${(r.floor / Math.abs(r.g)).toExponential(1)}${r.smooth ? '' : ' (not smooth: skipped)'}`);
    const maxRel = Math.max(...accepted.map((r) => r.relErr));
    lines.push(`${label}: ${accepted.length}/${results.length} smooth, max rel err ${accepted.length ? maxRel.toExponential(1) : '—'}\n    ${row.join('\n    ')}`);
    if (accepted.length < MIN_ACCEPTED) failures.push(`${label}: only ${accepted.length} of the ${results.length} largest-|g| elements have a loss smooth at the resolvable step (need ${MIN_ACCEPTED})`);
    for (const r of accepted) if (!r.ok) failures.push(`${r.name}[${r.index}]: autograd ${r.g.toExponential(5)} vs central difference ${r.dH2.toExponential(5)} (h/2 = ${(r.h / 2).toExponential(2)}): rel err ${r.relErr.toExponential(2)} > ${RTOL} (+ floor ${r.floor.toExponential(1)})`);
  }
  if (process.env.MRCNN_GRADCHECK_VERBOSE || failures.length) console.log(lines.join('\n'), `\n${evals} evaluations, ${(evalMs / evals).toFixed(0)} ms each`);

  // Every element was restored: the unperturbed losses are reproduced bit for bit.
  assert.equal(Array.from(await lossesNow()), Array.from(base), 'parameters restored after the check');
  assert.ok(failures.length === 0, failures.join('\n'));

  for (const t of [held.frozen!.boxes, held.frozen!.valid, held.frozen!.scores]) t.dispose();
  disposeGpuBatch(batch);
  model.dispose();
});

test.run();
