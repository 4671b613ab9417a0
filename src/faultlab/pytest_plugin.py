"""A pytest plugin: explore a scenario under a design from your own tests.

Installed with faultlab (the ``pytest11`` entry point), it gives the fixture ``faultlab_explore``::

    def test_v4_0_survives_truncate(faultlab_explore):
        faultlab_explore("scenarios/seed/cow-vs-truncate.toml", design="v4.0")

    def test_xip_has_the_race(faultlab_explore):
        faultlab_explore("scenarios/seed/cow-vs-truncate.toml", design="xip",
                         expect="stale-pte-after-truncate")

A violation fails the test with the minimal counterexample as the message: violation id, message,
swim lanes as text and the command that replays it.  The marker ``@pytest.mark.faultlab(...)``
sets a test's default exploration limits (``bound``, ``max_schedules``, ``budget``, ``strategy``);
``--faultlab-html DIR`` also writes an HTML report for every failing exploration.  See
docs/tutorial.md.

Nothing heavy is imported until a test uses the fixture: pytest loads this module in every session
of an environment where faultlab is installed.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from faultlab.designs.base import Design
    from faultlab.exploring import DesignVerdict
    from faultlab.scenario.model import Scenario

MARKER = "faultlab"
LIMITS = ("strategy", "bound", "max_schedules", "budget", "seed", "depth")
TEXT_WIDTH = 140


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultlab")
    group.addoption("--faultlab-html", metavar="DIR", default=None,
                    help="write an HTML report (swim lanes) of each failing faultlab exploration into DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(strategy='dfs', bound=None, max_schedules=None, budget=None, seed=0, depth=3): "
        "default exploration limits for the faultlab_explore fixture in this test",
    )


class FaultlabExplore:
    """The ``faultlab_explore`` fixture's value: call it to explore one scenario under one design."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.defaults: dict[str, Any] = {}
        for mark in reversed(list(request.node.iter_markers(MARKER))):  # the closest mark wins
            unknown = set(mark.kwargs) - set(LIMITS)
            if mark.args or unknown:
                raise pytest.UsageError(f"@pytest.mark.{MARKER} takes keyword arguments {', '.join(LIMITS)} only")
            self.defaults.update(mark.kwargs)

    def __call__(
        self,
        scenario: Any,
        design: Any = "v4.10",
        *,
        expect: str | None = None,
        **limits: Any,
    ) -> DesignVerdict:
        """Explore ``scenario`` (a scenario file path, a ``ScenarioBuilder`` or a ``Scenario``) under
        ``design`` (a design name, a path to a design ``.py`` file, or a ``Design`` subclass).

        Without ``expect`` the exploration must be clean, otherwise the test fails with the minimal
        counterexample.  With ``expect="<violation id>"`` that violation must be found (the test
        fails if the exploration is clean or finds only others).  Keyword limits: ``strategy``
        ("dfs", "pct", "random"), ``bound``, ``max_schedules``, ``budget`` (seconds), ``seed``,
        ``depth``.  Returns the ``DesignVerdict``."""
        from faultlab.errors import UserError
        from faultlab.exploring import explore_design

        unknown = set(limits) - set(LIMITS)
        if unknown:
            raise TypeError(f"faultlab_explore() got unexpected keyword arguments: {', '.join(sorted(unknown))}")
        opts: dict[str, Any] = {"strategy": "dfs", "bound": None, "max_schedules": None, "budget": None, "seed": 0,
                                "depth": 3}
        opts.update(self.defaults)
        opts.update(limits)
        try:
            sc = self._scenario(scenario)
            cls, arg = self._design(design)
        except UserError as e:
            bad: UserError | None = e
        else:
            bad = None
        if bad is not None:  # failed outside the handler, so pytest shows one line, not a chain
            pytest.fail(f"faultlab: {bad}", pytrace=False)
        verdict = explore_design(
            sc, cls, strategy=opts["strategy"], bound=opts["bound"], depth=opts["depth"], seed=opts["seed"],
            max_schedules=opts["max_schedules"], budget_seconds=opts["budget"], design_arg=arg,
        )
        ids = [c.id for c in verdict.counterexamples]
        if expect is None and ids:
            pytest.fail(self._report(sc, verdict, opts["strategy"]), pytrace=False)
        if expect is not None and expect not in ids:
            found = f"found only {', '.join(ids)}" if ids else "found none"
            pytest.fail(f"faultlab: expected {cls.name} to break {expect} on {sc.path}, but the exploration "
                        f"{found} ({_how(verdict, opts['strategy'])})", pytrace=False)
        return verdict

    # -- resolving the arguments -------------------------------------------------------------------
    def _path(self, given: str | os.PathLike[str]) -> str:
        """A relative path is looked up from the working directory, then pytest's rootdir, then the
        test file's directory; the result is relative to the working directory when it can be (so
        the replay command runs from there)."""
        p = Path(given)
        if not p.is_absolute():
            for base in (Path.cwd(), self.request.config.rootpath, self.request.path.parent):
                if (base / p).exists():
                    p = base / p
                    break
        if p.is_absolute():
            rel = os.path.relpath(p)
            return rel if not rel.startswith("..") else str(p)
        return str(p)

    def _scenario(self, scenario: Any) -> Scenario:
        from faultlab.scenario import ScenarioBuilder, load_scenario
        from faultlab.scenario.model import Scenario

        if isinstance(scenario, Scenario):
            return scenario
        if isinstance(scenario, ScenarioBuilder):
            return scenario.build()
        if isinstance(scenario, str | os.PathLike):
            return load_scenario(self._path(scenario))
        raise TypeError(f"faultlab_explore: scenario must be a path, a ScenarioBuilder or a Scenario, "
                        f"not {type(scenario).__name__}")

    def _design(self, design: Any) -> tuple[Design, str]:
        from faultlab.designs import get_design
        from faultlab.designs.base import Design

        if isinstance(design, Design):
            return design, design.name
        if isinstance(design, os.PathLike) or (isinstance(design, str) and design.endswith(".py")):
            path = self._path(design)
            return get_design(path), path
        if isinstance(design, str):
            return get_design(design), design
        raise TypeError(f"faultlab_explore: design must be a name, a .py path or a Design, "
                        f"not {type(design).__name__}")

    # -- the failure message -----------------------------------------------------------------------
    def _report(self, scenario: Scenario, verdict: DesignVerdict, strategy: str) -> str:
        from rich.console import Console

        from faultlab.report.explore_text import print_lanes

        buf = io.StringIO()
        out = Console(file=buf, width=TEXT_WIDTH, color_system=None, highlight=False, soft_wrap=False)
        c = verdict.counterexamples[0]
        others = [x.id for x in verdict.counterexamples[1:]]
        out.print(f"faultlab: design {verdict.design} breaks {c.id} on {scenario.path} ({_how(verdict, strategy)})"
                  + (f"; also {', '.join(others)}" if others else ""))
        out.print(c.message)
        out.print(f"minimal counterexample: {c.preemptions} preemption(s), {c.steps} steps")
        print_lanes(out, c.run, c.id)
        if scenario.path == "<builder>":
            out.print("replay it in Python:")
            out.print(f"faultlab.exploring.replay_design(scenario, design, {c.schedule!r})", soft_wrap=True)
        else:
            out.print("replay it with:")
            out.print(c.replay_command, soft_wrap=True)
        html = self._html(scenario, verdict, strategy)
        if html:
            out.print(f"HTML report: {html}", soft_wrap=True)
        return buf.getvalue().rstrip("\n")

    def _html(self, scenario: Scenario, verdict: DesignVerdict, strategy: str) -> str | None:
        folder = self.request.config.getoption("--faultlab-html")
        if not folder:
            return None
        from faultlab.report.html import explore_html, write_html

        Path(folder).mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.request.node.nodeid).strip("_")
        path = str(Path(folder) / f"{name}.{verdict.design}.html")
        write_html(path, explore_html(scenario, strategy, [verdict]))
        return path


def _how(verdict: DesignVerdict, strategy: str) -> str:
    n = verdict.result.schedules
    return f"{strategy}, {n} schedule{'s' if n != 1 else ''}"


@pytest.fixture
def faultlab_explore(request: pytest.FixtureRequest) -> FaultlabExplore:
    """Explore a scenario under a design; a violation fails the test with the minimal counterexample
    (see :class:`FaultlabExplore`)."""
    return FaultlabExplore(request)
