"""Fixtures of the reliability suite and its figures line.

Each test says what it proved with ``tally("bad_inputs" | "kills" | "races" | "files", n)``; the
counts of the tests that passed are printed at the end of the session as

    reliability: N bad inputs, K kills survived, R races, F files checked

(the figures the README's reliability section quotes).
"""

from collections import Counter
from pathlib import Path

import pytest

from .tiny import make_data as _make_data

FIGURES = {"bad_inputs": "bad inputs", "kills": "kills survived", "races": "races", "files": "files checked"}
_passed: Counter = Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed:
        for name, value in report.user_properties:
            if name in FIGURES:
                _passed[name] += value


def pytest_terminal_summary(terminalreporter) -> None:
    if _passed:
        figures = ", ".join(f"{_passed[name]} {label}" for name, label in FIGURES.items())
        terminalreporter.write_line(f"reliability: {figures}")


@pytest.fixture
def tally(record_property):
    """``tally(kind, n=1)``: this test proves ``n`` more bad inputs / kills / races / files (counted if it passes)."""

    def add(kind: str, n: int = 1) -> None:
        if kind not in FIGURES:
            raise ValueError(f"kind must be one of {sorted(FIGURES)}, got {kind!r}")
        record_property(kind, n)

    return add


@pytest.fixture(scope="session")
def spm_cache(tmp_path_factory, data_root) -> Path:
    """One sentencepiece cache for the whole suite, its tiny model trained once up front (so
    concurrent subprocesses only read it)."""
    cache = tmp_path_factory.mktemp("spm")
    _ = _make_data(data_root, cache).tokenizer
    return cache


@pytest.fixture
def make_data(data_root, spm_cache):
    """Factory of tiny data modules (see ``tiny.TINY_DATA``); keyword arguments override."""

    def make(**overrides):
        return _make_data(data_root, spm_cache, **overrides)

    return make
