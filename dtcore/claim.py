"""A claim of the paper, declared once: what the paper says (its quote and where), what is
measured and the criterion that decides it, the bodies and variants it is stated for, and one
statistic function of the runs.

A claim file (``claims/test_*.py``) holds declarations and statistic functions only::

    LESS_CHANGE = Claim(
        "sec5_3.pretrained_change_parameters_less",
        quote="Overall, We observe that l_2 distance is small and cosine similarity is large for "
              "pre-trained models, meaning that the parameters of pre-trained models do not change "
              "that much", source="§5.3",
        statistic="L2 distance of Random Init minus that of the pre-trained body",
        direction=">", threshold=0.0, basis="§5.3, Fig. 3",
        bodies=("random",), variants={"backbone": ("gpt2", "igpt")},
        definitions=("paper", "as-run"), no_units="a distance between two checkpoints")

    @LESS_CHANGE.measure
    def l2_gap(cell):
        return parameter_stats(cell, "random")["l2"] - parameter_stats(cell, cell.backbone)["l2"]

The pytest plugin (``fixtures/plugin.py``) expands each declared claim into its cells: one per
selected environment x seed x variant x definition (decided by half-samples of the statistic's
own units, or shown as descriptive), and the seed aggregate of each environment x variant x
definition (decided over the seeds). ``scope="all"`` claims have no environment: their statistic
is computed per seed (``env=None``) or, with ``pooled``, per environment and seed and pooled into
one interval. The decision rules and the headline policy are :mod:`dtcore.verdicts`.

A statistic returns a float (no sampling units inside the run: the per-seed cell is descriptive,
``no_units`` says why), a :class:`Measured` (a value with half-sample replicates over its units,
``units`` names them), a bool for a ``rate`` claim, or :class:`Components` for a claim stated for
every epoch, position or block but at most ``exceptions`` of them (decided component by component,
``dtcore.verdicts.check_every``). Values to show beside it go in
``Measured.extras``; figures and tables are drawn by a separate ``@CLAIM.drawing`` function.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from dtcore.envs import ENVS
from dtcore.skew import SKEWS
from dtcore.statistics import Interval
from dtcore.verdicts import Criterion, section_of

if TYPE_CHECKING:
    from dtcore.analysis_cache import AnalysisCache
    from dtcore.runs import Run, RunStore

AGGREGATES = ("mean", "rate", "sign")
SCOPES = ("env", "all")
# Why a claim without a smallest effect of interest can never end "negligible": its declared
# ``sesoi_basis``, or for a sign test or a rate the rule's own reason.
NO_EQUIVALENCE = {"sign": "the sign test has no equivalence outcome",
                  "rate": "a Clopper-Pearson rate has no equivalence outcome", "mean": ""}
A_LEVEL = "a level against the paper's threshold, not a difference between bodies: there is no null effect to show"


@dataclass(frozen=True)
class Measured:
    """A per-seed statistic, with the replicates that carry its uncertainty inside one run."""

    value: float                              # on all units
    reps: np.ndarray = field(default_factory=lambda: np.empty(0))   # [R] on half-samples of the units
    units: str | None = None                  # e.g. "scored episodes", "analysis samples"; None: no units
    n_units: int = 0
    floor: float | None = None                # the estimator's noise floor around the threshold
    extras: Mapping[str, Any] = field(default_factory=dict)   # shown beside the value, never decided

    def __sub__(self, other: Measured) -> Measured:
        """The paired difference of two statistics over the same (or independent) half-samples."""
        return Measured(self.value - other.value, self.reps - other.reps, self.units,
                        min(self.n_units, other.n_units))

    def __truediv__(self, other: Measured) -> Measured:
        """The ratio of two statistics over the same (or independent) half-samples."""
        return Measured(self.value / other.value, self.reps / other.reps, self.units, min(self.n_units, other.n_units))

    def with_extras(self, **extras: Any) -> Measured:
        return replace(self, extras={**self.extras, **extras})


@dataclass(frozen=True)
class Components:
    """A per-seed statistic of a claim stated for every component (epoch, position, block): one
    value per component, with its half-sample replicates where the run has units."""

    values: np.ndarray                        # [k]
    labels: tuple[str, ...]                   # [k] e.g. "epoch 1", "block 3"
    reps: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))   # [R, k] on half-samples
    units: str | None = None
    n_units: int = 0
    floor: float | None = None                # the estimator's noise floor around the threshold
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if np.ndim(self.values) != 1 or len(self.labels) != np.size(self.values):
            raise ValueError(f"Components: {np.size(self.values)} values need as many labels, got {len(self.labels)}")


@dataclass(frozen=True)
class Cell:
    """Where a statistic is evaluated: one environment (None for a ``scope="all"`` claim), one seed,
    one definition and one variant (``cell.backbone``, ``cell.token``, ...), with the session's
    runs and analysis cache."""

    store: RunStore
    cache: AnalysisCache
    env: str | None
    seed: int
    definition: str | None
    params: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"this cell has no {name!r}: its variant is {dict(params)}")

    def run(self, body: str, variant: str = "K20") -> Run:
        """The run of ``body`` in this cell's environment and seed (trained or loaded on first use)."""
        return self.store.get(self.env, body, self.seed, variant)

    @property
    def profile(self):
        return self.store.profile

    def at(self, **where: Any) -> Cell:
        """The same cell at another ``seed`` or ``env``."""
        return replace(self, **where)


Statistic = Callable[[Cell], "float | bool | Measured | Components | tuple"]   # tuple: a pooled claim's parts


@dataclass(frozen=True)
class Pooled:
    """The interval of a claim pooled over environments and seeds (rliable's aggregates)."""

    interval: Interval
    method: str                   # e.g. "stratified bootstrap of the IQM"
    min_n: int = 1                # fewer runs per environment are inconclusive (a percentile bootstrap
                                  # under-covers with few runs per stratum)
    per_env: Mapping[str, list] | None = None      # the runs' values by environment, recorded
    extras: Mapping[str, Any] = field(default_factory=dict)   # shown beside the value


@dataclass(frozen=True)
class Figure:
    """A figure (or table) a claim's per-seed cells draw, in the report's figure schema."""

    kind: str                     # e.g. "cka_diagonal"; one per claim cell
    data: Mapping[str, Any]
    table: bool = False


@dataclass
class Claim:
    """One finding of the paper, as this project tests it (module docstring)."""

    id: str                        # "sec5_3.pretrained_change_parameters_less": the prefix names the section
    quote: str                     # the paper's (or poster's) words, verbatim; a paraphrase otherwise
    source: str                    # where the quote is: "§5.3", "App. G.3", "Table 1", "poster"
    statistic: str                 # what is measured, in words, with its unit
    direction: str                 # ">", "<", ">=", "<=", "within" (Criterion)
    threshold: float | Callable[[Cell], float]   # fixed before the run; a callable of the cell for a
                                                 # chance rate that depends on the body's depth
    basis: str                     # where the threshold and the paper's value come from
    paper_value: float | None = None
    sesoi: float | None = None     # the smallest effect of interest around the threshold, in the
                                   # statistic's units: an effect shown within it is "negligible"
    sesoi_basis: str = ""          # why that size, written before any run with it; with no sesoi, on a
                                   # directional mean claim, why none is declared (A_LEVEL for a level)
    paraphrase: bool = False       # the quote restates the paper in other words (shown without quotes)
    note: str = ""                 # what the statistic tests, beyond the quote (one sentence)
    bodies: tuple[str, ...] = ()   # bodies every cell needs, besides the ``backbone`` variant's
    variants: Mapping[str, tuple] = field(default_factory=dict)   # e.g. {"backbone": ("gpt2", "igpt")}
    reads: tuple[str, ...] = ("K20",)   # the run variants its cells read of each body they compare
                                        # ("K20", "K1", "noclip", "block"; dtcore.grid.claim_runs)
    shows: tuple[str, ...] = ()    # bodies its figures show besides those it compares (read, never decided)
    definitions: tuple[str | None, ...] = (None,)   # "paper", "as-run", "sound" (docs/deviations.md)
    units: str | None = None       # the statistic's sampling units inside a run (None: descriptive cells)
    no_units: str = ""             # why a per-seed value has no units (descriptive cells)
    per_seed: bool = True          # per-seed cells besides the seed aggregate
    log_scale: bool = False        # a ratio (positive, right-skewed): the seeds decide on the log scale
    skew: str | None = None        # "right" / "left": the per-seed values' long tail, from the statistic's
                                   # definition (a score near its floor, a minimum over pairs): the seed
                                   # aggregate's t quantiles under that shape (dtcore.skew)
    skew_basis: str = ""           # why the values are skewed to that side, from the statistic's definition
    paper_rate: float | None = None   # rate claims: the share of seeds the paper's words claim
                                      # (contradicted when the rate is shown below it)
    aggregate: str = "mean"        # "mean": t / TOST over the seeds; "rate": Clopper-Pearson of yes / no;
                                   # "sign": the sign test, for a discrete per-seed statistic
    scope: str = "env"             # "env": per environment; "all": one cell over the environments
    envs: tuple[str, ...] | None = None       # the environments it is stated for (None: every one)
    needs_envs: tuple[str, ...] = ()          # scope "all": environments that must all be selected
    seeds_from: str | None = None  # a profile attribute naming the seeds (e.g. "noclip_seeds")
    exceptions: int | Callable[[Cell], int] | None = None   # a claim for every component (epoch,
                                                            # position, block) but this many: the
                                                            # statistic returns Components
    pooled: Callable[[dict[str, list]], Pooled] | None = None   # scope "all": the statistic's values
                                                                 # by environment -> one interval
    premise: str = ""              # its part of the premise of the mechanism findings, in words
    compute: Statistic | None = None
    draw: Callable[[Cell], Sequence[Figure]] | None = None

    def __post_init__(self) -> None:
        section_of(self.id)
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"{self.id}: aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"{self.id}: scope must be one of {SCOPES}, got {self.scope!r}")
        if self.pooled is not None and self.scope != "all":
            raise ValueError(f"{self.id}: a pooled interval spans environments: declare scope='all'")
        if self.per_seed and self.units is None and not self.no_units and self.scope == "env":
            raise ValueError(f"{self.id}: per-seed cells need `units` (what the half-samples resample) or "
                             f"`no_units` (why the value is descriptive)")
        unknown = [e for e in (*(self.envs or ()), *self.needs_envs) if e not in ENVS]
        if unknown:
            raise ValueError(f"{self.id}: unknown environment(s) {unknown}; choose among {', '.join(ENVS)}")
        if self.premise and self.aggregate == "rate" and self.pooled is None:
            raise ValueError(f"{self.id}: a premise part needs a decided seed aggregate")
        if self.paper_rate is not None and self.aggregate != "rate":
            raise ValueError(f"{self.id}: paper_rate belongs to a rate claim (aggregate='rate')")
        if self.skew is not None and (self.skew not in SKEWS or self.aggregate != "mean" or self.log_scale
                                      or self.exceptions is not None or self.direction == "within"):
            raise ValueError(f"{self.id}: skew is one of {SKEWS} and belongs to a directional mean aggregate "
                             f"(not a log-scale ratio, a rate, a sign test or an every-component claim)")
        if self.skew is not None and not self.skew_basis:
            raise ValueError(f"{self.id}: a declared skew needs its reason (skew_basis)")
        if self.sesoi is not None and not self.sesoi_basis:
            raise ValueError(f"{self.id}: a smallest effect of interest needs its reason (sesoi_basis)")
        Criterion(self.id, self.statistic, self.direction, 0.0 if callable(self.threshold) else self.threshold,
                  self.paper_value, self.basis, self.sesoi)   # direction, margin and sesoi checked at import
        if self.sesoi is None and self.aggregate == "mean" and self.direction != "within" and not self.sesoi_basis:
            raise ValueError(f"{self.id}: a directional claim declares a smallest effect of interest (sesoi, "
                             f"sesoi_basis) or says in sesoi_basis why none is declared")

    # -- declaration helpers -------------------------------------------------------------------

    def measure(self, fn: Statistic) -> Statistic:
        """Decorator: the claim's statistic, a function of one :class:`Cell`."""
        self.compute = fn
        return fn

    def drawing(self, fn: Callable[[Cell], Sequence[Figure]]) -> Callable[[Cell], Sequence[Figure]]:
        """Decorator: the figures and tables a per-seed cell of this claim draws."""
        self.draw = fn
        return fn

    @property
    def section(self) -> str:
        return section_of(self.id)

    @property
    def sentence(self) -> str:
        """The paper's words as the report shows them: quoted, with the source; a paraphrase unquoted."""
        words = self.quote if self.paraphrase else f"\u201c{self.quote}\u201d"
        text = f"{self.source}: {words}"
        if self.paraphrase:
            text += " (paraphrase)"
        return text + (f" — {self.note}" if self.note else "")

    def allowed_exceptions(self, cell: Cell) -> int:
        """How many components may fail an "every component" claim at ``cell`` (0: every one)."""
        return int(self.exceptions(cell)) if callable(self.exceptions) else int(self.exceptions or 0)

    def criterion(self, cell: Cell | None = None) -> Criterion:
        """The criterion of this claim (at ``cell``, where the threshold depends on it)."""
        threshold = self.threshold(cell) if callable(self.threshold) else self.threshold
        return Criterion(self.id, self.statistic, self.direction, float(threshold), self.paper_value, self.basis,
                         self.sesoi, "" if self.sesoi is not None or self.direction == "within" else
                         self.sesoi_basis or NO_EQUIVALENCE[self.aggregate])

    def variant_params(self) -> list[dict[str, Any]]:
        """Every combination of the declared variants, in declaration order."""
        names = list(self.variants)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.variants[n] for n in names))]

    def stated_in(self, envs: Sequence[str]) -> list[str]:
        """Where the claim is stated among ``envs``: those of its ``envs`` (every one when None), or
        ``[""]`` for a claim over all environments (``scope="all"``)."""
        return [""] if self.scope == "all" else [e for e in envs if self.envs is None or e in self.envs]

    def needed_bodies(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The bodies a cell with these variant ``params`` compares."""
        own = (params["backbone"],) if "backbone" in params else ()
        return tuple(dict.fromkeys(own + self.bodies))



def figure(kind: str, **data: Any) -> Figure:
    """A figure for the report to redraw (JSON-able lists and numbers, ``reports/figures.py``)."""
    return Figure(kind, data)


def table(name: str, **data: Any) -> Figure:
    """A table for the report: ``title``, ``columns``, ``rows`` (and ``paper_rows``)."""
    return Figure(name, data, table=True)


def premise_parts(claims: Sequence[Claim], envs: Sequence[str]) -> dict[str, list[list[str]]]:
    """The premise of the mechanism findings as declared (``premise=``): per environment of
    ``envs``, the [claim id, label] of each claim stated there that is a part of it, and under
    ``""`` the across-environment parts that join every environment's premise."""
    parts: dict[str, list[list[str]]] = {env: [] for env in envs}
    parts[""] = []
    for claim in claims:
        if not claim.premise:
            continue
        for where in claim.stated_in(envs):
            if [claim.id, claim.premise] not in parts[where]:
                parts[where].append([claim.id, claim.premise])
    return parts


def claim_family(claims: Sequence[Claim], envs: Sequence[str]) -> list[list[str]]:
    """The multiplicity correction's family: [claim id, env] for every declared claim and every
    environment of ``envs`` it is stated for ("" for a claim over all environments), in
    declaration order, once each (variants and definitions of a claim are one member)."""
    family: list[list[str]] = []
    for claim in claims:
        family += [[claim.id, where] for where in claim.stated_in(envs) if [claim.id, where] not in family]
    return family

