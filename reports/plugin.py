"""pytest plugin of the claims report: ``--claims-report PATH`` (default ``reports/out/claims.html``
for the full grid, ``reports/out/claims-<selection>.html`` for a run narrowed by ``-k``, ``-m`` or a
grid option, so a selection never overwrites the full report; JSON beside it), the ``inconclusive``
and ``descriptive`` outcomes, and in the terminal summary the claims x seeds table and the headline
(claim x env, the corrected verdict first); after pytest's own summary line, the answer: the premise per
env, the headline tally, the counts and, as the very last line, the report's absolute path.

Only options and hooks live here; the data model is ``reports/model.py`` and the page
``reports/render.py``. How it works, also under pytest-xdist:

1. ``pytest_runtest_makereport`` (on whichever process runs the test) classifies each phase of an
   item marked ``claim`` (a claim cell of ``fixtures/cells.py``, or a test function with the
   marker): holds / contradicted / inconclusive / descriptive / error / skipped, and puts what the
   report needs (marker, parameters, the paper's sentence, outcome, message) into the report's
   ``user_properties`` under :data:`ITEM_KEY`, since user properties travel with a ``TestReport``
   from an xdist worker to the controller.
2. An inconclusive call (``dtcore.verdicts.Inconclusive``) becomes a report with outcome "skipped"
   and the status category "inconclusive" (letter ``I``, word ``INCONCLUSIVE``); a descriptive one
   (``dtcore.verdicts.Descriptive``) likewise with category "descriptive" (``D``,
   ``DESCRIPTIVE``). A contradicted call stays a failed report (exit status 1) in the status
   category "contradicted" (``F``, ``CONTRADICTED``), so pytest's "failed" count, its FAILURES
   section and its ``-ra`` list hold only the failures that are bugs (errors). Each has its own
   count in the summary line, and pytest's exit status reflects only contradicted claims and errors.
3. The controller collects those reports in ``pytest_runtest_logreport`` and, at the end of any run
   that included a claim test, writes the HTML and JSON and prints the table with the path.

A claim cell records provenance (the grid, the declared premise, each run's asset hashes and wall
time) with ``record_property("provenance:<key>", value)``; the report keeps the last value of each
key, beside the session's own (profile, git sha, device, cache, packages, wall times).
"""

from __future__ import annotations

import datetime
import inspect
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from dtcore.provenance import cache_dir, device_name, git_sha, package_versions
from reports.headline import build_headline
from reports.model import ClaimResult, Report, build_result, jsonable, phase_outcome
from reports.terminal import answer_lines, headline_table, reason_lines, reasons_hint, summary_table

DEFAULT_REPORT = "reports/out/claims.html"
GRID_OPTIONS = ("--envs", "--seeds", "--backbones")   # fixtures/plugin.py's; given, they narrow the grid
ITEM_KEY = "dtclaims:item"  # the user property that carries a claim test's data to the controller

_collected = pytest.StashKey[dict[str, dict[str, Any]]]()  # nodeid -> {"item": ..., "phases": [...]}
_provenance = pytest.StashKey[dict[str, Any]]()             # key -> value
_order = pytest.StashKey[dict[str, int]]()                  # nodeid -> collection index
_started = pytest.StashKey[float]()                          # time.monotonic() at configure
_written = pytest.StashKey[tuple[Report, Path, Path]]()      # what the session wrote


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dtclaims", "dtclaims: which part of the experiment grid to use")
    group.addoption("--claims-report", default=None, metavar="PATH",
                    help=f"where to write the HTML claims report, relative to the directory pytest runs from "
                         f"(a JSON file is written beside it); default {DEFAULT_REPORT} in the repository for the "
                         f"full grid, reports/out/claims-<selection>.html for a run narrowed by -k, -m, --envs, "
                         f"--seeds or --backbones")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_collected] = {}
    config.stash.setdefault(_provenance, {})
    config.stash[_order] = {}
    config.stash[_started] = time.monotonic()
    if not _is_worker(config):
        config.pluginmanager.register(_Collector(config), "dtclaims-report-collector")


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[_order] = {it.nodeid: i for i, it in enumerate(items)}


# ----------------------------------------------------------------------------- per test, any process

# Outcomes reported to pytest as "skipped" with a status category of their own (not a failure).
_SIGNALS = {"inconclusive": ("I", "INCONCLUSIVE", "Inconclusive", {"yellow": True}),
            "descriptive": ("D", "DESCRIPTIVE", "Descriptive", {"cyan": True})}


def _message(call: pytest.CallInfo, report: pytest.TestReport, outcome: str) -> str:
    if outcome == "holds":
        return ""
    if call.excinfo is not None:
        exc = call.excinfo.value
        text = str(exc) if outcome in ("contradicted", *_SIGNALS) else f"{type(exc).__name__}: {exc}"
        return "\n".join(text.strip().splitlines()[:4])[:800]
    if isinstance(report.longrepr, tuple):  # a skip: (path, lineno, reason)
        return str(report.longrepr[2])
    return ""


def _item_data(item: pytest.Item, marker: pytest.Mark) -> dict[str, Any]:
    """A claim cell (``fixtures/cells.py``) carries its parameters and the paper's sentence; a
    test function marked ``claim`` has them in its callspec and docstring."""
    callspec = getattr(item, "callspec", None)
    params = getattr(item, "params", None)
    if params is None:
        params = callspec.params if callspec is not None else {}
    obj = getattr(item, "obj", None)
    docstring = getattr(item, "docstring", None) or ((inspect.getdoc(obj) or "") if obj is not None else "")
    return {
        "nodeid": item.nodeid,
        "claim_id": marker.kwargs.get("id", marker.args[0] if marker.args else None),
        "section": marker.kwargs.get("section", marker.args[1] if len(marker.args) > 1 else None),
        "params": jsonable(params),
        "docstring": docstring,
        "order": item.config.stash.get(_order, {}).get(item.nodeid, 0),
    }


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    marker = item.get_closest_marker("claim")
    if marker is None:
        return report
    exc_type = call.excinfo.type if call.excinfo is not None else None
    outcome = phase_outcome(call.when, report.passed, report.skipped, exc_type)
    message = _message(call, report, outcome)
    if outcome in _SIGNALS:
        path, lineno, _ = item.reportinfo()
        report.outcome = "skipped"
        report.longrepr = (os.fspath(path), (lineno or 0) + 1, f"{_SIGNALS[outcome][2]}: {message}")
    payload = {"when": call.when, "outcome": outcome, "message": message,
               "item": _item_data(item, marker)}
    report.user_properties = [(k, jsonable(v)) for k, v in report.user_properties if k != ITEM_KEY]
    report.user_properties.append((ITEM_KEY, payload))
    return report


def _payload(report: pytest.TestReport) -> dict[str, Any] | None:
    for k, v in getattr(report, "user_properties", ()):
        if k == ITEM_KEY:
            return v
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config):
    """Inconclusive, descriptive and contradicted claims have a category of their own; a
    contradicted one stays a failed report (exit status 1), but pytest's "failed" count, FAILURES
    section and ``-ra`` list (which read the "failed" category) keep to the errors."""
    if report.when == "call" and (report.skipped or report.failed):
        payload = _payload(report)
        if payload is not None and payload["outcome"] in _SIGNALS:
            letter, word, _, markup = _SIGNALS[payload["outcome"]]
            return payload["outcome"], letter, (word, markup)
        if payload is not None and payload["outcome"] == "contradicted":
            return "contradicted", "F", ("CONTRADICTED", {"red": True})
    return None


# ----------------------------------------------------------------------------- controller

class _Collector:
    """Receives every test report on the controller (the only process without ``workerinput``)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = _payload(report)
        if payload is None:
            return
        entry = self.config.stash[_collected].setdefault(report.nodeid, {"item": payload["item"], "phases": []})
        props = [(k, v) for k, v in report.user_properties if k != ITEM_KEY]
        entry["phases"].append({"when": payload["when"], "outcome": payload["outcome"],
                                "message": payload["message"], "duration": report.duration,
                                "properties": props})
        prov = self.config.stash[_provenance]
        prov.update({k[len("provenance:"):]: v for k, v in props if k.startswith("provenance:")})


def selection(config: pytest.Config) -> str:
    """How the run is narrower than the full grid, in words ("-k sec5_3 --envs hopper"); "" for
    the full grid."""
    parts = [f"{flag} {value}" for flag, value in (("-k", config.option.keyword), ("-m", config.option.markexpr))
             if value]
    given = [a.partition("=")[0] for a in config.invocation_params.args if str(a).startswith("--")]
    parts += [f"{opt} {config.getoption(opt)}" for opt in GRID_OPTIONS if opt in given]
    return " ".join(parts)


def selection_slug(text: str) -> str:
    """A file-name part of a selection: "-k sec5_3 --envs hopper" -> "k-sec5_3-envs-hopper"."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", text).strip("-.")[:80]


def report_path(config: pytest.Config) -> Path:
    """Where this run's report goes, absolute: a given path relative to the directory pytest ran
    from; by default ``DEFAULT_REPORT`` in the rootdir (the repository), or, for a selection,
    ``claims-<selection>.html`` beside it."""
    value = config.getoption("--claims-report")
    if value is not None:
        return (config.invocation_params.dir / value).resolve()
    narrowed = selection(config)
    name = f"claims-{selection_slug(narrowed)}.html" if narrowed else Path(DEFAULT_REPORT).name
    return (config.rootpath / DEFAULT_REPORT).with_name(name).resolve()


def _standard_provenance(config: pytest.Config, results: list[ClaimResult]) -> dict[str, Any]:
    profile = config.getoption("--profile", default=None)
    prov = {"profile": profile, "git sha": git_sha(),
            "device": device_name(), "cache": str(cache_dir()), "packages": package_versions(),
            "wall time (session, s)": round(time.monotonic() - config.stash[_started], 1),
            "wall time (claim tests, s)": round(sum(r.duration for r in results), 1),
            "command": " ".join(config.invocation_params.args)}
    return {k: v for k, v in prov.items() if v is not None}


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session):
    """Write the report before the terminal reporter's summary (which prints the tables), then,
    outside it, the answer as the run's last lines."""
    _write(session.config)
    result = yield
    config = session.config
    if not _is_worker(config) and _written in config.stash:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            report, html, js = config.stash[_written]
            narrowed = selection(config) if config.getoption("--claims-report") is None else ""
            for line in answer_lines(report, html, js, narrowed):
                reporter.write_line(line)
    return result


def _write(config: pytest.Config) -> None:
    if _is_worker(config) or not config.stash.get(_collected, None):
        return
    from reports.render import write_report

    results = [build_result(e["item"], e["phases"]) for e in config.stash[_collected].values()]
    provenance = {**_standard_provenance(config, results), **config.stash[_provenance]}
    report = Report(results=tuple(results), profile=provenance.get("profile") or "unknown",
                    provenance=provenance,
                    created=datetime.datetime.now().astimezone().isoformat(timespec="seconds"))
    html, js = write_report(report, report_path(config))
    config.stash[_written] = (report, html, js)


# ----------------------------------------------------------------------------- terminal

@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """The details above pytest's summary line, after other plugins' sections (the runs), so the
    headline is the last of them; the answer follows the summary line (``pytest_sessionfinish``)."""
    if _is_worker(config) or _written not in config.stash:
        return
    report = config.stash[_written][0]
    results = list(report.results)
    if config.get_verbosity() > 0:
        undecided = reason_lines(results)
        if undecided:
            terminalreporter.write_sep("=", "dtclaims: contradicted and inconclusive cells", yellow=True)
            for line in undecided:
                terminalreporter.write_line(line)
    terminalreporter.write_sep("=", "dtclaims: claims x seeds")
    for line in summary_table(results):
        terminalreporter.write_line(line)
    terminalreporter.write_line("H holds, C contradicted, I inconclusive, D descriptive, E error, S skipped, "
                                ". not run; A: seed aggregate")
    terminalreporter.write_sep("=", "dtclaims: headline (claim x env: seed aggregate, paper definition)")
    for line in headline_table(build_headline(report)):
        terminalreporter.write_line(line)
    if config.get_verbosity() <= 0:
        terminalreporter.write_line(reasons_hint(results))
