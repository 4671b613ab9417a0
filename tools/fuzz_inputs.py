"""Run generated bad inputs through the faultlab command as real processes and count what happens.

    python tools/fuzz_inputs.py [--cases 10000] [--seed 0] [--jobs 2] [--timeout 20] [--memory-cap-mb 2048]

Each case is a command line (``faultlab run|explore|replay|compare|designs ...``) and the files
it names, written to a fresh directory: scenario files mutated from the bundled ones or made from
scratch, schedule strings, design files, and flags. Cases are generated from ``--seed`` and the
case number alone, so a run is reproducible case by case, whatever the number of jobs. Every
process gets ``--timeout`` seconds and an address-space cap; its peak RSS is read with wait4().

The table counts exit statuses, tracebacks, hangs, statuses other than 0, 1, 2 and 130, and exits
with status 2 whose stderr is not exactly one line ``faultlab: ...``; it exits 1 if any of these
went wrong, or a case's peak RSS reached ``--max-rss-mb``. ``--show N`` prints the first N bad
cases in full (command, files, stderr).

A child's peak RSS as wait4() reports it starts, on Linux, from the RSS of the process that forked
it (this one, some 20 MB): the figures are upper bounds.

Explorations run with ``--max-schedules`` and ``--budget`` (a generated flag may replace them
with another small value): the cases aim at parsing and validation, not at long searches.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = sorted(p for p in (ROOT / "scenarios").rglob("*.toml"))
SEED_SCENARIO = ROOT / "scenarios/seed/cow-vs-truncate.toml"
OK_STATUSES = (0, 1, 2, 130)


@dataclass
class Case:
    """One generated input: faultlab's arguments, and the files written to its directory first."""

    kind: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Sources:
    """What cases are made from: the bundled scenarios' text and each one's digest."""

    scenarios: tuple[tuple[str, str, str], ...]  # (path relative to the repository, text, digest)

    @staticmethod
    def load() -> Sources:
        from faultlab.scenario import load_scenario

        return Sources(tuple((str(p.relative_to(ROOT)), p.read_text(), load_scenario(str(p)).digest())
                             for p in SCENARIOS))


# -- values -----------------------------------------------------------------------------------------
BAD_NUMBERS = [
    "-1", "0", "1", "4096", "1p", "64g", "1024g", "1048577g", "9" * 21, "9" * 5000, "1" + "0" * 4400,
    "18446744073709551616", "9223372036854775808", "1e9", "0x10", "1_000", "1.5", "nan", "inf", "-0",
    "١", "٣p", "１p", "1p+", "+1", "1p+1p+1p", "1k+" * 50 + "1", "", " 1", "1 ", "٠x1", "1x", "p", "4K",
]
BAD_BYTES = [
    "A*64g", "A*9223372036854775808", "A*1m B", "A*1m", "\\0*4084", '"ab"*2', "*3", "A*", '"', '"abc',
    "\\q", "\\x4", "\\xzz", "é", '"\\n"*1p', "A*" + "9" * 5000, "A*1p " * 300, "A*٣", '"->"', "->",
]
ALPHABET = list('[]{}"\'=#,.\\\n\t -+*_:') + list("0123456789apkmgAZx") + ["١", "１", "\u2028", "\x00", "é", "\r"]
DESIGNS = ["v4.10", "v4.0", "xip", "v7", "v7-insert", "v4.7", "all", "v4.0-no-isize-recheck"]


def number(rng: random.Random) -> str:
    return rng.choice(BAD_NUMBERS)


def op_line(rng: random.Random, files: Sequence[str], maps: Sequence[str]) -> str:
    """An op line: sometimes valid, often not."""
    f = rng.choice([*files, "nofile", ""]) if files else "f"
    m = rng.choice([*maps, "q"]) if maps else "m"

    def size() -> str:
        return rng.choice(["0", "1", "1p", "2p", "4k", "1p+100"]) if rng.random() < 0.6 else number(rng)

    kind = rng.choice(["mmap", "munmap", "load", "store", "read", "write", "truncate", "msync", "fsync", "madvise",
                       "stor", "", "mmap"])
    line = {
        "mmap": lambda: f"{m} = mmap {f} {size()} {size()} {rng.choice(['private', 'shared', 'x'])} "
                        f"{rng.choice(['r', 'rw', 'w'])}",
        "munmap": lambda: f"munmap {m}",
        "load": lambda: f"load {m} {size()}" + (f" {size()}" if rng.random() < 0.5 else ""),
        "store": lambda: f"store {m} {size()} {rng.choice(BAD_BYTES)}",
        "read": lambda: f"read {f} {size()} {size()}",
        "write": lambda: f"write {f} {size()} {rng.choice(BAD_BYTES)}",
        "truncate": lambda: f"truncate {f} {size()}",
        "msync": lambda: f"msync {m}",
        "fsync": lambda: f"fsync {f}",
        "madvise": lambda: f"madvise {m} {rng.choice(['dontneed', 'willneed'])}",
        "stor": lambda: f"stor {m} 0 A",
        "": lambda: "",
    }[kind]()
    if rng.random() < 0.3:
        line += " -> " + rng.choice(["ok", "SIGBUS", "SIGSEGV", "SIGFOO", "EINVAL", "A*4", "\\0", '"ok"', "", "-> x"])
    return line


def toml_string(rng: random.Random, text: str) -> str:
    if "'" not in text and "\n" not in text and rng.random() < 0.5:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- scenarios --------------------------------------------------------------------------------------
def scenario_from_scratch(rng: random.Random) -> str:
    lines = []
    if rng.random() < 0.9:
        lines.append(f"title = {toml_string(rng, rng.choice(['t', 'a race', '', 'x' * 300]))}")
    if rng.random() < 0.9:
        lines.append(f'fs = "{rng.choice(["dax", "tmpfs", "ext4", "zfs", "DAX"])}"')
    if rng.random() < 0.2:
        lines.append(f'mm = "{rng.choice(["shared", "per-thread", "x"])}"')
    if rng.random() < 0.3:
        value = rng.choice([number(rng), '"64p"', '"' + number(rng) + '"'])
        lines.append(f"memory_limit = {value}")
    if rng.random() < 0.3:
        value = rng.choice([number(rng), '"1p"', '"1024g"', '"' + number(rng) + '"'])
        lines.append(f"pmem_size = {value}")
    files = [rng.choice(["d", "f", "data", "9x", "a b"]) + str(i) * (i > 0) for i in range(rng.randint(0, 3))]
    for name in files:
        lines.append(f"[files.{name}]" if rng.random() < 0.9 else f"[files.'{name}']")
        if rng.random() < 0.9:
            value = number(rng)
            lines.append(f"size = {value if value.isdigit() and len(value) < 30 else toml_string(rng, value)}")
        if rng.random() < 0.5:
            fill = toml_string(rng, rng.choice(["A", "hole", "", "hello world", "\u00ff", "x" * 9]))
            lines.append(f"fill = {fill}")
    for t in range(rng.randint(0, 3)):
        maps: list[str] = []
        ops = []
        for _ in range(rng.randint(0, 6)):
            op = op_line(rng, files, maps)
            if " = mmap" in op:
                maps.append(op.split(" = ")[0])
            ops.append(toml_string(rng, op))
        lines.append(f"[threads.t{t}]")
        lines.append("ops = [" + ", ".join(ops) + "]")
    return "\n".join(lines) + "\n"


def nested(rng: random.Random) -> str:
    depth = rng.choice([2, 31, 32, 33, 40, 500, 1000, 5000, 100_000, rng.randint(1, 300)])
    shape = rng.randrange(4)
    if shape == 0:
        return "x = " + "[" * depth + "]" * depth
    if shape == 1:
        return "x = " + "{a = " * depth + "1" + "}" * depth
    if shape == 2:
        return ".".join(["x"] * depth) + " = 1"
    return "[" + ".".join(["x"] * depth) + "]"


def mutate(rng: random.Random, text: str, heavy: bool = True) -> str:
    """One random edit of scenario text; ``heavy=False`` leaves out the edits that make large
    documents (seconds of parsing each: for the many cases of the test suite). The regexes are
    possessive and anchored: text can be a megabyte of one character, and a backtracking search
    holds the GIL (the other job's child then waits, unreaped) for as long as it takes."""
    lines = text.split("\n")
    choice = rng.randrange(13)
    if choice == 0:  # character noise
        for _ in range(rng.randint(1, 5)):
            i = rng.randint(0, len(text))
            text = text[:i] + rng.choice(ALPHABET) * rng.choice([1, 1, 1, 2, 50]) + text[i + rng.choice([0, 1]):]
        return text
    if choice == 1:  # a number or size replaced
        numbers = list(re.finditer(r"[0-9]++[pkmg]?", text))
        if numbers:
            m = rng.choice(numbers)
            return text[: m.start()] + number(rng) + text[m.end():]
    if choice == 2:  # an op line inserted into an array of ops
        files = re.findall(r"\[files\.([A-Za-z0-9_-]++)\]", text)
        maps = re.findall(r"(?<![A-Za-z0-9_-])([A-Za-z_][A-Za-z0-9_-]*+) *+= *+mmap", text)
        spots = [m.end() for m in re.finditer(r"ops *= *\[", text)]
        if spots:
            i = rng.choice(spots)
            return text[:i] + toml_string(rng, op_line(rng, files, maps)) + ", " + text[i:]
    if choice == 3:  # deep nesting
        return text + "\n" + nested(rng) + "\n"
    if choice == 4:  # many threads, files or ops
        n = rng.choice([65, 100, 5000] if heavy else [65, 100])
        what = rng.randrange(3)
        if what == 0:
            return text + "".join(f"\n[threads.extra{i}]\nops = []\n" for i in range(n))
        if what == 1:
            return text + "".join(f"\n[files.extra{i}]\nsize = 1\n" for i in range(n))
        if heavy:
            return text + "\n[threads.many]\nops = [" + '"fsync nofile",' * rng.choice([60_000, 100_000]) + "]\n"
        return text + "\n[threads.many]\nops = [" + '"fsync nofile",' * n + "]\n"
    if choice == 5:  # lines deleted, duplicated, swapped
        i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
        op = rng.randrange(3)
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[j])
        else:
            lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if choice == 6:  # cut short
        return text[: rng.randint(0, len(text))]
    if choice == 7:  # a value of another type
        values = list(re.finditer(r'= *+("[^"\n]*+"|[0-9]++)', text))
        if values:
            m = rng.choice(values)
            other = rng.choice(["[1, 2]", "{a = 1}", "true", "1.5", "nan", "1979-05-27", '"""x"""', "'x'", "[]", "-1"])
            return text[: m.start()] + "= " + other + text[m.end():]
    if choice == 8:  # DAX with a small or large device, large files
        text = re.sub(r'fs *= *"[a-z0-9]+"', 'fs = "dax"', text)
        return text.replace("title", f'pmem_size = "{rng.choice(["1p", "2p", "1g", "1048576g", "1048577g"])}"\n'
                                     f"title", 1).replace('size = "', f'size = "{rng.choice(["1", "64", "2"])}', 1)
    if choice == 9:  # a non-ASCII digit where an ASCII one was
        spots = [m.start() for m in re.finditer(r"[0-9]", text)]
        if spots:
            i = rng.choice(spots)
            return text[:i] + rng.choice(["١", "１", "٣", "߁"]) + text[i + 1:]
    if choice == 10:  # an unknown key or table
        return text + "\n" + rng.choice(["timeout = 3", "[files]\nx = 1", "[threads.t.x]", "[[threads]]",
                                        "threads.x.ops = ['fsync q']", "title = 'twice'", '"a\\nb" = 1'])
    if choice == 11:  # bytes in ops
        data_ops = list(re.finditer(r"(?:store|write) ++[A-Za-z0-9_-]++ ++[0-9a-z+]++ ++", text))
        if data_ops:
            m = rng.choice(data_ops)
            return text[: m.end()] + rng.choice(BAD_BYTES) + " " + text[m.end():]
    long_fill = "x" * ((1 << 20) - 100 if heavy else 100)  # just under the document limit: over the fill limit
    return text + "\n" + rng.choice(['[files.big]\nsize = "1048576g"', '[files.big]\nsize = "2g"\nfill = "A"',
                                     '[files.f2]\nsize = 1\nfill = "' + "x" * rng.choice([10, 1000]) + '"',
                                     '[files.f3]\nsize = 1\nfill = "' + long_fill + '"'])


def raw_mutation(rng: random.Random, data: bytes, heavy: bool = True) -> bytes:
    """Edits below the text level: invalid UTF-8, NUL, BOM, CRLF, a file over the size limit."""
    choice = rng.randrange(5)
    i = rng.randint(0, len(data))
    if choice == 0:
        return data[:i] + rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"]) + data[i:]
    if choice == 1:
        return data[:i] + b"\x00" + data[i:]
    if choice == 2:
        return b"\xef\xbb\xbf" + data
    if choice == 3:
        return data.replace(b"\n", rng.choice([b"\r\n", b"\r"]))
    if not heavy:
        return data + b"\n#" + b"x" * rng.randint(0, 1000)
    return data + b"\n#" + b"x" * ((1 << 20) + rng.choice([-len(data) - 3, 0, 100]))


# -- design files -----------------------------------------------------------------------------------
DESIGN_HEAD = ("from faultlab.designs.v4_0 import DESIGN as V40\nfrom faultlab.fs.dax import v4_0 as dax\n"
               "from faultlab.kernel.eras import v4_0 as era\n\n")


def _replacing(body: str) -> str:
    """A design whose do_cow_fault is replaced by one that runs ``body``."""
    return (f"def do_cow_fault(k, vmf):\n    {body}\n\n\n"
            "DESIGN = V40.variant('mine', 's', 'src', {era.do_cow_fault: do_cow_fault})\n")


DESIGN_BODIES = [
    "raise BaseException('boom')\n", "raise SystemExit(3)\n", "raise SystemExit(0)\n", "raise SystemExit('bye')\n",
    "raise KeyboardInterrupt\n", "raise GeneratorExit\n", "raise RuntimeError('a\\nb')\n", "import os.nope\n",
    "import faultlab_no_such_module\n", "def f(:\n", "x = 1 +\n", "\0\n", "def f():\n    return f()\n\nf()\n",
    "class E(Exception):\n    def __str__(self):\n        raise E()\n\nraise E()\n",
    "DESIGN = V40.variant('d')\n", "DESIGN = V40.variant()\n", "DESIGN = 5\n", "DESIGN = None\n",
    "DESIGN = V40.variant\n", "class D:\n    pass\n\n\nDESIGN = D\n", "DESIGN = type(V40)\n",
    "DESIGN = V40.variant(5, 's', 'src', {})\n", "DESIGN = V40.variant(None, 's', 'src', {})\n",
    "DESIGN = V40.variant('a b', 's', 'src', {})\n", "DESIGN = V40.variant('x:y', 's', 'src', {})\n",
    "DESIGN = V40.variant('', 's', 'src', {})\n", "DESIGN = V40.variant(b'x', 's', 'src', {})\n",
    "DESIGN = V40.variant('d', 's', 'src', {len: len})\n",
    "DESIGN = V40.variant('d', 's', 'src', {dax.dax_cow_fault: 5})\n",
    "DESIGN = V40.variant('d', 's', 'src', {dax.dax_cow_fault: print})\n",
    "DESIGN = V40.variant('d', 's', 'src', 5)\n", "DESIGN = V40.variant('d', 's', 'src', {5: 6})\n",
    "X = 1\n", "MINE = V40\n", "DESIGN = V40\n", "DESIGN = V40.variant('mine', 's', 'src', {})\n",
    _replacing("return 0"), _replacing("raise RuntimeError('in run')"), _replacing("raise SystemExit(3)"),
    _replacing("raise GeneratorExit"), _replacing("raise KeyboardInterrupt"), _replacing("return do_cow_fault(k, vmf)"),
    "class M(type):\n    def __getattribute__(cls, a):\n        raise RuntimeError(a)\n\n\nclass D(metaclass=M):\n"
    "    pass\n\n\nDESIGN = D\n",
]


def design_file(rng: random.Random) -> bytes:
    body = rng.choice(DESIGN_BODIES)
    text = (DESIGN_HEAD if rng.random() < 0.9 else "") + body
    if rng.random() < 0.15:
        text = mutate_chars(rng, text)
    data = text.encode()
    if rng.random() < 0.05:
        data = data.replace(b"boom", b"\xff\xfe")
    return data


def mutate_chars(rng: random.Random, text: str) -> str:
    i = rng.randint(0, len(text))
    return text[:i] + rng.choice(ALPHABET) + text[i:]


# -- schedules and flags ----------------------------------------------------------------------------
def choices(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return rng.choice(["", "-", ".", "x", "0x", "x5", "0..1", "0x5.", "٣", "0x١", "0:1", " ", "0x0"])
    tokens = []
    for _ in range(rng.randint(1, 6)):
        tid = rng.choice(["0", "1", "2", "99", "9" * 21, "9" * 5000, "00"])
        tokens.append(tid if rng.random() < 0.4 else f"{tid}x{rng.choice(['1', '3', '12', '0', '9' * 20, '9' * 5000])}")
    return ".".join(tokens)


def schedule_string(rng: random.Random, digest: str) -> str:
    version = rng.choice(["fl1"] * 8 + ["fl2", "FL1", "fl", ""])
    design = rng.choice([*DESIGNS[:6], "", "nope", "a b"])
    dig = rng.choice([digest] * 6 + ["", "0000", "zz", digest.upper()])
    parts = [version, dig, design, choices(rng)]
    if rng.random() < 0.05:
        parts.append("extra")
    return ":".join(parts)


def int_flag(rng: random.Random, small: bool = False) -> str:
    good = ["1", "2", "5", "20"] if small else ["0", "1", "3", "100"]
    return rng.choice(good * 2 + ["-1", "abc", "1e3", "٣", "１", "", "9" * 25, "9" * 5000, "1.5", " 2", "0x1", "1_0"])


def seconds_flag(rng: random.Random) -> str:
    return rng.choice(["0.5", "2", "3"] * 2 + ["nan", "inf", "-inf", "-1", "0", "1e400", "abc", "٣", "", "1e-9"])


def design_spec(rng: random.Random) -> str:
    return rng.choice(DESIGNS * 3 + [",", "", " ", "all,", ",v4.10", "v4.10,,xip", "nope", "v4.10,nope", "a\nb",
                                     "./missing.py", "/", ".py", "v4.10 ", "ALL"])


def explore_flags(rng: random.Random) -> list[str]:
    flags = ["--max-schedules", "50", "--budget", "3", "--quiet"]
    for _ in range(rng.randint(0, 4)):
        flag = rng.choice(["--strategy", "--plain", "--bound", "--depth", "--seed", "--max-schedules", "--budget",
                           "--json", "--html", "--quiet", "--nope", "-x", "--", "--design"])
        value = {
            "--strategy": lambda: [rng.choice(["dfs", "pct", "random", "nope", "DFS", ""])],
            "--bound": lambda: [int_flag(rng)],
            "--depth": lambda: [int_flag(rng)],
            "--seed": lambda: [int_flag(rng)],
            "--max-schedules": lambda: [int_flag(rng, small=True)],
            "--budget": lambda: [seconds_flag(rng)],
            "--html": lambda: [rng.choice(["out.html", "nodir/out.html", ".", ""])],
            "--design": lambda: [design_spec(rng)],
        }.get(flag, lambda: [])()
        flags += [flag, *value]
    return flags


# -- cases ------------------------------------------------------------------------------------------
def scenario_argv(rng: random.Random, path: str, digest: str) -> list[str]:
    """A command that reads ``path``."""
    command = rng.choices(["run", "explore", "replay", "compare"], weights=[50, 30, 12, 8])[0]
    if command == "run":
        argv = ["run", path, "--design", rng.choice(DESIGNS)]
        if rng.random() < 0.2:
            argv += ["--json"]
        return argv
    if command == "explore":
        return ["explore", path, "--design", rng.choice(DESIGNS[:6]), "--max-schedules", "50", "--budget", "3",
                "--quiet"]
    if command == "replay":
        return ["replay", path, "--schedule", f"fl1:{digest}:v4.10:-"]
    return ["compare", path, "--design", "v4.10", "--max-schedules", "20", "--budget", "3", "--quiet"]


def make_case(rng: random.Random, sources: Sources, heavy: bool = True) -> Case:
    """One case, drawn from ``rng`` alone (``heavy``: see :func:`mutate`)."""
    kind = rng.choices(["mutated", "scratch", "schedule", "design", "flags"], weights=[45, 15, 12, 14, 14])[0]
    path, text, digest = rng.choice(sources.scenarios)
    if kind == "mutated":
        for _ in range(rng.choice([1, 1, 2, 3])):
            text = mutate(rng, text, heavy)
        data = text.encode("utf-8", "surrogatepass")
        if rng.random() < 0.1:
            data = raw_mutation(rng, data, heavy)
        return Case(kind, scenario_argv(rng, "s.toml", digest), {"s.toml": data})
    if kind == "scratch":
        return Case(kind, scenario_argv(rng, "s.toml", digest), {"s.toml": scenario_from_scratch(rng).encode()})
    scenario = str(ROOT / path)
    if kind == "schedule":
        schedule = schedule_string(rng, digest)
        if rng.random() < 0.7:
            argv = ["replay", scenario, "--schedule", schedule]
            if rng.random() < 0.3:
                argv += ["--design", design_spec(rng)]
        else:
            argv = ["run", scenario, "--schedule", schedule if rng.random() < 0.8 else rng.choice(
                ["faulter", "truncator,faulter", ",", "", "nobody", "t,t,t"])]
        return Case(kind, argv, {})
    if kind == "design":
        name = rng.choice(["./d.py", "d.py", "sub/../d.py"]) if rng.random() < 0.95 else "d.txt"
        argv = (["run", scenario, "--design", name] if rng.random() < 0.6 else
                ["explore", str(SEED_SCENARIO), "--design", name, "--max-schedules", "30", "--budget", "3", "--quiet"])
        files = {name.replace("sub/../", ""): design_file(rng)}
        if "sub/" in name:
            files["sub/.keep"] = b""
        return Case(kind, argv, files)
    command = rng.choice(["run", "explore", "explore", "replay", "compare", "designs"])
    target = rng.choice([scenario] * 6 + ["missing.toml", ".", "/dev/null", "a\nb.toml", ""])
    if command == "designs":
        argv = ["designs", *rng.choice([[], ["x"], ["--all"], ["--help"]])]
    elif command == "explore":
        argv = ["explore", target, *explore_flags(rng)]
    elif command == "compare":
        argv = ["compare", target, "--max-schedules", "20", "--budget", "3", "--quiet", "--design",
                rng.choice(["v4.10", "xip", ",", "", "nope"])]
        argv += rng.choice([[], ["--bound", int_flag(rng)], ["--json"]])
    elif command == "replay":
        argv = ["replay", target, *rng.choice([[], ["--schedule"], ["--schedule", schedule_string(rng, digest)]])]
    else:
        argv = ["run", target, *rng.choice([[], ["--design", design_spec(rng)], ["--json"], ["--nope"], ["x"]])]
    if rng.random() < 0.1:
        del argv[rng.randrange(len(argv))]
    if rng.random() < 0.03:
        argv.append(rng.choice(["--help", "--version"]))
    return Case("flags", argv, {})


def case(seed: int, index: int, sources: Sources) -> Case:
    """Case ``index`` of run ``seed``: the same for any number of jobs."""
    return make_case(random.Random(f"{seed}:{index}"), sources)


def write_files(directory: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# -- running ----------------------------------------------------------------------------------------
@dataclass
class Outcome:
    index: int
    kind: str
    argv: list[str]
    status: int | None  # None: killed after the timeout
    seconds: float
    max_rss_kb: int
    stderr: str

    @property
    def traceback(self) -> bool:
        return "Traceback (most recent call last)" in self.stderr

    @property
    def bad_error_line(self) -> bool:
        """Exit status 2 must come with exactly one line ``faultlab: ...`` on stderr."""
        if self.status != 2:
            return False
        lines = self.stderr.splitlines()
        return len(lines) != 1 or not lines[0].startswith("faultlab: ")

    @property
    def bad(self) -> bool:
        return self.status is None or self.status not in OK_STATUSES or self.traceback or self.bad_error_line


def faultlab_command() -> list[str]:
    script = Path(sys.executable).parent / "faultlab"
    return [str(script)] if script.exists() else [sys.executable, "-m", "faultlab"]


def run_case(index: int, c: Case, timeout: float, memory_cap: int) -> Outcome:
    """Run one case in a fresh directory, in its own session, under an address-space cap; reap it
    with wait4() for its exit status and peak RSS; kill its process group after ``timeout``."""
    with tempfile.TemporaryDirectory(prefix="faultlab-fuzz-") as tmp:
        write_files(Path(tmp), c.files)
        err_path = Path(tmp) / ".stderr"
        env = dict(os.environ, COLUMNS="120", PYTHONDONTWRITEBYTECODE="1")
        t0 = time.monotonic()
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([*faultlab_command(), *c.argv], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        resource.prlimit(proc.pid, resource.RLIMIT_AS, (memory_cap, memory_cap))
        status: int | None = None
        while True:
            pid, wait_status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                status = os.waitstatus_to_exitcode(wait_status)
                break
            if time.monotonic() - t0 > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                _, _, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        proc.returncode = -1 if status is None else status  # reaped here: Popen must not wait for it again
        elapsed = time.monotonic() - t0
        stderr = err_path.read_bytes().decode("utf-8", "replace")
        return Outcome(index, c.kind, c.argv, status, elapsed, usage.ru_maxrss, stderr)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds per case (a hang past it is killed)")
    ap.add_argument("--memory-cap-mb", type=int, default=2048, help="address-space limit of each case")
    ap.add_argument("--max-rss-mb", type=int, default=500, help="fail if a case's peak RSS reaches this")
    ap.add_argument("--show", type=int, default=5, help="print this many bad cases in full")
    ap.add_argument("--case", type=int, default=None, help="run this one case and print it in full")
    ap.add_argument("--stdin", action="store_true",
                    help="run the cases given on stdin as JSON and print their outcomes as JSON (for the tests)")
    args = ap.parse_args(argv)
    if args.stdin:
        return run_json_cases(args.timeout, args.memory_cap_mb << 20)
    sources = Sources.load()
    if args.case is not None:
        c = case(args.seed, args.case, sources)
        o = run_case(args.case, c, args.timeout, args.memory_cap_mb << 20)
        print(describe(o, c))
        return 1 if o.bad else 0
    started = time.monotonic()
    done = collections.Counter[str]()
    lock = threading.Lock()

    def one(index: int) -> Outcome:
        outcome = run_case(index, case(args.seed, index, sources), args.timeout, args.memory_cap_mb << 20)
        with lock:
            done["n"] += 1
            if done["n"] % 500 == 0:
                print(f"  {done['n']} cases, {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        return outcome

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        outcomes = list(pool.map(one, range(args.cases)))
    wall = time.monotonic() - started
    print(report(outcomes, args, wall))
    bad = [o for o in outcomes if o.bad]
    for o in bad[: args.show]:
        print("\n" + describe(o, case(args.seed, o.index, sources)))
    too_big = max(o.max_rss_kb for o in outcomes) >= args.max_rss_mb * 1024
    return 1 if bad or too_big else 0


def run_json_cases(timeout: float, memory_cap: int) -> int:
    """``[{"argv": [...], "files": {name: base64}}...]`` on stdin, outcomes on stdout. The tests run
    cases this way, from this small process: on Linux a child's peak RSS as wait4() reports it
    starts from the RSS of the process it was forked from, and pytest's can be hundreds of MB."""
    cases = [Case("given", c["argv"], {name: base64.b64decode(data) for name, data in c["files"].items()})
             for c in json.load(sys.stdin)]
    outcomes = [run_case(i, c, timeout, memory_cap) for i, c in enumerate(cases)]
    json.dump([dataclasses.asdict(o) for o in outcomes], sys.stdout)
    return 0


def describe(o: Outcome, c: Case) -> str:
    lines = [f"case {o.index} ({o.kind}): status {o.status}, {o.seconds:.1f} s, peak RSS {o.max_rss_kb // 1024} MB",
             f"  faultlab {' '.join(map(repr, c.argv))}"]
    lines += [f"  file {name}: {data[:300]!r}{'...' if len(data) > 300 else ''}" for name, data in c.files.items()]
    lines.append("  stderr: " + o.stderr[-2000:].replace("\n", "\n  "))
    return "\n".join(lines)


def report(outcomes: Sequence[Outcome], args: argparse.Namespace, wall: float) -> str:
    statuses = collections.Counter("killed (hang)" if o.status is None else str(o.status) for o in outcomes)
    kinds = collections.Counter(o.kind for o in outcomes)
    slowest = max(outcomes, key=lambda o: o.seconds)
    biggest = max(outcomes, key=lambda o: o.max_rss_kb)
    rows = [
        ("cases", f"{len(outcomes)} ({', '.join(f'{k} {n}' for k, n in sorted(kinds.items()))})"),
        *((f"exit status {s}", str(n)) for s, n in sorted(statuses.items())),
        ("tracebacks", str(sum(o.traceback for o in outcomes))),
        (f"hangs (over {args.timeout:g} s)", str(sum(o.status is None for o in outcomes))),
        ("statuses other than 0, 1, 2, 130",
         str(sum(o.status is not None and o.status not in OK_STATUSES for o in outcomes))),
        ("status 2 without exactly one line 'faultlab: ...'", str(sum(o.bad_error_line for o in outcomes))),
        ("max peak RSS", f"{biggest.max_rss_kb / 1024:.0f} MB (case {biggest.index})"),
        ("slowest case", f"{slowest.seconds:.1f} s (case {slowest.index})"),
        ("wall time", f"{wall:.0f} s with {args.jobs} jobs"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"| {'outcome':<{width}} | count |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {k:<{width}} | {v} |" for k, v in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
