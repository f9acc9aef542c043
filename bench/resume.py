"""Seconds per epoch of a fresh run and of the same run resumed, side by side (the slow-resume measurement).

The review's case: a smoke-size run (hopper, the smoke profile's random body, batch 8, K = 20)
trained for ``--epochs`` epochs of ``--steps`` steps into a folder; the folder is copied, every
epoch after the first is deleted from the copy, and the copy is resumed with
:func:`dtcore.train.train`. The step loop's seconds (``EpochLog.time_training``) of each epoch are
printed for both, and the final weights are compared bit for bit. This is done twice: with the
threads :func:`dtcore.train.train` now chooses (one intra-op thread for a small CPU model) and
with torch's default thread count (what every run used before), so the cause of the slow resumes
the review measured is visible beside the fix. No evaluation runs (it is the same in both).

    python bench/resume.py                     # the review's 4 epochs x 150 steps
    python bench/resume.py --quick             # 3 epochs x 30 steps
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

import torch

import dtcore.train as train_mod
from dtcore.model import build_model
from dtcore.profiles import SMOKE, experiment
from dtcore.seeding import seed_everything
from train_step import dataset  # bench/train_step.py: the synthetic hopper-sized dataset


def _run(cfg, data, folder: Path) -> list[float]:
    """Train (or resume) in ``folder``; the step-loop seconds of every epoch in the log."""
    seed_everything(cfg.train.seed)
    model = build_model(cfg.model)
    result = train_mod.train(model, data, cfg, run_dir=folder, progress=False)
    return [e.time_training for e in result.epochs]


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = (train_mod.load_checkpoint(p)["model"] for p in (a, b))
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def compare(cfg, data, root: Path, label: str) -> None:
    fresh, resumed = root / f"{label}-fresh", root / f"{label}-resumed"
    fresh_s = _run(cfg, data, fresh)
    shutil.copytree(fresh, resumed)
    for epoch in range(2, cfg.train.epochs + 1):
        train_mod.checkpoint_path(resumed, epoch).unlink()
    resumed_s = _run(cfg, data, resumed)
    last = cfg.train.epochs
    same = _same_weights(train_mod.checkpoint_path(fresh, last), train_mod.checkpoint_path(resumed, last))
    print(f"\n{label}: torch threads {torch.get_num_threads()} outside train, "
          f"{1 if train_mod.SINGLE_THREAD_PARAMS else torch.get_num_threads()} inside")
    print(f"{'epoch':>5} {'fresh s':>9} {'resumed s':>10} {'resumed/fresh':>14}")
    for epoch in range(2, last + 1):
        f, r = fresh_s[epoch - 1], resumed_s[epoch - 1]
        print(f"{epoch:>5} {f:>9.2f} {r:>10.2f} {r / f:>13.2f}x")
    mean_f = sum(fresh_s[1:]) / (last - 1)
    mean_r = sum(resumed_s[1:]) / (last - 1)
    print(f"{'mean':>5} {mean_f:>9.2f} {mean_r:>10.2f} {mean_r / mean_f:>13.2f}x   "
          f"final weights {'identical' if same else 'DIFFER'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--quick", action="store_true", help="3 epochs x 30 steps")
    args = parser.parse_args()
    epochs, steps = (3, 30) if args.quick else (args.epochs, args.steps)
    if epochs < 2:
        parser.error("--epochs must be >= 2 (epoch 1 is kept, the rest resumed)")
    cfg = experiment(SMOKE, "hopper", "random", 3, "K20", dataset_sha256="bench", weights_sha256="")
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs, steps_per_epoch=steps))
    data = dataset()
    print(f"smoke random body, batch {cfg.train.batch_size}, K {cfg.train.context}, {epochs} epochs x {steps} "
          f"steps; epoch 1 kept, epochs 2..{epochs} resumed; step-loop seconds per epoch")
    rule = train_mod.SINGLE_THREAD_PARAMS
    with tempfile.TemporaryDirectory() as tmp:
        compare(cfg, data, Path(tmp), "now: one thread for a small CPU model")
        train_mod.SINGLE_THREAD_PARAMS = 0  # every model keeps torch's default threads, as before
        try:
            compare(cfg, data, Path(tmp), "before: torch's default threads")
        finally:
            train_mod.SINGLE_THREAD_PARAMS = rule


if __name__ == "__main__":
    main()
