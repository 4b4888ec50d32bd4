#!/usr/bin/env python3
"""Writes the PyTorch parity fixtures in this folder: inputs, upstream gradients and PyTorch's outputs and
gradients for the normalization layers (also BatchNorm followed by ReLU and a max pool, as normlab's fused
layers compute it), conv2d, pooling, cross-entropy and SGD, in float64 .npy files.

tests/test_layers_torch_parity.cpp reads them, runs normlab on the same inputs and compares. PyTorch is needed
only to regenerate the fixtures (Debian's python3-torch), never to build or test normlab:

    /usr/bin/python3 tests/data/torch/make_fixtures.py
"""
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
torch.set_default_dtype(torch.float64)


def save(name, t):
    a = t.detach().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    np.save(os.path.join(HERE, name + ".npy"), np.ascontiguousarray(a.astype(np.float64)))


def save_i64(name, t):
    np.save(os.path.join(HERE, name + ".npy"), np.ascontiguousarray(t.numpy().astype(np.int64)))


class BatchNorm1dReLU(nn.BatchNorm1d):
    """What normlab's BatchNorm1d with fused_relu computes: relu(BatchNorm1d(x))."""

    def forward(self, x):
        return F.relu(super().forward(x))


class BatchNorm2dReLU(nn.BatchNorm2d):
    """normlab's BatchNorm2d with fused_relu: relu(BatchNorm2d(x))."""

    def forward(self, x):
        return F.relu(super().forward(x))


class BatchNorm2dReLUMaxPool(nn.BatchNorm2d):
    """normlab's BatchNorm2d with fused_relu and fused_max_pool: max_pool2d(relu(BatchNorm2d(x)), 2)."""

    def forward(self, x):
        return F.max_pool2d(F.relu(super().forward(x)), 2)


class GhostBatchNorm2d(nn.BatchNorm2d):
    """Ghost BatchNorm as normlab defines it (docs/normalization.md): in training, plain BatchNorm2d on each
    run of V consecutive samples in turn, so the running statistics are updated once per virtual batch, in
    order (what training on the small batches one after the other would do). Eval: plain BatchNorm2d."""

    def __init__(self, num_features, virtual_batch_size, **kw):
        super().__init__(num_features, **kw)
        self.virtual_batch_size = virtual_batch_size

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        return torch.cat([super(GhostBatchNorm2d, self).forward(c) for c in x.split(self.virtual_batch_size)])


class BatchRenorm2dReference(nn.Module):
    """Batch Renormalization (Ioffe 2017) written out with PyTorch's autograd, with constant rmax and dmax:
    x_hat = (x − μ_B)/σ_B · r + d, r = clip(σ_B/σ, 1/rmax, rmax), d = clip((μ_B − μ)/σ, −dmax, dmax), r and d
    constants for the gradient; σ_B = sqrt(biased var + eps); then μ += α(μ_B − μ), σ += α(σ_B − σ).
    Eval: (x − μ)/σ. The running σ includes eps, as normlab's running_std does."""

    def __init__(self, num_features, rmax, dmax, momentum, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_std", torch.ones(num_features))
        self.rmax, self.dmax, self.momentum, self.eps = rmax, dmax, momentum, eps

    def forward(self, x):
        shape = (1, -1, 1, 1)
        if not self.training:
            x_hat = (x - self.running_mean.view(shape)) / self.running_std.view(shape)
        else:
            mean = x.mean(dim=(0, 2, 3))
            std = torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + self.eps)
            r = (std / self.running_std).clamp(1 / self.rmax, self.rmax).detach()
            d = ((mean - self.running_mean) / self.running_std).clamp(-self.dmax, self.dmax).detach()
            x_hat = (x - mean.view(shape)) / std.view(shape) * r.view(shape) + d.view(shape)
            with torch.no_grad():
                self.running_mean += self.momentum * (mean - self.running_mean)
                self.running_std += self.momentum * (std - self.running_std)
        return x_hat * self.weight.view(shape) + self.bias.view(shape)


class RMSNormReference(nn.Module):
    """RMSNorm as PyTorch 2.4's nn.RMSNorm defines it (1.13 has none): y = x / sqrt(mean(x²) + eps) · γ over
    the trailing dims normalized_shape; eps=None is the machine epsilon of x's dtype."""

    def __init__(self, normalized_shape, eps=None):
        super().__init__()
        self.normalized_shape = tuple(normalized_shape)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(self.normalized_shape))

    def forward(self, x):
        dims = tuple(range(-len(self.normalized_shape), 0))
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        return x * torch.rsqrt(x.pow(2).mean(dim=dims, keepdim=True) + eps) * self.weight


def layer_case(prefix, layer, shape, steps=3, out_shape=None, eval_backward=False):
    """Train-mode forward/backward for `steps` batches (running stats evolve), then an eval forward.
    out_shape: the output's shape when it differs from the input's (the upstream gradient has it).
    eval_backward: also the eval forward's gradients (a frozen BatchNorm: constant statistics)."""
    for p in layer.parameters():  # non-trivial affine parameters
        with torch.no_grad():
            p.copy_(torch.randn_like(p) * 0.5 + (1.0 if p.dim() and p is layer.weight else 0.0))
    for name, p in layer.named_parameters():
        save(f"{prefix}_param_{name}", p)
    layer.train()
    for s in range(steps):
        x = (torch.randn(*shape) * 2 + 3).requires_grad_()
        g = torch.randn(*(out_shape or shape))
        layer.zero_grad()
        y = layer(x)
        y.backward(g)
        save(f"{prefix}_x{s}", x)
        save(f"{prefix}_g{s}", g)
        save(f"{prefix}_y{s}", y)
        save(f"{prefix}_dx{s}", x.grad)
        for name, p in layer.named_parameters():
            save(f"{prefix}_d{name}{s}", p.grad)
        for name, b in layer.named_buffers():
            if b.dtype == torch.float64:
                save(f"{prefix}_{name}{s}", b)
    layer.eval()
    x = torch.randn(*shape) * 2 + 3
    save(f"{prefix}_xeval", x)
    if not eval_backward:
        save(f"{prefix}_yeval", layer(x))
        return
    x.requires_grad_()
    layer.zero_grad()
    y = layer(x)
    g = torch.randn(*(out_shape or shape))
    y.backward(g)
    save(f"{prefix}_yeval", y)
    save(f"{prefix}_geval", g)
    save(f"{prefix}_dxeval", x.grad)
    for name, p in layer.named_parameters():
        save(f"{prefix}_d{name}eval", p.grad)


def main():
    layer_case("bn2d", nn.BatchNorm2d(3), (4, 3, 5, 6))
    layer_case("bn1d", nn.BatchNorm1d(5), (8, 5))
    layer_case("bn1d_cma", nn.BatchNorm1d(4, momentum=None), (6, 4))
    layer_case("ln", nn.LayerNorm((3, 4)), (5, 3, 4))
    layer_case("gn", nn.GroupNorm(2, 6), (3, 6, 4, 5))
    layer_case("in2d", nn.InstanceNorm2d(3, affine=True, track_running_stats=True), (4, 3, 5, 5))

    # conv2d: stride, padding, dilation, groups, bias
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2, bias=True)
    x = torch.randn(2, 4, 9, 8, requires_grad=True)
    y = conv(x)
    g = torch.randn_like(y)
    y.backward(g)
    for n, t in [("x", x), ("w", conv.weight), ("b", conv.bias), ("g", g), ("y", y), ("dx", x.grad),
                 ("dw", conv.weight.grad), ("db", conv.bias.grad)]:
        save("conv_" + n, t)

    # pooling
    x = torch.randn(2, 3, 7, 6, requires_grad=True)
    y = F.max_pool2d(x, 3, stride=2, padding=1)
    g = torch.randn_like(y)
    y.backward(g)
    for n, t in [("x", x), ("g", g), ("y", y), ("dx", x.grad)]:
        save("maxpool_" + n, t)
    x = torch.randn(2, 3, 7, 6, requires_grad=True)
    y = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    g = torch.randn_like(y)
    y.backward(g)
    for n, t in [("x", x), ("g", g), ("y", y), ("dx", x.grad)]:
        save("avgpool_" + n, t)

    # cross-entropy with label smoothing
    logits = (torch.randn(6, 5) * 3).requires_grad_()
    target = torch.randint(0, 5, (6,))
    loss = F.cross_entropy(logits, target, label_smoothing=0.1)
    loss.backward()
    save("ce_logits", logits)
    save_i64("ce_target", target)
    save("ce_loss", loss)
    save("ce_dlogits", logits.grad)

    # SGD: momentum, dampening, nesterov, weight decay; three steps on fixed gradients
    for tag, kw in [("momentum", dict(momentum=0.9, weight_decay=0.01)),
                    ("nesterov", dict(momentum=0.9, nesterov=True, weight_decay=0.01)),
                    ("dampening", dict(momentum=0.8, dampening=0.3))]:
        w = torch.randn(7, requires_grad=True)
        save(f"sgd_{tag}_w0", w)
        opt = torch.optim.SGD([w], lr=0.1, **kw)
        for s in range(3):
            grad = torch.randn(7)
            save(f"sgd_{tag}_g{s}", grad)
            w.grad = grad.clone()
            opt.step()
        save(f"sgd_{tag}_w3", w)

    # More layer cases, added after the ones above so that those keep their random draws (and files).
    layer_case("bn1d_3d", nn.BatchNorm1d(4), (6, 4, 7))
    layer_case("bn2d_batchstats", nn.BatchNorm2d(3, affine=False, track_running_stats=False), (4, 3, 5, 6))
    layer_case("in1d", nn.InstanceNorm1d(3), (4, 3, 9))
    layer_case("gn_noaffine", nn.GroupNorm(3, 6, affine=False), (2, 6, 5))
    layer_case("ln_noaffine", nn.LayerNorm(8, elementwise_affine=False), (4, 3, 8))
    layer_case("bn1d_relu", BatchNorm1dReLU(5), (8, 5))
    layer_case("bn2d_relu", BatchNorm2dReLU(3), (4, 3, 5, 6))
    layer_case("bn2d_relu_pool", BatchNorm2dReLUMaxPool(3), (4, 3, 6, 8), out_shape=(4, 3, 3, 4))
    # Edge shapes of the shared normalize core, and a frozen BatchNorm's backward.
    layer_case("bn1d_batch2", nn.BatchNorm1d(3), (2, 3))  # M = 2: the unbiased variance doubles the biased
    layer_case("bn2d_1x1", nn.BatchNorm2d(4), (5, 4, 1, 1))
    layer_case("gn_per_channel", nn.GroupNorm(4, 4), (3, 4, 3, 5))  # G = C: InstanceNorm with affine
    layer_case("gn_one_group", nn.GroupNorm(1, 4), (3, 4, 3, 5))  # G = 1: over (C, H, W), per-channel γ
    layer_case("bn2d_eval_backward", nn.BatchNorm2d(3), (4, 3, 5, 6), eval_backward=True)
    layer_case("bn2d_relu_eval_backward", BatchNorm2dReLU(3), (4, 3, 5, 6), eval_backward=True)

    # conv2d in its most common form (3x3, stride 1, padding 1: normlab's same-width fast path), no bias;
    # and a 1x1 conv
    for tag, conv, shape in [("conv3x3", nn.Conv2d(3, 5, 3, padding=1, bias=False), (2, 3, 6, 7)),
                             ("conv1x1", nn.Conv2d(4, 3, 1, bias=True), (2, 4, 5, 5))]:
        x = torch.randn(*shape, requires_grad=True)
        y = conv(x)
        g = torch.randn_like(y)
        y.backward(g)
        tensors = [("x", x), ("w", conv.weight), ("g", g), ("y", y), ("dx", x.grad), ("dw", conv.weight.grad)]
        if conv.bias is not None:
            tensors += [("b", conv.bias), ("db", conv.bias.grad)]
        for n, t in tensors:
            save(f"{tag}_{n}", t)

    # the 2x2, stride-2 max pool (normlab's fast path)
    x = torch.randn(2, 3, 6, 8, requires_grad=True)
    y = F.max_pool2d(x, 2)
    g = torch.randn_like(y)
    y.backward(g)
    for n, t in [("x", x), ("g", g), ("y", y), ("dx", x.grad)]:
        save("maxpool2_" + n, t)

    # Ghost BatchNorm against BatchNorm2d applied to each virtual batch in turn
    layer_case("ghost_bn2d", GhostBatchNorm2d(3, 2), (6, 3, 4, 5))
    layer_case("ghost_bn2d_cma", GhostBatchNorm2d(3, 3, momentum=None), (6, 3, 4, 5))

    # Batch Renormalization with r and d clipped (the inputs' mean 3 and std 2 are far from μ = 0, σ = 1)
    layer_case("batch_renorm", BatchRenorm2dReference(3, rmax=1.5, dmax=0.5, momentum=0.1), (4, 3, 5, 6))

    # RMSNorm with an explicit eps and with the default (float64's machine epsilon here)
    layer_case("rmsnorm", RMSNormReference((3, 4), eps=1e-5), (5, 3, 4))
    layer_case("rmsnorm_default_eps", RMSNormReference((6,)), (4, 2, 6))


if __name__ == "__main__":
    main()
