/* What the kernel accepts as the out-args of an answer, per opcode
 * (PROTOCOL.md 3.2; fs/fuse: fuse_copy_out_args takes exactly the declared
 * sizes, or less for a variable last argument), and the op header sizes it
 * sends. Written from the protocol, independently of the engine's tables,
 * so that the two check each other. */
#include <errno.h>
#include <string.h>

#include "fe_kernel.h"

bool fe_no_reply(uint32_t op)
{
	return op == FUSE_FORGET || op == FUSE_BATCH_FORGET || op == FUSE_INTERRUPT || op == FUSE_NOTIFY_REPLY;
}

size_t fe_op_header_size(uint32_t op, bool setxattr_ext)
{
	switch (op) {
	case FUSE_INIT: return sizeof(struct fuse_init_in);
	case FUSE_FORGET: return sizeof(struct fuse_forget_in);
	case FUSE_BATCH_FORGET: return sizeof(struct fuse_batch_forget_in);
	case FUSE_INTERRUPT: return sizeof(struct fuse_interrupt_in);
	case FUSE_GETATTR: return sizeof(struct fuse_getattr_in);
	case FUSE_SETATTR: return sizeof(struct fuse_setattr_in);
	case FUSE_MKNOD: return sizeof(struct fuse_mknod_in);
	case FUSE_MKDIR: return sizeof(struct fuse_mkdir_in);
	case FUSE_RENAME: return sizeof(struct fuse_rename_in);
	case FUSE_RENAME2: return sizeof(struct fuse_rename2_in);
	case FUSE_LINK: return sizeof(struct fuse_link_in);
	case FUSE_CREATE: case FUSE_TMPFILE: return sizeof(struct fuse_create_in);
	case FUSE_ACCESS: return sizeof(struct fuse_access_in);
	case FUSE_OPEN: case FUSE_OPENDIR: return sizeof(struct fuse_open_in);
	case FUSE_RELEASE: case FUSE_RELEASEDIR: return sizeof(struct fuse_release_in);
	case FUSE_FLUSH: return sizeof(struct fuse_flush_in);
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS: return sizeof(struct fuse_read_in);
	case FUSE_WRITE: return sizeof(struct fuse_write_in);
	case FUSE_FSYNC: case FUSE_FSYNCDIR: return sizeof(struct fuse_fsync_in);
	case FUSE_FALLOCATE: return sizeof(struct fuse_fallocate_in);
	case FUSE_LSEEK: return sizeof(struct fuse_lseek_in);
	case FUSE_SETXATTR: return setxattr_ext ? sizeof(struct fuse_setxattr_in) : FUSE_COMPAT_SETXATTR_IN_SIZE;
	case FUSE_GETXATTR: case FUSE_LISTXATTR: return sizeof(struct fuse_getxattr_in);
	case FUSE_GETLK: case FUSE_SETLK: case FUSE_SETLKW: return sizeof(struct fuse_lk_in);
	case FUSE_POLL: return sizeof(struct fuse_poll_in);
	case FUSE_IOCTL: return sizeof(struct fuse_ioctl_in);
	case FUSE_COPY_FILE_RANGE: case FUSE_COPY_FILE_RANGE_64: return sizeof(struct fuse_copy_file_range_in);
	case FUSE_STATX: return sizeof(struct fuse_statx_in);
	case FUSE_SYNCFS: return sizeof(struct fuse_syncfs_in);
	case FUSE_NOTIFY_REPLY: return sizeof(struct fuse_notify_retrieve_in);
	default: return 0; /* LOOKUP, UNLINK, ...: names only; unknown opcodes */
	}
}

/* A readdir(plus) answer: whole, 8-byte aligned records with a non-empty
 * name and zero padding, filling the answer exactly. */
static void check_dirents(const uint8_t *p, size_t len, bool plus)
{
	const size_t fixed = plus ? sizeof(struct fuse_direntplus) : sizeof(struct fuse_dirent);
	const size_t at = plus ? offsetof(struct fuse_direntplus, dirent) : 0;
	size_t off = 0;

	while (off < len) {
		struct fuse_dirent d;
		FE_CHECK(len - off >= fixed);
		memcpy(&d, p + off + at, sizeof(d));
		FE_CHECK(d.namelen > 0 && d.namelen <= len - off - fixed);
		size_t rec = (fixed + d.namelen + 7) & ~(size_t)7;
		FE_CHECK(rec <= len - off);
		FE_CHECK(memchr(p + off + fixed, '\0', d.namelen) == NULL);
		for (size_t i = fixed + d.namelen; i < rec; i++)
			FE_CHECK(p[off + i] == 0);
		off += rec;
	}
}

void fe_check_shape(const struct fe_rec *r, int error, const uint8_t *p, size_t len)
{
	FE_CHECK(error <= 0 && error > -512);
	if (error) {
		FE_CHECK(len == 0);
		return;
	}
	/* Opcodes the engine answers with success must be known to it. */
	const uint32_t sz = r->size_arg;
	switch (r->opcode) {
	case FUSE_LOOKUP: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_SYMLINK: case FUSE_LINK:
		FE_CHECK(len == sizeof(struct fuse_entry_out));
		return;
	case FUSE_CREATE: case FUSE_TMPFILE:
		FE_CHECK(len == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out));
		return;
	case FUSE_GETATTR: case FUSE_SETATTR:
		FE_CHECK(len == sizeof(struct fuse_attr_out));
		return;
	case FUSE_OPEN: case FUSE_OPENDIR:
		FE_CHECK(len == sizeof(struct fuse_open_out));
		return;
	case FUSE_WRITE: case FUSE_COPY_FILE_RANGE:
		FE_CHECK(len == sizeof(struct fuse_write_out));
		return;
	case FUSE_COPY_FILE_RANGE_64:
		FE_CHECK(len == sizeof(struct fuse_copy_file_range_out));
		return;
	case FUSE_STATFS:
		FE_CHECK(len == sizeof(struct fuse_statfs_out));
		return;
	case FUSE_LSEEK:
		FE_CHECK(len == sizeof(struct fuse_lseek_out));
		return;
	case FUSE_POLL:
		FE_CHECK(len == sizeof(struct fuse_poll_out));
		return;
	case FUSE_GETLK:
		FE_CHECK(len == sizeof(struct fuse_lk_out));
		return;
	case FUSE_STATX:
		FE_CHECK(len == sizeof(struct fuse_statx_out));
		return;
	case FUSE_READ: case FUSE_READDIR: case FUSE_READDIRPLUS:
		FE_CHECK(r->have_hdr && len <= sz);
		if (r->opcode != FUSE_READ)
			check_dirents(p, len, r->opcode == FUSE_READDIRPLUS);
		return;
	case FUSE_GETXATTR: case FUSE_LISTXATTR:
		FE_CHECK(r->have_hdr);
		if (sz == 0)
			FE_CHECK(len == sizeof(struct fuse_getxattr_out));
		else
			FE_CHECK(len <= sz);
		return;
	case FUSE_IOCTL: {
		struct fuse_ioctl_out out;
		FE_CHECK(r->have_hdr && len >= sizeof(out) && len - sizeof(out) <= sz);
		memcpy(&out, p, sizeof(out));
		FE_CHECK(out.flags == 0 && out.in_iovs == 0 && out.out_iovs == 0);
		return;
	}
	case FUSE_READLINK:
		return; /* any length: the kernel takes what fits its page */
	case FUSE_UNLINK: case FUSE_RMDIR: case FUSE_RENAME: case FUSE_RENAME2: case FUSE_RELEASE:
	case FUSE_RELEASEDIR: case FUSE_FLUSH: case FUSE_FSYNC: case FUSE_FSYNCDIR: case FUSE_SETXATTR:
	case FUSE_REMOVEXATTR: case FUSE_ACCESS: case FUSE_SETLK: case FUSE_SETLKW: case FUSE_FALLOCATE:
	case FUSE_SYNCFS: case FUSE_DESTROY:
		FE_CHECK(len == 0);
		return;
	default:
		/* INIT (negotiated before the workers start), the no-reply
		 * opcodes and the unknown ones: only ever an error. */
		fe_fail(__FILE__, __LINE__, "success answer to an opcode that only takes errors");
	}
}
