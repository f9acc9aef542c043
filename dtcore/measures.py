"""The measures the claims' statistics are built from, each a function of a claim cell
(:class:`dtcore.claim.Cell`: the session's runs and analyses at one environment, seed and
definition), with the replicates that carry its within-run uncertainty.

A measure with sampling units inside its run comes as a :class:`~dtcore.claim.Measured`: the
full-sample value and its half-sample replicates (``dtcore.statistics.half_sample_indices``; the
same half-samples for every body compared, so differences between bodies on one analysis batch are
paired). Measures without units are plain floats (nan when undefined, which the decision rules
turn into "inconclusive"). The analyses behind them are cached (``dtcore.analyses``), so a
per-seed cell and its seed aggregate compute the same number once.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from scipy import stats

from dtcore import analyses, statistics
from dtcore.claim import Cell, Measured
from dtcore.envs import NORMALISATIONS
from dtcore.profiles import Profile
from dtcore.runs import Run

LAST_K = 3   # "mean of the last k epochs", reported beside the selected epoch's score
# The definitions of a score claim: the selected epoch on fresh episodes under D4RL's normalisation
# (paper) and under the published code's dataset-mean one (as-run, docs/deviations.md 1), and the
# mean of the last checkpoints, each on fresh episodes, under D4RL's (sound; docs/profiles.md,
# "Converged before compared"). The paper definition speaks for the claim (dtcore.policy).
SCORE_DEFINITIONS = ("paper", "as-run", "sound")
NORMALISATION_OF = {"paper": "paper", "as-run": "as-run", "sound": "paper"}   # definition -> envs.NORMALISATIONS


def _half_samples(profile: Profile, n: int, seed: int) -> np.ndarray:
    """[R, n // 2] half-sample indices; [0, 0] (no replicates: the cell is inconclusive) below 4 units."""
    if n < 4:
        return np.zeros((0, 0), dtype=np.int64)
    return statistics.half_sample_indices(n, draws=profile.analysis.replicates, seed=seed)


# -- returns: Table 1, Tables 2/4, §5.5, Fig. 9b ---------------------------------------------

def _normalise(run: Run, definition: str, returns) -> np.ndarray:
    normalise = NORMALISATIONS[NORMALISATION_OF[definition]]
    return np.array([normalise(run.config.env, float(r)) for r in returns], dtype=np.float64)


def epoch_scores(run: Run, definition: str) -> dict[int, np.ndarray]:
    """Per evaluated epoch, the normalised returns of the per-epoch (selection) episodes of the
    reported target [episodes]."""
    target = run.config.eval.targets[0]
    return {e: _normalise(run, definition, r[target]) for e, r in sorted(run.eval_returns.items())
            if r.get(target)}


def score_curve(run: Run, definition: str) -> list[tuple[int, float]]:
    """(epoch, normalised mean return of the reported target) per evaluated epoch."""
    return [(e, float(s.mean())) for e, s in epoch_scores(run, definition).items()]


def scored(cell: Cell, body: str, variant: str = "K20", *, draw: int = 0) -> Measured:
    """Tables 1, 2, 4: the epoch with the best mean return on the per-epoch episodes (the paper's
    early stopping, docs/spec.md §5.2), scored on fresh episodes that played no part in choosing it: the
    mean normalised return (``cell.definition``'s normalisation), with half-samples of the scored
    episodes. ``draw`` seeds the half-samples (give two independent runs different draws).
    Under the ``sound`` definition: :func:`window_score`."""
    run = cell.run(body, variant)
    if cell.definition == "sound":
        return window_score(cell, run, draw=draw)
    res = analyses.scored_returns(cell.store, cell.cache, run, run.best_epoch)
    x = _normalise(run, cell.definition, res["returns"])
    idx = _half_samples(cell.profile, x.size, draw)
    return Measured(float(x.mean()), x[idx].mean(axis=1), "scored episodes", int(x.size))


def window_score(cell: Cell, run: Run, *, draw: int = 0) -> Measured:
    """The score that reads a policy, not an epoch's luck: the D4RL-normalised mean return over the
    run's last checkpoints, each on episodes of its own (:func:`dtcore.analyses.window_scored_returns`),
    with half-samples drawn within each checkpoint's episodes (the same draw for every checkpoint),
    so each replicate weighs the checkpoints equally."""
    per_epoch = [_normalise(run, "sound", r["returns"]) for r in
                 analyses.window_scored_returns(cell.store, cell.cache, run)]
    x = np.stack(per_epoch)                                        # [k, episodes]
    idx = _half_samples(cell.profile, x.shape[1], draw)            # [R, episodes // 2]
    reps = x[:, idx].mean(axis=(0, 2)) if idx.size else np.zeros(0)   # x[:, idx]: [k, R, episodes // 2]
    return Measured(float(x.mean()), reps, "scored episodes", int(x.size))


def score_summary(cell: Cell, body: str) -> dict[str, float]:
    """The scores shown beside the claim: the selected epoch scored on fresh episodes, the biased
    best-of-epochs mean on the selection episodes, the last epoch and the mean of the last k."""
    run = cell.run(body)
    curve = [s for _, s in score_curve(run, cell.definition)]
    return {"selected_epoch": run.best_epoch,
            "scored": scored(cell, body).value,
            "best_of_epochs (selection episodes, biased)": max(curve) if curve else float("nan"),
            "last_epoch": curve[-1] if curve else float("nan"),
            f"mean_of_last_{LAST_K}": float(np.mean(curve[-LAST_K:])) if curve else float("nan")}


def mean_over_epochs(cell: Cell, body: str, variant: str, *, draw: int = 0,
                     epochs: int | None = None) -> Measured:
    """Area under the learning curve: the normalised mean return averaged over the evaluated
    epochs 1..``epochs`` (how quickly a run learns; Fig. 8, Fig. 9b), with half-samples of each
    epoch's episodes."""
    run = cell.run(body, variant)
    per_epoch = [s for e, s in epoch_scores(run, cell.definition).items()
                 if e >= 1 and (epochs is None or e <= epochs)]
    if not per_epoch:
        return Measured(float("nan"), np.full(cell.profile.analysis.replicates, np.nan), "evaluation episodes", 0)
    n = min(s.size for s in per_epoch)
    idx = _half_samples(cell.profile, n, draw)
    reps = np.mean([s[:n][idx].mean(axis=1) for s in per_epoch], axis=0)
    return Measured(float(np.mean([s.mean() for s in per_epoch])), reps, "evaluation episodes", n)


# The action error of each definition as a figure's axis names it (Figs. 9a and 19): the published
# ``training/action_error`` is the masked action MSE of the epoch's last training batch, ours the same
# MSE on a fixed held-out batch in eval mode (dtcore.train, ``last_batch_action_error`` / ``action_error``).
ACTION_ERROR_AXIS = {"paper": "training action error (MSE, last batch)", "sound": "held-out action error (MSE)"}


def log_series(run: Run, key: str, epochs: int | None = None) -> list[float]:
    """A per-epoch training-log value (epochs 1..), e.g. ``last_batch_action_error``."""
    recs = [r for r in run.log if int(r.get("epoch", 0)) >= 1 and r.get(key) is not None]
    recs.sort(key=lambda r: int(r["epoch"]))
    values = [float(r[key]) for r in recs]
    return values[:epochs] if epochs is not None else values


# -- §5.1 CKA ---------------------------------------------------------------------------------

def cka_profile(cell: Cell, body: str, token: str, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """The diagonal CKA (epoch 0 vs final) per hooked layer [L] and its half-sample replicates
    [R, L] (the same half-samples of the one analysis batch for every body)."""
    run = cell.run(body)
    diag = np.asarray(analyses.cka_diagonal(cell.store, cell.cache, run, token=token, mode=mode), dtype=np.float64)
    reps = np.asarray(analyses.cka_diagonal_replicates(cell.store, cell.cache, run, token=token, mode=mode),
                      dtype=np.float64)
    return diag, reps


def mean_diagonal_cka(cell: Cell, body: str, token: str, mode: str, *,
                      depth: tuple[float, float] = (0.0, 1.0)) -> Measured:
    """Mean diagonal CKA over the layers whose relative depth (layer index / layers) lies in
    ``depth`` (default: every layer)."""
    diag, reps = cka_profile(cell, body, token, mode)
    where = (np.arange(diag.size) / diag.size >= depth[0]) & (np.arange(diag.size) / diag.size < depth[1])
    return Measured(float(np.nanmean(diag[where])), np.nanmean(reps[:, where], axis=1), "analysis samples",
                    cell.profile.analysis.batch_size)


def layernorm_share(diag: np.ndarray, names: list[str], *, threshold: float | None = None,
                    top_fraction: float | None = None) -> float:
    """Share of LayerNorms among the layers that stay most similar: those with CKA above
    ``threshold`` (the paper's absolute rule) or the ``top_fraction`` of layers with the highest
    CKA (its scale-free restatement); nan when no layer qualifies."""
    diag = np.asarray(diag, dtype=np.float64)
    ok = np.isfinite(diag)
    if threshold is not None:
        chosen = np.flatnonzero(ok & (diag > threshold))
    else:
        k = max(1, int(round(top_fraction * ok.sum())))
        order = np.argsort(-np.where(ok, diag, -np.inf), kind="stable")
        chosen = order[:k]
    if chosen.size == 0:
        return float("nan")
    return float(np.mean([".ln_" in names[i] for i in chosen]))


def off_diagonal_median(m: np.ndarray) -> float:
    m = np.asarray(m, dtype=np.float64)
    return float(np.nanmedian(m[~np.eye(*m.shape, dtype=bool)])) if m.shape[0] == m.shape[1] else float(np.nanmedian(m))


# -- §5.2 MINE --------------------------------------------------------------------------------

def mi_curves(cell: Cell, body: str, estimator: str) -> dict[str, Any]:
    """MINE's Î(X;T) and Î(Y;T) per token position of ``body``'s final checkpoint (§5.2)."""
    return analyses.mutual_information(cell.store, cell.cache, cell.run(body), estimator=estimator)


def mi_noise_floor(curves: dict[str, dict[str, Any]], quantity: str,
                   margin: Callable[[dict[str, dict[str, Any]]], float]) -> float:
    """The estimator's noise floor for a margin between MINE curves: twice the spread of its
    shuffled-pairs estimates (pairs with the dependence destroyed, whose true MI is 0) pooled over
    bodies and positions, plus the size of the same ``margin`` computed on the shuffled curves
    themselves (a bias of the estimator that depends on the token, e.g. on its dimension, shows
    up there at true MI 0). nan when the estimator has no shuffled baseline."""
    key = f"{quantity}_shuffled"
    base = np.concatenate([np.asarray(c.get(key) or [], dtype=float) for c in curves.values()])
    base = base[np.isfinite(base)]
    if base.size < 2:
        return float("nan")
    null = margin({b: {quantity: c[key]} for b, c in curves.items()})
    return float(2 * np.std(base, ddof=1) + (abs(null) if np.isfinite(null) else 0.0))


def mi_ordering_components(curves: dict[str, dict[str, Any]], quantity: str) -> np.ndarray:
    """Per token position, Î_Random - Î_GPT2, then per position Î_GPT2 - Î_iGPT [2 x positions],
    in nats: all > 0 when Random > GPT2 > iGPT at every position."""
    r, g, i = (np.asarray(curves[b][quantity], dtype=float) for b in ("random", "gpt2", "igpt"))
    return np.concatenate([r - g, g - i])


def rtg_label_margin(iyt: list[float]) -> float:
    """Median over timesteps of Î(Y;T) at R̂_t minus the larger of that at s_t and a_t (§5.2,
    GPT2): > 0 when the return-to-go tokens carry the most label information at most timesteps."""
    v = np.asarray(iyt, dtype=float)
    steps = len(v) // 3                       # timesteps with all three tokens (a_K is excluded)
    gaps = [v[3 * t] - max(v[3 * t + 1], v[3 * t + 2]) for t in range(steps) if np.isfinite(v[3 * t: 3 * t + 3]).all()]
    return float(np.median(gaps)) if gaps else float("nan")


# -- §5.3 parameters --------------------------------------------------------------------------

def parameter_stats(cell: Cell, body: str) -> dict[str, float]:
    """L2 and cosine of the body's parameters between epoch 0 and the last epoch: of the one
    concatenated vector (App. F.1's text, paper) or medians over parameter sets as published
    (as-run: a tensor that is zero at both ends scores cosine 0, as the code's cos + 1e-6 gave)."""
    pc = analyses.parameter_change(cell.store, cell.cache, cell.run(body))
    if cell.definition == "paper":
        return {"l2": float(pc["concat_l2"]), "cosine": float(pc["concat_cosine"])}
    cos = np.nan_to_num(np.asarray(pc["cosine"], dtype=float), nan=0.0)
    return {"l2": float(np.nanmedian(pc["l2"])), "cosine": float(np.median(cos))}


def block_l2(cell: Cell, body: str) -> list[float]:
    """Total L2 change of each block's parameter sets, block 0 first (§5.3, Fig. 3)."""
    pc = analyses.parameter_change(cell.store, cell.cache, cell.run(body))
    blocks: dict[int, float] = {}
    for name, l2 in zip(pc["names"], pc["l2"]):
        b = int(name.split(".")[2]) if name.startswith("transformer.h.") else int(name.split(".")[0])
        blocks[b] = blocks.get(b, 0.0) + float(l2)
    return [blocks[b] for b in sorted(blocks)]


def depth_correlation(sums: list[float]) -> float:
    """Spearman correlation between block depth and block change: < 0 when shallow blocks move most."""
    return float(stats.spearmanr(np.arange(len(sums)), sums).statistic) if len(sums) > 2 else float("nan")


# -- §5.4 gradients ---------------------------------------------------------------------------

def gradients(cell: Cell, body: str) -> dict[str, Any]:
    """The gradient analysis of ``body``'s epoch-1 checkpoint (§5.4)."""
    return analyses.gradient_analysis(cell.store, cell.cache, cell.run(body))


def confusion(cell: Cell, g: dict[str, Any]) -> Measured:
    """Gradient confusion (min pairwise cosine over pairs i != j, §5.4) with its minimum over
    each half-sample of the confusion batch."""
    c = np.asarray(g["cosines"], dtype=np.float64)
    off = c + np.diag(np.full(c.shape[0], np.inf))
    idx = _half_samples(cell.profile, c.shape[0], cell.profile.analysis.batch_seed)
    reps = np.array([off[np.ix_(i, i)].min() for i in idx])
    return Measured(float(off.min()), reps, "analysis samples", c.shape[0])


def median_norm(cell: Cell, g: dict[str, Any]) -> Measured:
    """Median per-sample clipped gradient norm (Fig. 6) with half-samples of the samples."""
    x = np.asarray(g["norms"], dtype=np.float64)
    idx = _half_samples(cell.profile, x.size, cell.profile.analysis.batch_seed)
    return Measured(float(np.median(x)), np.median(x[idx], axis=1), "analysis samples", int(x.size))


def first_layernorm_share(cell: Cell, g: dict[str, Any]) -> Measured:
    """Share of block 0's first LayerNorm (weight + bias) in the per-parameter gradient norms of
    the mean gradient of the norm batch (Fig. 7), with its half-sample replicates."""
    return Measured(float(g["first_ln_share"]), np.asarray(g["first_ln_share_replicates"], dtype=np.float64),
                    "analysis samples", cell.profile.analysis.grad_norm_samples)


def top_two_parameters(g: dict[str, Any]) -> list[str]:
    """App. G.2: the two parameter sets with the largest full-batch gradient norms."""
    top = sorted(zip(g["param_norms"], g["param_names"]), reverse=True)[:2]
    return [n.removeprefix("transformer.h.") for _, n in top]


# -- §5.6.2 -----------------------------------------------------------------------------------

def attention_epoch(profile: Profile, run: Run, definition: str) -> int:
    """The epoch §5.6.2 compares with epoch 0. paper: the paper's fraction of training (epoch 4
    of 40 = 10 %; at least epoch 1), ``analysis.attention_fraction`` of the K=1 run's epochs;
    as-run: the paper's absolute epoch 4 (``analysis.attention_epoch``), capped at the last."""
    a, epochs = profile.analysis, run.config.train.epochs
    if definition == "as-run":
        return min(a.attention_epoch, epochs)
    return max(1, min(epochs, int(round(a.attention_fraction * epochs))))


def attention_gaps(cell: Cell, body: str, *, epoch: int | None = None) -> np.ndarray:
    """Per block and sample [L, B], |d(epoch 0) - d(epoch E)| of the K=1 run (Fig. 10), under the
    paper's (true) attention distance at 10 % of training or the as-run (published) one at the
    paper's epoch 4 (``cell.definition``); E from :func:`attention_epoch`."""
    run = cell.run(body, "K1")
    e = attention_epoch(cell.profile, run, cell.definition) if epoch is None else epoch
    d0 = np.asarray(analyses.attention_distances(cell.store, cell.cache, run, 0)[cell.definition], dtype=np.float64)
    d1 = np.asarray(analyses.attention_distances(cell.store, cell.cache, run, e)[cell.definition], dtype=np.float64)
    return np.abs(d0 - d1)


def median_gaps(cell: Cell, gaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-block median gap [L] and its half-sample replicates [R, L] (samples paired across bodies)."""
    idx = _half_samples(cell.profile, gaps.shape[1], cell.profile.analysis.batch_seed)
    return np.median(gaps, axis=1), np.stack([np.median(gaps[:, i], axis=1) for i in idx])
