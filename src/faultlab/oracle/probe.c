/*
 * faultlab probe: run one scenario against the real kernel and report what a program observes:
 * sequentially, op outcomes, minor/major fault counts per op and final file contents; or, in the
 * concurrent mode, the distinct outcomes of many runs of its threads racing for real.
 *
 * C11 + libc (and pthreads) only; builds with `cc -std=c11 -O2 -Wall -Wextra -Werror -pthread` and
 * with `-static`.
 *
 * INPUT (stdin), one directive per line; blank lines and lines starting with '#' are ignored.
 * Numbers are unsigned decimal. <hex> is a string of hex byte pairs ("41", "4142"), or "-" for
 * no bytes. Names (files, mapping variables) are 1..63 characters of [A-Za-z0-9_.-].
 *
 *   dir <path>                          working directory (must exist); required, first
 *   file <name> <size> fill <hex>       create <dir>/<name>, write <size> bytes of the repeated
 *                                       pattern (byte at offset o = pattern[o % len]) with write()
 *                                       in 4 KiB chunks (so ext4 builds order-0 folios)
 *   file <name> <size> zero             same, writing zeros
 *   file <name> <size> hole             ftruncate() only: no blocks, nothing in the page cache
 *   require-dax                         statx() every file created so far; if STATX_ATTR_DAX is
 *                                       not set on one, print `error dax-not-active <name>` and
 *                                       exit 3; otherwise print `dax active`
 *   op <i> mmap <var> <file> <offset> <length> private|shared ro|rw [unaligned | at <0xaddr>]
 *                                       placement: see MAPPINGS below
 *   op <i> munmap <var>
 *   op <i> load <var> <offset> <length>     read bytes through the mapping
 *   op <i> store <var> <offset> <hex>       write bytes through the mapping
 *   op <i> read <file> <offset> <length>    pread()
 *   op <i> write <file> <offset> <hex>      pwrite() in chunks of at most 4 KiB
 *   op <i> truncate <file> <size>           ftruncate()
 *   op <i> msync <var>                      msync(MS_SYNC) over the mapping
 *   op <i> fsync <file>                     fsync()
 *   op <i> madvise <var> dontneed           madvise(MADV_DONTNEED) over the mapping
 *   op <i> mprotect <var> ro|rw             mprotect(PROT_READ[|PROT_WRITE]) over the mapping
 *   op <i> fallocate <file> punch <offset> <length>
 *                                           fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE)
 *   op <i> fork <t>                         fork(); thread <t>'s ops run in the child, see FORK
 *   time read|cow|shared <pages> [<reps>]   timing mode, see below
 *   thread <t>                          the ops that follow belong to thread <t> (0..15; default
 *                                       0); the concurrent mode and `fork` use it
 *   setup                               the ops that follow (until `thread`) are the set-up's: the
 *                                       concurrent mode runs them in the coordinator before each
 *                                       run's start (the sequential mode runs every op in order)
 *   concurrent <runs> <seed> threads|processes <limit>
 *                                       concurrent mode, see below
 *   end                                     optional; nothing after it is read
 *
 * The whole program is parsed before anything runs; directives then run in order.
 *
 * OUTPUT (stdout):
 *   res <i> <outcome> <minflt> <majflt>     one per op, in order; <outcome> is one of
 *                                           `ok`, `data <hex>`, `SIGBUS`, `SIGSEGV`,
 *                                           `errno <NAME>` (e.g. EINVAL; unknown: E<number>)
 *   dax active                              after a successful require-dax
 *   time <kind> <ns_per_fault> <faults>     one per time directive
 *   file <name> <size> <hex>                at the end, one per file in declaration order:
 *                                           fstat() size and the pread() contents
 *   error <what> ...                        fatal; the probe stops. Exit status 2 = bad input,
 *                                           1 = setup failed, 3 = dax-not-active,
 *                                           4 = the probe itself faulted outside a measured access
 *
 * MEASUREMENT. minflt/majflt are getrusage(RUSAGE_SELF) deltas taken around exactly the access
 * or the one system call of the op (munmap/msync/madvise/mmap/pread/pwrite/...). Nothing else
 * runs inside that window: buffers are allocated and touched beforehand, no stdio, no malloc.
 * The probe pre-faults its own text/data/stack (mlockall+munlockall, best effort), runs every
 * measured code path once on its own memory, and checks that an access to already-mapped memory
 * counts 0 faults (else `error calibration`). A fault that ends in a signal is not counted by
 * the kernel (mm_account_fault skips VM_FAULT_ERROR), so a SIGBUS load of one page reports 0 0.
 *
 * ACCESSES are byte-by-byte volatile loops. A load or store that faults with SIGBUS/SIGSEGV is
 * reported as that signal (a load's bytes are then discarded); a store that faults part-way has
 * already written the bytes before the faulting address (e.g. the part of a two-page store that
 * lies in the page before EOF). Signals are caught with handlers on a pre-touched alternate
 * stack and sigsetjmp/siglongjmp; a signal whose address is outside the access in progress is a
 * probe bug and exits 4.
 *
 * MAPPINGS are placed at fixed virtual addresses: one PROT_NONE MAP_NORESERVE region, aligned
 * to 2 MiB, is reserved at start; each mmap op gets the next slot (slots start 2 MiB-aligned,
 * and each is the mapping rounded up to 2 MiB plus a 2 MiB PROT_NONE guard), and is placed with
 * MAP_FIXED. So fault-around windows are deterministic: 16 PTEs aligned on the virtual address,
 * clipped to the VMA and to the 2 MiB page table. An access beyond its mapping lands in the
 * PROT_NONE guard and gets the kernel's SIGSEGV; an access beyond the guard is refused as input.
 * A variable mmapped again gets a new slot (the old mapping stays). munmap re-reserves the range
 * PROT_NONE afterwards; msync/madvise/mprotect on an unmapped variable briefly lift that
 * reservation so the kernel answers as for an unmapped range (ENOMEM). (The concurrent mode
 * leaves an unmapped range a hole until the run ends instead: another thread may race with it.)
 * `unaligned` gets a slot one 2 MiB page larger and starts the mapping three pages below the
 * slot's second 2 MiB boundary, as the model places it. `at <0xaddr>` maps at that very address
 * with MAP_FIXED_NOREPLACE (EINVAL unaligned, EEXIST over another mapping); its range must be
 * free in the probe at start (else `error at-address-in-use`), is held PROT_NONE whenever no run
 * is going on and is free during one. Accesses must stay inside an `at` mapping.
 *
 * ANOTHER THREAD'S MAP. An op of one thread on a mapping that another thread (or the set-up)
 * mmaps reads the variable as a pointer that the maker publishes once its mmap has returned
 * successfully (the model's semantics). Before that, munmap/msync/madvise/mprotect answer EINVAL
 * without a system call (the pointer holds no address), and a load or store touches the slot,
 * which is still PROT_NONE: SIGSEGV.
 *
 * FORK. `op <i> fork <t>` forks the process of the thread that runs it; thread <t> (declared
 * after the forking thread, 1..15, forked at most once, with no fork of its own) is the child
 * process: its ops run there, after the fork has returned, and its maps are the parent's at the
 * same addresses (inherited by fork). The fork op's outcome is `ok` (or the errno); its fault
 * counts are the parent's around fork() itself. Sequential mode: the child waits for each of its
 * ops on a pipe, runs it between its own getrusage windows (it re-warms its stack and the
 * measured paths first, as the COW fork made them fault again; so does the parent), puts the
 * result in shared memory for the parent to print, and exits after its last op; the parent reaps
 * it. Concurrent mode: the child runs its ops at once with its thread's timing plan, puts each
 * outcome in the shared area like a worker and exits; the forking worker reaps it before the
 * run's end barrier, so the child's mm is gone before the files are read. Thread <t>'s own worker
 * runs no ops.
 *
 * CONCURRENT MODE. `concurrent <runs> <seed> threads|processes <limit>` runs the program <runs>
 * times in this one process, each thread's ops (`thread <t>`) on its own worker: a pthread
 * (`threads`: one mm, like a multi-threaded program) or a forked process (`processes`: one mm
 * each). The workers live for the whole job; every run goes:
 *   1. the coordinator (the main thread or parent) unlinks and re-creates every file exactly as
 *      its `file` line says, and draws the run's timing plan from <seed> and the run number;
 *      then it runs the set-up's ops (in run 0 after starting the workers, so that a forked
 *      worker inherits none of its mappings);
 *   2. barrier; processes open the files afresh; every worker moves to the run's CPU choice
 *      (any CPU, all on one CPU, or one CPU each, round robin); barrier: they start together;
 *   3. each worker spins a random while (none, or log-uniform up to 2^16 iterations; sometimes
 *      sched_yield() instead), then runs its ops in order with such a pause between two ops;
 *   4. barrier; the workers drop their mappings and the coordinator the set-up's; barrier; the
 *      coordinator reads each file (fstat size, pread contents; contents of a file larger than
 *      <limit> bytes are not read).
 * Nothing is measured (no getrusage) and nothing is printed while runs go on. A SIGBUS or
 * SIGSEGV in an access is caught by the faulting worker (per-thread sigsetjmp state and
 * alternate stack) and is that op's outcome. `require-dax` is checked on the first run's files.
 * Each distinct outcome (every op's outcome and every file's size and contents; no fault
 * counts) is kept once, with how many runs gave it and the first run that did. At the end:
 *   concurrent <runs> threads|processes <cpus>     <cpus>: CPUs the probe may run on
 *   outcome <count> <first-run>                    one block per distinct outcome, in order of
 *   res <i> <outcome>                              first appearance: every op's outcome (as in
 *   file <name> <size> <hex>|*                     the sequential mode, without fault counts),
 *   end-outcome                                    every file (* = contents not read)
 *
 * TIMING MODE. `time <kind> <pages> [<reps>]` (default 7 reps) creates <dir>/time-<kind> of
 * <pages> pages with 4 KiB write()s, then per rep maps it at a 2 MiB-aligned address and touches
 * every page once: read = load through MAP_PRIVATE PROT_READ, cow = store through MAP_PRIVATE,
 * shared = store through MAP_SHARED. It reports the median over reps of
 * (CLOCK_MONOTONIC ns of the loop) / (ru_minflt + ru_majflt delta), and that rep's fault count.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif
#ifndef FALLOC_FL_KEEP_SIZE
#define FALLOC_FL_KEEP_SIZE 0x01
#endif
#ifndef FALLOC_FL_PUNCH_HOLE
#define FALLOC_FL_PUNCH_HOLE 0x02
#endif

#define PAGE 4096UL
#define SLOT_ALIGN (2UL << 20)
#define GUARD SLOT_ALIGN
#define CHUNK 4096UL
#define NAME_MAX_LEN 63
#define MAX_TOKENS 16
#define ALT_STACK_SIZE (256UL * 1024)
#define DEFAULT_REPS 7
#define MAX_REPS 101
#define MAX_THREADS 16
#define MAX_RUNS 100000000UL
#define MAX_SPIN_SHIFT 16
#define SETUP_THREAD (-1)
#define UNALIGNED_PAGES_BELOW 3

/* ------------------------------------------------------------------------------------------ */
/* Program representation                                                                       */

enum fill_kind { FILL_PATTERN, FILL_ZERO, FILL_HOLE };

struct file {
	char name[NAME_MAX_LEN + 1];
	uint64_t size;
	enum fill_kind fill;
	unsigned char *pattern;
	size_t pattern_len;
	int fd;
	int created;
};

enum placement { PLACE_SLOT, PLACE_UNALIGNED, PLACE_AT };

/* One mmap op = one mapping instance with its own slot in the reservation (`at`: its address). */
struct mapping {
	size_t slot_off; /* offset of the slot in the reservation */
	size_t slot_len; /* rounded length + guard (0 for `at`) */
	size_t map_off;  /* where the mapping starts in its slot */
	size_t len;      /* length as requested */
	enum placement place;
	uintptr_t at;    /* PLACE_AT: the address asked for */
	int maker;       /* the thread whose mmap op makes it (SETUP_THREAD: the set-up) */
	int mapped;
	atomic_int published; /* the maker's mmap has returned successfully (this run) */
};

/* A mapping variable of the program, bound to its latest mmap at parse time. */
struct var {
	char name[NAME_MAX_LEN + 1];
	size_t mapping;
};

enum op_kind {
	OP_MMAP,
	OP_MUNMAP,
	OP_LOAD,
	OP_STORE,
	OP_READ,
	OP_WRITE,
	OP_TRUNCATE,
	OP_MSYNC,
	OP_FSYNC,
	OP_MADVISE,
	OP_MPROTECT,
	OP_FALLOCATE,
	OP_FORK,
};

enum cmd_kind { CMD_FILE, CMD_REQUIRE_DAX, CMD_OP, CMD_TIME, CMD_CONCURRENT };

enum time_kind { TIME_READ, TIME_COW, TIME_SHARED };

struct cmd {
	enum cmd_kind kind;
	int line;
	/* CMD_FILE: file; CMD_OP: see op */
	size_t file;
	/* CMD_OP */
	unsigned long index;
	int thread;      /* `thread <t>` in force when the op was read */
	size_t ordinal;  /* position among the program's ops */
	size_t data_off; /* concurrent mode: where a load/read puts its bytes in the shared area */
	enum op_kind op;
	size_t mapping; /* mapping instance the op uses (mmap: the one it creates) */
	uint64_t offset;
	uint64_t length; /* load/read/mmap length; truncate size */
	unsigned char *data;
	size_t data_len;
	int shared;
	int writable;
	int child; /* OP_FORK: the thread that runs in the child */
	/* CMD_TIME */
	enum time_kind tkind;
	size_t pages;
	int reps;
};

static char g_dir[PATH_MAX];
static struct file *g_files;
static size_t g_nfiles;
static struct mapping *g_maps;
static size_t g_nmaps;
static struct cmd *g_cmds;
static size_t g_ncmds;
static size_t g_reserve_len; /* sum of all slots */
static unsigned char *g_base; /* reservation, 2 MiB aligned */
static int g_cur_thread;      /* `thread <t>` in force while parsing */
static int g_nthreads = 1;    /* 1 + the highest thread number used */
static size_t g_nops;
static int g_measure = 1;     /* getrusage around each op (the sequential mode) */
static int g_forked_by[MAX_THREADS];   /* -1, or the thread whose fork op starts thread t */
static size_t g_last_op[MAX_THREADS];  /* ordinal of thread t's last op */

enum worker_kind { WORKER_THREADS, WORKER_PROCESSES };

static struct {
	int on;
	unsigned long runs;
	uint64_t seed;
	enum worker_kind kind;
	uint64_t limit; /* contents of larger files are not read */
} g_conc;

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int status, const char *fmt, ...)
{
	va_list ap;
	fputs("error ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(status);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		die(1, "out-of-memory");
	return p;
}

static void *xgrow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t ncap = *cap ? *cap * 2 : 16;
	while (ncap < need)
		ncap *= 2;
	void *q = realloc(p, ncap * size);
	if (!q)
		die(1, "out-of-memory");
	memset((char *)q + *cap * size, 0, (ncap - *cap) * size);
	*cap = ncap;
	return q;
}

static size_t round_up(size_t x, size_t a)
{
	return (x + a - 1) / a * a;
}

static const char *errno_name(int e)
{
	static char buf[32];
	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case E2BIG: return "E2BIG";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EFAULT: return "EFAULT";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case ENODEV: return "ENODEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case ENFILE: return "ENFILE";
	case EMFILE: return "EMFILE";
	case ETXTBSY: return "ETXTBSY";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case ESPIPE: return "ESPIPE";
	case EROFS: return "EROFS";
	case EDEADLK: return "EDEADLK";
	case ENOSYS: return "ENOSYS";
	case EOVERFLOW: return "EOVERFLOW";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EDQUOT: return "EDQUOT";
	case EHWPOISON: return "EHWPOISON";
	default:
		snprintf(buf, sizeof buf, "E%d", e);
		return buf;
	}
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void print_hex(const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	if (n == 0) {
		fputc('-', stdout);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		fputc(digits[p[i] >> 4], stdout);
		fputc(digits[p[i] & 15], stdout);
	}
}

/* Touch every page of a buffer so that using it later takes no fault. */
static void pretouch(void *p, size_t n)
{
	volatile unsigned char *b = p;
	for (size_t i = 0; i < n; i += PAGE)
		b[i] = b[i];
	if (n)
		b[n - 1] = b[n - 1];
}

/* Buffer for op data, allocated and touched before the measured window. */
static unsigned char *touched_buffer(size_t n)
{
	unsigned char *p = malloc(n ? n : 1);
	if (!p)
		die(1, "out-of-memory");
	memset(p, 0, n ? n : 1);
	return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Parsing                                                                                     */

static int g_line;

static void parse_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void parse_fail(const char *fmt, ...)
{
	va_list ap;
	printf("error parse line %d: ", g_line);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	if (!*s || *s < '0' || *s > '9')
		parse_fail("%s: expected an unsigned decimal number, got '%s'", what, s);
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		parse_fail("%s: bad number '%s'", what, s);
	return (uint64_t)v;
}

static unsigned char *parse_hex(const char *s, size_t *len)
{
	if (strcmp(s, "-") == 0) {
		*len = 0;
		return NULL;
	}
	size_t n = strlen(s);
	if (n % 2)
		parse_fail("hex bytes must come in pairs: '%.40s'", s);
	unsigned char *p = xcalloc(n / 2, 1);
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			parse_fail("not a hex byte string: '%.40s'", s);
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	*len = n / 2;
	return p;
}

static void check_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > NAME_MAX_LEN || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		parse_fail("bad name '%s'", s);
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			parse_fail("bad character in name '%s'", s);
	}
}

static size_t find_file(const char *name)
{
	for (size_t i = 0; i < g_nfiles; i++)
		if (strcmp(g_files[i].name, name) == 0)
			return i;
	parse_fail("unknown file '%s' (declare it with `file` first)", name);
}

static struct var *g_vars;
static size_t g_nvars, g_vars_cap;

static size_t find_var(const char *name)
{
	for (size_t i = 0; i < g_nvars; i++)
		if (strcmp(g_vars[i].name, name) == 0)
			return g_vars[i].mapping;
	parse_fail("unknown mapping '%s' (no earlier mmap defines it)", name);
}

static size_t bind_var(const char *name, size_t mapping)
{
	for (size_t i = 0; i < g_nvars; i++)
		if (strcmp(g_vars[i].name, name) == 0) {
			g_vars[i].mapping = mapping;
			return mapping;
		}
	g_vars = xgrow(g_vars, &g_vars_cap, g_nvars + 1, sizeof *g_vars);
	snprintf(g_vars[g_nvars].name, sizeof g_vars[g_nvars].name, "%s", name);
	g_vars[g_nvars++].mapping = mapping;
	return mapping;
}

static size_t new_mapping(size_t len, enum placement place, uintptr_t at)
{
	static size_t maps_cap;
	if (len > (1UL << 46))
		parse_fail("mapping length %zu is too large", len);
	g_maps = xgrow(g_maps, &maps_cap, g_nmaps + 1, sizeof *g_maps);
	struct mapping *m = &g_maps[g_nmaps];
	m->len = len;
	m->place = place;
	m->maker = g_cur_thread;
	atomic_init(&m->published, 0);
	if (place == PLACE_AT) {
		if (at > (1UL << 47) || round_up(len, PAGE) > (1UL << 47) - at)
			parse_fail("`at` address 0x%lx is not in user space", (unsigned long)at);
		m->at = at;
		return g_nmaps++;
	}
	size_t extra = place == PLACE_UNALIGNED ? SLOT_ALIGN : 0;
	m->slot_off = g_reserve_len;
	m->slot_len = round_up(len + extra, SLOT_ALIGN) + GUARD;
	m->map_off = extra ? SLOT_ALIGN - UNALIGNED_PAGES_BELOW * PAGE : 0;
	g_reserve_len += m->slot_len;
	return g_nmaps++;
}

static size_t new_slot(size_t len)
{
	return new_mapping(len, PLACE_SLOT, 0);
}

/* The page-aligned range an `at` mapping may cover. */
static void at_range(const struct mapping *m, uintptr_t *lo, size_t *len)
{
	*lo = m->at & ~(PAGE - 1);
	*len = round_up(m->at + (m->len ? m->len : 1), PAGE) - *lo;
}

static void check_access(size_t mapping, uint64_t offset, uint64_t length)
{
	const struct mapping *m = &g_maps[mapping];
	if (m->place == PLACE_AT) {
		if (offset > m->len || length > m->len - offset)
			parse_fail("access [%llu, +%llu) goes beyond an `at` mapping (the probe has no guard there)",
				   (unsigned long long)offset, (unsigned long long)length);
		return;
	}
	size_t room = m->slot_len - m->map_off;
	if (offset > room || length > room - offset)
		parse_fail("access [%llu, +%llu) goes beyond the mapping's 2 MiB guard region",
			   (unsigned long long)offset, (unsigned long long)length);
}

static struct cmd *new_cmd(enum cmd_kind kind)
{
	static size_t cap;
	g_cmds = xgrow(g_cmds, &cap, g_ncmds + 1, sizeof *g_cmds);
	struct cmd *c = &g_cmds[g_ncmds++];
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->line = g_line;
	return c;
}

static void need(int ntok, int want, const char *usage)
{
	if (ntok != want)
		parse_fail("expected: %s", usage);
}

static void parse_file(char **tok, int ntok)
{
	static size_t cap;
	if (ntok < 4)
		parse_fail("expected: file <name> <size> fill <hex> | zero | hole");
	check_name(tok[1]);
	for (size_t i = 0; i < g_nfiles; i++)
		if (strcmp(g_files[i].name, tok[1]) == 0)
			parse_fail("file '%s' declared twice", tok[1]);
	g_files = xgrow(g_files, &cap, g_nfiles + 1, sizeof *g_files);
	struct file *f = &g_files[g_nfiles];
	snprintf(f->name, sizeof f->name, "%s", tok[1]);
	f->size = parse_u64(tok[2], "file size");
	f->fd = -1;
	if (strcmp(tok[3], "fill") == 0) {
		need(ntok, 5, "file <name> <size> fill <hex>");
		f->pattern = parse_hex(tok[4], &f->pattern_len);
		f->fill = f->pattern_len ? FILL_PATTERN : FILL_ZERO;
	} else if (strcmp(tok[3], "zero") == 0) {
		need(ntok, 4, "file <name> <size> zero");
		f->fill = FILL_ZERO;
	} else if (strcmp(tok[3], "hole") == 0) {
		need(ntok, 4, "file <name> <size> hole");
		f->fill = FILL_HOLE;
	} else {
		parse_fail("expected fill, zero or hole, got '%s'", tok[3]);
	}
	struct cmd *c = new_cmd(CMD_FILE);
	c->file = g_nfiles++;
}

static void parse_op(char **tok, int ntok)
{
	if (ntok < 3)
		parse_fail("expected: op <index> <kind> ...");
	struct cmd *c = new_cmd(CMD_OP);
	c->index = (unsigned long)parse_u64(tok[1], "op index");
	c->thread = g_cur_thread;
	c->ordinal = g_nops++;
	const char *k = tok[2];
	if (strcmp(k, "mmap") == 0) {
		static const char usage[] =
			"op <i> mmap <var> <file> <offset> <length> private|shared ro|rw [unaligned | at <0xaddr>]";
		if (ntok != 9 && ntok != 10 && ntok != 11)
			parse_fail("expected: %s", usage);
		enum placement place = PLACE_SLOT;
		uintptr_t at = 0;
		if (ntok == 10 && strcmp(tok[9], "unaligned") == 0)
			place = PLACE_UNALIGNED;
		else if (ntok == 11 && strcmp(tok[9], "at") == 0)
			place = PLACE_AT;
		else if (ntok != 9)
			parse_fail("expected: %s", usage);
		if (place == PLACE_AT) {
			const char *a = tok[10];
			if (a[0] != '0' || (a[1] != 'x' && a[1] != 'X') || hexval((unsigned char)a[2]) < 0)
				parse_fail("expected a hex address 0x..., got '%s'", a);
			errno = 0;
			char *end;
			unsigned long long v = strtoull(a + 2, &end, 16);
			if (errno || *end)
				parse_fail("bad address '%s'", a);
			at = (uintptr_t)v;
		}
		check_name(tok[3]);
		c->op = OP_MMAP;
		c->file = find_file(tok[4]);
		c->offset = parse_u64(tok[5], "mmap offset");
		c->length = parse_u64(tok[6], "mmap length");
		if (strcmp(tok[7], "shared") == 0)
			c->shared = 1;
		else if (strcmp(tok[7], "private") != 0)
			parse_fail("expected private or shared, got '%s'", tok[7]);
		if (strcmp(tok[8], "rw") == 0)
			c->writable = 1;
		else if (strcmp(tok[8], "ro") != 0)
			parse_fail("expected ro or rw, got '%s'", tok[8]);
		c->mapping = bind_var(tok[3], new_mapping(c->length, place, at));
	} else if (strcmp(k, "munmap") == 0 || strcmp(k, "msync") == 0) {
		need(ntok, 4, "op <i> munmap|msync <var>");
		c->op = k[1] == 'u' ? OP_MUNMAP : OP_MSYNC;
		c->mapping = find_var(tok[3]);
	} else if (strcmp(k, "madvise") == 0) {
		need(ntok, 5, "op <i> madvise <var> dontneed");
		if (strcmp(tok[4], "dontneed") != 0)
			parse_fail("only madvise dontneed is supported, got '%s'", tok[4]);
		c->op = OP_MADVISE;
		c->mapping = find_var(tok[3]);
	} else if (strcmp(k, "mprotect") == 0) {
		need(ntok, 5, "op <i> mprotect <var> ro|rw");
		c->op = OP_MPROTECT;
		c->mapping = find_var(tok[3]);
		if (strcmp(tok[4], "rw") == 0)
			c->writable = 1;
		else if (strcmp(tok[4], "ro") != 0)
			parse_fail("expected ro or rw, got '%s'", tok[4]);
	} else if (strcmp(k, "fallocate") == 0) {
		need(ntok, 7, "op <i> fallocate <file> punch <offset> <length>");
		if (strcmp(tok[4], "punch") != 0)
			parse_fail("only fallocate punch is supported, got '%s'", tok[4]);
		c->op = OP_FALLOCATE;
		c->file = find_file(tok[3]);
		c->offset = parse_u64(tok[5], "fallocate offset");
		c->length = parse_u64(tok[6], "fallocate length");
		if (c->length > (uint64_t)LLONG_MAX)
			parse_fail("fallocate length too large");
	} else if (strcmp(k, "fork") == 0) {
		need(ntok, 4, "op <i> fork <t>");
		uint64_t t = parse_u64(tok[3], "fork thread");
		if (c->thread == SETUP_THREAD)
			parse_fail("fork in the set-up: expected fork in a thread");
		if (t >= MAX_THREADS || (int)t <= c->thread)
			parse_fail("fork %llu: the child must be a later thread (%d..%d)", (unsigned long long)t,
				   c->thread + 1, MAX_THREADS - 1);
		if (g_forked_by[t] >= 0)
			parse_fail("thread %llu is forked twice", (unsigned long long)t);
		if (g_forked_by[c->thread] >= 0)
			parse_fail("a forked child cannot fork again");
		for (size_t i = 0; i + 1 < g_ncmds; i++)
			if (g_cmds[i].kind == CMD_OP && g_cmds[i].thread == (int)t)
				parse_fail("thread %llu has ops before its fork", (unsigned long long)t);
		g_forked_by[t] = c->thread;
		c->op = OP_FORK;
		c->child = (int)t;
	} else if (strcmp(k, "load") == 0) {
		need(ntok, 6, "op <i> load <var> <offset> <length>");
		c->op = OP_LOAD;
		c->mapping = find_var(tok[3]);
		c->offset = parse_u64(tok[4], "load offset");
		c->length = parse_u64(tok[5], "load length");
		check_access(c->mapping, c->offset, c->length);
	} else if (strcmp(k, "store") == 0) {
		need(ntok, 6, "op <i> store <var> <offset> <hex>");
		c->op = OP_STORE;
		c->mapping = find_var(tok[3]);
		c->offset = parse_u64(tok[4], "store offset");
		c->data = parse_hex(tok[5], &c->data_len);
		check_access(c->mapping, c->offset, c->data_len);
	} else if (strcmp(k, "read") == 0) {
		need(ntok, 6, "op <i> read <file> <offset> <length>");
		c->op = OP_READ;
		c->file = find_file(tok[3]);
		c->offset = parse_u64(tok[4], "read offset");
		c->length = parse_u64(tok[5], "read length");
		if (c->length > (1UL << 32))
			parse_fail("read length too large");
	} else if (strcmp(k, "write") == 0) {
		need(ntok, 6, "op <i> write <file> <offset> <hex>");
		c->op = OP_WRITE;
		c->file = find_file(tok[3]);
		c->offset = parse_u64(tok[4], "write offset");
		c->data = parse_hex(tok[5], &c->data_len);
	} else if (strcmp(k, "truncate") == 0) {
		need(ntok, 5, "op <i> truncate <file> <size>");
		c->op = OP_TRUNCATE;
		c->file = find_file(tok[3]);
		c->length = parse_u64(tok[4], "truncate size");
	} else if (strcmp(k, "fsync") == 0) {
		need(ntok, 4, "op <i> fsync <file>");
		c->op = OP_FSYNC;
		c->file = find_file(tok[3]);
	} else {
		parse_fail("unknown op kind '%s'", k);
	}
	if (c->offset > (uint64_t)LLONG_MAX)
		parse_fail("offset too large");
	if (c->thread != SETUP_THREAD)
		g_last_op[c->thread] = c->ordinal;
}

static void parse_time(char **tok, int ntok)
{
	if (ntok != 3 && ntok != 4)
		parse_fail("expected: time read|cow|shared <pages> [<reps>]");
	struct cmd *c = new_cmd(CMD_TIME);
	if (strcmp(tok[1], "read") == 0)
		c->tkind = TIME_READ;
	else if (strcmp(tok[1], "cow") == 0)
		c->tkind = TIME_COW;
	else if (strcmp(tok[1], "shared") == 0)
		c->tkind = TIME_SHARED;
	else
		parse_fail("unknown time kind '%s' (read, cow or shared)", tok[1]);
	uint64_t pages = parse_u64(tok[2], "pages");
	if (pages == 0 || pages > (1UL << 22))
		parse_fail("pages must be 1..%lu", 1UL << 22);
	c->pages = (size_t)pages;
	c->reps = DEFAULT_REPS;
	if (ntok == 4) {
		uint64_t reps = parse_u64(tok[3], "reps");
		if (reps == 0 || reps > MAX_REPS)
			parse_fail("reps must be 1..%d", MAX_REPS);
		c->reps = (int)reps;
	}
	c->mapping = new_slot(c->pages * PAGE);
}

static void parse_thread(char **tok, int ntok)
{
	need(ntok, 2, "thread <t>");
	uint64_t t = parse_u64(tok[1], "thread");
	if (t >= MAX_THREADS)
		parse_fail("thread must be 0..%d, got %llu", MAX_THREADS - 1, (unsigned long long)t);
	g_cur_thread = (int)t;
	if (g_cur_thread + 1 > g_nthreads)
		g_nthreads = g_cur_thread + 1;
}

static void parse_setup(int ntok)
{
	need(ntok, 1, "setup");
	g_cur_thread = SETUP_THREAD;
}

static void parse_concurrent(char **tok, int ntok)
{
	need(ntok, 5, "concurrent <runs> <seed> threads|processes <limit>");
	if (g_conc.on)
		parse_fail("concurrent given twice");
	g_conc.runs = (unsigned long)parse_u64(tok[1], "runs");
	if (g_conc.runs == 0 || g_conc.runs > MAX_RUNS)
		parse_fail("runs must be 1..%lu", MAX_RUNS);
	g_conc.seed = parse_u64(tok[2], "seed");
	if (strcmp(tok[3], "threads") == 0)
		g_conc.kind = WORKER_THREADS;
	else if (strcmp(tok[3], "processes") == 0)
		g_conc.kind = WORKER_PROCESSES;
	else
		parse_fail("expected threads or processes, got '%s'", tok[3]);
	g_conc.limit = parse_u64(tok[4], "limit");
	g_conc.on = 1;
	new_cmd(CMD_CONCURRENT);
}

static int tokenize(char *line, char **tok)
{
	int n = 0;
	char *save = NULL;
	for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
		if (n == MAX_TOKENS)
			parse_fail("too many words");
		tok[n++] = t;
	}
	return n;
}

static void parse_program(FILE *in)
{
	for (int t = 0; t < MAX_THREADS; t++)
		g_forked_by[t] = -1;
	char *line = NULL;
	size_t cap = 0;
	int have_dir = 0;
	while (getline(&line, &cap, in) >= 0) {
		g_line++;
		char *tok[MAX_TOKENS];
		int ntok = tokenize(line, tok);
		if (ntok == 0 || tok[0][0] == '#')
			continue;
		if (strcmp(tok[0], "end") == 0)
			break;
		if (strcmp(tok[0], "dir") == 0) {
			need(ntok, 2, "dir <path>");
			if (have_dir)
				parse_fail("dir given twice");
			if (strlen(tok[1]) >= sizeof g_dir - NAME_MAX_LEN - 16)
				parse_fail("dir path too long");
			snprintf(g_dir, sizeof g_dir, "%s", tok[1]);
			have_dir = 1;
			continue;
		}
		if (!have_dir)
			parse_fail("the program must start with `dir <path>`");
		if (strcmp(tok[0], "file") == 0)
			parse_file(tok, ntok);
		else if (strcmp(tok[0], "require-dax") == 0) {
			need(ntok, 1, "require-dax");
			new_cmd(CMD_REQUIRE_DAX);
		} else if (strcmp(tok[0], "op") == 0)
			parse_op(tok, ntok);
		else if (strcmp(tok[0], "time") == 0)
			parse_time(tok, ntok);
		else if (strcmp(tok[0], "thread") == 0)
			parse_thread(tok, ntok);
		else if (strcmp(tok[0], "setup") == 0)
			parse_setup(ntok);
		else if (strcmp(tok[0], "concurrent") == 0)
			parse_concurrent(tok, ntok);
		else
			parse_fail("unknown directive '%s'", tok[0]);
	}
	free(line);
	if (!have_dir)
		parse_fail("empty program: expected `dir <path>`");
	if (g_conc.on)
		for (size_t i = 0; i < g_ncmds; i++)
			if (g_cmds[i].kind == CMD_TIME)
				parse_fail("the timing mode and the concurrent mode do not mix");
}

/* ------------------------------------------------------------------------------------------ */
/* The address-space reservation                                                              */

static void reserve_at(void *addr, size_t len)
{
	void *p = mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		       -1, 0);
	if (p == MAP_FAILED)
		die(1, "reserve-failed %s", errno_name(errno));
}

static void reserve_all(void)
{
	/* one extra slot for calibration, and slack to align the base to 2 MiB */
	size_t len = g_reserve_len + SLOT_ALIGN + SLOT_ALIGN;
	void *p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		die(1, "reserve-failed %s (%zu bytes)", errno_name(errno), len);
	uintptr_t base = round_up((uintptr_t)p, SLOT_ALIGN);
	g_base = (unsigned char *)base;
}

static unsigned char *slot_addr(size_t mapping)
{
	return g_base + SLOT_ALIGN + g_maps[mapping].slot_off; /* slot 0 region is calibration */
}

/* Where a mapping starts. */
static unsigned char *map_addr(size_t mapping)
{
	const struct mapping *m = &g_maps[mapping];
	if (m->place == PLACE_AT)
		return (unsigned char *)m->at;
	return slot_addr(mapping) + m->map_off;
}

/* Before anything else is mapped: every `at` range must be free in the probe (each on its own;
 * two may overlap each other), then they are held PROT_NONE so nothing else lands there. */
static void claim_at_ranges(void)
{
	for (size_t i = 0; i < g_nmaps; i++) {
		if (g_maps[i].place != PLACE_AT)
			continue;
		uintptr_t lo;
		size_t len;
		at_range(&g_maps[i], &lo, &len);
		void *p = mmap((void *)lo, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
			       MAP_FIXED_NOREPLACE, -1, 0);
		if (p == MAP_FAILED || p != (void *)lo)
			die(1, "at-address-in-use 0x%lx (+%zu bytes): %s", (unsigned long)lo, len,
			    p == MAP_FAILED ? errno_name(errno) : "kernel ignored MAP_FIXED_NOREPLACE");
		munmap(p, len);
	}
	for (size_t i = 0; i < g_nmaps; i++) {
		if (g_maps[i].place != PLACE_AT)
			continue;
		uintptr_t lo;
		size_t len;
		at_range(&g_maps[i], &lo, &len);
		reserve_at((void *)lo, len);
	}
}

/* Free every `at` range (hold=0: a run is about to start) or hold it PROT_NONE again (hold=1). */
static void at_ranges(int hold)
{
	for (size_t i = 0; i < g_nmaps; i++) {
		if (g_maps[i].place != PLACE_AT)
			continue;
		uintptr_t lo;
		size_t len;
		at_range(&g_maps[i], &lo, &len);
		if (hold)
			reserve_at((void *)lo, len);
		else if (munmap((void *)lo, len) != 0)
			die(1, "munmap at-range %s", errno_name(errno));
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Measured windows                                                                           */

struct result {
	long minflt, majflt;
	int sig; /* 0, SIGBUS or SIGSEGV */
	int err; /* errno, or 0 */
	long ret;
};

/* The access in progress, per thread: a concurrent run's workers fault independently. */
static struct rusage g_r0, g_r1;
static _Thread_local sigjmp_buf g_jmp;
static _Thread_local volatile sig_atomic_t g_armed;
static _Thread_local volatile sig_atomic_t g_sig;
static _Thread_local volatile uintptr_t g_lo, g_hi;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	uintptr_t a = (uintptr_t)si->si_addr;
	if (g_armed && a >= g_lo && a < g_hi) {
		g_armed = 0;
		g_sig = sig;
		siglongjmp(g_jmp, 1);
	}
	static const char msg[] = "error probe-internal-fault (signal outside a measured access)\n";
	if (write(1, msg, sizeof msg - 1) < 0) {
		/* nothing more we can do */
	}
	_exit(4);
}

/* A pre-touched alternate signal stack for the calling thread (each thread needs its own). */
static void alt_stack(void)
{
	unsigned char *stack = xcalloc(ALT_STACK_SIZE, 1);
	pretouch(stack, ALT_STACK_SIZE);
	stack_t ss = {.ss_sp = stack, .ss_size = ALT_STACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0)
		die(1, "sigaltstack %s", errno_name(errno));
}

static void install_handlers(void)
{
	alt_stack();
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
		die(1, "sigaction %s", errno_name(errno));
}

static void window_start(void)
{
	if (g_measure)
		getrusage(RUSAGE_SELF, &g_r0);
}

static void window_end(void)
{
	if (g_measure)
		getrusage(RUSAGE_SELF, &g_r1);
}

static void finish_window(struct result *r)
{
	if (!g_measure)
		return;
	r->minflt = g_r1.ru_minflt - g_r0.ru_minflt;
	r->majflt = g_r1.ru_majflt - g_r0.ru_majflt;
}

/* Load (store=0) or store (store=1) n bytes between addr and buf, byte by byte. */
static __attribute__((noinline)) void access_window(int store, unsigned char *addr, unsigned char *buf,
						     size_t n, struct result *r)
{
	memset(r, 0, sizeof *r);
	g_sig = 0;
	g_lo = (uintptr_t)addr;
	g_hi = (uintptr_t)addr + n;
	if (sigsetjmp(g_jmp, 1) == 0) {
		window_start();
		g_armed = 1;
		if (store) {
			volatile unsigned char *d = addr;
			for (size_t i = 0; i < n; i++)
				d[i] = buf[i];
		} else {
			const volatile unsigned char *s = addr;
			for (size_t i = 0; i < n; i++)
				buf[i] = s[i];
		}
		g_armed = 0;
	}
	window_end();
	finish_window(r);
	r->sig = g_sig;
}

enum call_kind { CALL_MMAP, CALL_MUNMAP, CALL_MSYNC, CALL_MADVISE, CALL_PREAD, CALL_PWRITE,
		 CALL_FTRUNCATE, CALL_FSYNC, CALL_MPROTECT, CALL_FALLOCATE };

struct call {
	enum call_kind kind;
	int fd;
	void *addr;
	size_t len;
	uint64_t off;
	int prot, flags;
	unsigned char *buf;
};

/* One system call (or a chunked pread/pwrite loop) between two getrusage calls. */
static __attribute__((noinline)) void call_window(const struct call *c, struct result *r)
{
	long ret = 0;
	int err = 0;
	memset(r, 0, sizeof *r);
	window_start();
	switch (c->kind) {
	case CALL_MMAP: {
		void *p = mmap(c->addr, c->len, c->prot, c->flags, c->fd, (off_t)c->off);
		ret = p == MAP_FAILED ? -1 : 0;
		break;
	}
	case CALL_MUNMAP:
		ret = munmap(c->addr, c->len);
		break;
	case CALL_MSYNC:
		ret = msync(c->addr, c->len, MS_SYNC);
		break;
	case CALL_MADVISE:
		ret = madvise(c->addr, c->len, MADV_DONTNEED);
		break;
	case CALL_PREAD: {
		size_t done = 0;
		while (done < c->len) {
			ssize_t k = pread(c->fd, c->buf + done, c->len - done, (off_t)(c->off + done));
			if (k < 0) {
				ret = -1;
				break;
			}
			if (k == 0)
				break;
			done += (size_t)k;
		}
		if (ret == 0)
			ret = (long)done;
		break;
	}
	case CALL_PWRITE: {
		size_t done = 0;
		while (done < c->len) {
			size_t want = c->len - done < CHUNK ? c->len - done : CHUNK;
			ssize_t k = pwrite(c->fd, c->buf + done, want, (off_t)(c->off + done));
			if (k < 0) {
				ret = -1;
				break;
			}
			done += (size_t)k;
		}
		break;
	}
	case CALL_FTRUNCATE:
		ret = ftruncate(c->fd, (off_t)c->off);
		break;
	case CALL_FSYNC:
		ret = fsync(c->fd);
		break;
	case CALL_MPROTECT:
		ret = mprotect(c->addr, c->len, c->prot);
		break;
	case CALL_FALLOCATE:
		ret = fallocate(c->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)c->off, (off_t)c->len);
		break;
	}
	if (ret < 0)
		err = errno;
	window_end();
	finish_window(r);
	r->ret = ret;
	r->err = err;
}

/* ------------------------------------------------------------------------------------------ */
/* Warm-up and calibration                                                                     */

static __attribute__((noinline)) void pretouch_stack(void)
{
	volatile unsigned char big[512 * 1024];
	for (size_t i = 0; i < sizeof big; i += PAGE)
		big[i] = 0;
	big[sizeof big - 1] = 0;
}

static void prefault_self(void)
{
	/* Populate every page mapped so far (text, data, libc, heap, stack), then let go: the
	 * pages stay mapped, so the probe's own code does not fault inside a window. Best effort
	 * (needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK); the warm-up below covers the rest. */
	if (mlockall(MCL_CURRENT) == 0)
		munlockall();
}

static void calibrate(void)
{
	unsigned char *page = touched_buffer(2 * PAGE);
	unsigned char *buf = touched_buffer(PAGE);
	unsigned char *guard = g_base; /* calibration slot: PROT_NONE */
	struct result r;
	int fd = -1;
	/* run every measured path once so its code and data are mapped */
	struct call calls[] = {
		{.kind = CALL_MMAP, .fd = -1, .addr = guard, .len = 0},
		{.kind = CALL_MUNMAP, .addr = NULL, .len = 0},
		{.kind = CALL_MSYNC, .addr = guard, .len = PAGE},
		{.kind = CALL_MADVISE, .addr = guard, .len = PAGE},
		{.kind = CALL_PREAD, .fd = fd, .buf = buf, .len = 1},
		{.kind = CALL_PWRITE, .fd = fd, .buf = buf, .len = 1},
		{.kind = CALL_FTRUNCATE, .fd = fd},
		{.kind = CALL_FSYNC, .fd = fd},
		{.kind = CALL_MPROTECT, .addr = guard, .len = PAGE, .prot = PROT_NONE},
		{.kind = CALL_FALLOCATE, .fd = fd, .len = 1},
	};
	/* the vDSO text and data pages are faulted in on first use: use them before timing */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int round = 0; round < 3; round++) {
		long total = 0;
		for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++) {
			call_window(&calls[i], &r);
			total += r.minflt + r.majflt;
		}
		access_window(0, page, buf, PAGE, &r);
		total += r.minflt + r.majflt + (r.sig != 0);
		access_window(1, page, buf, PAGE, &r);
		total += r.minflt + r.majflt + (r.sig != 0);
		access_window(0, guard, buf, 1, &r);
		if (r.sig != SIGSEGV)
			die(1, "calibration: a load from PROT_NONE memory gave signal %d, not SIGSEGV", r.sig);
		total += r.minflt + r.majflt;
		access_window(1, guard, buf, 1, &r);
		if (r.sig != SIGSEGV)
			die(1, "calibration: a store to PROT_NONE memory gave signal %d, not SIGSEGV", r.sig);
		total += r.minflt + r.majflt;
		if (total == 0) {
			free(page);
			free(buf);
			return;
		}
	}
	die(1, "calibration: accesses to already-mapped memory still count faults");
}

/* ------------------------------------------------------------------------------------------ */
/* Execution                                                                                   */

static void join_path(char *out, size_t n, const char *prefix, const char *name)
{
	int k = snprintf(out, n, "%s/%s%s", g_dir, prefix, name);
	if (k < 0 || (size_t)k >= n)
		die(1, "path-too-long %s%s", prefix, name);
}

static int write_full(int fd, const unsigned char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void create_file(struct file *f)
{
	char path[PATH_MAX];
	join_path(path, sizeof path, "", f->name);
	f->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f->fd < 0)
		die(1, "create %s %s", f->name, errno_name(errno));
	f->created = 1;
	if (f->fill == FILL_HOLE) {
		if (ftruncate(f->fd, (off_t)f->size) != 0)
			die(1, "ftruncate %s %s", f->name, errno_name(errno));
		return;
	}
	/* A file of whole 2 MiB units is allocated in one request first, so that ext4 (made with a
	 * 2 MiB stripe in the DAX VM) gives it 2 MiB-aligned extents and PMD faults can map them. */
	if (f->size && f->size % (2u << 20) == 0 && fallocate(f->fd, 0, 0, (off_t)f->size) != 0 && errno != EOPNOTSUPP)
		die(1, "fallocate %s %s", f->name, errno_name(errno));
	unsigned char chunk[CHUNK];
	for (uint64_t off = 0; off < f->size; off += CHUNK) {
		size_t n = f->size - off < CHUNK ? (size_t)(f->size - off) : CHUNK;
		for (size_t i = 0; i < n; i++)
			chunk[i] = f->fill == FILL_PATTERN ? f->pattern[(off + i) % f->pattern_len] : 0;
		if (write_full(f->fd, chunk, n) != 0)
			die(1, "write %s %s", f->name, errno_name(errno));
	}
}

static void require_dax(void)
{
	size_t checked = 0;
	for (size_t i = 0; i < g_nfiles; i++) {
		if (!g_files[i].created)
			continue;
		struct statx stx;
		if (statx(g_files[i].fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) != 0)
			die(1, "statx %s %s", g_files[i].name, errno_name(errno));
		if (!(stx.stx_attributes & STATX_ATTR_DAX))
			die(3, "dax-not-active %s", g_files[i].name);
		checked++;
	}
	if (!checked)
		die(2, "require-dax before any file was created");
	printf("dax active\n");
}

static void print_result(const struct cmd *c, const struct result *r, const unsigned char *data,
			 size_t n)
{
	printf("res %lu ", c->index);
	if (r->sig == SIGBUS)
		fputs("SIGBUS", stdout);
	else if (r->sig == SIGSEGV)
		fputs("SIGSEGV", stdout);
	else if (r->err)
		printf("errno %s", errno_name(r->err));
	else if (data) {
		fputs("data ", stdout);
		print_hex(data, n);
	} else
		fputs("ok", stdout);
	printf(" %ld %ld\n", r->minflt, r->majflt);
}

/* msync/madvise/mprotect on an unmapped variable: lift the reservation so the kernel sees a
 * hole (the sequential mode; the concurrent one leaves the hole until the run ends). */
static void range_call(const struct cmd *c, struct call *call, struct result *r)
{
	struct mapping *m = &g_maps[c->mapping];
	unsigned char *addr = map_addr(c->mapping);
	size_t span = round_up(m->len, PAGE);
	int lift = g_measure && !m->mapped && span && m->place != PLACE_AT;
	call->addr = addr;
	call->len = m->len;
	if (lift)
		munmap(addr, span);
	call_window(call, r);
	if (lift)
		reserve_at(addr, span);
}

/* Another thread's map (or the set-up's), read as a pointer: 0 until its mmap has returned. */
static int unpublished(const struct cmd *c)
{
	const struct mapping *m = &g_maps[c->mapping];
	return m->maker != c->thread && !atomic_load_explicit(&m->published, memory_order_acquire);
}

static void fork_op(const struct cmd *c, struct result *r);

/* Carry out one op. A load or read puts its bytes in buf (room for c->length) and sets *ndata;
 * a store or write takes its c->data_len bytes from buf. Returns 1 when the outcome is data. */
static int exec_op(const struct cmd *c, unsigned char *buf, struct result *r, size_t *ndata)
{
	struct call call;
	memset(&call, 0, sizeof call);
	*ndata = 0;
	/* A program may have no mappings (or no files) at all: only ops that name one use it. */
	struct file *f = g_files ? &g_files[c->file] : NULL;
	struct mapping *m = g_maps ? &g_maps[c->mapping] : NULL;
	unsigned char *addr = g_maps ? map_addr(c->mapping) : NULL;
	int pointer_op = c->op == OP_MUNMAP || c->op == OP_MSYNC || c->op == OP_MADVISE || c->op == OP_MPROTECT;

	if (pointer_op && unpublished(c)) {
		memset(r, 0, sizeof *r);
		r->ret = -1;
		r->err = EINVAL;
		return 0;
	}
	switch (c->op) {
	case OP_MMAP:
		call.kind = CALL_MMAP;
		call.addr = addr;
		call.len = (size_t)c->length;
		call.prot = PROT_READ | (c->writable ? PROT_WRITE : 0);
		call.flags = (c->shared ? MAP_SHARED : MAP_PRIVATE) |
			     (m->place == PLACE_AT ? MAP_FIXED_NOREPLACE : MAP_FIXED);
		call.fd = f->fd;
		call.off = c->offset;
		call_window(&call, r);
		if (r->ret == 0) {
			m->mapped = 1;
			atomic_store_explicit(&m->published, 1, memory_order_release);
		} else if (call.len && m->place != PLACE_AT)
			reserve_at(addr, round_up(call.len, PAGE));
		return 0;
	case OP_MUNMAP:
		call.kind = CALL_MUNMAP;
		call.addr = addr;
		call.len = m->len;
		call_window(&call, r);
		if (r->ret == 0 && m->len && g_measure && m->place != PLACE_AT)
			reserve_at(addr, round_up(m->len, PAGE));
		if (r->ret == 0)
			m->mapped = 0;
		return 0;
	case OP_MPROTECT:
		call.kind = CALL_MPROTECT;
		call.prot = PROT_READ | (c->writable ? PROT_WRITE : 0);
		range_call(c, &call, r);
		return 0;
	case OP_FALLOCATE:
		call.kind = CALL_FALLOCATE;
		call.fd = f->fd;
		call.off = c->offset;
		call.len = (size_t)c->length;
		call_window(&call, r);
		return 0;
	case OP_MSYNC:
		call.kind = CALL_MSYNC;
		range_call(c, &call, r);
		return 0;
	case OP_MADVISE:
		call.kind = CALL_MADVISE;
		range_call(c, &call, r);
		return 0;
	case OP_LOAD:
		access_window(0, addr + c->offset, buf, (size_t)c->length, r);
		*ndata = (size_t)c->length;
		return 1;
	case OP_STORE:
		access_window(1, addr + c->offset, buf, c->data_len, r);
		return 0;
	case OP_READ:
		call.kind = CALL_PREAD;
		call.fd = f->fd;
		call.buf = buf;
		call.len = (size_t)c->length;
		call.off = c->offset;
		call_window(&call, r);
		*ndata = r->ret > 0 ? (size_t)r->ret : 0;
		return 1;
	case OP_WRITE:
		call.kind = CALL_PWRITE;
		call.fd = f->fd;
		call.buf = buf;
		call.len = c->data_len;
		call.off = c->offset;
		call_window(&call, r);
		return 0;
	case OP_TRUNCATE:
		call.kind = CALL_FTRUNCATE;
		call.fd = f->fd;
		call.off = c->length;
		call_window(&call, r);
		return 0;
	case OP_FSYNC:
		call.kind = CALL_FSYNC;
		call.fd = f->fd;
		call_window(&call, r);
		return 0;
	case OP_FORK:
		fork_op(c, r);
		return 0;
	}
	return 0;
}

static size_t op_buffer_size(const struct cmd *c)
{
	if (c->op == OP_LOAD || c->op == OP_READ)
		return (size_t)c->length;
	if (c->op == OP_STORE || c->op == OP_WRITE)
		return c->data_len;
	return 0;
}

/* Sequential mode: a forked child waits on a pipe for the index (into g_cmds) of each of its ops,
 * runs it and answers with one byte; the result is in shared memory. */
struct seq_reply {
	struct result r;
	int has_data;
	size_t n;
	unsigned char data[];
};

static struct {
	pid_t pid;
	int to_child, from_child;
	struct seq_reply *reply;
	size_t reply_len;
} g_seq_child[MAX_THREADS];

static pid_t g_conc_child[MAX_THREADS]; /* concurrent mode: the running child of thread t's fork */

static size_t op_buffer_size(const struct cmd *c);

static void xwrite(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;
	while (n) {
		ssize_t k = write(fd, b, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			die(1, "fork pipe write %s", errno_name(errno));
		b += k;
		n -= (size_t)k;
	}
}

/* Read exactly n bytes; 0 at end of file before the first byte, else 1. */
static int xread(int fd, void *p, size_t n)
{
	unsigned char *b = p;
	size_t done = 0;
	while (done < n) {
		ssize_t k = read(fd, b + done, n - done);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			die(1, "fork pipe read %s", errno_name(errno));
		if (k == 0) {
			if (done == 0)
				return 0;
			die(1, "fork pipe: short read");
		}
		done += (size_t)k;
	}
	return 1;
}

/* The child of a sequential fork: serve thread t's ops until the parent closes the pipe. */
static void seq_child_main(int t) __attribute__((noreturn));

static void seq_child_main(int t)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	struct seq_reply *reply = g_seq_child[t].reply;
	int in = g_seq_child[t].to_child, out = g_seq_child[t].from_child;
	for (int u = 0; u < MAX_THREADS; u++)
		if (u != t && g_seq_child[u].pid > 0) { /* an earlier child's: it must see its pipe close */
			close(g_seq_child[u].to_child);
			close(g_seq_child[u].from_child);
		}
	/* fork made every private page of ours copy-on-write: take those faults now, not in a window
	 * (no mlockall here: it would break the COW sharing of the scenario's private pages too) */
	pretouch(reply, g_seq_child[t].reply_len);
	pretouch_stack();
	calibrate();
	size_t idx;
	while (xread(in, &idx, sizeof idx)) {
		const struct cmd *c = &g_cmds[idx];
		if ((c->op == OP_STORE || c->op == OP_WRITE) && c->data_len)
			memcpy(reply->data, c->data, c->data_len);
		struct result r;
		size_t n;
		int has = exec_op(c, reply->data, &r, &n);
		reply->r = r;
		reply->has_data = has;
		reply->n = n;
		xwrite(out, "", 1);
	}
	_exit(0);
}

static void conc_child_main(int t) __attribute__((noreturn));

static void fork_op(const struct cmd *c, struct result *r)
{
	int t = c->child;
	int to[2] = {-1, -1}, from[2] = {-1, -1};
	memset(r, 0, sizeof *r);
	if (g_measure) {
		size_t len = sizeof(struct seq_reply);
		for (size_t i = 0; i < g_ncmds; i++)
			if (g_cmds[i].kind == CMD_OP && g_cmds[i].thread == t && len < sizeof(struct seq_reply) + op_buffer_size(&g_cmds[i]))
				len = sizeof(struct seq_reply) + op_buffer_size(&g_cmds[i]);
		void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED)
			die(1, "fork reply memory %s", errno_name(errno));
		if (pipe(to) != 0 || pipe(from) != 0)
			die(1, "fork pipe %s", errno_name(errno));
		g_seq_child[t].reply = p;
		g_seq_child[t].reply_len = len;
		g_seq_child[t].to_child = to[0];
		g_seq_child[t].from_child = from[1];
		fflush(stdout); /* nothing buffered may be printed twice */
	}
	window_start();
	pid_t pid = fork();
	if (pid == 0) {
		if (!g_measure)
			conc_child_main(t);
		close(to[1]);
		close(from[0]);
		seq_child_main(t);
	}
	int err = errno;
	window_end();
	finish_window(r);
	if (pid < 0)
		die(1, "fork %s", errno_name(err));
	if (!g_measure) {
		g_conc_child[t] = pid;
		return;
	}
	close(to[0]);
	close(from[1]);
	g_seq_child[t].pid = pid;
	g_seq_child[t].to_child = to[1];
	g_seq_child[t].from_child = from[0];
	/* the parent's own pages are COW-shared now too: warm them again for the next windows */
	pretouch_stack();
	calibrate();
}

/* Wait for a forked child; anything but exit status 0 is fatal. */
static void reap_child(pid_t pid, int t)
{
	int status;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
	}
	if (w != pid)
		die(1, "waitpid fork child %d %s", t, errno_name(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die(1, "fork child %d stopped (%s %d)", t, WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* Sequential mode: run a forked thread's op in its child process and print the result. */
static void run_child_op(const struct cmd *c)
{
	int t = c->thread;
	size_t idx = (size_t)(c - g_cmds);
	if (g_seq_child[t].pid <= 0)
		die(1, "thread %d runs before its fork", t);
	xwrite(g_seq_child[t].to_child, &idx, sizeof idx);
	char byte;
	if (!xread(g_seq_child[t].from_child, &byte, 1))
		die(1, "fork child %d stopped before answering", t);
	const struct seq_reply *reply = g_seq_child[t].reply;
	print_result(c, &reply->r, reply->has_data ? reply->data : NULL, reply->n);
	if (c->ordinal == g_last_op[t]) {
		close(g_seq_child[t].to_child);
		reap_child(g_seq_child[t].pid, t);
		close(g_seq_child[t].from_child);
		munmap(g_seq_child[t].reply, g_seq_child[t].reply_len);
		g_seq_child[t].pid = -1;
	}
}

/* Sequential mode: run one op between measurement windows and print its result. */
static void run_op(const struct cmd *c)
{
	struct result r;
	size_t n;
	if (c->thread >= 0 && g_forked_by[c->thread] >= 0) {
		run_child_op(c);
		return;
	}
	unsigned char *buf = touched_buffer(op_buffer_size(c));
	if ((c->op == OP_STORE || c->op == OP_WRITE) && c->data_len)
		memcpy(buf, c->data, c->data_len);
	int has_data = exec_op(c, buf, &r, &n);
	print_result(c, &r, has_data ? buf : NULL, n);
	free(buf);
}

/* ------------------------------------------------------------------------------------------ */
/* Timing mode                                                                                 */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static const char *time_kind_name(enum time_kind k)
{
	return k == TIME_READ ? "read" : k == TIME_COW ? "cow" : "shared";
}

static void run_time(const struct cmd *c)
{
	const char *kind = time_kind_name(c->tkind);
	char path[PATH_MAX];
	join_path(path, sizeof path, "time-", kind);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(1, "create time-%s %s", kind, errno_name(errno));
	unsigned char chunk[CHUNK];
	memset(chunk, 0x5a, sizeof chunk);
	for (size_t i = 0; i < c->pages; i++)
		if (write_full(fd, chunk, CHUNK) != 0)
			die(1, "write time-%s %s", kind, errno_name(errno));

	size_t len = c->pages * PAGE;
	unsigned char *addr = slot_addr(c->mapping);
	int prot = c->tkind == TIME_READ ? PROT_READ : PROT_READ | PROT_WRITE;
	int flags = (c->tkind == TIME_SHARED ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
	double ns[MAX_REPS];
	long faults[MAX_REPS];
	for (int rep = 0; rep < c->reps; rep++) {
		if (mmap(addr, len, prot, flags, fd, 0) == MAP_FAILED)
			die(1, "mmap time-%s %s", kind, errno_name(errno));
		struct timespec t0, t1;
		struct rusage r0, r1;
		unsigned sum = 0;
		getrusage(RUSAGE_SELF, &r0);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (c->tkind == TIME_READ) {
			const volatile unsigned char *p = addr;
			for (size_t i = 0; i < len; i += PAGE)
				sum += p[i];
		} else {
			volatile unsigned char *p = addr;
			for (size_t i = 0; i < len; i += PAGE)
				p[i] = (unsigned char)i;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		getrusage(RUSAGE_SELF, &r1);
		(void)sum;
		if (munmap(addr, len) != 0)
			die(1, "munmap time-%s %s", kind, errno_name(errno));
		reserve_at(addr, len);
		long f = (r1.ru_minflt - r0.ru_minflt) + (r1.ru_majflt - r0.ru_majflt);
		if (f <= 0)
			die(1, "time-%s took no faults", kind);
		double elapsed = (double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec);
		ns[rep] = elapsed / (double)f;
		faults[rep] = f;
	}
	/* median by ns per fault, with the fault count of that rep */
	double sorted[MAX_REPS];
	memcpy(sorted, ns, sizeof(double) * (size_t)c->reps);
	qsort(sorted, (size_t)c->reps, sizeof(double), cmp_double);
	double median = sorted[c->reps / 2];
	long median_faults = faults[0];
	for (int rep = 0; rep < c->reps; rep++)
		if (ns[rep] == median)
			median_faults = faults[rep];
	close(fd);
	unlink(path);
	printf("time %s %.1f %ld\n", kind, median, median_faults);
}

static void dump_files(void)
{
	for (size_t i = 0; i < g_nfiles; i++) {
		struct file *f = &g_files[i];
		struct stat st;
		if (fstat(f->fd, &st) != 0)
			die(1, "fstat %s %s", f->name, errno_name(errno));
		size_t size = (size_t)st.st_size;
		unsigned char *buf = touched_buffer(size);
		size_t done = 0;
		while (done < size) {
			ssize_t k = pread(f->fd, buf + done, size - done, (off_t)done);
			if (k < 0)
				die(1, "pread %s %s", f->name, errno_name(errno));
			if (k == 0)
				break;
			done += (size_t)k;
		}
		printf("file %s %zu ", f->name, size);
		print_hex(buf, done);
		fputc('\n', stdout);
		free(buf);
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Concurrent mode                                                                             */

/* A reusable barrier in memory shared by every worker (threads or forked processes). */
struct barrier {
	atomic_uint count;
	atomic_uint gen;
	unsigned n;
};

struct thread_plan {
	int cpu; /* -1: any of the probe's CPUs */
	unsigned start_spin;
	int start_yield;
};

struct op_plan {
	unsigned spin; /* the pause before this op (not before a thread's first op) */
	int yield;
};

struct op_result {
	int sig, err, has_data;
	size_t n;
};

struct shared {
	struct barrier bar;
	struct thread_plan thread[MAX_THREADS];
};

static struct shared *g_shm;
static struct op_plan *g_op_plan;     /* [g_nops], shared */
static struct op_result *g_op_result; /* [g_nops], shared */
static unsigned char *g_op_data;      /* bytes returned by loads and reads, shared */
static int g_cpus[CPU_SETSIZE];
static int g_ncpus;
static size_t *g_thread_ops[MAX_THREADS]; /* indices into g_cmds, per thread, in order */
static size_t g_thread_nops[MAX_THREADS];
static size_t *g_setup_ops; /* the set-up's ops, run by the coordinator */
static size_t g_setup_nops;
static pid_t g_worker_pid[MAX_THREADS];

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	atomic_signal_fence(memory_order_seq_cst);
#endif
}

static void spin(unsigned n)
{
	for (volatile unsigned i = 0; i < n; i++) {
	}
}

/* The coordinator, waiting at a barrier: stop if a worker process died (it would wait forever).
 * A worker that exited with status 0 has finished its last run: the barrier is about to open. */
static void check_workers(void)
{
	if (g_conc.kind != WORKER_PROCESSES)
		return; /* a thread cannot die alone: its die() ends the process */
	siginfo_t info;
	memset(&info, 0, sizeof info);
	if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
		return;
	if (info.si_code == CLD_EXITED && info.si_status == 0)
		return;
	die(1, "concurrent worker %d stopped (%s %d)", (int)info.si_pid,
	    info.si_code == CLD_EXITED ? "exit status" : "signal", info.si_status);
}

static void barrier_wait(int coordinator)
{
	struct barrier *b = &g_shm->bar;
	unsigned gen = atomic_load(&b->gen);
	if (atomic_fetch_add(&b->count, 1) + 1 == b->n) {
		atomic_store(&b->count, 0);
		atomic_fetch_add(&b->gen, 1);
		syscall(SYS_futex, (unsigned *)&b->gen, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		return;
	}
	for (unsigned spins = 0; atomic_load(&b->gen) == gen;) {
		if (spins < 256) {
			spins++;
			cpu_relax();
			continue;
		}
		struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
		syscall(SYS_futex, (unsigned *)&b->gen, FUTEX_WAIT, gen, &ts, NULL, 0);
		if (coordinator && atomic_load(&b->gen) == gen)
			check_workers();
	}
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* 0 a quarter of the time, else uniform below 2^k for k uniform in 0..MAX_SPIN_SHIFT. */
static unsigned random_spin(uint64_t *s)
{
	if (splitmix(s) % 4 == 0)
		return 0;
	unsigned k = (unsigned)(splitmix(s) % (MAX_SPIN_SHIFT + 1));
	return (unsigned)(splitmix(s) & ((1ULL << k) - 1));
}

/* The timing plan of one run: a function of the seed and the run number only. */
static void make_plan(unsigned long run)
{
	uint64_t s = g_conc.seed ^ (run * 0xd1342543de82ef95ULL);
	splitmix(&s);
	unsigned mode = (unsigned)(splitmix(&s) % 3); /* any CPU, one CPU for all, one CPU each */
	unsigned base = (unsigned)(splitmix(&s) % (uint64_t)g_ncpus);
	for (int t = 0; t < g_nthreads; t++) {
		struct thread_plan *p = &g_shm->thread[t];
		p->cpu = mode == 0 ? -1 : g_cpus[mode == 1 ? base : (base + (unsigned)t) % (unsigned)g_ncpus];
		p->start_yield = splitmix(&s) % 8 == 0;
		p->start_spin = random_spin(&s);
	}
	for (size_t i = 0; i < g_nops; i++) {
		g_op_plan[i].yield = splitmix(&s) % 8 == 0;
		g_op_plan[i].spin = random_spin(&s);
	}
}

static void pause_for(unsigned n, int yield)
{
	if (yield)
		sched_yield();
	else
		spin(n);
}

static void set_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	if (cpu < 0)
		for (int i = 0; i < g_ncpus; i++)
			CPU_SET(g_cpus[i], &set);
	else
		CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set) != 0)
		die(1, "sched_setaffinity %s", errno_name(errno));
}

static void open_files(void)
{
	char path[PATH_MAX];
	for (size_t i = 0; i < g_nfiles; i++) {
		join_path(path, sizeof path, "", g_files[i].name);
		g_files[i].fd = open(path, O_RDWR | O_CLOEXEC);
		if (g_files[i].fd < 0)
			die(1, "open %s %s", g_files[i].name, errno_name(errno));
	}
}

static void close_files(void)
{
	for (size_t i = 0; i < g_nfiles; i++) {
		if (g_files[i].fd >= 0)
			close(g_files[i].fd);
		g_files[i].fd = -1;
	}
}

/* Run one op of a concurrent run and keep its outcome in the shared area. */
static void conc_op(const struct cmd *c)
{
	struct op_result *o = &g_op_result[c->ordinal];
	unsigned char *buf = (c->op == OP_LOAD || c->op == OP_READ) ? g_op_data + c->data_off : c->data;
	struct result r;
	o->has_data = exec_op(c, buf, &r, &o->n);
	o->sig = r.sig;
	o->err = r.err;
}

/* Drop the slot mappings that the ops in ops[0..n) made (`at` ones: see at_ranges). */
static void drop_mappings(const size_t *ops, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		const struct cmd *c = &g_cmds[ops[k]];
		if (c->op == OP_MMAP && g_maps[c->mapping].place != PLACE_AT) {
			reserve_at(slot_addr(c->mapping), g_maps[c->mapping].slot_len);
			g_maps[c->mapping].mapped = 0;
		}
	}
}

/* A new run: no variable holds an address yet (in this process's copy of the mappings). */
static void unpublish_all(void)
{
	for (size_t i = 0; i < g_nmaps; i++)
		atomic_store_explicit(&g_maps[i].published, 0, memory_order_relaxed);
}

/* The child of a concurrent fork: run thread t's ops with its timing plan, then exit. */
static void conc_child_main(int t)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	const struct thread_plan *plan = &g_shm->thread[t];
	set_cpu(plan->cpu);
	pause_for(plan->start_spin, plan->start_yield);
	for (size_t k = 0; k < g_thread_nops[t]; k++) {
		const struct cmd *c = &g_cmds[g_thread_ops[t][k]];
		if (k)
			pause_for(g_op_plan[c->ordinal].spin, g_op_plan[c->ordinal].yield);
		conc_op(c);
	}
	_exit(0);
}

static void worker_loop(int t)
{
	alt_stack();
	int cpu = -2;
	for (unsigned long run = 0; run < g_conc.runs; run++) {
		barrier_wait(0); /* the run's files exist */
		if (g_conc.kind == WORKER_PROCESSES) {
			open_files();
			unpublish_all();
			at_ranges(0);
		}
		const struct thread_plan *plan = &g_shm->thread[t];
		if (plan->cpu != cpu) {
			set_cpu(plan->cpu);
			cpu = plan->cpu;
		}
		barrier_wait(0); /* start together */
		size_t nops = g_forked_by[t] >= 0 ? 0 : g_thread_nops[t]; /* a child's ops: its process's */
		if (nops)
			pause_for(plan->start_spin, plan->start_yield);
		for (size_t k = 0; k < nops; k++) {
			const struct cmd *c = &g_cmds[g_thread_ops[t][k]];
			if (k)
				pause_for(g_op_plan[c->ordinal].spin, g_op_plan[c->ordinal].yield);
			conc_op(c);
		}
		for (int u = 0; u < g_nthreads; u++)
			if (g_forked_by[u] == t) /* its child's ops are done and its mm is gone */
				reap_child(g_conc_child[u], u);
		barrier_wait(0); /* every op done */
		drop_mappings(g_thread_ops[t], nops);
		if (g_conc.kind == WORKER_PROCESSES) {
			at_ranges(1);
			close_files();
		}
		barrier_wait(0); /* mappings dropped: the coordinator reads the files */
	}
}

static void *worker_thread(void *arg)
{
	worker_loop((int)(intptr_t)arg);
	return NULL;
}

/* Distinct outcomes: serialized, hashed, counted. */
struct outcome {
	unsigned char *bytes;
	size_t len;
	uint64_t hash;
	unsigned long count, first;
};

static struct outcome *g_outcomes;
static size_t g_noutcomes, g_outcomes_cap;
static size_t *g_outcome_index; /* open addressing: 1 + index into g_outcomes, or 0 */
static size_t g_index_cap;
static unsigned char *g_ser;
static size_t g_ser_len, g_ser_cap;

static void ser_put(const void *p, size_t n)
{
	g_ser = xgrow(g_ser, &g_ser_cap, g_ser_len + n, 1);
	memcpy(g_ser + g_ser_len, p, n);
	g_ser_len += n;
}

static void ser_u64(uint64_t v)
{
	ser_put(&v, sizeof v);
}

enum { RES_OK, RES_SIGBUS, RES_SIGSEGV, RES_ERRNO, RES_DATA };

static void index_insert(size_t i)
{
	size_t mask = g_index_cap - 1;
	size_t h = (size_t)g_outcomes[i].hash & mask;
	while (g_outcome_index[h])
		h = (h + 1) & mask;
	g_outcome_index[h] = i + 1;
}

static void remember_outcome(unsigned long run)
{
	uint64_t hash = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < g_ser_len; i++)
		hash = (hash ^ g_ser[i]) * 0x100000001b3ULL;
	if (g_index_cap == 0 || 2 * (g_noutcomes + 1) > g_index_cap) {
		free(g_outcome_index);
		g_index_cap = g_index_cap ? 2 * g_index_cap : 64;
		g_outcome_index = xcalloc(g_index_cap, sizeof *g_outcome_index);
		for (size_t i = 0; i < g_noutcomes; i++)
			index_insert(i);
	}
	size_t mask = g_index_cap - 1;
	for (size_t h = (size_t)hash & mask; g_outcome_index[h]; h = (h + 1) & mask) {
		struct outcome *o = &g_outcomes[g_outcome_index[h] - 1];
		if (o->hash == hash && o->len == g_ser_len && memcmp(o->bytes, g_ser, g_ser_len) == 0) {
			o->count++;
			return;
		}
	}
	g_outcomes = xgrow(g_outcomes, &g_outcomes_cap, g_noutcomes + 1, sizeof *g_outcomes);
	struct outcome *o = &g_outcomes[g_noutcomes];
	o->bytes = xcalloc(g_ser_len, 1);
	memcpy(o->bytes, g_ser, g_ser_len);
	o->len = g_ser_len;
	o->hash = hash;
	o->count = 1;
	o->first = run;
	index_insert(g_noutcomes++);
}

/* Serialize the run's outcome (every op in program order, then every file) and count it. */
static void record_run(unsigned long run)
{
	static unsigned char *buf;
	static size_t cap;
	g_ser_len = 0;
	for (size_t i = 0; i < g_ncmds; i++) {
		const struct cmd *c = &g_cmds[i];
		if (c->kind != CMD_OP)
			continue;
		const struct op_result *o = &g_op_result[c->ordinal];
		unsigned char kind = o->sig == SIGBUS ? RES_SIGBUS
				     : o->sig == SIGSEGV ? RES_SIGSEGV
				     : o->err ? RES_ERRNO
				     : o->has_data ? RES_DATA
				     : RES_OK;
		ser_put(&kind, 1);
		if (kind == RES_ERRNO)
			ser_u64((uint64_t)o->err);
		if (kind == RES_DATA) {
			ser_u64(o->n);
			ser_put(g_op_data + c->data_off, o->n);
		}
	}
	for (size_t i = 0; i < g_nfiles; i++) {
		struct file *f = &g_files[i];
		struct stat st;
		if (fstat(f->fd, &st) != 0)
			die(1, "fstat %s %s", f->name, errno_name(errno));
		uint64_t size = (uint64_t)st.st_size;
		unsigned char read_it = size <= g_conc.limit;
		ser_u64(size);
		ser_put(&read_it, 1);
		if (!read_it)
			continue;
		buf = xgrow(buf, &cap, (size_t)size + 1, 1);
		size_t done = 0;
		while (done < size) {
			ssize_t k = pread(f->fd, buf + done, (size_t)size - done, (off_t)done);
			if (k < 0)
				die(1, "pread %s %s", f->name, errno_name(errno));
			if (k == 0)
				break;
			done += (size_t)k;
		}
		ser_u64(done);
		ser_put(buf, done);
	}
	remember_outcome(run);
}

static uint64_t take_u64(const unsigned char **p)
{
	uint64_t v;
	memcpy(&v, *p, sizeof v);
	*p += sizeof v;
	return v;
}

static void print_outcomes(void)
{
	printf("concurrent %lu %s %d\n", g_conc.runs, g_conc.kind == WORKER_THREADS ? "threads" : "processes",
	       g_ncpus);
	for (size_t k = 0; k < g_noutcomes; k++) {
		const struct outcome *o = &g_outcomes[k];
		const unsigned char *p = o->bytes;
		printf("outcome %lu %lu\n", o->count, o->first);
		for (size_t i = 0; i < g_ncmds; i++) {
			const struct cmd *c = &g_cmds[i];
			if (c->kind != CMD_OP)
				continue;
			unsigned char kind = *p++;
			printf("res %lu ", c->index);
			if (kind == RES_SIGBUS)
				fputs("SIGBUS", stdout);
			else if (kind == RES_SIGSEGV)
				fputs("SIGSEGV", stdout);
			else if (kind == RES_ERRNO)
				printf("errno %s", errno_name((int)take_u64(&p)));
			else if (kind == RES_DATA) {
				size_t n = (size_t)take_u64(&p);
				fputs("data ", stdout);
				print_hex(p, n);
				p += n;
			} else
				fputs("ok", stdout);
			fputc('\n', stdout);
		}
		for (size_t i = 0; i < g_nfiles; i++) {
			uint64_t size = take_u64(&p);
			unsigned char read_it = *p++;
			printf("file %s %llu ", g_files[i].name, (unsigned long long)size);
			if (read_it) {
				size_t n = (size_t)take_u64(&p);
				print_hex(p, n);
				p += n;
			} else
				fputc('*', stdout);
			fputc('\n', stdout);
		}
		printf("end-outcome\n");
	}
}

static void recreate_files(void)
{
	char path[PATH_MAX];
	for (size_t i = 0; i < g_ncmds; i++) {
		if (g_cmds[i].kind != CMD_FILE)
			continue;
		struct file *f = &g_files[g_cmds[i].file];
		if (f->fd >= 0)
			close(f->fd);
		join_path(path, sizeof path, "", f->name);
		if (unlink(path) != 0 && errno != ENOENT)
			die(1, "unlink %s %s", f->name, errno_name(errno));
		create_file(f);
	}
}

static void concurrent_setup(void)
{
	cpu_set_t set;
	if (sched_getaffinity(0, sizeof set, &set) != 0)
		die(1, "sched_getaffinity %s", errno_name(errno));
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			g_cpus[g_ncpus++] = i;
	if (g_ncpus == 0)
		die(1, "no CPU to run on");

	size_t data_len = 0;
	size_t caps[MAX_THREADS] = {0};
	size_t setup_cap = 0;
	for (size_t i = 0; i < g_ncmds; i++) {
		struct cmd *c = &g_cmds[i];
		if (c->kind != CMD_OP)
			continue;
		int t = c->thread;
		if (t == SETUP_THREAD) {
			g_setup_ops = xgrow(g_setup_ops, &setup_cap, g_setup_nops + 1, sizeof(size_t));
			g_setup_ops[g_setup_nops++] = i;
		} else {
			g_thread_ops[t] = xgrow(g_thread_ops[t], &caps[t], g_thread_nops[t] + 1, sizeof(size_t));
			g_thread_ops[t][g_thread_nops[t]++] = i;
		}
		if (c->op == OP_LOAD || c->op == OP_READ) {
			c->data_off = data_len;
			data_len += (size_t)c->length;
		}
	}
	size_t plan_off = round_up(sizeof(struct shared), 64);
	size_t result_off = round_up(plan_off + g_nops * sizeof(struct op_plan), 64);
	size_t data_off = round_up(result_off + g_nops * sizeof(struct op_result), 64);
	size_t len = data_off + data_len;
	unsigned char *p = mmap(NULL, len ? len : 1, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die(1, "shared-memory %s (%zu bytes)", errno_name(errno), len);
	g_shm = (struct shared *)p;
	g_op_plan = (struct op_plan *)(p + plan_off);
	g_op_result = (struct op_result *)(p + result_off);
	g_op_data = p + data_off;
	atomic_init(&g_shm->bar.count, 0);
	atomic_init(&g_shm->bar.gen, 0);
	g_shm->bar.n = (unsigned)g_nthreads + 1;
}

static void start_workers(pthread_t *threads)
{
	fflush(stdout); /* nothing buffered may be printed twice by a forked worker */
	pid_t parent = getpid();
	for (int t = 0; t < g_nthreads; t++) {
		if (g_conc.kind == WORKER_THREADS) {
			int e = pthread_create(&threads[t], NULL, worker_thread, (void *)(intptr_t)t);
			if (e != 0)
				die(1, "pthread_create %s", errno_name(e));
			continue;
		}
		pid_t pid = fork();
		if (pid < 0)
			die(1, "fork %s", errno_name(errno));
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(1);
			close_files(); /* the coordinator's; each run opens the files afresh */
			worker_loop(t);
			_exit(0);
		}
		g_worker_pid[t] = pid;
	}
}

static void stop_workers(pthread_t *threads)
{
	for (int t = 0; t < g_nthreads; t++) {
		if (g_conc.kind == WORKER_THREADS) {
			pthread_join(threads[t], NULL);
			continue;
		}
		int status;
		if (waitpid(g_worker_pid[t], &status, 0) != g_worker_pid[t])
			die(1, "waitpid %s", errno_name(errno));
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			die(1, "concurrent worker %d stopped (status %d)", t, status);
	}
}

static void run_concurrent(void)
{
	g_measure = 0;
	concurrent_setup();
	int want_dax = 0;
	for (size_t i = 0; i < g_ncmds; i++)
		want_dax |= g_cmds[i].kind == CMD_REQUIRE_DAX;
	pthread_t threads[MAX_THREADS];
	for (unsigned long run = 0; run < g_conc.runs; run++) {
		make_plan(run);
		recreate_files();
		if (run == 0) {
			if (want_dax)
				require_dax();
			start_workers(threads);
		}
		unpublish_all();
		at_ranges(0);
		for (size_t k = 0; k < g_setup_nops; k++)
			conc_op(&g_cmds[g_setup_ops[k]]);
		barrier_wait(1); /* files exist, the set-up has run */
		barrier_wait(1); /* start */
		barrier_wait(1); /* ops done: everyone drops their mappings */
		drop_mappings(g_setup_ops, g_setup_nops);
		at_ranges(1);
		/* Only now may the coordinator allocate (record_run): a range a munmap left a hole
		 * during the run is reserved again, so no buffer of ours can land in it. pread sees
		 * what was stored through the dropped mappings (the page cache, or pmem). */
		barrier_wait(1); /* mappings dropped */
		record_run(run);
	}
	stop_workers(threads);
	close_files();
	print_outcomes();
}

int main(int argc, char **argv)
{
	(void)argv;
	if (argc != 1) {
		fputs("usage: probe < program   (the input format is documented in probe.c)\n", stderr);
		return 2;
	}
	parse_program(stdin);
	prefault_self();
	pretouch_stack();
	install_handlers();
	claim_at_ranges();
	reserve_all();
	if (g_conc.on) {
		run_concurrent();
		return fflush(stdout) == 0 ? 0 : 1;
	}
	calibrate();
	at_ranges(0);
	for (size_t i = 0; i < g_ncmds; i++) {
		const struct cmd *c = &g_cmds[i];
		switch (c->kind) {
		case CMD_FILE:
			create_file(&g_files[c->file]);
			break;
		case CMD_REQUIRE_DAX:
			require_dax();
			break;
		case CMD_OP:
			run_op(c);
			break;
		case CMD_TIME:
			run_time(c);
			break;
		case CMD_CONCURRENT:
			break;
		}
	}
	for (int t = 0; t < MAX_THREADS; t++)
		if (g_seq_child[t].pid > 0) { /* a child with no ops: it exits when its pipe closes */
			close(g_seq_child[t].to_child);
			reap_child(g_seq_child[t].pid, t);
			close(g_seq_child[t].from_child);
		}
	dump_files();
	if (fflush(stdout) != 0)
		return 1;
	return 0;
}
