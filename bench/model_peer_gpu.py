#!/usr/bin/env python3
"""GPU peer for the model bench: torchvision's training step and inference on CUDA, for the same
configurations bench/model.ts times on the same machine (bench/RESULTS.md holds both).

Runs on the lent GPU machine (PyTorch + CUDA there, no Node), from the project root:
    python3 bench/model_peer_gpu.py --out $OUT/peer-gpu.json [--reps 20]
Models and batches come from bench/model_peer.py (the CPU peer), so both peers time one definition:
  shapes_small box / mask / keypoint at batch 8 (192x256 random images, 2-4 boxes each), and
  maskrcnn_resnet50_fpn at batch 2, 800x1216 (torchvision's benchmark shape).
Each step is bracketed by torch.cuda.synchronize(); fp32, TF32 off (our kernels are fp32 FMA),
then once more with TF32 on (torch's default for cuDNN convolutions) for reference.
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import model_peer as mp  # noqa: E402


def to_dev(images, targets, dev):
    return [i.to(dev) for i in images], [{k: v.to(dev) for k, v in t.items()} for t in targets]


def timed(fn, warm, reps):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    walls = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        walls.append(time.perf_counter() - t0)
    return {'medianMs': round(1e3 * statistics.median(walls), 3), 'minMs': round(1e3 * min(walls), 3), 'reps': reps}


def bench(tag, model, images, targets, batch, lr, warm, reps):
    dev = torch.device('cuda')
    torch.cuda.reset_peak_memory_stats()
    model.to(dev)
    images, targets = to_dev(images, targets, dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    model.train()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = sum(model(images, targets).values())
        loss.backward()
        opt.step()
    train = timed(step, warm, reps)
    model.eval()

    def infer():
        with torch.no_grad():
            model(images)
    inference = timed(infer, warm, reps)
    rec = {'model': tag, 'batch': batch, 'train': {**train, 'imagesPerS': round(batch * 1e3 / train['medianMs'], 2)},
           'inference': {**inference, 'imagesPerS': round(batch * 1e3 / inference['medianMs'], 2)},
           'peakMemMiB': round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    print(json.dumps(rec), flush=True)
    return rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--reps', type=int, default=20)
    ap.add_argument('--only', default='shapes,full')
    a = ap.parse_args()
    doc = {'date': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), 'torch': torch.__version__,
           'torchvision': mp.torchvision.__version__, 'device': torch.cuda.get_device_name(0), 'runs': []}
    for tf32 in (False, True):
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        if 'shapes' in a.only:
            for heads in ('box', 'mask', 'keypoint'):
                torch.manual_seed(0)
                model = mp.build_shapes(heads)
                images, targets = mp.random_batch(8, 192, 256, (24, 110), mp.SHAPES_CLASSES, heads == 'mask', heads == 'keypoint', seed=1)
                doc['runs'].append({'tf32': tf32, **bench(f'shapes_small {heads}', model, images, targets, 8, 0.005, 5, a.reps)})
        if 'full' in a.only:
            torch.manual_seed(0)
            model = mp.build_full()
            images, targets = mp.random_batch(2, 800, 1216, (80, 420), 91, True, False, seed=2)
            doc['runs'].append({'tf32': tf32, **bench('maskrcnn_resnet50_fpn', model, images, targets, 2, 1e-6, 3, max(5, a.reps // 2))})
        with open(a.out, 'w') as f:
            json.dump(doc, f, indent=1)


if __name__ == '__main__':
    main()
