/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * kplug_bridge: forward prefetch hints to the page cache of a backing file.
 *
 * Protocol (ABI version KPLUG_BRIDGE_VERSION)
 * ===========================================
 *
 * The module creates the misc device /dev/kplug_bridge (mode 0666: a hint only
 * ever acts on a file the caller already holds open for reading, so it grants
 * nothing beyond what readahead(2) on that fd already allows).  Userspace opens
 * it once and issues ioctls on it; the device has no read/write interface.
 *
 * 1. KPLUG_IOC_VERSION fills struct kplug_version.  Userspace must check
 *    version == KPLUG_BRIDGE_VERSION before anything else; a new version may
 *    change any struct below.  max_length is the per-call length cap and
 *    flags the hint flags this module accepts.
 *
 * 2. KPLUG_IOC_HINT takes struct kplug_hint.  In: fd, flags, offset, length,
 *    reserved (must be 0).  Out: bytes_requested, bytes_resident, chunks.
 *    The module clamps [offset, offset + length) to
 *      - the file size (i_size at call time),
 *      - KPLUG_HINT_MAX_LENGTH bytes per call (a longer request is clamped,
 *        not refused: the caller re-issues from offset + bytes_requested),
 *    then submits page-cache readahead for the clamped range in chunks of
 *    max(bdi io_pages, file ra_pages) pages, because one
 *    vfs_fadvise(WILLNEED) is capped at that size by the kernel.
 *    Without KPLUG_HINT_WAIT the call returns once the reads are submitted;
 *    the pages become resident asynchronously.  With KPLUG_HINT_WAIT it
 *    returns once every page of the clamped range is uptodate in the page
 *    cache (reading any page readahead did not bring in), and reports
 *    bytes_resident.
 *
 *    Results (return value of ioctl(2) is 0 or -1 with errno):
 *      0       success; bytes_requested may be 0 (length 0, or offset at or
 *              past EOF: that is not an error, the file may have shrunk).
 *      EBADF   fd is not an open file descriptor of the caller, is an O_PATH
 *              descriptor, or is not open for reading (O_WRONLY).
 *      EISDIR  fd refers to a directory.
 *      EINVAL  fd is not a regular file (pipe, socket, device, ...), an
 *              unknown flag is set, or reserved is not 0.
 *      EFAULT  the argument pointer is bad.
 *      EAGAIN  more than the module parameter max_inflight hints are in
 *              progress (0 pauses the bridge); retry later or drop the hint.
 *      EINTR   KPLUG_HINT_WAIT was interrupted by a fatal signal.
 *      EIO     KPLUG_HINT_WAIT and a page could not be read.
 *      EOPNOTSUPP KPLUG_HINT_WAIT on a file without a page cache (DAX).
 *
 * 3. KPLUG_IOC_STATS fills struct kplug_stats with the module-wide counters
 *    since it was loaded (see the field comments).
 *
 * All fields are fixed width; no field is pointer-sized, so 32- and 64-bit
 * callers share one layout.  Sizes: kplug_version 16, kplug_hint 48,
 * kplug_stats 64 bytes.
 */
#ifndef _UAPI_LINUX_KPLUG_BRIDGE_H
#define _UAPI_LINUX_KPLUG_BRIDGE_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define KPLUG_BRIDGE_VERSION	1
#define KPLUG_BRIDGE_DEVNAME	"kplug_bridge"

/* Per-call cap on the clamped length: 64 MiB = 16384 4 KiB pages. */
#define KPLUG_HINT_MAX_LENGTH	(64ULL << 20)

/* Wait until every page of the range is resident before returning. */
#define KPLUG_HINT_WAIT		(1U << 0)
/*
 * Debug only, accepted only when the module is loaded with allow_debug=1:
 * issue one un-chunked vfs_fadvise() for the whole range, which the kernel
 * silently truncates.  Exists so a test can prove its residency check fails.
 */
#define KPLUG_HINT_DEBUG_NOCHUNK (1U << 31)

#define KPLUG_HINT_FLAGS	(KPLUG_HINT_WAIT)

struct kplug_version {
	__u32 version;		/* KPLUG_BRIDGE_VERSION */
	__u32 flags;		/* hint flags accepted (KPLUG_HINT_*) */
	__u64 max_length;	/* KPLUG_HINT_MAX_LENGTH */
};

struct kplug_hint {
	__s32 fd;		/* in: backing file, open for reading */
	__u32 flags;		/* in: KPLUG_HINT_* */
	__u64 offset;		/* in: byte offset */
	__u64 length;		/* in: byte length */
	__u64 bytes_requested;	/* out: bytes of the clamped range submitted */
	__u64 bytes_resident;	/* out: with KPLUG_HINT_WAIT, bytes known resident */
	__u32 chunks;		/* out: readahead calls issued */
	__u32 reserved;		/* in: must be 0 */
};

struct kplug_stats {
	__u64 hints;		/* successful KPLUG_IOC_HINT calls */
	__u64 bytes_requested;	/* sum of their bytes_requested */
	__u64 bytes_waited;	/* sum of their bytes_resident (KPLUG_HINT_WAIT) */
	__u64 chunks;		/* readahead calls issued */
	__u64 rejected;		/* refused for bad input: EBADF EISDIR EINVAL EFAULT */
	__u64 throttled;	/* refused with EAGAIN by the max_inflight cap */
	__u64 errors;		/* failed after validation: EINTR EIO EOPNOTSUPP ... */
	__u64 reserved;		/* 0 */
};

#define KPLUG_IOC_MAGIC		0xE9

#define KPLUG_IOC_VERSION	_IOR(KPLUG_IOC_MAGIC, 0, struct kplug_version)
#define KPLUG_IOC_HINT		_IOWR(KPLUG_IOC_MAGIC, 1, struct kplug_hint)
#define KPLUG_IOC_STATS		_IOR(KPLUG_IOC_MAGIC, 2, struct kplug_stats)

#endif /* _UAPI_LINUX_KPLUG_BRIDGE_H */
