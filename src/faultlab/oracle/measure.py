"""Re-measure, with the probe, the kernel facts that ``docs/fidelity.md`` quotes.

``python -m faultlab.oracle.measure`` runs every fact on host tmpfs and host ext4 and prints
Markdown tables (fault counts, truncate/EOF outcomes, ns per fault). Each fact is a short probe
program; files are written in 4 KiB chunks and every mapping starts 2 MiB-aligned.
"""

from __future__ import annotations

import argparse
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from faultlab.oracle.build import build_probe
from faultlab.oracle.errors import OracleError
from faultlab.oracle.host import HOST_KERNELS, host_workdir, run_probe, time_faults_on_host
from faultlab.oracle.program import TIME_KINDS

P = 4096


@dataclass(frozen=True, slots=True)
class Res:
    outcome: str
    minflt: int
    majflt: int

    def faults(self) -> str:
        if self.majflt:
            return f"{self.minflt} minor + {self.majflt} MAJOR"
        return str(self.minflt)


Show = Callable[[list[Res]], str]


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    lines: tuple[str, ...]  # `file ...` lines and ops without the `op <i>` prefix
    show: Show


def fact(label: str, show: Show, *lines: str) -> Fact:
    return Fact(label, lines, show)


def faults(*ops: int) -> Show:
    return lambda res: " + ".join(res[i].faults() for i in ops)


def outcome(*ops: int) -> Show:
    return lambda res: ", ".join(_short(res[i].outcome) for i in ops)


def faulting(first: int) -> Show:
    """Which of the ops from ``first`` on took faults (their index relative to ``first``)."""

    def show(res: list[Res]) -> str:
        hit = [(i - first, r) for i, r in enumerate(res) if i >= first and (r.minflt or r.majflt)]
        total = sum(r.minflt + r.majflt for _, r in hit)
        majors = sum(r.majflt for _, r in hit)
        if len(hit) > 8:
            return f"{total} faults" + (f" ({majors} MAJOR)" if majors else "")
        return ",".join(f"{i}{'M' if r.majflt else ''}" for i, r in hit) + f" ({total} faults)"

    return show


def _short(text: str) -> str:
    if not text.startswith("data "):
        return text
    raw = text[5:]
    data = b"" if raw == "-" else bytes.fromhex(raw)
    if not data:
        return "EOF (no bytes)"
    if data == bytes(len(data)):
        return "zeros"
    return repr(data.decode("latin-1"))


def _seq(kind: str, pages: int, store: bool = False) -> tuple[str, ...]:
    access = (f"store m {i * P} 5a" if store else f"load m {i * P} 1" for i in range(pages))
    return (f"mmap m d 0 {pages * P} {kind} {'rw' if store else 'ro'}", *access)


F32 = "file d 131072 fill 41"
HOLE = "file d 131072 hole"

FAULT_FACTS: tuple[Fact, ...] = (
    fact("MAP_PRIVATE write-first to an untouched page", faults(1), F32, "mmap m d 0 131072 private rw",
         "store m 0 58"),
    fact("…then write the next page (write faults never fault-around)", faults(2), F32,
         "mmap m d 0 131072 private rw", "store m 0 58", "store m 4096 58"),
    fact("private read, then write the same page", faults(1, 2), F32, "mmap m d 0 131072 private rw",
         "load m 0 1", "store m 0 58"),
    fact("private: write a neighbour already mapped RO by fault-around", faults(2), F32,
         "mmap m d 0 131072 private rw", "load m 0 1", "store m 4096 58"),
    fact("private: read inside the same 16-page window after that", faults(3), F32,
         "mmap m d 0 131072 private rw", "load m 0 1", "store m 4096 58", "load m 8192 1"),
    fact("MAP_SHARED write-first", faults(1), F32, "mmap m d 0 131072 shared rw", "store m 0 58"),
    fact("shared read, then write the same page", faults(1, 2), F32, "mmap m d 0 131072 shared rw",
         "load m 0 1", "store m 0 58"),
    fact("shared: write a neighbour mapped by fault-around", faults(2), F32, "mmap m d 0 131072 shared rw",
         "load m 0 1", "store m 4096 58"),
    fact("private write to a hole (sparse file)", faults(1), HOLE, "mmap m d 0 131072 private rw",
         "store m 0 58"),
    fact("shared write to a hole", faults(1), HOLE, "mmap m d 0 131072 shared rw", "store m 0 58"),
    fact("read a hole, then write it (shared)", faults(1, 2), HOLE, "mmap m d 0 131072 shared rw",
         "load m 0 1", "store m 0 58"),
    fact("sequential read, 64 pages (pages that faulted)", faulting(1), "file d 262144 fill 41",
         *_seq("private", 64)),
    fact("sequential read, 1024 pages", faulting(1), "file d 4194304 fill 41", *_seq("private", 1024)),
    fact("sequential read of a sparse file, 64 pages", faulting(1), "file d 262144 hole",
         *_seq("private", 64)),
    fact("sequential write-first, 64 pages, private", faulting(1), "file d 262144 fill 41",
         *_seq("private", 64, store=True)),
    fact("sequential write-first, 64 pages, shared", faulting(1), "file d 262144 fill 41",
         *_seq("shared", 64, store=True)),
    fact("read of 40 pages mapped from file offset 5 pages (window follows the VA)", faulting(1),
         "file d 262144 fill 41", "mmap m d 20480 163840 private ro",
         *(f"load m {i * P} 1" for i in range(40))),
)  # fmt: skip

F2 = "file d 8192 fill 41"
F4196 = "file d 4196 fill 41"

EOF_FACTS: tuple[Fact, ...] = (
    fact("private, COW page 1, truncate to 1 page, read page 1", outcome(3), F2,
         "mmap m d 0 8192 private rw", "store m 4096 58", "truncate d 4096", "load m 4096 1"),
    fact("…truncate to 1 page then re-extend to 2, read page 1", outcome(4), F2,
         "mmap m d 0 8192 private rw", "store m 4096 58", "truncate d 4096", "truncate d 8192",
         "load m 4096 1"),
    fact("shared, write page 1, truncate to 1 page, read page 1", outcome(3), F2,
         "mmap m d 0 8192 shared rw", "store m 4096 58", "truncate d 4096", "load m 4096 1"),
    fact("private, page 1 read-mapped (not COWed), truncate, write page 1", outcome(3), F2,
         "mmap m d 0 8192 private rw", "load m 4096 1", "truncate d 4096", "store m 4096 58"),
    fact("mapping longer than the file: private write, shared read of page 2", outcome(2, 3), F2,
         "mmap p d 0 16384 private rw", "mmap s d 0 16384 shared ro", "store p 8192 58", "load s 8192 1"),
    fact("file of 4196 bytes written with write(): bytes 4196..8191 via mmap", outcome(1), F4196,
         "mmap m d 0 8192 shared ro", "load m 4196 3996"),
    fact("partial truncate to 4196 of a mapped page: bytes ≥ 4196", outcome(3), F2,
         "mmap m d 0 8192 shared ro", "load m 4096 1", "truncate d 4196", "load m 4196 100"),
    fact("private page COWed ('B' at 4296) before a partial truncate to 4196", outcome(3), F2,
         "mmap m d 0 8192 private rw", "store m 4296 42", "truncate d 4196", "load m 4296 1"),
    fact("store via the mapping past EOF inside the last page; then pread there", outcome(1, 2), F4196,
         "mmap m d 0 8192 shared rw", "store m 4396 51", "read d 4396 1"),
    fact("post-EOF 'Q' (EOF 4196), ftruncate-extend: mapping, pread", outcome(3, 4), F4196,
         "mmap m d 0 8192 shared rw", "store m 4396 51", "truncate d 8192", "load m 4396 1", "read d 4396 1"),
    fact("post-EOF 'Q' (EOF 4196), pwrite-extend: mapping, pread", outcome(3, 4), F4196,
         "mmap m d 0 8192 shared rw", "store m 4396 51", "write d 8191 00", "load m 4396 1", "read d 4396 1"),
    fact("post-EOF 'Q', msync+fsync, then ftruncate-extend: mapping, pread", outcome(5, 6), F4196,
         "mmap m d 0 8192 shared rw", "store m 4396 51", "msync m", "fsync d", "truncate d 8192",
         "load m 4396 1", "read d 4396 1"),
)  # fmt: skip


def _program(workdir: str, lines: Sequence[str]) -> str:
    out = [f"dir {workdir}"]
    index = 0
    for line in lines:
        if line.startswith("file "):
            out.append(line)
        else:
            out.append(f"op {index} {line}")
            index += 1
    return "\n".join([*out, "end"]) + "\n"


def _parse(output: str) -> list[Res]:
    res: list[Res] = []
    for line in output.splitlines():
        words = line.split()
        if words[:1] == ["res"]:
            res.append(Res(" ".join(words[2:-2]), int(words[-2]), int(words[-1])))
    return res


def measure_fact(item: Fact, kernel: str) -> str:
    """Run one fact on ``kernel`` (host-tmpfs or host-ext4) and render its result."""
    with host_workdir(kernel) as workdir:
        output = run_probe(build_probe(), _program(str(workdir), item.lines))
    return item.show(_parse(output))


def _table(title: str, facts: Sequence[Fact]) -> list[str]:
    rows = [f"| {title} | tmpfs | ext4 |", "|---|---|---|"]
    for item in facts:
        rows.append(f"| {item.label} | " + " | ".join(measure_fact(item, k) for k in HOST_KERNELS) + " |")
    return rows


def _timing(pages: int, reps: int) -> list[str]:
    rows = [f"| ns per fault, {pages} pages, median of {reps} | tmpfs | ext4 |", "|---|---|---|"]
    for kind in TIME_KINDS:
        cells = [f"{time_faults_on_host(kind, pages, kernel=k, reps=reps):.0f}" for k in HOST_KERNELS]
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pages", type=int, default=16384, help="pages per timing run (default 16384)")
    parser.add_argument("--reps", type=int, default=7, help="timing repetitions (default 7)")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing table")
    args = parser.parse_args(argv)
    try:
        lines = [f"Measured with the faultlab probe on kernel {platform.release()}.", ""]
        lines += _table("fault counts (minor unless marked)", FAULT_FACTS) + [""]
        lines += _table("truncate / EOF", EOF_FACTS)
        if not args.no_timing:
            lines += [""] + _timing(args.pages, args.reps)
    except OracleError as exc:
        print(f"faultlab: {exc}", file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
