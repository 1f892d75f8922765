#!/usr/bin/python3
"""CPU peer for the model bench (issue 12, "Bench"): torchvision's training step and inference on
THIS machine for the configurations of our presets in model/config.ts, with OpenBLAS.

Run with Debian's interpreter (torch 1.13 / torchvision 0.14, CPU):
    /usr/bin/python3 bench/model_peer.py                 # everything (~4 min quiet, 15+ min on busy cores)
    /usr/bin/python3 bench/model_peer.py --only shapes   # parts: blas, omp, shapes, bottleneck, full
    OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 bench/model_peer.py   # on a busy machine
Prints one JSON object per line; appends the run to bench/model-peer-results.json (--fresh: replace) and
rewrites the generated part of bench/README-model-peer.md (--no-write: neither). The machine is shared: os.getloadavg() and the process CPU time are recorded
beside every timed repetition (cpu/wall near 2 = both cores were ours).

BLAS: torch's linear layers (addmm) call the system libblas.so.3 (Debian alternatives); convolutions
go through oneDNN and do not use it. The active library is read back from the process (dladdr of
sgemm_), and a 1024^3 sgemm is timed here and, in a child process with the reference BLAS put first
on LD_LIBRARY_PATH, for the before/after comparison.
"""
import argparse
import ctypes
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

os.environ.setdefault('OPENBLAS_NUM_THREADS', '2')  # openblas-pthread has its own pool, not OpenMP's
import torch  # noqa: E402
import torchvision  # noqa: E402
from torch import nn  # noqa: E402
from torchvision.models.detection import FasterRCNN, KeypointRCNN, MaskRCNN  # noqa: E402
from torchvision.models.detection.anchor_utils import AnchorGenerator  # noqa: E402
from torchvision.models.detection.backbone_utils import BackboneWithFPN, _resnet_fpn_extractor  # noqa: E402
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead  # noqa: E402
from torchvision.models.detection.keypoint_rcnn import KeypointRCNNPredictor  # noqa: E402
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor  # noqa: E402
from torchvision.models.detection.rpn import RPNHead  # noqa: E402
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet, resnet50  # noqa: E402
from torchvision.ops import MultiScaleRoIAlign  # noqa: E402
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool  # noqa: E402
from torchvision.ops.misc import FrozenBatchNorm2d  # noqa: E402

THREADS = 2
REFERENCE_BLAS_DIR = '/usr/lib/x86_64-linux-gnu/blas'  # Debian libblas3 (netlib reference)


def emit(rec):
    print(json.dumps(rec), flush=True)
    return rec


def load_now():
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------- BLAS

class _DlInfo(ctypes.Structure):
    _fields_ = [('dli_fname', ctypes.c_char_p), ('dli_fbase', ctypes.c_void_p),
                ('dli_sname', ctypes.c_char_p), ('dli_saddr', ctypes.c_void_p)]


def blas_info():
    """The library that libblas.so.3's sgemm_ resolves to in this process (the one torch links)."""
    info = {'mappedBlasLibs': sorted({os.path.realpath(l.split()[-1]) for l in open('/proc/self/maps')
                                      if len(l.split()) >= 6 and re.search(r'lib(open)?blas|liblapack|libmkl', l.split()[-1])})}
    try:
        blas = ctypes.CDLL('libblas.so.3')  # already loaded by libtorch_cpu: same handle
        dladdr = ctypes.CDLL('libc.so.6').dladdr
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        d = _DlInfo()
        dladdr(ctypes.cast(blas.sgemm_, ctypes.c_void_p), ctypes.byref(d))
        info['sgemmFrom'] = os.path.realpath(d.dli_fname.decode())
    except OSError as e:
        info['sgemmFrom'] = f'unknown ({e})'
    try:
        ob = ctypes.CDLL('libopenblas.so.0')
        ob.openblas_get_config.restype = ctypes.c_char_p
        info['openblasConfig'] = ob.openblas_get_config().decode()
        info['openblasThreads'] = ob.openblas_get_num_threads()
    except (OSError, AttributeError):
        pass
    f = info['sgemmFrom']
    info['name'] = 'OpenBLAS (pthread)' if 'openblas-pthread' in f else 'OpenBLAS' if 'openblas' in f \
        else 'reference BLAS (netlib)' if '/blas/' in f else f
    return info


def time_matmul(n=1024, reps=3):
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        torch.mm(a, b)
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return {'n': n, 'medianS': round(med, 5), 'minS': round(min(ts), 5), 'gflops': round(2 * n ** 3 / med / 1e9, 2),
            'gflopsBest': round(2 * n ** 3 / min(ts) / 1e9, 2), 'runsS': [round(t, 5) for t in ts]}


def matmul_child():
    torch.set_num_threads(THREADS)
    print(json.dumps({'blas': blas_info(), 'matmul': time_matmul(), 'loadavg': load_now()}))


def blas_before_after():
    after = {'blas': blas_info(), 'loadavg': load_now(), 'matmul': time_matmul(reps=10)}
    before = None
    if os.path.exists(os.path.join(REFERENCE_BLAS_DIR, 'libblas.so.3')):
        env = dict(os.environ, LD_LIBRARY_PATH=REFERENCE_BLAS_DIR)
        out = subprocess.run([sys.executable, __file__, '--matmul-child'], env=env, capture_output=True, text=True, check=True)
        before = json.loads(out.stdout.strip().splitlines()[-1])
    return {'kind': 'blas', 'active': after, 'referenceForComparison': before,
            'speedup': round(before['matmul']['medianS'] / after['matmul']['medianS'], 1) if before else None,
            'speedupBest': round(before['matmul']['minS'] / after['matmul']['minS'], 1) if before else None}


# ---------------------------------------------------------------- models

def gn(channels, groups=8):
    """GroupNorm with the largest group count <= groups dividing channels (model/backbone.ts makeNorm)."""
    g = min(groups, channels)
    while channels % g:
        g -= 1
    return nn.GroupNorm(g, channels, eps=1e-5)


def shapes_backbone():
    """shapes_small: ResNet-18 layout, BasicBlock [1,1,1,1], base width 16, GroupNorm(8), FPN 48 + pool."""
    r = ResNet(BasicBlock, [1, 1, 1, 1], norm_layer=gn)
    r.inplanes = 16
    r.conv1 = nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False)
    r.bn1 = gn(16)
    r.layer1 = r._make_layer(BasicBlock, 16, 1)
    r.layer2 = r._make_layer(BasicBlock, 32, 1, stride=2)
    r.layer3 = r._make_layer(BasicBlock, 64, 1, stride=2)
    r.layer4 = r._make_layer(BasicBlock, 128, 1, stride=2)
    r.fc = nn.Identity()
    for m in r.modules():  # torchvision ResNet's own init, re-applied to the replaced layers
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    # trainableLayers 5: everything trains
    return BackboneWithFPN(r, {'layer1': '0', 'layer2': '1', 'layer3': '2', 'layer4': '3'},
                           [16, 32, 64, 128], 48, extra_blocks=LastLevelMaxPool())


def keypoint_head_gn(in_c, layers):
    """KeypointRCNNHeads (conv3x3 + ReLU)*n with GroupNorm after each conv, as model/config.ts keypoint.norm 'group'
    (torchvision 0.14's KeypointRCNNHeads has no norm_layer argument)."""
    mods, c = [], in_c
    for out in layers:
        mods += [nn.Conv2d(c, out, 3, padding=1, bias=False), gn(out, 32), nn.ReLU(inplace=True)]
        c = out
    head = nn.Sequential(*mods)
    for m in head.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
    return head


SHAPES_KW = dict(
    min_size=192, max_size=288,
    rpn_pre_nms_top_n_train=300, rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_train=150, rpn_post_nms_top_n_test=100,
    rpn_nms_thresh=0.7, rpn_fg_iou_thresh=0.7, rpn_bg_iou_thresh=0.3, rpn_batch_size_per_image=128,
    rpn_positive_fraction=0.5, rpn_score_thresh=0.0,
    box_score_thresh=0.05, box_nms_thresh=0.5, box_detections_per_img=20, box_fg_iou_thresh=0.5, box_bg_iou_thresh=0.5,
    box_batch_size_per_image=64, box_positive_fraction=0.25,
)
SHAPES_CLASSES = 5
SHAPES_KEYPOINTS = 17


def build_shapes(heads):
    """heads: 'box' (FasterRCNN) | 'mask' (MaskRCNN) | 'keypoint' (KeypointRCNN), all sharing the shapes_small body."""
    common = dict(
        rpn_anchor_generator=AnchorGenerator(((16,), (32,), (64,), (128,), (256,)), ((0.5, 1.0, 2.0),) * 5),
        rpn_head=RPNHead(48, 3),
        box_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 7, 2),
        box_head=TwoMLPHead(48 * 7 * 7, 256),
        box_predictor=FastRCNNPredictor(256, SHAPES_CLASSES),
        **SHAPES_KW)
    bb = shapes_backbone()
    if heads == 'box':
        return FasterRCNN(bb, None, **common)
    if heads == 'mask':
        return MaskRCNN(bb, None, mask_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 14, 2),
                        mask_head=MaskRCNNHeads(48, [32, 32], 1, norm_layer=lambda c: gn(c, 32)),
                        mask_predictor=MaskRCNNPredictor(32, 32, SHAPES_CLASSES), **common)
    if heads == 'keypoint':
        return KeypointRCNN(bb, None, keypoint_roi_pool=MultiScaleRoIAlign(['0', '1', '2', '3'], 14, 2),
                            keypoint_head=keypoint_head_gn(48, [32, 32, 32, 32]),
                            keypoint_predictor=KeypointRCNNPredictor(32, SHAPES_KEYPOINTS), **common)
    raise ValueError(f'build_shapes: unknown heads {heads!r} (box | mask | keypoint)')


def build_full():
    """maskrcnn_resnet50_fpn as model/config.ts maskrcnnResnet50Fpn: FrozenBN eps 0, trainable layers 3, 91 classes.
    Built by hand because torchvision's builder switches to train-mode BN and 5 trainable layers without weights."""
    body = resnet50(weights=None, norm_layer=lambda c: FrozenBatchNorm2d(c, eps=0.0))
    return MaskRCNN(_resnet_fpn_extractor(body, 3), num_classes=91)


# ---------------------------------------------------------------- data

def random_batch(n_img, h, w, box_px, n_classes, masks, keypoints, seed):
    g = torch.Generator().manual_seed(seed)
    u = lambda lo, hi: lo + (hi - lo) * torch.rand((), generator=g).item()  # noqa: E731
    images, targets = [], []
    for _ in range(n_img):
        images.append(torch.rand(3, h, w, generator=g))
        n = int(torch.randint(2, 5, (), generator=g))
        boxes = []
        for _ in range(n):
            bw, bh = u(*box_px), u(*box_px)
            x0, y0 = u(0, w - bw), u(0, h - bh)
            boxes.append([x0, y0, x0 + bw, y0 + bh])
        boxes = torch.tensor(boxes)
        t = {'boxes': boxes, 'labels': torch.randint(1, n_classes, (n,), generator=g)}
        if masks:
            yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing='ij')
            m = []
            for x0, y0, x1, y1 in boxes.tolist():  # filled ellipse inscribed in the box
                cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
                m.append((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).to(torch.uint8))
            t['masks'] = torch.stack(m)
        if keypoints:
            kp = torch.zeros(n, SHAPES_KEYPOINTS, 3)
            for i, (x0, y0, x1, y1) in enumerate(boxes.tolist()):
                kp[i, :, 0] = x0 + (x1 - x0) * torch.rand(SHAPES_KEYPOINTS, generator=g)
                kp[i, :, 1] = y0 + (y1 - y0) * torch.rand(SHAPES_KEYPOINTS, generator=g)
                kp[i, :, 2] = 2
            t['keypoints'] = kp
        targets.append(t)
    return images, targets


# ---------------------------------------------------------------- timing

class PhaseTimer:
    """Forward wall time per named submodule (pre/post hooks), summed over calls since reset()."""

    def __init__(self, model, names):
        self.acc = {}
        mods = dict(model.named_modules())
        for name in names:
            if name in mods and mods[name] is not None:
                mods[name].register_forward_pre_hook(lambda m, i, n=name: self._start(n))
                mods[name].register_forward_hook(lambda m, i, o, n=name: self._stop(n))
        self.t0 = {}

    def _start(self, n):
        self.t0[n] = time.perf_counter()

    def _stop(self, n):
        self.acc[n] = self.acc.get(n, 0.0) + time.perf_counter() - self.t0.pop(n)

    def reset(self):
        self.acc = {}


PHASES = ['transform', 'backbone.body', 'backbone.fpn', 'rpn', 'roi_heads', 'roi_heads.box_roi_pool', 'roi_heads.box_head',
          'roi_heads.box_predictor', 'roi_heads.mask_roi_pool', 'roi_heads.mask_head', 'roi_heads.mask_predictor',
          'roi_heads.keypoint_roi_pool', 'roi_heads.keypoint_head', 'roi_heads.keypoint_predictor']


def measure_interleaved(items, warm, reps):
    """items: [(label, fn, phases | None)], fn() -> dict of extra per-run numbers. Warm each, then time them in
    rounds (one repetition of each per round) so that all see the same drifting load; per item: median / min /
    per-run wall, cpu and load average."""
    for _, fn, _ in items:
        for _ in range(warm):
            fn()
    runs = [[] for _ in items]
    phase_runs = [[] for _ in items]
    for _ in range(reps):
        for j, (_, fn, phases) in enumerate(items):
            la = load_now()
            if phases:
                phases.reset()
            c0, t0 = time.process_time(), time.perf_counter()
            extra = fn()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            runs[j].append({'wallS': round(wall, 4), 'cpuS': round(cpu, 3), 'cpuPerWall': round(cpu / wall, 2), 'loadavg': la, **extra})
            if phases:
                phase_runs[j].append(dict(phases.acc))
    outs = []
    for j, (label, _, _) in enumerate(items):
        walls = [r['wallS'] for r in runs[j]]
        out = {'label': label, 'warmups': warm, 'reps': reps, 'interleavedWith': len(items) - 1,
               'medianS': round(statistics.median(walls), 4), 'minS': round(min(walls), 4), 'maxS': round(max(walls), 4),
               'runs': runs[j]}
        for k in ('fwdS', 'bwdS', 'optS'):
            if k in runs[j][0]:
                out[f'median_{k}'] = round(statistics.median(r[k] for r in runs[j]), 4)
        if phase_runs[j]:
            out['forwardPhasesMedianS'] = {n: round(statistics.median(p.get(n, 0.0) for p in phase_runs[j]), 4)
                                           for n in PHASES if any(n in p for p in phase_runs[j])}
        outs.append(out)
    return outs


def measure(label, fn, warm, reps, phases=None):
    return measure_interleaved([(label, fn, phases)], warm, reps)[0]


def train_step_fn(model, images, targets, lr):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        losses = model(images, targets)
        loss = sum(losses.values())
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        return {'fwdS': round(t1 - t0, 4), 'bwdS': round(t2 - t1, 4), 'optS': round(t3 - t2, 4),
                'loss': round(loss.item(), 4), 'finite': bool(torch.isfinite(loss).item())}
    return step


def infer_fn(model, images):
    def run():
        with torch.no_grad():
            out = model(images)
        return {'detections': [int(o['boxes'].shape[0]) for o in out]}
    return run


def bench_models(specs, warm, reps):
    """specs: [(tag, model, images, targets, batch, lr)]; train steps of all, interleaved, then inference of all."""
    phases = [PhaseTimer(m, PHASES) for _, m, *_ in specs]
    initial = [{k: v.clone() for k, v in m.state_dict().items()} for _, m, *_ in specs]
    for _, m, *_ in specs:
        m.train()
    trs = measure_interleaved([(f'{t} train step', train_step_fn(m, im, tg, lr), ph)
                               for (t, m, im, tg, _, lr), ph in zip(specs, phases)], warm, reps)
    for (_, m, *_), init in zip(specs, initial):
        m.load_state_dict(init)  # inference on the initial random weights, not on whatever the timed SGD steps left
        m.eval()
    infs = measure_interleaved([(f'{t} inference', infer_fn(m, im), ph) for (t, m, im, *_), ph in zip(specs, phases)], warm, reps)
    out = []
    for (tag, model, images, _, batch, lr), tr, inf in zip(specs, trs, infs):
        out.append(emit({'kind': 'model', 'model': tag, 'batch': batch, 'imageHW': list(images[0].shape[1:]),
                         'trainableParams': sum(p.numel() for p in model.parameters() if p.requires_grad),
                         'params': sum(p.numel() for p in model.parameters()),
                         'train': {**tr, 'imagesPerS': round(batch / tr['medianS'], 3)},
                         'inference': {**inf, 'imagesPerS': round(batch / inf['medianS'], 3)},
                         'sgd': {'lr': lr, 'momentum': 0.9, 'weightDecay': 1e-4}, 'inferenceWeights': 'initial'}))
    return out


def bench_shapes(warm, reps):
    specs = []
    for heads in ('box', 'mask', 'keypoint'):
        torch.manual_seed(0)
        model = build_shapes(heads)
        images, targets = random_batch(4, 192, 256, (24, 110), SHAPES_CLASSES, heads == 'mask', heads == 'keypoint', seed=1)
        specs.append((f'shapes_small {heads}', model, images, targets, 4, 0.005))
    out = bench_models(specs, warm, reps)
    box, mask, kp = out
    est = {'kind': 'estimate', 'model': 'shapes_small box+mask+keypoint (ESTIMATE)',
           'how': 'MaskRCNN + KeypointRCNN - FasterRCNN (one shared backbone+FPN+RPN+box head), per interleaved round, '
                  'median over rounds; torchvision cannot carry both heads', 'batch': 4}
    for ph in ('train', 'inference'):
        rounds = [m_['wallS'] + k_['wallS'] - b_['wallS'] for b_, m_, k_ in zip(box[ph]['runs'], mask[ph]['runs'], kp[ph]['runs'])]
        s_ = statistics.median(rounds)
        est[ph] = {'medianS': round(s_, 4), 'imagesPerS': round(4 / s_, 3), 'perRoundS': [round(r, 4) for r in rounds],
                   'fromMediansS': round(mask[ph]['medianS'] + kp[ph]['medianS'] - box[ph]['medianS'], 4)}
    out.append(emit(est))
    return out


def bench_full(warm, reps):
    torch.manual_seed(0)
    model = build_full()
    images, targets = random_batch(2, 800, 1216, (80, 420), 91, True, False, seed=2)
    # lr 0.002 diverged to NaN by the 4th step (random weights + FrozenBN: nothing normalises the activations);
    # the step's cost does not depend on lr, so a tiny one keeps the timed steps finite
    return bench_models([('maskrcnn_resnet50_fpn', model, images, targets, 2, 1e-6)], warm, reps)


def bench_bottleneck():
    out = []
    for shape, warm, reps in (([2, 256, 50, 76], 3, 10), ([2, 256, 200, 304], 1, 3)):
        torch.manual_seed(0)
        blk = Bottleneck(256, 64).train()  # train-mode BatchNorm2d, as bench/conv-extra.bench-part.ts
        x = torch.randn(*shape, requires_grad=True)

        def fwd_bwd():
            blk.zero_grad(set_to_none=True)
            x.grad = None
            blk(x).sum().backward()
            return {}
        m = measure(f'ResNet-50 layer1 bottleneck fwd+bwd {shape}', fwd_bwd, warm, reps)
        m['medianMs'] = round(m['medianS'] * 1e3, 2)
        out.append(emit({'kind': 'bottleneck', 'shape': shape, 'norm': 'BatchNorm2d train', **m}))
    return out


def bottleneck_child(threads):
    """[2,256,50,76] fwd+bwd, median of 10 after 3, in a fresh process (OMP_WAIT_POLICY is read at libgomp start)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    blk, x = Bottleneck(256, 64).train(), torch.randn(2, 256, 50, 76, requires_grad=True)
    walls, cpus = [], []
    for i in range(13):
        c0, t0 = time.process_time(), time.perf_counter()
        blk.zero_grad(set_to_none=True)
        x.grad = None
        blk(x).sum().backward()
        if i >= 3:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    print(json.dumps({'medianMs': round(statistics.median(walls) * 1e3, 1), 'minMs': round(min(walls) * 1e3, 1),
                      'cpuMedianMs': round(statistics.median(cpus) * 1e3, 1)}))


def omp_probe():
    """Why the thread wait policy matters on a shared machine: the same block with 2 threads spinning (default),
    1 thread, and 2 threads OMP_WAIT_POLICY=PASSIVE, back to back."""
    rows = []
    for threads, policy in ((2, None), (1, None), (2, 'PASSIVE'), (2, 'ACTIVE')):
        env = {k: v for k, v in os.environ.items() if k != 'OMP_WAIT_POLICY'}
        if policy:
            env['OMP_WAIT_POLICY'] = policy
        la = load_now()
        out = subprocess.run([sys.executable, __file__, '--bottleneck-child', str(threads)], env=env,
                             capture_output=True, text=True, check=True)
        rows.append({'threads': threads, 'ompWaitPolicy': policy or 'unset', 'loadavg': la,
                     **json.loads(out.stdout.strip().splitlines()[-1])})
    return emit({'kind': 'ompProbe', 'what': 'ResNet-50 bottleneck [2,256,50,76] fwd+bwd, median of 10 after 3', 'rows': rows})


# ---------------------------------------------------------------- report

ORIENTATION_QUIET_S = {('maskrcnn_resnet50_fpn', 'train'): 19.1, ('maskrcnn_resnet50_fpn', 'inference'): 8.3}
ORIENTATION_BOTTLENECK_S = 0.040  # [2,256,50,76] fwd+bwd, issue 12


def against_orientation(res):
    """This run against the issue's quiet-machine numbers, and a warning where noise swamps the estimate."""
    L = ['Against the issue\'s quiet-machine orientation numbers (same kind of machine, OpenBLAS):', '']
    for m in res['models']:
        for ph in ('train', 'inference'):
            q = ORIENTATION_QUIET_S.get((m['model'], ph))
            if q:
                L.append(f"- {m['model']} {ph}: {m[ph]['medianS']:.1f} s median ({m[ph]['minS']:.1f} s best) here vs "
                         f"{q} s quiet: {m[ph]['medianS'] / q:.1f}× ({m[ph]['minS'] / q:.1f}× best).")
    for bn in res.get('bottleneck', []):
        if bn['shape'] == [2, 256, 50, 76]:
            L.append(f"- bottleneck [2,256,50,76] fwd+bwd: {bn['medianS'] * 1e3:.0f} ms median ({bn['minS'] * 1e3:.0f} ms best) "
                     f"here vs {ORIENTATION_BOTTLENECK_S * 1e3:.0f} ms quiet: {bn['medianS'] / ORIENTATION_BOTTLENECK_S:.1f}×.")
    by = {m['model']: m for m in res['models']}
    est = by.get('shapes_small box+mask+keypoint (ESTIMATE)')
    if est:
        for ph in ('train', 'inference'):
            parts = [by[f'shapes_small {h}'][ph]['medianS'] for h in ('mask', 'keypoint')]
            if est[ph]['medianS'] < max(parts):
                L.append(f"- The {ph} ESTIMATE ({est[ph]['medianS']:.2f} s) is below one of its own parts ({max(parts):.2f} s): "
                         'the run-to-run noise here is larger than the head being added, so the estimate is not usable.')
    L += ['', 'Use these rows as the peer only beside numbers of our engine taken under the same load; for a fair ratio rerun',
          'both on a quiet machine.']
    return L


def run_section(i, res):
    """One run: its conditions, BLAS check, table and comparison."""
    L = [f"## Run {i + 1}: {res['date']} (UTC), OMP_WAIT_POLICY={res.get('ompWaitPolicy', 'unset')}",
         '',
         f"`{res['command']}`. Device: {res['device']['cpu']}, {res['device']['cpus']} CPUs, torch {res['torch']} / "
         f"torchvision {res['torchvision']}, `torch.set_num_threads({res['threads']})`, "
         f"OPENBLAS_NUM_THREADS={res['openblasNumThreadsEnv']}. Load average at start {res['loadavgAtStart']}, "
         f"at end {res.get('loadavgAtEnd')}.",
         '']
    b = res.get('blas')
    if b:
        a, r = b['active'], b['referenceForComparison']
        L += [f"**BLAS: {a['blas']['name']}** (`sgemm_` from `{a['blas']['sgemmFrom']}`). 1024³ sgemm: "
              f"median {a['matmul']['medianS'] * 1e3:.1f} ms, best {a['matmul']['minS'] * 1e3:.1f} ms "
              f"({a['matmul']['gflopsBest']} GFLOP/s)"
              + (f"; with Debian's reference BLAS ({r['blas']['name']}, `sgemm_` from `{r['blas']['sgemmFrom']}`) "
                 f"median {r['matmul']['medianS'] * 1e3:.0f} ms, best {r['matmul']['minS'] * 1e3:.0f} ms "
                 f"({r['matmul']['gflopsBest']} GFLOP/s): {b['speedup']}× slower by median, {b['speedupBest']}× by best."
                 if r else '.'),
              '']
    probe = res.get('ompProbe')
    if probe:
        L += [f"Thread wait-policy probe ({probe['what']}): " + '; '.join(
            f"{r['threads']} thread{'s' if r['threads'] > 1 else ''} {r['ompWaitPolicy']}: {r['medianMs']:.0f} ms "
            f"(best {r['minMs']:.0f}, CPU {r['cpuMedianMs']:.0f} ms, load {r['loadavg'][0]})" for r in probe['rows']) + '.', '']
    L += ['| configuration | batch | image | phase | median s/batch | images/s | min s | reps | train: fwd / bwd / opt s; inference: detections per image | cpu/wall | load 1m |',
          '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for m in res['models']:
        if m['kind'] == 'estimate':
            for ph in ('train', 'inference'):
                L.append(f"| {m['model']} | {m['batch']} | 192×256 | {ph} | {m[ph]['medianS']:.3f} | {m[ph]['imagesPerS']:.2f} | | | | | |")
            continue
        for ph in ('train', 'inference'):
            p = m[ph]
            la = [r['loadavg'][0] for r in p['runs']]
            cw = statistics.median(r['cpuPerWall'] for r in p['runs'])
            split = f"{p['median_fwdS']:.3f} / {p['median_bwdS']:.3f} / {p['median_optS']:.3f}" if ph == 'train' \
                else ' '.join(str(d) for d in p['runs'][-1]['detections'])
            bad = sum(1 for r in m['train']['runs'] if r.get('finite') is False)
            name = m['model'] + ('' if not bad else f" ⚠ non-finite loss in {bad} of {len(p['runs'])} reps" if ph == 'train'
                                 else '' if m.get('inferenceWeights') == 'initial' else ' ⚠ on the diverged (NaN) weights')
            L.append(f"| {name} | {m['batch']} | {m['imageHW'][0]}×{m['imageHW'][1]} | {ph} | {p['medianS']:.3f} | "
                     f"{p['imagesPerS']:.2f} | {p['minS']:.3f} | {p['warmups']}+{p['reps']} | {split} | {cw:.2f} | "
                     f"{min(la):.1f}–{max(la):.1f} |")
    for bn in res.get('bottleneck', []):
        la = [r['loadavg'][0] for r in bn['runs']]
        cw = statistics.median(r['cpuPerWall'] for r in bn['runs'])
        L.append(f"| ResNet-50 layer1 bottleneck fwd+bwd (BN train) | 2 | {bn['shape'][2]}×{bn['shape'][3]} | fwd+bwd | "
                 f"{bn['medianS']:.4f} | | {bn['minS']:.4f} | {bn['warmups']}+{bn['reps']} | | {cw:.2f} | {min(la):.1f}–{max(la):.1f} |")
    return L + ['', *against_orientation(res), '']


def summary_ok(m, ph):
    """Train rows with finite losses; inference rows only on the initial weights (runs before 5 used the weights the
    timed steps left: a NaN model at full size, fewer detections at shapes size)."""
    return not any(r.get('finite') is False for r in m['train']['runs']) if ph == 'train' else m.get('inferenceWeights') == 'initial'


def summary(doc):
    """Per configuration, the run with the lowest median (load only ever adds time), skipping flagged rows."""
    best = {}
    shapes_total = {}
    for i, res in enumerate(doc['runs']):
        by = {m['model']: m for m in res['models']}
        for ph in ('train', 'inference'):
            parts = [by.get(f'shapes_small {h}') for h in ('box', 'mask', 'keypoint')]
            if all(parts) and all(summary_ok(m, ph) for m in parts) and 'shapes_small box+mask+keypoint (ESTIMATE)' in by:
                shapes_total[(i, ph)] = sum(m[ph]['medianS'] for m in parts)
    for i, res in enumerate(doc['runs']):
        for m in res['models']:
            for ph in ('train', 'inference'):
                p = m[ph]
                if m['kind'] == 'model':
                    if not summary_ok(m, ph):
                        continue
                    cw = f"{statistics.median(r['cpuPerWall'] for r in p['runs']):.2f}"
                    la = f"{min(r['loadavg'][0] for r in p['runs']):.1f}–{max(r['loadavg'][0] for r in p['runs']):.1f}"
                    extra = (f"{p['median_fwdS']:.3f} / {p['median_bwdS']:.3f} / {p['median_optS']:.3f}" if ph == 'train'
                             else 'detections ' + ' '.join(str(d) for d in p['runs'][-1]['detections']))
                else:
                    cw, la, extra = '', '', 'mask + keypoint − box, per interleaved round' if 'perRoundS' in p else 'from medians'
                key = (m['model'], ph)
                # shapes_small rows (box, mask, keypoint and the estimate built from them) come from one run: the
                # one whose three measured medians sum lowest for this phase
                rank = shapes_total.get((i, ph)) if m['model'].startswith('shapes_small') else p['medianS']
                if rank is None:
                    continue
                if key not in best or rank < best[key][2]:
                    best[key] = (i, {**p, 'batch': m['batch'], 'cw': cw, 'la': la, 'extra': extra}, rank)
        for bn in res.get('bottleneck', []):
            key = (f"ResNet-50 layer1 bottleneck fwd+bwd (BN train) [2,256,{bn['shape'][2]},{bn['shape'][3]}]", 'fwd+bwd')
            if key not in best or bn['medianS'] < best[key][2]:
                best[key] = (i, {**bn, 'batch': 2, 'imagesPerS': None, 'extra': '',
                                 'cw': f"{statistics.median(r['cpuPerWall'] for r in bn['runs']):.2f}",
                                 'la': f"{min(r['loadavg'][0] for r in bn['runs']):.1f}–{max(r['loadavg'][0] for r in bn['runs']):.1f}"},
                            bn['medianS'])
    L = ['## Summary: least contended run per configuration', '',
         'The lowest median over all runs below (contention only adds time), skipping rows marked ⚠; the shapes_small',
         'rows of one phase all come from the run whose box + mask + keypoint medians sum lowest, so the estimate and',
         'its parts agree. cpu/wall ≈ 2 and load ≈ 2 (our own two threads) mean the machine was effectively ours.', '',
         '| configuration | phase | batch | median s/batch | images/s | min s | run | cpu/wall | load 1m | notes (train: fwd / bwd / opt s) |',
         '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    for (name, ph), (i, p, _) in sorted(best.items(), key=lambda kv: kv[0][0].startswith('ResNet')):
        ips = f"{p['imagesPerS']:.2f}" if p.get('imagesPerS') else ''
        mn = f"{p['minS']:.3f}" if 'minS' in p else ''
        pol = doc['runs'][i].get('ompWaitPolicy', 'unset').split(' ')[0]
        L.append(f"| {name} | {ph} | {p['batch']} | {p['medianS']:.4g} | {ips} | {mn} | {i + 1} (OMP {pol}) | {p['cw']} | {p['la']} | {p['extra']} |")
    return L + ['']


GEN_START = '<!-- generated by bench/model_peer.py from model-peer-results.json: edit outside these markers -->'
GEN_END = '<!-- end of generated part -->'


def write_markdown(path, doc):
    """Rewrites only the part between the markers; the hand-written notes around them stay."""
    gen = '\n'.join([GEN_START, '', *summary(doc), *[l for i, res in enumerate(doc['runs']) for l in run_section(i, res)], GEN_END])
    old = open(path).read() if os.path.exists(path) else ''
    if GEN_START in old and GEN_END in old:
        text = old[:old.index(GEN_START)] + gen + old[old.index(GEN_END) + len(GEN_END):]
    else:
        text = '# CPU peer: torchvision on this machine for our model presets\n\n' + gen + '\n'
    with open(path, 'w') as f:
        f.write(text)


def load_doc(path):
    with open(path) as f:
        doc = json.load(f)
    return doc if 'runs' in doc else {'runs': [doc]}  # first format: one run at top level


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--only', default='blas,omp,shapes,bottleneck,full', help='comma list of blas, omp, shapes, bottleneck, full')
    ap.add_argument('--reps', type=int, default=None, help='override timed repetitions (shapes 5, full 3)')
    ap.add_argument('--out', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'model-peer-results.json'))
    ap.add_argument('--md', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'README-model-peer.md'))
    ap.add_argument('--no-write', action='store_true')
    ap.add_argument('--append', action='store_true', help='the default (kept so recorded commands still run)')
    ap.add_argument('--fresh', action='store_true', help='discard the runs already in --out (default: append this run)')
    ap.add_argument('--render-md', action='store_true', help='only rewrite --md from the existing --out JSON')
    ap.add_argument('--matmul-child', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--bottleneck-child', type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.matmul_child:
        return matmul_child()
    if a.bottleneck_child:
        return bottleneck_child(a.bottleneck_child)
    if a.render_md:
        return write_markdown(a.md, load_doc(a.out))
    torch.set_num_threads(THREADS)
    parts = set(a.only.split(','))
    unknown = parts - {'blas', 'omp', 'shapes', 'bottleneck', 'full'}
    if unknown:
        ap.error(f'--only: unknown part(s) {sorted(unknown)}; choose from blas, omp, shapes, bottleneck, full')
    cpu = next((l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name')), platform.processor())
    res = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
           'command': ' '.join(['/usr/bin/python3' if sys.executable == '/usr/bin/python3' else sys.executable] + sys.argv),
           'device': {'cpu': cpu, 'cpus': os.cpu_count(), 'host': platform.node(), 'kernel': platform.release()},
           'torch': torch.__version__, 'torchvision': torchvision.__version__, 'threads': torch.get_num_threads(),
           'mkldnn': torch.backends.mkldnn.is_available(),
           'openblasNumThreadsEnv': os.environ.get('OPENBLAS_NUM_THREADS'),
           'ompWaitPolicy': os.environ.get('OMP_WAIT_POLICY', 'unset (libgomp default: spin, then sleep)'),
           'note': 'shared machine: os.getloadavg() and process CPU time recorded before/for every timed repetition',
           'loadavgAtStart': load_now(), 'models': [], 'bottleneck': []}
    emit({'kind': 'meta', **{k: v for k, v in res.items() if k not in ('models', 'bottleneck')}})
    res['blas'] = emit(blas_before_after()) if 'blas' in parts else {'active': {'blas': blas_info(), 'matmul': time_matmul()},
                                                                      'referenceForComparison': None, 'speedup': None}
    if 'omp' in parts:
        res['ompProbe'] = omp_probe()
    if 'shapes' in parts:
        r = a.reps or 5
        res['models'] += bench_shapes(2, r)
    if 'bottleneck' in parts:
        res['bottleneck'] = bench_bottleneck()
    if 'full' in parts:
        res['models'] += bench_full(1, a.reps or 3)
    res['loadavgAtEnd'] = load_now()
    if not a.no_write:
        doc = load_doc(a.out) if not a.fresh and os.path.exists(a.out) else {'runs': []}
        doc['runs'].append(res)
        with open(a.out, 'w') as f:
            json.dump(doc, f, indent=1)
        write_markdown(a.md, doc)


if __name__ == '__main__':
    main()
