"""How long a grid build takes: the cost model of a run, and the line per finished run with an ETA.

The cost of a run (:func:`run_cost`) is the planned training steps of its config (epochs x steps
per epoch, as ``bench/grid.py`` counts them) weighted by its window: a K=20 step costs about
three K=1 steps (the weights the builder has always ordered runs by). It orders the build (the
most expensive runs first) and gives the ETA: the build's seconds per unit of cost are measured
on the runs trained so far (runs found cached cost nothing and are left out; the builder scales
each run's cost by the share of its epochs still to train, ``RunStore.share_to_train``), and the work left
is the cost of the runs not yet finished, less what the running ones have done, shared by the
workers.

Runs start in the order given: the first ``workers`` at once, then one each time a run finishes
(a process pool's workers take queued calls first in, first out), so which runs are being built
and for how long follows from the finish times alone, and :class:`BuildProgress` needs no word
from the workers. Its clock is a parameter, so tests drive it with a fake one.
"""

from __future__ import annotations

import time
from typing import Callable

from dtcore.grid import RunSpec
from dtcore.profiles import Profile, experiment

WINDOW_WEIGHT = {True: 3.0, False: 1.0}   # a training step with context K > 1 (K=20) vs K = 1


def run_cost(profile: Profile, spec: RunSpec) -> float:
    """Relative cost of a run: planned training steps x :data:`WINDOW_WEIGHT` of its context."""
    train = experiment(profile, spec.env, spec.backbone, spec.seed, spec.variant).train
    return train.epochs * train.steps_per_epoch * WINDOW_WEIGHT[train.context > 1]


def minutes(seconds: float) -> str:
    """``"45 s"`` under two minutes, else ``"14 min"``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


class BuildProgress:
    """The progress of runs built in the given order by ``workers`` workers: :meth:`finished`
    records a run and returns its line, ``[7/30] built <run> in 81 s · ETA 14 min (running:
    <slowest running run>, 95 s)``."""

    def __init__(self, costs: dict[str, float], workers: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.order = list(costs)                  # run ids in the order they are queued
        self.costs, self.workers, self.clock = costs, workers, clock
        now = clock()
        self.started = {run_id: now for run_id in self.order[:workers]}   # run id -> clock at its start
        self.done: list[str] = []
        self.trained_seconds = self.trained_cost = 0.0

    def running(self) -> list[tuple[str, float]]:
        """(run id, seconds so far) of the runs being built now, the longest-running first."""
        now = self.clock()
        busy = [(run_id, now - t) for run_id, t in self.started.items() if run_id not in self.done]
        return sorted(busy, key=lambda item: -item[1])

    def finished(self, run_id: str, built: bool, seconds: float) -> str:
        """Record that ``run_id`` finished (``built``: trained or resumed now, else found cached)
        after ``seconds``; the next queued run starts. Returns the run's progress line."""
        self.done.append(run_id)
        queued = [r for r in self.order if r not in self.started]
        if queued:
            self.started[queued[0]] = self.clock()
        if built:
            self.trained_seconds += seconds
            self.trained_cost += self.costs[run_id]
        line = (f"[{len(self.done)}/{len(self.order)}] {'built' if built else 'cached'} {run_id} "
                f"in {seconds:.0f} s")
        eta = self.eta()
        if eta is not None:
            line += f" · ETA {minutes(eta)}"
        running = self.running()
        if running:
            line += f" (running: {running[0][0]}, {running[0][1]:.0f} s)"
        return line

    def eta(self) -> float | None:
        """Seconds until the build ends, from the seconds per cost of the runs trained so far;
        None before the first trained run (nothing measured yet), 0 when all are done."""
        if len(self.done) == len(self.order):
            return 0.0
        if self.trained_cost <= 0:
            return None
        rate = self.trained_seconds / self.trained_cost
        running = dict(self.running())
        left = sum(max(self.costs[r] * rate - running.get(r, 0.0), 0.0) for r in self.order if r not in self.done)
        return left / max(min(self.workers, len(self.order) - len(self.done)), 1)
