"""Run static programs inside a qemu guest on a real DAX (fsdax, ext4) filesystem.

The host kernel cannot give us DAX, so the oracle boots a stock Debian 6.1 kernel under qemu
(TCG: no KVM needed) with 64 MiB of emulated persistent memory (``memmap=64M!256M``: legacy
e820 pmem), makes ext4 on ``/dev/pmem0``, mounts it with ``-o dax`` and runs the jobs there.

* :func:`setup` gets everything once and caches it (host packages, kernel, base initramfs).
* :func:`run_jobs` boots once per call and runs every job in it, in order.

See ``docs/dax-vm.md`` for the cache layout, timings and the guest protocol.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gzip
import hashlib
import json
import lzma
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from faultlab.oracle.errors import OracleError
from faultlab.oracle.vm_cpio import CpioWriter

__all__ = [
    "KERNEL_MODULES",
    "JobOutput",
    "VmAssets",
    "VmBootError",
    "VmError",
    "VmTimeoutError",
    "VmUnavailableError",
    "default_cache_dir",
    "run_jobs",
    "setup",
]

#: Modules insmodded in the guest, in this order (their modules.dep dependencies go first).
KERNEL_MODULES: tuple[str, ...] = (
    "libnvdimm",
    "nd_btt",
    "nd_pmem",
    "nd_e820",
    "crc16",
    "mbcache",
    "jbd2",
    "crc32c_generic",
    "ext4",
)

#: Debian package -> what must exist on the host for it to count as installed.
_HOST_PACKAGES = {
    "qemu-system-x86": "qemu-system-x86_64",
    "busybox-static": "/bin/busybox (statically linked)",
    "kmod": "depmod",
    "e2fsprogs": "mke2fs and /etc/mke2fs.conf",
}

_KERNEL_META = "linux-image-amd64"
_KERNEL_PKG_RE = re.compile(r"^linux-image-6\.1\.0-(\d+)-amd64$")
_QEMU = "qemu-system-x86_64"
_APPEND = "console=ttyS0 memmap=64M!256M panic=-1 loglevel=4 quiet"
_FORMAT = 1  # bump when the layout of the cache or of the base initramfs changes
_SBIN_PATH = "/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin"
_JOB_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_DIR_LINE_RE = re.compile(r"^dir(?:[ \t].*)?$")
_TAIL_LINES = 20

Log = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# errors and results


class VmError(OracleError):
    """The DAX VM could not be set up or run (a :class:`~faultlab.errors.UserError`: the CLI
    prints the message, which for boot failures includes the last console lines)."""


class VmUnavailableError(VmError):
    """Something the VM needs cannot be obtained here (not root, no package registry, no such
    package). Tests skip on this one; every other :class:`VmError` is a real failure."""


class VmBootError(VmError):
    """The guest did not boot, failed during its own setup or did not report every job."""

    def __init__(
        self, message: str, console_tail: Sequence[str] = (), console_log: Path | None = None
    ) -> None:
        self.console_tail = list(console_tail)
        self.console_log = console_log
        text = message
        if self.console_tail:
            text += f"\n--- last {len(self.console_tail)} console lines ---\n" + "\n".join(self.console_tail)
        if console_log is not None:
            text += f"\n(full console log: {console_log})"
        super().__init__(text)


class VmTimeoutError(VmBootError):
    """The guest did not power off within the timeout."""


class JobOutput(str):
    """A job's standard output (the ``str`` value itself) plus its exit status and stderr.

    ``exit_code`` is the shell's ``$?``: the program's exit status, or 128+N if signal N killed it.
    """

    exit_code: int
    stderr: str

    def __new__(cls, stdout: str, exit_code: int, stderr: str = "") -> JobOutput:
        obj = super().__new__(cls, stdout)
        obj.exit_code = exit_code
        obj.stderr = stderr
        return obj

    @property
    def stdout(self) -> str:
        return str(self)

    def __repr__(self) -> str:
        return f"JobOutput({str(self)!r}, exit_code={self.exit_code}, stderr={self.stderr!r})"

    def __reduce__(self) -> tuple[type[JobOutput], tuple[str, int, str]]:
        return (JobOutput, (str(self), self.exit_code, self.stderr))


@dataclass(frozen=True)
class VmAssets:
    """What :func:`setup` produced; everything :func:`run_jobs` needs."""

    cache_dir: Path
    kernel_package: str  # e.g. linux-image-6.1.0-56-amd64
    kernel_version: str  # Debian version of that package, e.g. 6.1.192-2
    kernel_release: str  # uname -r in the guest, e.g. 6.1.0-56-amd64
    vmlinuz: Path
    initrd: Path  # the cached base initramfs (never modified by run_jobs)
    qemu: Path


# --------------------------------------------------------------------------------------------
# small helpers


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/faultlab/dax-vm``, or ``~/.cache/faultlab/dax-vm``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "faultlab" / "dax-vm"


def _which(name: str) -> str | None:
    """shutil.which that also looks in the sbin directories (absent from non-root PATHs)."""
    path = os.environ.get("PATH", "")
    return shutil.which(name, path=f"{path}:{_SBIN_PATH}" if path else _SBIN_PATH)


def _tail(text: str, n: int = 20) -> str:
    lines = [ln for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


def _run(argv: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    """Run a command; return stdout, raise VmError (with its stderr) on failure."""
    try:
        proc = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except OSError as e:
        raise VmError(f"cannot run {argv[0]}: {e}") from e
    if proc.returncode != 0:
        raise VmError(
            f"command failed (exit {proc.returncode}): {' '.join(argv)}\n{_tail(proc.stderr + proc.stdout)}"
        )
    return proc.stdout


def elf_interpreter(path: Path) -> str | None:
    """The PT_INTERP of an x86-64 ELF file (None for a static binary); VmError if not such a file."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF":
                raise VmError(f"{path} is not an ELF file")
            if head[4] != 2 or head[5] != 1 or struct.unpack_from("<H", head, 18)[0] != 0x3E:
                raise VmError(f"{path} is not a little-endian x86-64 ELF file")
            phoff = struct.unpack_from("<Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ph = f.read(phentsize)
                p_type, _flags, p_offset = struct.unpack_from("<IIQ", ph, 0)
                p_filesz = struct.unpack_from("<Q", ph, 32)[0]
                if p_type == 3:  # PT_INTERP
                    f.seek(p_offset)
                    return f.read(p_filesz).rstrip(b"\0").decode()
    except OSError as e:
        raise VmError(f"cannot read {path}: {e}") from e
    return None


def _is_static_elf(path: Path) -> bool:
    try:
        return elf_interpreter(path) is None
    except VmError:
        return False


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with (cache_dir / ".lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _init_script() -> bytes:
    return resources.files("faultlab.oracle").joinpath("guest/init.sh").read_bytes()


def _initramfs_key() -> str:
    """Changes whenever the base initramfs would be built differently."""
    h = hashlib.sha256()
    h.update(f"format={_FORMAT}\nmodules={','.join(KERNEL_MODULES)}\n".encode())
    h.update(_init_script())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# host packages


class _Apt:
    """apt-get / apt-cache, with ``apt-get update`` run at most once per setup()."""

    def __init__(self, log: Log) -> None:
        self._log = log
        self._updated = False
        self.root = os.geteuid() == 0
        self.env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")

    def _apt(self, argv: list[str], what: str) -> str:
        if shutil.which(argv[0]) is None:
            raise VmUnavailableError(f"{argv[0]} not found: the DAX VM needs a Debian host with apt")
        try:
            return _run(argv, env=self.env)
        except VmError as e:
            raise VmUnavailableError(f"{what} failed (is the Debian package registry reachable?): {e}") from e

    def update(self) -> None:
        if self._updated or not self.root:
            return
        self._log("dax-vm: apt-get update")
        self._apt(["apt-get", "update"], "apt-get update")
        self._updated = True

    def install(self, packages: Sequence[str]) -> None:
        self.update()
        self._log(f"dax-vm: apt-get install {' '.join(packages)}")
        self._apt(["apt-get", "install", "-y", "--no-install-recommends", *packages], "apt-get install")

    def cache(self, *args: str) -> str:
        return self._apt(["apt-cache", *args], f"apt-cache {' '.join(args)}")


def _missing_host_packages(packages: Sequence[str]) -> list[str]:
    missing = []
    for pkg in packages:
        if pkg == "qemu-system-x86":
            ok = _which(_QEMU) is not None
        elif pkg == "busybox-static":
            ok = _is_static_elf(Path("/bin/busybox"))
        elif pkg == "kmod":
            ok = _which("depmod") is not None
        elif pkg == "e2fsprogs":
            ok = _which("mke2fs") is not None and Path("/etc/mke2fs.conf").is_file()
        else:  # pragma: no cover - programming error
            raise AssertionError(pkg)
        if not ok:
            missing.append(pkg)
    return missing


def _ensure_host_packages(apt: _Apt, packages: Sequence[str]) -> None:
    missing = _missing_host_packages(packages)
    if not missing:
        return
    needs = ", ".join(f"{p} ({_HOST_PACKAGES[p]})" for p in missing)
    cmd = f"apt-get update && apt-get install -y --no-install-recommends {' '.join(missing)}"
    if not apt.root:
        raise VmUnavailableError(f"missing host packages: {needs}; install them as root with: {cmd}")
    if "busybox-static" in missing and Path("/bin/busybox").exists():
        apt._log("dax-vm: /bin/busybox is dynamically linked; busybox-static will replace it")
    apt.install(missing)
    still = _missing_host_packages(missing)
    if still:
        raise VmError(f"installed {' '.join(missing)} but still missing: {', '.join(still)}")


# --------------------------------------------------------------------------------------------
# kernel


def _pick_kernel_package(apt: _Apt) -> str:
    """The linux-image-6.1.0-N-amd64 that apt offers (what linux-image-amd64 depends on)."""
    try:
        out = apt.cache("depends", _KERNEL_META)
    except VmUnavailableError:
        out = ""
    for m in re.finditer(r"Depends:\s*(\S+)", out):
        if _KERNEL_PKG_RE.match(m.group(1)):
            return m.group(1)
    # Not Debian 12's metapackage (or no lists): take the highest ABI among the known names.
    names = apt.cache("pkgnames", "linux-image-6.1.0-").split()
    best = max((n for n in names if _KERNEL_PKG_RE.match(n)), default=None, key=_kernel_abi)
    if best is None:
        hint = "" if apt.root else " (not root, so apt-get update was not run)"
        raise VmUnavailableError(f"apt offers no linux-image-6.1.0-*-amd64 package{hint}")
    return best


def _kernel_abi(name: str) -> int:
    m = _KERNEL_PKG_RE.match(name)
    return int(m.group(1)) if m else -1


def _download_kernel(apt: _Apt, cache_dir: Path, log: Log) -> Path:
    if apt.root:
        apt.update()
    pkg = _pick_kernel_package(apt)
    log(f"dax-vm: apt-get download {pkg}")
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".download-") as tmp:
        try:
            _run(["apt-get", "download", pkg], cwd=Path(tmp), env=apt.env)
        except VmError as e:
            raise VmUnavailableError(
                f"apt-get download {pkg} failed (is the package registry reachable?): {e}"
            ) from e
        debs = sorted(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise VmError(f"apt-get download {pkg} left {len(debs)} .deb files")
        dest = cache_dir / debs[0].name
        os.replace(debs[0], dest)
    return dest


def _deb_field(deb: Path, field: str) -> str:
    return _run(["dpkg-deb", "-f", str(deb), field]).strip()


def _find_modules_dir(root: Path) -> Path:
    for base in (root / "lib" / "modules", root / "usr" / "lib" / "modules"):
        if base.is_dir():
            rels = [p for p in base.iterdir() if p.is_dir()]
            if len(rels) == 1:
                return rels[0]
    raise VmError(f"no single lib/modules/<release> directory in the unpacked kernel at {root}")


def _module_name(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def resolve_modules(modules_dep: str, builtin: str, wanted: Sequence[str]) -> tuple[list[str], list[str]]:
    """Load order for ``wanted`` from the text of modules.dep / modules.builtin.

    Returns (paths relative to the modules dir, in insmod order with dependencies first;
    names of wanted modules that are built into the kernel). Raises VmError for unknown names.
    """
    deps: dict[str, tuple[str, list[str]]] = {}
    for line in modules_dep.splitlines():
        if ":" not in line:
            continue
        path, _, rest = line.partition(":")
        deps[_module_name(path)] = (path.strip(), rest.split())
    builtin_names = {_module_name(p) for p in builtin.split()}
    order: list[str] = []
    seen: set[str] = set()
    skipped: list[str] = []

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in seen:
            return
        if name in chain:
            raise VmError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        path, dep_paths = deps[name]
        for dep in reversed(dep_paths):
            dep_name = _module_name(dep)
            if dep_name not in deps:
                raise VmError(f"modules.dep names {dep} (needed by {name}) but has no entry for it")
            visit(dep_name, (*chain, name))
        seen.add(name)
        order.append(path)

    for name in wanted:
        key = name.replace("-", "_")
        if key in deps:
            visit(key, ())
        elif key in builtin_names:
            skipped.append(name)
        else:
            raise VmError(f"kernel module {name} is neither in modules.dep nor built in")
    return order, skipped


def _module_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    if path.name.endswith(".zst"):
        raise VmError(f"{path}: zstd-compressed modules are not supported")
    return data


def _ldd_paths(binary: str) -> list[str]:
    """Absolute paths of the shared libraries (and loader) a dynamic binary needs."""
    out = _run(["ldd", binary])
    paths = []
    for line in out.splitlines():
        line = line.strip()
        if "not found" in line:
            raise VmError(f"ldd {binary}: {line}")
        target = line.split("=>", 1)[1].strip() if "=>" in line else line
        target = target.split(" (", 1)[0].strip()
        if target.startswith("/"):
            paths.append(target)
    return paths


# --------------------------------------------------------------------------------------------
# base initramfs


def _build_base_initramfs(root: Path, release: str, log: Log) -> bytes:
    moddir = _find_modules_dir(root)
    if not (moddir / "modules.dep").is_file():
        depmod = _which("depmod")
        if depmod is None:
            raise VmError("depmod not found (Debian package kmod)")
        base = root if moddir.parent == root / "lib" / "modules" else root / "usr"
        _run([depmod, "-b", str(base), moddir.name])
    builtin_file = moddir / "modules.builtin"
    order, builtin = resolve_modules(
        (moddir / "modules.dep").read_text(),
        builtin_file.read_text() if builtin_file.is_file() else "",
        KERNEL_MODULES,
    )
    if builtin:
        log(f"dax-vm: built into the kernel, not loaded: {', '.join(builtin)}")

    w = CpioWriter()
    for d in "bin sbin usr/bin usr/sbin usr/local/sbin proc sys dev tmp mnt root".split():
        w.add_dir(d)
    w.add_chardev("dev/console", 5, 1)
    w.add_chardev("dev/null", 1, 3, mode=0o666)
    w.add_file("bin/busybox", Path("/bin/busybox").read_bytes(), 0o755)
    w.add_symlink("bin/sh", "busybox")
    w.add_file("init", _init_script(), 0o755)

    guest_paths = []
    for rel in order:
        name = re.sub(r"\.(xz|gz|zst)$", "", rel.rsplit("/", 1)[-1])
        guest = f"lib/modules/{release}/{name}"
        w.add_file(guest, _module_bytes(moddir / rel))
        guest_paths.append("/" + guest)
    w.add_file("etc/faultlab/modules", ("\n".join(guest_paths) + "\n").encode())
    w.add_file("etc/faultlab/release", f"{release}\n".encode())

    mke2fs = _which("mke2fs")
    if mke2fs is None:
        raise VmError("mke2fs not found (Debian package e2fsprogs)")
    w.add_file("usr/local/sbin/mke2fs", Path(mke2fs).read_bytes(), 0o755)
    w.add_symlink("usr/local/sbin/mkfs.ext4", "mke2fs")
    for lib in _ldd_paths(mke2fs):
        if lib not in w:
            w.add_file(lib, Path(lib).resolve().read_bytes(), 0o755)
    w.add_file("etc/mke2fs.conf", Path("/etc/mke2fs.conf").read_bytes())
    log(f"dax-vm: initramfs with {len(order)} modules: {', '.join(_module_name(p) for p in order)}")
    return w.finish_gzip()


# --------------------------------------------------------------------------------------------
# setup


def _load_manifest(cache_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((cache_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def _assets_from_manifest(cache_dir: Path, m: dict[str, object], qemu: str) -> VmAssets:
    return VmAssets(
        cache_dir=cache_dir,
        kernel_package=str(m["kernel_package"]),
        kernel_version=str(m["kernel_version"]),
        kernel_release=str(m["kernel_release"]),
        vmlinuz=cache_dir / str(m["vmlinuz"]),
        initrd=cache_dir / str(m["initrd"]),
        qemu=Path(qemu),
    )


def setup(cache_dir: Path | None = None, log: Log = print, *, force: bool = False) -> VmAssets:
    """Get the host tools, the kernel and the base initramfs; cached, so cheap after the first call.

    Steps, each skipped when its result is already cached and valid:
    1. host packages qemu-system-x86, busybox-static, kmod, e2fsprogs: installed with apt-get
       (after one ``apt-get update``) when missing and running as root, otherwise
       :class:`VmUnavailableError` naming them and the command to run;
    2. the kernel package apt offers (``linux-image-6.1.0-N-amd64``, what ``linux-image-amd64``
       depends on) with ``apt-get download``, unpacked with ``dpkg-deb -x`` inside the cache
       (never installed on the host);
    3. the base initramfs (busybox, the DAX/ext4 modules, mke2fs, the guest /init).

    ``force=True`` ignores the cache: asks apt again which kernel to use (so a newer
    ``linux-image-6.1.0-N-amd64`` replaces the old one), downloads it and rebuilds the rest.
    """
    cache_dir = (cache_dir or default_cache_dir()).expanduser().resolve()
    t0 = time.monotonic()
    with _locked(cache_dir):
        manifest = None if force else _load_manifest(cache_dir)
        key = _initramfs_key()
        apt = _Apt(log)
        kernel_ok = manifest is not None and all(
            (cache_dir / str(manifest.get(k, ""))).is_file() for k in ("deb", "vmlinuz")
        )
        initrd_ok = (
            kernel_ok
            and manifest is not None
            and manifest.get("initramfs_key") == key
            and (cache_dir / str(manifest.get("initrd", ""))).is_file()
        )
        needed = ["qemu-system-x86"]
        if not initrd_ok:
            needed += ["busybox-static", "kmod", "e2fsprogs"]
        _ensure_host_packages(apt, needed)
        qemu = _which(_QEMU)
        if qemu is None:
            raise VmError(f"{_QEMU} not found although qemu-system-x86 is installed")
        if manifest is not None and kernel_ok and initrd_ok:
            log(f"dax-vm: cached in {cache_dir} (kernel {manifest['kernel_release']})")
            return _assets_from_manifest(cache_dir, manifest, qemu)

        deb: Path | None = None
        if manifest is not None and kernel_ok:
            deb = cache_dir / str(manifest["deb"])
        else:
            debs = sorted(cache_dir.glob("linux-image-6.1.0-*-amd64_*.deb"), key=lambda p: p.stat().st_mtime)
            deb = debs[-1] if debs and not force else None
        if deb is None:
            deb = _download_kernel(apt, cache_dir, log)
        for old in cache_dir.glob("linux-image-*.deb"):
            if old != deb:
                old.unlink()
        pkg, version = _deb_field(deb, "Package"), _deb_field(deb, "Version")

        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".unpack-") as tmp:
            root = Path(tmp)
            log(f"dax-vm: dpkg-deb -x {deb.name}")
            _run(["dpkg-deb", "-x", str(deb), str(root)])
            release = _find_modules_dir(root).name
            vmlinuz_src = root / "boot" / f"vmlinuz-{release}"
            if not vmlinuz_src.is_file():
                raise VmError(f"{deb.name} has no boot/vmlinuz-{release}")
            vmlinuz = f"vmlinuz-{release}"
            shutil.copyfile(vmlinuz_src, cache_dir / vmlinuz)
            config_src = root / "boot" / f"config-{release}"
            if config_src.is_file():
                shutil.copyfile(config_src, cache_dir / f"config-{release}")
            log("dax-vm: building the base initramfs")
            _write_atomic(cache_dir / "initramfs-base.cpio.gz", _build_base_initramfs(root, release, log))

        manifest = {
            "format": _FORMAT,
            "kernel_package": pkg,
            "kernel_version": version,
            "kernel_release": release,
            "deb": deb.name,
            "vmlinuz": vmlinuz,
            "initrd": "initramfs-base.cpio.gz",
            "initramfs_key": key,
            "modules": list(KERNEL_MODULES),
        }
        _write_atomic(cache_dir / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
        log(f"dax-vm: ready in {time.monotonic() - t0:.1f}s: {pkg} {version} in {cache_dir}")
        return _assets_from_manifest(cache_dir, manifest, qemu)


# --------------------------------------------------------------------------------------------
# running jobs


def prepare_job_input(name: str, text: str) -> str:
    """The stdin the probe gets for job ``name``.

    If the first line that is neither blank nor a ``#`` comment is a ``dir <path>`` directive
    (the caller's host-side working directory), it is replaced by ``dir /mnt/<name>``: the
    directory the guest creates for the job and starts the probe in. Nothing is inserted when
    there is no such line. A final newline is added if missing.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if _DIR_LINE_RE.match(line.strip()):
            lines[i] = f"dir /mnt/{name}"
        break
    return "\n".join(lines) + "\n" if lines else ""


def _jobs_archive(probe: bytes, jobs: Sequence[tuple[str, str]], nonce: str) -> bytes:
    w = CpioWriter()
    w.add_file("probe", probe, 0o755)
    w.add_file("jobs/nonce", f"{nonce}\n".encode())
    w.add_file("jobs/list", "".join(f"{name}\n" for name, _ in jobs).encode())
    for name, text in jobs:
        w.add_file(f"jobs/{name}.in", prepare_job_input(name, text).encode())
    return w.finish_gzip()


def _validate_jobs(jobs: Sequence[tuple[str, str]]) -> None:
    if not jobs:
        raise ValueError("run_jobs needs at least one job")
    seen: set[str] = set()
    for job in jobs:
        if not (
            isinstance(job, tuple) and len(job) == 2 and isinstance(job[0], str) and isinstance(job[1], str)
        ):
            raise ValueError(f"a job must be a (name, stdin_text) pair of strings, got {job!r}")
        name = job[0]
        if not _JOB_NAME_RE.match(name) or name in (".", ".."):
            raise ValueError(f"job name {name!r} must match {_JOB_NAME_RE.pattern}")
        if name in seen:
            raise ValueError(f"duplicate job name {name!r}")
        seen.add(name)


@dataclass
class ConsoleReport:
    """What the guest said on the console, parsed (see :func:`parse_console`)."""

    lines: list[str]
    kernel_release: str | None
    ready: str | None  # the /mnt line of /proc/mounts
    failure: str | None
    done: bool
    running: str | None  # last job started
    outputs: dict[str, JobOutput]


def parse_console(text: str, nonce: str) -> ConsoleReport:
    """Parse the serial console output of one boot.

    Carriage returns are dropped (the tty turns ``\\n`` into ``\\r\\n``); markers are found
    anywhere in a line, so a kernel message glued in front of one does not hide it. A block's
    content is everything between its BEGIN and END lines, minus the one newline the guest adds.
    """
    lines = text.replace("\r", "").split("\n")
    marker = re.compile(r"@@FLVM:" + re.escape(nonce) + r":([A-Z]+)(?::(.*?))?@@")
    report = ConsoleReport(lines, None, None, None, False, None, {})
    streams: dict[tuple[str, str], str] = {}
    block: tuple[str, str] | None = None
    buf: list[str] = []
    for line in lines:
        m = marker.search(line)
        if block is not None:
            if m and m.group(1) == "END" and m.group(2) == f"{block[0]}:{block[1]}":
                # The guest prints one newline after the content, so each content line,
                # the last one included, is terminated and the marker starts a line of its own.
                streams[block] = "\n".join(buf)
                block, buf = None, []
            else:
                buf.append(line)
            continue
        if not m:
            continue
        kind, arg = m.group(1), m.group(2) or ""
        if kind == "INIT":
            report.kernel_release = arg
        elif kind == "READY":
            report.ready = arg
        elif kind == "FAIL":
            report.failure = arg
        elif kind == "RUN":
            report.running = arg
        elif kind == "BEGIN":
            name, _, stream = arg.rpartition(":")
            block, buf = (name, stream), []
        elif kind == "EXIT":
            name, _, code = arg.rpartition(":")
            try:
                rc = int(code)
            except ValueError:
                continue
            report.outputs[name] = JobOutput(
                streams.get((name, "stdout"), ""), rc, streams.get((name, "stderr"), "")
            )
        elif kind == "DONE":
            report.done = True
    return report


_ANSI_RE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|[@-Z\\-_])")


def _console_tail(lines: Sequence[str], n: int = _TAIL_LINES) -> list[str]:
    """The last ``n`` non-blank console lines, without terminal escape sequences."""
    clean = (_ANSI_RE.sub("", ln).rstrip() for ln in lines)
    return [ln for ln in clean if ln.strip()][-n:]


def qemu_command(assets: VmAssets, initrd: Path, smp: int = 1) -> list[str]:
    """The qemu command line for one boot with the given (combined) initrd and ``smp`` CPUs.

    With more than one CPU qemu runs one host thread per guest CPU (multi-threaded TCG), so the
    guest's threads really run at the same time."""
    accel = "tcg,thread=multi" if smp > 1 else "tcg"
    return [
        str(assets.qemu),
        "-accel", accel,
        "-cpu", "max",
        "-smp", str(smp),
        "-m", "512M",
        "-nographic",
        "-no-reboot",
        "-kernel", str(assets.vmlinuz),
        "-initrd", str(initrd),
        "-append", _APPEND,
    ]  # fmt: skip


def run_jobs(
    assets: VmAssets,
    probe_static: Path,
    jobs: list[tuple[str, str]],
    timeout: float = 300,
    *,
    log: Log | None = None,
    smp: int = 1,
) -> dict[str, JobOutput]:
    """Boot the guest once and run ``probe_static < jobs/<name>.in`` for every job, in order.

    The guest has ``smp`` CPUs (1 by default; the concurrent oracle asks for 2).
    Each job runs with its working directory ``/mnt/<name>`` on the DAX-mounted ext4 (created
    fresh; all jobs share the one filesystem). A leading ``dir <path>`` line in the job text is
    rewritten to ``dir /mnt/<name>`` (see :func:`prepare_job_input`). The result maps each job
    name to its stdout, a :class:`JobOutput` (a ``str``) that also carries ``exit_code`` and
    ``stderr``. Raises :class:`VmTimeoutError` if the guest is still running after ``timeout``
    seconds, :class:`VmBootError` if it fails before or while running the jobs (with the last
    console lines); the whole console is kept in ``<cache>/last-console.log``.
    """
    _validate_jobs(jobs)
    if not 1 <= smp <= 64:
        raise ValueError(f"smp must be 1..64 CPUs, not {smp}")
    probe_static = Path(probe_static)
    if not probe_static.is_file():
        raise VmError(f"probe program not found: {probe_static}")
    interp = elf_interpreter(probe_static)
    if interp is not None:
        raise VmError(
            f"{probe_static} is dynamically linked (interpreter {interp}); build it with gcc -static"
        )
    for path in (assets.vmlinuz, assets.initrd, assets.qemu):
        if not path.is_file():
            raise VmError(f"{path} is missing: run faultlab.oracle.vm.setup() again")

    nonce = secrets.token_hex(6)
    base = assets.initrd.read_bytes()
    initrd_data = base + _pad(len(base)) + _jobs_archive(probe_static.read_bytes(), jobs, nonce)
    console_log = assets.cache_dir / "last-console.log"
    with tempfile.TemporaryDirectory(prefix="faultlab-vm-") as tmp:
        initrd = Path(tmp) / "initrd.cpio.gz"
        initrd.write_bytes(initrd_data)
        argv = qemu_command(assets, initrd, smp)
        t0 = time.monotonic()
        timed_out = False
        try:
            proc = subprocess.run(
                argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout if isinstance(e.stdout, bytes) else b""
            err = e.stderr if isinstance(e.stderr, bytes) else b""
            rc, timed_out = None, True
        except OSError as e:
            raise VmError(f"cannot run {argv[0]}: {e}") from e
        elapsed = time.monotonic() - t0
    text = out.decode("utf-8", errors="replace")
    with contextlib.suppress(OSError):
        _write_atomic(console_log, out)
    report = parse_console(text, nonce)
    tail = _console_tail(report.lines)
    if log is not None:
        log(f"dax-vm: boot with {len(jobs)} job(s) took {elapsed:.1f}s")

    def boot_error(message: str, cls: type[VmBootError] = VmBootError) -> VmBootError:
        qerr = _tail(err.decode("utf-8", errors="replace"), 5)
        if qerr:
            message += f"\nqemu stderr:\n{qerr}"
        return cls(message, tail, console_log)

    where = (
        f"while running job {report.running!r}" if report.running and report.running not in report.outputs
        else "after the filesystem was ready" if report.ready is not None
        else "during guest setup" if report.kernel_release is not None
        else "before the guest's /init started (kernel did not boot or the initramfs was not loaded)"
    )  # fmt: skip
    if report.failure is not None:
        raise boot_error(f"guest setup failed: {report.failure}")
    if timed_out:
        raise boot_error(f"the DAX VM did not finish within {timeout:g}s ({where})", VmTimeoutError)
    missing = [name for name, _ in jobs if name not in report.outputs]
    if missing or not report.done:
        raise boot_error(
            f"the DAX VM stopped {where} (qemu exit status {rc}); "
            f"jobs without results: {', '.join(missing) or 'none'}"
        )
    return {name: report.outputs[name] for name, _ in jobs}


def _pad(n: int) -> bytes:
    """Zero bytes that bring an archive to a 4-byte boundary before the next one is appended."""
    return b"\0" * (-n % 4)


# --------------------------------------------------------------------------------------------
# command line: python -m faultlab.oracle.vm


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faultlab.oracle.vm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_setup = sub.add_parser("setup", help="get and cache the host tools, kernel and base initramfs")
    p_setup.add_argument("--cache-dir", type=Path, default=None)
    p_setup.add_argument("--force", action="store_true", help="rebuild everything but the downloaded .deb")
    p_run = sub.add_parser("run", help="boot once and run a static probe on job files (name = file stem)")
    p_run.add_argument("--cache-dir", type=Path, default=None)
    p_run.add_argument("--timeout", type=float, default=300)
    p_run.add_argument("probe", type=Path)
    p_run.add_argument("job_files", type=Path, nargs="+")
    args = parser.parse_args(argv)
    try:
        assets = setup(
            args.cache_dir, log=lambda s: print(s, file=sys.stderr), force=getattr(args, "force", False)
        )
        if args.cmd == "setup":
            print(json.dumps({k: str(v) for k, v in assets.__dict__.items()}, indent=2))
            return 0
        jobs = [(p.stem, p.read_text()) for p in args.job_files]
        results = run_jobs(assets, args.probe, jobs, args.timeout, log=lambda s: print(s, file=sys.stderr))
    except (VmError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, res in results.items():
        print(f"== {name} (exit {res.exit_code})")
        print(res, end="")
        if res.stderr:
            print(f"-- stderr\n{res.stderr}", end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
