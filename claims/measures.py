"""The statistic of each claim, computed from the runs and the cached analyses.

Kept apart from the criteria (in each claim file) so that the claims-layer tests can feed the
criteria synthetic values, and so that a per-seed test and its seed aggregate compute the same
number (the aggregate reuses the cached analyses). Each function returns a plain float (nan when
the statistic is undefined, which the criteria turn into "inconclusive") or a small dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dtcore.envs import NORMALISATIONS
from fixtures import analyses
from fixtures.cache import AnalysisCache
from fixtures.runs import Run, RunStore


def score_curve(run: Run, definition: str) -> list[tuple[int, float]]:
    """(epoch, normalised mean return of the reported target) per evaluated epoch."""
    normalise = NORMALISATIONS[definition]
    target = run.config.eval.targets[0]
    return [(e, normalise(run.config.env, float(np.mean(r[target]))))
            for e, r in sorted(run.eval_returns.items()) if r.get(target)]


def best_score(run: Run, definition: str) -> float:
    """Tables 1, 2, 4: the best per-epoch normalised mean return (spec §5.2, 'early stopping')."""
    curve = score_curve(run, definition)
    return max(s for _, s in curve) if curve else float("nan")


def log_series(run: Run, key: str, epochs: int | None = None) -> list[float]:
    """A per-epoch training-log value (epochs 1..), e.g. ``last_batch_action_error``."""
    recs = [r for r in run.log if int(r.get("epoch", 0)) >= 1 and r.get(key) is not None]
    recs.sort(key=lambda r: int(r["epoch"]))
    values = [float(r[key]) for r in recs]
    return values[:epochs] if epochs is not None else values


# -- §5.1 -------------------------------------------------------------------------------------

def mean_diagonal_cka(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str,
                      token: str, mode: str) -> float:
    run = store.get(env, backbone, seed, "K20")
    return float(np.nanmean(analyses.cka_diagonal(store, cache, run, token=token, mode=mode)))


def layernorm_share_above(store: RunStore, cache: AnalysisCache, env: str, seed: int, mode: str,
                          threshold: float) -> tuple[float, list[str]]:
    """Share of LayerNorm layers among the random body's layers whose diagonal CKA (state token)
    exceeds ``threshold`` (§5.1, App. D.3); nan when no layer exceeds it."""
    run = store.get(env, "random", seed, "K20")
    diag = analyses.cka_diagonal(store, cache, run, token="state", mode=mode)
    names = analyses.layer_labels(run)
    above = [n for n, v in zip(names, diag) if np.isfinite(v) and v > threshold]
    if not above:
        return float("nan"), above
    return sum(".ln_" in n for n in above) / len(above), above


# -- §5.2 -------------------------------------------------------------------------------------

def mi_curves(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str,
              estimator: str) -> dict[str, Any]:
    return analyses.mutual_information(store, cache, store.get(env, backbone, seed, "K20"), estimator=estimator)


def mi_ordering_share(curves: dict[str, dict[str, Any]], quantity: str) -> float:
    """Share of token positions where Random > GPT2 > iGPT for ``quantity`` ("ixt" | "iyt")."""
    r, g, i = (np.asarray(curves[b][quantity], dtype=float) for b in ("random", "gpt2", "igpt"))
    ok = np.isfinite(r) & np.isfinite(g) & np.isfinite(i)
    if not ok.any():
        return float("nan")
    return float(np.mean((r[ok] > g[ok]) & (g[ok] > i[ok])))


def rtg_label_share(iyt: list[float]) -> float:
    """Share of timesteps whose return-to-go token carries more label information Î(Y;T) than
    both the state and action tokens of the same timestep (§5.2, GPT2)."""
    v = np.asarray(iyt, dtype=float)
    steps = len(v) // 3                       # timesteps with all three tokens (a_K is excluded)
    wins = [v[3 * t] > v[3 * t + 1] and v[3 * t] > v[3 * t + 2] for t in range(steps)
            if np.isfinite(v[3 * t: 3 * t + 3]).all()]
    return float(np.mean(wins)) if wins else float("nan")


# -- §5.3 -------------------------------------------------------------------------------------

def parameter_stats(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str,
                    definition: str) -> dict[str, float]:
    """L2 and cosine of the body's parameters between epoch 0 and the last epoch: medians over
    parameter sets (as run) or of the one concatenated vector (App. F.1's text, paper)."""
    pc = analyses.parameter_change(store, cache, store.get(env, backbone, seed, "K20"))
    if definition == "paper":
        return {"l2": float(pc["concat_l2"]), "cosine": float(pc["concat_cosine"])}
    return {"l2": float(np.nanmedian(pc["l2"])), "cosine": float(np.nanmedian(pc["cosine"]))}


def largest_change_depth(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str
                         ) -> tuple[float, list[float]]:
    """Relative depth (block index / number of blocks) of the block whose parameter sets moved
    most in total L2 (§5.3: the shallow blocks), with the per-block sums."""
    pc = analyses.parameter_change(store, cache, store.get(env, backbone, seed, "K20"))
    blocks: dict[int, float] = {}
    for name, l2 in zip(pc["names"], pc["l2"]):
        b = int(name.split(".")[2]) if name.startswith("transformer.h.") else int(name.split(".")[0])
        blocks[b] = blocks.get(b, 0.0) + float(l2)
    sums = [blocks[b] for b in sorted(blocks)]
    return int(np.argmax(sums)) / len(sums), sums


# -- §5.4 -------------------------------------------------------------------------------------

def gradients(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str) -> dict[str, Any]:
    return analyses.gradient_analysis(store, cache, store.get(env, backbone, seed, "K20"))


def first_layernorm_share(g: dict[str, Any]) -> float:
    """Share of block 0's first LayerNorm (weight + bias) in the sum of per-parameter gradient
    norms (Fig. 7, as published: norms over the sum of norms)."""
    norms = {k.removeprefix("transformer.h."): float(v) for k, v in zip(g["param_names"], g["param_norms"])}
    total = sum(norms.values())
    ln = norms.get("0.ln_1.weight", 0.0) + norms.get("0.ln_1.bias", 0.0)
    return ln / total if total > 0 else float("nan")


# -- §5.6.2 -----------------------------------------------------------------------------------

def attention_gaps(store: RunStore, cache: AnalysisCache, env: str, seed: int, backbone: str,
                   definition: str) -> list[list[float]]:
    """Per block, the per-sample |d(epoch 0) - d(epoch E)| of the K=1 run (Fig. 10; E = 4 in the
    paper), under the paper's (true) or the as-run (published) attention distance."""
    run = store.get(env, backbone, seed, "K1")
    epoch = min(store.profile.analysis.attention_epoch, run.config.train.epochs)
    d0 = analyses.attention_distances(store, cache, run, 0)[definition]
    d1 = analyses.attention_distances(store, cache, run, epoch)[definition]
    return [np.abs(np.asarray(a) - np.asarray(b)).tolist() for a, b in zip(d0, d1)]
