"""The plan of a sequential run (issue #31, ``docs/statistics.md``, "Sequential design"): which
runs each look builds, and what it costs, printed before round one.

Runs are shared between claims (one K=20 GPT2 run feeds about 15 claims), so the unit to
schedule is a run: a look builds, at its new seeds, the runs some open claim reads (the claim's
environment x the (body, variant) runs its cells read, :func:`dtcore.grid.claim_runs`: declared
by the claim, and a cell that reads another run is an error, so the list is exact), and nothing
else (:meth:`Plan.runs`). A claim decided or stopped at an earlier look is run at that look's
seeds (:meth:`Plan.member_seeds`), so it reads no run of the new seeds.

Seeds: look k uses the first n_k seeds of :func:`seed_order`, the profile's seeds first. Time:
the build's cost model (:func:`dtcore.build_progress.run_cost`) times the seconds per unit of
cost measured on the runs in the cache (:func:`seconds_per_cost`), None before any run, summed
over the runs a look must train: those not complete in the cache (:meth:`Plan.to_train`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, Sequence

from dtcore.build_progress import WINDOW_WEIGHT, minutes, run_cost
from dtcore.claim import Claim, claim_family
from dtcore.grid import RunSpec, claim_runs, grid
from dtcore.profiles import Profile
from dtcore.runs import RunStore
from dtcore.sequential import Design, Observation, Track, looks_for

Complete = Callable[[RunSpec], bool]   # True when a run is complete in the cache (RunStore.complete)


def seed_order(profile: Profile, max_seeds: int) -> tuple[int, ...]:
    """The seeds of the looks: the profile's, then the smallest non-negative integers not among them."""
    extra = (s for s in range(10 * max_seeds + len(profile.seeds)) if s not in profile.seeds)
    return (tuple(profile.seeds) + tuple(extra))[:max_seeds]


def key(claim_id: str, env: str) -> str:
    """A member of the family: ``claim_id|env`` (env "" for a claim over all environments)."""
    return f"{claim_id}|{env}"


def claim_reads(claims: Sequence[Claim], profile: Profile) -> dict[str, tuple[tuple[str, str], ...]]:
    """Claim id -> the (body, variant) runs its cells read (:func:`dtcore.grid.claim_runs`, over
    its variants and its declarations of one id)."""
    out: dict[str, tuple[tuple[str, str], ...]] = {}
    for claim in claims:
        reads = tuple(r for params in claim.variant_params() or [{}] for r in claim_runs(claim, params, profile))
        out[claim.id] = tuple(dict.fromkeys(out.get(claim.id, ()) + reads))
    return out


@dataclass(frozen=True)
class Plan:
    """A sequential run's design, budget and schedule, fixed before round one."""

    profile: Profile
    design: Design
    envs: tuple[str, ...]
    seeds: tuple[int, ...]                     # look k uses seeds[:design.looks[k]]
    reads: Mapping[str, tuple[tuple[str, str], ...]]   # claim id -> the (body, variant) runs it reads
    family: tuple[str, ...]                    # keys (:func:`key`) of every claim x environment
    budget_hours: float | None = None
    seconds_per_cost: float | None = None      # measured on cached runs (None: not yet)
    selected: tuple[str, ...] | None = None    # the members run: those ``-k`` keeps whose environments
                                               # are selected (None: all)
    left_out: Mapping[str, str] = field(default_factory=dict)   # a member never run -> why, besides -k

    @property
    def scheduled(self) -> tuple[str, ...]:
        """The members whose runs the looks build: the ``-k`` selection, or the whole family."""
        return self.family if self.selected is None else self.selected

    def look_seeds(self, look: int) -> tuple[int, ...]:
        """The seeds new at ``look`` (all of its seeds at the first)."""
        start = self.design.looks[look - 1] if look > 0 else 0
        return self.seeds[start:self.design.looks[look]]

    def runs(self, look: int, open_keys: Sequence[str]) -> list[RunSpec]:
        """The runs the open claims need at the new seeds of ``look``, each once, in grid order."""
        wanted: dict[RunSpec, None] = {}
        for member in open_keys:
            claim_id, env = member.split("|")
            reads = self.reads[claim_id]
            for e in ((env,) if env else self.envs):
                for spec in grid(self.profile, [e], self.look_seeds(look), {b for b, _ in reads}):
                    if (spec.backbone, spec.variant) in reads:
                        wanted[spec] = None
        return list(wanted)

    def member_seeds(self, look: int, tracks: Mapping[str, Track]) -> dict[str, list[int]]:
        """Per scheduled member, the seeds its cells run at ``look``: the look's for an open one,
        for one decided or stopped those of the look that froze it."""
        looks = self.design.looks
        return {m: list(self.seeds[:looks[look if tracks[m].status == "open" else tracks[m].look]])
                for m in self.scheduled}

    def to_train(self, runs: Sequence[RunSpec], complete: Complete | None = None) -> list[RunSpec]:
        """The ``runs`` a look must train: those not complete in the cache (``complete``, e.g.
        :meth:`dtcore.runs.RunStore.complete`; all of them without it)."""
        return [s for s in runs if complete is None or not complete(s)]

    def hours(self, runs: Sequence[RunSpec]) -> float | None:
        """Estimated CPU hours of training ``runs`` (None before any run was measured)."""
        if self.seconds_per_cost is None:
            return None
        return sum(run_cost(self.profile, s) for s in runs) * self.seconds_per_cost / 3600

    def to_json(self) -> dict[str, Any]:
        d = self.design
        return {"profile": self.profile.name, "envs": list(self.envs), "design": d.to_json(),
                "levels": d.levels().tolist(), "critical_t": d.critical_t().tolist(), "spent": d.spent().tolist(),
                "max_seeds": d.looks[-1], "seeds": list(self.seeds), "budget_hours": self.budget_hours,
                "family": list(self.family), "selected": list(self.scheduled), "round_one": [s.id for s in self.runs(0, self.scheduled)]}

    def text(self, complete: Complete | None = None) -> str:
        """The plan as printed before round one; its time counts only the runs of round one that
        are not complete in the cache (``complete``; every run without it)."""
        d = self.design
        lines = [f"sequential plan: {self.profile.name} profile, {len(self.family)} claim x environment verdicts "
                 f"({', '.join(self.envs)}), each at two-sided level {d.alpha:g} over all looks "
                 f"({d.spending} spending), Benjamini-Hochberg over the family's repeated p-values",
                 f"budget: {'none' if self.budget_hours is None else f'{self.budget_hours:g} CPU hours'} "
                 f"(no round starts once it is spent); max seeds: {d.looks[-1]}",
                 "look  seeds  nominal p   |t| >=   error spent"]
        for k, (n, p, t, a) in enumerate(zip(d.looks, d.levels(), d.critical_t(), d.spent())):
            lines.append(f"{k + 1:4d}  {n:5d}  {p:10.3g}  {t:7.3g}  {a:12.3g}")
        for member, why in self.left_out.items():
            lines.append(f"not run: {member.rstrip('|')} ({why}); it counts as p = 1 in the correction")
        kept = [m for m in self.family if m not in self.left_out]
        if self.selected is not None and len(self.selected) < len(kept):
            lines.append(f"-k keeps {len(self.selected)} of the {len(self.family)} verdicts; the others are not run "
                         "and count as p = 1 in the correction")
        first = self.runs(0, self.scheduled)
        train = self.to_train(first, complete)
        hours = self.hours(train)
        time = "time unknown until a run is measured" if hours is None else \
            f"about {minutes(hours * 3600)} of CPU time"
        cached = f"{len(first) - len(train)} in the cache, {len(train)} to train, " if complete is not None else ""
        lines.append(f"round one: {len(first)} runs at seeds {list(self.look_seeds(0))}, {cached}{time}:")
        for spec in first:
            cost = "" if self.seconds_per_cost is None else \
                f"  ~{minutes(run_cost(self.profile, spec) * self.seconds_per_cost)}"
            lines.append(f"  {spec.id}" + (cost if spec in train else "  (in the cache)"))
        return "\n".join(lines)


def make_plan(profile: Profile, claims: Sequence[Claim], envs: Sequence[str] | None = None, *,
              max_seeds: int = 20, budget_hours: float | None = None, spending: str = "power-2",
              seconds_per_cost: float | None = None, selected: Collection[str] | None = None) -> Plan:
    """The plan of ``claims`` on ``envs`` (default: the profile's) up to ``max_seeds`` seeds;
    ``selected`` (the members ``-k`` keeps, :func:`key`) narrows the members it runs."""
    envs = tuple(envs or profile.envs)
    family = tuple(key(cid, env) for cid, env in claim_family(claims, envs))
    left_out = {key(c.id, ""): f"it compares {', '.join(c.needs_envs)}; --envs leaves out "
                f"{', '.join(e for e in c.needs_envs if e not in envs)}"
                for c in claims if c.scope == "all" and not set(c.needs_envs) <= set(envs)}
    if selected is not None or left_out:
        selected = tuple(m for m in family if (selected is None or m in selected) and m not in left_out)
    return Plan(profile, Design(looks_for(max_seeds), spending=spending), envs, seed_order(profile, max_seeds),
                claim_reads(claims, profile), family, budget_hours, seconds_per_cost, selected, left_out)


def trained_hours(store: RunStore, specs: Sequence[RunSpec], cpus: int = 1) -> float:
    """CPU hours of the ``specs`` a look trained, wherever they ran: each complete run's own
    training time (its provenance's ``wall_time_s``) times the CPUs it held (``cpus``: 1 for a
    local worker, a Slurm job's ``cpus_per_task``); a run that did not complete counts nothing."""
    seconds = 0.0
    for spec in specs:
        if store.complete(spec):
            seconds += float(store.run(spec).provenance.get("wall_time_s") or 0.0)
    return seconds * cpus / 3600


def seconds_per_cost(runs_root: Path) -> float | None:
    """Seconds per unit of :func:`dtcore.build_progress.run_cost` over the runs in ``runs_root``
    (their provenance's wall time and training config); None when there is none."""
    seconds = cost = 0.0
    for path in Path(runs_root).glob("*/provenance.json"):
        try:
            prov = json.loads(path.read_text())
            train = prov["config"]["train"]
            run_cost_units = train["epochs"] * train["steps_per_epoch"] * WINDOW_WEIGHT[train["context"] > 1]
            seconds, cost = seconds + float(prov["wall_time_s"]), cost + run_cost_units
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return seconds / cost if cost > 0 else None


def observations(summary: Mapping[str, Any]) -> dict[str, Observation]:
    """The observations of a look from a claims.json summary's headline rows (``rows``)."""
    out = {}
    for row in summary.get("rows", []):
        if row.get("n") is None:
            continue
        out[key(row["claim_id"], row.get("env") or "")] = Observation(
            row["outcome"], row.get("p_value"), int(row["n"]), tuple(row.get("aggregates") or ()))
    return out
