"""How much of one core a mini training step uses: its GEMM FLOP rate against the single-core
matrix-multiply rate measured in the same run, reference kernels against the CPU kernels.

For each mini body (bench/train_step.py's three, at the mini batch of 32) and K = 20 and 1, the
real :func:`dtcore.train.train_step` runs on the reference kernels and on ``kernels="cpu"``
(:mod:`dtcore.kernels`: lane dropout, attention with it, the GELUs, fused AdamW; the first three
in C kernels where they apply), and on the same CPU kernels all in plain torch (``cpu-torch``),
so the C kernels' own gain shows beside the others. Steps are counted in FLOPs by
``torch.utils.flop_counter`` on the reference kernels (every matrix product of the forward and
backward pass, attention included; the counter cannot see the C kernels, and element-wise work is
not counted, so the rate measures how much of the step's time the products get). The matmul
rate is fp32 ``a @ b`` at the step's own GEMM shapes, on one thread. Cases and the matmul probe
run in interleaved rounds, so load from other processes hits them alike; the ratios are the
result. Each ratio and share is taken within a round (the modes' steps against each other, a
step against that round's matmul rate) and printed as the median over rounds with its 95 %
order-statistic interval (``dtcore.statistics.median_interval``): this VM's speed drifts by 10 %
or more within minutes, and pairing within a round cancels most of it. Rounds are treated as
independent, so where the drift is faster than a round the interval is too narrow.

    OMP_NUM_THREADS=1 python bench/step_efficiency.py             # the table (2-4 minutes)
    python bench/step_efficiency.py --profile                     # and the top operators of each cpu step
    python bench/step_efficiency.py --quick                       # seconds: for the tests
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from dtcore.profiles import MINI  # noqa: E402
from dtcore.statistics import median_interval  # noqa: E402
from train_step import BODIES, Case, dataset  # noqa: E402

TARGET = 0.35                          # issue: a mini step at 35 % or more of the single-core matmul rate
MINI_BATCH = MINI.train.batch_size     # the mini profile's windows per step
MODES = ("fp32", "cpu-torch", "cpu")   # reference kernels; CPU kernels in plain torch; CPU kernels with C
ROUNDS, STEPS = 30, 2                  # many short interleaved rounds: this VM's speed drifts within minutes


def matmul_rate(tokens: int, width: int, repeats: int) -> float:
    """Median GFLOP/s of fp32 products at a step's shapes: [tokens, d] x [d, 4d] and back."""
    shapes = [((tokens, width), (width, 4 * width)), ((tokens, 4 * width), (4 * width, width)),
              ((tokens, width), (width, 3 * width))]
    rates = []
    for (m, k), (_, n) in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        rates.append(2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def step_flops(case: Case) -> int:
    """FLOPs of one training step's matrix products (forward and backward)."""
    with FlopCounterMode(display=False) as counter:
        case.run(1)
    return counter.get_total_flops()


def measure(data, body: tuple, K: int, batch: int, rounds: int, steps: int, repeats: int) -> dict:
    cases = {mode: Case(data, body, K, batch, mode) for mode in MODES}
    flops = step_flops(cases["fp32"])
    for case in cases.values():
        case.run(2)                                             # warm-up
    ms = {mode: [] for mode in cases}
    rates = []
    for _ in range(rounds):
        for mode, case in cases.items():
            ms[mode].append(case.run(steps))
        rates.append(matmul_rate(batch * 3 * K, body[1], repeats))
    out = {"flops": flops, "matmul_gflops": statistics.median(rates)}
    for mode in cases:
        t = statistics.median(ms[mode])
        shares = [flops / m / 1e6 / rate for m, rate in zip(ms[mode], rates)]      # each round's own rate
        out[mode] = {"ms": t, "gflops": flops / t / 1e6, "share": median_interval(shares)}
    for name, slow in (("speedup", "fp32"), ("c_speedup", "cpu-torch")):          # paired within each round
        out[name] = median_interval([a / b for a, b in zip(ms[slow], ms["cpu"])])
    return out


def top_ops(data, body: tuple, K: int, batch: int, steps: int, rows: int = 12) -> str:
    """The profile of a cpu-kernel step: the operators that take its time."""
    from torch.profiler import ProfilerActivity, profile

    case = Case(data, body, K, batch, "cpu")
    case.run(2)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        case.run(steps)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds (short ones: this VM's speed drifts)")
    p.add_argument("--steps", type=int, default=STEPS, help="steps per timed round")
    p.add_argument("--contexts", default="20,1")
    p.add_argument("--profile", action="store_true", help="print the top operators of each cpu step")
    p.add_argument("--quick", action="store_true", help="tiny run for tests")
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args()
    torch.set_num_threads(1)
    batch, repeats = MINI_BATCH, 20
    if args.quick:
        args.rounds, args.steps, batch, repeats = 6, 1, 4, 2          # 6 rounds: the fewest with a 95 % interval
    data = dataset()
    print(f"torch {torch.__version__}, 1 thread, batch {batch}; {args.rounds} interleaved rounds x {args.steps} "
          f"steps: ms are medians; ratios and shares are medians of each round's own (95 % interval)")
    print("| body | K | GFLOP/step | matmul GFLOP/s | reference ms | cpu, plain torch ms | cpu ms | "
          "C kernels' speed-up | speed-up | reference share | cpu, plain torch share | cpu share |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    results = []
    for name, body in BODIES.items():
        for K in (int(k) for k in args.contexts.split(",")):
            r = measure(data, body, K, batch, args.rounds, args.steps, repeats)
            results.append({"body": name, "K": K, **r})
            print(f"| {name} | {K} | {r['flops'] / 1e9:.2f} | {r['matmul_gflops']:.0f} | {r['fp32']['ms']:.1f} | "
                  f"{r['cpu-torch']['ms']:.1f} | {r['cpu']['ms']:.1f} | {r['c_speedup']:.2f} | "
                  f"{r['speedup']:.2f} | {r['fp32']['share']:.0%} | "
                  f"{r['cpu-torch']['share']:.0%} | {r['cpu']['share']:.0%} |", flush=True)
            if args.profile:
                print(top_ops(data, body, K, batch, args.steps))
    k20 = [r for r in results if r["K"] == 20]
    if k20:
        print(f"\nK = 20 steps at or above {TARGET:.0%} of the matmul rate (cpu kernels): "
              f"{sum(r['cpu']['share'].value >= TARGET for r in k20)} of {len(k20)} by the median, "
              f"{sum(r['cpu']['share'].low >= TARGET for r in k20)} of {len(k20)} with the whole 95 % interval; "
              + ", ".join(f"{r['body'].split()[0]} {r['cpu']['share']:.0%}" for r in k20))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1, default=dataclasses.asdict)


if __name__ == "__main__":
    main()
