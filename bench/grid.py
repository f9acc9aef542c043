"""Wall time of a cold mini grid build, earlier code projected beside it, and a cached claims re-run.

The build is measured, the code before the CPU kernels projected from side-by-side ratios, and
the claims re-run from the cache timed against the cold one.

1. **Cold build.** A fresh cache whose ``assets`` folder links to the ready assets of your cache
   (``DTCORE_CACHE``, default ``~/.cache/dtcore``: datasets and bodies, so only runs are built;
   ``python -m dtcore data build --envs hopper`` readies them),
   then :func:`dtcore.build.build_grid` over the selection with ``--workers`` processes: the wall
   time, the sum of the runs' seconds, and how busy the workers were (sum / workers x wall).
2. **Today's code, projected.** The reference kernels and every target evaluated each epoch are
   what main ran before the CPU kernels (``kernels="reference"``, ``eval_every_target=True``).
   Measured side by side here, in interleaved rounds: a training step of each body and context on
   both kernels (bench/step_efficiency.py's cases), and one evaluation of a built run with one
   target and with all. Each run's logged training and evaluation seconds are scaled by its
   ratios; the wall time scales with the sum. The same way, from the same rounds: the grid with
   the CPU kernels in plain torch (no C kernels; training seconds scaled, evaluation as logged).
3. **Floor.** What the same runs would take if every training step ran at 100 % of the
   single-core matmul rate measured now at the step's shapes (bench/step_efficiency.py's FLOP
   count and rate), evaluation as logged, on perfectly packed workers: no build of these runs
   with this evaluation can be faster here. From it, the share of the matmul rate that the
   training steps would need to build the grid in ``--target-min`` minutes (issue 17: 30),
   beside the share they had.
4. **Claims** (``--claims``): ``dtcore claims`` over the same selection twice: once with cold
   analyses on the grid just built, then again with everything cached. The cold cost of a claims
   run is the build plus the first claims run; the printed ratio is cached / cold (target 1/20).

5. **Routes** (``--routes``, builds nothing): the training routes side by side in interleaved
   rounds, per body and context of the grid (:data:`ROUTES`: the reference modules; (a) the C
   kernels with SplitMix64 lanes; (b) the same functions in plain torch; (c) the builtin route,
   with eager and with SDPA attention), then the selected grid projected from them: each kind's
   planned training steps x its median step, evaluation as in the last build for every route, on
   perfectly packed workers; each route's grid time over (a)'s with its 95 % interval, and the
   1.25x rule for the C kernels against the best built-in route (issue 29).

    python bench/grid.py --envs hopper --seeds 0-4 --claims      # 40 min to 1.5 h on 2 cores, by VM
    python bench/grid.py --routes --envs hopper --seeds 0-4      # step 5 alone: about 5 min
    python bench/grid.py --envs hopper --seeds 0 --quick         # the smoke profile, seconds
    python bench/grid.py --seeds 0-9 --workers 8 --build-only    # step 1 alone (bench/gpu_run.sh)
    python bench/grid.py --built ~/.cache/dtcore                   # steps 2-3 on runs built earlier

Runs train on the GPU where there is one (:class:`dtcore.runs.RunStore`'s default device).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # no per-load reports in the timing log

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

# Imported before the build, not after it: the projection then runs the code the build started
# with, even when a commit lands during the build.
import torch  # noqa: E402
from step_efficiency import MINI_BATCH, ROUNDS, STEPS, matmul_rate, measure, step_flops  # noqa: E402
from train_step import BODIES, Case, dataset  # noqa: E402

from dtcore.bodies import get_body  # noqa: E402
from dtcore.build import build_grid  # noqa: E402
from dtcore.envs import env_spec  # noqa: E402
from dtcore.evaluate import evaluate  # noqa: E402
from dtcore.grid import Selection, parse_envs, parse_seeds  # noqa: E402
from dtcore.profiles import experiment, get_profile  # noqa: E402
from dtcore.statistics import median_interval  # noqa: E402
from dtcore.provenance import device_name  # noqa: E402
from dtcore.runs import RunStore  # noqa: E402

BODY_OF = {"gpt2": "language 4x64 h4 gelu_new", "igpt": "image 8x48 h4 quick_gelu", "random": "random 4x64 h1 relu"}


def fresh_cache(root: Path | None) -> Path:
    """A new cache folder whose ``assets`` is a link to the ready assets of the user's cache."""
    ready = Path(os.environ.get("DTCORE_CACHE", Path.home() / ".cache" / "dtcore")).expanduser() / "assets"
    cache = Path(tempfile.mkdtemp(prefix="dtclaims-grid-", dir=root))
    if ready.is_dir():
        (cache / "assets").symlink_to(ready, target_is_directory=True)
    else:
        print(f"no ready assets in {ready}: the build below also collects the datasets "
              "(python -m dtcore data build readies them)", flush=True)
    return cache


def run_logs(cache: Path) -> dict[str, dict]:
    """Run folder name -> its log.json (training and evaluation seconds per epoch)."""
    out = {}
    for log in sorted((cache / "runs").glob("*/log.json")):
        out[log.parent.name] = json.loads(log.read_text())
    return out


def step_ratios(kinds: set[tuple[str, int]], quick: bool) -> dict[tuple[str, int], tuple[float, float]]:
    """Step-time ratios of each (backbone, K), side by side: (reference / cpu kernels, cpu kernels
    in plain torch / with their C kernels), each the median of bench/step_efficiency.py's per-round
    ratios (one round of one step with ``quick``)."""
    torch.set_num_threads(1)
    rounds, steps = (1, 1) if quick else (ROUNDS, STEPS)
    data, out = dataset(), {}
    for backbone, K in sorted(kinds):
        r = measure(data, BODIES[BODY_OF[backbone]], K, MINI_BATCH, rounds, steps, repeats=5)
        out[(backbone, K)] = (r["speedup"].value, r["c_speedup"].value)
    return out


def eval_ratio(profile: str, env: str, seed: int, rounds: int) -> float:
    """Seconds of one evaluation with every target / with the reported one, on a built K20 run: the
    median of the ratios within each of ``rounds`` rounds."""
    torch.set_num_threads(1)
    store = RunStore(profile, Selection.of(get_profile(profile), [env], [seed]), progress=False)
    run = store.run(next(s for s in store.selection.specs() if s.seed == seed and s.variant == "K20"))
    model, data = run.model(), run.dataset
    configs = {n: dataclasses.replace(run.config.eval, targets=t)
               for n, t in (("all", env_spec(env).targets), ("reported", env_spec(env).targets[:1]))}
    ratios = []
    for _ in range(rounds):
        seconds = {}
        for name, cfg in configs.items():
            start = time.perf_counter()
            evaluate(model, cfg, state_mean=data.state_mean, state_std=data.state_std,
                     context=run.config.train.context)
            seconds[name] = time.perf_counter() - start
        ratios.append(seconds["all"] / seconds["reported"])
    return statistics.median(ratios)


def step_floor(shapes: set[tuple], repeats: int) -> dict[tuple, float]:
    """Seconds per training step at 100 % of the matmul rate, per (n_layer, n_embd, n_head, K,
    batch): the step's matrix-product FLOPs over fp32 ``a @ b`` at its shapes (the activation
    changes neither, so the cases use ReLU)."""
    torch.set_num_threads(1)
    data, out = dataset(), {}
    for shape in sorted(shapes):
        n_layer, n_embd, n_head, K, batch = shape
        case = Case(data, (n_layer, n_embd, n_head, "relu"), K, batch, "fp32")   # the counter cannot see C kernels
        out[shape] = step_flops(case) / (matmul_rate(batch * 3 * K, n_embd, repeats) * 1e9)
    return out


def step_shape(log: dict, profile: str) -> tuple:
    """(n_layer, n_embd, n_head, K, batch) of a run. A gpt2 or igpt run's body is the profile's
    pretrained one (its logged ModelConfig keeps the random body's sizes; the weights set them);
    every other run's, block runs included, is the random body."""
    cfg, prof = log["config"], get_profile(profile)
    backbone = cfg["model"]["backbone"]
    body = prof.weights_recipe(prof.weights_of(backbone))[0] if get_body(backbone).pretrained else prof.random_body
    return body.n_layer, body.n_embd, body.n_head, int(cfg["train"]["context"]), int(cfg["train"]["batch_size"])


def kind(log: dict) -> tuple[str, int]:
    cfg = log["config"]
    return cfg["model"]["backbone"], int(cfg["train"]["context"])


def claims(cache: Path, profile: str, envs: str, seeds: str, workers: int) -> float:
    env = dict(os.environ, DTCORE_CACHE=str(cache))
    cmd = [sys.executable, "-m", "dtcore", "claims", "--profile", profile, "--envs", envs, "--seeds", seeds,
           "--workers", str(workers), "--report", str(cache / "report.html")]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=False)
    return time.perf_counter() - start


def cold_build(cache: Path, profile: str, envs: list[str], seeds: list[int], workers: int) -> float:
    """Build the grid into the fresh ``cache``; print and return the wall seconds."""
    print(f"fresh cache {cache}", flush=True)
    print(f"runs train on {device_name()} ({torch.__version__})", flush=True)
    start = time.perf_counter()
    done = build_grid(profile, envs, seeds, workers=workers)
    wall = time.perf_counter() - start
    busy = sum(done.values())
    print(f"\ncold build: {len(done)} runs, {wall:.0f} s wall ({wall / 60:.1f} min) with {workers} workers; "
          f"runs sum {busy:.0f} s, workers busy {busy / (workers * wall):.0%}")
    return wall


ROUTES = {  # the training routes --routes compares: label -> bench/train_step.py's Case mode
    "reference": "fp32",                  # the body's own modules, torch's default AdamW
    "a: C kernels": "cpu",                # kernels="cpu" with its C kernels and SplitMix64 lanes
    "b: same in plain torch": "cpu-torch",  # the same functions and lanes, no C
    "c: builtin eager": "builtin-eager",  # kernels="builtin": fused AdamW, gelu_pytorch_tanh, torch's dropout
    "c: builtin sdpa": "builtin-sdpa",
}
PLANNED_EVAL_S = 240.0   # evaluation seconds of the 5-seed mini hopper build (docs/benchmarks.md), every route


def planned_steps(profile: str, envs: list[str], seeds: list[int]) -> dict[tuple[str, int], int]:
    """Training steps of the selected grid per (backbone, K), from the profile's configs."""
    prof, out = get_profile(profile), {}
    for spec in Selection.of(prof, envs, seeds).specs():
        tc = experiment(prof, spec.env, spec.backbone, spec.seed, spec.variant).train
        key = (spec.backbone, tc.context)
        out[key] = out.get(key, 0) + tc.epochs * tc.steps_per_epoch
    return out


def route_times(kinds: set[tuple[str, int]], rounds: int, steps: int) -> dict[tuple[str, int], dict[str, list]]:
    """ms per step of every route of :data:`ROUTES`, per (backbone, K), in ``rounds`` interleaved
    rounds of ``steps`` steps (the order of the routes turns by one each round)."""
    torch.set_num_threads(1)
    data, out = dataset(), {}
    for backbone, K in sorted(kinds):
        cases = {label: Case(data, BODIES[BODY_OF[backbone]], K, MINI_BATCH, mode) for label, mode in ROUTES.items()}
        for case in cases.values():
            case.run(2)                                             # warm-up
        ms = {label: [] for label in cases}
        for r in range(rounds):
            order = list(cases)[r % len(cases):] + list(cases)[:r % len(cases)]
            for label in order:
                ms[label].append(cases[label].run(steps))
        out[(backbone, K)] = ms
        print(f"  {backbone} K={K}: " + ", ".join(f"{label} {statistics.median(v):.1f} ms" for label, v in ms.items()),
              flush=True)
    return out


def project_routes(steps: dict[tuple[str, int], int], ms: dict[tuple[str, int], dict[str, list]], eval_s: float,
                   workers: int) -> None:
    """Print each route's step times per body and context, the grid's minutes by route (training
    steps x median ms, evaluation ``eval_s`` for every route, on ``workers`` perfectly packed
    workers), and each route's grid time over the C kernels' with its 95 % interval: per round,
    the grid with every kind's time scaled by that round's paired ratio."""
    fast = "a: C kernels"
    print("| body | K | steps in the grid | " + " | ".join(f"{label} ms" for label in ROUTES) + " | "
          + " | ".join(f"{label} / a" for label in ROUTES if label != fast) + " |")
    print("|---|---|---|" + "---|" * (2 * len(ROUTES) - 1))
    for kind_, n in sorted(steps.items()):
        m = ms[kind_]
        cells = [f"{statistics.median(m[label]):.1f}" for label in ROUTES]
        cells += [f"{median_interval([x / y for x, y in zip(m[label], m[fast])]):.2f}" for label in ROUTES if label != fast]
        print(f"| {BODY_OF[kind_[0]]} | {kind_[1]} | {n} | " + " | ".join(cells) + " |")
    base = {k: n * statistics.median(ms[k][fast]) / 1000 for k, n in steps.items()}    # the C route's seconds
    minutes = {label: (sum(n * statistics.median(ms[k][label]) / 1000 for k, n in steps.items()) + eval_s)
               / workers / 60 for label in ROUTES}
    print(f"grid projection ({sum(steps.values())} training steps, evaluation {eval_s:.0f} s for every route, "
          f"{workers} workers): " + ", ".join(f"{label} {v:.1f} min" for label, v in minutes.items()))
    rounds = min(len(v) for m in ms.values() for v in m.values())
    ratios = {}
    for label in ROUTES:
        per_round = [(sum(base[k] * ms[k][label][i] / ms[k][fast][i] for k in steps) + eval_s)
                     / (sum(base.values()) + eval_s) for i in range(rounds)]
        ratios[label] = median_interval(per_round)
        if label != fast:
            print(f"grid, {label} / a: {ratios[label]:.2f}")
    builtin = min((label for label in ROUTES if label.startswith("c:")), key=minutes.get)
    verdict = "keep" if ratios[builtin].low >= 1.25 else ("delete" if ratios[builtin].high < 1.25 else "undecided")
    print(f"best built-in route on the grid: {builtin}; C kernels' gain over it {ratios[builtin]:.2f}: "
          f"{verdict} by the 1.25x rule")


def routes(args) -> None:
    """--routes: the training routes side by side and the planned grid projected from them (no build)."""
    envs, seeds = parse_envs(args.envs), parse_seeds(args.seeds)
    steps = planned_steps(args.profile, envs, seeds)
    eval_s = PLANNED_EVAL_S * len(envs) * len(seeds) / 5 if not args.quick else 0.0
    rounds, n = (6, 1) if args.quick else (args.rounds, STEPS)
    print(f"{len(Selection.of(get_profile(args.profile), envs, seeds).specs())} runs of the {args.profile} grid; "
          f"{rounds} interleaved rounds of {n} steps per body and context, batch {MINI_BATCH}, one thread", flush=True)
    project_routes(steps, route_times(set(steps), rounds, n), eval_s, args.workers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="mini")
    p.add_argument("--envs", default="hopper")
    p.add_argument("--seeds", default="0-4")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--claims", action="store_true", help="also time dtcore claims cold and cached")
    p.add_argument("--tmp", default=None, help="where the fresh cache goes (default: the system's temp dir)")
    p.add_argument("--quick", action="store_true", help="smoke profile, few ratio steps: for the tests")
    p.add_argument("--build-only", action="store_true", help="the cold build alone: no projection, no claims")
    p.add_argument("--target-min", type=float, default=30.0, help="the build time the floor is set against")
    p.add_argument("--built", default=None, metavar="CACHE",
                   help="build nothing: project and floor every run already in this cache, the wall time taken "
                        "as the runs' sum / workers")
    p.add_argument("--routes", action="store_true",
                   help="build nothing: time the training routes side by side and project the planned grid")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="interleaved rounds for --routes")
    args = p.parse_args()
    if args.quick:
        args.profile = "smoke"
    if args.routes:
        routes(args)
        return
    if args.built and (args.claims or args.build_only):
        p.error("--built reads a grid built earlier: it cannot time a cold build or cold claims")
    envs, seeds = parse_envs(args.envs), parse_seeds(args.seeds)
    cache = Path(args.built).expanduser() if args.built else fresh_cache(Path(args.tmp) if args.tmp else None)
    os.environ["DTCORE_CACHE"] = str(cache)
    if args.built:
        logs = run_logs(cache)
        if not logs:
            p.error(f"no built runs (runs/*/log.json) in {cache}")
        wall = sum(e["time_training"] + e["time_evaluation"] for log in logs.values() for e in log["epochs"])
        wall /= args.workers
        print(f"built cache {cache}: {len(logs)} runs; wall taken as their sum / {args.workers} workers, "
              f"{wall:.0f} s ({wall / 60:.1f} min)", flush=True)
    else:
        wall = cold_build(cache, args.profile, envs, seeds, args.workers)
        if args.build_only:
            return
        logs = run_logs(cache)
    kinds = {kind(log) for log in logs.values()}
    ratios = step_ratios(kinds, args.quick)
    r_eval = eval_ratio(args.profile, envs[0], seeds[0], 1 if args.quick else 3)
    seconds = [(kind(log), sum(e["time_training"] for e in log["epochs"]),
                sum(e["time_evaluation"] for e in log["epochs"])) for log in logs.values()]
    train_s, eval_s = sum(t for _, t, _ in seconds), sum(e for _, _, e in seconds)
    logged_s = train_s + eval_s
    today_s = sum(t * ratios[k][0] + e * r_eval for k, t, e in seconds)
    plain_s = sum(t * ratios[k][1] + e for k, t, e in seconds)
    print("step time, reference / cpu kernels: "
          + ", ".join(f"{b} K={k} {r:.2f}" for (b, k), (r, _) in sorted(ratios.items())))
    print("step time, cpu kernels in plain torch / with C: "
          + ", ".join(f"{b} K={k} {r:.2f}" for (b, k), (_, r) in sorted(ratios.items())))
    print(f"evaluation, every target / the reported one: {r_eval:.2f}")
    print(f"runs' training {train_s:.1f} s, evaluation {eval_s:.1f} s; today's code would take {today_s:.1f} s")
    print(f"today's code, projected: {wall * today_s / logged_s / 60:.1f} min wall; "
          f"ratio today / now = {today_s / logged_s:.2f}")
    print(f"without the C kernels (training steps scaled, evaluation as logged), projected: "
          f"{wall * plain_s / logged_s / 60:.1f} min wall; ratio = {plain_s / logged_s:.2f}")
    shapes = {name: step_shape(log, args.profile) for name, log in logs.items()}
    floor = step_floor(set(shapes.values()), 2 if args.quick else 20)
    floor_train = sum(max(e["step"] for e in log["epochs"]) * floor[shapes[name]] for name, log in logs.items())
    budget = args.target_min * 60 * args.workers - eval_s      # training seconds a target build leaves
    need = f"{floor_train / budget:.1%}" if budget > 0 else "more than 100 % (evaluation alone fills it)"
    floor_text = f"{floor_train:.0f}" if floor_train >= 10 else f"{floor_train:.3f}"   # smoke runs: fractions
    print(f"floor: the runs' training steps at 100 % of the matmul rate would take {floor_text} s "
          f"(they took {train_s:.1f} s: {floor_train / train_s:.1%} of the rate); with evaluation as logged on "
          f"{args.workers} perfectly packed workers the build takes at least "
          f"{(floor_train + eval_s) / args.workers / 60:.1f} min")
    print(f"a {args.target_min:g}-min build needs the training steps at {need} of the matmul rate "
          f"(they ran at {floor_train / train_s:.1%})")
    if args.claims:
        cold = claims(cache, args.profile, args.envs, args.seeds, args.workers)
        cached = claims(cache, args.profile, args.envs, args.seeds, args.workers)
        print(f"\nclaims with cold analyses {cold:.0f} s; cold total (build + claims) {wall + cold:.0f} s; "
              f"cached re-run {cached:.0f} s; cached / cold = 1/{(wall + cold) / cached:.0f}")


if __name__ == "__main__":
    main()
