"""Running a split search's tasks on Ray (``pip install 'faultlab[ray]'``).

The coordinator stays in this process and commits results exactly as with local processes
(:mod:`faultlab.explore.parallel`), so the result is the same; only where tasks run changes.  The
program is sent to the cluster once (``ray.put``) and every task names it.  With ``address`` None
a local Ray is started for the run (and stopped after it); otherwise faultlab joins that cluster
(``ray://host:10001`` through Ray Client, or ``auto``/``host:6379`` from a node of the cluster)."""

from __future__ import annotations

import time
from concurrent.futures import Future
from typing import Any

from faultlab.errors import UserError
from faultlab.explore import parallel
from faultlab.explore.parallel import Task, TaskResult, run_task
from faultlab.explore.program import Program


def check_ray() -> None:
    """UserError if Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise UserError("--engine ray needs Ray: pip install 'faultlab[ray]'") from None


class _Asked:
    """Which submission the coordinator asks to hand off, as a pool worker reads it (``.value``),
    here from a Ray actor, looked up at most every ``EVERY`` seconds (a remote call each)."""

    EVERY = 0.1

    def __init__(self, actor: Any) -> None:
        self.actor = actor
        self.seen = 0
        self.at = time.monotonic()

    @property
    def value(self) -> int:
        now = time.monotonic()
        if now - self.at >= self.EVERY:
            import ray

            self.seen = ray.get(self.actor.get.remote())
            self.at = now
        return self.seen


class _AskedActor:
    def __init__(self) -> None:
        self.ident = 0

    def set(self, ident: int) -> None:
        self.ident = ident

    def get(self) -> int:
        return self.ident


def _run(program: Program, task: Task, asked: Any = None) -> TaskResult:
    if asked is None:
        return run_task(program, task)
    with parallel.asked_by(_Asked(asked)):
        return run_task(program, task)


class RayExecutor:
    """Tasks as Ray remote calls; ``jobs`` caps how many run at once (default: the cluster's CPUs)."""

    lazy = False
    stream = None  # (results come back whole: the coordinator settles a task's races at its commit)

    def __init__(self, program: Program, *, address: str | None = None, jobs: int | None = None,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        check_ray()
        import ray

        self.ray = ray
        self.started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False}
            kwargs.update(init_kwargs or {})
            if address is None:
                kwargs.setdefault("include_dashboard", False)
                if jobs is not None:
                    kwargs.setdefault("num_cpus", jobs)
                ray.init(**kwargs)
            else:
                try:
                    ray.init(address=address, **kwargs)
                except (ConnectionError, ValueError, RuntimeError) as e:
                    raise UserError(f"cannot join the Ray cluster at {address}: {e}") from None
            self.started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = max(1, min(jobs, cpus) if jobs is not None else cpus)
        self.program_ref = ray.put(program)
        self.remote = ray.remote(num_cpus=1, max_retries=2)(_run)
        self.asked: Any = ray.remote(num_cpus=0)(_AskedActor).remote()

    def submit(self, task: Task) -> Future[TaskResult]:
        ref = self.remote.remote(self.program_ref, task, self.asked)
        fut: Future[TaskResult] = ref.future()
        return fut

    def hand_off(self, ident: int) -> None:
        self.asked.set.remote(ident)

    def close(self) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False
