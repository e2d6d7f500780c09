/* pathasync: a path-API filesystem whose answers come from a thread of its
 * own, after the operation returned FURING_PATH_ASYNC. Driven by
 * tests/integration/test_path.py.
 *
 *   /gate    read: queued; answered ("gate N\n", N: the answer's number)
 *            by the replier thread only once /open was written, so an
 *            answer can only come after the operation returned and the
 *            worker went on to other requests
 *   /open    write: opens the gate (answered at once, on the worker)
 *   /stats   "queued=N async=N other_thread=N": reads waiting at the gate,
 *            answers made through furing_path_done, and how many of them
 *            on a thread that was not the operation's
 * getattr (lookups too) of every name is answered by the replier thread
 * at once, so lookups and stats go through the asynchronous path as well.
 * Files are opened with FURING_OPEN_DIRECT_IO: every read reaches us.
 * Before mounting it checks that furing_path_set_timeouts refuses bad times.
 *
 * Usage: pathasync [-f] [-o OPT[,OPT...]] MOUNTPOINT */
#include <errno.h>
#include <math.h> /* NAN */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <furing/furing.h>

/* An operation waiting for the replier thread. */
struct pending {
	struct pending *next;
	struct furing_req *req;
	pthread_t op_thread; /* the thread the operation ran on */
	const char *path;
	struct stat *st; /* getattr */
	char *buf;       /* read of /gate */
	uint32_t size;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct pending *now, *gated; /* answered at once; answered once the gate is open */
	bool open, stop;
	unsigned int queued, async, other_thread;
	pthread_t thread;
	bool started;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int kind(const char *path)
{
	static const char *const names[] = {"/", "/gate", "/open", "/stats"};
	for (int i = 0; i < 4; i++)
		if (path && strcmp(path, names[i]) == 0)
			return i;
	return -1;
}

static void queue(struct pending *p, bool gated)
{
	p->op_thread = pthread_self();
	pthread_mutex_lock(&g.lock);
	struct pending **head = gated ? &g.gated : &g.now;
	p->next = *head;
	*head = p;
	if (gated)
		g.queued++;
	pthread_cond_signal(&g.wake);
	pthread_mutex_unlock(&g.lock);
}

static void answer(struct pending *p)
{
	int res;
	pthread_mutex_lock(&g.lock);
	g.async++;
	if (!pthread_equal(p->op_thread, pthread_self()))
		g.other_thread++;
	unsigned int n = g.async;
	pthread_mutex_unlock(&g.lock);
	if (p->st) {
		int k = kind(p->path);
		*p->st = (struct stat){.st_mode = k == 0 ? S_IFDIR | 0755 : S_IFREG | 0644, .st_nlink = k == 0 ? 2 : 1,
				       .st_size = k == 0 ? 0 : 4096};
		res = k < 0 ? -ENOENT : 0;
	} else {
		res = snprintf(p->buf, p->size, "gate %u\n", n);
		if (res > (int)p->size)
			res = (int)p->size;
	}
	struct furing_req *req = p->req;
	free(p);
	furing_path_done(req, res); /* last: the buffers handed to us go with it */
}

static void *replier(void *arg)
{
	pthread_mutex_lock(&g.lock);
	for (;;) {
		struct pending *p = g.now;
		if (p) {
			g.now = p->next;
		} else if (g.open && (p = g.gated)) {
			g.gated = p->next;
			g.queued--;
		} else if (g.stop) {
			break;
		} else {
			pthread_cond_wait(&g.wake, &g.lock);
			continue;
		}
		pthread_mutex_unlock(&g.lock);
		answer(p);
		pthread_mutex_lock(&g.lock);
	}
	pthread_mutex_unlock(&g.lock);
	return NULL;
}

static int pa_init(void *fs, struct furing_conn *conn)
{
	/* Here rather than in main: furing_main may daemonize, and threads do not survive fork. */
	if (pthread_create(&g.thread, NULL, replier, NULL) != 0)
		return -EAGAIN;
	g.started = true;
	return 0;
}

static void pa_destroy(void *fs)
{
	if (!g.started)
		return;
	pthread_mutex_lock(&g.lock);
	g.open = g.stop = true; /* whatever still waits at the gate is answered */
	pthread_cond_signal(&g.wake);
	pthread_mutex_unlock(&g.lock);
	pthread_join(g.thread, NULL);
}

static int pa_getattr(struct furing_req *req, const char *path, struct stat *st, const struct furing_path_file *fi)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	*p = (struct pending){.req = req, .path = path, .st = st};
	queue(p, false);
	return FURING_PATH_ASYNC;
}

static int pa_setattr(struct furing_req *req, const char *path, const struct furing_setattr *a,
		      const struct furing_path_file *fi)
{
	return 0; /* open(O_TRUNC) of /open */
}

static int pa_open(struct furing_req *req, const char *path, struct furing_path_file *fi)
{
	if (kind(path) <= 0)
		return -EISDIR;
	fi->open_flags = FURING_OPEN_DIRECT_IO;
	return 0;
}

static int pa_read(struct furing_req *req, const char *path, void *buf, uint32_t size, uint64_t off,
		   const struct furing_path_file *fi)
{
	int k = kind(path);
	if (off)
		return 0;
	if (k == 1) {
		struct pending *p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		*p = (struct pending){.req = req, .path = path, .buf = buf, .size = size};
		queue(p, true);
		return FURING_PATH_ASYNC;
	}
	if (k != 3)
		return 0;
	pthread_mutex_lock(&g.lock);
	int n = snprintf(buf, size, "queued=%u async=%u other_thread=%u\n", g.queued, g.async, g.other_thread);
	pthread_mutex_unlock(&g.lock);
	return n > (int)size ? (int)size : n;
}

static int pa_write(struct furing_req *req, const char *path, const void *buf, uint32_t size, uint64_t off,
		    const struct furing_path_file *fi)
{
	if (kind(path) != 2)
		return -EACCES;
	pthread_mutex_lock(&g.lock);
	g.open = true;
	pthread_cond_signal(&g.wake);
	pthread_mutex_unlock(&g.lock);
	return (int)size;
}

static int pa_readdir(struct furing_req *req, const char *path, uint64_t off, furing_path_fill_fn fill, void *dh,
		      const struct furing_path_file *fi)
{
	static const char *const names[] = {".", "..", "gate", "open", "stats"};
	for (int i = 0; i < 5; i++)
		if (fill(dh, names[i], NULL, 0) < 0)
			return -ENOMEM;
	return 0;
}

static const struct furing_path_ops ops = {
	.init = pa_init,
	.destroy = pa_destroy,
	.getattr = pa_getattr,
	.setattr = pa_setattr,
	.open = pa_open,
	.read = pa_read,
	.write = pa_write,
	.readdir = pa_readdir,
};

int main(int argc, char **argv)
{
	struct furing_config cfg = {.fsname = "pathasync", .subtype = "pathasync"};
	struct furing_cmdline cl;
	char err[512];

	if (furing_parse_cmdline(argc, argv, 0, &cl, sizeof(cl), &cfg, sizeof(cfg), err, sizeof(err)) < 0) {
		fprintf(stderr, "pathasync: %s\n", err);
		return 2;
	}
	if (!cl.mountpoint) {
		fprintf(stderr, "usage: pathasync [-f] [-o OPT[,OPT...]] MOUNTPOINT\n");
		furing_cmdline_free(&cl);
		return 2;
	}
	struct furing_path *p = furing_path_new(&ops, sizeof(ops), NULL);
	if (!p) {
		perror("pathasync");
		return 1;
	}
	/* furing_path_set_timeouts refuses what it cannot encode (a start that
	 * fails here fails test_path.py's mount); the times stay the defaults. */
	if (furing_path_set_timeouts(p, -1, 1, 0) != -1 || errno != EINVAL ||
	    furing_path_set_timeouts(p, 1, NAN, 0) != -1 || errno != EINVAL ||
	    furing_path_set_timeouts(NULL, 1, 1, 0) != -1 || furing_path_set_timeouts(p, 1, 1, 0) != 0) {
		fprintf(stderr, "pathasync: furing_path_set_timeouts accepted a bad time or refused a good one\n");
		return 1;
	}
	int ret = furing_main(cl.mountpoint, cl.foreground ? FURING_MAIN_FOREGROUND : 0, furing_path_lowlevel_ops(),
			      sizeof(struct furing_ops), &cfg, sizeof(cfg), p);
	furing_path_destroy(p);
	furing_cmdline_free(&cl);
	return ret;
}
