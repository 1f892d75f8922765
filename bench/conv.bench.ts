// Conv / norm / pool / resample rows at ResNet-50-FPN Mask R-CNN shapes. 'full': 800×1216, batch 2
// (mask head: 512 RoIs); 'small' (lavapipe): the same layers at 1/4 resolution (200×304, batch 2),
// mask head over 8 RoIs. tfjs-backend-webgpu peer: the same math in its preferred NHWC layout
// (x NHWC, filter HWIO), via the Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter kernels.
import type { BenchCase, Tf } from './harness.ts';
import { empty, Tensor } from '../engine/tensor.ts';
import { rand } from '../engine/ops-nn.ts';
import { convForwardRaw, convGeom, convInputGradRaw, convWeightGradRaw } from '../engine/ops-conv.ts';
import type { ConvGeom } from '../kernels/conv.ts';
import { extraCases } from './conv-extra.bench-part.ts';

interface ConvShape { name: string; N: number; Cin: number; Cout: number; H: number; W: number; k: number; s: number; p: number }

function shapes(size: 'small' | 'full'): ConvShape[] {
  const f = size === 'full' ? 4 : 1;
  // Spatial sizes at 1/4 resolution (200×304 input); full multiplies by 4 (stride-aligned).
  const c2 = [50 * f, 76 * f], c3 = [25 * f, 38 * f], c4 = [13 * f, 19 * f], c5 = [7 * f, 10 * f];
  const rois = size === 'full' ? 512 : 8;
  return [
    { name: 'stem 7x7/2 3→64', N: 2, Cin: 3, Cout: 64, H: 200 * f, W: 304 * f, k: 7, s: 2, p: 3 },
    { name: 'bottleneck 1x1 256→64 (C2)', N: 2, Cin: 256, Cout: 64, H: c2[0], W: c2[1], k: 1, s: 1, p: 0 },
    { name: 'bottleneck 1x1 1024→256 (C4)', N: 2, Cin: 1024, Cout: 256, H: c4[0], W: c4[1], k: 1, s: 1, p: 0 },
    { name: 'bottleneck 1x1 2048→512 (C5)', N: 2, Cin: 2048, Cout: 512, H: c5[0], W: c5[1], k: 1, s: 1, p: 0 },
    { name: 'bottleneck 3x3 64 (C2)', N: 2, Cin: 64, Cout: 64, H: c2[0], W: c2[1], k: 3, s: 1, p: 1 },
    { name: 'bottleneck 3x3/2 128 (C2→C3)', N: 2, Cin: 128, Cout: 128, H: c2[0], W: c2[1], k: 3, s: 2, p: 1 },
    { name: 'bottleneck 3x3 256 (C4)', N: 2, Cin: 256, Cout: 256, H: c4[0], W: c4[1], k: 3, s: 1, p: 1 },
    { name: 'bottleneck 3x3 512 (C5)', N: 2, Cin: 512, Cout: 512, H: c5[0], W: c5[1], k: 3, s: 1, p: 1 },
    { name: 'FPN lateral 1x1 512→256 (C3)', N: 2, Cin: 512, Cout: 256, H: c3[0], W: c3[1], k: 1, s: 1, p: 0 },
    { name: 'FPN output 3x3 256 (P2)', N: 2, Cin: 256, Cout: 256, H: c2[0], W: c2[1], k: 3, s: 1, p: 1 },
    { name: `mask head 3x3 256 14x14 × ${rois} RoIs`, N: rois, Cin: 256, Cout: 256, H: 14, W: 14, k: 3, s: 1, p: 1 },
  ];
}

const geomOf = (c: ConvShape): ConvGeom => convGeom('bench', [c.N, c.Cin, c.H, c.W], [c.Cout, c.Cin, c.k, c.k], { stride: [c.s, c.s], pad: [c.p, c.p, c.p, c.p], dil: [1, 1], groups: 1, relu: false });
const keep = (t: Tensor) => t.keep();

function convCases(c: ConvShape): BenchCase[] {
  const g = geomOf(c);
  const flops = 2 * g.N * g.Cout * g.Ho * g.Wo * g.Cin * g.KH * g.KW;
  const shape = `N${c.N} ${c.Cin}→${c.Cout} ${c.H}x${c.W} k${c.k} s${c.s} → ${g.Ho}x${g.Wo}`;
  const alloc = () => {
    const x = keep(rand([g.N, g.Cin, g.H, g.W], -1, 1));
    const w = keep(rand([g.Cout, g.Cin, g.KH, g.KW], -0.1, 0.1));
    const gy = keep(rand([g.N, g.Cout, g.Ho, g.Wo], -1, 1));
    return { x, w, gy, dispose: () => [x, w, gy].forEach((t) => t.dispose()) };
  };
  const tfPad = c.p;
  const tfAlloc = (tf: Tf) => ({
    x: tf.randomUniform([g.N, g.H, g.W, g.Cin], -1, 1),
    w: tf.randomUniform([g.KH, g.KW, g.Cin, g.Cout], -0.1, 0.1),
    dy: tf.randomUniform([g.N, g.Ho, g.Wo, g.Cout], -1, 1),
  });
  const mk = (name: string, rec: (a: ReturnType<typeof alloc>) => Tensor, tfRun: (tf: Tf, t: ReturnType<typeof tfAlloc>) => unknown): BenchCase => ({
    family: 'conv', name: `${c.name} ${name}`, shape, flops,
    setup: () => {
      const a = alloc();
      return { record: () => void rec(a), dispose: a.dispose };
    },
    tfjs: (tf) => {
      const t = tfAlloc(tf);
      return { run: () => tfRun(tf, t), dispose: () => [t.x, t.w, t.dy].forEach((v) => v.dispose()) };
    },
  });
  return [
    mk('fwd', (a) => convForwardRaw(g, a.x, a.w, null), (tf, t) => tf.conv2d(t.x as any, t.w as any, c.s, tfPad)),
    mk('dX', (a) => convInputGradRaw(g, a.gy, a.w), (tf, t) => tf.engine().runKernel('Conv2DBackpropInput', { dy: t.dy, filter: t.w }, { strides: c.s, pad: tfPad, dataFormat: 'NHWC', inputShape: [g.N, g.H, g.W, g.Cin] } as any)),
    mk('dW', (a) => convWeightGradRaw(g, a.x, a.gy), (tf, t) => tf.engine().runKernel('Conv2DBackpropFilter', { x: t.x, dy: t.dy }, { strides: c.s, pad: tfPad, dataFormat: 'NHWC', filterShape: [g.KH, g.KW, g.Cin, g.Cout] } as any)),
  ];
}

export function cases(size: 'small' | 'full'): BenchCase[] {
  return [...shapes(size).flatMap(convCases), ...extraCases(size)];
}
void empty;
