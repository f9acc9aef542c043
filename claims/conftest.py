"""Fixtures of the claim tests; nothing here trains.

The parametrization over the grid lives in the fixtures plugin (:mod:`fixtures.plugin`): a claim
test that takes ``env`` and ``seed`` runs once per selected (env, seed) cell, with ids like
``hopper-seed0``; one that takes ``env`` but not ``seed`` is the seed aggregate of that env. The
registered markers ``@pytest.mark.envs("hopper")`` and ``@pytest.mark.seeds_from("noclip_seeds")``
narrow it. A claim is tied to its criterion with ``claims.criteria.claim``.
"""

from __future__ import annotations

from typing import Callable

import pytest

from fixtures.plugin import STORE, marked_seeds


@pytest.fixture
def seeds(request, selection) -> tuple[int, ...]:
    """The seed aggregate's sample: the selected seeds, or the test's ``seeds_from`` seeds."""
    return marked_seeds(request.config, selection, request.node)


@pytest.fixture
def needs(selection) -> Callable[..., None]:
    """``needs("gpt2", "random")``: skips the test (shown as skipped in the report, with a reason
    naming the missing --backbones) when a claim compares bodies that were not selected, so a
    narrowed run never passes silently."""
    def check(*backbones: str) -> None:
        missing = [b for b in backbones if b not in selection.backbones]
        if missing:
            pytest.skip(f"this claim compares {', '.join(backbones)}; --backbones excluded {', '.join(missing)}")
    return check


@pytest.fixture(autouse=True)
def _record_run_provenance(request, record_property):
    """After each claim test: the runs it used, with asset hashes and wall times, for the report."""
    yield
    store = request.config.stash.get(STORE, None)
    if store is None:
        return
    for run in store.used:
        prov = run.provenance
        record_property(f"provenance:run {run.key}", {
            "dataset_sha256": run.config.dataset_sha256[:16], "weights_sha256": run.config.weights_sha256[:16],
            "wall_time_s": prov.get("wall_time_s"), "trained_here": run.built})
