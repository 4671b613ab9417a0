"""The concurrent oracle: every outcome the real kernel shows when a scenario's threads really race
must be one the model's exploration of the interleavings also produces.

* :class:`Observed` is the one canonical form of an outcome, for both sides: every op's outcome
  (thread, op text, outcome text; threads in declaration order, each thread's ops in order) and
  every file's size and contents. Fault counts are not part of it: they legitimately differ from
  one interleaving to another.
* :func:`model_outcomes` explores the scenario under a design (DPOR) and keeps, for each distinct
  outcome, one schedule that produced it.
* :func:`concurrent_program` / :func:`parse_concurrent_output` speak the probe's concurrent mode
  (``probe.c``): one probe process runs the scenario ``runs`` times, the threads as real threads
  (``mm = "shared"``) or processes (``mm = "per-thread"``), and reports each distinct outcome once
  with how many runs gave it.
* :func:`check` holds the kernel's outcomes against the model's: an outcome the model never
  produces is a difference (or, when the model's exploration was bounded, an outcome "not seen by
  the bounded model"), shown with the nearest model outcome and the command that replays it.
  Model outcomes the kernel never showed are coverage, not errors.
* :func:`run_concurrent_oracle` does all of it for a list of scenarios (all ``dax-vm`` ones in one
  VM boot).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from faultlab.checks.lockdep import LockDep
from faultlab.designs.base import Design
from faultlab.errors import UserError
from faultlab.execution import ModelExecution, ModelRunResult
from faultlab.explore import explore
from faultlab.explore.replay import replay_traced
from faultlab.explore.results import EXHAUSTED, ExploreResult
from faultlab.explore.schedule import encode
from faultlab.kernel.snapshot import SNAPSHOT_LIMIT
from faultlab.oracle.compare import DAX_ACTIVE_NOTE, FS_KERNEL, GUEST_DIR, KERNEL_FS, check_kernel
from faultlab.oracle.errors import ProbeFailedError, UnsupportedScenarioError
from faultlab.oracle.program import ProbeProgram, outcome_from_words, probe_error, to_probe_program
from faultlab.scenario.model import Scenario, format_bytes
from faultlab.sched import Chooser, Scheduler
from faultlab.sched.core import ModelThread

MAX_THREADS = 16
"""The probe's limit on a scenario's threads in the concurrent mode."""

MAX_RUNS = 100_000_000
DEFAULT_SEED = 0
FALLBACK_BOUND = 2
"""The preemption bound of the second exploration when the unbounded one reaches its cap."""
DEFAULT_MAX_SCHEDULES = 5000
"""The cap on the unbounded exploration before falling back to :data:`FALLBACK_BOUND`."""
BOUNDED_MAX_SCHEDULES = 50_000
"""The cap on a bounded exploration (the fallback, or one with an explicit ``bound``)."""

VM_SMP = 2
"""CPUs of the DAX VM in the concurrent mode (the sequential oracle boots it with one)."""


def default_concurrent_design(kernel: str) -> str:
    """The model design whose interleavings the outcomes of ``kernel`` are held against.

    The DAX VM runs Linux 6.1 (``v6.1``) and this host 6.18 (``v6.18``)."""
    from faultlab.oracle.compare import DEFAULT_DESIGNS

    if kernel not in KERNEL_FS:
        raise UserError(f"unknown kernel {kernel!r}: choose one of {', '.join(KERNEL_FS)}")
    return DEFAULT_DESIGNS[kernel]


# -- the canonical outcome ------------------------------------------------------------------------------


_V = TypeVar("_V")
OpOutcome = tuple[str, str, str]  # (thread, op text, outcome text as Outcome.__str__ writes it)
FileOutcome = tuple[str, int, bytes | None]  # (file, size, contents; None: larger than SNAPSHOT_LIMIT)


@dataclass(frozen=True, slots=True)
class Observed:
    """What one run showed a program: the canonical outcome the model and the kernel are compared
    on. ``ops`` in thread declaration order, each thread's ops in program order (not in the order
    they ran); ``files`` sorted by name."""

    ops: tuple[OpOutcome, ...]
    files: tuple[FileOutcome, ...]

    @staticmethod
    def from_final_state(state: Hashable) -> Observed:
        """The outcome of a model run, from its ``final_state`` fingerprint
        (:meth:`faultlab.execution.ModelExecution.run`)."""
        if not (isinstance(state, tuple) and len(state) == 2):
            raise ValueError(f"not a model final state: {state!r}")
        ops, files = state
        return Observed(
            tuple((str(t), str(o), str(r)) for t, o, r in ops),
            tuple(sorted((str(n), int(s), c) for n, s, c in files)),
        )

    def sort_key(self) -> tuple[object, ...]:
        """The canonical order of outcomes (reports list them in it)."""
        return (self.ops, tuple((n, s, c is None, c or b"") for n, s, c in self.files))

    def differences(self, other: Observed) -> tuple[tuple[int, ...], tuple[str, ...]]:
        """The indices of the ops and the names of the files where ``other`` differs."""
        n = max(len(self.ops), len(other.ops))
        ops = tuple(
            i for i in range(n) if i >= len(self.ops) or i >= len(other.ops) or self.ops[i] != other.ops[i]
        )
        mine, theirs = dict((f[0], f[1:]) for f in self.files), dict((f[0], f[1:]) for f in other.files)
        files = tuple(sorted(name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name)))
        return ops, files

    def distance(self, other: Observed) -> int:
        ops, files = self.differences(other)
        return len(ops) + len(files)

    def json(self) -> dict[str, Any]:
        return {
            "ops": [{"thread": t, "op": o, "outcome": r} for t, o, r in self.ops],
            "files": [
                {"name": n, "size": s, "contents": None if c is None else format_bytes(c)} for n, s, c in self.files
            ],
        }


def _sorted(outcomes: dict[Observed, _V]) -> dict[Observed, _V]:
    return dict(sorted(outcomes.items(), key=lambda item: item[0].sort_key()))


def show_contents(contents: bytes | None, width: int = 40) -> str:
    if contents is None:
        return "(not recorded)"
    text = format_bytes(contents)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- the model side -------------------------------------------------------------------------------------


@dataclass
class ModelOutcomes:
    """The distinct outcomes of a scenario's exploration under one design, each with one schedule
    (thread id per step) that produces it. ``complete``: the exploration was exhaustive, so an
    outcome outside this set is one the model cannot produce; otherwise the set is a lower bound."""

    design: str
    outcomes: dict[Observed, tuple[int, ...]]
    schedules: int
    complete: bool
    bound: int | None
    how: str  # how the set was obtained, for the report
    violations: tuple[str, ...] = ()  # violation ids the exploration met (the model's own verdict)


class _RecordingChooser:
    """Passes every choice through and remembers the thread chosen at each step."""

    def __init__(self, inner: Chooser) -> None:
        self.inner = inner
        self.trace: list[int] = []

    def choose(self, sched: Scheduler, ready: list[ModelThread]) -> ModelThread:
        chosen = self.inner.choose(sched, ready)
        self.trace.append(chosen.tid)
        return chosen


class _Recording:
    """A model execution that maps each distinct final state to the first schedule giving it."""

    def __init__(self, execution: ModelExecution, seen: dict[Hashable, tuple[int, ...]]) -> None:
        self.execution = execution
        self.seen = seen

    def run(self, chooser: Chooser) -> ModelRunResult:
        recorder = _RecordingChooser(chooser)
        result = self.execution.run(recorder)
        self.seen.setdefault(result.final_state, tuple(recorder.trace))
        return result


def _explore(
    scenario: Scenario, design: Design, bound: int | None, max_schedules: int | None
) -> tuple[dict[Hashable, tuple[int, ...]], frozenset[Hashable], ExploreResult]:
    lockdep = LockDep()
    seen: dict[Hashable, tuple[int, ...]] = {}

    def program() -> _Recording:
        return _Recording(ModelExecution(scenario, design, lockdep=lockdep), seen)

    result = explore(
        program, "dpor", bound=bound, max_schedules=max_schedules, stop_on_first=False, minimise=False
    )
    return seen, result.final_states, result


def _bounded_how(result: ExploreResult) -> str:
    if result.complete:
        return "nothing pruned (every interleaving)"
    if result.stop_reason == EXHAUSTED:
        return "the bound pruned schedules (a lower bound)"
    return f"stopped ({result.stop_reason}; a lower bound)"


def model_outcomes(
    scenario: Scenario,
    design: Design,
    *,
    bound: int | None = None,
    max_schedules: int | None = None,
) -> ModelOutcomes:
    """Explore ``scenario`` under ``design`` with DPOR and return its distinct outcomes.

    With ``bound`` None the exploration is unbounded but stops after ``max_schedules`` (default
    :data:`DEFAULT_MAX_SCHEDULES`); if it stops there, the scenario is explored again at preemption
    bound :data:`FALLBACK_BOUND`, and the union of both is the (lower-bound) model set. With a
    ``bound``, only that bounded exploration runs (capped at ``max_schedules``, default
    :data:`BOUNDED_MAX_SCHEDULES`). The set is complete only when an exploration was exhaustive."""
    if bound is None:
        cap = max_schedules or DEFAULT_MAX_SCHEDULES
        seen, states, result = _explore(scenario, design, None, cap)
        schedules = result.schedules
        how = f"DPOR, unbounded: {result.schedules} schedules, " + (
            "complete (every interleaving)" if result.complete else f"stopped ({result.stop_reason})"
        )
        violations = set(result.violation_ids)
        complete = result.complete
        if not complete:
            more, more_states, bounded = _explore(scenario, design, FALLBACK_BOUND, BOUNDED_MAX_SCHEDULES)
            for state, trace in more.items():
                seen.setdefault(state, trace)
            states = states | more_states
            schedules += bounded.schedules
            violations |= set(bounded.violation_ids)
            complete = bounded.complete
            how += f"; then preemption bound {FALLBACK_BOUND}: {bounded.schedules} schedules, {_bounded_how(bounded)}"
        used_bound = None if result.complete else FALLBACK_BOUND
    else:
        cap = max_schedules or BOUNDED_MAX_SCHEDULES
        seen, states, result = _explore(scenario, design, bound, cap)
        schedules = result.schedules
        complete = result.complete
        violations = set(result.violation_ids)
        how = f"DPOR, preemption bound {bound}: {result.schedules} schedules, {_bounded_how(result)}"
        used_bound = bound
    outcomes = {Observed.from_final_state(s): seen.get(s, ()) for s in states}
    return ModelOutcomes(
        design=design.name,
        outcomes=_sorted(outcomes),
        schedules=schedules,
        complete=complete,
        bound=used_bound,
        how=how,
        violations=tuple(sorted(violations)),
    )


def shortest_schedule(scenario: Scenario, design: Design, trace: Sequence[int]) -> list[int]:
    """``trace`` cut after its last choice that differs from the replay's default continuation."""
    replayed = replay_traced(lambda: ModelExecution(scenario, design), trace)
    return replayed.shortest_schedule()


def replay_command(scenario: Scenario, design: Design, trace: Sequence[int]) -> tuple[str, str]:
    """The schedule string of ``trace`` and the ``faultlab replay`` command that re-runs it."""
    schedule = encode(shortest_schedule(scenario, design, trace), scenario.digest(), design.name)
    return schedule, f"faultlab replay {scenario.path} --design {design.name} --schedule {schedule}"


# -- the kernel side ------------------------------------------------------------------------------------


@dataclass
class KernelOutcomes:
    """What ``runs`` concurrent runs of a scenario showed on ``kernel``: each distinct outcome
    with (how many runs gave it, the first run that did)."""

    kernel: str
    runs: int
    workers: str  # threads or processes
    cpus: int  # CPUs the probe could run on
    outcomes: dict[Observed, tuple[int, int]]
    notes: tuple[str, ...] = ()


def workers_for(scenario: Scenario) -> str:
    """``threads`` for ``mm = "shared"`` (one process), ``processes`` for ``mm = "per-thread"``."""
    return "processes" if scenario.mm == "per-thread" else "threads"


def check_concurrent(scenario: Scenario) -> None:
    """Refuse a scenario the concurrent probe cannot run (UnsupportedScenarioError)."""
    if len(scenario.threads) > MAX_THREADS:
        raise UnsupportedScenarioError(
            f"{scenario.path}: {len(scenario.threads)} threads; the concurrent probe runs at most {MAX_THREADS}"
        )
    if not any(t.ops for t in scenario.threads):
        raise UnsupportedScenarioError(f"{scenario.path}: no thread has an op: nothing to run concurrently")


def concurrent_program(
    scenario: Scenario, workdir: str, runs: int, seed: int = DEFAULT_SEED, *, require_dax: bool = False
) -> ProbeProgram:
    """The probe input that runs ``scenario`` ``runs`` times concurrently with its files in
    ``workdir`` (re-created for every run)."""
    if not 1 <= runs <= MAX_RUNS:
        raise UserError(f"the number of concurrent runs must be 1..{MAX_RUNS}, not {runs}")
    if not 0 <= seed < 1 << 64:
        raise UserError(f"the seed must be 0..2^64-1, not {seed}")
    check_concurrent(scenario)
    return to_probe_program(
        scenario,
        workdir,
        require_dax=require_dax,
        concurrent=f"concurrent {runs} {seed} {workers_for(scenario)} {SNAPSHOT_LIMIT}",
    )


def _file_contents(words: list[str], line: str) -> bytes | None:
    if words[3] == "*":
        return None
    if words[3] == "-":
        return b""
    try:
        return bytes.fromhex(words[3])
    except ValueError as exc:
        raise ProbeFailedError(f"probe output: bad hex in {line[:80]!r}") from exc


def parse_concurrent_output(program: ProbeProgram, output: str, kernel: str) -> KernelOutcomes:
    """The distinct outcomes the probe's concurrent mode reported for ``program``."""
    names = dict(program.files)
    header: tuple[int, str, int] | None = None
    outcomes: dict[Observed, tuple[int, int]] = {}
    block: tuple[int, int] | None = None
    ops: list[OpOutcome] = []
    files: list[FileOutcome] = []
    notes: list[str] = []
    for line in output.splitlines():
        words = line.split()
        if not words:
            continue
        head = words[0]
        try:
            if head == "error":
                raise probe_error(line)
            if line == "dax active":
                notes.append(DAX_ACTIVE_NOTE)
            elif head == "concurrent" and len(words) == 4 and header is None:
                header = (int(words[1]), words[2], int(words[3]))
            elif head == "outcome" and len(words) == 3 and block is None:
                block, ops, files = (int(words[1]), int(words[2])), [], []
            elif head == "res" and block is not None and len(words) >= 3:
                index = int(words[1])
                if index != len(ops) or index >= len(program.ops):
                    raise ProbeFailedError(f"probe output: unexpected result index in {line[:80]!r}")
                ref = program.ops[index]
                ops.append((ref.thread, ref.op, str(outcome_from_words(words[2:], line))))
            elif head == "file" and block is not None and len(words) == 4 and words[1] in names:
                files.append((names[words[1]], int(words[2]), _file_contents(words, line)))
            elif line == "end-outcome" and block is not None:
                if len(ops) != len(program.ops) or len(files) != len(program.files):
                    raise ProbeFailedError(
                        f"probe output: an outcome with {len(ops)}/{len(program.ops)} op results and "
                        f"{len(files)}/{len(program.files)} files"
                    )
                observed = Observed(tuple(ops), tuple(sorted(files)))
                count, first = outcomes.get(observed, (0, block[1]))
                outcomes[observed] = (count + block[0], min(first, block[1]))
                block = None
            else:
                raise ProbeFailedError(f"probe output: unexpected line {line[:80]!r}")
        except ValueError as exc:
            raise ProbeFailedError(f"probe output: bad number in {line[:80]!r}") from exc
    if header is None or block is not None:
        raise ProbeFailedError("probe output is incomplete: no `concurrent` header or an unfinished outcome")
    runs, workers, cpus = header
    if sum(c for c, _ in outcomes.values()) != runs:
        raise ProbeFailedError(f"probe output: the outcomes' counts do not add up to {runs} runs")
    return KernelOutcomes(kernel, runs, workers, cpus, _sorted(outcomes), tuple(notes))


def run_concurrent_on_host(
    scenario: Scenario, kernel: str, runs: int, seed: int = DEFAULT_SEED, *, timeout: float | None = None
) -> KernelOutcomes:
    """Run ``scenario`` ``runs`` times concurrently on this machine's kernel (``host-tmpfs`` or
    ``host-ext4``, which must match the scenario's fs), in one probe process."""
    from faultlab.oracle.build import build_probe
    from faultlab.oracle.host import host_workdir, run_probe

    check_kernel(scenario, kernel)
    check_concurrent(scenario)
    binary = build_probe()
    with host_workdir(kernel) as workdir:
        program = concurrent_program(scenario, str(workdir), runs, seed)
        output = run_probe(binary, program.text, timeout=timeout or host_timeout(runs))
    return parse_concurrent_output(program, output, kernel)


def host_timeout(runs: int) -> float:
    """Generous: a run takes well under a millisecond on the host."""
    return 120.0 + runs * 0.01


def vm_timeout(runs: int, jobs: int) -> float:
    """Generous: a run takes about 15 ms in the VM (software-emulated CPUs)."""
    return 120.0 + runs * jobs * 0.06


def run_concurrent_in_vm(
    scenarios: Sequence[Scenario],
    runs: int,
    seed: int = DEFAULT_SEED,
    *,
    log: Callable[[str], None] | None = None,
) -> list[KernelOutcomes]:
    """Run every (fs=dax) scenario ``runs`` times concurrently on DAX in ONE boot of the VM
    (two CPUs), DAX required and reported active."""
    from faultlab.oracle import vm
    from faultlab.oracle.build import build_probe

    if not scenarios:
        return []
    for s in scenarios:
        check_kernel(s, "dax-vm")
        check_concurrent(s)
    programs = [concurrent_program(s, GUEST_DIR, runs, seed, require_dax=True) for s in scenarios]
    assets = vm.setup(log=log or (lambda _msg: None))
    probe = build_probe(static=True)
    names = [f"c{i:04d}" for i in range(len(scenarios))]
    outputs = vm.run_jobs(
        assets,
        probe,
        [(n, p.text) for n, p in zip(names, programs, strict=True)],
        timeout=vm_timeout(runs, len(scenarios)),
        log=log,
        smp=VM_SMP,
    )
    out = []
    for scenario, name, program in zip(scenarios, names, programs, strict=True):
        text = outputs[name]
        errors = [line for line in text.splitlines() if line.startswith("error ")]
        if errors:
            raise probe_error(errors[-1])
        if text.exit_code != 0:
            detail = (text.stderr.strip().splitlines() or ["no message"])[-1]
            raise ProbeFailedError(
                f"{scenario.path}: the probe exited with status {text.exit_code} in the VM: {detail}"
            )
        result = parse_concurrent_output(program, text, "dax-vm")
        if DAX_ACTIVE_NOTE not in result.notes:
            raise ProbeFailedError(f"{scenario.path}: the probe in the VM did not report `dax active`")
        out.append(result)
    return out


# -- the check ------------------------------------------------------------------------------------------

DIFFERENCE = "difference"
NOT_SEEN_BOUNDED = "not-seen-by-bounded-model"


@dataclass(frozen=True)
class Unexplained:
    """A kernel outcome that is not in the model's set, with the nearest model outcome."""

    outcome: Observed
    runs: int
    first_run: int
    kind: str  # DIFFERENCE (the model set is complete) or NOT_SEEN_BOUNDED
    nearest: Observed | None
    differing_ops: tuple[int, ...]
    differing_files: tuple[str, ...]
    schedule: str | None  # the nearest model outcome's schedule string
    replay: str | None  # the command that replays it


@dataclass
class ConcurrentCheck:
    scenario: Scenario
    kernel: KernelOutcomes
    model: ModelOutcomes
    unexplained: list[Unexplained]
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.unexplained

    @property
    def differences(self) -> list[Unexplained]:
        return [u for u in self.unexplained if u.kind == DIFFERENCE]

    @property
    def model_only(self) -> list[Observed]:
        """Model outcomes the kernel never showed (coverage, not an error)."""
        return [o for o in self.model.outcomes if o not in self.kernel.outcomes]


def nearest_model_outcome(outcome: Observed, model: ModelOutcomes) -> Observed | None:
    """The model outcome with the fewest differing ops and files; ties go to the shorter schedule,
    then to the canonical order."""
    if not model.outcomes:
        return None
    return min(model.outcomes, key=lambda m: (outcome.distance(m), len(model.outcomes[m]), m.sort_key()))


def check(
    scenario: Scenario, kernel: KernelOutcomes, model: ModelOutcomes, design: Design | None = None
) -> ConcurrentCheck:
    """Every kernel outcome must be a model outcome. ``design`` (the class named by
    ``model.design``) is needed to print replay commands for the nearest model outcomes."""
    unexplained = []
    for outcome, (runs, first) in kernel.outcomes.items():
        if outcome in model.outcomes:
            continue
        nearest = nearest_model_outcome(outcome, model)
        ops, files = outcome.differences(nearest) if nearest is not None else ((), ())
        schedule = command = None
        if nearest is not None and design is not None:
            schedule, command = replay_command(scenario, design, model.outcomes[nearest])
        unexplained.append(
            Unexplained(
                outcome, runs, first, DIFFERENCE if model.complete else NOT_SEEN_BOUNDED,
                nearest, ops, files, schedule, command,
            )
        )  # fmt: skip
    return ConcurrentCheck(scenario, kernel, model, unexplained, kernel.notes)


def run_concurrent_oracle(
    scenarios: Sequence[Scenario],
    runs: int,
    kernel: str | None = None,
    design: str | Design | None = None,
    *,
    seed: int = DEFAULT_SEED,
    bound: int | None = None,
    max_schedules: int | None = None,
    log: Callable[[str], None] | None = None,
) -> list[ConcurrentCheck]:
    """Run every scenario ``runs`` times concurrently on ``kernel`` (None: the one matching each
    scenario's fs; an explicit kernel runs every scenario on its file kind, the model alike) and
    check its outcomes against the model's exploration under ``design`` (None: the design
    :func:`default_concurrent_design` names for the kernel). Host kernels run one probe process
    per scenario; all ``dax-vm`` scenarios share one VM boot. Everything is checked before
    anything runs."""
    from faultlab.designs import get_design
    from faultlab.oracle.host import HOST_KERNELS

    if not 1 <= runs <= MAX_RUNS:
        raise UserError(f"the number of concurrent runs must be 1..{MAX_RUNS}, not {runs}")
    written = [s.fs for s in scenarios]
    if kernel is not None:
        if kernel not in KERNEL_FS:
            raise UserError(f"unknown kernel {kernel!r}: choose one of {', '.join(KERNEL_FS)}")
        scenarios = [replace(s, fs=KERNEL_FS[kernel]) for s in scenarios]
    chosen = [kernel or FS_KERNEL[s.fs] for s in scenarios]
    designs: list[Design] = []
    for s, k in zip(scenarios, chosen, strict=True):
        check_kernel(s, k)
        check_concurrent(s)
        to_probe_program(s, GUEST_DIR)  # refuses what the probe cannot do (memory limits, ...)
        if design is None:
            designs.append(get_design(default_concurrent_design(k)))
        else:
            designs.append(get_design(design) if isinstance(design, str) else design)

    results: dict[int, KernelOutcomes] = {}
    in_vm = [i for i, k in enumerate(chosen) if k == "dax-vm"]
    for i, k in enumerate(chosen):
        if k in HOST_KERNELS:
            results[i] = run_concurrent_on_host(scenarios[i], k, runs, seed)
    for i, res in zip(in_vm, run_concurrent_in_vm([scenarios[i] for i in in_vm], runs, seed, log=log), strict=True):
        results[i] = res

    out = []
    for i, scenario in enumerate(scenarios):
        model = model_outcomes(scenario, designs[i], bound=bound, max_schedules=max_schedules)
        c = check(scenario, results[i], model, designs[i])
        notes = list(c.notes)
        if written[i] != scenario.fs:
            notes.insert(0, f"written for fs={written[i]}, run as fs={scenario.fs} (--kernel {kernel})")
            # a schedule is tied to the scenario it was recorded on: the file needs the fs it ran as
            c.unexplained = [
                replace(u, replay=f'{u.replay}  (after setting fs = "{scenario.fs}" in the file)') if u.replay else u
                for u in c.unexplained
            ]
        out.append(replace(c, notes=tuple(notes)))
    return out


# -- JSON -------------------------------------------------------------------------------------------------


def check_json(c: ConcurrentCheck) -> dict[str, Any]:
    k, m = c.kernel, c.model
    return {
        "scenario": c.scenario.path,
        "title": c.scenario.title,
        "fs": c.scenario.fs,
        "kernel": k.kernel,
        "design": m.design,
        "runs": k.runs,
        "workers": k.workers,
        "cpus": k.cpus,
        "notes": list(c.notes),
        "model": {
            "schedules": m.schedules,
            "complete": m.complete,
            "bound": m.bound,
            "how": m.how,
            "outcomes": len(m.outcomes),
            "violations": list(m.violations),
        },
        "kernel_outcomes": [
            {**o.json(), "runs": runs, "first_run": first, "in_model": o in m.outcomes}
            for o, (runs, first) in k.outcomes.items()
        ],
        "model_only": [o.json() for o in c.model_only],
        "unexplained": [
            {
                "kind": u.kind,
                "outcome": u.outcome.json(),
                "runs": u.runs,
                "first_run": u.first_run,
                "nearest": None if u.nearest is None else u.nearest.json(),
                "differing_ops": list(u.differing_ops),
                "differing_files": list(u.differing_files),
                "schedule": u.schedule,
                "replay": u.replay,
            }
            for u in c.unexplained
        ],
        "differences": len(c.unexplained),
    }

