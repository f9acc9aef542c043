"""Benchmark: the fast metric paths of dtcore.metrics against their naive forms, side by side.

Issue 3's three speed targets, each timed in this one process on the same inputs, printing the
naive time, the fast time and their ratio (and checking both give the same numbers):

1. ``cka_matrix`` for 108 x 108 layers x 3 tokens (GPT-2's 12 blocks x 9 hooked layers, widths
   768 / 2304 / 3072, n = 100 samples) against the double loop calling ``linear_cka``
   (debiased). The double loop (34,992 calls) is timed on a subset of rows and extrapolated; the
   output says so.
2. ``mine_many`` against a loop of ``mine`` for 20 estimators (n = 100, x: 11-dim state, z: a
   64-wide activation, the shuffled baseline on), for the paper's critic (3 x 400), a small one
   (3 x 64) and the mini profile's (2 x 32, ``MINI.analysis.mine_hidden``), each for
   ``--mine-iters`` iterations (default 100, the mini profile's; the paper ran 1000). Each form
   also has a fixed cost per call (set-up, the final estimate) that weighs less as iterations
   grow, so very short runs understate the batched form's advantage.
3. ``per_sample_gradients`` (torch.func) against ``per_sample_gradients_loop`` (the published
   batch-1 loop) on ``dtcore.model``'s Decision Transformer over a 12-block random GPT-2 body of
   width 64 (eager attention, as the §5.4 analysis runs it), 50 samples of K = 20 steps, dropout on
   and off.

Each section also prints the **ceiling** this CPU puts on the ratio, measured in the same run, so
that a missed target is explained by a number rather than an opinion:

- MINE: the critics' matrix FLOPs are counted exactly (forward, weight gradients, input gradients
  of the layers after the first) and divided by each form's time; the ceiling is the core's
  measured GEMM rate (a 1024 x 1024 x 1024 product in the same dtype) over the loop's achieved
  rate. Batching cannot remove FLOPs, so no batched form can beat the loop by more than that.
- Per-sample gradients: the floor is one ordinary batched forward + backward of the summed loss
  over the same 50 samples (the per-sample weight-gradient products have exactly the MACs of the
  batched weight gradient) plus writing the [N, P] result; the ceiling is the loop over that floor.

    OMP_NUM_THREADS=1 python bench/metrics.py          # a few minutes on one CPU core
    python bench/metrics.py --quick                    # seconds: checks the script runs
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dtcore.config import ModelConfig  # noqa: E402
from dtcore.samplers import Batch  # noqa: E402
from dtcore.metrics import (  # noqa: E402
    cka_matrix,
    linear_cka,
    mine,
    mine_many,
    per_sample_gradients,
    per_sample_gradients_loop,
)
from dtcore.model import action_loss, build_model  # noqa: E402
from dtcore.profiles import MINI  # noqa: E402

# GPT-2's 9 hooked layers per block (spec §6.0) and their widths for d = 768.
BLOCK_WIDTHS = (768, 2304, 768, 768, 768, 3072, 768, 3072, 768)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cka-rows", type=int, default=9, help="rows of the 108 x 108 double loop timed per token")
    p.add_argument("--mine-estimators", type=int, default=20)
    p.add_argument("--mine-iters", type=int, default=100)
    p.add_argument("--grad-samples", type=int, default=50)
    p.add_argument("--grad-width", type=int, default=64)
    p.add_argument("--grad-layers", type=int, default=12)
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes (1 CKA row, 2 estimators x 2 iterations, 2 blocks x 5 samples): a smoke run")
    args = p.parse_args(argv)
    if args.quick:
        args.cka_rows, args.mine_estimators, args.mine_iters = 1, 2, 2
        args.grad_samples, args.grad_width, args.grad_layers = 5, 16, 2
    return args


def report(name: str, naive: float, fast: float, note: str = "") -> None:
    print(f"{name}: naive {naive:8.2f} s   fast {fast:8.3f} s   ratio {naive / fast:7.1f}x{note}", flush=True)


def bench_cka(rows: int) -> None:
    rng = np.random.default_rng(0)
    widths = BLOCK_WIDTHS * 12  # 108 layers
    models = [[[(rng.standard_normal((100, w)) + rng.uniform(-5, 5, size=w)).astype(np.float32) for w in widths]
               for _ in range(3)]
              for _ in range(2)]  # [model][token][layer] -> [100, w]
    start = time.perf_counter()
    fast = [cka_matrix(models[0][t], models[1][t], debiased=True) for t in range(3)]
    t_fast = time.perf_counter() - start
    start = time.perf_counter()
    loop = [[[linear_cka(models[0][t][i], models[1][t][j], debiased=True) for j in range(108)]
             for i in range(rows)] for t in range(3)]
    t_loop = (time.perf_counter() - start) * 108 / rows
    err = max(float(np.max(np.abs(np.array(loop[t]) - fast[t][:rows]))) for t in range(3))
    report("cka_matrix 108x108 x 3 tokens, n=100", t_loop, t_fast,
           f"   (double loop timed on {rows}/108 rows per token, {3 * rows * 108} calls, "
           f"extrapolated x{108 / rows:.1f}; max |difference| {err:.1e})")


def gemm_rate(dtype: torch.dtype, size: int = 1024, repeats: int = 5) -> float:
    """This core's measured matrix-multiply rate in FLOP/s for ``dtype`` (a size^3 product, best of repeats)."""
    a = torch.randn(size, size, dtype=dtype)
    a @ a  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def mine_flops(dx: int, dz: int, hidden: tuple[int, ...], n: int, batch_size: int, iters: int) -> float:
    """Matrix FLOPs of training one MINE critic as ``dtcore.metrics.mine`` does (2 FLOPs per MAC).

    Per minibatch of m = batch_size pairs: layer 1 projects x and z once (m (dx + dz) h1 MACs; the
    marginal rows reuse z's projection by permutation), the later layers see 2m rows (joint and
    marginal). Backward: weight gradients of every layer (the same MACs again) and input gradients
    of the layers after the first. Elementwise work, Adam and the EMA are not counted.
    """
    widths = [*hidden, 1]
    first = batch_size * (dx + dz) * widths[0]
    tail = sum(2 * batch_size * a * b for a, b in zip(widths[:-1], widths[1:]))
    return 2.0 * (2 * first + 3 * tail) * (n // batch_size) * iters


def bench_mine(estimators: int, iters: int) -> None:
    rng = np.random.default_rng(1)
    n, dx, dz = 100, 11, 64
    pairs = []
    for _ in range(estimators):
        x = rng.standard_normal((n, dx))
        pairs.append((x, np.tanh(x @ rng.standard_normal((dx, dz))) + rng.standard_normal((n, dz))))
    mine(*pairs[0], hidden=(8,), iters=1)  # warm-up: torch.optim's first use imports torch._dynamo (~2 s)
    peak = gemm_rate(torch.float64)
    print(f"  this core's float64 GEMM rate (1024^3): {peak / 1e9:.1f} GFLOP/s", flush=True)
    for hidden in ((400, 400, 400), (64, 64, 64), tuple(MINI.analysis.mine_hidden)):
        opts = dict(hidden=hidden, iters=iters, batch_size=50, seed=0)
        start = time.perf_counter()
        looped = [mine(x, z, **opts) for x, z in pairs]
        t_loop = time.perf_counter() - start
        start = time.perf_counter()
        many = mine_many(pairs, **opts)
        t_many = time.perf_counter() - start
        err = max(abs(a.value - b.value) for a, b in zip(many, looped))
        report(f"mine_many vs loop of mine, {estimators} estimators (+ baselines), critic {hidden}", t_loop, t_many,
               f"   ({iters} of 1000 iterations; max |difference| {err:.1e} nats)")
        flops = 2 * estimators * mine_flops(dx, dz, hidden, n, 50, iters)  # x2: every pair's shuffled baseline
        print(f"    matrix work {flops / 1e9:.1f} GFLOP: loop {flops / t_loop / 1e9:.1f} GFLOP/s, mine_many "
              f"{flops / t_many / 1e9:.1f} GFLOP/s; ceiling for any batched form = GEMM rate / loop rate "
              f"= {peak * t_loop / flops:.1f}x", flush=True)


def bench_model(layers: int, width: int):
    """The real Decision Transformer (``dtcore.model``) over a random GPT-2 body of ``layers`` x
    ``width``, 1 head, eager attention as the §5.4 analysis runs it (vmap over SDPA falls back to a
    per-sample loop on a CPU)."""
    return build_model(ModelConfig(backbone="random", state_dim=11, act_dim=3, n_layer=layers, n_embd=width,
                                   n_head=1, attn_implementation="eager", seed=0))


def bench_batch(samples: int, k: int = 20) -> Batch:
    """``samples`` windows of ``k`` steps; a quarter of them left-padded by 5 steps."""
    g = torch.Generator().manual_seed(0)
    mask = torch.ones(samples, k)
    mask[: samples // 4, :5] = 0
    return Batch(states=torch.randn(samples, k, 11, generator=g), actions=torch.rand(samples, k, 3, generator=g) * 2 - 1,
                 rewards=torch.zeros(samples, k, 1), dones=torch.zeros(samples, k, dtype=torch.int64),
                 rtg=torch.randn(samples, k + 1, 1, generator=g),
                 timesteps=torch.randint(0, 1000, (samples, k), generator=g), mask=mask)


def batched_floor(model: nn.Module, batch: Batch, n_params: int, repeats: int = 3) -> float:
    """Seconds for one ordinary batched forward + backward of the summed per-sample losses (dropout
    off) plus writing an [N, n_params] float32 result: what per-sample gradients cannot undercut."""
    n = len(batch)
    params = [p for p in model.parameters() if p.requires_grad]
    model.eval()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        pred = model(batch.states, batch.actions, batch.rtg[:, :-1], batch.timesteps, batch.mask)
        m = batch.mask.unsqueeze(-1)
        per_sample = ((pred - batch.actions) ** 2 * m).sum((1, 2)) / (m.sum((1, 2)) * pred.shape[-1])
        torch.autograd.grad(per_sample.sum(), params, allow_unused=True)
        torch.empty(n, n_params).fill_(1.0)
        best = min(best, time.perf_counter() - start)
    model.train()
    return best


def bench_gradients(samples: int, width: int, layers: int) -> None:
    model = bench_model(layers, width)
    batch = bench_batch(samples)
    per_sample_gradients(model, bench_batch(2), action_loss)  # warm-up
    for train_mode in (True, False):
        start = time.perf_counter()
        loop = per_sample_gradients_loop(model, batch, action_loss, train_mode=train_mode)
        t_loop = time.perf_counter() - start
        start = time.perf_counter()
        fast = per_sample_gradients(model, batch, action_loss, train_mode=train_mode)
        t_fast = time.perf_counter() - start
        rel = float((fast - loop).abs().max() / loop.abs().max())
        check = "" if train_mode else f"; max relative difference {rel:.1e}"
        report(f"per-sample gradients, {layers} blocks x width {width}, {samples} samples, dropout "
               f"{'on ' if train_mode else 'off'}", t_loop, t_fast, f"   ([{fast.shape[0]}, {fast.shape[1]}]{check})")
    floor = batched_floor(model, batch, fast.shape[1])
    print(f"    floor (one batched forward + backward of the {samples} samples + writing the "
          f"[{samples}, {fast.shape[1]}] result): {floor:.3f} s; ceiling = loop (dropout off) / floor "
          f"= {t_loop / floor:.1f}x", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"dtcore.metrics benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    bench_cka(args.cka_rows)
    bench_mine(args.mine_estimators, args.mine_iters)
    bench_gradients(args.grad_samples, args.grad_width, args.grad_layers)


if __name__ == "__main__":
    main()
