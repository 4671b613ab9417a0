"""Compile the probe (``probe.c``) once per source/compiler/flags into the user's cache directory."""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from faultlab.oracle.errors import CompilerNotFoundError, ProbeBuildError

CFLAGS: tuple[str, ...] = ("-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-pthread")
STATIC_FLAGS: tuple[str, ...] = ("-static",)
COMPILER_CANDIDATES: tuple[str, ...] = ("cc", "gcc", "clang")
_BUILD_TIMEOUT_S = 120.0


def probe_source() -> bytes:
    """The probe's C source, as shipped in the package."""
    return resources.files("faultlab.oracle").joinpath("probe.c").read_bytes()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/faultlab``, else ``~/.cache/faultlab``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "faultlab"


def find_compiler() -> list[str]:
    """The compiler command: ``$CC`` if set (it may carry arguments), else the first of cc, gcc, clang."""
    looked_for: list[str] = []
    env_cc = os.environ.get("CC", "").strip()
    if env_cc:
        argv = shlex.split(env_cc)
        path = shutil.which(argv[0])
        if path:
            return [path, *argv[1:]]
        looked_for.append(f"$CC={env_cc}")
    for name in COMPILER_CANDIDATES:
        path = shutil.which(name)
        if path:
            return [path]
        looked_for.append(name)
    raise CompilerNotFoundError(
        "no C compiler found to build the real-kernel probe (looked for "
        + ", ".join(looked_for)
        + " on PATH); install one with `apt-get install gcc`"
    )


def build_probe(static: bool = False) -> Path:
    """Return the path of a compiled probe, building it on first use.

    ``static=True`` links with ``-static`` (for running inside a minimal VM). The binary is cached
    under :func:`cache_dir`, named by a hash of the source, the compiler and the flags, and is
    written atomically, so concurrent callers are safe.
    """
    compiler = find_compiler()
    flags = CFLAGS + (STATIC_FLAGS if static else ())
    source = probe_source()
    key = hashlib.sha256(
        b"\0".join([source, "\0".join(compiler).encode(), " ".join(flags).encode()])
    ).hexdigest()[:16]
    target = cache_dir() / f"probe-{key}{'-static' if static else ''}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=target.parent) as tmp:
        src = Path(tmp) / "probe.c"
        src.write_bytes(source)
        out = Path(tmp) / "probe"
        argv = [*compiler, *flags, "-o", str(out), str(src)]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ProbeBuildError(f"could not run the compiler `{shlex.join(argv)}`: {exc}") from exc
        if proc.returncode != 0:
            raise ProbeBuildError(_build_failure(argv, proc.stderr, static))
        os.replace(out, target)
    return target


def _build_failure(argv: list[str], stderr: str, static: bool) -> str:
    first = next((line for line in stderr.splitlines() if "error" in line), stderr.strip()[:300])
    hint = ""
    if static and ("cannot find -lc" in stderr or "-lc:" in stderr):
        hint = "; static linking needs the static C library: `apt-get install libc6-dev`"
    return f"building the probe failed: `{shlex.join(argv)}`: {first.strip()}{hint}"
