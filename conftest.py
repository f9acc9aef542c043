"""Root pytest wiring for dtclaims.

Registers the fixtures plugin (the grid options, the declared claims as items, the session's
runs) and the report plugin (the HTML claims report); Hypothesis profiles (``ci`` when the ``CI``
variable is set, else ``dev``); offline HuggingFace; one torch thread per pytest-xdist worker (two
busy-waiting OpenMP pools on 2 cores make torch 5 to 12 times slower); the ``slurm`` tests'
cluster check.
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


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


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
