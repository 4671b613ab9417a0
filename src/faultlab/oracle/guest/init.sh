#!/bin/busybox sh
# /init of the faultlab DAX oracle guest (PID 1 inside qemu).
#
# The base initramfs (built once by faultlab.oracle.vm.setup) provides:
#   /bin/busybox                         static busybox; applets are linked below
#   /etc/faultlab/modules                kernel module files to insmod, one per line, in load order
#   /usr/local/sbin/mke2fs, mkfs.ext4    host e2fsprogs with the shared libraries it needs
# Each run appends a second archive (faultlab.oracle.vm.run_jobs) with:
#   /probe                               the static program under test
#   /jobs/nonce                          a per-run word that makes the console markers unique
#   /jobs/list                           job names, one per line, in run order
#   /jobs/<name>.in                      standard input of job <name>
#
# Everything the host parses is a line of the form @@FLVM:<nonce>:<what>@@ on the serial console.
# Results are captured to files first and printed between BEGIN/END markers after each job, with
# the console log level lowered meanwhile so kernel messages cannot land inside a block.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /mnt
/bin/busybox --install -s
export PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu:/lib64

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

NONCE=$(cat /jobs/nonce 2>/dev/null || echo none)

say() {
    echo "@@FLVM:$NONCE:$*@@"
}

halt() {
    sync
    # A moment for the UART to drain before the machine disappears (no loss was seen without it).
    sleep 0.1
    poweroff -f
    # poweroff should not return; if it does, panic (panic=-1 + -no-reboot ends qemu).
    exit 1
}

fail() {
    say "FAIL:$*"
    halt
}

say "INIT:$(uname -r)"

[ -f /jobs/list ] || fail "no /jobs/list in the initramfs (was the jobs archive appended?)"
[ -x /probe ] || fail "no executable /probe in the initramfs"

while read -r mod; do
    [ -n "$mod" ] || continue
    insmod "$mod" || fail "insmod $mod"
done < /etc/faultlab/modules

tries=0
while [ ! -b /dev/pmem0 ]; do
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || fail "no /dev/pmem0 after loading the nvdimm modules (is memmap=64M!256M on the kernel command line?)"
    sleep 0.1 2>/dev/null || sleep 1
done

# stride/stripe_width of 512 blocks: mballoc aligns 2 MiB allocations to 2 MiB (PMD faults need it)
mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=512 /dev/pmem0 || fail "mkfs.ext4 -q -F -b 4096 -E stride=512,stripe_width=512 /dev/pmem0"
mount -t ext4 -o dax /dev/pmem0 /mnt || fail "mount -t ext4 -o dax /dev/pmem0 /mnt"
mnt=$(grep ' /mnt ' /proc/mounts)
case "$mnt" in
    *dax*) ;;
    *) fail "no dax in the /mnt mount options: $mnt" ;;
esac
say "READY:$mnt"

while read -r name; do
    [ -n "$name" ] || continue
    say "RUN:$name"
    mkdir -p "/mnt/$name" || fail "mkdir /mnt/$name"
    (cd "/mnt/$name" && exec /probe < "/jobs/$name.in" > /tmp/job.out 2> /tmp/job.err)
    rc=$?
    echo 1 > /proc/sys/kernel/printk
    say "BEGIN:$name:stdout"
    cat /tmp/job.out
    echo
    say "END:$name:stdout"
    say "BEGIN:$name:stderr"
    cat /tmp/job.err
    echo
    say "END:$name:stderr"
    say "EXIT:$name:$rc"
    echo 4 > /proc/sys/kernel/printk
done < /jobs/list

say "DONE"
halt
