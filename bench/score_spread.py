"""The spread over seeds of the two scores of a run, per body (issue #32: before and after).

For every body of a hopper grid (GPT2, iGPT and Random Init at K = 20; GPT2 and Random Init at
K = 1) and every seed, the score claims' two readings of a run, both D4RL-normalised:

- ``paper``: the best epoch on the selection episodes, scored on 100 fresh episodes
  (``dtcore.measures.scored``);
- ``sound``: the mean of the last 5 checkpoints, each on 20 fresh episodes of its own
  (``dtcore.measures.window_score``);

then the mean and the sd over seeds of each, the behaviour data's score beside them. Runs and
scored episodes come from the cache (a claims run computes them); what is missing is trained or
evaluated, so point it at a built grid. ``--epochs N`` reads the grid of another fine-tuning
length (``--epochs 7``: mini before issue #32), K = 1 the same.

    python bench/score_spread.py --seeds 0-4                # the mini profile as it is
    python bench/score_spread.py --seeds 0-4 --epochs 7     # the recipe before
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dtcore.analysis_cache import AnalysisCache  # noqa: E402
from dtcore.claim import Cell  # noqa: E402
from dtcore.grid import parse_seeds  # noqa: E402
from dtcore.measures import scored  # noqa: E402
from dtcore.profiles import get_profile  # noqa: E402
from dtcore.runs import RunStore  # noqa: E402
from bench.learning_curves import BEHAVIOUR_SCORE  # noqa: E402

BODIES = (("gpt2", "K20"), ("igpt", "K20"), ("random", "K20"), ("gpt2", "K1"), ("random", "K1"))


def spread(profile_name: str, seeds: list[int], epochs: int | None,
           definitions: tuple[str, ...] = ("paper", "sound")) -> str:
    profile = get_profile(profile_name)
    if epochs is not None:
        profile = dataclasses.replace(profile, train=dataclasses.replace(profile.train, epochs=epochs),
                                      k1_epochs=epochs)
    store = RunStore(profile, progress=False)
    cache = AnalysisCache()
    lines = [f"{profile.name} hopper, {profile.train.epochs} epochs (K=1 {profile.k1_epochs}), seeds "
             f"{','.join(map(str, seeds))}; behaviour data {BEHAVIOUR_SCORE}",
             f"{'body':<11} {'paper (best epoch, fresh 100): seeds':<44} {'mean':>6} {'sd':>5}   "
             f"{'sound (last 5 x 20 fresh): seeds':<44} {'mean':>6} {'sd':>5}"]
    for body, variant in BODIES:
        row = {}
        for definition in ("paper", "sound"):
            if definition not in definitions:
                row[definition] = ("(not read)", float("nan"), float("nan"))
                continue
            values = np.array([scored(Cell(store, cache, "hopper", s, definition), body, variant).value
                               for s in seeds])
            row[definition] = (" / ".join(f"{v:.1f}" for v in values), values.mean(),
                               values.std(ddof=1) if values.size > 1 else float("nan"))
        (ps, pm, psd), (ss, sm, ssd) = row["paper"], row["sound"]
        lines.append(f"{body + ' ' + variant:<11} {ps:<44} {pm:>6.1f} {psd:>5.1f}   {ss:<44} {sm:>6.1f} {ssd:>5.1f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--profile", default="mini", help="the profile whose hopper grid is read (default mini)")
    p.add_argument("--seeds", default="0-4", help="seeds, e.g. 0-4 (default 0-4)")
    p.add_argument("--epochs", type=int, default=None,
                   help="read the grid at this fine-tuning length instead of the profile's (K=1 the same)")
    p.add_argument("--definitions", default="paper,sound",
                   help="which scores to read, paper and/or sound (default both; the sound score of an uncached "
                        "grid evaluates 5 checkpoints x 20 episodes per run)")
    args = p.parse_args(argv)
    definitions = tuple(d for d in args.definitions.split(",") if d)
    if not definitions or set(definitions) - {"paper", "sound"}:
        p.error(f"--definitions {args.definitions!r}: give paper, sound or paper,sound")
    print(spread(args.profile, parse_seeds(args.seeds), args.epochs, definitions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
