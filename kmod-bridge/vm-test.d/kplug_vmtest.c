// SPDX-License-Identifier: GPL-2.0
/*
 * kplug_vmtest: guest-side checks for kplug_bridge.ko, built with gcc -static
 * and run from the initramfs by kmod-bridge/vm-test.
 *
 *   kplug_vmtest mkdata DIR   (on the host) write the disk's files into DIR
 *   kplug_vmtest phase1 MNT   module fresh, loaded with allow_debug=1
 *   kplug_vmtest phase2 MNT   module reloaded without allow_debug
 *
 * Residency is measured with mincore() on a MAP_SHARED mapping (it looks up
 * the page cache, never faults).  Every check that a range became resident
 * first asserts that nothing was resident, and the negative checks assert
 * that the same check reports failure when the hint was truncated or aimed
 * elsewhere, so a check that cannot fail would itself fail the run.
 *
 * Output: one "ok N - what" / "not ok N - what: why" line per check, then
 * "KPLUG_GUEST <phase> PASS|FAIL"; exit status 0 only on pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/kplug_bridge.h>

#define PG 4096ULL
#define DATA_PAGES 8192ULL		/* data: 32 MiB, page i holds u64 i */
#define SPARSE_SIZE (256ULL << 20)	/* sparse: larger than the 64 MiB cap */
#define SMALL_SIZE 10000ULL		/* small: not a page multiple */

static int n_checks, n_failed;
static int devfd;
static const char *mnt;
static struct kplug_stats expect;	/* what the module should count */

static void check(int cond, const char *what, const char *fmt, ...)
{
	va_list ap;

	n_checks++;
	if (cond) {
		printf("ok %d - %s\n", n_checks, what);
	} else {
		n_failed++;
		printf("not ok %d - %s: ", n_checks, what);
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf("\n");
	}
	fflush(stdout);
}

static void die(const char *what)
{
	printf("not ok - fatal: %s: %s\nKPLUG_GUEST FAIL\n", what, strerror(errno));
	exit(1);
}

static char *path(const char *name)
{
	static char buf[4][512];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", mnt, name);
	return buf[i];
}

static int open_or_die(const char *p, int flags)
{
	int fd = open(p, flags, 0644);

	if (fd < 0)
		die(p);
	return fd;
}

/* Issue one hint; returns 0 or the errno, and books it into `expect`. */
static int hint(int fd, uint32_t flags, uint64_t off, uint64_t len,
		struct kplug_hint *out)
{
	struct kplug_hint h = { .fd = fd, .flags = flags, .offset = off, .length = len };
	int err = ioctl(devfd, KPLUG_IOC_HINT, &h) ? errno : 0;

	if (out)
		*out = h;
	if (!err) {
		expect.hints++;
		expect.bytes_requested += h.bytes_requested;
		expect.bytes_waited += h.bytes_resident;
		expect.chunks += h.chunks;
	} else if (err == EAGAIN) {
		expect.throttled++;
	} else if (err == EBADF || err == EINVAL || err == EISDIR || err == EFAULT) {
		expect.rejected++;
	} else {
		expect.errors++;
	}
	return err;
}

static void drop_caches(void)
{
	int fd;

	sync();
	fd = open_or_die("/proc/sys/vm/drop_caches", O_WRONLY);
	if (write(fd, "3\n", 2) != 2)
		die("drop_caches");
	close(fd);
}

/* Resident pages of [first, last] of the file. */
static uint64_t resident(int fd, uint64_t size, uint64_t first, uint64_t last)
{
	uint64_t pages = (size + PG - 1) / PG, n = 0, i;
	unsigned char *vec;
	void *map;

	if (last >= pages)
		last = pages - 1;
	if (first > last)
		return 0;
	map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		die("mmap");
	vec = malloc(pages);
	if (!vec || mincore(map, size, vec))
		die("mincore");
	for (i = first; i <= last; i++)
		n += vec[i] & 1;
	free(vec);
	munmap(map, size);
	return n;
}

static uint64_t resident_outside(int fd, uint64_t size, uint64_t first, uint64_t last)
{
	return resident(fd, size, 0, size / PG) - resident(fd, size, first, last);
}

/* Poll until [first, last] is resident or timeout_ms passes; returns resident count. */
static uint64_t poll_resident(int fd, uint64_t size, uint64_t first, uint64_t last,
			      int timeout_ms)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	uint64_t want = last - first + 1, n = 0;
	int waited;

	for (waited = 0; waited <= timeout_ms; waited += 20) {
		n = resident(fd, size, first, last);
		if (n == want)
			break;
		nanosleep(&ts, NULL);
	}
	return n;
}

/* Every u64 of page i must equal i.  Reads through an FADV_RANDOM fd so the
 * check itself triggers no readahead. */
static int data_ok(uint64_t first, uint64_t last, char *why, size_t whylen)
{
	static uint64_t buf[PG / 8];
	int fd = open_or_die(path("data"), O_RDONLY);
	uint64_t i, j;

	posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	for (i = first; i <= last; i++) {
		if (pread(fd, buf, PG, i * PG) != (ssize_t)PG) {
			snprintf(why, whylen, "short read at page %llu", (unsigned long long)i);
			close(fd);
			return 0;
		}
		for (j = 0; j < PG / 8; j++)
			if (buf[j] != i) {
				snprintf(why, whylen, "page %llu word %llu = %llu",
					 (unsigned long long)i, (unsigned long long)j,
					 (unsigned long long)buf[j]);
				close(fd);
				return 0;
			}
	}
	close(fd);
	return 1;
}

/*
 * The core scenario: caches dropped -> nothing resident; hint [first, last]
 * (byte range may start mid-page); the range becomes resident with the right
 * data and nothing else does.
 */
static void scenario(const char *name, int fd, uint32_t flags, uint64_t first,
		     uint64_t last, uint64_t start_skew)
{
	const uint64_t size = DATA_PAGES * PG;
	uint64_t want = last - first + 1, got, off = first * PG + start_skew;
	uint64_t len = (last + 1) * PG - off;
	struct kplug_hint h;
	char what[160], why[160] = "";
	int err;

	drop_caches();
	got = resident(fd, size, 0, DATA_PAGES - 1);
	snprintf(what, sizeof(what), "%s: before the hint no page is resident", name);
	check(got == 0, what, "%llu pages resident", (unsigned long long)got);

	err = hint(fd, flags, off, len, &h);
	snprintf(what, sizeof(what), "%s: hint accepted, bytes_requested = length", name);
	check(!err && h.bytes_requested == len, what, "err %s, bytes_requested %llu of %llu",
	      strerror(err), (unsigned long long)h.bytes_requested, (unsigned long long)len);
	snprintf(what, sizeof(what), "%s: chunked (%u readahead calls)", name, h.chunks);
	check(h.chunks > 1, what, "only %u chunk(s) for %llu bytes", h.chunks,
	      (unsigned long long)len);

	if (flags & KPLUG_HINT_WAIT) {
		snprintf(what, sizeof(what), "%s: bytes_resident = length", name);
		check(h.bytes_resident == len, what, "%llu", (unsigned long long)h.bytes_resident);
		got = resident(fd, size, first, last);
		snprintf(what, sizeof(what), "%s: all %llu pages resident on return", name,
			 (unsigned long long)want);
	} else {
		got = poll_resident(fd, size, first, last, 10000);
		snprintf(what, sizeof(what), "%s: all %llu pages resident after polling", name,
			 (unsigned long long)want);
	}
	check(got == want, what, "%llu of %llu", (unsigned long long)got,
	      (unsigned long long)want);

	got = resident_outside(fd, size, first, last);
	snprintf(what, sizeof(what), "%s: no page outside the range is resident", name);
	check(got == 0, what, "%llu pages outside resident", (unsigned long long)got);

	snprintf(what, sizeof(what), "%s: data in the range is correct", name);
	check(data_ok(first, last, why, sizeof(why)), what, "%s", why);
}

static void check_errno(const char *what, int err, int want)
{
	check(err == want, what, "got %s (%d), want %s", err ? strerror(err) : "success",
	      err, strerror(want));
}

static void check_stats(const char *phase)
{
	struct kplug_stats s;
	char what[96];

	snprintf(what, sizeof(what), "%s: KPLUG_IOC_STATS succeeds", phase);
	check(ioctl(devfd, KPLUG_IOC_STATS, &s) == 0, what, "%s", strerror(errno));
#define STAT(f) do { \
		snprintf(what, sizeof(what), "%s: stats." #f " = %llu", phase, \
			 (unsigned long long)expect.f); \
		check(s.f == expect.f, what, "module says %llu", (unsigned long long)s.f); \
	} while (0)
	STAT(hints);
	STAT(bytes_requested);
	STAT(bytes_waited);
	STAT(chunks);
	STAT(rejected);
	STAT(throttled);
	STAT(errors);
#undef STAT
}

static void check_version(uint32_t want_flags)
{
	struct kplug_version v;

	check(ioctl(devfd, KPLUG_IOC_VERSION, &v) == 0, "KPLUG_IOC_VERSION succeeds",
	      "%s", strerror(errno));
	check(v.version == KPLUG_BRIDGE_VERSION && v.max_length == KPLUG_HINT_MAX_LENGTH &&
	      v.flags == want_flags, "version, cap and flags as in the header",
	      "version %u max_length %llu flags %#x", v.version,
	      (unsigned long long)v.max_length, v.flags);
}

static void set_max_inflight(const char *val)
{
	int fd = open_or_die("/sys/module/kplug_bridge/parameters/max_inflight", O_WRONLY);

	if (write(fd, val, strlen(val)) != (ssize_t)strlen(val))
		die("max_inflight");
	close(fd);
}

static void bad_inputs(int data)
{
	struct kplug_hint h;
	int fd, pipefd[2];

	check_errno("fd -1: EBADF", hint(-1, 0, 0, PG, NULL), EBADF);
	check_errno("fd not open: EBADF", hint(9999, 0, 0, PG, NULL), EBADF);

	fd = open_or_die(path("data"), O_WRONLY);
	check_errno("write-only fd: EBADF", hint(fd, 0, 0, PG, NULL), EBADF);
	close(fd);

	fd = open_or_die(path("data"), O_PATH);
	check_errno("O_PATH fd: EBADF", hint(fd, 0, 0, PG, NULL), EBADF);
	close(fd);

	fd = open_or_die(path("subdir"), O_RDONLY | O_DIRECTORY);
	check_errno("directory: EISDIR", hint(fd, 0, 0, PG, NULL), EISDIR);
	close(fd);

	fd = open_or_die("/dev/null", O_RDONLY);
	check_errno("character device: EINVAL", hint(fd, 0, 0, PG, NULL), EINVAL);
	close(fd);

	if (pipe(pipefd))
		die("pipe");
	check_errno("pipe: EINVAL", hint(pipefd[0], 0, 0, PG, NULL), EINVAL);
	close(pipefd[0]);
	close(pipefd[1]);

	check_errno("unknown flag bit 1: EINVAL", hint(data, 1U << 1, 0, PG, NULL), EINVAL);
	check_errno("unknown flag bit 30: EINVAL", hint(data, 1U << 30, 0, PG, NULL), EINVAL);

	memset(&h, 0, sizeof(h));
	h.fd = data;
	h.length = PG;
	h.reserved = 1;
	check_errno("reserved != 0: EINVAL",
		    ioctl(devfd, KPLUG_IOC_HINT, &h) ? errno : 0, EINVAL);
	expect.rejected++;

	check_errno("NULL argument: EFAULT",
		    ioctl(devfd, KPLUG_IOC_HINT, NULL) ? errno : 0, EFAULT);
	expect.rejected++;
	check_errno("unknown ioctl: ENOTTY",
		    ioctl(devfd, _IO(KPLUG_IOC_MAGIC, 42)) ? errno : 0, ENOTTY);

	set_max_inflight("0");
	check_errno("max_inflight=0: EAGAIN", hint(data, 0, 0, PG, NULL), EAGAIN);
	set_max_inflight("16");
}

static void clamping(int data)
{
	struct kplug_hint h;
	int sparse = open_or_die(path("sparse"), O_RDONLY);
	int small = open_or_die(path("small"), O_RDONLY);
	const uint64_t size = DATA_PAGES * PG;
	int err;

	err = hint(sparse, 0, 0, UINT64_MAX, &h);
	check(!err && h.bytes_requested == KPLUG_HINT_MAX_LENGTH,
	      "length 2^64-1 on a 256 MiB file: clamped to 64 MiB",
	      "err %d bytes_requested %llu", err, (unsigned long long)h.bytes_requested);

	err = hint(data, 0, PG, UINT64_MAX, &h);
	check(!err && h.bytes_requested == size - PG,
	      "offset+length overflowing u64: clamped to EOF",
	      "err %d bytes_requested %llu", err, (unsigned long long)h.bytes_requested);

	err = hint(data, 0, size, PG, &h);
	check(!err && h.bytes_requested == 0, "offset at EOF: success, 0 bytes",
	      "err %d bytes_requested %llu", err, (unsigned long long)h.bytes_requested);

	err = hint(data, KPLUG_HINT_WAIT, UINT64_MAX, PG, &h);
	check(!err && h.bytes_requested == 0, "offset 2^64-1: success, 0 bytes",
	      "err %d bytes_requested %llu", err, (unsigned long long)h.bytes_requested);

	err = hint(data, 0, 0, 0, &h);
	check(!err && h.bytes_requested == 0 && h.chunks == 0, "length 0: success, 0 bytes",
	      "err %d bytes_requested %llu", err, (unsigned long long)h.bytes_requested);

	err = hint(small, KPLUG_HINT_WAIT, 0, 1 << 20, &h);
	check(!err && h.bytes_requested == SMALL_SIZE && h.bytes_resident == SMALL_SIZE &&
	      resident(small, SMALL_SIZE, 0, 2) == 3,
	      "1 MiB on a 10000-byte file with WAIT: 10000 bytes, 3 pages resident",
	      "err %d bytes_requested %llu resident %llu", err,
	      (unsigned long long)h.bytes_requested, (unsigned long long)h.bytes_resident);
	close(sparse);
	close(small);
}

/* Range A: 8 MiB at page 1000; B: 10 MiB at page 5000; C: 100 pages at 200. */
#define A_FIRST 1000ULL
#define A_LAST (A_FIRST + 2048 - 1)
#define B_FIRST 5000ULL
#define B_LAST (B_FIRST + 2560 - 1)
#define C_FIRST 200ULL
#define C_LAST (C_FIRST + 100 - 1)

static void negatives(int data)
{
	const uint64_t size = DATA_PAGES * PG;
	uint64_t got, want = B_LAST - B_FIRST + 1;
	struct kplug_hint h;
	int err;

	/* One un-chunked vfs_fadvise: the kernel truncates it. */
	drop_caches();
	got = resident(data, size, 0, DATA_PAGES - 1);
	check(got == 0, "negative (NOCHUNK): nothing resident before", "%llu",
	      (unsigned long long)got);
	err = hint(data, KPLUG_HINT_DEBUG_NOCHUNK, B_FIRST * PG, want * PG, &h);
	check(!err && h.chunks == 1, "negative (NOCHUNK): accepted with allow_debug, 1 call",
	      "err %d chunks %u", err, h.chunks);
	got = poll_resident(data, size, B_FIRST, B_LAST, 2000);
	check(got < want, "negative (NOCHUNK): the residency check FAILS as it must",
	      "all %llu pages resident: check cannot fail", (unsigned long long)want);
	printf("# NOCHUNK brought in %llu of %llu pages\n", (unsigned long long)got,
	       (unsigned long long)want);

	/* Hint a different range: the check for B must fail. */
	drop_caches();
	err = hint(data, KPLUG_HINT_WAIT, C_FIRST * PG, (C_LAST - C_FIRST + 1) * PG, &h);
	check(!err, "negative (other range): hint of range C accepted", "err %d", err);
	got = poll_resident(data, size, B_FIRST, B_LAST, 500);
	check(got == 0, "negative (other range): check of range B FAILS as it must",
	      "%llu pages of B resident", (unsigned long long)got);
	got = resident_outside(data, size, B_FIRST, B_LAST);
	check(got == C_LAST - C_FIRST + 1, "negative (other range): outside check sees range C",
	      "%llu", (unsigned long long)got);
}

static int phase1(void)
{
	int data = open_or_die(path("data"), O_RDONLY);

	check_version(KPLUG_HINT_WAIT | KPLUG_HINT_DEBUG_NOCHUNK);
	check_stats("fresh module");
	scenario("WAIT", data, KPLUG_HINT_WAIT, A_FIRST, A_LAST, 100);
	scenario("no WAIT", data, 0, B_FIRST, B_LAST, 0);
	negatives(data);
	bad_inputs(data);
	clamping(data);
	check_stats("after phase 1");
	drop_caches();
	close(data);
	return 0;
}

static int phase2(void)
{
	int data = open_or_die(path("data"), O_RDONLY);

	check_version(KPLUG_HINT_WAIT);
	check_stats("reloaded module");
	check_errno("NOCHUNK without allow_debug: EINVAL",
		    hint(data, KPLUG_HINT_DEBUG_NOCHUNK, 0, PG, NULL), EINVAL);
	scenario("after reload, WAIT", data, KPLUG_HINT_WAIT, A_FIRST, A_LAST, 0);
	check_stats("after phase 2");
	close(data);
	return 0;
}

static void write_all(int fd, const void *buf, size_t len)
{
	if (write(fd, buf, len) != (ssize_t)len)
		die("write");
}

static int mkdata(void)
{
	static uint64_t page[PG / 8];
	char small[SMALL_SIZE];
	uint64_t i, j;
	int fd;

	fd = open_or_die(path("data"), O_WRONLY | O_CREAT | O_TRUNC);
	for (i = 0; i < DATA_PAGES; i++) {
		for (j = 0; j < PG / 8; j++)
			page[j] = i;
		write_all(fd, page, PG);
	}
	close(fd);
	fd = open_or_die(path("sparse"), O_WRONLY | O_CREAT | O_TRUNC);
	if (ftruncate(fd, SPARSE_SIZE))
		die("ftruncate");
	close(fd);
	fd = open_or_die(path("small"), O_WRONLY | O_CREAT | O_TRUNC);
	memset(small, 's', sizeof(small));
	write_all(fd, small, sizeof(small));
	close(fd);
	if (mkdir(path("subdir"), 0755) && errno != EEXIST)
		die("mkdir");
	return 0;
}

int main(int argc, char **argv)
{
	const char *phase;

	if (argc != 3) {
		fprintf(stderr, "usage: %s mkdata|phase1|phase2 DIR\n", argv[0]);
		return 2;
	}
	phase = argv[1];
	mnt = argv[2];
	umask(0);
	if (!strcmp(phase, "mkdata"))
		return mkdata();

	devfd = open("/dev/" KPLUG_BRIDGE_DEVNAME, O_RDONLY | O_CLOEXEC);
	if (devfd < 0)
		die("open /dev/" KPLUG_BRIDGE_DEVNAME);
	if (!strcmp(phase, "phase1"))
		phase1();
	else if (!strcmp(phase, "phase2"))
		phase2();
	else
		return 2;
	printf("KPLUG_GUEST %s %s (%d checks, %d failed)\n", phase, n_failed ? "FAIL" : "PASS",
	       n_checks, n_failed);
	return n_failed ? 1 : 0;
}
