"""Milliseconds per training step on this CPU: fp32 eager vs bf16 autocast vs torch.compile vs the CPU kernels.

The real :func:`dtcore.train.train_step` (forward, masked MSE, backward, clip 0.25, AdamW,
warm-up) at batch 64, K = 20 and K = 1, on the bodies the mini profile could use:

* random: 4 layers, width 64, 1 head, ReLU (the paper's random-init recipe, scaled down);
* language-like: 4 layers, width 64, 4 heads, gelu_new (a small GPT-2);
* image-like: 8 layers, width 48, 4 heads, quick_gelu (a small ImageGPT carried into GPT-2);

with 1 and with 2 torch threads, side by side in one process: the cases of a row are timed in
interleaved rounds, each ratio to fp32 is taken within a round (so load from other processes and
the VM's drift hit both sides alike) and printed as the median over the rounds with its 95 %
order-statistic interval (:func:`dtcore.statistics.median_interval`; 6 rounds at least). The
thread-scaling lines compare rows timed one after the other: ratios of medians, no interval.
Weights are random: only sizes, heads and activations matter for speed. Then the paper's GPT-2
size (12 x 768, 12 heads) for a few steps. Prints a table and the ratios; ``--json`` saves it.

    python bench/train_step.py                 # the full table (compile takes minutes per body)
    python bench/train_step.py --quick         # seconds: tiny steps, no compile, no paper size
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dtcore import kernels  # noqa: E402
from dtcore.config import EvalConfig, ExperimentConfig, ModelConfig, TrainConfig  # noqa: E402
from dtcore.data import OfflineDataset  # noqa: E402
from dtcore.samplers import BatchSampler  # noqa: E402
from dtcore.model import build_model  # noqa: E402
from dtcore.profiles import MINI  # noqa: E402
from dtcore.statistics import median_interval  # noqa: E402
from dtcore.train import make_optimizer, make_scheduler, train_step  # noqa: E402

BODIES = {  # name: (n_layer, n_embd, n_head, activation)
    "random 4x64 h1 relu": (4, 64, 1, "relu"),
    "language 4x64 h4 gelu_new": (4, 64, 4, "gelu_new"),
    "image 8x48 h4 quick_gelu": (8, 48, 4, "quick_gelu"),
}
PAPER_BODY = ("paper GPT-2 12x768 h12 gelu_new", (12, 768, 12, "gelu_new"))
S, A = 11, 3  # hopper


def dataset(seed: int = 0) -> OfflineDataset:
    rng = np.random.default_rng(seed)
    trajectories = []
    for i in range(40):
        T = 150 + 5 * i
        obs = rng.standard_normal((T + 1, S)).astype(np.float32)
        trajectories.append({"observations": obs[:-1], "next_observations": obs[1:],
                             "actions": rng.uniform(-1, 1, (T, A)).astype(np.float32),
                             "rewards": rng.uniform(0, 3, T).astype(np.float32),
                             "terminals": np.zeros(T, dtype=bool), "timeouts": np.zeros(T, dtype=bool)})
    return OfflineDataset(trajectories=trajectories, source="bench", label="synthetic")


def experiment(body: tuple, K: int, batch: int, kernels: str = "reference") -> ExperimentConfig:
    """A bench run's config; the cpu kernels draw their lanes as the mini profile does."""
    n_layer, n_embd, n_head, act = body
    model = ModelConfig(backbone="random", state_dim=S, act_dim=A, n_layer=n_layer, n_embd=n_embd,
                        n_head=n_head, activation=act, seed=0)
    lanes = MINI.train.lanes if kernels.startswith("cpu") else "torch"
    return ExperimentConfig(env="hopper", variant="K20", model=model,
                            train=TrainConfig(context=K, batch_size=batch, kernels=kernels, lanes=lanes),
                            eval=EvalConfig(env="hopper", targets=(3600.0,)), dataset="bench")


class Case:
    """One (body, K, mode): its model, optimiser and sampler, stepped by :meth:`run`. Modes:
    ``fp32``, ``bf16``, ``compile`` (fp32 compiled) on the reference kernels, ``cpu`` (fp32 on
    :mod:`dtcore.kernels`' CPU kernels, swapped in for the case's lifetime as ``train`` does) and
    ``cpu-torch`` (the same functions all in plain torch: no C kernel), ``builtin-eager`` and
    ``builtin-sdpa`` (``kernels="builtin"``: fused AdamW, ``gelu_pytorch_tanh``, torch's own dropout,
    with eager or SDPA attention)."""

    def __init__(self, data: OfflineDataset, body: tuple, K: int, batch: int, mode: str):
        kind = mode if mode.startswith("cpu") else "builtin" if mode.startswith("builtin") else "reference"
        cfg = experiment(body, K, batch, kernels=kind)
        self.model = build_model(cfg.model)
        self.swap = kernels.swapped(self.model.transformer, cfg.train.kernels, lanes=cfg.train.lanes,
                                    attention=mode.split("-")[1] if kind == "builtin" else kernels.BUILTIN_ATTENTION)
        self.swap.__enter__()                      # held while the case lives
        self.opt = make_optimizer(self.model, cfg)
        self.sched = make_scheduler(self.opt, cfg.train.warmup_steps)
        self.sampler = BatchSampler(data, K, batch, seed=0)
        self.precision = "bf16" if mode.startswith("bf16") else "fp32"
        self.forward = torch.compile(self.model) if "compile" in mode else None

    def run(self, steps: int) -> float:
        """Mean ms per step over ``steps`` steps (the loss read at the end waits for them)."""
        start = time.perf_counter()
        for _ in range(steps):
            loss = train_step(self.model, self.sampler.sample(), self.opt, self.sched, grad_clip=0.25,
                              precision=self.precision, forward=self.forward)
        float(loss)
        return (time.perf_counter() - start) * 1000 / steps


def measure(data, body, K, batch, modes, warmup, rounds, steps) -> dict[str, dict]:
    cases, out = {}, {}
    for mode in modes:
        t = time.perf_counter()
        cases[mode] = Case(data, body, K, batch, mode)
        cases[mode].run(warmup)  # compiles on the first call for "compile"
        out[mode] = {"warmup_s": time.perf_counter() - t, "ms": []}
    for _ in range(rounds):
        for mode in modes:
            out[mode]["ms"].append(cases[mode].run(steps))
    for mode in modes:
        out[mode]["median_ms"] = statistics.median(out[mode]["ms"])
        # paired within each round, against the fp32 step of the same round (drift cancels)
        out[mode]["ratio"] = median_interval([m / f for m, f in zip(out[mode]["ms"], out["fp32"]["ms"])])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    p.add_argument("--contexts", default="20,1")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=6, help="interleaved rounds (6: the fewest with a 95 %% interval)")
    p.add_argument("--steps", type=int, default=5, help="steps per timed round")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--compile-contexts", default="20", help="contexts for which compile is timed")
    p.add_argument("--paper-steps", type=int, default=2, help="timed steps of the paper size (0 = skip)")
    p.add_argument("--paper-threads", default="2")
    p.add_argument("--quick", action="store_true", help="tiny run for tests: no compile, no paper size")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup, args.batch, args.paper_steps = 6, 1, 1, 8, 0
        args.no_compile, args.threads = True, "1"
    data = dataset()
    results = []
    print(f"torch {torch.__version__}; batch {args.batch}; {args.rounds} interleaved rounds x {args.steps} steps: "
          f"ms are medians; ratios are medians of each round's own (95 % interval)")
    print("| threads | body | K | fp32 ms | bf16 ms | compile ms | cpu kernels ms | bf16/fp32 | compile/fp32 | "
          "cpu kernels/fp32 | compile warm-up s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for name, body in BODIES.items():
            for K in (int(k) for k in args.contexts.split(",")):
                modes = ["fp32", "bf16", "cpu"]
                if not args.no_compile and str(K) in args.compile_contexts.split(","):
                    modes.append("compile")
                r = measure(data, body, K, args.batch, modes, args.warmup, args.rounds, args.steps)
                results.append({"threads": threads, "body": name, "K": K, **r})
                print(_row(threads, name, K, r), flush=True)
    if args.paper_steps > 0:
        name, body = PAPER_BODY
        for threads in (int(t) for t in args.paper_threads.split(",")):
            torch.set_num_threads(threads)
            r = measure(data, body, 20, args.batch, ["fp32", "bf16"], 1, 1, args.paper_steps)
            results.append({"threads": threads, "body": name, "K": 20, **r})
            print(_row(threads, name, 20, r), flush=True)
    print()
    _thread_ratios(results)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=dataclasses.asdict)


def _row(threads: int, name: str, K: int, r: dict) -> str:
    cells = [f"{r[m]['median_ms']:.1f}" if m in r else "-" for m in ("fp32", "bf16", "compile", "cpu")]
    ratios = [f"{r[m]['ratio']:.2f}" if m in r else "-" for m in ("bf16", "compile", "cpu")]
    warm = f"{r['compile']['warmup_s']:.0f}" if "compile" in r else "-"
    return f"| {threads} | {name} | {K} | " + " | ".join(cells + ratios + [warm]) + " |"


def _thread_ratios(results: list[dict]) -> None:
    by = {(r["threads"], r["body"], r["K"]): r for r in results}
    lines = []
    for (threads, body, K), r in by.items():
        one = by.get((1, body, K))
        if threads == 2 and one is not None:
            lines.append(f"  {body}, K={K}: fp32 1 thread / 2 threads = "
                         f"{one['fp32']['median_ms'] / r['fp32']['median_ms']:.2f}")
    if lines:
        print("thread scaling (higher = 2 threads faster):")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
