"""Benchmark: the fast metric paths of dtcore.metrics against their naive forms, side by side.

Issue 3's three speed targets, each timed in this one process on the same inputs, printing the
naive time, the fast time and their ratio (and checking both give the same numbers):

1. ``cka_matrix`` for 108 x 108 layers x 3 tokens (GPT-2's 12 blocks x 9 hooked layers, widths
   768 / 2304 / 3072, n = 100 samples) against the double loop calling ``linear_cka``
   (debiased). The double loop (34,992 calls) is timed on a subset of rows and extrapolated; the
   output says so.
2. ``mine_many`` against a loop of ``mine`` for 20 estimators (n = 100, x: 11-dim state, z: a
   64-wide activation, the shuffled baseline on), for the paper's critic (3 x 400) and for a small
   one (3 x 64). ``--mine-iters`` iterations instead of 1000: the cost per iteration is constant,
   so the ratio does not depend on it.
3. ``per_sample_gradients`` (torch.func) against ``per_sample_gradients_loop`` (the published
   batch-1 loop) on a 12-block GPT2Model body of width 64 in a Decision-Transformer wrapper, 50
   samples of K = 20 steps, dropout on and off.

    OMP_NUM_THREADS=1 python bench/metrics.py          # a few minutes on one CPU core
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
from transformers import GPT2Config, GPT2Model  # noqa: E402

from dtcore.metrics import (  # noqa: E402
    cka_matrix,
    linear_cka,
    mine,
    mine_many,
    per_sample_gradients,
    per_sample_gradients_loop,
)

# GPT-2's 9 hooked layers per block (spec §6.0) and their widths for d = 768.
BLOCK_WIDTHS = (768, 2304, 768, 768, 768, 3072, 768, 3072, 768)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cka-rows", type=int, default=9, help="rows of the 108 x 108 double loop timed per token")
    p.add_argument("--mine-estimators", type=int, default=20)
    p.add_argument("--mine-iters", type=int, default=10)
    p.add_argument("--grad-samples", type=int, default=50)
    p.add_argument("--grad-width", type=int, default=64)
    return p.parse_args()


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


def bench_mine(estimators: int, iters: int) -> None:
    rng = np.random.default_rng(1)
    pairs = []
    for _ in range(estimators):
        x = rng.standard_normal((100, 11))
        pairs.append((x, np.tanh(x @ rng.standard_normal((11, 64))) + rng.standard_normal((100, 64))))
    mine(*pairs[0], hidden=(8,), iters=1)  # warm-up: torch.optim's first use imports torch._dynamo (~2 s)
    for hidden in ((400, 400, 400), (64, 64, 64)):
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


class BenchDT(nn.Module):
    """A Decision-Transformer-shaped wrapper (tokens R̂, s, a) around a GPT2Model body."""

    def __init__(self, n_layer: int, n_embd: int, state_dim: int = 11, act_dim: int = 3) -> None:
        super().__init__()
        cfg = GPT2Config(vocab_size=1, n_embd=n_embd, n_layer=n_layer, n_head=1, n_positions=64,
                         resid_pdrop=0.2, embd_pdrop=0.1, attn_pdrop=0.1, activation_function="relu",
                         bos_token_id=0, eos_token_id=0, attn_implementation="eager")
        self.transformer = GPT2Model(cfg)
        self.transformer.wpe.weight.requires_grad_(False)  # a DT has no position embedding (time embedding instead)
        self.embed_return, self.embed_state = nn.Linear(1, n_embd), nn.Linear(state_dim, n_embd)
        self.embed_action, self.embed_timestep = nn.Linear(act_dim, n_embd), nn.Embedding(1000, n_embd)
        self.embed_ln, self.predict_action = nn.LayerNorm(n_embd), nn.Linear(n_embd, act_dim)

    def forward(self, states, actions, returns_to_go, timesteps, attention_mask):
        b, k, _ = states.shape
        t = self.embed_timestep(timesteps)
        tokens = torch.stack([self.embed_return(returns_to_go) + t, self.embed_state(states) + t,
                              self.embed_action(actions) + t], dim=2).reshape(b, 3 * k, -1)  # [B, 3K, d]
        mask = attention_mask.repeat_interleave(3, dim=1)  # [B, 3K]
        h = self.transformer(inputs_embeds=self.embed_ln(tokens), attention_mask=mask).last_hidden_state
        return torch.tanh(self.predict_action(h.reshape(b, k, 3, -1)[:, :, 1]))  # [B, K, A] from s_t


def action_loss(model, batch: dict) -> torch.Tensor:
    pred = model(batch["states"], batch["actions"], batch["rtg"], batch["timesteps"], batch["mask"])
    m = batch["mask"].unsqueeze(-1)
    return ((pred - batch["actions"]) ** 2 * m).sum() / (m.sum() * pred.shape[-1])


def bench_gradients(samples: int, width: int) -> None:
    torch.manual_seed(0)
    model = BenchDT(n_layer=12, n_embd=width)
    k = 20
    mask = torch.ones(samples, k)
    mask[: samples // 4, :5] = 0
    batch = {"states": torch.randn(samples, k, 11), "actions": torch.rand(samples, k, 3) * 2 - 1,
             "rtg": torch.randn(samples, k, 1), "timesteps": torch.randint(0, 1000, (samples, k)), "mask": mask}
    per_sample_gradients(model, {key: v[:2] for key, v in batch.items()}, action_loss)  # warm-up
    for train_mode in (True, False):
        start = time.perf_counter()
        loop = per_sample_gradients_loop(model, batch, action_loss, train_mode=train_mode)
        t_loop = time.perf_counter() - start
        start = time.perf_counter()
        fast = per_sample_gradients(model, batch, action_loss, train_mode=train_mode)
        t_fast = time.perf_counter() - start
        rel = float((fast - loop).abs().max() / loop.abs().max())
        check = "" if train_mode else f"; max relative difference {rel:.1e}"
        report(f"per-sample gradients, 12 blocks x width {width}, {samples} samples, dropout "
               f"{'on ' if train_mode else 'off'}", t_loop, t_fast, f"   ([{fast.shape[0]}, {fast.shape[1]}]{check})")


def main() -> None:
    args = parse_args()
    print(f"dtcore.metrics benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s)", flush=True)
    bench_cka(args.cka_rows)
    bench_mine(args.mine_estimators, args.mine_iters)
    bench_gradients(args.grad_samples, args.grad_width)


if __name__ == "__main__":
    main()
