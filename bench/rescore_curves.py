"""Both scores of a learning-curve run on fresh episodes (issue #32; docs/profiles.md,
"Converged before compared").

For each run folder (``dtcore train --out``: ``epoch_XXX.pt`` and ``log.json``), writes
``rescored.json`` beside its log with

- the paper's best-epoch score as the mini protocol reads it: the epoch with the best selection
  return over all the run's epochs, scored on 100 fresh episodes with the profile's scored reset
  seeds (``scored_reset_seed + 100_000 seed + i``, dtcore/profiles.py);
- the new score's parts: each of the last 5 checkpoints scored on 20 fresh episodes of its own
  (reset seeds ``scored_reset_seed + 100_000 seed + 1000 epoch + i``, disjoint from the above).

Only the reported (first) return-to-go target is rolled out. ``bench/learning_curves.py`` prints
both scores from these files where they exist.

    python bench/rescore_curves.py /tmp/curves/hopper_gpt2_K20_s0 [...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dtcore import convergence as cv  # noqa: E402

BEST_EPISODES = 100


def _namespace(cfg: dict) -> argparse.Namespace:
    """The ``dtcore train`` arguments that rebuild the run's experiment from its logged config."""
    k = cfg["train"]["context"]
    return argparse.Namespace(profile=cfg["profile"], env=cfg["env"], backbone=cfg["model"]["backbone"],
                              seed=cfg["train"]["seed"], context=1 if k == 1 else None, variant=cfg["variant"],
                              dataset=None, trust_pickle=False, weights=None, episodes=None, max_steps=None,
                              device="cpu", epochs=None, steps=None, batch_size=None, no_clip=False,
                              procedure=None, sampler=None, precision=None, kernels=None, compile=False)


def rescore(run: Path) -> dict:
    import torch

    from dtcore import checkpoints
    from dtcore.cli import _inputs
    from dtcore.evaluate import evaluate
    from dtcore.profiles import get_profile

    log = json.loads((run / "log.json").read_text())
    cfg = log["config"]
    exp, dataset, model = _inputs(_namespace(cfg))
    ec = dataclasses.replace(exp.config.eval, targets=exp.config.eval.targets[:1])
    base = get_profile(cfg["profile"]).scored_reset_seed + 100_000 * cfg["train"]["seed"]
    selection = np.array([e["eval"]["targets"][0]["score_paper"] for e in log["epochs"]])
    n = len(selection)
    best = int(np.argmax(selection)) + 1

    def score(epoch: int, episodes: int, reset_seed: int) -> float:
        model.load_state_dict(checkpoints.load(run / f"epoch_{epoch:03d}.pt")["model"])
        with torch.inference_mode():
            result = evaluate(model, dataclasses.replace(ec, episodes_per_target=episodes, reset_seed=reset_seed),
                              state_mean=dataset.state_mean, state_std=dataset.state_std,
                              context=exp.config.train.context)
        return float(result.to_dict()["targets"][0]["score_paper"])

    window = list(range(n - cv.SCORE_WINDOW + 1, n + 1))
    return {"epochs": n, "best_epoch": best,
            "best_epoch_fresh": score(best, BEST_EPISODES, base),
            "window": {str(e): score(e, cv.SCORED_EPISODES_PER_CHECKPOINT, base + 1000 * e) for e in window}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="run folders, each with log.json and epoch_XXX.pt")
    args = p.parse_args(argv)
    for run in args.runs:
        out = rescore(run)
        (run / "rescored.json").write_text(json.dumps(out, indent=1))
        print(f"{run.name}: best epoch {out['best_epoch']} of {out['epochs']} on fresh episodes "
              f"{out['best_epoch_fresh']:.1f}; last {cv.SCORE_WINDOW}: "
              + " ".join(f"{v:.1f}" for v in out["window"].values()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
