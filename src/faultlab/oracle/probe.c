/*
 * faultlab probe: run one sequential scenario against the real kernel and report what a
 * program observes (op outcomes, minor/major fault counts per op, final file contents).
 *
 * C11 + libc only; builds with `cc -std=c11 -O2 -Wall -Wextra -Werror` and with `-static`.
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
 *   op <i> mmap <var> <file> <offset> <length> private|shared ro|rw
 *   op <i> munmap <var>
 *   op <i> load <var> <offset> <length>     read bytes through the mapping
 *   op <i> store <var> <offset> <hex>       write bytes through the mapping
 *   op <i> read <file> <offset> <length>    pread()
 *   op <i> write <file> <offset> <hex>      pwrite() in chunks of at most 4 KiB
 *   op <i> truncate <file> <size>           ftruncate()
 *   op <i> msync <var>                      msync(MS_SYNC) over the mapping
 *   op <i> fsync <file>                     fsync()
 *   op <i> madvise <var> dontneed           madvise(MADV_DONTNEED) over the mapping
 *   time read|cow|shared <pages> [<reps>]   timing mode, see below
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
 * PROT_NONE afterwards; msync/madvise on an unmapped variable briefly lift that reservation so
 * the kernel answers as for an unmapped range (ENOMEM).
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
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
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

/* One mmap op = one mapping instance with its own slot in the reservation. */
struct mapping {
	size_t slot_off; /* offset of the slot in the reservation */
	size_t slot_len; /* rounded length + guard */
	size_t len;      /* length as requested */
	int mapped;
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
};

enum cmd_kind { CMD_FILE, CMD_REQUIRE_DAX, CMD_OP, CMD_TIME };

enum time_kind { TIME_READ, TIME_COW, TIME_SHARED };

struct cmd {
	enum cmd_kind kind;
	int line;
	/* CMD_FILE: file; CMD_OP: see op */
	size_t file;
	/* CMD_OP */
	unsigned long index;
	enum op_kind op;
	size_t mapping; /* mapping instance the op uses (mmap: the one it creates) */
	uint64_t offset;
	uint64_t length; /* load/read/mmap length; truncate size */
	unsigned char *data;
	size_t data_len;
	int shared;
	int writable;
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

static size_t new_slot(size_t len)
{
	static size_t maps_cap;
	if (len > (1UL << 46))
		parse_fail("mapping length %zu is too large", len);
	g_maps = xgrow(g_maps, &maps_cap, g_nmaps + 1, sizeof *g_maps);
	struct mapping *m = &g_maps[g_nmaps];
	m->slot_off = g_reserve_len;
	m->slot_len = round_up(len, SLOT_ALIGN) + GUARD;
	m->len = len;
	g_reserve_len += m->slot_len;
	return g_nmaps++;
}

static void check_access(size_t mapping, uint64_t offset, uint64_t length)
{
	const struct mapping *m = &g_maps[mapping];
	if (offset > m->slot_len || length > m->slot_len - offset)
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
	const char *k = tok[2];
	if (strcmp(k, "mmap") == 0) {
		need(ntok, 9, "op <i> mmap <var> <file> <offset> <length> private|shared ro|rw");
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
		c->mapping = bind_var(tok[3], new_slot(c->length));
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
		else
			parse_fail("unknown directive '%s'", tok[0]);
	}
	free(line);
	if (!have_dir)
		parse_fail("empty program: expected `dir <path>`");
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

/* ------------------------------------------------------------------------------------------ */
/* Measured windows                                                                           */

struct result {
	long minflt, majflt;
	int sig; /* 0, SIGBUS or SIGSEGV */
	int err; /* errno, or 0 */
	long ret;
};

static struct rusage g_r0, g_r1;
static sigjmp_buf g_jmp;
static volatile sig_atomic_t g_armed;
static volatile sig_atomic_t g_sig;
static volatile uintptr_t g_lo, g_hi;
static unsigned char *g_alt_stack;

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

static void install_handlers(void)
{
	g_alt_stack = xcalloc(ALT_STACK_SIZE, 1);
	pretouch(g_alt_stack, ALT_STACK_SIZE);
	stack_t ss = {.ss_sp = g_alt_stack, .ss_size = ALT_STACK_SIZE, .ss_flags = 0};
	if (sigaltstack(&ss, NULL) != 0)
		die(1, "sigaltstack %s", errno_name(errno));
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) != 0 || sigaction(SIGSEGV, &sa, NULL) != 0)
		die(1, "sigaction %s", errno_name(errno));
}

static void finish_window(struct result *r)
{
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
		getrusage(RUSAGE_SELF, &g_r0);
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
	getrusage(RUSAGE_SELF, &g_r1);
	finish_window(r);
	r->sig = g_sig;
}

enum call_kind { CALL_MMAP, CALL_MUNMAP, CALL_MSYNC, CALL_MADVISE, CALL_PREAD, CALL_PWRITE,
		 CALL_FTRUNCATE, CALL_FSYNC };

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
	getrusage(RUSAGE_SELF, &g_r0);
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
	}
	if (ret < 0)
		err = errno;
	getrusage(RUSAGE_SELF, &g_r1);
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

/* msync/madvise on an unmapped variable: lift the reservation so the kernel sees a hole. */
static void range_call(const struct cmd *c, struct call *call, struct result *r)
{
	struct mapping *m = &g_maps[c->mapping];
	unsigned char *addr = slot_addr(c->mapping);
	size_t span = round_up(m->len, PAGE);
	call->addr = addr;
	call->len = m->len;
	if (!m->mapped && span)
		munmap(addr, span);
	call_window(call, r);
	if (!m->mapped && span)
		reserve_at(addr, span);
}

static void run_op(const struct cmd *c)
{
	struct result r;
	struct call call;
	memset(&call, 0, sizeof call);
	/* A program may have no mappings (or no files) at all: only ops that name one use it. */
	struct file *f = g_files ? &g_files[c->file] : NULL;
	struct mapping *m = g_maps ? &g_maps[c->mapping] : NULL;
	unsigned char *addr = g_maps ? slot_addr(c->mapping) : NULL;

	switch (c->op) {
	case OP_MMAP:
		call.kind = CALL_MMAP;
		call.addr = addr;
		call.len = (size_t)c->length;
		call.prot = PROT_READ | (c->writable ? PROT_WRITE : 0);
		call.flags = (c->shared ? MAP_SHARED : MAP_PRIVATE) | MAP_FIXED;
		call.fd = f->fd;
		call.off = c->offset;
		call_window(&call, &r);
		if (r.ret == 0)
			m->mapped = 1;
		else if (call.len)
			reserve_at(addr, round_up(call.len, PAGE));
		print_result(c, &r, NULL, 0);
		return;
	case OP_MUNMAP:
		call.kind = CALL_MUNMAP;
		call.addr = addr;
		call.len = m->len;
		call_window(&call, &r);
		if (r.ret == 0 && m->len)
			reserve_at(addr, round_up(m->len, PAGE));
		if (r.ret == 0)
			m->mapped = 0;
		print_result(c, &r, NULL, 0);
		return;
	case OP_MSYNC:
		call.kind = CALL_MSYNC;
		range_call(c, &call, &r);
		print_result(c, &r, NULL, 0);
		return;
	case OP_MADVISE:
		call.kind = CALL_MADVISE;
		range_call(c, &call, &r);
		print_result(c, &r, NULL, 0);
		return;
	case OP_LOAD: {
		unsigned char *buf = touched_buffer((size_t)c->length);
		access_window(0, addr + c->offset, buf, (size_t)c->length, &r);
		print_result(c, &r, buf, (size_t)c->length);
		free(buf);
		return;
	}
	case OP_STORE: {
		unsigned char *buf = touched_buffer(c->data_len);
		if (c->data_len)
			memcpy(buf, c->data, c->data_len);
		access_window(1, addr + c->offset, buf, c->data_len, &r);
		print_result(c, &r, NULL, 0);
		free(buf);
		return;
	}
	case OP_READ: {
		unsigned char *buf = touched_buffer((size_t)c->length);
		call.kind = CALL_PREAD;
		call.fd = f->fd;
		call.buf = buf;
		call.len = (size_t)c->length;
		call.off = c->offset;
		call_window(&call, &r);
		print_result(c, &r, buf, r.ret > 0 ? (size_t)r.ret : 0);
		free(buf);
		return;
	}
	case OP_WRITE: {
		unsigned char *buf = touched_buffer(c->data_len);
		if (c->data_len)
			memcpy(buf, c->data, c->data_len);
		call.kind = CALL_PWRITE;
		call.fd = f->fd;
		call.buf = buf;
		call.len = c->data_len;
		call.off = c->offset;
		call_window(&call, &r);
		print_result(c, &r, NULL, 0);
		free(buf);
		return;
	}
	case OP_TRUNCATE:
		call.kind = CALL_FTRUNCATE;
		call.fd = f->fd;
		call.off = c->length;
		call_window(&call, &r);
		print_result(c, &r, NULL, 0);
		return;
	case OP_FSYNC:
		call.kind = CALL_FSYNC;
		call.fd = f->fd;
		call_window(&call, &r);
		print_result(c, &r, NULL, 0);
		return;
	}
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
	reserve_all();
	calibrate();
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
		}
	}
	dump_files();
	if (fflush(stdout) != 0)
		return 1;
	return 0;
}
