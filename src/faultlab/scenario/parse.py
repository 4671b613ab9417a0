"""Scenario files: TOML in, :class:`~faultlab.scenario.model.Scenario` out.

The grammar is documented in ``docs/scenarios.md``. The pieces, bottom up:

* :func:`parse_size` and :func:`parse_bytes`: the value syntax (``2p``, ``1p+100``, ``"ab"*2 \\0*4``);
* :func:`parse_op`: one op line such as ``m = mmap data 0 2p private rw`` or ``load m 0 -> SIGBUS``;
  the builder API goes through it too;
* :func:`compile_document`: checks a TOML-shaped document (a dict) and builds the Scenario;
* :func:`parse_scenario` / :func:`load_scenario`: TOML text or file in, with every error located at
  the ``path:line`` of the offending key, table or op (tomllib gives no line numbers for values, so
  :class:`_Locator` finds them in the source text).

Every bad input raises :class:`~faultlab.errors.ScenarioError`; nothing else escapes.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
import tomllib
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from faultlab.errors import ScenarioError, shown
from faultlab.limits import (
    MAX_DIGITS,
    MAX_DOCUMENT_BYTES,
    MAX_FILES,
    MAX_NESTING,
    MAX_OP_BYTES,
    MAX_OPS,
    MAX_SCENARIO_BYTES,
    MAX_SIZE,
    MAX_THREADS,
)
from faultlab.scenario.model import (
    FS_KINDS,
    MM_KINDS,
    OP_KINDS,
    PAGE_SIZE,
    SETUP,
    FileSpec,
    Loc,
    Op,
    Outcome,
    Scenario,
    ThreadSpec,
)
from faultlab.scenario.prescan import (
    BASIC_STRING,
    LITERAL_STRING,
    MULTILINE_BASIC_STRING,
    MULTILINE_LITERAL_STRING,
    check_toml_shape,
)

KeyPath = tuple[str | int, ...]
"""Where a value sits in the document: ``("threads", "faulter", "ops", 1)``."""

TOP_KEYS = ("title", "fs", "mm", "memory_limit", "pmem_size", "pmem_align", "files", "setup", "threads")
PMEM_ALIGNS = ("4k", "2m")
FILE_KEYS = ("size", "fill")
THREAD_KEYS = ("ops",)
DEFAULT_PMEM_SIZE = 1 << 30

# --------------------------------------------------------------------------------------------------
# error location


@contextmanager
def _at(where: str) -> Iterator[None]:
    """Give a location to ScenarioErrors raised inside that do not have one yet."""
    try:
        yield
    except ScenarioError as e:
        if e.where:
            raise
        raise ScenarioError(e.message, where=where) from None


def _fail(message: str) -> ScenarioError:
    return ScenarioError(message)


# --------------------------------------------------------------------------------------------------
# sizes

PMD_PAGES = 512  # pages in a 2 MiB extent
_SIZE_UNITS = {"": 1, "p": PAGE_SIZE, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_SIZE_TERM = re.compile(r"([0-9]+)([pkmg]?)", re.IGNORECASE)
SIZE_HELP = "expected bytes or a number with suffix p, k, m or g"
SIZE_LIMIT_HELP = f"expected at most {MAX_SIZE} bytes (1 PiB)"
OP_BYTES_HELP = f"expected at most {MAX_OP_BYTES} bytes (1 MiB) per op"


class _SizeTooLarge(ScenarioError):
    """A well-formed size beyond MAX_SIZE."""


def parse_size(value: object) -> int:
    """A size or offset: a non-negative integer, or a string such as ``4096``, ``2p``, ``64k``,
    ``1p+100`` (terms with optional suffix p=4096, k, m, g, joined by ``+``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _fail(f"bad size {value}: {SIZE_HELP}")
        if value > MAX_SIZE:
            raise _SizeTooLarge(f"size {value} is too large: {SIZE_LIMIT_HELP}")
        return value
    if not isinstance(value, str):
        raise _fail(f"bad size {shown(value)}: {SIZE_HELP}")
    total = 0
    for term in value.split("+"):
        m = _SIZE_TERM.fullmatch(term)
        if m is None:
            raise _fail(f"bad size {shown(value)}: {SIZE_HELP}")
        if len(m.group(1)) > MAX_DIGITS:
            raise _fail(f"bad size {shown(value)}: a number of {len(m.group(1))} digits, "
                        f"expected at most {MAX_DIGITS}")
        total += int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]
        if total > MAX_SIZE:
            raise _SizeTooLarge(f"size {shown(value)} is too large: {SIZE_LIMIT_HELP}")
    return total


# --------------------------------------------------------------------------------------------------
# op-line tokens and byte strings

_SIMPLE_ESCAPES = {"n": 0x0A, "t": 0x09, "0": 0x00, "\\": 0x5C, '"': 0x22}
ESCAPE_HELP = 'expected \\n, \\t, \\0, \\\\, \\" or \\xHH'


def tokenize(text: str) -> list[str]:
    """Split an op line on whitespace; a double-quoted stretch (with escapes) stays in one token,
    quotes included."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not text[i].isspace():
            i = _skip_quoted(text, i) if text[i] == '"' else i + (2 if text[i] == "\\" else 1)
        tokens.append(text[start : min(i, n)])
    return tokens


def _skip_quoted(text: str, i: int) -> int:
    """Index just past the double-quoted string starting at ``text[i]``."""
    j = i + 1
    while j < len(text):
        if text[j] == "\\":
            j += 2
        elif text[j] == '"':
            return j + 1
        else:
            j += 1
    raise _fail(f"unterminated string {shown(text[i:])}: expected a closing double quote")


def parse_bytes(tokens: Sequence[str] | str) -> bytes:
    """BYTES: tokens concatenated. Each is ``XYZ`` or ``"quoted text"`` (escapes ``\\n \\t \\0 \\\\ \\"
    \\xHH`` in both), optionally followed by ``*N`` (N a size) to repeat it. At most MAX_OP_BYTES
    in all, checked before they are made."""
    if isinstance(tokens, str):
        tokens = tokenize(tokens)
    parts: list[bytes] = []
    total = 0
    for tok in tokens:
        part = _bytes_token(tok, total)
        total += len(part)
        parts.append(part)
    return b"".join(parts)


def _bytes_token(tok: str, before: int = 0) -> bytes:
    """The bytes of one token; ``before`` bytes precede it in the same op."""
    atom, rest = _bytes_atom(tok)
    count = 1
    if rest:
        if not atom and not tok.startswith('"'):
            raise _fail(f"bad bytes {shown(tok)}: nothing to repeat before '*' (write \\x2a for a literal star)")
        try:
            count = parse_size(rest[1:])
        except _SizeTooLarge:
            raise _fail(f"too many bytes: {shown(tok)} makes more than {MAX_SIZE} bytes, {OP_BYTES_HELP}") from None
        except ScenarioError:
            raise _fail(f"bad repeat count {shown(rest[1:])} in {shown(tok)}: expected a count such as 4, 1p "
                        "or 2k") from None
    if before + len(atom) * count > MAX_OP_BYTES:
        raise _fail(f"too many bytes: {shown(tok)} makes {before + len(atom) * count} bytes, {OP_BYTES_HELP}")
    return atom * count if count != 1 else atom


def _bytes_atom(tok: str) -> tuple[bytes, str]:
    """The bytes of the quoted or bare start of ``tok``, and what follows it (``""`` or ``*N``)."""
    out = bytearray()
    quoted = tok.startswith('"')
    i = 1 if quoted else 0
    while i < len(tok):
        c = tok[i]
        if quoted and c == '"':
            rest = tok[i + 1 :]
            if rest and not rest.startswith("*"):
                raise _fail(f"bad bytes {shown(tok)}: expected '*N' or a space after the closing quote")
            return bytes(out), rest
        if not quoted and c == "*":
            return bytes(out), tok[i:]
        if not quoted and c == '"':
            raise _fail(f"bad bytes {shown(tok)}: a quote may only start a token (write \\\" for a literal quote)")
        if c == "\\":
            byte, i = _escape_at(tok, i)
            out.append(byte)
            continue
        if ord(c) > 0x7F:
            raise _fail(f"non-ASCII character {c!r} in bytes {shown(tok)}: write it as \\xHH")
        out.append(ord(c))
        i += 1
    if quoted:
        raise _fail(f"unterminated string {shown(tok)}: expected a closing double quote")
    return bytes(out), ""


def _escape_at(tok: str, i: int) -> tuple[int, int]:
    """Decode the escape at ``tok[i]`` (a backslash): the byte and the index after the escape."""
    c = tok[i + 1 : i + 2]
    if c in _SIMPLE_ESCAPES:
        return _SIMPLE_ESCAPES[c], i + 2
    if c == "x":
        hh = tok[i + 2 : i + 4]
        if re.fullmatch(r"[0-9a-fA-F]{2}", hh):
            return int(hh, 16), i + 4
        raise _fail(f"bad escape {shown(tok[i:i + 4])} in {shown(tok)}: \\x needs two hex digits")
    raise _fail(f"bad escape {shown(tok[i:i + 2])} in {shown(tok)}: {ESCAPE_HELP}")


# --------------------------------------------------------------------------------------------------
# op lines

SIGNATURES: dict[str, tuple[str, ...]] = {
    "mmap": ("FILE", "OFFSET", "LENGTH", "private|shared", "r|rw"),
    "munmap": ("MAP",),
    "load": ("MAP", "OFFSET", "[LEN]"),
    "store": ("MAP", "OFFSET", "BYTES"),
    "read": ("FILE", "OFFSET", "LEN"),
    "write": ("FILE", "OFFSET", "BYTES"),
    "truncate": ("FILE", "SIZE"),
    "msync": ("MAP",),
    "fsync": ("FILE",),
    "madvise": ("MAP", "dontneed"),
    "mprotect": ("MAP", "r|rw"),
    "fallocate": ("FILE", "punch", "OFFSET", "LENGTH"),
    "fork": ("CHILD",),
    "crash": (),
    "persist": ("MAP", "OFFSET", "LENGTH"),
}
"""The arguments of each op, in order. ``[X]`` is optional; BYTES takes the rest of the line.
``mmap`` may end with ``sync`` (MAP_SHARED_VALIDATE|MAP_SYNC) and a placement, see
:data:`MMAP_PLACEMENT`."""
MMAP_PLACEMENT = "[sync] [at ADDR|unaligned]"
_HEX_ADDR = re.compile(r"0x[0-9a-fA-F]{1,16}")
MAX_USER_ADDR = 1 << 47  # x86-64 TASK_SIZE with 4-level page tables
assert tuple(SIGNATURES) == OP_KINDS

SIGNALS = ("SIGBUS", "SIGSEGV")
DATA_OPS = ("load", "read")  # return bytes
MEMORY_OPS = ("load", "store")  # touch the mapping: may take a signal, never return an errno
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
NAME_HELP = "expected letters, digits, _ and -, starting with a letter or _"
_ASSIGN = re.compile(r"\s*([^\s=\"]+)\s*=\s*")
_ERRNO = re.compile(r"E[A-Z0-9]+")
_SIGNAL = re.compile(r"SIG[A-Z0-9]+")
EXPECT_HELP = "expected SIGBUS, SIGSEGV, ok, an errno name such as EINVAL, or bytes"


class _UnknownMap(ScenarioError):
    """A MAP that no mmap in scope makes (the thread's parser words it with what it knows)."""

    def __init__(self, var: str, thread: str) -> None:
        super().__init__(f"unknown map {shown(var)}: no earlier {shown(var + ' = mmap ...')} in thread "
                         f"{shown(thread)}")
        self.var = var


def check_name(kind: str, name: str) -> str:
    if not _NAME.fullmatch(name):
        raise _fail(f"bad {kind} name {shown(name)}: {NAME_HELP}")
    return name


def parse_op(text: str, *, thread: str, files: Sequence[str], maps: Collection[str], loc: Loc) -> Op:
    """Parse one op line of ``thread``. ``files`` are the declared files; ``maps`` the variables
    assigned by earlier mmaps of the thread. Raises ScenarioError without a location."""
    var = ""
    assign = _ASSIGN.match(text)
    if assign:
        var = check_name("variable", assign.group(1))
        text = text[assign.end() :]
    tokens = tokenize(text)
    arrow = [i for i, tok in enumerate(tokens) if tok == "->"]
    if len(arrow) > 1:
        raise _fail("more than one '->': expected at most one expectation per op")
    head = tokens[: arrow[0]] if arrow else tokens
    kind = _op_kind(head, var)
    args = head[1:]
    placement: dict[str, Any] = {}
    if kind == "mmap" and len(args) > len(SIGNATURES["mmap"]):
        extra = args[len(SIGNATURES["mmap"]):]
        if extra[0] == "sync":
            placement["sync"] = True
            extra = extra[1:]
        if extra:
            placement |= _mmap_placement(extra, len(args))
        args = args[: len(SIGNATURES["mmap"])]
    fields = _op_fields(kind, args, thread, files, maps) | placement
    if fields.get("sync") and not fields["shared"]:
        raise _fail("sync needs a shared mapping: MAP_SYNC is a flag of MAP_SHARED_VALIDATE (with MAP_PRIVATE "
                    "the kernel ignores it): expected 'shared' before it")
    expect = _parse_expect(kind, tokens[arrow[0] + 1 :], fields.get("length", 0)) if arrow else None
    op_text = (f"{var} = " if var else "") + " ".join(head)
    return Op(kind=kind, text=op_text, loc=loc, var=var, expect=expect, **fields)


def _mmap_placement(extra: Sequence[str], got: int) -> dict[str, Any]:
    """The Op fields of mmap's optional ``at ADDR`` or ``unaligned``."""
    if list(extra) == ["unaligned"]:
        return {"placement": "unaligned"}
    if len(extra) == 2 and extra[0] == "at":
        if not _HEX_ADDR.fullmatch(extra[1]):
            raise _fail(f"bad address {shown(extra[1])}: expected a hex address such as 0x40000000")
        addr = int(extra[1], 16)
        if addr >= MAX_USER_ADDR:
            raise _fail(f"address {shown(extra[1])} is beyond user space: expected below {MAX_USER_ADDR:#x}")
        return {"placement": "at", "addr": addr}
    if extra[0] not in ("at", "unaligned"):
        raise _fail(f"bad placement {shown(extra[0])}: expected 'sync', 'at ADDR' or 'unaligned' after the "
                    "protection")
    raise _fail(f"mmap takes {' '.join(SIGNATURES['mmap'])} {MMAP_PLACEMENT} (5 to 8 arguments), got {got}")


def _op_kind(head: Sequence[str], var: str) -> str:
    if not head:
        raise _fail(f"empty op: expected one of {', '.join(OP_KINDS)}")
    kind = head[0]
    if kind not in OP_KINDS:
        raise _fail(f"unknown op {shown(kind)}: expected one of {', '.join(OP_KINDS)}")
    if kind == "mmap" and not var:
        raise _fail(f"mmap needs a variable: write 'VAR = mmap {' '.join(SIGNATURES['mmap'])}'")
    if kind != "mmap" and var:
        raise _fail(f"only mmap assigns a variable, got {shown(f'{var} = {kind} ...')}")
    return kind


def _arity_error(kind: str, got: int) -> ScenarioError:
    sig = SIGNATURES[kind]
    if not sig:
        return _fail(f"{kind} takes no arguments, got {got}")
    required = sum(1 for p in sig if not p.startswith("["))
    count = f"{required} or {len(sig)}" if required != len(sig) else str(required)
    plural = "" if count == "1" else "s"
    return _fail(f"{kind} takes {' '.join(sig)} ({count} argument{plural}), got {got}")


def _op_fields(
    kind: str, args: Sequence[str], thread: str, files: Sequence[str], maps: Collection[str]
) -> dict[str, Any]:
    """Check ``args`` against the signature of ``kind``; return the Op fields they set."""
    sig = SIGNATURES[kind]
    required = sum(1 for p in sig if not p.startswith("["))
    takes_rest = bool(sig) and sig[-1] == "BYTES"
    if len(args) < required or (len(args) > len(sig) and not takes_rest):
        raise _arity_error(kind, len(args))
    fields: dict[str, Any] = {"length": 1} if kind == "load" else {}
    for i, param in enumerate(sig):
        if i >= len(args):
            break
        value: str | Sequence[str] = args[i:] if param == "BYTES" else args[i]
        name, parsed = _op_arg(param, value, thread, files, maps)
        fields[name] = parsed
    return fields


def _op_arg(
    param: str, value: str | Sequence[str], thread: str, files: Sequence[str], maps: Collection[str]
) -> tuple[str, object]:
    """(Op field name, parsed value) for one argument."""
    if param == "BYTES":
        return "data", parse_bytes(value)
    assert isinstance(value, str)
    if param == "FILE":
        return "file", _known_file(value, files)
    if param == "CHILD":
        return "child", check_name("thread", value)
    if param == "MAP":
        if value not in maps:
            raise _UnknownMap(value, thread)
        return "map", value
    if param in ("OFFSET", "SIZE"):
        return param.lower(), parse_size(value)
    if param in ("LEN", "[LEN]"):
        length = parse_size(value)
        if length > MAX_OP_BYTES:
            raise _fail(f"too many bytes: LEN {shown(value)} is {length} bytes, {OP_BYTES_HELP}")
        return "length", length
    if param == "LENGTH":
        return "length", parse_size(value)
    choices = param.split("|")
    if value not in choices:
        what = {"private|shared": "sharing", "r|rw": "protection", "dontneed": "advice",
                "punch": "fallocate mode"}[param]
        raise _fail(f"bad {what} {shown(value)}: expected {' or '.join(choices)}")
    if param == "private|shared":
        return "shared", value == "shared"
    if param == "r|rw":
        return "writable", value == "rw"
    return "advice", value  # dontneed, punch


def _known_file(name: str, files: Sequence[str]) -> str:
    if name in files:
        return name
    declared = f"files are {', '.join(files)}" if files else "no files are declared"
    raise _fail(f"unknown file {shown(name)}: {declared}")


def _parse_expect(kind: str, tokens: Sequence[str], length: int) -> Outcome:
    """The outcome after ``->``, checked against what ``kind`` can produce."""
    if not tokens:
        raise _fail(f"nothing after '->': {EXPECT_HELP}")
    word = tokens[0] if len(tokens) == 1 else ""
    if word in SIGNALS:
        if kind not in MEMORY_OPS:
            raise _fail(f"{kind} cannot raise {word}: only load and store touch the mapping")
        return Outcome.signal(word)
    if _SIGNAL.fullmatch(word):
        raise _fail(f"unknown signal {shown(word)}: expected SIGBUS or SIGSEGV (quote it to mean bytes)")
    if word == "ok":
        if kind in DATA_OPS:
            raise _fail(f"{kind} returns data: expected the bytes after '->', not ok")
        return Outcome.ok()
    if _ERRNO.fullmatch(word):
        if kind in MEMORY_OPS:
            hint = " (quote it to mean bytes)" if kind == "load" else ""
            raise _fail(
                f"{kind} cannot return an errno ({word}): it succeeds or raises SIGBUS or SIGSEGV" + hint
            )
        return Outcome.errno(word)
    return Outcome.of_data(_expected_data(kind, tokens, length))


def _expected_data(kind: str, tokens: Sequence[str], length: int) -> bytes:
    if kind not in DATA_OPS:
        raise _fail(
            f"bad expectation {shown(' '.join(tokens))} for {kind}: expected SIGBUS, SIGSEGV, ok or an errno "
            "name (bytes only after load or read)"
        )
    data = parse_bytes(tokens)
    if kind == "load" and len(data) != length:
        raise _fail(f"load of {length} bytes expects {length} bytes after '->', got {len(data)}")
    if kind == "read" and len(data) > length:
        raise _fail(f"read of {length} bytes returns at most {length} bytes, got {len(data)} after '->'")
    return data


# --------------------------------------------------------------------------------------------------
# documents (the TOML table, or the builder's equivalent) to Scenario


class Where(Protocol):
    """Locates a key path of the document for error messages and Loc fields."""

    def where(self, path: KeyPath) -> str: ...

    def loc(self, path: KeyPath) -> Loc: ...


_TYPE_NAMES = {str: "string", int: "integer", float: "float", bool: "boolean", list: "array", dict: "table"}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _check_keys(table: Mapping[str, object], allowed: Sequence[str], path: KeyPath, src: Where) -> None:
    for key in table:
        if key not in allowed:
            inside = f" in [{'.'.join(map(str, path))}]" if path else ""
            expected = f"one of {', '.join(allowed)}" if len(allowed) > 2 else " or ".join(allowed)
            raise ScenarioError(f"unknown key {shown(key)}{inside}: expected {expected}", src.where(path + (key,)))


def _table(value: object, what: str, path: KeyPath, src: Where) -> Mapping[str, object]:
    if not isinstance(value, dict):
        raise ScenarioError(f"{what} must be a table, got {_type_name(value)}", src.where(path))
    return value


def compile_document(doc: Mapping[str, object], src: Where, path: str) -> Scenario:
    """Check a TOML-shaped document and build the Scenario (``path`` becomes Scenario.path)."""
    _check_keys(doc, TOP_KEYS, (), src)
    title = doc.get("title")
    if title is None:
        raise ScenarioError("missing key 'title': expected a title string at the top", src.where(()))
    if not isinstance(title, str):
        raise ScenarioError(f"title must be a string, got {_type_name(title)}", src.where(("title",)))
    fs = _fs(doc, src)
    files = _files(doc.get("files", {}), src)
    mm = doc.get("mm", "shared")
    if mm not in MM_KINDS:
        raise ScenarioError(f"mm must be one of {', '.join(MM_KINDS)}, got {mm!r}", src.where(("mm",)))
    budget = _Budget()
    names = [f.name for f in files]
    setup = None if "setup" not in doc else _thread(SETUP, doc["setup"], names, src, budget, _Scope(mm == "shared"))
    threads = _threads(doc.get("threads"), names, src, budget, mm == "shared", setup)
    limit = doc.get("memory_limit")
    with _at(src.where(("memory_limit",))):
        memory_limit_pages = None if limit is None else parse_size(limit) // PAGE_SIZE
    with _at(src.where(("pmem_size",))):
        pmem_size = parse_size(doc.get("pmem_size", DEFAULT_PMEM_SIZE))
    pmem_align = _pmem_align(doc, fs, src)
    if fs == "dax":
        _check_pmem_fits(files, pmem_size, src, PMD_PAGES if pmem_align == "2m" else 1)
    return Scenario(
        title=title,
        fs=fs,
        files=files,
        threads=threads,
        path=path,
        memory_limit_pages=memory_limit_pages,
        pmem_size=pmem_size,
        mm=str(mm),
        setup=setup,
        pmem_align=pmem_align,
    )


def _pmem_align(doc: Mapping[str, object], fs: str, src: Where) -> str:
    """``pmem_align``: "4k" (default), or "2m": the device and the file system's extents are 2 MiB
    aligned (``mkfs.ext4 -E stride=512,stripe_width=512`` on an aligned namespace), so DAX faults
    try a PMD first.  Only for ``fs = "dax"``."""
    align = doc.get("pmem_align", "4k")
    if not isinstance(align, str) or align not in PMEM_ALIGNS:
        raise ScenarioError(f"pmem_align must be one of {', '.join(repr(a) for a in PMEM_ALIGNS)}, got {shown(align)}",
                            src.where(("pmem_align",)))
    if align != "4k" and fs != "dax":
        raise ScenarioError(f"pmem_align = {align!r} needs fs = \"dax\", got fs = {fs!r}", src.where(("pmem_align",)))
    return align


def _fs(doc: Mapping[str, object], src: Where) -> str:
    fs = doc.get("fs")
    kinds = ", ".join(FS_KINDS)
    if fs is None:
        raise ScenarioError(f"missing key 'fs': expected one of {kinds}", src.where(()))
    if not isinstance(fs, str) or fs not in FS_KINDS:
        raise ScenarioError(f"unknown fs {shown(fs)}: expected one of {kinds}", src.where(("fs",)))
    return fs


def _files(value: object, src: Where) -> tuple[FileSpec, ...]:
    files = _table(value, "files", ("files",), src)
    if len(files) > MAX_FILES:
        name = list(files)[MAX_FILES]
        raise ScenarioError(f"too many files: {len(files)}, expected at most {MAX_FILES}",
                            src.where(("files", name)))
    return tuple(_file(name, spec, src) for name, spec in files.items())


def _check_pmem_fits(files: Sequence[FileSpec], pmem_size: int, src: Where, align: int = 1) -> None:
    """DAX: the files' initial blocks are laid out one after another on the pmem device (holes take
    none; with ``align`` pages, each file starts on a multiple of it), so their pages must fit in
    ``pmem_size``."""
    blocks = pmem_size // PAGE_SIZE
    used = 0
    for f in files:
        if f.hole:
            continue
        used = -(-used // align) * align
        pages = -(-f.size // PAGE_SIZE)
        if used + pages > blocks:
            left = f", {used} of them taken by the files before it" if used else ""
            raise ScenarioError(
                f"file {shown(f.name)} ({pages} pages) does not fit on the pmem device of {pmem_size} bytes "
                f"({blocks} pages{left}): expected a pmem_size of at least {(used + pages) * PAGE_SIZE}",
                src.where(("files", f.name, "size")),
            )
        used += pages


def _file(name: str, value: object, src: Where) -> FileSpec:
    path: KeyPath = ("files", name)
    with _at(src.where(path)):
        check_name("file", name)
    spec = _table(value, f"[files.{name}]", path, src)
    _check_keys(spec, FILE_KEYS, path, src)
    if "size" not in spec:
        raise ScenarioError(
            f"missing key 'size' in [files.{name}]: expected a size such as 2p", src.where(path)
        )
    with _at(src.where(path + ("size",))):
        size = parse_size(spec["size"])
    with _at(src.where(path + ("fill",))):
        fill, hole = parse_fill(spec.get("fill"))
        if fill is not None and len(fill) > MAX_OP_BYTES:
            raise _fail(f"fill of {len(fill)} bytes is too long: expected at most {MAX_OP_BYTES} bytes (1 MiB)")
    return FileSpec(name=name, size=size, fill=fill, hole=hole, loc=src.loc(path))


def parse_fill(value: object) -> tuple[bytes | None, bool]:
    """``(fill, hole)`` for a file's ``fill`` value: None (zeros), ``"hole"``, a string whose
    characters are taken as latin-1 bytes, or (from Python) bytes."""
    if value is None:
        return None, False
    if value == "hole":
        return None, True
    if isinstance(value, str):
        if re.search("[^\x00-\xff]", value):
            raise _fail("bad fill: characters beyond \\u00ff do not fit in a byte")
        value = value.encode("latin-1")
    if not isinstance(value, bytes | bytearray):
        raise _fail(f"fill must be a string, got {_type_name(value)}")
    if not value:
        raise _fail('empty fill: omit fill for zeros, or use "hole" for an unallocated file')
    return bytes(value), False


class _Scope:
    """Which map variables a thread may name, and whose mmap makes each: its own earlier mmaps,
    the ``[setup]`` section's, and (``mm = "shared"``) those of the other threads."""

    def __init__(self, shared_mm: bool, setup: ThreadSpec | None = None,
                 others: Mapping[str, Collection[str]] | None = None, forks: _Forks | None = None) -> None:
        self.shared_mm = shared_mm
        self.setup_vars = {op.var for op in setup.ops if op.var} if setup is not None else set()
        self.others = others or {}
        self.own: set[str] = set()
        self.forks = forks or _Forks({}, ())
        self.parent = ""  # for a forked child: the thread whose fork starts it

    def __contains__(self, var: object) -> bool:
        """Whether the thread may name ``var`` (as parse_op asks of its ``maps``), in time
        independent of how many variables there are."""
        if var in self.own or var in self.setup_vars:
            return True
        return self.shared_mm and any(var in made for made in self.others.values())

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.own | self.setup_vars | (set().union(*self.others.values()) if self.shared_mm
                                                          else set())))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def owner(self, thread: str, var: str) -> str:
        """Who makes ``var`` for ``thread`` (see Op.owner); a name made by several threads is an error."""
        if var in self.own:
            return ""
        if var in self.setup_vars:
            return SETUP
        makers = [t for t, made in self.others.items() if var in made]
        if len(makers) > 1:
            raise _fail(f"map {shown(var)} is made by threads {', '.join(makers)}: expected one thread (or "
                        f"[setup]) to make a map that thread {shown(thread)} uses")
        return makers[0]

    def unknown(self, thread: str, var: str) -> ScenarioError:
        where = "[setup]" if thread == SETUP else f"thread {shown(thread)}"
        hint = ""
        if self.parent:
            hint = (f" (a forked child has the maps its parent {shown(self.parent)} made before the fork, and "
                    "[setup]'s with mm = \"shared\")")
        elif not self.shared_mm and any(var in made for made in self.others.values()):
            hint = " (threads share maps only with mm = \"shared\")"
        elif any(var in made for made in self.forks.made_by_children.values()):
            hint = " (a forked child is a process of its own: its maps are not the other threads')"
        return _fail(f"unknown map {shown(var)}: no earlier {shown(var + ' = mmap ...')} in {where}{hint}")


class _Forks:
    """Which thread each ``fork CHILD`` starts, found before the threads are parsed (a child's
    scope is its parent's maps made before the fork): child -> (parent, index of the fork op)."""

    def __init__(self, tables: Mapping[str, object], setup_vars: Collection[str], shared_mm: bool = True) -> None:
        self.threads = tuple(tables)
        self.parent: dict[str, tuple[str, int]] = {}
        self.inherited: dict[str, set[str]] = {}
        self.made_by_children: dict[str, set[str]] = {}
        for name, spec in tables.items():
            lines = spec.get("ops") if isinstance(spec, dict) else None
            if not isinstance(lines, list):
                continue
            for i, line in enumerate(lines):
                words = line.split() if isinstance(line, str) else []
                if len(words) >= 2 and words[0] == "fork" and words[1] != name and words[1] in tables:
                    self.parent.setdefault(words[1], (name, i))
        for child, (parent, i) in self.parent.items():
            spec = tables[parent]
            assert isinstance(spec, dict)
            before = _assigned_vars(spec["ops"][:i])
            self.inherited[child] = before | (set(setup_vars) if shared_mm else set())
            table = tables[child]
            self.made_by_children[child] = _assigned_vars(table.get("ops") if isinstance(table, dict) else None)

    def check(self, thread: str, child: str, index: int) -> None:
        """The checks of ``thread``'s op number ``index``, ``fork child``."""
        if thread == SETUP:
            raise _fail("fork in [setup]: expected fork in a thread (its child starts when the fork returns)")
        if child == thread:
            raise _fail(f"thread {shown(thread)} cannot fork itself: expected the name of another "
                        "[threads.NAME] table, the child's")
        if child not in self.threads:
            raise _fail(f"unknown thread {shown(child)} to fork: expected the name of a [threads.NAME] table, "
                        f"the child's (threads are {', '.join(self.threads)})")
        if thread in self.parent:
            raise _fail(f"thread {shown(thread)} is a forked child: expected fork only in a thread that starts "
                        "with the scenario (a child does not fork again)")
        if self.parent[child] != (thread, index):
            raise _fail(f"thread {shown(child)} is forked twice: expected one fork per child thread "
                        f"(thread {shown(self.parent[child][0])} forks it first)")


def _assigned_vars(lines: object) -> set[str]:
    """The variables a thread's op lines assign (for other threads' scopes; checked when parsed)."""
    found: set[str] = set()
    if isinstance(lines, list):
        for line in lines:
            m = _ASSIGN.match(line) if isinstance(line, str) else None
            if m is not None and _NAME.fullmatch(m.group(1)):
                found.add(m.group(1))
    return found


def _threads(value: object, files: Sequence[str], src: Where, budget: _Budget, shared_mm: bool,
             setup: ThreadSpec | None) -> tuple[ThreadSpec, ...]:
    if value is None:
        raise ScenarioError("no threads: expected at least one [threads.NAME] table", src.where(()))
    threads = _table(value, "threads", ("threads",), src)
    if not threads:
        raise ScenarioError("no threads: expected at least one [threads.NAME] table", src.where(("threads",)))
    if len(threads) > MAX_THREADS:
        name = list(threads)[MAX_THREADS]
        raise ScenarioError(f"too many threads: {len(threads)}, expected at most {MAX_THREADS}",
                            src.where(("threads", name)))
    setup_vars = {op.var for op in setup.ops if op.var} if setup is not None else set()
    forks = _Forks(threads, setup_vars, shared_mm)
    made = {name: _assigned_vars(spec.get("ops")) if isinstance(spec, dict) else set()
            for name, spec in threads.items() if name not in forks.parent}
    return tuple(
        _thread(name, spec, files, src, budget, _thread_scope(name, shared_mm, setup, made, forks))
        for name, spec in threads.items()
    )


def _thread_scope(name: str, shared_mm: bool, setup: ThreadSpec | None, made: Mapping[str, set[str]],
                  forks: _Forks) -> _Scope:
    """A thread's scope of maps.  A forked child's are its own: the variables its parent made before
    the fork (and [setup]'s, with mm = "shared") name the child's copies of those mappings."""
    if name not in forks.parent:
        return _Scope(shared_mm, setup, {t: v for t, v in made.items() if t != name}, forks)
    scope = _Scope(False, None, None, forks)
    scope.parent = forks.parent[name][0]
    scope.own |= forks.inherited[name]
    return scope


class _Budget:
    """What the threads parsed so far have used of the per-scenario limits."""

    def __init__(self) -> None:
        self.ops = 0
        self.bytes = 0

    def add_ops(self, thread: str, count: int) -> None:
        self.ops += count
        if self.ops > MAX_OPS:
            raise _fail(f"too many ops: thread {shown(thread)} brings the scenario to {self.ops} ops, "
                        f"expected at most {MAX_OPS} in all threads together")

    def add_bytes(self, op: Op) -> None:
        self.bytes += len(op.data) + (op.length if op.kind in DATA_OPS else 0)
        if op.expect is not None:
            self.bytes += len(op.expect.data)
        if self.bytes > MAX_SCENARIO_BYTES:
            raise _fail(f"too many bytes: this op brings the scenario's data and load/read lengths to "
                        f"{self.bytes} bytes, expected at most {MAX_SCENARIO_BYTES} (16 MiB) in all")


def _thread(name: str, value: object, files: Sequence[str], src: Where, budget: _Budget,
            scope: _Scope) -> ThreadSpec:
    """A ``[threads.NAME]`` table, or (``name`` SETUP) the ``[setup]`` table."""
    path: KeyPath = ("threads", name) if name != SETUP else ("setup",)
    table = f"[threads.{name}]" if name != SETUP else "[setup]"
    if name != SETUP:
        with _at(src.where(path)):
            check_name("thread", name)
    spec = _table(value, table, path, src)
    _check_keys(spec, THREAD_KEYS, path, src)
    lines = spec.get("ops")
    if lines is None:
        message = f"missing key 'ops' in {table}: expected an array of op strings"
        raise ScenarioError(message, src.where(path))
    if not isinstance(lines, list):
        message = f"ops must be an array of strings, got {_type_name(lines)}"
        raise ScenarioError(message, src.where(path + ("ops",)))
    with _at(src.where(path + ("ops",))):
        budget.add_ops(name, len(lines))
    ops: list[Op] = []
    for i, line in enumerate(lines):
        op_path = path + ("ops", i)
        if not isinstance(line, str):
            raise ScenarioError(f"an op must be a string, got {_type_name(line)}", src.where(op_path))
        with _at(src.where(op_path)):
            op = _scoped_op(line, name, files, scope, src.loc(op_path))
            budget.add_bytes(op)
            if op.kind == "fork":
                scope.forks.check(name, op.child, i)
        if op.var:
            scope.own.add(op.var)
        ops.append(op)
    return ThreadSpec(name=name, ops=tuple(ops), loc=src.loc(path), forked_by=scope.parent)


def _scoped_op(line: str, thread: str, files: Sequence[str], scope: _Scope, loc: Loc) -> Op:
    """parse_op with the thread's scope of maps, the op's owner filled in."""
    try:
        op = parse_op(line, thread=thread, files=files, maps=scope, loc=loc)
    except _UnknownMap as e:
        raise scope.unknown(thread, e.var) from None
    if not op.map:
        return op
    owner = scope.owner(thread, op.map)
    if owner == SETUP and not scope.shared_mm:
        raise _fail(f"map {shown(op.map)} is made in [setup]: threads use its maps only with mm = \"shared\" "
                    "(with per-thread, each thread is a process with its own mm)")
    return dataclasses.replace(op, owner=owner) if owner else op


# --------------------------------------------------------------------------------------------------
# TOML


def parse_scenario(text: str, path: str) -> Scenario:
    """Parse scenario TOML ``text``; ``path`` is used in error locations and as Scenario.path.

    The limits tomllib cannot keep (document size, nesting, digits) are checked on the text first."""
    if len(text) > MAX_DOCUMENT_BYTES // 4:  # only then can the UTF-8 text be over the limit
        _check_document_size(text.encode("utf-8", "surrogatepass"), path)
    check_toml_shape(text, path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _toml_error(str(e), text, path) from None
    except RecursionError:  # the scan above keeps nesting far from this; should it ever miss
        raise ScenarioError(f"nesting too deep for the TOML reader: expected at most {MAX_NESTING} levels",
                            where=f"{path}:1") from None
    return compile_document(doc, _TomlWhere(path, lambda: _Locator(text).run()), path)


def _check_document_size(raw: bytes, path: str) -> None:
    if len(raw) > MAX_DOCUMENT_BYTES:
        line = raw.count(b"\n", 0, MAX_DOCUMENT_BYTES) + 1
        raise ScenarioError(f"the file is larger than {MAX_DOCUMENT_BYTES} bytes (1 MiB) from this line on: "
                            f"expected a scenario of at most {MAX_DOCUMENT_BYTES} bytes", where=f"{path}:{line}")


def load_scenario(path: str) -> Scenario:
    """Read and parse the scenario file at ``path`` (reading no more than the size limit allows)."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as e:
        raise ScenarioError(f"cannot read the scenario file: {e.strerror}", where=path) from None
    except ValueError as e:  # a path with a NUL byte
        raise ScenarioError(f"cannot read the scenario file: {e}", where=path) from None
    _check_document_size(raw, path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ScenarioError("not UTF-8 text: expected a UTF-8 TOML file", where=f"{path}:{line}") from None
    return parse_scenario(text, path)


_TOML_COORD = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def _toml_error(message: str, text: str, path: str) -> ScenarioError:
    m = _TOML_COORD.search(message)
    line = max(1, len(text.splitlines()))
    if m is None:
        return ScenarioError(f"TOML syntax error: {message}", where=f"{path}:{line}")
    what = message[: m.start()]
    what = what[:1].lower() + what[1:]
    if m.group(1) is None:
        return ScenarioError(f"TOML syntax error: {what} at the end of the file", where=f"{path}:{line}")
    return ScenarioError(f"TOML syntax error: {what} (column {m.group(2)})", where=f"{path}:{m.group(1)}")


class _TomlWhere:
    """Locations in TOML text; the text is scanned for them on the first question only, so an
    error found early costs no scan of a large document beyond the one it needs."""

    def __init__(self, path: str, locate: Callable[[], Mapping[KeyPath, int]]) -> None:
        self.path = path
        self._locate = locate
        self._lines: Mapping[KeyPath, int] | None = None

    def line(self, key: KeyPath) -> int:
        """The line of ``key``, or of its nearest located ancestor; 1 for the document itself."""
        if self._lines is None:
            self._lines = self._locate()
        while key:
            if key in self._lines:
                return self._lines[key]
            key = key[:-1]
        return 1

    def where(self, path: KeyPath) -> str:
        return f"{self.path}:{self.line(path)}"

    def loc(self, path: KeyPath) -> Loc:
        return Loc(self.path, self.line(path))


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_BLANK_COMMENT = re.compile(r"[ \t]*+(?:#[^\n]*+)?")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]++|#[^\n]*+)*+")
_SCALAR = re.compile(r"[^,\]}#\r\n]*+")
_NOT_NESTING = re.compile(r"[^\[\]{}\"'#]*+")


class _Locator:
    """Finds the line where each key, table and array element of a TOML document first appears.

    Only run on text tomllib accepted, so it skips over values rather than checking them. Keys of
    ``[[array]]`` tables get the element index, as in the parsed document."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.newlines = [m.start() for m in re.finditer("\n", src)]
        self.lines: dict[KeyPath, int] = {}
        self.array_tables: dict[KeyPath, int] = {}

    def run(self) -> dict[KeyPath, int]:
        try:
            self._document()
        except (IndexError, ValueError, tomllib.TOMLDecodeError):  # pragma: no cover - tomllib accepted it
            pass
        return self.lines

    def _line(self) -> int:
        return bisect.bisect_left(self.newlines, self.pos) + 1

    def _mark(self, path: KeyPath, line: int) -> None:
        for i in range(1, len(path) + 1):
            self.lines.setdefault(path[:i], line)

    def _document(self) -> None:
        table: KeyPath = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.src):
                return
            line = self._line()
            if self.src.startswith("[[", self.pos):
                self.pos += 2
                key = self._key()
                index = self.array_tables.get(key, 0)
                self.array_tables[key] = index + 1
                table = key + (index,)
                self.pos += 2
            elif self.src[self.pos] == "[":
                self.pos += 1
                table = self._key()
                self.pos += 1
            else:
                self._keyval(table)
                continue
            self._mark(table, line)

    def _skip(self, newlines: bool) -> None:
        m = (_BLANK_LINES if newlines else _BLANK_COMMENT).match(self.src, self.pos)
        if m is not None:
            self.pos = m.end()

    def _key(self) -> KeyPath:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            c = self.src[self.pos]
            if c in "\"'":
                start = self.pos
                self._string()
                parts.append(tomllib.loads("k = " + self.src[start : self.pos])["k"])
            else:
                m = _BARE_KEY.match(self.src, self.pos)
                if m is None:
                    raise ValueError("not a key")
                parts.append(m.group())
                self.pos = m.end()
            self._skip(newlines=False)
            if self.src[self.pos] != ".":
                return tuple(parts)
            self.pos += 1

    def _keyval(self, table: KeyPath) -> None:
        line = self._line()
        path = table + self._key()
        self.pos += 1  # "="
        self._skip(newlines=False)
        self._mark(path, line)
        self._value(path)

    def _value(self, path: KeyPath) -> None:
        self._mark(path, self._line())
        c = self.src[self.pos]
        if c in "\"'":
            self._string()
        elif c == "[" and (path[:1] == ("threads",) and path[2:] == ("ops",) or path == ("setup", "ops")):
            self._array(path)
        elif c == "{" and len(path) < 3:
            self._inline_table(path)
        elif c in "[{":
            self._skip_nested()  # a value no message points into (arrays other than ops: all errors)
        else:
            m = _SCALAR.match(self.src, self.pos)
            if m is not None:
                self.pos = m.end()

    def _skip_nested(self) -> None:
        """Skip an array or inline table without locating what is inside."""
        depth = 0
        while True:
            m = _NOT_NESTING.match(self.src, self.pos)
            if m is not None:
                self.pos = m.end()
            c = self.src[self.pos]
            if c in "\"'":
                self._string()
                continue
            if c == "#":
                self._skip(newlines=True)
                continue
            self.pos += 1
            depth += 1 if c in "[{" else -1
            if depth == 0:
                return

    def _array(self, path: KeyPath) -> None:
        self.pos += 1
        index = 0
        while True:
            self._skip(newlines=True)
            if self.src[self.pos] == "]":
                self.pos += 1
                return
            self._value(path + (index,))
            index += 1
            self._skip(newlines=True)
            if self.src[self.pos] == ",":
                self.pos += 1

    def _inline_table(self, path: KeyPath) -> None:
        self.pos += 1
        while True:
            self._skip(newlines=True)
            if self.src[self.pos] == "}":
                self.pos += 1
                return
            self._keyval(path)
            self._skip(newlines=True)
            if self.src[self.pos] == ",":
                self.pos += 1

    def _string(self) -> None:
        if self.src.startswith('"""', self.pos):
            pattern = MULTILINE_BASIC_STRING
        elif self.src.startswith("'''", self.pos):
            pattern = MULTILINE_LITERAL_STRING
        else:
            pattern = BASIC_STRING if self.src[self.pos] == '"' else LITERAL_STRING
        m = pattern.match(self.src, self.pos)
        if m is None:  # pragma: no cover - tomllib accepted the string
            raise ValueError("not a string")
        self.pos = m.end()
