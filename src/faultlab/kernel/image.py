"""Linking a design's kernel: the model's modules, as one kernel image per design.

Model code is plain Python modules whose functions call each other directly, as kernel C does.
A design picks an *era* (the generic fault code of one kernel version, a module under
:mod:`faultlab.kernel.eras`), the file system types it installs, and the DAX library of its
kernel (a module under ``faultlab.fs.dax``, fs/dax.c of that version).  :func:`link` makes the
design's own copy of every model module it can reach, in which:

* shared code written against *an* era or *a* DAX library (``from faultlab.kernel.eras import
  v4_10 as era``) calls the design's (module aliases are bound by role, as the kernel's symbols
  are resolved at link time);
* a function an era module takes unchanged from an earlier era (``from .v4_0 import
  do_read_fault``) is rebound into the importing era, so its calls reach that era's functions;
* a replaced function (a known bug, a user's experiment) replaces every reference to the
  original in the copy, and nothing outside it: two designs explored in one process never see
  each other's changes;
* optionally (``trace``), every model function reports its entry and exit as ``func_enter`` /
  ``func_exit`` events, which is how reports name the kernel function of each step.

The functions of an image are new function objects sharing the original code objects, so
tracebacks, coverage and profilers point at the real source lines.  The state layer
(:mod:`faultlab.kernel.state`, locks, flags, events, the Kernel object) is not copied: it holds
no model logic.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from faultlab.errors import UserError, shown
from faultlab.fs.ops import OPS_RECORDS, FileSystemType

MODEL_PREFIXES = ("faultlab.kernel.", "faultlab.fs.")
"""Modules whose functions are model code, linked per design."""
STATIC_MODULES = (
    "faultlab.kernel.state", "faultlab.kernel.locking", "faultlab.kernel.flags", "faultlab.kernel.events",
    "faultlab.kernel.kernel", "faultlab.kernel.mm", "faultlab.kernel.image", "faultlab.fs.ops",
)
"""Model modules holding no fault logic: shared by every image, never copied."""
ROLES = {"era": "faultlab.kernel.eras.", "dax": "faultlab.fs.dax"}
"""Module aliases bound per design: the era's generic fault code, and its fs/dax.c."""


def is_model_module(name: str) -> bool:
    return name.startswith(MODEL_PREFIXES) and not name.startswith(STATIC_MODULES)


@dataclass
class KernelImage:
    """One design's linked kernel."""

    name: str
    modules: dict[str, types.ModuleType]
    filesystems: dict[str, FileSystemType]
    i_mmap_is_mutex: bool
    traced: bool = False
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def __reduce__(self) -> str | tuple[Any, ...]:
        # Its modules would be pickled by name and come back as faultlab's own, unlinked: a design
        # travels without its images and is linked again where it runs (Design.__getstate__).
        raise TypeError(f"a kernel image ({self.name}) is not sent between processes: send its design")

    def module(self, name: str) -> types.ModuleType:
        """The image's copy of a model module, by the module's name."""
        return self.modules[name]

    def filesystem(self, kind: str) -> FileSystemType:
        fs = self.filesystems.get(kind)
        if fs is None:
            raise UserError(f"design {self.name} does not model '{kind}' files (it models "
                            f"{', '.join(sorted(self.filesystems))})")
        return fs


def _role(name: str) -> str | None:
    for role, prefix in ROLES.items():
        if name.startswith(prefix):
            return role
    return None


def _reachable(roots: list[types.ModuleType]) -> list[types.ModuleType]:
    """The model modules reachable from ``roots`` through module globals (modules and functions).
    Era and DAX modules other than the roots are looked through (the functions an era takes from
    an earlier one reach further) but not copied: what the image uses of them is adopted."""
    seen: dict[str, types.ModuleType] = {}
    visited: set[str] = set()
    todo = list(roots)
    root_names = {m.__name__ for m in roots}
    while todo:
        mod = todo.pop()
        if mod.__name__ in visited:
            continue
        visited.add(mod.__name__)
        if mod.__name__ in root_names or _role(mod.__name__) is None:
            seen[mod.__name__] = mod
        for value in list(vars(mod).values()):
            target: str | None = None
            if isinstance(value, types.ModuleType):
                target = value.__name__
            elif isinstance(value, types.FunctionType):
                target = value.__module__
            if target and is_model_module(target) and target not in visited and target in sys.modules:
                todo.append(sys.modules[target])
    return sorted(seen.values(), key=lambda m: m.__name__)


def _clone(fn: types.FunctionType, globals_: dict[str, Any]) -> types.FunctionType:
    new = types.FunctionType(fn.__code__, globals_, fn.__name__, fn.__defaults__, fn.__closure__)
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    new.__annotations__ = fn.__annotations__
    new.__dict__.update(fn.__dict__)
    return new


def _traced(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` reporting its entry and exit on the event stream of the Kernel it is called with."""
    name = fn.__name__

    def traced(*args: Any, **kwargs: Any) -> Any:
        k = args[0] if args else None
        events = getattr(k, "events", None)
        if events is None:
            return fn(*args, **kwargs)
        events.emit("func_enter", name=name)
        try:
            return fn(*args, **kwargs)
        finally:
            events.emit("func_exit", name=name)

    traced.__wrapped__ = fn  # type: ignore[attr-defined]
    traced.__name__ = name
    traced.__qualname__ = fn.__qualname__
    traced.__module__ = fn.__module__
    return traced


def link(
    name: str,
    era: types.ModuleType,
    filesystems: dict[str, FileSystemType],
    dax: types.ModuleType | None,
    entry: list[types.ModuleType],
    replace: dict[Callable[..., Any], Callable[..., Any]] | None = None,
    trace: bool = False,
) -> KernelImage:
    """Link the modules a design runs into one image (see the module docstring).

    ``entry``: the modules the caller enters the model through (the system calls); ``replace``:
    original function -> its replacement (the replacement runs in the original's module)."""
    linker = _Linker(era, dax, trace)
    roots = [era, *entry, *([dax] if dax else [])]
    for fs in filesystems.values():  # (an era's or a DAX module's functions are reached through it)
        roots += [sys.modules[fn.__module__] for fn in record_functions(fs) if _role(fn.__module__) is None]
    mods = _reachable(roots)
    linker.copy(mods)
    for old, new in (replace or {}).items():
        linker.replace(old, new)
    linker.resolve_all()
    linker.check_replaced()
    linked_fs: dict[str, FileSystemType] = {}
    for kind, fs in filesystems.items():
        where = _defined_at(fs, mods)
        if where is not None:  # the image's copy of a record defined in a model module
            linked_fs[kind] = linker.spaces[where[0]].__dict__[where[1]]
        else:  # a record built by hand (a user's design): relink its functions
            linked_fs[kind] = _relink_record(fs, lambda v: linker.resolve(v, None))
    spaces = linker.spaces
    return KernelImage(
        name=name,
        modules=spaces,
        filesystems=linked_fs,
        i_mmap_is_mutex=bool(getattr(spaces[era.__name__], "I_MMAP_IS_MUTEX", False)),
        traced=trace,
    )


class _Linker:
    def __init__(self, era: types.ModuleType, dax: types.ModuleType | None, trace: bool) -> None:
        self.roles: dict[str, types.ModuleType] = {"era": era}
        if dax is not None:
            self.roles["dax"] = dax
        self.trace = trace
        self.spaces: dict[str, types.ModuleType] = {}
        self.home: dict[int, Callable[..., Any]] = {}  # id(original) -> the image's function
        self.adopted: dict[tuple[str, int], Callable[..., Any]] = {}  # (module, id(original)) -> its adoption
        self.pending: list[tuple[types.FunctionType, str]] = []  # replacements, and where they run
        # id(original) -> (original, replacement), for a function of a module the image does not
        # copy that it adopts: the replacement is adopted in its place.
        self.adopted_replaced: dict[int, tuple[types.FunctionType, types.FunctionType]] = {}

    def copy(self, mods: list[types.ModuleType]) -> None:
        for m in mods:
            space = types.ModuleType(m.__name__, m.__doc__)
            space.__dict__.update(vars(m))
            self.spaces[m.__name__] = space
        for m in mods:
            ns = self.spaces[m.__name__].__dict__
            for key, value in list(ns.items()):
                if isinstance(value, types.FunctionType) and value.__module__ == m.__name__:
                    ns[key] = self.home[id(value)] = self._wrap(_clone(value, ns))

    def replace(self, old: Callable[..., Any], new: Callable[..., Any]) -> None:
        mod = getattr(old, "__module__", "")
        what = shown(getattr(old, "__qualname__", old))
        if not isinstance(old, types.FunctionType) or not (mod in self.spaces or is_model_module(mod)):
            raise UserError(f"cannot replace {what}: it is not a function of the model")
        if not isinstance(new, types.FunctionType):
            raise UserError(f"cannot replace {what} with {shown(new)}: expected a function to run instead")
        if mod in self.spaces:
            ns = self.spaces[mod].__dict__
            ns[old.__name__] = self.home[id(old)] = self._wrap(_checked(_clone(new, ns), old))
            self.pending.append((new, mod))
        else:  # an earlier era's function this design's era adopts (see _adopt)
            self.adopted_replaced[id(old)] = (old, new)

    def check_replaced(self) -> None:
        """After :meth:`resolve_all`: every adopted function replaced was found in the image."""
        for key, (old, _) in self.adopted_replaced.items():
            if not any(k == key for _, k in self.adopted):
                raise UserError(f"cannot replace {old.__qualname__!r} ({old.__module__}): this design's kernel "
                                "does not run it")

    def resolve_all(self) -> None:
        # A replacement runs in the original's module: the names it uses are looked up there, and
        # those only its own module has are brought along.
        for fn, mod in self.pending:
            self._bring_globals(fn, mod)
        for mod, space in self.spaces.items():
            ns = space.__dict__
            for key, value in list(ns.items()):
                if not key.startswith("__"):
                    ns[key] = self.resolve(value, mod)

    def resolve(self, value: Any, mod: str | None) -> Any:
        """What a global of module ``mod`` (None: a hand-built record) stands for in the image."""
        if isinstance(value, types.FunctionType):
            got = self.home.get(id(value))
            if got is not None:
                return got
            if mod is not None and is_model_module(value.__module__) and value.__module__ not in self.spaces:
                return self._adopt(value, mod)
            return value
        if isinstance(value, types.ModuleType):
            role = _role(value.__name__)
            if role is not None and role in self.roles:
                return self.spaces.get(self.roles[role].__name__, value)
            return self.spaces.get(value.__name__, value)
        if isinstance(value, OPS_RECORDS):
            return _relink_record(value, lambda v: self.resolve(v, mod))
        return value

    def _adopt(self, fn: types.FunctionType, mod: str) -> Callable[..., Any]:
        """``fn`` (from an era the image does not run) rebound into module ``mod``: its calls reach
        ``mod``'s functions, and the globals it needs that ``mod`` lacks come from its own module,
        adopted in turn.  A replaced ``fn`` is adopted as its replacement, which then runs in
        ``mod`` as ``fn`` would."""
        key = (mod, id(fn))
        got = self.adopted.get(key)
        if got is not None:
            return got
        ns = self.spaces[mod].__dict__
        replaced = self.adopted_replaced.get(id(fn))
        if replaced is None:
            got = self.adopted[key] = self._wrap(_clone(fn, ns))
            self._bring_globals(fn, mod)
        else:
            got = self.adopted[key] = self._wrap(_checked(_clone(replaced[1], ns), fn))
            self._bring_globals(replaced[1], mod)
        return got

    def _bring_globals(self, fn: types.FunctionType, mod: str) -> None:
        """Give module ``mod`` the globals ``fn`` uses that it lacks, from ``fn``'s own module."""
        ns = self.spaces[mod].__dict__
        source = fn.__globals__
        for name in _global_names(fn.__code__):
            if name not in ns and name in source:
                ns[name] = self.resolve(source[name], mod)

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return _traced(fn) if self.trace else fn


class WrongReturnType(TypeError):
    """A replacement function returned a value its original never returns (a design's mistake,
    reported as the run's ``design-error``); ``code`` is the replacement's."""

    def __init__(self, message: str, code: types.CodeType) -> None:
        super().__init__(message)
        self.code = code


def _return_type(fn: Callable[..., Any]) -> Any:
    """What ``fn``'s return annotation allows, as an isinstance() argument; None if it cannot be
    checked (no annotation, a name only known to type checkers, a generic type)."""
    ann = getattr(fn, "__annotations__", {}).get("return")
    if isinstance(ann, str):
        try:
            ann = eval(ann, dict(getattr(fn, "__globals__", {})))  # noqa: S307 - the model's own annotation
        except Exception:  # noqa: BLE001 - e.g. a TYPE_CHECKING-only name
            return None
    if ann is None or ann is type(None):
        return type(None)
    try:
        isinstance(None, ann)
    except TypeError:
        return None
    return ann


def _checked(new: types.FunctionType, old: Callable[..., Any]) -> Callable[..., Any]:
    """``new``, checking that what it returns is of the type ``old`` is declared to return."""
    allowed = _return_type(old)
    if allowed is None:
        return new
    code = new.__code__

    def checked(*args: Any, **kwargs: Any) -> Any:
        value = new(*args, **kwargs)
        if not isinstance(value, allowed):
            raise WrongReturnType(
                f"{new.__name__}() returned {shown(value)}, a {type(value).__name__}: the function it replaces "
                f"returns {old.__annotations__.get('return')}", code)
        return value

    checked.__wrapped__ = new  # type: ignore[attr-defined]
    checked.__name__ = new.__name__
    checked.__qualname__ = new.__qualname__
    checked.__module__ = new.__module__
    return checked


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def record_functions(record: Any) -> list[types.FunctionType]:
    """The functions of an ops record, and of the records inside it."""
    out: list[types.FunctionType] = []
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        if isinstance(value, types.FunctionType):
            out.append(value)
        elif isinstance(value, OPS_RECORDS):
            out += record_functions(value)
    return out


def _defined_at(obj: object, mods: list[types.ModuleType]) -> tuple[str, str] | None:
    for m in mods:
        for key, value in vars(m).items():
            if value is obj:
                return m.__name__, key
    return None


def _relink_record(record: Any, resolve: Callable[[Any], Any]) -> Any:
    changes = {}
    for f in dataclasses.fields(record):
        value = getattr(record, f.name)
        new = resolve(value)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(record, **changes) if changes else record
