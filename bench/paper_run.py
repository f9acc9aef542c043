"""Benchmark (issue 9): one full paper run, fast path against the published procedure, side by side.

Both paths run in this process on the same device, the same model size, the same seeds:

* training at batch 64, K = 20 (docs/spec.md §4), the real :func:`dtcore.train.train_step`:
  - fast: bf16 autocast (fp32 master weights and optimiser state), SDPA attention, AdamW fused on
    CUDA (:func:`dtcore.train.make_optimizer`), ``torch.compile`` with ``--compile``, the dataset
    held on the device and every batch drawn there (:class:`dtcore.samplers.DeviceBatchSampler`,
    ``TrainConfig.sampler="device"``: the same windows and sampling distribution as the numpy
    sampler, another random stream), losses kept on the device and read once per timed window
    (what :func:`dtcore.train.train` does with ``sampler="device"``): no host synchronisation
    inside the step loop;
  - published: fp32, eager attention, plain AdamW (``fused=False, foreach=False``: the
    single-tensor loop of the torch 1.x the paper ran), batches drawn in numpy on the host
    (:class:`dtcore.samplers.BatchSampler`, ``sampler="host"``), a blocking batch copy and the loss
    read with ``.item()`` after every step (``seq_trainer.py``);
* evaluation (docs/spec.md §5.1): every episode of both hopper targets as one batched vector of
  environments (one forward per step; ``--eval-bf16`` autocasts it) against sequential batch-1
  episodes in fp32 eager, on the same weights; then the check: a batched fp32 eager rollout of the
  sequential path's episodes (same seeds) gives bit-identical returns on a CPU; on a GPU they agree
  to rounding only (H100: 1.2e-6), as cuBLAS chooses its kernels by the batch size;
* the projected wall time of one full paper run, 40 epochs x 2500 steps + 40 evaluations of
  100 episodes per target x 2 targets, per path, and the ratios published / fast.

FLOPs per training step (docs/spec.md §9: forward 2 N T plus attention, backward = 2 x forward):

    6 * N_matmul * T  +  3 * n_layer * B * 4 * (3K)^2 * d,      T = B * 3K tokens

with N_matmul the weights of the body's matrix products (12 d^2 per block); the embeddings and the
action head are left out (negligible). MFU = FLOPs per step x steps/s / peak: the bf16 dense peak
for the fast path, the fp32 (non-tensor-core) peak for the published one (TF32 stays off, torch's
default). Known GPUs have their peaks built in; elsewhere give ``--peak-tflops``, else n/a.

Weights are random (GPT-2 initialisation, no hub access) and the data is a synthetic hopper set
made in memory: speed depends on sizes only. Random-init policies end hopper episodes early, so
the evaluation projection is given twice: at the measured episode lengths, and scaled to
1000-step episodes (sequential time grows with env steps, batched time with forwards).

    python bench/paper_run.py                                  # CUDA: --size paper; CPU: --size smoke
    python bench/paper_run.py --size paper --compile --json paper_run.json
    python bench/paper_run.py --size paper --compile --profile 10     # and where the fast step's time goes
    python bench/paper_run.py --size smoke --steps 5 --episodes 2 --max-steps 10
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from dtcore.config import EvalConfig, ExperimentConfig, adam_eps, fast_procedure, published_procedure  # noqa: E402
from dtcore.data import OfflineDataset  # noqa: E402
from dtcore.samplers import BatchSampler, DeviceBatchSampler, WindowSampler  # noqa: E402
from dtcore.envs import env_spec  # noqa: E402
from dtcore.envworkers import default_workers  # noqa: E402
from dtcore.evaluate import EvalResult, evaluate  # noqa: E402
from dtcore.model import build_model  # noqa: E402
from dtcore.profiles import PAPER, experiment  # noqa: E402
from dtcore.seeding import seed_everything  # noqa: E402
from dtcore.train import _to_device, make_optimizer, make_scheduler, train_step  # noqa: E402

ENV = "hopper"
SIZES = {"smoke": (2, 32), "mini": (4, 64), "paper": (12, 768)}  # (n_layer, n_embd)
# One full paper run (Table 3, spec §5.1): 40 epochs x 2500 steps, 40 evaluations x 2 targets x 100.
RUN_EPOCHS, RUN_STEPS_PER_EPOCH, RUN_EPISODES, FULL_EPISODE_STEPS = 40, 2500, 2 * 100, 1000
# Dense peaks in TFLOP/s (bf16 tensor core, fp32 non-tensor core) from the vendors' data sheets (SXM).
PEAKS_TFLOPS = {"H200": (989.0, 67.0), "H100": (989.0, 67.0), "A100": (312.0, 19.5)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=tuple(SIZES), default="paper" if cuda else "smoke")
    p.add_argument("--arch", choices=("random", "gpt2"), default="random",
                   help="random: the paper's random-init body (1 head, ReLU, Table 3); "
                        "gpt2: GPT-2's own heads (d/64) and gelu_new, random weights")
    p.add_argument("--device", default="cuda" if cuda else "cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--context", type=int, default=20)
    p.add_argument("--steps", type=int, default=None, help="timed training steps per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved timed rounds; the median is kept")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, kernels)")
    p.add_argument("--compile", action="store_true", help="torch.compile the fast path's forward")
    p.add_argument("--episodes", type=int, default=None, help="batched episodes per target")
    p.add_argument("--seq-episodes", type=int, default=None,
                   help="sequential episodes per target (the first of the batched seeds)")
    p.add_argument("--max-steps", type=int, default=None, help="episode cap")
    p.add_argument("--workers", type=int, default=None, help="env processes of the batched rollout")
    p.add_argument("--eval-bf16", action="store_true", help="bf16 autocast in the fast rollout")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak of the fast path's precision")
    p.add_argument("--peak-fp32-tflops", type=float, default=None,
                   help="peak of the published path (default: --peak-tflops)")
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="after the timings, torch.profiler over STEPS fast-path steps: the top operators, "
                        "operator calls per step and, on a GPU, the device's busy time per step")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args(argv)
    paper = args.size == "paper"
    defaults = {"steps": 20 if paper else 10, "episodes": 100 if paper else 2, "max_steps": 1000 if paper else 20}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.seq_episodes is None:
        args.seq_episodes = min(args.episodes, 10)
    if args.workers is None:
        args.workers = default_workers(args.device, 2 * args.episodes)
    if not 1 <= args.seq_episodes <= args.episodes:
        p.error(f"--seq-episodes must be in 1..--episodes ({args.episodes}), got {args.seq_episodes}")
    return args


# -- model, data, FLOPs --------------------------------------------------------------------------


def synthetic_dataset(seed: int = 0, n: int = 40) -> OfflineDataset:
    """``n`` random hopper-sized trajectories of 150 to 345 steps (obs 11, act 3), in memory."""
    spec, rng = env_spec(ENV), np.random.default_rng(seed)
    trajectories = []
    for i in range(n):
        T = 150 + 5 * i
        obs = rng.standard_normal((T + 1, spec.state_dim)).astype(np.float32)
        trajectories.append({"observations": obs[:-1], "next_observations": obs[1:],
                             "actions": rng.uniform(-1, 1, (T, spec.act_dim)).astype(np.float32),
                             "rewards": rng.uniform(0, 3, T).astype(np.float32),
                             "terminals": np.zeros(T, dtype=bool), "timeouts": np.zeros(T, dtype=bool)})
    return OfflineDataset(trajectories=trajectories, source="memory", label="synthetic", env=ENV)


def run_config(args: argparse.Namespace, published: bool) -> ExperimentConfig:
    """The paper profile's K=20 random-body run (spec §1), resized to ``--size``, by the published
    procedure (:func:`dtcore.config.published_procedure`) or the fast path (:func:`fast_procedure`,
    the paper profile's own, with ``--compile``)."""
    cfg = experiment(PAPER, ENV, "random", 0, "K20")
    n_layer, d = SIZES[args.size]
    heads, act = (max(d // 64, 1), "gelu_new") if args.arch == "gpt2" else (cfg.model.n_head, cfg.model.activation)
    model = dataclasses.replace(cfg.model, n_layer=n_layer, n_embd=d, n_head=heads, activation=act)
    train = dataclasses.replace(cfg.train, batch_size=args.batch, context=args.context)
    cfg = dataclasses.replace(cfg, model=model, train=train)
    return published_procedure(cfg) if published else fast_procedure(cfg, compile=args.compile)


def matmul_params(model: nn.Module) -> int:
    """Weights of the body's matrix products: every 2-D weight inside the transformer blocks."""
    return sum(p.numel() for name, p in model.transformer.h.named_parameters()
               if p.ndim == 2 and name.endswith("weight"))


def flops_per_step(n_matmul: int, n_layer: int, d: int, B: int, K: int) -> float:
    """6 N T + 3 n_layer B 4 (3K)^2 d (spec §9): forward 2NT + 4 L B T_w^2 d, backward 2 x forward."""
    tokens = B * 3 * K
    return 6.0 * n_matmul * tokens + 3.0 * n_layer * B * 4 * (3 * K) ** 2 * d


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def peaks(device: torch.device, args: argparse.Namespace) -> tuple[float | None, float | None]:
    """(fast-path peak, published-path peak) in TFLOP/s: the flags, else the known GPU, else None."""
    known = next((v for k, v in PEAKS_TFLOPS.items() if k in device_name(device)), (None, None))
    fast = args.peak_tflops if args.peak_tflops is not None else (known[0] if device.type == "cuda" else None)
    published = args.peak_fp32_tflops if args.peak_fp32_tflops is not None else (
        args.peak_tflops if args.peak_tflops is not None else (known[1] if device.type == "cuda" else None))
    return fast, published


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# -- training -----------------------------------------------------------------------------------


@dataclass
class TrainPath:
    """One path's model, optimiser, schedule and batch stream, stepped a window at a time."""

    name: str
    label: str
    model: nn.Module
    forward: Callable
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    sampler: WindowSampler
    device: torch.device
    precision: str
    grad_clip: float | None
    published: bool                 # blocking batch copy and a loss read after every step

    def window(self, steps: int) -> float:
        """Seconds for ``steps`` steps, the device drained at both ends; the losses must be finite."""
        sync(self.device)
        t0 = time.perf_counter()
        if self.published:
            losses = [self._step(self.sampler.sample().to(self.device)).item() for _ in range(steps)]
        else:
            kept = torch.empty(steps, device=self.device)                      # [steps] on the device
            for i in range(steps):
                kept[i] = self._step(_to_device(self.sampler.sample(), self.device))
            losses = kept.double().cpu().tolist()                              # the window's one read
        seconds = time.perf_counter() - t0
        if not np.isfinite(losses).all():
            raise RuntimeError(f"{self.name}: non-finite training loss {losses}")
        return seconds

    def _step(self, batch) -> torch.Tensor:
        return train_step(self.model, batch, self.optimizer, self.scheduler, grad_clip=self.grad_clip,
                          precision=self.precision, forward=self.forward)


def make_path(args: argparse.Namespace, data: OfflineDataset, device: torch.device, published: bool) -> TrainPath:
    """The fast path or the published procedure, from the same seed: the same initial weights."""
    cfg = run_config(args, published)
    tc = cfg.train
    model = build_model(cfg.model).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    if published:  # torch 1.x AdamW: one tensor at a time
        optimizer = torch.optim.AdamW(params, lr=tc.lr, betas=(0.9, 0.999), eps=adam_eps(cfg.model, tc),
                                      weight_decay=tc.weight_decay, foreach=False, fused=False)
    else:
        optimizer = make_optimizer(model, cfg)
    fused = bool(optimizer.defaults.get("fused"))
    forward = torch.compile(model) if tc.compile else model
    # published: numpy batches on the host (sampler="host"); fast: dataset and draws on the device.
    kind, where = (BatchSampler, "cpu") if tc.sampler == "host" else (DeviceBatchSampler, device)
    sampler = kind(data, tc.context, tc.batch_size, tc.seed, scale=cfg.eval.scale,
                   drop_lowest_return=tc.drop_lowest_return, max_ep_len=cfg.model.max_ep_len, device=where)
    if published:
        label = ("fp32, eager attention, AdamW one tensor at a time, batches drawn on the host (numpy), "
                 "blocking copy, loss read every step")
    else:
        label = (f"bf16 autocast, SDPA, AdamW {'fused' if fused else 'not fused (CPU)'}, "
                 f"compile {'on' if args.compile else 'off'}, dataset on the device and batches drawn "
                 f"there, loss read per window")
    return TrainPath("published" if published else "fast", label, model, forward, optimizer,
                     make_scheduler(optimizer, tc.warmup_steps), sampler, device,
                     tc.precision, tc.grad_clip, published)


def time_training(paths: list[TrainPath], args: argparse.Namespace, flops: float,
                  peak: dict[str, float | None]) -> dict[str, dict]:
    """Warm up each path, then time them in interleaved rounds (load hits both alike); median."""
    out: dict[str, dict] = {}
    for path in paths:
        out[path.name] = {"label": path.label, "warmup_s": path.window(args.warmup), "round_s": []}
    for _ in range(args.rounds):
        for path in paths:
            out[path.name]["round_s"].append(path.window(args.steps))
    for path in paths:
        r = out[path.name]
        seconds = statistics.median(r["round_s"]) / args.steps
        achieved = flops / seconds / 1e12
        r.update(ms_per_step=1e3 * seconds, steps_per_s=1.0 / seconds, tflops=achieved,
                 peak_tflops=peak[path.name],
                 mfu=None if peak[path.name] is None else achieved / peak[path.name])
    return out


# -- evaluation ---------------------------------------------------------------------------------


def eval_model(args: argparse.Namespace, device: torch.device) -> nn.Module:
    """Fresh fp32 weights of the run's model (seed 0); the attention implementation is switched."""
    return build_model(run_config(args, published=False).model).to(device)


def time_evaluation(model: nn.Module, data: OfflineDataset, args: argparse.Namespace,
                    device: torch.device) -> dict:
    """Fast batched rollout vs sequential batch-1 rollout on the same weights, plus the fp32 check."""
    spec, body = env_spec(ENV), model.transformer
    base = EvalConfig(env=ENV, targets=spec.targets, episodes_per_target=args.episodes,
                      max_steps=args.max_steps)
    kw = dict(state_mean=data.state_mean, state_std=data.state_std, context=args.context, device=device)
    evaluate(model, dataclasses.replace(base, episodes_per_target=1, max_steps=2), **kw)  # MuJoCo, kernels
    amp = torch.bfloat16 if args.eval_bf16 else None
    body.set_attn_implementation("sdpa")
    fast = evaluate(model, base, workers=args.workers, amp_dtype=amp, **kw)
    body.set_attn_implementation("eager")
    seq_cfg = dataclasses.replace(base, episodes_per_target=args.seq_episodes)
    published = evaluate(model, dataclasses.replace(seq_cfg, batched=False), **kw)
    check = evaluate(model, seq_cfg, **kw)  # batched, fp32, eager: the published path's episodes
    body.set_attn_implementation("sdpa")
    n = args.seq_episodes
    return {
        "fast": _eval_figures(fast, f"batched vector of {2 * args.episodes} envs, one forward per step, "
                                    f"{'bf16' if amp else 'fp32'}, SDPA, {args.workers} env workers"),
        "published": _eval_figures(published, "sequential batch-1 episodes, fp32, eager attention"),
        "returns_identical_fp32": all(c.returns == p.returns and c.lengths == p.lengths
                                      for c, p in zip(check.results, published.results)),
        "max_abs_return_diff_fp32_check": _max_diff(check, published, n),
        "max_abs_return_diff_fast_vs_published": _max_diff(fast, published, n),
    }


def _eval_figures(res: EvalResult, label: str) -> dict:
    episodes = sum(len(r.returns) for r in res.results)
    env_steps = sum(sum(r.lengths) for r in res.results)
    return {"label": label, "batched": res.batched, "episodes": episodes, "env_steps": env_steps,
            "forwards": res.forwards, "wall_s": res.wall_time_s, "episodes_per_s": episodes / res.wall_time_s,
            "mean_episode_length": env_steps / episodes,
            "failed": sum(r.n_failed for r in res.results)}


def _max_diff(a: EvalResult, b: EvalResult, n: int) -> float:
    """Largest |return difference| over the first ``n`` episodes (same seeds) of every target."""
    return float(max(np.max(np.abs(np.subtract(x.returns[:n], y.returns[:n])))
                     for x, y in zip(a.results, b.results)))


# -- profile ------------------------------------------------------------------------------------


def profile_fast(path: TrainPath, steps: int) -> dict:
    """torch.profiler over ``steps`` steps of a warm path: its top operators by self time on the
    device (on a GPU) or the host, operator calls per step, and on a GPU the time the device was
    busy per step (the sum of its kernels' and copies' times) against the wall time per step: a
    step far from its busy time is bound by launches and host work, not by the GPU."""
    from torch.profiler import ProfilerActivity, profile

    cuda = path.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        seconds = path.window(steps)
    events = prof.key_averages()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    busy_us = sum(e.self_device_time_total for e in events if e.device_type.name == "CUDA") if cuda else None
    return {"steps": steps, "wall_ms_per_step": 1e3 * seconds / steps,
            "busy_ms_per_step": None if busy_us is None else busy_us / 1e3 / steps,
            "ops_per_step": sum(e.count for e in events if e.device_type.name == "CPU") / steps,
            "sorted_by": key, "table": events.table(sort_by=key, row_limit=15)}


def print_profile(pr: dict) -> None:
    busy = "" if pr["busy_ms_per_step"] is None else (
        f"; the device was busy {pr['busy_ms_per_step']:.2f} ms of them "
        f"({pr['busy_ms_per_step'] / pr['wall_ms_per_step']:.0%})")
    print(f"\nprofile of the fast path over {pr['steps']} steps: {pr['wall_ms_per_step']:.2f} ms a step{busy}; "
          f"{pr['ops_per_step']:.0f} operator calls a step; top operators by {pr['sorted_by']}:")
    print(pr["table"])


# -- projection ---------------------------------------------------------------------------------


def project(train: dict, ev: dict) -> dict:
    """Wall time of one full paper run for one path: warm-up + 40 x 2500 steps + 40 evaluations.

    ``eval_s``: 200 episodes per evaluation at the measured episodes/s (measured lengths);
    ``eval_full_s``: at 1000-step episodes, sequential scaled by env steps, batched by forwards
    (and linearly in the number of episodes when fewer than 200 were measured).
    """
    train_s = RUN_EPOCHS * RUN_STEPS_PER_EPOCH / train["steps_per_s"]
    per_eval = RUN_EPISODES / ev["episodes_per_s"]
    if ev["batched"]:
        per_eval_full = RUN_EPISODES / ev["episodes"] * ev["wall_s"] * FULL_EPISODE_STEPS / ev["forwards"]
    else:
        per_eval_full = RUN_EPISODES * FULL_EPISODE_STEPS * ev["wall_s"] / ev["env_steps"]
    eval_s, eval_full_s = RUN_EPOCHS * per_eval, RUN_EPOCHS * per_eval_full
    return {"warmup_s": train["warmup_s"], "train_s": train_s, "eval_s": eval_s, "eval_full_s": eval_full_s,
            "total_s": train["warmup_s"] + train_s + eval_s,
            "total_full_s": train["warmup_s"] + train_s + eval_full_s}


def ratios(proj: dict, train: dict, ev: dict) -> dict:
    """published / fast: > 1 means the fast path is that many times faster."""
    p, f = proj["published"], proj["fast"]
    return {"train_steps_per_s": train["fast"]["steps_per_s"] / train["published"]["steps_per_s"],
            "eval_episodes_per_s": ev["fast"]["episodes_per_s"] / ev["published"]["episodes_per_s"],
            "eval_full_length": p["eval_full_s"] / f["eval_full_s"],
            "total": p["total_s"] / f["total_s"], "total_full_length": p["total_full_s"] / f["total_full_s"]}


# -- report -------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _opt(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def print_report(r: dict) -> None:
    m, ev, tr, pr, ra = r["model"], r["eval"], r["train"], r["projection"], r["ratios"]
    print(f"paper_run benchmark: device {r['device']} ({r['device_name']}), torch {r['torch']}, "
          f"{r['threads']} CPU thread(s); size {r['size']}: {r['arch']} body {m['n_layer']} x {m['n_embd']}, "
          f"{m['n_head']} head(s), {m['activation']}; batch {r['batch']}, K={r['context']}")
    print(f"FLOPs per training step = {r['flops_formula']} (spec §9) with N_matmul = {r['n_matmul']:,}, "
          f"T = {r['batch']} x {3 * r['context']} = {r['tokens_per_step']:,} tokens: {r['flops_per_step']:.3e} "
          f"(embeddings and head left out)")
    print(f"\ntraining, median of {r['rounds']} interleaved rounds x {r['steps']} steps")
    print("| path | ms/step | steps/s | TFLOP/s | peak TFLOP/s | MFU | warm-up s |\n|---|---|---|---|---|---|---|")
    for name in ("fast", "published"):
        t = tr[name]
        mfu = "n/a" if t["mfu"] is None else f"{100 * t['mfu']:.1f} %"
        print(f"| {name} | {t['ms_per_step']:.2f} | {t['steps_per_s']:.2f} | {t['tflops']:.4f} | "
              f"{_opt(t['peak_tflops'], '.1f')} | {mfu} | {t['warmup_s']:.2f} |")
    for name in ("fast", "published"):
        print(f"  {name}: {tr[name]['label']}")
    print(f"\nevaluation, {ENV} targets {r['targets']}, episodes capped at {r['max_steps']} steps")
    print("| path | episodes | env steps | forwards | wall s | episodes/s | mean length |\n"
          "|---|---|---|---|---|---|---|")
    for name in ("fast", "published"):
        e = ev[name]
        print(f"| {name} | {e['episodes']} | {e['env_steps']} | {e['forwards']} | {e['wall_s']:.3f} | "
              f"{e['episodes_per_s']:.2f} | {e['mean_episode_length']:.1f} |")
    for name in ("fast", "published"):
        print(f"  {name}: {ev[name]['label']}")
    print(f"returns identical in fp32 (batched vs sequential, eager, same seeds and weights): "
          f"{ev['returns_identical_fp32']} (max |diff| {ev['max_abs_return_diff_fp32_check']:.2e}); "
          f"fast vs published max |diff| {ev['max_abs_return_diff_fast_vs_published']:.2e}")
    print(f"\nprojected full paper run: {RUN_EPOCHS} epochs x {RUN_STEPS_PER_EPOCH} steps + {RUN_EPOCHS} "
          f"evaluations x {RUN_EPISODES} episodes (2 targets x 100)")
    print("| path | warm-up | training | evaluation | total | evaluation, 1000-step episodes | "
          "total, 1000-step episodes |\n|---|---|---|---|---|---|---|")
    for name in ("fast", "published"):
        p = pr[name]
        print(f"| {name} | " + " | ".join(_duration(p[k]) for k in (
            "warmup_s", "train_s", "eval_s", "total_s", "eval_full_s", "total_full_s")) + " |")
    print(f"ratios published / fast: training {ra['train_steps_per_s']:.2f}x, evaluation "
          f"{ra['eval_episodes_per_s']:.2f}x ({ra['eval_full_length']:.2f}x at 1000-step episodes), "
          f"total {ra['total']:.2f}x ({ra['total_full_length']:.2f}x at 1000-step episodes)")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = torch.device(args.device)
    seed_everything(0)
    data = synthetic_dataset()
    paths = [make_path(args, data, device, published=False), make_path(args, data, device, published=True)]
    mcfg = paths[0].model.cfg
    n_matmul = matmul_params(paths[0].model)
    flops = flops_per_step(n_matmul, mcfg.n_layer, mcfg.n_embd, args.batch, args.context)
    fast_peak, published_peak = peaks(device, args)
    train = time_training(paths, args, flops, {"fast": fast_peak, "published": published_peak})
    profiled = profile_fast(paths[0], args.profile) if args.profile else None
    del paths
    if device.type == "cuda":
        torch.cuda.empty_cache()
    ev = time_evaluation(eval_model(args, device), data, args, device)
    projection = {name: project(train[name], ev[name]) for name in ("fast", "published")}
    result = {
        "device": str(device), "device_name": device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "size": args.size, "arch": args.arch,
        "model": {k: getattr(mcfg, k) for k in ("n_layer", "n_embd", "n_head", "activation")},
        "batch": args.batch, "context": args.context, "steps": args.steps, "rounds": args.rounds,
        "compile": args.compile, "targets": list(env_spec(ENV).targets), "max_steps": args.max_steps,
        "flops_formula": "6 * N_matmul * T + 3 * n_layer * B * 4 * (3K)^2 * d, T = B * 3K",
        "n_matmul": n_matmul, "tokens_per_step": args.batch * 3 * args.context, "flops_per_step": flops,
        "run": {"epochs": RUN_EPOCHS, "steps_per_epoch": RUN_STEPS_PER_EPOCH,
                "evaluations": RUN_EPOCHS, "episodes_per_evaluation": RUN_EPISODES},
        "train": train, "eval": ev, "projection": projection, "ratios": ratios(projection, train, ev),
        "profile": None if profiled is None else {k: v for k, v in profiled.items() if k != "table"},
    }
    print_report(result)
    if profiled is not None:
        print_profile(profiled)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
