"""Wall time of a cold mini grid build on this machine, today's code projected beside it, and the
claims re-run from the cache against the cold one.

1. **Cold build.** A fresh cache whose ``assets`` folder links to the ready assets of your cache
   (``DTCORE_CACHE``, default ``~/.cache/dtcore``: datasets and bodies, so only runs are built),
   then :func:`dtcore.build.build_grid` over the selection with ``--workers`` processes: the wall
   time, the sum of the runs' seconds, and how busy the workers were (sum / workers x wall).
2. **Today's code, projected.** The reference kernels and every target evaluated each epoch are
   what main ran before the CPU kernels (``kernels="reference"``, ``eval_every_target=True``).
   Measured side by side here, in interleaved rounds: a training step of each body and context on
   both kernels (bench/step_efficiency.py's cases), and one evaluation of a built run with one
   target and with all. Each run's logged training and evaluation seconds are scaled by its
   ratios; the wall time scales with the sum.
3. **Claims** (``--claims``): ``dtcore claims`` over the same selection twice: once with cold
   analyses on the grid just built, then again with everything cached. The cold cost of a claims
   run is the build plus the first claims run; the printed ratio is cached / cold (target 1/20).

    python bench/grid.py --envs hopper --seeds 0-4 --claims      # about an hour on 2 cores
    python bench/grid.py --envs hopper --seeds 0 --quick         # the smoke profile, seconds
    python bench/grid.py --seeds 0-9 --workers 8 --build-only    # step 1 alone (bench/gpu_run.sh)

Runs train on the GPU where there is one (:class:`dtcore.runs.RunStore`'s default device).
"""

from __future__ import annotations

import argparse
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
BODY_OF = {"gpt2": "language 4x64 h4 gelu_new", "igpt": "image 8x48 h4 quick_gelu", "random": "random 4x64 h1 relu"}


def fresh_cache(root: Path | None) -> Path:
    """A new cache folder whose ``assets`` is a link to the ready assets of the user's cache."""
    ready = Path(os.environ.get("DTCORE_CACHE", Path.home() / ".cache" / "dtcore")).expanduser() / "assets"
    cache = Path(tempfile.mkdtemp(prefix="dtclaims-grid-", dir=root))
    if ready.is_dir():
        (cache / "assets").symlink_to(ready, target_is_directory=True)
    return cache


def run_logs(cache: Path) -> dict[str, dict]:
    """Run folder name -> its log.json (training and evaluation seconds per epoch)."""
    out = {}
    for log in sorted((cache / "runs").glob("*/log.json")):
        out[log.parent.name] = json.loads(log.read_text())
    return out


def step_ratios(kinds: set[tuple[str, int]], rounds: int, steps: int) -> dict[tuple[str, int], float]:
    """Reference / cpu milliseconds per training step of each (backbone, K), side by side."""
    sys.path.insert(0, str(REPO / "bench"))
    import torch
    from step_efficiency import MINI_BATCH, measure
    from train_step import BODIES, dataset

    torch.set_num_threads(1)
    data, out = dataset(), {}
    for backbone, K in sorted(kinds):
        r = measure(data, BODIES[BODY_OF[backbone]], K, MINI_BATCH, rounds, steps, repeats=5)
        out[(backbone, K)] = r["fp32"]["ms"] / r["cpu"]["ms"]
    return out


def eval_ratio(profile: str, env: str, seed: int, rounds: int) -> float:
    """Seconds of one evaluation with every target / with the reported one, on a built K20 run."""
    import dataclasses

    import torch
    from dtcore.envs import env_spec
    from dtcore.evaluate import evaluate
    from dtcore.grid import Selection
    from dtcore.profiles import get_profile
    from dtcore.runs import RunStore

    torch.set_num_threads(1)
    store = RunStore(profile, Selection.of(get_profile(profile), [env], [seed]), progress=False)
    run = store.run(next(s for s in store.selection.specs() if s.seed == seed and s.variant == "K20"))
    model, data = run.model(), run.dataset
    configs = {n: dataclasses.replace(run.config.eval, targets=t)
               for n, t in (("all", env_spec(env).targets), ("reported", env_spec(env).targets[:1]))}
    seconds = {n: [] for n in configs}
    for _ in range(rounds):
        for name, cfg in configs.items():
            start = time.perf_counter()
            evaluate(model, cfg, state_mean=data.state_mean, state_std=data.state_std,
                     context=run.config.train.context)
            seconds[name].append(time.perf_counter() - start)
    return statistics.median(seconds["all"]) / statistics.median(seconds["reported"])


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
    args = p.parse_args()
    if args.quick:
        args.profile = "smoke"
    from dtcore.grid import parse_envs, parse_seeds

    envs, seeds = parse_envs(args.envs), parse_seeds(args.seeds)
    cache = fresh_cache(Path(args.tmp) if args.tmp else None)
    os.environ["DTCORE_CACHE"] = str(cache)
    print(f"fresh cache {cache} (assets linked from the ready cache)", flush=True)

    import torch
    from dtcore.build import build_grid
    from dtcore.provenance import device_name

    print(f"runs train on {device_name()} ({torch.__version__})", flush=True)
    start = time.perf_counter()
    done = build_grid(args.profile, envs, seeds, workers=args.workers)
    wall = time.perf_counter() - start
    busy = sum(done.values())
    print(f"\ncold build: {len(done)} runs, {wall:.0f} s wall ({wall / 60:.1f} min) with {args.workers} workers; "
          f"runs sum {busy:.0f} s, workers busy {busy / (args.workers * wall):.0%}")
    if args.build_only:
        return

    logs = run_logs(cache)
    kinds = {kind(log) for log in logs.values()}
    rounds, steps = (1, 1) if args.quick else (3, 10)
    ratios = step_ratios(kinds, rounds, steps)
    r_eval = eval_ratio(args.profile, envs[0], seeds[0], 1 if args.quick else 3)
    seconds = [(kind(log), sum(e["time_training"] for e in log["epochs"]),
                sum(e["time_evaluation"] for e in log["epochs"])) for log in logs.values()]
    train_s, eval_s = sum(t for _, t, _ in seconds), sum(e for _, _, e in seconds)
    today_s = sum(t * ratios[k] + e * r_eval for k, t, e in seconds)
    print("step time, reference / cpu kernels: "
          + ", ".join(f"{b} K={k} {r:.2f}" for (b, k), r in sorted(ratios.items())))
    print(f"evaluation, every target / the reported one: {r_eval:.2f}")
    print(f"runs' training {train_s:.0f} s, evaluation {eval_s:.0f} s; today's code would take {today_s:.0f} s")
    print(f"today's code, projected: {wall * today_s / (train_s + eval_s) / 60:.1f} min wall; "
          f"ratio today / now = {today_s / (train_s + eval_s):.2f}")
    if args.claims:
        cold = claims(cache, args.profile, args.envs, args.seeds, args.workers)
        cached = claims(cache, args.profile, args.envs, args.seeds, args.workers)
        print(f"\nclaims with cold analyses {cold:.0f} s; cold total (build + claims) {wall + cold:.0f} s; "
              f"cached re-run {cached:.0f} s; cached / cold = 1/{(wall + cold) / cached:.0f}")


if __name__ == "__main__":
    main()
