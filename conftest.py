"""Root pytest wiring for dtclaims.

Registers the fixtures plugin (the experiment grid as session fixtures) and the report plugin
(the HTML claims report); adds the grid-selection options; Hypothesis profiles (``ci`` when the
``CI`` variable is set, else ``dev``); the report header; offline HuggingFace; one torch thread per
pytest-xdist worker (two busy-waiting OpenMP pools on 2 cores make torch 5 to 12 times slower).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

# Before torch is imported anywhere: tests never reach the HF hub, and xdist workers use one thread.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
else:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

pytest_plugins = ["fixtures.plugin", "reports.plugin"]

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=50,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("dev", deadline=None, max_examples=30)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtclaims", "dtclaims: which part of the experiment grid to use")
    from dtcore.bodies import BACKBONES
    from dtcore.profiles import PROFILES

    group.addoption("--profile", default="mini", choices=tuple(PROFILES),
                    help="sizes and assets of the grid (default: mini, the offline CPU analog)")
    group.addoption("--envs", default=None, help="comma-separated environments, e.g. hopper,walker2d")
    group.addoption("--seeds", default=None,
                    help="seeds: one (42), a range (0-9) or a comma-separated list of both (0-4,42,666); "
                         "default: the profile's")
    group.addoption("--backbones", default=None, help=f"comma-separated bodies among {','.join(BACKBONES)}")
    group.addoption("--regen", action="store_true", default=False,
                    help="rebuild cached runs and analyses instead of loading them")
    group.addoption("--unavailable-runs", default=None, metavar="JSON",
                    help="a JSON object {run id: reason} of runs a launcher failed to build (dtcore claims "
                         "--launcher slurm writes it): a test that needs one ends in an error naming it")


def pytest_configure(config: pytest.Config) -> None:
    sel = grid_selection(config)  # a bad --envs / --seeds / --backbones stops here, before collection
    if sel["profile"].name == "paper" and not hasattr(config, "workerinput"):   # once, on the controller
        paper_preflight(sel)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


def grid_selection(config: pytest.Config) -> dict:
    """The profile and the --envs/--seeds/--backbones narrowing, as plain values; a bad value is a
    ``pytest.UsageError`` naming the option and what it accepts (``dtcore.grid.parse_*``, the
    parsers ``dtcore claims`` uses too)."""
    from dtcore.bodies import BACKBONES
    from dtcore.profiles import get_profile
    from dtcore.grid import parse_backbones, parse_envs, parse_seeds

    profile = get_profile(config.getoption("--profile"))
    envs, seeds, backbones = (config.getoption(f"--{name}") for name in ("envs", "seeds", "backbones"))
    try:
        return {"profile": profile,
                "envs": parse_envs(envs, profile) if envs is not None else profile.envs,
                "seeds": parse_seeds(seeds) if seeds is not None else profile.seeds,
                "backbones": parse_backbones(backbones) if backbones is not None else BACKBONES}
    except ValueError as err:
        raise pytest.UsageError(str(err)) from None


def paper_preflight(sel: dict) -> None:
    """The preflight of ``dtcore claims --profile paper``, once, before collection: every missing
    D4RL file and weight in one message (``dtcore.assets.check_paper_assets``), as a
    ``pytest.UsageError``, rather than each test trying the download."""
    from dtcore.assets import MissingAssetsError, check_paper_assets

    try:
        check_paper_assets(sel["profile"], sel["envs"])
    except MissingAssetsError as err:
        raise pytest.UsageError(f"dtclaims: {err}") from None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``slurm`` tests first: they are the longest and mostly wait on their jobs, so under
    pytest-xdist (which hands each worker a run of consecutive tests) one worker follows them
    while the other runs the rest, instead of their minutes coming last."""
    items.sort(key=lambda item: item.get_closest_marker("slurm") is None)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A ``slurm`` test needs a Slurm cluster that takes jobs: where ``CI`` is set its absence
    fails the test (CI starts one); elsewhere the test is skipped, saying how to start one."""
    if item.get_closest_marker("slurm") is None:
        return
    problem = slurm_cluster_problem()
    if problem is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"slurm test in CI: {problem} (.ci/run starts one with .ci/slurm-cluster.sh start)", pytrace=False)
    pytest.skip(f"{problem}: start one with `.ci/slurm-cluster.sh start` as root (docs/cluster.md)")


@functools.cache
def slurm_cluster_problem() -> str | None:
    """Why no Slurm cluster takes jobs here (no client, no controller, no node up), or None."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no Slurm cluster: sinfo/sbatch are not installed"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "no Slurm cluster: sinfo got no answer in 20 s"
    if proc.returncode != 0:
        return f"no Slurm cluster answers: {proc.stderr.strip() or proc.stdout.strip()}"
    states = proc.stdout.split()
    if not any(s.rstrip("*~#").startswith(("idle", "mixed", "alloc", "completing")) for s in states):
        return f"no Slurm node takes jobs (sinfo: {' '.join(states) or 'no node'})"
    return None


def pytest_report_header(config: pytest.Config) -> list[str]:
    import torch

    from dtcore.provenance import cache_dir, device_name

    sel = grid_selection(config)
    p = sel["profile"]
    device = device_name()
    lines = [
        f"dtclaims profile: {p.name} ({p.description})" + ("" if p.verdicts_meaningful else " [verdicts meaningless]"),
        f"dtclaims grid: envs={','.join(sel['envs'])} seeds={','.join(map(str, sel['seeds']))} "
        f"backbones={','.join(sel['backbones'])}",
        f"dtclaims device: {device}, torch threads {torch.get_num_threads()}",
        f"dtclaims cache: {cache_dir()}",
    ]
    return lines
