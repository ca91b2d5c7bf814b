// SPDX-License-Identifier: GPL-2.0
/*
 * kplug_bridge - forward kplugfs prefetch hints to the page cache of the
 * backing file.
 *
 * kplugfs is a FUSE passthrough filesystem; its prefetch plugins predict the
 * next reads.  The daemon holds the backing file open and passes the hint here
 * as (fd, offset, length).  We validate the fd against the caller's own file
 * table, clamp the range, and start page-cache readahead for it.  The protocol,
 * errno contract and structures are documented in
 * include/uapi/linux/kplug_bridge.h.
 *
 * Why a module when readahead(2) exists: readahead(2) is one vfs_fadvise()
 * call, which force_page_cache_ra() truncates to max(bdi->io_pages,
 * file->f_ra.ra_pages) pages (1.25 MiB on a virtio disk), so a 16 MiB hint
 * quietly becomes 1.25 MiB.  Userspace cannot see either limit per file.  Here
 * we chunk by exactly that limit, and can optionally wait until the range is
 * resident (KPLUG_HINT_WAIT), which readahead(2) cannot.
 *
 * Only symbols exported to all modules are used (vfs_fadvise,
 * read_cache_folio, __fdget, misc_register); the module is GPL anyway.
 * Tested on 6.1; needs >= 5.19 (read_folio), and fd_file() from 6.12 on.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/backing-dev.h>
#include <linux/fadvise.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/percpu.h>
#include <linux/sched/signal.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include <linux/kplug_bridge.h>

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
#define kb_fd_file(f) fd_file(f)
#else
#define kb_fd_file(f) ((f).file)
#endif

/*
 * Concurrent hints allowed; beyond that a hint fails with EAGAIN.  16 lets
 * every worker thread of a busy daemon have one in flight while bounding the
 * kernel threads parked in KPLUG_HINT_WAIT.  0 pauses the bridge.
 */
static unsigned int max_inflight = 16;
module_param(max_inflight, uint, 0644);
MODULE_PARM_DESC(max_inflight, "Concurrent hints allowed before EAGAIN (0 pauses the bridge, default 16)");

/* Accept KPLUG_HINT_DEBUG_NOCHUNK; for tests only. */
static bool allow_debug;
module_param(allow_debug, bool, 0444);
MODULE_PARM_DESC(allow_debug, "Accept debug hint flags (tests only, default off)");

/* Per-CPU so concurrent hints do not bounce one cache line. */
struct kb_stats {
	u64 hints;
	u64 bytes_requested;
	u64 bytes_waited;
	u64 chunks;
	u64 rejected;
	u64 throttled;
	u64 errors;
};

static struct kb_stats __percpu *kb_stats;
static atomic_t kb_inflight = ATOMIC_INIT(0);

#define kb_count(field, n) this_cpu_add(kb_stats->field, (n))

static u32 kb_accepted_flags(void)
{
	return KPLUG_HINT_FLAGS | (allow_debug ? KPLUG_HINT_DEBUG_NOCHUNK : 0);
}

/* The fd must be the caller's, readable, and a regular file. */
static int kb_check_file(struct file *file)
{
	umode_t mode;

	if (!file)		/* not open, or O_PATH: fdget() skips those */
		return -EBADF;
	if (!(file->f_mode & FMODE_READ))
		return -EBADF;
	mode = file_inode(file)->i_mode;
	if (S_ISDIR(mode))
		return -EISDIR;
	if (!S_ISREG(mode))
		return -EINVAL;
	return 0;
}

/*
 * One vfs_fadvise(WILLNEED) reads at most this many pages
 * (force_page_cache_ra() clamps to the same value).
 */
static unsigned long kb_chunk_pages(struct file *file)
{
	struct backing_dev_info *bdi = inode_to_bdi(file->f_mapping->host);

	return max3(bdi->io_pages, (unsigned long)file->f_ra.ra_pages, 1UL);
}

/* Submit readahead for pages [first, last]; returns 0 or -errno. */
static int kb_readahead(struct file *file, pgoff_t first, pgoff_t last,
			bool nochunk, u32 *chunks)
{
	unsigned long step = nochunk ? last - first + 1 : kb_chunk_pages(file);
	pgoff_t index = first;
	int err;

	while (index <= last) {
		unsigned long n = min_t(unsigned long, step, last - index + 1);

		err = vfs_fadvise(file, (loff_t)index << PAGE_SHIFT,
				  (loff_t)n << PAGE_SHIFT, POSIX_FADV_WILLNEED);
		if (err)
			return err;
		(*chunks)++;
		index += n;
		if (fatal_signal_pending(current))
			return -EINTR;
		cond_resched();
	}
	return 0;
}

/*
 * Wait until pages [first, last] are uptodate.  read_cache_folio() returns a
 * folio already in the cache once it is uptodate (waiting on the readahead we
 * just submitted), and reads it itself if readahead skipped it (memory
 * pressure, or the async read failed).
 */
static int kb_wait_resident(struct file *file, pgoff_t first, pgoff_t last)
{
	struct address_space *mapping = file->f_mapping;
	pgoff_t index = first;

	if (IS_DAX(mapping->host) || !mapping->a_ops->read_folio)
		return -EOPNOTSUPP;

	while (index <= last) {
		struct folio *folio;

		if (fatal_signal_pending(current))
			return -EINTR;
		folio = read_cache_folio(mapping, index, NULL, file);
		if (IS_ERR(folio))
			return PTR_ERR(folio);
		index = folio_next_index(folio);
		folio_put(folio);
		cond_resched();
	}
	return 0;
}

/* Clamp, submit and optionally wait.  Fills the out fields of @h. */
static int kb_do_hint(struct file *file, struct kplug_hint *h)
{
	u64 size = i_size_read(file_inode(file));
	u64 len;
	pgoff_t first, last;
	int err;

	h->bytes_requested = 0;
	h->bytes_resident = 0;
	h->chunks = 0;
	if (h->length == 0 || h->offset >= size)
		return 0;	/* nothing to do; documented as success */

	len = min3(h->length, size - h->offset, (u64)KPLUG_HINT_MAX_LENGTH);
	first = h->offset >> PAGE_SHIFT;
	last = (h->offset + len - 1) >> PAGE_SHIFT;

	err = kb_readahead(file, first, last,
			   h->flags & KPLUG_HINT_DEBUG_NOCHUNK, &h->chunks);
	kb_count(chunks, h->chunks);
	if (err)
		return err;
	h->bytes_requested = len;

	if (h->flags & KPLUG_HINT_WAIT) {
		err = kb_wait_resident(file, first, last);
		if (err)
			return err;
		h->bytes_resident = len;
	}
	return 0;
}

static long kb_ioctl_hint(struct kplug_hint __user *uarg)
{
	struct kplug_hint h;
	struct fd f;
	int err;

	if (copy_from_user(&h, uarg, sizeof(h))) {
		err = -EFAULT;
		goto err_rejected;
	}
	if ((h.flags & ~kb_accepted_flags()) || h.reserved) {
		err = -EINVAL;
		goto err_rejected;
	}

	f = fdget(h.fd);	/* negative fd -> huge unsigned -> empty */
	err = kb_check_file(kb_fd_file(f));
	if (err)
		goto err_fdput_rejected;

	if (atomic_inc_return(&kb_inflight) > READ_ONCE(max_inflight)) {
		atomic_dec(&kb_inflight);
		kb_count(throttled, 1);
		fdput(f);
		return -EAGAIN;
	}
	err = kb_do_hint(kb_fd_file(f), &h);
	atomic_dec(&kb_inflight);
	fdput(f);
	if (err)
		goto err_failed;

	if (copy_to_user(uarg, &h, sizeof(h))) {
		err = -EFAULT;
		goto err_failed;
	}
	kb_count(hints, 1);
	kb_count(bytes_requested, h.bytes_requested);
	kb_count(bytes_waited, h.bytes_resident);
	return 0;

err_failed:
	kb_count(errors, 1);
	return err;
err_fdput_rejected:
	fdput(f);
err_rejected:
	kb_count(rejected, 1);
	return err;
}

static long kb_ioctl_stats(struct kplug_stats __user *uarg)
{
	struct kplug_stats s = {};
	int cpu;

	for_each_possible_cpu(cpu) {
		const struct kb_stats *c = per_cpu_ptr(kb_stats, cpu);

		s.hints += READ_ONCE(c->hints);
		s.bytes_requested += READ_ONCE(c->bytes_requested);
		s.bytes_waited += READ_ONCE(c->bytes_waited);
		s.chunks += READ_ONCE(c->chunks);
		s.rejected += READ_ONCE(c->rejected);
		s.throttled += READ_ONCE(c->throttled);
		s.errors += READ_ONCE(c->errors);
	}
	return copy_to_user(uarg, &s, sizeof(s)) ? -EFAULT : 0;
}

static long kb_ioctl_version(struct kplug_version __user *uarg)
{
	struct kplug_version v = {
		.version = KPLUG_BRIDGE_VERSION,
		.flags = kb_accepted_flags(),
		.max_length = KPLUG_HINT_MAX_LENGTH,
	};

	return copy_to_user(uarg, &v, sizeof(v)) ? -EFAULT : 0;
}

static long kb_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case KPLUG_IOC_HINT:
		return kb_ioctl_hint(uarg);
	case KPLUG_IOC_STATS:
		return kb_ioctl_stats(uarg);
	case KPLUG_IOC_VERSION:
		return kb_ioctl_version(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations kb_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = kb_ioctl,
	/* Every struct has one layout on 32 and 64 bit: only the pointer differs. */
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice kb_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = KPLUG_BRIDGE_DEVNAME,
	.fops = &kb_fops,
	.mode = 0666,	/* see the uapi header: acts only on the caller's readable fds */
};

static int __init kb_init(void)
{
	int err;

	kb_stats = alloc_percpu(struct kb_stats);
	if (!kb_stats) {
		err = -ENOMEM;
		goto err_stats;
	}

	err = misc_register(&kb_misc);
	if (err) {
		pr_err("misc_register failed: %d\n", err);
		goto err_misc;
	}

	pr_info("loaded: abi %u, /dev/%s, max_inflight %u%s\n",
		KPLUG_BRIDGE_VERSION, KPLUG_BRIDGE_DEVNAME, max_inflight,
		allow_debug ? ", debug flags allowed" : "");
	return 0;

err_misc:
	free_percpu(kb_stats);
err_stats:
	return err;
}

static void __exit kb_exit(void)
{
	/*
	 * The misc core holds a module reference for every open file, so no
	 * ioctl can be running once we get here.
	 */
	misc_deregister(&kb_misc);
	free_percpu(kb_stats);
	pr_info("unloaded\n");
}

module_init(kb_init);
module_exit(kb_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("kplugfs developers");
MODULE_DESCRIPTION("Forward kplugfs prefetch hints to backing-file page caches");
MODULE_VERSION("1");
