#!/usr/bin/env python3
"""The PyTorch side of normlab's benchmark: the same workloads as bench/normlab_bench.cpp.

Run by bench/compare (interleaved with normlab-bench). Needs Debian's python3-torch; the caller sets
OPENBLAS_CORETYPE the same way for both sides. Prints one line per workload and writes JSON lines
{"name", "median_ms", "min_ms", "max_ms", "iters"} to --json.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def timed(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times), max(times)


def mlp():
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 512, bias=False), nn.BatchNorm1d(512), nn.ReLU(),
        nn.Linear(512, 10))


def cnn():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(3136, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(),
        nn.Linear(128, 10))


def train_step_fn(model, batch):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    model.train()

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return step


def eval_fn(model, batch):
    x = torch.randn(batch, 1, 28, 28)
    model.eval()

    def run():
        with torch.no_grad():
            model(x)
    return run


def norm_fwd_bwd(layer, shape):
    x = torch.randn(*shape, requires_grad=True)
    g = torch.randn(*shape)
    layer.train()

    def run():
        x.grad = None
        for p in layer.parameters():
            p.grad = None
        layer(x).backward(g)
    return run


def norm_fwd(layer, shape):
    x = torch.randn(*shape)
    layer.train()

    def run():
        with torch.no_grad():
            layer(x)
    return run


def conv_fns():
    conv = nn.Conv2d(32, 64, 3, padding=1)
    x = torch.randn(64, 32, 14, 14, requires_grad=True)
    g = torch.randn(64, 64, 14, 14)

    def fwd():
        with torch.no_grad():
            conv(x)

    def fwd_bwd():
        x.grad = None
        conv.zero_grad()
        conv(x).backward(g)
    return fwd, fwd_bwd


def sgemm():
    a = torch.randn(1024, 1024)
    b = torch.randn(1024, 1024)
    return lambda: torch.mm(a, b)


def triad():
    n = 4 * 1024 * 1024  # 16 MB per float array: stays in L3-sized working sets
    a, b, c = torch.empty(n), torch.randn(n), torch.randn(n)
    return lambda: torch.add(b, c, alpha=3.0, out=a)


def workloads():
    torch.manual_seed(0)
    conv_fwd, conv_fwd_bwd = conv_fns()
    return {
        "mlp_train_step_b128": train_step_fn(mlp(), 128),
        "mlp_eval_b1000": eval_fn(mlp(), 1000),
        "cnn_train_step_b64": train_step_fn(cnn(), 64),
        "cnn_eval_b1000": eval_fn(cnn(), 1000),
        "cnn_train_step_b2": train_step_fn(cnn(), 2),
        "cnn_train_step_b8": train_step_fn(cnn(), 8),
        "mlp_train_step_b8": train_step_fn(mlp(), 8),
        "bn2d_fwd_64x64x28x28": norm_fwd(nn.BatchNorm2d(64), (64, 64, 28, 28)),
        "bn2d_fwd_bwd_64x64x28x28": norm_fwd_bwd(nn.BatchNorm2d(64), (64, 64, 28, 28)),
        "bn2d_fwd_256x32x16x16": norm_fwd(nn.BatchNorm2d(32), (256, 32, 16, 16)),
        "bn2d_fwd_bwd_256x32x16x16": norm_fwd_bwd(nn.BatchNorm2d(32), (256, 32, 16, 16)),
        "layernorm_fwd_bwd_64x64x28x28": norm_fwd_bwd(nn.LayerNorm((64, 28, 28)), (64, 64, 28, 28)),
        "groupnorm32_fwd_bwd_64x64x28x28": norm_fwd_bwd(nn.GroupNorm(32, 64), (64, 64, 28, 28)),
        "conv3x3_32to64_fwd_64x32x14x14": conv_fwd,
        "conv3x3_32to64_fwd_bwd_64x32x14x14": conv_fwd_bwd,
        "sgemm_1024": sgemm(),
        "triad_16MB": triad(),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"mkldnn={torch.backends.mkldnn.is_available()}", file=sys.stderr)
    only = set(filter(None, args.only.split(",")))
    out = open(args.json, "w") if args.json else None
    for name, fn in workloads().items():
        if only and name not in only:
            continue
        med, lo, hi = timed(fn, args.iters, args.warmup)
        print(f"{name:40s} median {med:9.3f} ms  min {lo:9.3f}  max {hi:9.3f}")
        if out:
            out.write(json.dumps({"name": name, "median_ms": med, "min_ms": lo, "max_ms": hi,
                                  "iters": args.iters}) + "\n")
    if out:
        out.close()


if __name__ == "__main__":
    main()
