"""Converged before compared (issue #32; docs/profiles.md, "Converged before compared").

Two rules, written before the learning curves they are applied to:

- **The fine-tuning length** (:func:`converged_epoch`, :func:`fine_tuning_length`): the first epoch
  e (1-based) at which

  (a1) the held-out action error falls by less than ``ERROR_DROP`` of its value per epoch over
       e..e+3: ``(err[e] - err[e+3]) / (3 err[e]) < 0.02``, and
  (a2) no upward trend of the return is left:
       ``mean(R[e..e+2]) >= mean(R[e+3..e+5]) - sd(R[e..e+5])`` (sd with n - 1),

  read from a body's seed-mean curve (:func:`seed_mean`); with E epochs measured only
  e <= E - 5 can be judged, and a body with no such e has not converged (``None``, never E). The
  length of a recipe is the longest of its bodies' answers, ``None`` when any body has none.
  The paper fine-tunes to convergence (100k steps, App. A); this is the mini analog's stand-in.

- **The score of a run** (:func:`last_epochs_score`): the mean over the last ``SCORE_WINDOW``
  epochs' checkpoints, each scored on its own fresh episodes, beside the paper's best-epoch score
  (:func:`best_epoch_score`: the epoch whose selection return is highest, read on the same or on
  fresh episodes). A run trains ``trained_epochs(L)`` = L + k - 1 epochs so that the k scored
  checkpoints are at or past the converged epoch L. The best-epoch score is the maximum of noisy
  evaluations, biased upward even on a flat curve; the window mean is unbiased there and divides
  the checkpoint-to-checkpoint variance by k.

Arrays in, numbers out; every score accepts leading axes (seeds, simulated draws) before the last
axis, the epochs, and accumulates in float64.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

ERROR_DROP = 0.02   # (a1): largest mean fall of the action error per epoch, as a fraction of err[e]
ERROR_SPAN = 3      # (a1): the fall is read over e..e+ERROR_SPAN
RETURN_SPAN = 3     # (a2): mean of e..e+2 against mean of e+3..e+5
SCORE_WINDOW = 5    # (b): checkpoints averaged by the score, the last ones of the run
SCORED_EPISODES_PER_CHECKPOINT = 20  # (b): 5 x 20 = the 100 scored episodes of today's protocol


def _curve(values: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one curve (1-D), got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} has non-finite values")
    return a


def _epochs_axis(values: np.ndarray | Sequence, name: str, window: int = 1) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64)
    if a.ndim < 1 or a.shape[-1] < window:
        raise ValueError(f"{name} needs at least {window} epochs on its last axis, got shape {a.shape}")
    return a


def error_levelled(action_error: Sequence[float] | np.ndarray, epoch: int) -> bool:
    """(a1) at ``epoch`` (1-based): the mean fall per epoch over epoch..epoch+3, relative to
    err[epoch], is below ``ERROR_DROP``."""
    err = _curve(action_error, "action_error")
    i = epoch - 1
    if i < 0 or i + ERROR_SPAN >= len(err):
        raise ValueError(f"epoch {epoch} needs epochs up to {epoch + ERROR_SPAN}, have {len(err)}")
    return bool((err[i] - err[i + ERROR_SPAN]) / (ERROR_SPAN * err[i]) < ERROR_DROP)


def return_levelled(mean_return: Sequence[float] | np.ndarray, epoch: int) -> bool:
    """(a2) at ``epoch`` (1-based): mean(R[e..e+2]) >= mean(R[e+3..e+5]) - sd(R[e..e+5])."""
    r = _curve(mean_return, "mean_return")
    i = epoch - 1
    if i < 0 or i + 2 * RETURN_SPAN > len(r):
        raise ValueError(f"epoch {epoch} needs epochs up to {epoch + 2 * RETURN_SPAN - 1}, have {len(r)}")
    six = r[i:i + 2 * RETURN_SPAN]
    return bool(six[:RETURN_SPAN].mean() >= six[RETURN_SPAN:].mean() - six.std(ddof=1))


def judgeable_epochs(n_epochs: int) -> int:
    """The last epoch the rule can judge on a curve of ``n_epochs``: both parts need e+5 <= E."""
    return max(n_epochs - (2 * RETURN_SPAN - 1), 0)


def converged_epoch(action_error: Sequence[float] | np.ndarray,
                    mean_return: Sequence[float] | np.ndarray) -> int | None:
    """The rule's answer for one curve: the first epoch (1-based) meeting (a1) and (a2), or
    ``None`` when no judgeable epoch does. Both curves hold one value per epoch, epoch 1 first."""
    err, r = _curve(action_error, "action_error"), _curve(mean_return, "mean_return")
    if err.shape != r.shape:
        raise ValueError(f"action_error {err.shape} and mean_return {r.shape} must have one value per epoch")
    for epoch in range(1, judgeable_epochs(len(err)) + 1):
        if error_levelled(err, epoch) and return_levelled(r, epoch):
            return epoch
    return None


def seed_mean(curves: Sequence[Sequence[float]]) -> np.ndarray:
    """The mean over seeds of per-epoch values, over the epochs every seed has (a run cut short
    shortens the curve, never pads it). ``curves``: one 1-D curve per seed -> [epochs]."""
    if len(curves) == 0:
        raise ValueError("seed_mean needs at least one curve")
    arrays = [_curve(c, f"curves[{i}]") for i, c in enumerate(curves)]
    n = min(len(a) for a in arrays)
    return np.mean(np.stack([a[:n] for a in arrays]), axis=0)


def converged_epochs(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> dict[str, int | None]:
    """Each body's answer: ``{body: (action_error, mean_return)}`` -> ``{body: epoch or None}``."""
    return {body: converged_epoch(err, ret) for body, (err, ret) in curves.items()}


def fine_tuning_length(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]]) -> int | None:
    """The recipe's fine-tuning length: the longest of the bodies' answers, ``None`` when any body
    has not converged on its curve (see :func:`converged_epochs` for which)."""
    if not curves:
        raise ValueError("fine_tuning_length needs at least one body's curve")
    answers = converged_epochs(curves)
    if any(a is None for a in answers.values()):
        return None
    return max(answers.values())


def trained_epochs(length: int, window: int = SCORE_WINDOW) -> int:
    """Epochs a run trains so that its last ``window`` checkpoints are at or past ``length``."""
    if length < 1 or window < 1:
        raise ValueError(f"length ({length}) and window ({window}) must be >= 1")
    return length + window - 1


def best_epoch_score(selection: np.ndarray | Sequence, scored: np.ndarray | Sequence | None = None) -> np.ndarray:
    """The paper's score: the value at the epoch with the highest selection value (first on ties).

    ``selection`` [..., E]: each epoch's mean return on the selection episodes. ``scored``
    [..., E]: the same epochs scored on other, fresh episodes (today's mini protocol); ``None``
    reads the selection episodes themselves (the paper's own number, biased by the choice).
    Returns [...]."""
    sel = _epochs_axis(selection, "selection")
    val = sel if scored is None else _epochs_axis(scored, "scored")
    if val.shape != sel.shape:
        raise ValueError(f"scored {val.shape} must match selection {sel.shape}")
    best = np.argmax(sel, axis=-1)[..., None]
    return np.take_along_axis(val, best, axis=-1)[..., 0]


def last_epochs_score(scored: np.ndarray | Sequence, window: int = SCORE_WINDOW) -> np.ndarray:
    """The score that reads a policy: the mean of the last ``window`` epochs' values [..., E] ->
    [...], each epoch scored on its own fresh episodes. No selection on the scored values."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    val = _epochs_axis(scored, "scored", window)
    return val[..., -window:].mean(axis=-1)
