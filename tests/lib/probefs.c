/* probefs: a filesystem that exists to test the library itself, for what
 * the examples do not exercise: notifications sent from another thread,
 * answers made on another thread (also while the operation still runs),
 * per-request data, interrupts, worker timers, poll notifications, kernel
 * passthrough, INIT capabilities, init/destroy pairing and start-up
 * failures. Driven by tests/integration/test_library.py.
 *
 *   /data       text served from memory, cached by the kernel (KEEP_CACHE,
 *               long timeouts): only notifications can change what is read
 *   /ctl        write a command; it runs on the notifier thread, which also
 *               answers the write (an answer from another thread)
 *   /entry      a name the notifier can rename or delete behind the kernel's back
 *   /retrieved  what the last retrieve brought back
 *   /status     the return code of the last command ("ret=N")
 *   /slow       read answered from another thread after 5 ms
 *   /block      read answered only when interrupted (EINTR), or after 20 s (EIO)
 *   /timer      read answered from a 20 ms worker timer; without io_uring
 *               (no worker timers) from a thread of its own after 20 ms
 *   /race       read answered from another thread while the operation is
 *               still running: the operation returns only after the answer
 *   /reqdata    read whose state lives in furing_req_set_data (a malloc'd
 *               struct past the 64-byte scratch), found again in the
 *               completion of a furing_req_pread of /dev/zero
 *   /pollable   poll()able: readable once "poll_wake" was written to /ctl
 *   /passthru   with --backing FILE: opened with kernel passthrough when granted
 *   /counters   "passthru_reads=N interrupts=N timer_fallbacks=N data_stale=N"
 *
 * Commands for /ctl: "set TEXT", "inval_inode", "store OFF TEXT",
 * "retrieve OFF SIZE", "hide_entry", "inval_entry", "delete_entry",
 * "poll_wake".
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <furing/furing.h>

enum {
	INO_ROOT = FURING_ROOT_ID,
	INO_DATA,
	INO_CTL,
	INO_ENTRY,
	INO_RETRIEVED,
	INO_STATUS,
	INO_SLOW,
	INO_BLOCK,
	INO_TIMER,
	INO_POLLABLE,
	INO_PASSTHRU,
	INO_COUNTERS,
	INO_RACE,
	INO_REQDATA,
	INO_END,
};

static const char *const names[INO_END] = {
	[INO_DATA] = "data",         [INO_CTL] = "ctl",           [INO_ENTRY] = "entry",
	[INO_RETRIEVED] = "retrieved", [INO_STATUS] = "status",   [INO_SLOW] = "slow",
	[INO_BLOCK] = "block",       [INO_TIMER] = "timer",       [INO_POLLABLE] = "pollable",
	[INO_PASSTHRU] = "passthru", [INO_COUNTERS] = "counters", [INO_RACE] = "race",
	[INO_REQDATA] = "reqdata",
};

#define TEXT_MAX 4096
#define BLOCKED_MAX 16
#define CACHE_S 3600.0

struct probe {
	pthread_mutex_t lock;
	struct furing_session *session;
	char data[TEXT_MAX];
	char retrieved[TEXT_MAX];
	char status[64];
	bool entry_hidden;
	bool poll_ready;
	uint64_t poll_kh;
	bool poll_kh_set;
	/* Requests parked in /block's read, by unique. */
	struct furing_req *blocked[BLOCKED_MAX];
	atomic_uint interrupts;
	atomic_uint passthru_reads;
	atomic_uint timer_fallbacks; /* /timer served by a thread: no worker timers */
	atomic_uint data_stale;      /* requests that arrived with furing_req_data not NULL */
	int zero_fd;                 /* /dev/zero, for /reqdata */
	const char *backing_path;
	const char *marker;
	bool want_passthrough;
	bool refuse_init;
	bool fail_worker_start;
	unsigned int slow_worker_start_ms;
	/* The notifier thread's one job at a time. */
	pthread_cond_t job_cond;
	char job[TEXT_MAX];
	struct furing_req *job_req;
	uint32_t job_len;
	bool stopping;
};

static struct probe P = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.job_cond = PTHREAD_COND_INITIALIZER,
	.data = "initial\n",
	.status = "ret=none\n",
};

static void mark(const char *what)
{
	if (!P.marker)
		return;
	FILE *f = fopen(P.marker, "ae");
	if (f) {
		fprintf(f, "%s\n", what);
		fclose(f);
	}
}

static void fill_stat(uint64_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_nlink = 1;
	st->st_uid = getuid();
	st->st_gid = getgid();
	if (ino == INO_ROOT) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | (ino == INO_CTL ? 0666 : 0444);
	pthread_mutex_lock(&P.lock);
	if (ino == INO_DATA)
		st->st_size = (off_t)strlen(P.data);
	else if (ino == INO_RETRIEVED)
		st->st_size = (off_t)strlen(P.retrieved);
	else
		st->st_size = TEXT_MAX; /* the others are read to their end */
	pthread_mutex_unlock(&P.lock);
}

static bool visible(uint64_t ino)
{
	return ino > INO_ROOT && ino < INO_END && !(ino == INO_ENTRY && P.entry_hidden);
}

/* ---- init, destroy, worker start ---- */

static int probe_init(void *fs, struct furing_conn *conn)
{
	mark("init");
	if (P.refuse_init)
		return -EPERM;
	if (P.want_passthrough)
		conn->want |= FURING_CAP_PASSTHROUGH;
	conn->want |= FURING_CAP_EXPIRE_ONLY & conn->capable;
	return 0;
}

static void probe_destroy(void *fs)
{
	mark("destroy");
}

static int probe_worker_start(void *fs, struct furing_worker *w)
{
	/* --slow-worker-start: a worker that takes longer to get ready than
	 * the session waits for. */
	if (P.slow_worker_start_ms && furing_worker_index(w) == 1)
		usleep(P.slow_worker_start_ms * 1000u);
	return P.fail_worker_start && furing_worker_index(w) == 1 ? -ENOTSUP : 0;
}

/* ---- names ---- */

static void reply_entry(struct furing_req *req, uint64_t ino)
{
	struct furing_entry e = {.ino = ino, .generation = 1, .attr_timeout = CACHE_S, .entry_timeout = CACHE_S};
	fill_stat(ino, &e.attr);
	furing_reply_entry(req, &e);
}

static void probe_lookup(struct furing_req *req, uint64_t parent, const char *name)
{
	if (parent != INO_ROOT) {
		furing_reply_err(req, ENOTDIR);
		return;
	}
	pthread_mutex_lock(&P.lock);
	uint64_t found = 0;
	for (uint64_t ino = INO_DATA; ino < INO_END; ino++)
		if (visible(ino) && !strcmp(names[ino], name))
			found = ino;
	pthread_mutex_unlock(&P.lock);
	if (found)
		reply_entry(req, found);
	else
		furing_reply_err(req, ENOENT);
}

static void probe_getattr(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct stat st;
	fill_stat(ino, &st);
	furing_reply_attr(req, &st, CACHE_S);
}

static void probe_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
			  const struct furing_file *fi)
{
	struct furing_dirbuf d;
	struct stat st;

	furing_dirbuf_init(&d, req, size, false);
	pthread_mutex_lock(&P.lock);
	for (uint64_t i = off + INO_DATA; i < INO_END; i++) {
		if (!visible(i))
			continue;
		memset(&st, 0, sizeof(st));
		st.st_ino = i;
		st.st_mode = S_IFREG;
		if (!furing_dirbuf_add(&d, names[i], &st, i - INO_DATA + 1))
			break;
	}
	pthread_mutex_unlock(&P.lock);
	furing_reply_dirbuf(req, &d);
}

/* ---- open ---- */

static void probe_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	struct furing_open o = {.fh = 0, .flags = 0};

	if (ino == INO_DATA)
		o.flags = FURING_OPEN_KEEP_CACHE; /* only notifications change what is read */
	else if (ino != INO_CTL)
		o.flags = FURING_OPEN_DIRECT_IO;
	if (ino == INO_PASSTHRU && P.backing_path &&
	    (furing_session_conn(P.session)->granted & FURING_CAP_PASSTHROUGH)) {
		int fd = open(P.backing_path, O_RDONLY | O_CLOEXEC);
		int id = fd < 0 ? -errno : furing_backing_open(P.session, fd);
		if (fd >= 0)
			close(fd); /* the kernel holds its own reference */
		if (id < 0) {
			furing_reply_err(req, -id);
			return;
		}
		o.flags = FURING_OPEN_PASSTHROUGH;
		o.backing_id = id;
		o.fh = (uint64_t)id;
	}
	furing_reply_open(req, &o);
}

static void probe_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi)
{
	if (ino == INO_PASSTHRU && fi->fh)
		furing_backing_close(P.session, (int)fi->fh);
	furing_reply_err(req, 0);
}

/* ---- reads ---- */

static void reply_text(struct furing_req *req, const char *text, uint64_t off, uint32_t size)
{
	size_t len = strlen(text);
	if (off >= len) {
		furing_reply_buf(req, 0);
		return;
	}
	size_t n = len - off < size ? len - off : size;
	memcpy(furing_req_buf(req), text + off, n);
	furing_reply_buf(req, n);
}

static void *slow_answer(void *arg)
{
	struct furing_req *req = arg;
	struct timespec ts = {0, 5 * 1000 * 1000};

	nanosleep(&ts, NULL);
	furing_reply_data(req, "slow\n", 5); /* from this thread, not the worker */
	return NULL;
}

struct timer_read {
	struct furing_event ev;
	struct furing_req *req;
};

/* Without io_uring there are no worker timers (furing_worker_timeout says
 * -EOPNOTSUPP): the documented way is a thread of one's own that answers. */
static void *timer_thread(void *arg)
{
	struct furing_req *req = arg;
	struct timespec ts = {0, 20 * 1000 * 1000};

	nanosleep(&ts, NULL);
	furing_reply_data(req, "timer\n", 6);
	return NULL;
}

/* /race: the answer from another thread comes while the operation still
 * runs; the operation waits for it, touches nothing of the request after
 * handing it over, and then returns. */
struct race {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool answered;
	struct furing_req *req;
};

static void *race_answer(void *arg)
{
	struct race *r = arg;

	furing_reply_data(r->req, "race\n", 5);
	pthread_mutex_lock(&r->lock);
	r->answered = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

static void race_read(struct furing_req *req)
{
	struct race r = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .req = req};
	pthread_t t;

	if (pthread_create(&t, NULL, race_answer, &r) != 0) {
		furing_reply_err(req, EAGAIN);
		return;
	}
	/* From here on the request is the other thread's. */
	pthread_mutex_lock(&r.lock);
	while (!r.answered)
		pthread_cond_wait(&r.cond, &r.lock);
	pthread_mutex_unlock(&r.lock);
	pthread_join(t, NULL);
}

/* /reqdata: more state than the scratch holds (a timer event and four
 * fields already exceed 64 bytes), attached to the request. */
struct reqdata {
	struct furing_event timer; /* unused here; there to make it too big for the scratch */
	uint64_t magic, ino, off;
	uint32_t size;
	char text[64];
};
#define REQDATA_MAGIC 0x7265716461746121ull

static void reqdata_done(struct furing_req *req, int res)
{
	struct reqdata *d = furing_req_data(req); /* taken before the answer */

	if (!d || d->magic != REQDATA_MAGIC || d->ino != INO_REQDATA) {
		furing_reply_err(req, EPROTO);
	} else if (res != 8) {
		furing_reply_err(req, res < 0 ? -res : EIO);
	} else {
		snprintf(d->text, sizeof(d->text), "reqdata off=%llu size=%u\n", (unsigned long long)d->off, d->size);
		furing_reply_data(req, d->text, strlen(d->text));
	}
	free(d); /* after the answer: the memory is ours, the library kept only the pointer */
}

static void reqdata_read(struct furing_req *req, uint64_t off, uint32_t size)
{
	_Static_assert(sizeof(struct reqdata) > FURING_REQ_SCRATCH_SIZE, "more than the scratch");
	struct reqdata *d = calloc(1, sizeof(*d));

	if (!d) {
		furing_reply_err(req, ENOMEM);
		return;
	}
	d->magic = REQDATA_MAGIC;
	d->ino = INO_REQDATA;
	d->off = off;
	d->size = size;
	furing_req_set_data(req, d);
	/* The completion may run before this returns (no io_uring): this is
	 * the last use of req here. */
	furing_req_pread(req, P.zero_fd, furing_req_buf(req), 8, 0, reqdata_done);
}

static void timer_fired(struct furing_event *ev, int res)
{
	struct timer_read *t = (struct timer_read *)ev;
	struct furing_req *req = t->req;

	free(t);
	if (res != -ETIME)
		furing_reply_err(req, res < 0 ? -res : EIO);
	else
		furing_reply_data(req, "timer\n", 6);
}

static void block_read(struct furing_req *req)
{
	pthread_mutex_lock(&P.lock);
	for (int i = 0; i < BLOCKED_MAX; i++) {
		if (!P.blocked[i]) {
			P.blocked[i] = req;
			pthread_mutex_unlock(&P.lock);
			return;
		}
	}
	pthread_mutex_unlock(&P.lock);
	furing_reply_err(req, EAGAIN);
}

static void probe_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size,
		       const struct furing_file *fi)
{
	char text[TEXT_MAX + 64];

	if (furing_req_data(req) != NULL)
		atomic_fetch_add(&P.data_stale, 1); /* every request arrives with NULL */
	if ((ino == INO_SLOW || ino == INO_TIMER || ino == INO_BLOCK || ino == INO_RACE) && off > 0) {
		furing_reply_buf(req, 0); /* one short answer, then end of file */
		return;
	}
	switch (ino) {
	case INO_SLOW: {
		pthread_t t;
		if (pthread_create(&t, NULL, slow_answer, req) != 0) {
			furing_reply_err(req, EAGAIN);
			return;
		}
		pthread_detach(t);
		return;
	}
	case INO_BLOCK:
		block_read(req);
		return;
	case INO_RACE:
		race_read(req);
		return;
	case INO_REQDATA:
		if (off > 0)
			furing_reply_buf(req, 0);
		else
			reqdata_read(req, off, size);
		return;
	case INO_TIMER: {
		struct timer_read *t = calloc(1, sizeof(*t));
		if (!t) {
			furing_reply_err(req, ENOMEM);
			return;
		}
		t->ev.fn = timer_fired;
		t->req = req;
		int ret = furing_worker_timeout(furing_req_worker(req), &t->ev, 20 * 1000 * 1000);
		if (ret < 0)
			free(t);
		if (ret == -EOPNOTSUPP && !furing_session_has_io_uring(furing_req_session(req))) {
			pthread_t th;
			atomic_fetch_add(&P.timer_fallbacks, 1);
			if (pthread_create(&th, NULL, timer_thread, req) == 0)
				pthread_detach(th);
			else
				furing_reply_err(req, EAGAIN);
		} else if (ret < 0) {
			furing_reply_err(req, -ret);
		}
		return;
	}
	case INO_PASSTHRU:
		atomic_fetch_add(&P.passthru_reads, 1);
		reply_text(req, "served by probefs, not the backing file\n", off, size);
		return;
	case INO_COUNTERS:
		snprintf(text, sizeof(text), "passthru_reads=%u interrupts=%u timer_fallbacks=%u data_stale=%u\n",
			 atomic_load(&P.passthru_reads), atomic_load(&P.interrupts), atomic_load(&P.timer_fallbacks),
			 atomic_load(&P.data_stale));
		reply_text(req, text, off, size);
		return;
	case INO_POLLABLE:
		reply_text(req, "ready\n", off, size);
		return;
	default:
		break;
	}
	pthread_mutex_lock(&P.lock);
	const char *src = ino == INO_DATA ? P.data : ino == INO_RETRIEVED ? P.retrieved : ino == INO_STATUS ? P.status : "";
	snprintf(text, sizeof(text), "%s", src);
	pthread_mutex_unlock(&P.lock);
	reply_text(req, text, off, size);
}

/* INTERRUPT: answer the parked read with EINTR, from whichever worker
 * read the interrupt (often not the one that received the read). */
static void probe_interrupt(void *fs, uint64_t unique)
{
	struct furing_req *found = NULL;

	pthread_mutex_lock(&P.lock);
	for (int i = 0; i < BLOCKED_MAX; i++) {
		if (P.blocked[i] && furing_req_unique(P.blocked[i]) == unique) {
			found = P.blocked[i];
			P.blocked[i] = NULL;
		}
	}
	pthread_mutex_unlock(&P.lock);
	if (found) {
		atomic_fetch_add(&P.interrupts, 1);
		furing_reply_err(found, EINTR);
	}
}

/* ---- poll ---- */

static void probe_poll(struct furing_req *req, uint64_t ino, const struct furing_file *fi, uint64_t kh,
		       bool schedule_notify, uint32_t events)
{
	pthread_mutex_lock(&P.lock);
	bool ready = P.poll_ready || ino != INO_POLLABLE;
	if (!ready && schedule_notify) {
		P.poll_kh = kh;
		P.poll_kh_set = true;
	}
	pthread_mutex_unlock(&P.lock);
	furing_reply_poll(req, ready ? (events & (POLLIN | POLLRDNORM)) : 0);
}

/* ---- /ctl: commands run by the notifier thread ---- */

static int run_command(const char *cmd)
{
	char text[TEXT_MAX];
	unsigned long long off, size;

	if (!strncmp(cmd, "set ", 4)) {
		pthread_mutex_lock(&P.lock);
		snprintf(P.data, sizeof(P.data), "%s", cmd + 4);
		pthread_mutex_unlock(&P.lock);
		return 0;
	}
	if (!strcmp(cmd, "inval_inode"))
		return furing_notify_inval_inode(P.session, INO_DATA, 0, 0);
	if (sscanf(cmd, "store %llu %4000s", &off, text) == 2)
		return furing_notify_store(P.session, INO_DATA, off, text, strlen(text));
	if (sscanf(cmd, "retrieve %llu %llu", &off, &size) == 2)
		return furing_notify_retrieve(P.session, INO_DATA, off, size, P.retrieved);
	if (!strcmp(cmd, "hide_entry")) {
		pthread_mutex_lock(&P.lock);
		P.entry_hidden = true;
		pthread_mutex_unlock(&P.lock);
		return 0;
	}
	if (!strcmp(cmd, "inval_entry"))
		return furing_notify_inval_entry(P.session, INO_ROOT, "entry", 0);
	if (!strcmp(cmd, "delete_entry")) {
		pthread_mutex_lock(&P.lock);
		P.entry_hidden = true;
		pthread_mutex_unlock(&P.lock);
		return furing_notify_delete(P.session, INO_ROOT, INO_ENTRY, "entry");
	}
	if (!strcmp(cmd, "poll_wake")) {
		pthread_mutex_lock(&P.lock);
		P.poll_ready = true;
		bool have = P.poll_kh_set;
		uint64_t kh = P.poll_kh;
		pthread_mutex_unlock(&P.lock);
		return have ? furing_notify_poll(P.session, kh) : -ENOENT;
	}
	return -EINVAL;
}

static void *notifier(void *arg)
{
	pthread_mutex_lock(&P.lock);
	for (;;) {
		while (!P.job_req && !P.stopping)
			pthread_cond_wait(&P.job_cond, &P.lock);
		if (P.stopping)
			break;
		struct furing_req *req = P.job_req;
		char cmd[TEXT_MAX];
		uint32_t len = P.job_len;
		snprintf(cmd, sizeof(cmd), "%s", P.job);
		P.job_req = NULL;
		pthread_mutex_unlock(&P.lock);

		int ret = run_command(cmd);
		pthread_mutex_lock(&P.lock);
		snprintf(P.status, sizeof(P.status), "ret=%d\n", ret);
		pthread_mutex_unlock(&P.lock);
		furing_reply_write(req, len); /* answered from this thread */
		pthread_mutex_lock(&P.lock);
	}
	pthread_mutex_unlock(&P.lock);
	return NULL;
}

static void probe_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
			const struct furing_file *fi)
{
	if (ino != INO_CTL) {
		furing_reply_err(req, EACCES);
		return;
	}
	if (size == 0 || size >= TEXT_MAX) {
		furing_reply_err(req, EINVAL);
		return;
	}
	pthread_mutex_lock(&P.lock);
	if (P.job_req) { /* one command at a time */
		pthread_mutex_unlock(&P.lock);
		furing_reply_err(req, EBUSY);
		return;
	}
	memcpy(P.job, data, size);
	P.job[size] = '\0';
	P.job[strcspn(P.job, "\n")] = '\0';
	P.job_len = size;
	P.job_req = req;
	pthread_cond_signal(&P.job_cond);
	pthread_mutex_unlock(&P.lock);
}

static void probe_retrieve_reply(struct furing_req *req, void *cookie, uint64_t ino, uint64_t off, const void *data,
				 size_t size)
{
	fprintf(stderr, "DBG retrieve_reply size=%zu off=%llu\n", size, (unsigned long long)off);
	pthread_mutex_lock(&P.lock);
	size_t n = size < TEXT_MAX - 1 ? size : TEXT_MAX - 1;
	memcpy(cookie, data, n);
	((char *)cookie)[n] = '\0';
	pthread_mutex_unlock(&P.lock);
}

static void probe_setattr(struct furing_req *req, uint64_t ino, const struct furing_setattr *attr,
			  const struct furing_file *fi)
{
	/* O_TRUNC on /ctl from a shell redirection: nothing to truncate. */
	probe_getattr(req, ino, fi);
}

static const struct furing_ops probe_ops = {
	.init = probe_init,
	.destroy = probe_destroy,
	.worker_start = probe_worker_start,
	.lookup = probe_lookup,
	.getattr = probe_getattr,
	.setattr = probe_setattr,
	.readdir = probe_readdir,
	.open = probe_open,
	.release = probe_release,
	.read = probe_read,
	.write = probe_write,
	.poll = probe_poll,
	.interrupt = probe_interrupt,
	.retrieve_reply = probe_retrieve_reply,
};

/* ---- main ---- */

static void *block_watchdog(void *arg)
{
	/* A parked read that nobody interrupts still ends (EIO after 20 s), so
	 * a test that fails cannot leave the mount hanging. */
	for (;;) {
		sleep(1);
		pthread_mutex_lock(&P.lock);
		time_t now = time(NULL);
		static time_t since[BLOCKED_MAX];
		for (int i = 0; i < BLOCKED_MAX; i++) {
			if (!P.blocked[i]) {
				since[i] = 0;
				continue;
			}
			if (!since[i])
				since[i] = now;
			if (now - since[i] >= 20) {
				furing_reply_err(P.blocked[i], EIO);
				P.blocked[i] = NULL;
				since[i] = 0;
			}
		}
		pthread_mutex_unlock(&P.lock);
	}
	return NULL;
}

static FILE *log_file;

/* --log FILE: the library's messages go there, and none to stderr. */
static void log_to_file(void *data, enum furing_log_level level, const char *msg)
{
	static const char *const levels[] = {"error", "warning", "info", "debug"};
	fprintf(log_file, "%s: %s\n", levels[level], msg);
	fflush(log_file);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"io-uring", required_argument, NULL, 'u'},
		{"threads", required_argument, NULL, 't'},
		{"backing", required_argument, NULL, 'b'},
		{"want-passthrough", no_argument, NULL, 'p'},
		{"marker", required_argument, NULL, 'm'},
		{"refuse-init", no_argument, NULL, 'r'},
		{"no-init", no_argument, NULL, 'i'},
		{"fail-worker-start", no_argument, NULL, 'w'},
		{"slow-worker-start", required_argument, NULL, 's'},
		{"start-timeout", required_argument, NULL, 'T'},
		{"debug", no_argument, NULL, 'd'},
		{"no-signals", no_argument, NULL, 'n'},
		{"log", required_argument, NULL, 'l'},
		{"fsname", required_argument, NULL, 'F'},
		{"subtype", required_argument, NULL, 'S'},
		{"mount-options", required_argument, NULL, 'o'},
		{NULL, 0, NULL, 0},
	};
	struct furing_config cfg = {.fsname = "probefs", .subtype = "probefs", .default_permissions = true};
	char err[512];
	bool signals = true;
	struct furing_ops ops = probe_ops;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'u':
			cfg.io_uring = !strcmp(optarg, "on") ? FURING_IO_URING_ON
				       : !strcmp(optarg, "off") ? FURING_IO_URING_OFF
								: FURING_IO_URING_AUTO;
			break;
		case 't':
			cfg.threads = (unsigned int)atoi(optarg);
			break;
		case 'b':
			P.backing_path = optarg;
			break;
		case 'p':
			P.want_passthrough = true;
			break;
		case 'm':
			P.marker = optarg;
			break;
		case 'r':
			P.refuse_init = true;
			break;
		case 'i':
			ops.init = NULL; /* destroy must still run */
			break;
		case 'w':
			P.fail_worker_start = true;
			break;
		case 's':
			P.slow_worker_start_ms = (unsigned int)atoi(optarg);
			break;
		case 'T':
			cfg.start_timeout_ms = (unsigned int)atoi(optarg);
			break;
		case 'd':
			cfg.debug = true;
			break;
		case 'n':
			signals = false;
			break;
		case 'l':
			log_file = fopen(optarg, "we");
			if (!log_file) {
				fprintf(stderr, "probefs: cannot open %s\n", optarg);
				return 1;
			}
			cfg.log = log_to_file;
			break;
		case 'F':
			cfg.fsname = optarg;
			break;
		case 'S':
			cfg.subtype = optarg;
			break;
		case 'o':
			cfg.mount_options = optarg;
			break;
		default:
			fprintf(stderr, "probefs: unknown option\n");
			return 2;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: probefs [OPTIONS] MOUNTPOINT\n");
		return 2;
	}
	P.zero_fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	if (P.zero_fd < 0) {
		fprintf(stderr, "probefs: cannot open /dev/zero\n");
		return 1;
	}
	P.session = furing_session_new(&ops, sizeof(ops), &cfg, sizeof(cfg), &P, err, sizeof(err));
	if (!P.session) {
		fprintf(stderr, "probefs: %s\n", err);
		return 1;
	}
	pthread_t n, wd;
	if (pthread_create(&n, NULL, notifier, NULL) != 0 || pthread_create(&wd, NULL, block_watchdog, NULL) != 0) {
		fprintf(stderr, "probefs: cannot start its threads\n");
		return 1;
	}
	pthread_detach(wd);
	if (signals)
		furing_session_handle_signals(P.session);
	int ret = furing_session_start(P.session, argv[optind], err, sizeof(err));
	if (ret < 0) {
		fprintf(stderr, "probefs: %s\n", err);
	} else {
		fprintf(stderr, "probefs: serving, granted=%#llx\n",
			(unsigned long long)furing_session_conn(P.session)->granted);
		ret = furing_session_wait(P.session);
	}
	pthread_mutex_lock(&P.lock);
	P.stopping = true;
	pthread_cond_signal(&P.job_cond);
	pthread_mutex_unlock(&P.lock);
	pthread_join(n, NULL);
	pthread_mutex_lock(&P.lock);
	memset(P.blocked, 0, sizeof(P.blocked)); /* their connection is gone */
	pthread_mutex_unlock(&P.lock);
	furing_session_destroy(P.session);
	return ret < 0 ? 1 : 0;
}
