"""The DAX VM runner (faultlab.oracle.vm).

Most tests here are fast and need nothing but Python. The ones marked ``vm`` boot a qemu guest
(about 15-20 s, plus a one-time setup that installs Debian packages and downloads a kernel);
deselect them with ``-m "not vm"``. They skip, with the reason, when the VM cannot be obtained
here (not root and packages missing, no package registry, no gcc for the test program).
"""

from __future__ import annotations

import gzip
import pickle
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from faultlab.oracle import vm
from faultlab.oracle.vm_cpio import CpioWriter, read_newc

# ---------------------------------------------------------------------------------------------
# a tiny static test program standing in for the real probe

TEST_PROBE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

static int make_file(const char *name, char fill)
{
    char buf[4096];
    memset(buf, fill, sizeof buf);
    int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || pwrite(fd, buf, sizeof buf, 0) != (ssize_t)sizeof buf || fsync(fd) != 0) {
        perror(name);
        exit(90);
    }
    return fd;
}

static void store(const char *name, int flags, const char *label)
{
    int fd = make_file(name, 'A');
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(91);
    }
    p[0] = 'B';
    char mem = p[0], file = 0;
    munmap(p, 4096);
    if (pread(fd, &file, 1, 0) != 1) {
        perror("pread");
        exit(92);
    }
    printf("%s mem=%c file=%c\n", label, mem, file);
    close(fd);
}

int main(void)
{
    char line[512], arg[480], cwd[512];
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = 0;
        arg[0] = 0;
        sscanf(line, "%*s %479s", arg);
        if (!strncmp(line, "dir", 3)) {
            printf("dir-line %s\n", arg);
        } else if (!strncmp(line, "cwd", 3)) {
            printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "?");
        } else if (!strncmp(line, "dax", 3)) {
            close(make_file(arg, 'A'));
            struct statx stx;
            if (statx(AT_FDCWD, arg, 0, STATX_BASIC_STATS, &stx) != 0) {
                perror("statx");
                return 93;
            }
            printf("dax %s attributes=0x%llx mask=0x%llx\n",
                   (stx.stx_attributes & STATX_ATTR_DAX) ? "active" : "inactive",
                   (unsigned long long)stx.stx_attributes,
                   (unsigned long long)stx.stx_attributes_mask);
        } else if (!strncmp(line, "private", 7)) {
            store(arg, MAP_PRIVATE, "private");
        } else if (!strncmp(line, "shared", 6)) {
            store(arg, MAP_SHARED, "shared");
        } else if (!strncmp(line, "exit", 4)) {
            fprintf(stderr, "bye\n");
            return atoi(arg);
        } else {
            printf("unknown %s\n", line);
        }
    }
    return 0;
}
"""


def build_test_probe(dest_dir: Path) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: it is needed to build the static test program (apt-get install gcc)")
    src = dest_dir / "testprobe.c"
    src.write_text(TEST_PROBE_C)
    exe = dest_dir / "testprobe"
    subprocess.run([gcc, "-static", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    return exe


# ---------------------------------------------------------------------------------------------
# fast tests


def test_cpio_roundtrip_and_parents() -> None:
    w = CpioWriter()
    w.add_file("/a/b/c.txt", b"hello", 0o600)
    w.add_symlink("bin/sh", "busybox")
    w.add_chardev("dev/console", 5, 1)
    w.add_dir("a")  # already there: ignored
    with pytest.raises(ValueError, match="duplicate"):
        w.add_file("a/b/c.txt", b"x")
    with pytest.raises(ValueError, match=r"\.\."):
        w.add_file("../etc/passwd", b"x")
    data = w.finish()
    assert len(data) % 4 == 0
    entries = {name: (mode, body) for name, mode, body in read_newc(data)}
    assert list(entries) == ["a", "a/b", "a/b/c.txt", "bin", "bin/sh", "dev", "dev/console"]
    assert entries["a/b/c.txt"] == (stat.S_IFREG | 0o600, b"hello")
    assert entries["bin/sh"] == (stat.S_IFLNK | 0o777, b"busybox")
    assert stat.S_ISCHR(entries["dev/console"][0])
    assert stat.S_ISDIR(entries["a/b"][0])
    # reproducible
    w2 = CpioWriter()
    w2.add_file("x", b"1")
    w3 = CpioWriter()
    w3.add_file("x", b"1")
    assert w2.finish_gzip() == w3.finish_gzip()
    assert gzip.decompress(w2.finish_gzip()) == w2.finish()


def test_prepare_job_input_rewrites_only_a_leading_dir_line() -> None:
    assert vm.prepare_job_input("j1", "dir /tmp/host/xyz\nopen f\n") == "dir /mnt/j1\nopen f\n"
    assert vm.prepare_job_input("j1", "\n  dir /x\nop") == "\ndir /mnt/j1\nop\n"
    assert vm.prepare_job_input("j1", "# c\ndir /x\n") == "# c\ndir /mnt/j1\n"
    assert vm.prepare_job_input("j1", "open f\ndir /x\n") == "open f\ndir /x\n"
    assert vm.prepare_job_input("j1", "directory x\n") == "directory x\n"
    assert vm.prepare_job_input("j1", "") == ""


def test_job_validation() -> None:
    with pytest.raises(ValueError, match="at least one"):
        vm._validate_jobs([])
    with pytest.raises(ValueError, match="duplicate"):
        vm._validate_jobs([("a", ""), ("a", "")])
    for bad in ("", "a/b", "a b", "-x", "x:y", "é"):
        with pytest.raises(ValueError, match="must match"):
            vm._validate_jobs([(bad, "")])
    vm._validate_jobs([("a.1", ""), ("B_2-c", "")])


def test_parse_console_handles_cr_noise_and_missing_newline() -> None:
    n = "abc123"
    console = (
        "[    0.000000] Linux version 6.1.0\r\n"
        f"@@FLVM:{n}:INIT:6.1.0-56-amd64@@\r\n"
        f"@@FLVM:{n}:READY:/dev/pmem0 /mnt ext4 rw,relatime,dax=always 0 0@@\r\n"
        f"@@FLVM:{n}:RUN:one@@\r\n"
        f"[    5.1] some kernel line @@FLVM:{n}:BEGIN:one:stdout@@\r\n"
        "line 1\r\nline 2\r\n\r\n"
        f"@@FLVM:{n}:END:one:stdout@@\r\n"
        f"@@FLVM:{n}:BEGIN:one:stderr@@\r\n\r\n@@FLVM:{n}:END:one:stderr@@\r\n"
        f"@@FLVM:{n}:EXIT:one:0@@\r\n"
        f"@@FLVM:{n}:RUN:two@@\r\n"
        f"@@FLVM:{n}:BEGIN:two:stdout@@\r\nno newline\r\n@@FLVM:{n}:END:two:stdout@@\r\n"
        f"@@FLVM:{n}:BEGIN:two:stderr@@\r\noops\r\n\r\n@@FLVM:{n}:END:two:stderr@@\r\n"
        f"@@FLVM:{n}:EXIT:two:139@@\r\n"
        "@@FLVM:othernonce:EXIT:three:0@@\r\n"
        f"@@FLVM:{n}:DONE@@\r\n"
        "[    6.0] reboot: Power down\r\n"
    )
    r = vm.parse_console(console, n)
    assert r.kernel_release == "6.1.0-56-amd64"
    assert r.ready is not None and "dax=always" in r.ready
    assert r.done and r.failure is None
    assert set(r.outputs) == {"one", "two"}
    assert r.outputs["one"] == "line 1\nline 2\n"
    assert r.outputs["one"].exit_code == 0 and r.outputs["one"].stderr == ""
    assert r.outputs["two"] == "no newline"
    assert r.outputs["two"].exit_code == 139 and r.outputs["two"].stderr == "oops\n"
    assert pickle.loads(pickle.dumps(r.outputs["two"])).exit_code == 139


def test_parse_console_failure() -> None:
    r = vm.parse_console("@@FLVM:n1:INIT:6.1@@\n@@FLVM:n1:FAIL:insmod /lib/x.ko@@\n", "n1")
    assert r.failure == "insmod /lib/x.ko" and not r.done and not r.outputs


def test_resolve_modules_orders_dependencies_first() -> None:
    dep = (
        "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n"
        "kernel/fs/jbd2/jbd2.ko:\n"
        "kernel/fs/mbcache.ko:\n"
        "kernel/lib/crc16.ko:\n"
        "nvdimm/nd_pmem.ko.xz: nvdimm/nd_btt.ko nvdimm/libnvdimm.ko\n"
        "nvdimm/nd_btt.ko: nvdimm/libnvdimm.ko\n"
        "nvdimm/libnvdimm.ko:\n"
    )
    order, builtin = vm.resolve_modules(
        dep, "kernel/crypto/crc32c_generic.ko\n", ["nd_pmem", "crc32c_generic", "ext4"]
    )
    names = [p.rsplit("/", 1)[1] for p in order]
    assert names == [
        "libnvdimm.ko",
        "nd_btt.ko",
        "nd_pmem.ko.xz",
        "jbd2.ko",
        "mbcache.ko",
        "crc16.ko",
        "ext4.ko",
    ]
    assert builtin == ["crc32c_generic"]
    with pytest.raises(vm.VmError, match="neither"):
        vm.resolve_modules(dep, "", ["xfs"])


def test_qemu_command_matches_the_recipe(tmp_path: Path) -> None:
    assets = vm.VmAssets(
        tmp_path, "pkg", "1", "6.1.0-1-amd64", tmp_path / "vmlinuz", tmp_path / "i", Path("/q")
    )
    argv = vm.qemu_command(assets, tmp_path / "combined")
    assert argv[0] == "/q"
    assert " ".join(argv[1:]) == (
        f"-accel tcg -cpu max -smp 1 -m 512M -nographic -no-reboot -kernel {tmp_path}/vmlinuz "
        f"-initrd {tmp_path}/combined -append console=ttyS0 memmap=64M!256M panic=-1 loglevel=4 quiet"
    )

    two = vm.qemu_command(assets, tmp_path / "combined", smp=2)
    assert two[1:3] == ["-accel", "tcg,thread=multi"] and two[5:7] == ["-smp", "2"]
    assert two[7:] == argv[7:]


def test_run_jobs_rejects_a_bad_cpu_count(tmp_path: Path) -> None:
    assets = vm.VmAssets(tmp_path, "pkg", "1", "r", tmp_path / "vmlinuz", tmp_path / "i", Path("/q"))
    with pytest.raises(ValueError, match="smp"):
        vm.run_jobs(assets, Path("/bin/ls"), [("a", "")], smp=0)


def test_run_jobs_rejects_dynamic_programs(tmp_path: Path) -> None:
    assets = vm.VmAssets(tmp_path, "pkg", "1", "r", tmp_path / "vmlinuz", tmp_path / "i", Path("/q"))
    with pytest.raises(vm.VmError, match="dynamically linked"):
        vm.run_jobs(assets, Path("/bin/ls"), [("a", "")])
    notelf = tmp_path / "script"
    notelf.write_text("#!/bin/sh\n")
    with pytest.raises(vm.VmError, match="not an ELF"):
        vm.run_jobs(assets, notelf, [("a", "")])


def test_setup_without_root_names_missing_packages(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(vm.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(vm, "_missing_host_packages", lambda pkgs: [p for p in pkgs if p != "kmod"])
    with pytest.raises(vm.VmUnavailableError) as e:
        vm.setup(tmp_path / "cache", log=lambda s: None)
    msg = str(e.value)
    assert "qemu-system-x86" in msg and "busybox-static" in msg and "e2fsprogs" in msg
    assert "apt-get install -y --no-install-recommends" in msg


# ---------------------------------------------------------------------------------------------
# the real VM


@pytest.mark.vm
def test_vm_dax_private_and_shared_stores(assets: vm.VmAssets, tmp_path: Path) -> None:
    probe = build_test_probe(tmp_path)
    jobs = [
        ("statx", "dir /tmp/host-side/statx\ncwd\ndax f\n"),
        ("private", "dir /tmp/host-side/private\ncwd\nprivate f\n"),
        ("shared", "cwd\nshared f\nexit 3\n"),
    ]
    out = vm.run_jobs(assets, probe, jobs, timeout=300, log=print)
    assert list(out) == ["statx", "private", "shared"]

    statx = out["statx"].splitlines()
    assert statx[:2] == ["dir-line /mnt/statx", "cwd /mnt/statx"], out["statx"]
    assert statx[2].startswith("dax active "), out["statx"]
    assert out["statx"].exit_code == 0 and out["statx"].stderr == ""

    # a private store lands in an anonymous copy: memory changes, the file does not
    assert out["private"].splitlines() == [
        "dir-line /mnt/private",
        "cwd /mnt/private",
        "private mem=B file=A",
    ]
    # a shared store goes straight to the (pmem) file
    assert out["shared"] == "cwd /mnt/shared\nshared mem=B file=B\n"
    assert out["shared"].exit_code == 3 and out["shared"].stderr == "bye\n"
