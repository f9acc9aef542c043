"""pytest plugin: ``--claims-report`` (filled in by the reports work)."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption("--claims-report", default="reports/out/claims.html",
                     help="where to write the HTML claims report (a JSON file is written beside it)")
