"""Mutual information by MINE: the information-plane analysis of §5.2, App. E.3 and App. H.2.

Belghazi et al., "Mutual Information Neural Estimation" (ICML 2018). A critic T(x, z) is trained
to maximise the Donsker-Varadhan bound

    Î(X; Z) = mean_i T(x_i, z_i) - log mean_i exp T(x_i, z_π(i))        (π a permutation)

with the moving-average gradient correction of the paper's footnote-7 code (docs/spec.md
§6.2): the gradient of the second term is Σ exp(T) ∇T / (N · ema), ema <- 0.01 · mean exp T +
0.99 · ema, started at the first minibatch's value. The defaults are that code's: critic
concat(x, z) -> 3 x (Linear 400, ReLU) -> Linear 1 (App. E.1 says two layers; the code has three),
Adam lr 1e-4, 1000 iterations, each reshuffling the samples into n // 50 minibatches of 50 and
pairing each x with a z shuffled within the minibatch.

Evaluation (``evaluation=``):
- ``"in_sample"``: as published. The final estimate uses the very samples the critic was trained
  on, with one fresh permutation. At n = 100 this mostly measures how well the critic memorises
  the pairs (docs/metrics.md, MINE: independent 3+3-dim data read 2.9 nats).
- ``"held_out"``: train on a ``train_fraction`` split, evaluate on the rest with
  ``eval_permutations`` permutations pooled into the log-mean-exp.

Every :class:`MIEstimate` carries the shuffled-pairs baseline: the same estimator, same options,
trained and evaluated on (x, z permuted over samples), whose true MI is 0.

Differences from the published code, on purpose: log-mean-exp and the EMA are computed in the
log domain (``exp().mean().log()`` overflowed there, and its NaNs were dropped from the figures);
the EMA's ``+1e-6`` guard is not needed and not used; everything is seeded (critic initialisation
as ``nn.Linear``'s default, U(±1/sqrt(fan_in)), the minibatch order, the permutations, the
split); arithmetic is float64 by default.

:func:`mine_many` trains many estimators as one batched network (batched matmuls; each
estimator's input is zero-padded to the widest, and zero weights on zero inputs stay zero under
Adam), so its results equal a loop of :func:`mine` with the same seeds.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from dtcore.metrics.arrays import as_array, as_tensor, same_samples

log = logging.getLogger(__name__)

EVALUATIONS = ("in_sample", "held_out")


@dataclass(frozen=True)
class MIEstimate:
    """One MINE estimate, in nats."""

    value: float                         # the DV estimate of I(X; Z) on the evaluation pairs, nats
    curve: np.ndarray                    # [iters] training DV bound per iteration (mean over its minibatches)
    shuffled: float | None               # the same estimator on shuffled pairs (true MI 0); None if not run
    shuffled_curve: np.ndarray | None    # [iters] its training curve
    evaluation: str                      # "in_sample" (published) or "held_out"
    n_train: int                         # pairs the critic was trained on
    n_eval: int                          # pairs the final estimate was computed on
    seed: int                            # the seed every random draw derives from

    @property
    def excess(self) -> float:
        """value - shuffled: the estimate above the zero-MI baseline (nan without a baseline)."""
        return math.nan if self.shuffled is None else self.value - self.shuffled


@dataclass(frozen=True)
class MineOptions:
    """The estimator's settings, shared by every estimator of a :func:`mine_many` call."""

    hidden: tuple[int, ...] = (400, 400, 400)  # critic hidden widths (docs/spec.md §6.2: 3 x 400)
    iters: int = 1000                          # passes over the training pairs (docs/spec.md §6.2)
    batch_size: int = 50                       # minibatch; n // batch_size updates per pass
    lr: float = 1e-4                           # Adam learning rate
    ema_rate: float = 0.01                     # weight of the new value in the gradient-correction EMA
    evaluation: str = "in_sample"              # "in_sample" (published) or "held_out"
    train_fraction: float = 0.5                # held_out: share of pairs used for training
    eval_permutations: int = 50                # held_out: permutations pooled in the marginal term
    baseline: bool = True                      # also run the shuffled-pairs (true MI 0) estimator
    dtype: torch.dtype = torch.float64         # arithmetic precision
    device: str = "cpu"                        # torch device for training
    group_size: int | None = None              # pairs trained together per batched network; None = auto

    def check(self) -> None:
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive widths, got {self.hidden!r}")
        for name in ("iters", "batch_size", "eval_permutations", "group_size"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not 0 < self.ema_rate <= 1:
            raise ValueError(f"ema_rate must be in (0, 1], got {self.ema_rate}")
        if self.evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {EVALUATIONS}, got {self.evaluation!r}")
        if not 0 < self.train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {self.train_fraction}")


@dataclass(frozen=True)
class _Job:
    """One critic to train: its pairs (train and evaluation rows) and its random streams."""

    x: torch.Tensor          # [n, dx]
    z: torch.Tensor          # [n, dz]
    train_idx: torch.Tensor  # [n_train] long
    eval_idx: torch.Tensor   # [n_eval] long
    train_seed: int          # critic initialisation, minibatch order and in-minibatch shuffles
    final_seed: int          # the permutations of the final estimate


def _jobs_for_pair(x: torch.Tensor, z: torch.Tensor, seed: int, opts: MineOptions) -> list[_Job]:
    """The estimator of (x, z) and, with ``opts.baseline``, the one of (x, z shuffled)."""
    s_split, s_train, s_final, s_shuffle, s_btrain, s_bfinal = np.random.SeedSequence(seed).generate_state(6)
    n = x.shape[0]
    if opts.evaluation == "in_sample":
        train_idx = eval_idx = torch.arange(n)
    else:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(s_split)))
        n_train = int(round(n * opts.train_fraction))
        train_idx, eval_idx = order[:n_train], order[n_train:]
    jobs = [_Job(x, z, train_idx, eval_idx, int(s_train), int(s_final))]
    if opts.baseline:
        shuffle = torch.randperm(n, generator=torch.Generator().manual_seed(int(s_shuffle)))
        jobs.append(_Job(x, z[shuffle.to(z.device)], train_idx, eval_idx, int(s_btrain), int(s_bfinal)))
    return jobs


def _init_critics(jobs: list[_Job], gens: list[torch.Generator], opts: MineOptions, dx: int,
                  dz: int) -> list[torch.Tensor]:
    """Batched critic weights [E, in, out] and biases [E, 1, out], each estimator drawn from its generator.

    Order: [W1x [E, dx, h1], W1z [E, dz, h1], b1, W2, b2, ..., W_out [E, h_L, 1], b_out]. Each
    estimator draws U(±1/sqrt(fan_in)) (``nn.Linear``'s default) for its own concat(x, z) width;
    layer 1 is then split into its x rows and z rows, zero beyond the estimator's own widths.
    """
    widths = [int(h) for h in opts.hidden] + [1]
    drawn = []  # per estimator: [(w [in, out], b [1, out]) per layer]
    for job, gen in zip(jobs, gens):
        ins = [job.x.shape[1] + job.z.shape[1]] + widths[:-1]
        layers = []
        for fan_in, fan_out in zip(ins, widths):
            bound = 1 / math.sqrt(fan_in)
            w = torch.rand(fan_in, fan_out, generator=gen, dtype=torch.float64) * 2 * bound - bound
            b = torch.rand(1, fan_out, generator=gen, dtype=torch.float64) * 2 * bound - bound
            layers.append((w, b))
        drawn.append(layers)
    w1x = torch.zeros(len(jobs), dx, widths[0], dtype=torch.float64)
    w1z = torch.zeros(len(jobs), dz, widths[0], dtype=torch.float64)
    for e, (job, layers) in enumerate(zip(jobs, drawn)):
        jx, jz = job.x.shape[1], job.z.shape[1]
        w1x[e, :jx], w1z[e, :jz] = layers[0][0][:jx], layers[0][0][jx:]
    params = [w1x, w1z, torch.stack([layers[0][1] for layers in drawn])]
    for i in range(1, len(widths)):
        params += [torch.stack([layers[i][0] for layers in drawn]), torch.stack([layers[i][1] for layers in drawn])]
    return [p.to(opts.device, opts.dtype).requires_grad_(True) for p in params]


def _tail(params: list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
    """Critic layers after the first pre-activation h [E, m, h1]: -> T [E, m]."""
    for w, b in zip(params[3::2], params[4::2]):
        h = torch.baddbmm(b, torch.relu(h), w)
    return h.squeeze(-1)


def _rows(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Per-estimator row selection: t [E, m, d], idx [E, k] -> [E, k, d]."""
    return t[torch.arange(t.shape[0], device=t.device)[:, None], idx]


def _joint_and_marginal(params: list[torch.Tensor], x: torch.Tensor, z: torch.Tensor,
                        perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """T on the pairs (x_i, z_i) and on (x_i, z_perm(i)): each [E, m]. z's projection is reused."""
    hx = torch.baddbmm(params[2], x, params[0])  # [E, m, h1]
    hz = torch.bmm(z, params[1])                 # [E, m, h1]
    m = x.shape[1]
    t = _tail(params, torch.cat([hx + hz, hx + _rows(hz, perm)], dim=1))  # [E, 2m]
    return t[:, :m], t[:, m:]


def _log_mean_exp(t: torch.Tensor) -> torch.Tensor:
    """log mean exp over the last axis, without overflow: [E, m] -> [E]."""
    return torch.logsumexp(t, dim=-1) - math.log(t.shape[-1])


def _draws(gens: list[torch.Generator], chunk: int, n: int, batches: int, bs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each estimator's minibatch orders [E, chunk, n] and in-minibatch shuffles [E, chunk, batches, bs]."""
    order = torch.stack([torch.rand(chunk, n, generator=g).argsort(-1) for g in gens])
    shuffle = torch.stack([torch.rand(chunk, batches, bs, generator=g).argsort(-1) for g in gens])
    return order, shuffle


def _train(params: list[torch.Tensor], x: torch.Tensor, z: torch.Tensor, gens: list[torch.Generator],
           opts: MineOptions) -> torch.Tensor:
    """Adam on the EMA-corrected DV loss of every estimator at once; returns the curve [iters, E]."""
    n, bs = x.shape[1], opts.batch_size
    batches = n // bs
    optimiser = torch.optim.Adam(params, lr=opts.lr, fused=True)
    log_keep, log_new = math.log1p(-opts.ema_rate) if opts.ema_rate < 1 else -math.inf, math.log(opts.ema_rate)
    log_ema = None
    curve = torch.zeros(opts.iters, x.shape[0], dtype=torch.float64, device=x.device)
    for start in range(0, opts.iters, 100):
        chunk = min(100, opts.iters - start)
        order, shuffle = (d.to(x.device) for d in _draws(gens, chunk, n, batches, bs))
        for it in range(chunk):
            for b in range(batches):
                idx = order[:, it, b * bs:(b + 1) * bs]  # [E, bs]
                t_joint, t_marg = _joint_and_marginal(params, _rows(x, idx), _rows(z, idx), shuffle[:, it, b])
                lme = _log_mean_exp(t_marg)  # [E]
                with torch.no_grad():
                    new = lme.detach()
                    log_ema = new if log_ema is None else torch.logaddexp(log_ema + log_keep, new + log_new)
                    weight = torch.exp(new - log_ema)  # mean exp T / ema: the corrected gradient's scale
                loss = (weight * lme - t_joint.mean(1)).sum()
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                curve[start + it] += (t_joint.mean(1) - lme).detach().to(torch.float64) / batches
    return curve.cpu()


@torch.no_grad()
def _final_estimate(params: list[torch.Tensor], x: torch.Tensor, z: torch.Tensor, seeds: list[int],
                    permutations: int) -> torch.Tensor:
    """mean T(joint) - log mean exp T over ``permutations`` shuffles of z, pooled: [E]."""
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    m = x.shape[1]
    lse, t_joint = [], None
    for _ in range(permutations):
        perm = torch.stack([torch.randperm(m, generator=g) for g in gens]).to(x.device)
        t_joint, t_marg = _joint_and_marginal(params, x, z, perm)
        lse.append(torch.logsumexp(t_marg, dim=1))
    pooled = torch.logsumexp(torch.stack(lse, dim=1), dim=1) - math.log(permutations * m)
    return t_joint.mean(1) - pooled


def _padded(rows: list[torch.Tensor], width: int, opts: MineOptions) -> torch.Tensor:
    """Stack [m, d_e] matrices into [E, m, width], zero-padding the features."""
    out = torch.zeros(len(rows), rows[0].shape[0], width, dtype=opts.dtype, device=opts.device)
    for e, r in enumerate(rows):
        out[e, :, : r.shape[1]] = r.to(opts.device, opts.dtype)
    return out


def _fit_group(jobs: list[_Job], opts: MineOptions) -> tuple[np.ndarray, np.ndarray]:
    """Train and evaluate one batch of estimators: values [E] and curves [iters, E]."""
    dx, dz = max(j.x.shape[1] for j in jobs), max(j.z.shape[1] for j in jobs)
    gens = [torch.Generator().manual_seed(j.train_seed) for j in jobs]
    params = _init_critics(jobs, gens, opts, dx, dz)  # the generators then go on to the minibatch draws
    x_tr = _padded([j.x[j.train_idx] for j in jobs], dx, opts)
    z_tr = _padded([j.z[j.train_idx] for j in jobs], dz, opts)
    curve = _train(params, x_tr, z_tr, gens, opts)
    perms = 1 if opts.evaluation == "in_sample" else opts.eval_permutations
    x_ev = _padded([j.x[j.eval_idx] for j in jobs], dx, opts)
    z_ev = _padded([j.z[j.eval_idx] for j in jobs], dz, opts)
    values = _final_estimate(params, x_ev, z_ev, [j.final_seed for j in jobs], perms)
    return values.to("cpu", torch.float64).numpy(), curve.numpy()


def _auto_group_size(opts: MineOptions, dx: int, dz: int) -> int:
    """Pairs per batched network when ``group_size=None``.

    On a GPU, large groups (256 pairs). On a CPU, a critic of 100k weights or more (the paper's
    3 x 400 has 351k) is compute-bound even alone: one pair at a time, since batched matmuls only
    run at a lower rate than plain ones there (``bench/metrics.py``: 20 pairs of 3 x 400 critics ran
    at 0.9x the loop's speed in groups of 5 pairs; groups of 1 pair matched it). Smaller
    critics are overhead-bound, and batching is what pays: a group's weights and Adam state are kept
    to about 4M numbers (32 MB in float64), beyond which Adam's passes over memory cost more than
    batching saves (2 x 32 critics: 5.2-6.1x the loop's speed for 20 pairs in one group).
    """
    if torch.device(opts.device).type != "cpu":
        return 256
    widths = [dx + dz, *opts.hidden, 1]
    weights = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:]))
    if weights >= 100_000:
        return 1
    return max(1, 4_000_000 // (weights * (2 if opts.baseline else 1)))


def _pair(x: Any, z: Any, i: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validated float64 [n, dx], [n, dz] tensors (on the CPU: the batched training moves them)."""
    tag = "" if i is None else f"pairs[{i}]."
    xt = as_tensor(x, f"{tag}x", ndim=2, min_samples=2, device="cpu")
    zt = as_tensor(z, f"{tag}z", ndim=2, min_samples=2, device="cpu")
    same_samples((f"{tag}x", f"{tag}z"), xt, zt)
    return xt, zt


def _check_sizes(n: int, opts: MineOptions, where: str) -> None:
    n_train = n if opts.evaluation == "in_sample" else int(round(n * opts.train_fraction))
    if n_train < opts.batch_size:
        raise ValueError(f"{where} has {n} samples: {n_train} training pairs, fewer than batch_size={opts.batch_size}")
    if n - n_train < 2 and opts.evaluation == "held_out":
        raise ValueError(f"{where} has {n} samples: {n - n_train} held-out pairs, need at least 2")


def _fit_all(jobs: list[_Job], opts: MineOptions) -> tuple[list[float], list[np.ndarray]]:
    """Values and curves of every job: jobs with the same n in groups of batched networks."""
    by_n: dict[int, list[int]] = defaultdict(list)
    for k, job in enumerate(jobs):
        by_n[job.x.shape[0]].append(k)
    group_size = opts.group_size or _auto_group_size(opts, max(j.x.shape[1] for j in jobs),
                                                     max(j.z.shape[1] for j in jobs))
    per_group = group_size * (2 if opts.baseline else 1)  # a pair's estimator and its baseline stay together
    values: list[float] = [math.nan] * len(jobs)
    curves: list[np.ndarray] = [np.empty(0)] * len(jobs)
    for members in by_n.values():
        for start in range(0, len(members), per_group):
            group = members[start:start + per_group]
            log.debug("MINE: training %d estimators together (n=%d)", len(group), jobs[group[0]].x.shape[0])
            vals, curve = _fit_group([jobs[k] for k in group], opts)
            for e, k in enumerate(group):
                values[k], curves[k] = float(vals[e]), curve[:, e].copy()
    return values, curves


def mine_many(pairs: Sequence[tuple[Any, Any]], *, seed: int = 0, seeds: Sequence[int] | None = None,
              hidden: Sequence[int] = (400, 400, 400), iters: int = 1000, batch_size: int = 50,
              lr: float = 1e-4, ema_rate: float = 0.01, evaluation: str = "in_sample",
              train_fraction: float = 0.5, eval_permutations: int = 50, baseline: bool = True,
              dtype: torch.dtype = torch.float64, device: str = "cpu", group_size: int | None = None
              ) -> list[MIEstimate]:
    """MINE for every (x [n, dx], z [n, dz]) pair, trained as batched networks; one MIEstimate each.

    Every estimator uses ``seed`` (or ``seeds[i]``) exactly as :func:`mine` would, so the result
    equals ``[mine(x, z, seed=s, **same_options) for ...]`` up to float rounding. Pairs may differ
    in dx, dz and n; estimators with the same n are trained together, ``group_size`` pairs (and
    their baselines) at a time (None: chosen by :func:`_auto_group_size`). Options as :func:`mine`.
    """
    opts = MineOptions(tuple(int(h) for h in hidden), int(iters), int(batch_size), float(lr), float(ema_rate),
                       evaluation, float(train_fraction), int(eval_permutations), bool(baseline), dtype,
                       str(device), None if group_size is None else int(group_size))
    opts.check()
    if seeds is not None and len(seeds) != len(pairs):
        raise ValueError(f"seeds must give one seed per pair: {len(seeds)} seeds for {len(pairs)} pairs")
    seeds = [int(seed)] * len(pairs) if seeds is None else [int(s) for s in seeds]
    if not pairs:
        return []
    jobs: list[_Job] = []
    for i, (x, z) in enumerate(pairs):
        xt, zt = _pair(x, z, i)
        _check_sizes(xt.shape[0], opts, f"pairs[{i}] (x shape {tuple(xt.shape)})")
        jobs += _jobs_for_pair(xt, zt, seeds[i], opts)
    values, curves = _fit_all(jobs, opts)
    step = 2 if opts.baseline else 1
    out = []
    for i in range(len(pairs)):
        main, base = i * step, i * step + 1
        out.append(MIEstimate(
            value=values[main], curve=curves[main],
            shuffled=values[base] if opts.baseline else None,
            shuffled_curve=curves[base] if opts.baseline else None,
            evaluation=opts.evaluation, n_train=len(jobs[main].train_idx), n_eval=len(jobs[main].eval_idx),
            seed=seeds[i]))
    return out


def mine(x: Any, z: Any, *, hidden: Sequence[int] = (400, 400, 400), iters: int = 1000, batch_size: int = 50,
         lr: float = 1e-4, ema_rate: float = 0.01, seed: int = 0, evaluation: str = "in_sample",
         train_fraction: float = 0.5, eval_permutations: int = 50, baseline: bool = True,
         dtype: torch.dtype = torch.float64, device: str = "cpu") -> MIEstimate:
    """MINE estimate of I(X; Z) in nats from paired samples x [n, dx], z [n, dz] (rows are samples).

    Defaults are the paper's code (docs/spec.md §6.2): critic 3 x 400 ReLU, 1000 iterations of n //
    ``batch_size`` minibatches, Adam ``lr``, EMA-corrected gradient with rate ``ema_rate``,
    ``evaluation="in_sample"`` with one permutation. ``evaluation="held_out"`` trains on a
    ``train_fraction`` split and evaluates on the rest with ``eval_permutations`` permutations.
    ``baseline=True`` also trains the same estimator on shuffled pairs (``MIEstimate.shuffled``).
    Deterministic for a given ``seed``.
    """
    return mine_many([(x, z)], seeds=[seed], hidden=hidden, iters=iters, batch_size=batch_size, lr=lr,
                     ema_rate=ema_rate, evaluation=evaluation, train_fraction=train_fraction,
                     eval_permutations=eval_permutations, baseline=baseline, dtype=dtype, device=device)[0]


def gaussian_mi(x: Any, z: Any, *, shrinkage: float = 0.0) -> float:
    """Plug-in MI (nats) of x [n, dx] and z [n, dz] under a joint Gaussian: a cross-check of MINE.

    I = ½ (log det Cxx + log det Czz - log det C) = -½ Σ log(1 - ρ_k²) over the canonical
    correlations ρ_k, from the sample correlation matrix C of [x, z]. ``shrinkage`` λ in [0, 1)
    uses (1 - λ) C + λ I, needed when n <= dx + dz (the sample matrix is then singular).
    Exact for Gaussian data as n grows; a lower bound on dependence it cannot see (non-linear).
    """
    xa = as_array(x, "x", ndim=2, min_samples=3)
    za = as_array(z, "z", ndim=2, min_samples=3)
    same_samples(("x", "z"), xa, za)
    if not 0 <= shrinkage < 1:
        raise ValueError(f"shrinkage must be in [0, 1), got {shrinkage}")
    n, dx = xa.shape
    if shrinkage == 0 and n <= dx + za.shape[1]:
        raise ValueError(f"x {xa.shape} and z {za.shape}: too few samples for a full-rank covariance "
                         f"(need n > dx + dz); pass shrinkage > 0")
    for name, a in (("x", xa), ("z", za)):
        if np.any(a.std(0) == 0):
            raise ValueError(f"{name} (shape {a.shape}) has a constant column: its correlation is undefined")
    corr = np.corrcoef(np.hstack([xa, za]), rowvar=False)
    corr = (1 - shrinkage) * corr + shrinkage * np.eye(corr.shape[0])
    logdets = []
    for block in (corr[:dx, :dx], corr[dx:, dx:], corr):
        sign, logdet = np.linalg.slogdet(block)
        if sign <= 0:
            raise ValueError(f"the correlation matrix of [x, z] ({n} x {corr.shape[0]}) is singular; "
                             f"pass shrinkage > 0")
        logdets.append(logdet)
    return float(0.5 * (logdets[0] + logdets[1] - logdets[2]))
