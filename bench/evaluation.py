"""Benchmark: batched evaluation against the published one-episode-at-a-time procedure.

Issue 4's speed target: 10 evaluation episodes run as one batch of environments with one batched
forward per step are at least 5 times faster than the same 10 episodes run one by one with a
batch-1 forward per step (docs/spec.md §5.1, the published ``evaluate_episode_rtg``). Both run side
by side in this process on the same model, seeds and device, and must give the same returns.

    python bench/evaluation.py                      # mini random body, HalfCheetah, 10 x 1000 steps
    python bench/evaluation.py --env hopper --episodes 10 --max-steps 1000 --device cuda

HalfCheetah never terminates, so every episode runs the full ``--max-steps`` and both procedures
do the same amount of physics whatever the (untrained) model does.

The two procedures run in ``--rounds`` interleaved rounds (the order alternating): the speed-up is
taken within each round, so the VM's drift hits both sides alike, and printed as the median over
the rounds with its 95 % order-statistic interval (:func:`dtcore.statistics.median_interval`; 6
rounds at least); the seconds printed are each procedure's median.

It also prints the ceiling the device puts on the ratio, measured in the same run: the forward at
batch 1 and at batch E (E episodes, a full K-step window) on the same model. Both procedures
step the same environments and build the same windows, so the whole-rollout ratio cannot exceed
E x t(batch 1) / t(batch E), the forward-only ratio.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dtcore.config import EvalConfig, ModelConfig  # noqa: E402
from dtcore.envs import env_spec  # noqa: E402
from dtcore.evaluate import evaluate  # noqa: E402
from dtcore.model import build_model  # noqa: E402
from dtcore.statistics import median_interval  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="halfcheetah")
    p.add_argument("--episodes", type=int, default=10, help="episodes of the first target")
    p.add_argument("--max-steps", type=int, default=1000)
    p.add_argument("--context", type=int, default=20)
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=64)
    p.add_argument("--n-head", type=int, default=1)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rounds", type=int, default=6,
                   help="interleaved rounds of both procedures (6: the fewest with a 95 %% interval)")
    p.add_argument("--workers", type=int, default=0, help="batched: env worker processes (0 = in-process)")
    p.add_argument("--bf16", action="store_true", help="batched: bf16 autocast forward (returns then differ)")
    return p.parse_args()


def forward_time(model, batch: int, context: int, state_dim: int, act_dim: int, device: str,
                 repeats: int = 200) -> float:
    """Seconds per inference forward on a full window of ``batch`` rows (mean of ``repeats``)."""
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(batch, context, state_dim, generator=g), torch.rand(batch, context, act_dim, generator=g),
         torch.rand(batch, context, 1, generator=g), torch.randint(0, 1000, (batch, context), generator=g),
         torch.ones(batch, context))
    x = tuple(t.to(device) for t in x)
    model.eval()
    with torch.inference_mode():
        for _ in range(10):
            model(*x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            model(*x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats


def timed(model, cfg: EvalConfig, stats, context: int, device: str, **kw):
    """(seconds, result) of one evaluation."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    result = evaluate(model, cfg, state_mean=stats[0], state_std=stats[1], context=context, device=device, **kw)
    return time.perf_counter() - t0, result


def main() -> None:
    args = parse_args()
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}")
    spec = env_spec(args.env)
    mcfg = ModelConfig(backbone="random", state_dim=spec.state_dim, act_dim=spec.act_dim,
                       n_layer=args.n_layer, n_embd=args.n_embd, n_head=args.n_head, seed=0)
    model = build_model(mcfg).to(args.device)
    rng = np.random.default_rng(0)
    stats = (rng.normal(0, 0.5, spec.state_dim), rng.uniform(0.5, 2.0, spec.state_dim))
    base = dict(env=args.env, targets=spec.targets[:1], episodes_per_target=args.episodes,
                max_steps=args.max_steps)
    # warm-up: MuJoCo model compilation, first kernels
    evaluate(model, EvalConfig(**{**base, "max_steps": 5}), state_mean=stats[0], state_std=stats[1],
             context=args.context, device=args.device)
    procedures = {
        "seq": lambda: timed(model, EvalConfig(**base, batched=False), stats, args.context, args.device),
        "bat": lambda: timed(model, EvalConfig(**base, batched=True), stats, args.context, args.device,
                             workers=args.workers, amp_dtype=torch.bfloat16 if args.bf16 else None)}
    seconds, returns, last = {"seq": [], "bat": []}, {"seq": [], "bat": []}, {}
    for i in range(args.rounds):
        for name in (("seq", "bat") if i % 2 == 0 else ("bat", "seq")):
            t, last[name] = procedures[name]()
            seconds[name].append(t)
            returns[name].append(last[name].results[0].returns)
    seq, bat = last["seq"], last["bat"]
    t_seq, t_bat = statistics.median(seconds["seq"]), statistics.median(seconds["bat"])
    speedup = median_interval([s / b for s, b in zip(seconds["seq"], seconds["bat"])])
    steps = sum(seq.results[0].lengths)
    diff = max(np.max(np.abs(np.subtract(s, b))) for s, b in zip(returns["seq"], returns["bat"]))
    dev = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"evaluation benchmark: {args.env}, {args.episodes} episodes x <= {args.max_steps} steps "
          f"({steps} env steps), random body {args.n_layer}x{args.n_embd}, {args.n_head} head(s), "
          f"K={args.context}, device {args.device} ({dev}), torch threads {torch.get_num_threads()}")
    extras = (", bf16" if args.bf16 else "") + (f", {args.workers} workers" if args.workers > 1 else "")
    for label, t, res in (("one by one (published)", t_seq, seq), (f"batched (ours{extras})", t_bat, bat)):
        print(f"  {label:<34}: {t:8.2f} s  {res.forwards:6d} forwards  {steps / t:8.0f} env steps/s")
    print(f"  speed-up: {speedup:.1f}x, the median (95 % interval; none under 6 rounds) of {args.rounds} paired "
          f"rounds (target >= 5x); max |return difference| {diff:.2e} (every round); mean return {bat.mean_return():.1f}")
    f1 = forward_time(model, 1, args.context, spec.state_dim, spec.act_dim, args.device)
    fe = forward_time(model, args.episodes, args.context, spec.state_dim, spec.act_dim, args.device)
    print(f"  forward on a full window: batch 1 {f1 * 1e3:.2f} ms, batch {args.episodes} {fe * 1e3:.2f} ms "
          f"({fe / f1:.1f}x the cost for {args.episodes}x the rows); ceiling on the speed-up = "
          f"{args.episodes} x {f1 * 1e3:.2f} / {fe * 1e3:.2f} = {args.episodes * f1 / fe:.1f}x")


if __name__ == "__main__":
    main()
