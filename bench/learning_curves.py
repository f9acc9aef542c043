"""Learning curves of every body (issue #32; docs/profiles.md, "Converged before compared").

Reads the run logs (``<runs>/*/log.json``, as ``dtcore train --out`` writes them: one entry per
epoch with the held-out action error and the selection episodes' returns) and prints, per body
(backbone x K):

- the length rule's answer on the seed-mean curve (``dtcore.convergence``), each seed's answer
  beside it, and the recipe's length, the longest over the bodies;
- per seed and their sd over seeds: the paper's best-epoch score (the best epoch's own selection
  episodes) and the new score (the mean of the last 5 epochs), both over the same epochs, at
  today's length (7) and at the curves' length (every epoch that all seeds of the body have);
- the behaviour data's normalised score beside them.

Scores are D4RL-normalised with the paper's reference (``score_paper`` in the log). Figures
(``--figures DIR``): the action error and the normalised return per epoch, one panel per body,
each seed thin and the seed mean thick.

    python bench/learning_curves.py --runs /tmp/curves --figures docs/figures
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dtcore import convergence as cv  # noqa: E402

TODAY = 7               # mini's K20 / K1 length before issue #32 (now 18, dtcore/profiles.py), epochs of 400 steps
BEHAVIOUR_SCORE = 38.5  # the behaviour data's own normalised hopper score (issue #32)


@dataclass(frozen=True)
class Curve:
    """One run's per-epoch values, epoch 1 first."""
    body: str                  # backbone and K, e.g. "gpt2 K20"
    seed: int
    action_error: np.ndarray   # [epochs] held-out action error
    score: np.ndarray          # [epochs] normalised mean return on the selection episodes
    rescored: dict | None      # bench/rescore_curves.py's fresh-episode scores, when written


def read_curve(log_path: Path) -> Curve:
    log = json.loads(log_path.read_text())
    cfg = log["config"]
    epochs = sorted(log["epochs"], key=lambda e: e["epoch"])
    assert [e["epoch"] for e in epochs] == list(range(1, len(epochs) + 1)), log_path
    body = f"{cfg['model']['backbone']} K{cfg['train']['context']}"
    err = np.array([e["action_error"] for e in epochs], dtype=np.float64)
    score = np.array([e["eval"]["targets"][0]["score_paper"] for e in epochs], dtype=np.float64)
    fresh = log_path.parent / "rescored.json"
    rescored = json.loads(fresh.read_text()) if fresh.exists() else None
    if rescored is not None and rescored["epochs"] != len(epochs):
        rescored = None                        # written before the run was extended: stale
    return Curve(body, int(cfg["train"]["seed"]), err, score, rescored)


def read_curves(runs: Path) -> dict[str, list[Curve]]:
    """``{body: [curve per seed, by seed]}`` of every run log under ``runs``."""
    by_body: dict[str, list[Curve]] = {}
    for path in sorted(runs.glob("*/log.json")):
        c = read_curve(path)
        by_body.setdefault(c.body, []).append(c)
    order = sorted(by_body, key=lambda b: (-int(b.split(" K")[1]), b))           # K20 bodies first
    return {b: sorted(by_body[b], key=lambda c: c.seed) for b in order}


def scores(curves: list[Curve], epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per seed over epochs 1..``epochs``: the best-epoch score and the last-5 mean, [seeds] each."""
    values = np.stack([c.score[:epochs] for c in curves])                       # [seeds, epochs]
    return cv.best_epoch_score(values), cv.last_epochs_score(values)


def sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else float("nan")


def _score_line(label: str, curves: list[Curve], epochs: int) -> str:
    best, last = scores(curves, epochs)
    return (f"  {label:6s} ({epochs:2d} epochs): best-epoch {' / '.join(f'{v:.1f}' for v in best)} "
            f"(mean {best.mean():.1f}, sd {sd(best):.1f}); last-5 mean {' / '.join(f'{v:.1f}' for v in last)} "
            f"(mean {last.mean():.1f}, sd {sd(last):.1f}); behaviour {BEHAVIOUR_SCORE}")


def _fresh_line(curves: list[Curve]) -> str:
    """Both scores on fresh episodes (bench/rescore_curves.py): the best epoch on 100, the mean of
    the last 5 checkpoints on 20 each."""
    best = np.array([c.rescored["best_epoch_fresh"] for c in curves])
    last = np.array([np.mean(list(c.rescored["window"].values())) for c in curves])
    epochs = [c.rescored["best_epoch"] for c in curves]
    return (f"  fresh  ({curves[0].rescored['epochs']:2d} epochs): best-epoch (epochs {epochs}) "
            f"{' / '.join(f'{v:.1f}' for v in best)} (mean {best.mean():.1f}, sd {sd(best):.1f}); "
            f"last-5 mean {' / '.join(f'{v:.1f}' for v in last)} (mean {last.mean():.1f}, sd {sd(last):.1f}); "
            f"behaviour {BEHAVIOUR_SCORE}")


def report(by_body: dict[str, list[Curve]]) -> str:
    """The text the script prints: per body the rule and both scores, then the recipe's length and,
    where the curves reach it, both scores over the length the rule asks for (L + 4 epochs)."""
    lines, answers, common = [], {}, {}
    for body, curves in by_body.items():
        n = common[body] = min(len(c.score) for c in curves)
        err = cv.seed_mean([c.action_error for c in curves])
        ret = cv.seed_mean([c.score for c in curves])
        answers[body] = cv.converged_epoch(err, ret)
        per_seed = [cv.converged_epoch(c.action_error, c.score) for c in curves]
        lines.append(f"{body}: seeds {[c.seed for c in curves]}, {n} epochs in common "
                     f"(judgeable up to {cv.judgeable_epochs(n)}); rule on the seed mean: "
                     f"{answers[body] or 'not converged'}; per seed: {per_seed}")
        drop = [100 * (err[i] - err[i + 3]) / (3 * err[i]) for i in range(n - 3)]
        lines.append("  action error (seed mean): " + " ".join(f"{v:.3f}" for v in err)
                     + "\n  its fall over e..e+3, % per epoch: " + " ".join(f"{v:.1f}" for v in drop)
                     + "\n  score (seed mean): " + " ".join(f"{v:.1f}" for v in ret))
        lines += [_score_line(label, curves, epochs) for label, epochs in (("today", TODAY), ("curves", n))]
        if all(c.rescored is not None for c in curves):
            lines.append(_fresh_line(curves))
    missing = [b for b, a in answers.items() if a is None]
    length = None if missing else max(answers.values())
    lines.append("fine-tuning length (longest over bodies): "
                 + (f"{length} epochs, trained {cv.trained_epochs(length)}" if length
                    else f"none: not converged on the measured curves: {', '.join(missing)}"))
    if length:
        lines += [f"{body}:\n" + _score_line("rule", curves, cv.trained_epochs(length))
                  for body, curves in by_body.items() if common[body] >= cv.trained_epochs(length)]
    return "\n".join(lines)


def figures(by_body: dict[str, list[Curve]], out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    bodies = list(by_body)
    fig, axes = plt.subplots(2, len(bodies), figsize=(2.6 * len(bodies), 4.6), sharex=True, squeeze=False)
    for j, body in enumerate(bodies):
        curves = by_body[body]
        for row, (field, label) in enumerate((("action_error", "held-out action error"),
                                              ("score", "normalised return"))):
            ax = axes[row, j]
            for c in curves:
                v = getattr(c, field)
                ax.plot(np.arange(1, len(v) + 1), v, lw=0.8, alpha=0.6, label=f"seed {c.seed}")
            mean = cv.seed_mean([getattr(c, field) for c in curves])
            ax.plot(np.arange(1, len(mean) + 1), mean, color="k", lw=2, label="seed mean")
            ax.axvline(TODAY, color="grey", ls=":", lw=1)
            if field == "score":
                ax.axhline(BEHAVIOUR_SCORE, color="tab:red", ls="--", lw=1, label="behaviour data")
                answer = cv.converged_epoch(cv.seed_mean([c.action_error for c in curves]), mean)
                if answer:
                    ax.axvline(answer, color="tab:green", lw=1, label="rule's answer")
                ax.set_xlabel("epoch (400 steps)")
            else:
                ax.set_yscale("log")
                ax.set_title(body, fontsize=9)
            if j == 0:
                ax.set_ylabel(label, fontsize=8)
            ax.tick_params(labelsize=7)
    axes[1, -1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path = out / "learning-curves-hopper-mini.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return [path]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, required=True, help="folder of run folders, each with a log.json")
    p.add_argument("--figures", type=Path, default=None, help="write the figure(s) to this folder")
    args = p.parse_args(argv)
    by_body = read_curves(args.runs)
    if not by_body:
        p.error(f"no */log.json under {args.runs}")
    print(report(by_body))
    if args.figures:
        for path in figures(by_body, args.figures):
            print(f"figure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
