"""MAP_SYNC on the DAX VM's 6.1 kernel against the model (``vm``: boots the guest, about 20 s).

The model says (tests/test_map_sync.py): mmap(MAP_SHARED_VALIDATE|MAP_SYNC) succeeds on a DAX file
and is EOPNOTSUPP on a file that is not DAX (here the guest's root file system, whose files have no
``mmap_supported_flags``, as tmpfs in the model); the first store into a hole of a MAP_SYNC mapping
takes one minor fault (``dax_finish_sync_fault``'s result replaces the fault's VM_FAULT_MAJOR),
the same store without MAP_SYNC one major fault."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from faultlab.designs import get_design
from faultlab.execution import ModelExecution
from faultlab.oracle import vm
from faultlab.scenario import ScenarioBuilder
from faultlab.sched import SequentialChooser

PROGRAM_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

static const char *errname(int e)
{
    return e == EOPNOTSUPP ? "EOPNOTSUPP" : e == EINVAL ? "EINVAL" : strerror(e);
}

/* map a one-page file (written, or a hole) and store into it once; print what mmap returned and
   the faults the store took */
static void one(const char *label, const char *name, int hole, int flags)
{
    char buf[4096];
    memset(buf, 'A', sizeof buf);
    int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || (hole ? ftruncate(fd, 4096) : pwrite(fd, buf, 4096, 0) != 4096) || fsync(fd)) {
        printf("%s setup-failed %s\n", label, strerror(errno));
        return;
    }
    char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, flags, fd, 0);
    if (p == MAP_FAILED) {
        printf("%s mmap=%s\n", label, errname(errno));
        close(fd);
        return;
    }
    struct rusage a, b;
    getrusage(RUSAGE_SELF, &a);
    p[8] = 'B';
    getrusage(RUSAGE_SELF, &b);
    printf("%s mmap=ok minflt=%ld majflt=%ld\n", label, b.ru_minflt - a.ru_minflt, b.ru_majflt - a.ru_majflt);
    munmap(p, 4096);
    close(fd);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    one("dax-sync", "f", 0, MAP_SHARED_VALIDATE | MAP_SYNC);
    one("nondax-sync", "/nondax", 0, MAP_SHARED_VALIDATE | MAP_SYNC);
    one("hole-sync", "h1", 1, MAP_SHARED_VALIDATE | MAP_SYNC);
    one("hole-shared", "h2", 1, MAP_SHARED);
    return 0;
}
"""


def model(fs: str, fill: str, sync: bool) -> str:
    flag = " sync" if sync else ""
    scenario = (ScenarioBuilder("vm", fs=fs).file("f", size="1p", fill=fill)
                .thread("t", f"m = mmap f 0 1p shared rw{flag}", "store m 8 B").build())
    r = ModelExecution(scenario, get_design("v6.1")).run(SequentialChooser())
    mmap, store = r.record.ops
    if str(mmap.outcome) != "ok":
        return f"mmap={mmap.outcome}"
    return f"mmap=ok minflt={store.minflt} majflt={store.majflt}"


def test_the_model_side_of_the_comparison() -> None:
    assert model("dax", "A", True) == "mmap=ok minflt=1 majflt=0"
    assert model("tmpfs", "A", True) == "mmap=EOPNOTSUPP"
    assert model("dax", "hole", True) == "mmap=ok minflt=1 majflt=0"
    assert model("dax", "hole", False) == "mmap=ok minflt=0 majflt=1"


@pytest.mark.vm
def test_map_sync_on_the_dax_vm_as_the_model_says(assets: vm.VmAssets, tmp_path: Path) -> None:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: it is needed to build the static test program (apt-get install gcc)")
    src, exe = tmp_path / "mapsync.c", tmp_path / "mapsync"
    src.write_text(PROGRAM_C)
    subprocess.run([gcc, "-static", "-O2", "-Wall", "-o", str(exe), str(src)], check=True)
    out = vm.run_jobs(assets, exe, [("mapsync", "")], timeout=300, log=print)["mapsync"]
    got = dict(line.split(" ", 1) for line in out.splitlines())
    assert got == {
        "dax-sync": model("dax", "A", True),
        "nondax-sync": model("tmpfs", "A", True),
        "hole-sync": model("dax", "hole", True),
        "hole-shared": model("dax", "hole", False),
    }, out
