"""Mutation testing: does the suite notice when the model, its checks or the explorer is broken?

    python tools/mutants.py [--jobs 2] [--only ID,...] [--all-tests] [--list] [--timeout 600] [--memory-cap-mb 3072]

Each mutation below is a ``(file, exact old text, new text, why)`` edit of one place of the source:
a check dropped, a lock not taken, a branch inverted.  For each one the tool copies ``src/`` to a
temporary directory, applies the edit there (the checkout is never touched), and runs pytest
against the copy (``PYTHONPATH`` puts it first) on the mutation's tests, or with ``--all-tests``
on the whole suite without the VM tests, each pytest capped at ``--memory-cap-mb`` of address
space.  The mutant is *killed* if a test fails (or pytest times out or runs out of memory: a run
that no longer stops), *survived* if every test passes, an *error* if pytest ran no test (not
installed, nothing collected: no verdict).  An edit whose old text is no longer in the file
exactly once is reported as *stale* (the code changed: the entry needs updating), never a crash.
A mutation marked ``unreachable`` (with the reason) is run and shown but left out of the score:
no test of the model can see it.

The table lists every mutation; the score is killed / (killed + survived), stale and unreachable
mutations aside.  Exit status 1 if the score is below ``--min-score`` (default 0.9), a mutation
is stale, or pytest could not run one.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BITE = "tests/test_bite.py"


@dataclass(frozen=True)
class Mutation:
    id: str
    file: str  # under src/faultlab/
    old: str
    new: str
    why: str
    tests: tuple[str, ...] = (BITE,)
    unreachable: str = ""  # why no test can see it (left out of the score)


M = Mutation
_HAND_OFF = ("        if _asked_to_hand_off(task, len(runs)) and (rest := _own_nodes(ts)) is not None:\n"
             "            break\n")
_ADVANCE = "        if not ts.advance():\n            exhausted = True\n            break\n"
MUTATIONS: list[Mutation] = [
    # -- the ten of issue 14 ---------------------------------------------------------------------------
    M("filemap-fault-no-isize-recheck", "kernel/filemap.py",
      '    # "We must recheck i_size under page lock"\n    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):',
      '    # "We must recheck i_size under page lock"\n    if False:',
      "filemap_fault maps a page truncate has cut off"),
    M("shmem-fault-no-second-isize-check", "fs/shmem.py",
      '    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):  # "Perhaps the file has been truncated"',
      '    if False:  # "Perhaps the file has been truncated"',
      "shmem_fault adds and maps a page past a racing truncate's EOF"),
    M("mkwrite-ignores-truncation", "kernel/filemap.py",
      "    if page_mapping(k, page) is not inode.mapping:\n        unlock_page(k, page)\n"
      "        return VM_FAULT_NOPAGE",
      "    if False:\n        unlock_page(k, page)\n        return VM_FAULT_NOPAGE",
      "filemap_page_mkwrite makes a truncated page writable"),
    M("map-pages-past-eof", "kernel/filemap.py",
      "        if index >= size_in_pages(inode.i_size_read(k)):\n            unlock_page(k, page)\n"
      "            put_page(k, page)\n            continue\n        address = vma.address_of(index)",
      "        if False:\n            unlock_page(k, page)\n"
      "            put_page(k, page)\n            continue\n        address = vma.address_of(index)",
      "fault-around maps pages past EOF"),
    M("find-lock-page-no-mapping-recheck", "kernel/filemap.py",
      "        lock_page(k, page)\n        if page_mapping(k, page) is mapping:\n            return page",
      "        lock_page(k, page)\n        if True:\n            return page",
      "find_lock_page returns a page truncate removed while it waited for the lock"),
    M("v4.0-cow-no-copy", "kernel/eras/v4_0.py",
      "    if fault_page is not None:\n        copy_page(k, new_page, fault_page)",
      "    if False:\n        copy_page(k, new_page, fault_page)",
      "the v4.0-family do_cow_fault maps a COW page without the file's data"),
    M("shared-fault-no-page-mkwrite", "kernel/eras/v3_15.py",
      "    assert page is not None\n    if vma.vm_ops.page_mkwrite is not None:\n        unlock_page(k, page)",
      "    assert page is not None\n    if False:\n        unlock_page(k, page)",
      "do_shared_fault (3.15-4.7) never calls ->page_mkwrite"),
    M("lockdep-listener-deaf", "checks/lockdep.py",
      '        def on_event(ev: Event) -> None:\n            new = ev.data["cls"]',
      '        def on_event(ev: Event) -> None:\n            return\n            new = ev.data["cls"]',
      "lockdep ignores every lock attempt", tests=(BITE, "tests/test_lockdep.py")),
    M("truncate-end-stale-pte-check-off", "checks/invariants.py",
      '        self.truncating[inode] -= 1\n        self.check_no_pte_past_eof(inode, "when truncate returned")',
      "        self.truncating[inode] -= 1",
      "the stale-PTE check at the end of truncate never fires"),
    M("dpor-no-fg05-fallback", "explore/dfs.py",
      "    else:\n        node.insert(node.enabled & ~covered)",
      "    else:\n        pass",
      "DPOR drops a race it cannot reverse at the racing step's state",
      tests=("tests/test_explore_dfs.py", "tests/test_explore_property.py")),
    # -- locking ---------------------------------------------------------------------------------------
    M("rwsem-readers-ignore-queued-writer", "kernel/locking.py",
      "        return self.writer is None and not self.queued",
      "        return self.writer is None",
      "rw_semaphore without writer preference (the nested i_mmap deadlock disappears)",
      tests=("tests/test_soundness.py",)),
    M("rwsem-writer-ignores-readers", "kernel/locking.py",
      "        return self.writer is None and not self.readers",
      "        return self.writer is None",
      "down_write does not wait for readers", tests=("tests/test_soundness.py",)),
    M("spinlock-not-exclusive", "kernel/locking.py",
      '        k.sched.point(self, _WRITE, "spin_lock " + self.cls, ready=self._free)',
      '        k.sched.point(self, _WRITE, "spin_lock " + self.cls)',
      "spin_lock does not wait for the holder (the PTL does not exclude)"),
    M("bitlock-not-exclusive", "kernel/locking.py",
      "        k.lock_attempt(self, \"W\")\n        k.sched.point(self, _WRITE, label, ready=self._free)",
      "        k.lock_attempt(self, \"W\")\n        k.sched.point(self, _WRITE, label)",
      "lock_page does not wait for the page lock"),
    M("trylock-always-succeeds", "kernel/locking.py",
      "        k.sched.point(self, _WRITE, label)\n        if self.owner is not None:\n            return False",
      "        k.sched.point(self, _WRITE, label)\n        if False:\n            return False",
      "trylock_page takes a held page lock"),
    # -- page cache, truncate ----------------------------------------------------------------------------
    M("filemap-fault-no-truncated-recheck", "kernel/filemap.py",
      '        if page_mapping(k, page) is not mapping:  # "Did it get truncated?"',
      '        if False:  # "Did it get truncated?"',
      "filemap_fault returns a page truncate removed from the cache"),
    M("map-pages-maps-locked-pages", "kernel/filemap.py",
      "        if not trylock_page(k, page):\n            put_page(k, page)\n            continue",
      "        if not trylock_page(k, page) and False:\n            put_page(k, page)\n            continue",
      "fault-around maps a page someone else holds locked (e.g. truncate)"),
    M("truncate-no-second-unmap", "kernel/truncate.py",
      "    truncate_inode_pages_range(k, mapping, newsize)\n"
      "    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)",
      "    truncate_inode_pages_range(k, mapping, newsize)",
      "truncate_pagecache without the second unmap (private COW pages made meanwhile survive)"),
    M("truncate-no-first-unmap", "kernel/truncate.py",
      "    holebegin = round_up_page(newsize)\n    unmap_mapping_range(k, mapping, holebegin, 0, even_cows=True)\n",
      "    holebegin = round_up_page(newsize)\n",
      "truncate_pagecache drops pages while they are still mapped"),
    M("truncate-isize-after-pages", "kernel/truncate.py",
      "    oldsize = inode.i_size_read(k)\n    inode.i_size_write(k, newsize)\n    if newsize < oldsize:\n"
      "        truncate_pagecache(k, inode, newsize)",
      "    oldsize = inode.i_size_read(k)\n    if newsize < oldsize:\n        truncate_pagecache(k, inode, newsize)\n"
      "    inode.i_size_write(k, newsize)",
      "truncate_setsize writes i_size after dropping the pages (faults re-add them)"),
    M("truncate-inode-page-keeps-pte", "kernel/truncate.py",
      "    if page_mapcount(k, page) > 0:\n"
      "        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)",
      "    if False:\n        unmap_mapping_range(k, mapping, index << PAGE_SHIFT, PAGE_SIZE, even_cows=False)",
      "truncate_inode_page deletes a page that is still mapped"),
    # -- memory.c ------------------------------------------------------------------------------------------
    M("zap-keeps-dirty-bit", "kernel/memory.py",
      "            if ptent.dirty and not anon:\n                SetPageDirty(k, page)",
      "            if False:\n                SetPageDirty(k, page)",
      "zap_pte_range drops a PTE's dirty bit (a store through a shared mapping is lost)"),
    M("zap-even-cows-ignored", "kernel/memory.py",
      "None if even_cows else mapping)",
      "mapping)",
      "unmap_mapping_range keeps COW copies even when truncate asks for them (even_cows)"),
    M("cow-pte-recheck-off", "kernel/eras/v4_0.py",
      "    pte_offset_map_lock(k, vmf)\n    if pte_read(k, vmf.vma, vmf.address) != vmf.orig_pte:",
      "    pte_offset_map_lock(k, vmf)\n    if False:",
      "do_cow_fault (4.0) installs its PTE over one another fault installed meanwhile",
      tests=(BITE, "tests/test_soundness.py")),
    M("shared-fault-no-dirty", "kernel/eras/v3_15.py",
      "    do_set_pte(k, vmf, page, write=True, anon=False)\n    pte_unmap_unlock(k, vmf)\n    SetPageDirty(k, page)",
      "    do_set_pte(k, vmf, page, write=True, anon=False)\n    pte_unmap_unlock(k, vmf)",
      "do_shared_fault (3.15-4.7) does not dirty the page",
      unreachable="the PTE is installed dirty by the store itself, and both zap_pte_range and writeback's "
                  "page_mkclean move a PTE's dirty bit to the page before anything reads the page's"),
    # -- DAX ---------------------------------------------------------------------------------------------------
    M("dax-4.0-cow-no-isize-recheck", "fs/dax/v4_0.py",
      "        i_mmap_lock_read(k, mapping)\n        if vmf.pgoff >= size_in_pages(vmf.vma.file.i_size_read(k)):",
      "        i_mmap_lock_read(k, mapping)\n        if False:",
      "the seed's bug: 4.0's DAX COW branch without the i_size re-check under i_mmap",
      tests=("tests/test_explore_model.py",)),
    M("dax-4.0-insert-no-isize-recheck", "fs/dax/v4_0.py",
      "    i_mmap_lock_read(k, mapping)\n    if vmf.pgoff >= size_in_pages(inode.i_size_read(k)):\n"
      "        i_mmap_unlock_read(k, mapping)\n        return EIO",
      "    i_mmap_lock_read(k, mapping)\n    if False:\n        i_mmap_unlock_read(k, mapping)\n        return EIO",
      "dax_insert_mapping (4.0) maps a block truncate freed",
      tests=(BITE,)),
    M("dax-4.7-unlock-wakes-nobody", "fs/dax/v4_7.py",
      "    mapping.tree_lock.unlock(k)\n    dax_wake_mapping_entry_waiter(k, mapping, index, wake_all=False)\n\n\n"
      "def put_locked_mapping_entry",
      "    mapping.tree_lock.unlock(k)\n\n\ndef put_locked_mapping_entry",
      "dax_unlock_mapping_entry forgets the wake-up: a waiter sleeps for ever",
      tests=("tests/test_soundness.py",)),
    # -- checks -----------------------------------------------------------------------------------------------
    M("check-pte-set-past-eof-off", "checks/invariants.py",
      "        if not self.truncating.get(inode) and pgoff >= size_in_pages(inode.peek_size()):",
      "        if False:",
      "a PTE set past EOF after truncate is not reported", tests=(BITE, "tests/test_explore_model.py")),
    M("check-use-after-free-off", "checks/invariants.py",
      '        if pte.page is not None and pte.page._freed:\n            self.report("use-after-free"',
      '        if False:\n            self.report("use-after-free"',
      "a PTE set to a freed page is not reported", tests=(BITE, "tests/test_explore_model.py")),
    M("check-deadlock-off", "execution.py",
      "        if sched.deadlock is not None:\n            checker.report(\"deadlock\", str(sched.deadlock))",
      "        if False:\n            checker.report(\"deadlock\", str(sched.deadlock))",
      "a run whose threads are all blocked is not a violation", tests=(BITE, "tests/test_soundness.py")),
    M("check-lock-pairing-at-end-off", "checks/invariants.py",
      "            if held and tid >= 0 and tid not in blocked:",
      "            if False:",
      "a thread finishing with a lock held is not reported", tests=(BITE,)),
    # -- explorer -------------------------------------------------------------------------------------------
    M("access-conflict-reads-conflict", "sched/core.py",
      "    return a != b or a == Access.WRITE",
      "    return a != b",
      "two WRITEs of one object are independent",
      tests=("tests/test_explore_dfs.py", "tests/test_explore_property.py"),
      unreachable="conflicting() is called by nothing: dfs.py keeps its own per-object clocks of READs, UPDATEs "
                  "and WRITEs (dead code, left for its docstring)"),
    M("dpor-sleep-set-never-wakes", "explore/dfs.py",
      "        if cand and not awake:  # asleep: explored from an equivalent state already\n            return",
      "        if cand:\n            return",
      "DPOR drops a race whenever an initial thread is enabled, asleep or not",
      tests=("tests/test_explore_dfs.py", "tests/test_explore_property.py")),
    M("dpor-lock-race-at-release", "explore/dfs.py",
      "                    e = took_at\n",
      "                    pass\n",
      "DPOR reverses a lock's race before the release, where the waiting thread cannot take the lock",
      tests=("tests/test_explore_dfs.py",)),
    M("audit-locks-off", "sched/core.py",
      "            self._audit_locks(ready)\n        chosen = self.chooser.choose(self, ready) if ready",
      "            pass\n        chosen = self.chooser.choose(self, ready) if ready",
      "the audit lets a blocking step on a lock move while another thread holds it",
      tests=("tests/test_audit.py",)),
    M("dax-lookup-never-announces-its-queue", "fs/dax/v4_7.py",
      'more=queues if waits else ())', 'more=())',
      "a DAX entry look-up that waits on the entry's queue does not announce it",
      tests=("tests/test_race_scenarios.py", "tests/test_explore_dpor_vs_plain.py"),
      unreachable="a wake that can find the waiter is ordered after its look-up through the slot's lock "
                  "bit already (the look-up read it locked; the waker's unlock or delete wrote it, or its own "
                  "look-up read it unlocked after that write): no end state depends on the queue's announcement"),
    M("dax-lookup-peek-unchecked", "fs/dax/v4_7.py",
      "        if (isinstance(entry, DaxEntry) and entry.locked) != waits:\n",
      "        if False:\n",
      "a DAX entry look-up announced from a stale peek goes unnoticed",
      tests=("tests/test_audit.py",)),
    M("coverage-coordinator-nodes-uncounted", "explore/parallel.py",
      "            self.coverage.finished(node)\n            node.pos = len(order) - 1",
      "            node.pos = len(order) - 1",
      "a split search does not count the decision points of the coordinator's nodes",
      tests=("tests/test_explore_coverage.py",)),
    M("hand-off-nodes-dropped", "explore/parallel.py",
      "        if res.rest is not None:  # its own nodes",
      "        if False:  # its own nodes",
      "a split search forgets the nodes a task handed off: the rest of its subtree is never run",
      tests=("tests/test_explore_parallel.py",)),
    M("hand-off-after-advance", "explore/parallel.py", _HAND_OFF + _ADVANCE, _ADVANCE + _HAND_OFF,
      "a task hands off its nodes after moving to its next branch, which then counts as started",
      tests=("tests/test_explore_parallel.py",)),
    M("coverage-bound-cut-unmarked", "explore/dfs.py",
      "            node.cut |= low\n", "",
      "the coverage counts what the preemption bound refused as left out by the reduction",
      tests=("tests/test_explore_coverage.py",)),
    M("retry-cut-runs-as-sleep-blocked", "explore/collector.py",
      "            if retry_cut:\n                self.retry_cut += 1",
      "            if False:\n                self.retry_cut += 1",
      "runs the retry bound cut are counted as sleep-set blocked",
      tests=("tests/test_explore_parallel.py",)),
    M("explore-stops-never-on-first", "explore/collector.py",
      "        if self.stop_on_first and self.hits:\n            return FIRST_VIOLATION",
      "        if False:\n            return FIRST_VIOLATION",
      "an exploration goes on after its first violation", tests=("tests/test_explore_dfs.py",)),
    M("step-limit-off", "sched/core.py",
      "        if self.nsteps > self.step_limit:",
      "        if False:",
      "a run past its step limit goes on (a livelock never ends)", tests=("tests/test_run_errors.py",)),
]


def apply(text: str, m: Mutation) -> str | None:
    """``text`` with the mutation applied, or None if its old text is not there exactly once."""
    if text.count(m.old) != 1:
        return None
    return text.replace(m.old, m.new)


@dataclass
class Outcome:
    mutation: Mutation
    status: str  # killed, survived, stale, timeout, error
    seconds: float
    detail: str = ""


def _cap_memory(mb: int) -> None:
    """Run in the child before pytest starts: a mutant that lets a run go on for ever (a livelock
    no longer stopped) fails on MemoryError at ``mb`` MiB instead of filling the machine."""
    cap = mb << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def run_one(m: Mutation, tests: list[str], timeout: float, memory_mb: int = 3072) -> Outcome:
    started = time.monotonic()
    source = ROOT / "src" / "faultlab" / m.file
    mutated = apply(source.read_text(), m) if source.is_file() else None
    if mutated is None:
        return Outcome(m, "stale", 0.0, "old text not found exactly once")
    with tempfile.TemporaryDirectory(prefix="faultlab-mutant-") as tmp:
        shutil.copytree(ROOT / "src", Path(tmp) / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        (Path(tmp) / "src" / "faultlab" / m.file).write_text(mutated)
        env = {**os.environ, "PYTHONPATH": str(Path(tmp) / "src"), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not vm", *tests]
        try:
            res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                                 preexec_fn=lambda: _cap_memory(memory_mb))
        except subprocess.TimeoutExpired:
            return Outcome(m, "timeout", time.monotonic() - started, f"over {timeout:g} s")
    seconds = time.monotonic() - started
    if res.returncode == 0:
        return Outcome(m, "survived", seconds)
    failed = [line.split(" - ")[0] for line in res.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    if failed:
        return Outcome(m, "killed", seconds, failed[0])
    if "MemoryError" in res.stdout + res.stderr:  # a run that no longer stops filled its cap: as a timeout
        return Outcome(m, "killed", seconds, f"MemoryError at the {memory_mb} MiB cap (pytest exit status "
                       f"{res.returncode})")
    # pytest did not run the tests (not installed, no test collected, a usage error): no verdict
    last = (res.stdout + res.stderr).strip().splitlines()
    return Outcome(m, "error", seconds, f"pytest exit status {res.returncode}: {last[-1] if last else ''}")


def check_copy_is_imported() -> None:
    """The mutants' PYTHONPATH must win over the installed faultlab."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(ROOT / "src", Path(tmp) / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        out = subprocess.run([sys.executable, "-c", "import faultlab; print(faultlab.__file__)"],
                             env={**os.environ, "PYTHONPATH": str(Path(tmp) / "src")},
                             capture_output=True, text=True, check=True).stdout
        if not out.startswith(tmp):
            sys.exit(f"mutants: the copy is not imported (faultlab comes from {out.strip()}): run from a venv "
                     "where faultlab is installed editable or not at all")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="comma-separated mutation ids")
    ap.add_argument("--all-tests", action="store_true", help="run the whole suite (not vm) on every mutant")
    ap.add_argument("--tests", default="", help="comma-separated test files or ids to run instead of each mutation's")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per mutant (a timeout counts as killed)")
    ap.add_argument("--memory-cap-mb", type=int, default=3072,
                    help="address-space limit of each mutant's pytest (a run-away run fails on MemoryError)")
    ap.add_argument("--min-score", type=float, default=0.9)
    ap.add_argument("--list", action="store_true", help="list the mutations and whether each still applies")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.id in args.only.split(",")]
    if args.list:
        for m in chosen:
            text = (ROOT / "src" / "faultlab" / m.file).read_text()
            state = "ok" if apply(text, m) is not None else "STALE"
            print(f"{state:<6} {m.id:<40} {m.file}: {m.why}")
        return 0
    check_copy_is_imported()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(args.jobs, 1)) as pool:
        def tests_of(m: Mutation) -> list[str]:
            if args.all_tests:
                return ["tests"]
            return args.tests.split(",") if args.tests else list(m.tests)

        outcomes = list(pool.map(lambda m: run_one(m, tests_of(m), args.timeout, args.memory_cap_mb), chosen))
    print(f"{'mutation':<40} {'result':<10} {'s':>6}  killed by / note")
    for o in outcomes:
        status = o.status + (" (unreachable)" if o.mutation.unreachable else "")
        note = o.detail or o.mutation.unreachable
        print(f"{o.mutation.id:<40} {status:<10} {o.seconds:6.1f}  {note}")
    scored = [o for o in outcomes if not o.mutation.unreachable and o.status not in ("stale", "error")]
    killed = sum(1 for o in scored if o.status in ("killed", "timeout"))
    stale = sum(1 for o in outcomes if o.status == "stale")
    errors = sum(1 for o in outcomes if o.status == "error")
    unreachable = sum(1 for o in outcomes if o.mutation.unreachable)
    score = killed / len(scored) if scored else 1.0
    print(f"\n{len(outcomes)} mutations: {killed} killed, {len(scored) - killed} survived, {unreachable} unreachable, "
          f"{stale} stale, {errors} not run (pytest error); score {killed}/{len(scored)} = {score:.0%} of reachable "
          f"mutants ({time.monotonic() - started:.0f} s, {args.jobs} jobs)")
    return 0 if score >= args.min_score and not stale and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
