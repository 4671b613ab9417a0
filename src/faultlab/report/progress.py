"""A progress bar for explorations longer than a second (only on a terminal, never with --quiet)."""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.progress import Progress, TaskID, TextColumn, TimeElapsedColumn

from faultlab.explore.results import Stats

SHOW_AFTER_SECONDS = 1.0


class ExploreProgress:
    """Shows schedules done, the estimated total and time to go, rate, elapsed time and budget
    left.  Wall-clock time is used only for this display, never in results."""

    def __init__(self, console: Console, label: str, budget: float | None, enabled: bool) -> None:
        self.console = console
        self.label = label
        self.budget = budget
        self.enabled = enabled and console.is_terminal
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.task = TaskID(0)

    def __enter__(self) -> ExploreProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, stats: Stats) -> None:
        if not self.enabled:
            return
        elapsed = time.monotonic() - self.started
        if self.progress is None:
            if elapsed < SHOW_AFTER_SECONDS:
                return
            self.progress = Progress(TextColumn("{task.description}"), TimeElapsedColumn(),
                                     console=self.console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.label)
        done = stats.schedules + stats.running
        rate = done / elapsed if elapsed > 0 else 0.0
        left = "" if self.budget is None else f", budget left {max(self.budget - elapsed, 0):.0f}s"
        total = ""
        if stats.estimate is not None and rate > 0:
            estimate = max(stats.estimate, done)
            to_go = (estimate - done) / rate
            total = f" of ~{estimate} (~{to_go:.0f}s to go)"
        self.progress.update(self.task, description=f"{self.label}: {done}{total} schedules, "
                             f"{rate:.0f}/s, {stats.violations} violating{left}")
