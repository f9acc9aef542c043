"""A group-sequential design for the seed aggregate's t test (issue #31; ``docs/statistics.md``,
"Sequential design"): seeds run in rounds, each claim is looked at after every round and frozen
at the look that decides it, with its error rate held over all looks.

- **Looks** (:func:`looks_for`): the seed counts of the rounds, fixed before round one (3, 5, 8,
  12, 16, 20, ... up to ``--max-seeds``).
- **Boundaries**: an alpha-spending function (Lan and DeMets 1983) spends the claim's two-sided
  level over the looks by the information fraction t_k = n_k / n_K: the power family
  ``alpha t^2`` (Kim and DeMets 1987; the default, registered before any run: between the two
  classic shapes, and the one of the three that saves a third of the seeds at a 1-sd effect, see
  docs/statistics.md), the O'Brien-Fleming type ``2 - 2 Phi(z_{1-alpha/2} / sqrt t)`` (almost
  nothing at 3 seeds) or the Pocock type ``alpha log(1 + (e - 1) t)``. The nominal level of
  each look (:meth:`Design.levels`) comes from the canonical joint distribution of the standardised
  statistics (Z_k = S_k / sqrt n_k, S a sum of n_k independent normals), by recursive numerical
  integration on a grid (Armitage, McPherson and Rowe 1969; Jennison and Turnbull 2000, ch. 19).
  The t statistic of each look is compared with the nominal level on the p scale (the
  "significance level approach", Jennison and Turnbull 2000, section 11.2): the two-sided p of
  :func:`dtcore.statistics.t_test_p` at look k below the look's level decides. Its error at the
  looks' small degrees of freedom is checked by simulation with the project's t statistics
  (:func:`dtcore.sequential_errors.simulate`; measured rates in docs/statistics.md).
- **Every rule's own p-value** (:func:`boundary_p`): a claim decided by another rule (the sign
  test, the rate against the paper's, TOST, the log-scale t) meets the same boundaries with the
  p-value its rule records, on the scale at which its fixed-sample rule decides below the level
  at most alpha / 2 a side: as recorded, except the TOST's one-sided p of a difference beyond the
  margin, doubled. Each rule's error over all looks is simulated with its own decision function
  (:mod:`dtcore.sequential_errors`): the discrete ones stay below their rate, so they keep the
  t boundaries.
- **The correction across claims** (:func:`decided_now`): each claim's **repeated p-value**
  (:meth:`Design.repeated_p`; Jennison and Turnbull 2000, section 9.1) is the smallest level at
  which its sequential test has crossed a boundary at any look so far: a p-value for any stopping
  rule, since P(P <= a) <= a is the level-a design's error over all looks. Benjamini-Hochberg
  runs over the family's repeated p-values at every look; they only fall as looks close, so a
  claim decided at one look stays decided at every later one (it is frozen), and the decisions
  at the last look are Benjamini-Hochberg's over valid p-values (simulated for a family mixing
  every rule, :func:`dtcore.sequential_errors.family_through_looks`).
- **Futility** (non-binding, so it only lowers the error): an open claim stops when
  :func:`dtcore.deciding.what_would_decide` at the level of its last look says the seeds it needs
  exceed the maximum, or that it lies inside a noise floor.
- **The procedure** (:func:`close_look`, :func:`run`): a :class:`SequentialState` (saved as JSON
  after every look, so an interrupted procedure resumes where it stopped), a round callback that
  builds the next look's runs and returns the claims' observations with the CPU hours spent, and a
  budget: no round starts once the hours spent reach it, so the budget holds within one round.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import optimize, stats

from dtcore import deciding, statistics
from dtcore.policy import ALPHA, next_step_level
from dtcore.verdicts import DECISIVE

SPENDING = ("power-2", "obrien-fleming", "pocock")
BASE_LOOKS = (3, 5, 8, 12, 16, 20)
# The levels a repeated p-value is read against (log-spaced, with the design's own level).
ALPHA_GRID = np.union1d(np.geomspace(1e-8, 0.5, 61), [ALPHA])
_STEP, _EDGE = 0.02, 9.0          # the z grid of the recursive integration
CALIBRATION_LEVELS = (0.2, 0.05, 0.01, 0.002)   # the levels the t calibration is simulated at
CALIBRATION_REPS, CALIBRATION_SEED = 200_000, 20261206
STOPS = ("decided", "futility", "floor", "max seeds", "capped", "budget")
DESELECTED = "deselected"   # a member ``-k`` leaves out: never run, its repeated p stays 1 in the correction


def spent(alpha: float, t: np.ndarray | float, spending: str = "power-2") -> np.ndarray:
    """Cumulative two-sided error spent by information fraction ``t`` (0-1) of a level-``alpha`` test."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    if spending == "power-2":
        return alpha * t ** 2
    if spending == "obrien-fleming":
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / np.sqrt(t)), 0.0)
    if spending == "pocock":
        return alpha * np.log(1 + (math.e - 1) * t)
    raise ValueError(f"spending must be one of {SPENDING}, got {spending!r}")


def looks_for(max_seeds: int, base: Sequence[int] = BASE_LOOKS) -> tuple[int, ...]:
    """The seed counts of the looks up to ``max_seeds`` (>= 3): the ``base`` counts below it, then
    about 4/3 of the last one, and ``max_seeds`` itself as the last look."""
    if max_seeds < 3:
        raise ValueError(f"max_seeds must be at least 3 (a first look of 3 seeds), got {max_seeds}")
    looks = [n for n in base if n < max_seeds]
    while max_seeds > base[-1] and round(looks[-1] * 4 / 3) < max_seeds - 1:
        looks.append(round(looks[-1] * 4 / 3))
    return tuple(looks) + (max_seeds,)


def _exit_probability(b: float, weights: np.ndarray, grid: np.ndarray, r: float, s: float) -> float:
    """P(|Z_k| >= b, still open before) from the sub-density ``weights`` of Z_{k-1} on ``grid``."""
    return float(weights @ (stats.norm.cdf((-b - r * grid) / s) + stats.norm.sf((b - r * grid) / s)))


def _kernels(looks: tuple[int, ...], grid: np.ndarray) -> list[np.ndarray]:
    """[G, G] transition of Z_{k-1} to Z_k on ``grid`` for each look k >= 1 (times the step):
    Z_k | Z_{k-1} = z ~ N(r z, s^2), r = sqrt(n_{k-1} / n_k), s^2 = (n_k - n_{k-1}) / n_k."""
    out = []
    for prev, n in zip(looks, looks[1:]):
        r, s = math.sqrt(prev / n), math.sqrt((n - prev) / n)
        out.append(stats.norm.pdf((grid[:, None] - r * grid[None, :]) / s) / s * _STEP)
    return out


def _nominal(looks: tuple[int, ...], increments: np.ndarray, grid: np.ndarray, kernels: list[np.ndarray]
             ) -> np.ndarray:
    """[K] two-sided nominal levels whose boundaries exit with probability ``increments`` [K] at
    the looks, under the canonical joint distribution (recursive integration on ``grid``)."""
    levels = np.empty(len(looks))
    weights = stats.norm.pdf(grid) * _STEP            # the sub-density of Z_1 (times the step)
    r = s = 1.0
    for k, n in enumerate(looks):
        if k > 0:
            r, s = math.sqrt(looks[k - 1] / n), math.sqrt((n - looks[k - 1]) / n)
        target = increments[k]
        if target <= 0:
            b = math.inf
        elif k == 0:
            b = float(stats.norm.isf(target / 2))
        else:
            open_mass = float(weights.sum())
            b = 0.0 if target >= open_mass else optimize.brentq(
                lambda x: _exit_probability(x, weights, grid, r, s) - target, 0.0, _EDGE + 2, xtol=1e-10)
        levels[k] = 2 * stats.norm.sf(b)
        if k + 1 < len(looks):                          # Z_{k+1}'s sub-density, open at look k
            inside = np.abs(grid) < b
            if k > 0:
                weights = kernels[k - 1] @ weights
            weights = np.where(inside, weights, 0.0)
    return levels


def _interp_rows(table: np.ndarray, at: np.ndarray) -> np.ndarray:
    """[len(at), K] rows of ``table`` [A, K] (over :data:`ALPHA_GRID`) at the levels ``at``, log-log."""
    logs = np.log(np.maximum(table, 1e-300))
    return np.exp(np.stack([np.interp(np.log(at), np.log(ALPHA_GRID), col) for col in logs.T], axis=1))


@functools.lru_cache(maxsize=16)
def _canonical(looks: tuple[int, ...], spending: str) -> np.ndarray:
    """[A, K] nominal levels of the looks for each level of :data:`ALPHA_GRID` under the canonical
    (normal, known-variance) joint distribution, non-decreasing in the level."""
    t = np.asarray(looks, dtype=np.float64) / looks[-1]
    grid = np.arange(-_EDGE, _EDGE + _STEP / 2, _STEP)
    kernels = _kernels(looks, grid)
    rows = [_nominal(looks, np.diff(spent(a, t, spending), prepend=0.0), grid, kernels) for a in ALPHA_GRID]
    return np.maximum.accumulate(np.array(rows), axis=0)


@functools.lru_cache(maxsize=16)
def calibration(looks: tuple[int, ...], spending: str) -> np.ndarray:
    """[len(CALIBRATION_LEVELS)] the canonical design level whose boundaries give the t tests of
    the looks the error of each of :data:`CALIBRATION_LEVELS`, found on :data:`CALIBRATION_REPS`
    simulated null paths of normal per-seed values (:func:`dtcore.statistics.t_test_p_rows` at
    every look; a fixed seed, so every process reads the same boundaries). The t statistics of
    successive looks share their variance estimate, which the canonical distribution ignores: at
    3-20 seeds it overspends by about 3 % of the level (docs/statistics.md)."""
    x = np.random.default_rng(CALIBRATION_SEED).normal(size=(CALIBRATION_REPS, looks[-1]))
    p = np.stack([statistics.t_test_p_rows(x[:, :n], 0.0) for n in looks], axis=1)    # [R, K]
    table = _canonical(looks, spending)

    def excess(log_b: float, a: float) -> float:
        return float((p <= _interp_rows(table, np.array([math.exp(log_b)]))[0]).any(axis=1).mean()) - a

    return np.array([math.exp(optimize.brentq(excess, math.log(a / 4), math.log(min(4 * a, 0.5)), args=(a,),
                                              xtol=1e-4)) for a in CALIBRATION_LEVELS])


@functools.lru_cache(maxsize=16)
def _table(looks: tuple[int, ...], spending: str) -> np.ndarray:
    """[A, K] the calibrated nominal levels for each level of :data:`ALPHA_GRID`: the canonical
    boundaries at the level :func:`calibration` maps it to (log-interpolated between the
    calibration levels, the nearest one's ratio outside them)."""
    anchors = np.log(CALIBRATION_LEVELS[::-1])
    ratio = np.log(calibration(looks, spending)[::-1] / np.array(CALIBRATION_LEVELS[::-1]))
    mapped = ALPHA_GRID * np.exp(np.interp(np.log(ALPHA_GRID), anchors, ratio))
    return np.maximum.accumulate(_interp_rows(_canonical(looks, spending), mapped), axis=0)


@dataclass(frozen=True)
class Design:
    """The looks and boundaries of every claim's sequential t test, fixed before round one."""

    looks: tuple[int, ...]              # seeds at each look, increasing; the last is --max-seeds
    alpha: float = ALPHA                # each claim's two-sided level over all looks (alpha / 2 a side)
    spending: str = "power-2"           # the alpha-spending function (SPENDING)

    def __post_init__(self) -> None:
        if not (self.looks and self.looks[0] >= 2 and all(a < b for a, b in zip(self.looks, self.looks[1:]))):
            raise ValueError(f"looks must be increasing seed counts from at least 2, got {self.looks}")
        if self.spending not in SPENDING:
            raise ValueError(f"spending must be one of {SPENDING}, got {self.spending!r}")

    def spent(self, alpha: float | None = None) -> np.ndarray:
        """[K] cumulative two-sided error spent by each look."""
        return spent(self.alpha if alpha is None else alpha, np.asarray(self.looks) / self.looks[-1], self.spending)

    def levels(self, alpha: float | None = None) -> np.ndarray:
        """[K] two-sided nominal p-value each look's t test must reach, for the level-``alpha`` design."""
        return _interp_rows(_table(self.looks, self.spending), np.array([self.alpha if alpha is None else alpha]))[0]

    def critical_t(self, alpha: float | None = None) -> np.ndarray:
        """[K] the |t| each look must reach (Student t with n_k - 1 degrees of freedom)."""
        return stats.t.isf(self.levels(alpha) / 2, np.asarray(self.looks) - 1)

    def look_of(self, n: int) -> int | None:
        """The index of the last look with at most ``n`` seeds (None: fewer than the first look)."""
        at = [k for k, m in enumerate(self.looks) if m <= n]
        return at[-1] if at else None

    def repeated_p(self, look: int, p: np.ndarray | float) -> np.ndarray:
        """The smallest design level at which a t test p-value ``p`` at look index ``look``
        crosses that look's boundary (1.0 above the grid's largest level)."""
        col = np.maximum(_table(self.looks, self.spending)[:, look], 1e-300)
        p = np.maximum(np.asarray(p, dtype=np.float64), 1e-300)
        inverse = np.exp(np.interp(np.log(p), np.log(col), np.log(ALPHA_GRID)))
        return np.where(p > col[-1], 1.0, inverse)

    def to_json(self) -> dict[str, Any]:
        return {"looks": list(self.looks), "alpha": self.alpha, "spending": self.spending}


# -- the procedure --------------------------------------------------------------------------

@dataclass(frozen=True)
class Observation:
    """A claim's headline row at a look: its raw outcome, its p-value in the family and, per
    variant, the recorded values (``method``, ``n``, ``value``, ``sd``, ``threshold``, ...) that
    :func:`dtcore.deciding.what_would_decide` reads."""

    outcome: str
    p_value: float | None
    n: int
    variants: tuple[Mapping[str, Any], ...] = ()    # the recorded values of each variant's seed aggregate


@dataclass
class Track:
    """One claim (x environment) through the looks."""

    status: str = "open"             # "open", one of STOPS or DESELECTED
    outcome: str = "inconclusive"    # the raw outcome at its last look
    look: int | None = None          # index of the look that decided or stopped it
    seeds: int = 0                   # seeds of its last observation
    p_values: list[float] = field(default_factory=list)   # its rule's recorded p at each of its looks
    repeated_p: float = 1.0          # its repeated p-value over its looks so far
    error_spent: float | None = None  # the design's error spent by the look that decided it
    reason: str = ""


@dataclass
class SequentialState:
    """Where a sequential procedure stands: saved after every look, read back to resume."""

    design: Design
    claims: dict[str, Track]          # "claim_id|env" -> its track; the correction's family
    budget_hours: float | None = None
    looks_done: int = 0
    spent_hours: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)   # per closed look: seeds, hours, decided
    plan: dict[str, Any] = field(default_factory=dict)   # the plan as registered before round one: looks,
                                                         # boundaries, budget, max seeds, seeds, round one's
                                                         # runs, with when and at which commit

    def open(self) -> list[str]:
        return [key for key, t in self.claims.items() if t.status == "open"]

    def over_budget(self) -> bool:
        return self.budget_hours is not None and self.spent_hours >= self.budget_hours

    def finished(self) -> bool:
        return not self.open() or self.looks_done >= len(self.design.looks) or self.over_budget()

    def to_json(self) -> dict[str, Any]:
        return {"design": self.design.to_json(), "budget_hours": self.budget_hours, "looks_done": self.looks_done,
                "spent_hours": self.spent_hours, "history": self.history, "plan": self.plan,
                "claims": {k: dataclasses.asdict(t) for k, t in self.claims.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SequentialState:
        d = data["design"]
        return cls(Design(tuple(d["looks"]), d["alpha"], d["spending"]),
                   {k: Track(**t) for k, t in data["claims"].items()}, data["budget_hours"], data["looks_done"],
                   data["spent_hours"], list(data["history"]), dict(data.get("plan") or {}))

    def save(self, path: Path) -> None:
        """Write the state atomically (a temporary file renamed over ``path``; its folder made)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> SequentialState:
        """The state :meth:`save` wrote to ``path``; a file that is not one (cut short, edited,
        another file's JSON) is a ``ValueError`` naming it and what is wrong."""
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            what = str(err).strip("'")   # a KeyError's key comes quoted
            raise ValueError(f"{path} is not a sequential design's saved state ({type(err).__name__}: {what})") from err


def start(keys: Sequence[str], design: Design, budget_hours: float | None = None,
          deselected: Mapping[str, str] | None = None) -> SequentialState:
    """A fresh procedure over the family ``keys``; the members of ``deselected`` (key -> why) are
    never run and stay in the family at repeated p 1, as a claim ``-k`` leaves out of a fixed run."""
    deselected = deselected or {}
    return SequentialState(design, {k: Track(status=DESELECTED, reason=deselected[k]) if k in deselected else Track()
                                    for k in keys}, budget_hours)


def decided_now(repeated_p: np.ndarray, decisive: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """[R, m] which claims Benjamini-Hochberg decides over the repeated p-values [R, m] (R
    replications of a family of m): adjusted below ``alpha`` and decisive on the raw outcome."""
    return (statistics.benjamini_hochberg_rows(repeated_p) < alpha) & decisive


# (method, outcome) of the rules whose recorded p is one-sided while their fixed-sample rule decides
# at alpha / 2 on that side: TOST's "different", its 95 % interval wholly beyond the margin
# (dtcore.verdicts.check_aggregate records p_different, decided below 0.025).
ONE_SIDED = (("tost", "contradicted"),)


def boundary_p(p: np.ndarray | float, outcome: np.ndarray | str, method: str) -> np.ndarray:
    """A rule's recorded p-value on the scale of the boundaries (elementwise over ``p`` and
    ``outcome``): the p whose fixed-sample rule decides below :data:`ALPHA` with at most
    ALPHA / 2 on each side, the scale the two-sided t test's levels are spent on. The t (also on
    the log scale), sign-test, Clopper-Pearson and TOST-equivalence p as recorded; the one-sided
    p of a :data:`ONE_SIDED` outcome doubled (without it TOST's false "different" at the margin
    is 4.2 % over the looks, docs/statistics.md)."""
    p = np.asarray(p, dtype=np.float64)
    one_sided = np.zeros(np.shape(outcome), dtype=bool)
    for m, o in ONE_SIDED:
        one_sided |= (method == m) & (np.asarray(outcome) == o)
    return np.where(one_sided, np.minimum(1.0, 2 * p), p)


def _method(obs: Observation) -> str:
    """The decision rule of an observation: its variants' ``method``, a :data:`ONE_SIDED` one where
    any variant has it (a variant left with too few values records another), "" when none is."""
    methods = [str(v.get("method") or "") for v in obs.variants]
    return next((m for m in methods if m in dict(ONE_SIDED)), methods[0] if methods else "")


def _futility(obs: Observation, level: float, max_seeds: int) -> tuple[str, str] | None:
    """("floor" | "futility", why) when a variant the claim needs sits inside a noise floor or
    needs more than ``max_seeds`` seeds at ``level`` (:func:`dtcore.deciding.what_would_decide`)."""
    for values in obs.variants:
        if int(values.get("n") or 0) < 2:
            continue
        need = deciding.what_would_decide(values, level)
        if need.path == "floor":
            return "floor", need.text
        if need.seeds is None or need.seeds > max_seeds:
            return "futility", f"{need.text} (more than the {max_seeds} seeds of the last look)"
    return None


def close_look(state: SequentialState, observations: Mapping[str, Observation], hours: float) -> list[str]:
    """Close the next look: record the open claims' observations, decide by Benjamini-Hochberg over
    every claim's repeated p-value, stop the futile ones; returns the keys decided at this look."""
    design, k = state.design, state.looks_done
    for key in state.open():
        track, obs = state.claims[key], observations.get(key)
        if obs is None or obs.p_value is None or not math.isfinite(obs.p_value):
            continue
        if obs.n <= track.seeds or design.look_of(obs.n) is None:   # its seeds stopped growing
            track.status, track.look, track.reason = "capped", k, f"its seeds stay at {obs.n}"
            continue
        j = design.look_of(obs.n)
        track.p_values.append(float(obs.p_value))
        track.seeds, track.outcome = obs.n, obs.outcome
        p = float(boundary_p(obs.p_value, obs.outcome, _method(obs)))
        track.repeated_p = min(track.repeated_p, float(design.repeated_p(j, p)))
    keys = list(state.claims)
    rep = np.array([[state.claims[c].repeated_p for c in keys]])
    decisive = np.array([[state.claims[c].outcome in DECISIVE for c in keys]])
    now = decided_now(rep, decisive, design.alpha)[0]
    adjusted = statistics.benjamini_hochberg_rows(rep)[0]
    decided = []
    for key, yes in zip(keys, now):
        track = state.claims[key]
        if yes and track.status == "open":
            j = design.look_of(track.seeds)
            track.status, track.look, track.error_spent = "decided", k, float(design.spent()[j])
            decided.append(key)
    final_level = float(design.levels(next_step_level(adjusted.tolist(), len(keys)))[-1])
    for key in state.open():
        obs = observations.get(key)
        stop = _futility(obs, final_level, design.looks[-1]) if obs is not None else None
        if stop is None and k == len(design.looks) - 1:
            stop = ("max seeds", f"undecided at the last look ({design.looks[-1]} seeds)")
        if stop is not None:
            track = state.claims[key]
            track.status, track.reason = stop
            track.look = k
    state.looks_done += 1
    state.spent_hours += hours
    if state.over_budget():
        for key in state.open():
            t = state.claims[key]
            t.status, t.look, t.reason = "budget", k, f"the budget ({state.budget_hours:g} h) is spent"
    state.history.append({"look": k, "seeds": design.looks[k], "hours": hours, "decided": decided})
    return decided


Round = Callable[[int, list[str]], tuple[Mapping[str, Observation], float]]


def run(state: SequentialState, round_: Round, *, save: Callable[[SequentialState], None] | None = None,
        say: Callable[[str], None] | None = None) -> SequentialState:
    """Run rounds until every claim is decided or stopped, the looks end or the budget is spent:
    ``round_(look index, open keys)`` builds that look's runs and returns the observations and
    the CPU hours it took; the state is saved after each look (``save``), a line said per look."""
    while not state.finished():
        k = state.looks_done
        observations, hours = round_(k, state.open())
        decided = close_look(state, observations, hours)
        if save is not None:
            save(state)
        if say is not None:
            say(look_line(state, k, decided))
    return state


def look_line(state: SequentialState, k: int, decided: Sequence[str]) -> str:
    """``look 2 (5 seeds) closed: 3 decided (a, b, c); 12 open; 1.2 of 10 h spent``."""
    budget = f" of {state.budget_hours:g}" if state.budget_hours is not None else ""
    names = f" ({', '.join(decided)})" if decided else ""
    return (f"look {k + 1} ({state.design.looks[k]} seeds) closed: {len(decided)} decided{names}; "
            f"{len(state.open())} open; {state.spent_hours:.2f}{budget} h spent")


def report_block(state: SequentialState) -> dict[str, Any]:
    """The report JSON's ``sequential`` block: the design, its boundaries, the budget and, per
    claim, the look that decided or stopped it, the error spent or why it stopped."""
    d = state.design
    return {"design": {**d.to_json(), "levels": d.levels().tolist(), "critical_t": d.critical_t().tolist(),
                       "spent": d.spent().tolist()},
            "budget_hours": state.budget_hours, "spent_hours": state.spent_hours, "looks_done": state.looks_done,
            "plan": state.plan,
            "history": [{**h, "look": h["look"] + 1} for h in state.history],   # looks from 1, as the claims
            "claims": {k: {"status": t.status, "outcome": t.outcome,
                           "look": None if t.look is None else t.look + 1,
                           "seeds": t.seeds, "repeated_p": t.repeated_p, "error_spent": t.error_spent,
                           "reason": t.reason} for k, t in state.claims.items()}}
