"""Parametrization of the claim tests over the selected grid; nothing here trains.

A claim test that takes ``env`` and ``seed`` runs once per selected (env, seed) cell, with ids
like ``hopper-seed0``; one that takes ``env`` but not ``seed`` is the seed aggregate of that env.
:func:`envs` limits a claim to the environments the paper states it for. Ids are made in one
place (:func:`fixtures.grid.case_id`).
"""

from __future__ import annotations

from typing import Callable

import pytest

from fixtures.grid import case_id
from fixtures.plugin import STORE, session_selection

ENVS_ATTR = "_dtclaims_envs"
SEEDS_ATTR = "_dtclaims_seeds"


def envs(*names: str) -> Callable:
    """Decorator: the claim is stated for these environments only (e.g. hopper)."""
    def mark(fn: Callable) -> Callable:
        setattr(fn, ENVS_ATTR, names)
        return fn
    return mark


def seeds_from(attr: str) -> Callable:
    """Decorator: take the seeds from a profile attribute (e.g. ``noclip_seeds``), narrowed by --seeds."""
    def mark(fn: Callable) -> Callable:
        setattr(fn, SEEDS_ATTR, attr)
        return fn
    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if "env" not in names:
        return
    sel = session_selection(metafunc.config)
    allowed = getattr(metafunc.function, ENVS_ATTR, None)
    env_list = [e for e in sel.envs if allowed is None or e in allowed]
    seed_list = list(sel.seeds)
    seeds_attr = getattr(metafunc.function, SEEDS_ATTR, None)
    if seeds_attr:
        seed_list = [s for s in getattr(sel.profile, seeds_attr) if s in sel.seeds or
                     metafunc.config.getoption("--seeds") is None]
    if "seed" in names:
        cells = [(e, s) for e in env_list for s in seed_list]
        metafunc.parametrize("env,seed", cells, ids=[case_id(e, s) for e, s in cells])
    else:
        metafunc.parametrize("env", env_list, ids=env_list)


@pytest.fixture
def seeds(selection) -> tuple[int, ...]:
    """The selected seeds: the aggregate tests' sample."""
    return tuple(selection.seeds)


@pytest.fixture
def needs(selection) -> Callable[..., None]:
    """``needs("gpt2", "random")``: an error naming the missing --backbones when a claim compares
    bodies that were not selected (never a silent pass)."""
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect claims whose environments are all outside --envs (instead of an empty-set skip)."""
    keep, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (dropped if "env" in params and not isinstance(params["env"], str) else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep
