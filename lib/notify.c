/* Messages from the filesystem to the kernel: notifications (written to the
 * session's /dev/fuse fd with unique 0: never over the ring, doc/protocol.md
 * 1.8), the retrieve table that matches a NOTIFY_REPLY to its cookie, and
 * the backing-file ioctls of kernel passthrough. Every call here may come
 * from any thread; writev on /dev/fuse takes one whole message at a time. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "engine.h"

/* The uniques we give retrieves: even (odd ones mark interrupts), and far
 * above anything the kernel's counter, which steps by 2 from 0, reaches. */
#define NOTIFY_UNIQUE_BASE (1ull << 62)

struct fu_retrieve {
	struct fu_retrieve *next;
	uint64_t unique;
	void *cookie;
};

static int notify(struct fu_session *s, int code, const struct iovec *args, int nargs)
{
	struct iovec iov[4];
	struct fuse_out_header oh = {.len = sizeof(oh), .error = code, .unique = 0};

	if (s->fd < 0 || !atomic_load(&s->running))
		return -ENOTCONN;
	iov[0] = (struct iovec){&oh, sizeof(oh)};
	for (int i = 0; i < nargs; i++) {
		iov[i + 1] = args[i];
		oh.len += (uint32_t)args[i].iov_len;
	}
	ssize_t n = writev(s->fd, iov, nargs + 1);
	if (n < 0)
		return errno == ENODEV ? -ENOTCONN : -errno;
	return 0;
}

int furing_notify_inval_inode(struct furing_session *pub, uint64_t ino, int64_t off, int64_t len)
{
	struct fuse_notify_inval_inode_out out = {.ino = ino, .off = off, .len = len};
	struct iovec iov = {&out, sizeof(out)};
	return notify((struct fu_session *)pub, FUSE_NOTIFY_INVAL_INODE, &iov, 1);
}

int furing_notify_inval_entry(struct furing_session *pub, uint64_t parent, const char *name, uint32_t flags)
{
	size_t namelen = strlen(name);
	struct fuse_notify_inval_entry_out out = {.parent = parent, .namelen = (uint32_t)namelen, .flags = flags};
	/* The kernel wants the name NUL-terminated after namelen bytes. */
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)name, namelen + 1}};

	if (namelen == 0 || namelen > 1024)
		return -EINVAL;
	return notify((struct fu_session *)pub, FUSE_NOTIFY_INVAL_ENTRY, iov, 2);
}

int furing_notify_delete(struct furing_session *pub, uint64_t parent, uint64_t child, const char *name)
{
	size_t namelen = strlen(name);
	struct fuse_notify_delete_out out = {.parent = parent, .child = child, .namelen = (uint32_t)namelen};
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)name, namelen + 1}};

	if (namelen == 0 || namelen > 1024)
		return -EINVAL;
	return notify((struct fu_session *)pub, FUSE_NOTIFY_DELETE, iov, 2);
}

int furing_notify_store(struct furing_session *pub, uint64_t ino, uint64_t off, const void *data, size_t size)
{
	struct fuse_notify_store_out out = {.nodeid = ino, .offset = off, .size = (uint32_t)size};
	struct iovec iov[2] = {{&out, sizeof(out)}, {(void *)data, size}};

	if (size > UINT32_MAX)
		return -EINVAL;
	return notify((struct fu_session *)pub, FUSE_NOTIFY_STORE, iov, size ? 2 : 1);
}

int furing_notify_poll(struct furing_session *pub, uint64_t kh)
{
	struct fuse_notify_poll_wakeup_out out = {.kh = kh};
	struct iovec iov = {&out, sizeof(out)};
	return notify((struct fu_session *)pub, FUSE_NOTIFY_POLL, &iov, 1);
}

int furing_notify_retrieve(struct furing_session *pub, uint64_t ino, uint64_t off, size_t size, void *cookie)
{
	struct fu_session *s = (struct fu_session *)pub;
	struct fu_retrieve *rt = malloc(sizeof(*rt));

	if (!rt)
		return -ENOMEM;
	if (size > UINT32_MAX)
		size = UINT32_MAX;
	pthread_mutex_lock(&s->notify_lock);
	rt->unique = NOTIFY_UNIQUE_BASE + 2 * ++s->notify_unique;
	rt->cookie = cookie;
	rt->next = s->retrieves;
	s->retrieves = rt;
	uint64_t unique = rt->unique;
	pthread_mutex_unlock(&s->notify_lock);

	struct fuse_notify_retrieve_out out = {.notify_unique = unique, .nodeid = ino, .offset = off, .size = (uint32_t)size};
	struct iovec iov = {&out, sizeof(out)};
	int ret = notify(s, FUSE_NOTIFY_RETRIEVE, &iov, 1);
	if (ret < 0) { /* no NOTIFY_REPLY will come: take the cookie back */
		void *unused;
		fu_retrieve_take(s, unique, &unused);
	}
	return ret;
}

bool fu_retrieve_take(struct fu_session *s, uint64_t unique, void **cookie)
{
	bool found = false;

	pthread_mutex_lock(&s->notify_lock);
	for (struct fu_retrieve **p = &s->retrieves; *p; p = &(*p)->next) {
		if ((*p)->unique == unique) {
			struct fu_retrieve *rt = *p;
			*p = rt->next;
			*cookie = rt->cookie;
			free(rt);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->notify_lock);
	return found;
}

void fu_retrieve_free_all(struct fu_session *s)
{
	while (s->retrieves) {
		struct fu_retrieve *rt = s->retrieves;
		s->retrieves = rt->next;
		free(rt);
	}
}

/* ---- kernel passthrough ---- */

_Static_assert(FUSE_DEV_IOC_BACKING_OPEN == _IOW(FUSE_DEV_IOC_MAGIC, 1, struct fuse_backing_map),
	       "BACKING_OPEN ioctl number");
_Static_assert(FUSE_DEV_IOC_BACKING_CLOSE == _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t), "BACKING_CLOSE ioctl number");
_Static_assert(FUSE_DEV_IOC_CLONE == _IOR(FUSE_DEV_IOC_MAGIC, 0, uint32_t), "CLONE ioctl number");

int furing_backing_open(struct furing_session *pub, int fd)
{
	struct fu_session *s = (struct fu_session *)pub;
	struct fuse_backing_map map = {.fd = fd, .flags = 0, .padding = 0};

	if (s->fd < 0)
		return -ENOTCONN;
	if (!(s->conn.granted & FURING_CAP_PASSTHROUGH))
		return -EOPNOTSUPP;
	int id = ioctl(s->fd, FUSE_DEV_IOC_BACKING_OPEN, &map);
	return id < 0 ? -errno : id;
}

int furing_backing_close(struct furing_session *pub, int backing_id)
{
	struct fu_session *s = (struct fu_session *)pub;
	uint32_t id = (uint32_t)backing_id;

	if (s->fd < 0)
		return -ENOTCONN;
	return ioctl(s->fd, FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0 ? -errno : 0;
}
