/* See mount.h. */
#include "mount.h"

#include <furing/furing.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#define FUSECTL_DIR "/sys/fs/fuse/connections"

bool fu_in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[PATH_MAX];

	if (!path)
		path = "/usr/bin:/bin";
	while (*path) {
		const char *end = strchr(path, ':');
		size_t n = end ? (size_t)(end - path) : strlen(path);

		if (n && n + strlen(prog) + 2 < sizeof(buf)) {
			snprintf(buf, sizeof(buf), "%.*s/%s", (int)n, path, prog);
			if (access(buf, X_OK) == 0)
				return true;
		}
		path += n;
		if (*path == ':')
			path++;
	}
	return false;
}

/* The topmost mount at a path, from /proc/self/mountinfo. */
struct fu_mount_entry {
	char mountpoint[PATH_MAX]; /* absolute, as mountinfo has it */
	char fstype[64];           /* "fuse.furing", "fuse", "ext4", ... */
	dev_t dev;                 /* the mount's st_dev */
	long user_id;              /* a FUSE mount's user_id= option, else -1 */
};

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *d = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 4;
		} else {
			*d++ = *s++;
		}
	}
	*d = '\0';
}

/* @path made absolute without looking up its last component: realpath() of
 * the directory part, then the name. A dead FUSE mount on the name fails
 * every lookup with ENOTCONN, and a stopped server's would hang it. A name
 * that is ".", ".." or empty names a directory, which cannot be a file
 * export's mount: plain realpath() there. */
static int resolve_keep_last(const char *path, char out[PATH_MAX])
{
	const char *slash = strrchr(path, '/');
	const char *name = slash ? slash + 1 : path;
	char dir[PATH_MAX], rdir[PATH_MAX];

	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return realpath(path, out) ? 0 : -errno;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -ENAMETOOLONG;
	if (!realpath(dir, rdir))
		return -errno;
	if (snprintf(out, PATH_MAX, "%s%s%s", rdir, strcmp(rdir, "/") ? "/" : "", name) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* The user_id= option of a FUSE superblock's options, or -1. */
static long fuse_user_id(const char *super_opts)
{
	for (const char *p = super_opts; p; p = strchr(p, ',')) {
		if (*p == ',')
			p++;
		if (!strncmp(p, "user_id=", 8))
			return strtol(p + 8, NULL, 10);
	}
	return -1;
}

/* The last mountinfo line whose mount point is @abs (the topmost mount).
 * Returns 1 with *m filled, 0 when nothing is mounted there, or -errno. */
static int scan_mountinfo(const char *abs, struct fu_mount_entry *m)
{
	char *line = NULL;
	size_t cap = 0;
	int ret = 0;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		/* id parent major:minor root mountpoint options [optional...] - fstype source super_options */
		char *save = NULL, *tok = strtok_r(line, " \n", &save);
		char *devfield = NULL, *mnt = NULL;
		for (int i = 1; tok && i <= 4; i++) {
			tok = strtok_r(NULL, " \n", &save);
			if (i == 2)
				devfield = tok;
			else if (i == 4)
				mnt = tok;
		}
		if (!mnt || !devfield)
			continue;
		unescape(mnt);
		unsigned int maj, min;
		if (strcmp(mnt, abs) != 0 || sscanf(devfield, "%u:%u", &maj, &min) != 2)
			continue;
		while ((tok = strtok_r(NULL, " \n", &save)) && strcmp(tok, "-") != 0)
			;
		char *fstype = strtok_r(NULL, " \n", &save);
		char *source = fstype ? strtok_r(NULL, " \n", &save) : NULL;
		char *super_opts = source ? strtok_r(NULL, " \n", &save) : NULL;
		snprintf(m->mountpoint, sizeof(m->mountpoint), "%s", abs);
		snprintf(m->fstype, sizeof(m->fstype), "%s", fstype ? fstype : "");
		m->dev = makedev(maj, min);
		m->user_id = super_opts ? fuse_user_id(super_opts) : -1;
		ret = 1;
	}
	free(line);
	fclose(f);
	return ret;
}

/* Looks @path up in mountinfo. Only the directory part of @path is resolved
 * (resolve_keep_last). Returns 1 with *m filled, 0 when nothing is mounted
 * there, or -errno. */
static int fu_mount_lookup(const char *path, struct fu_mount_entry *m)
{
	char abs[PATH_MAX];
	int ret = resolve_keep_last(path, abs);

	return ret < 0 ? ret : scan_mountinfo(abs, m);
}

bool fu_is_mountpoint(const char *path)
{
	struct fu_mount_entry m;
	return fu_mount_lookup(path, &m) == 1;
}

int fu_mount_dev(const char *path, dev_t *dev)
{
	struct fu_mount_entry m;
	int ret = fu_mount_lookup(path, &m);

	if (ret == 1)
		*dev = m.dev;
	return ret == 1 ? 0 : ret == 0 ? -ENOENT : ret;
}

/* Asks the filesystem at @path for its attributes, bypassing the kernel's
 * cache, from a child process, and waits up to @timeout_ms. Returns 0 when
 * it answers, -errno when it fails (-ENOTCONN or -ECONNABORTED: a FUSE mount
 * whose server is gone; -ECONNREFUSED: one whose server died before its INIT
 * was answered, which the kernel then refuses every request of), -ETIMEDOUT when it does not answer in time (a
 * stopped server); that child is killed but may linger until the server
 * answers. */
static int fu_probe_path(const char *path, unsigned int timeout_ms)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* FORCE_SYNC: the kernel's attribute cache answers for a killed
		 * server for up to the attribute timeout; this must ask. */
		struct statx sx;
		int r = statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_FORCE_SYNC, STATX_TYPE, &sx);
		_exit(r == 0 ? 0 : errno > 0 && errno < 256 ? errno : EIO);
	}
	for (unsigned int waited = 0;; waited++) {
		int status;
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			return WIFEXITED(status) ? -WEXITSTATUS(status) : -EIO;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (waited >= timeout_ms)
			break;
		usleep(1000);
	}
	/* Not reaped: a request the server has already taken cannot be
	 * interrupted, so the child may stay until the server answers. */
	kill(pid, SIGKILL);
	return -ETIMEDOUT;
}

/* The longest fsname and subtype we pass on: the kernel copies a mount
 * source of less than PATH_MAX bytes (any realpath fits), and 255 keeps a
 * type name sane. */
#define FSNAME_MAX (PATH_MAX - 1)
#define SUBTYPE_MAX 255
#define CONTEXT_MAX 255

/* What furing_config.mount_options asks for, checked. The strings point
 * into @copy, the author's string cut at its commas. */
struct mount_extra {
	char *copy;
	const char *fsname, *subtype, *context;
	unsigned long flags; /* of mount_flags[] */
	uint32_t max_read;   /* 0: not given */
};

/* The mount flags an author may add. nosuid and nodev are always on (a
 * FUSE server must not grant them), so asking for them changes nothing. */
static const struct {
	const char *name;
	unsigned long flag;
} mount_flags[] = {
	{"noexec", MS_NOEXEC},
	{"nosuid", MS_NOSUID},
	{"nodev", MS_NODEV},
	{"noatime", MS_NOATIME},
};

#define ALLOWED "noexec, nosuid, nodev, noatime, context=, fsname=, subtype=, max_read="

static int check_name(const char *what, const char *v, size_t max, char *err, size_t errlen)
{
	if (!*v) {
		snprintf(err, errlen, "%s is empty", what);
		return -EINVAL;
	}
	if (strlen(v) > max) {
		snprintf(err, errlen, "%s is longer than %zu bytes", what, max);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* A security context goes to the kernel unescaped inside the option string
 * (its parser splits at commas and knows no escapes): printable characters
 * only, no quote or backslash. */
static int check_context(const char *v, char *err, size_t errlen)
{
	int ret = check_name("mount_options: context=", v, CONTEXT_MAX, err, errlen);

	for (const char *p = v; ret == 0 && *p; p++)
		if (*p <= ' ' || *p > '~' || *p == '"' || *p == '\\') {
			snprintf(err, errlen, "mount_options: context=%s: character %#x is not allowed in a context",
				 v, (unsigned char)*p);
			ret = -EINVAL;
		}
	return ret;
}

static int parse_max_read(const char *v, uint32_t limit, uint32_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = *v >= '0' && *v <= '9' ? strtoul(v, &end, 10) : 0;
	if (n == 0 || errno || *end) {
		snprintf(err, errlen, "mount_options: max_read=%s is not a number of bytes", v);
		return -EINVAL;
	}
	if (n < 4096 && limit == UINT32_MAX) { /* fu_mount_option_check: no payload size yet */
		snprintf(err, errlen, "mount_options: max_read=%s is below 4096", v);
		return -EINVAL;
	}
	if (n < 4096 || n > limit) {
		snprintf(err, errlen, "mount_options: max_read=%s is outside 4096..%u (the payload size)", v, limit);
		return -EINVAL;
	}
	*out = (uint32_t)n;
	return 0;
}

static bool mount_flag(const char *item, unsigned long *flags)
{
	for (size_t i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++)
		if (!strcmp(item, mount_flags[i].name)) {
			*flags |= mount_flags[i].flag;
			return true;
		}
	return false;
}

/* One item of mount_options: a flag, or key=value. */
static int parse_item(char *item, uint32_t max_read_limit, struct mount_extra *x, char *err, size_t errlen)
{
	char *v = strchr(item, '=');

	if (!*item) {
		snprintf(err, errlen, "mount_options: empty option (two commas, or one at an end)");
		return -EINVAL;
	}
	if (strchr(item, '\\')) {
		snprintf(err, errlen, "mount_options: '%s': a backslash is not allowed (no escapes here)", item);
		return -EINVAL;
	}
	if (!v && mount_flag(item, &x->flags))
		return 0;
	if (v)
		*v++ = '\0';
	if (v && !strcmp(item, "fsname")) {
		x->fsname = v;
		return check_name("mount_options: fsname=", v, FSNAME_MAX, err, errlen);
	}
	if (v && !strcmp(item, "subtype")) {
		x->subtype = v;
		return check_name("mount_options: subtype=", v, SUBTYPE_MAX, err, errlen);
	}
	if (v && !strcmp(item, "context")) {
		x->context = v;
		return check_context(v, err, errlen);
	}
	if (v && !strcmp(item, "max_read"))
		return parse_max_read(v, max_read_limit, &x->max_read, err, errlen);
	if (!strcmp(item, "blksize")) {
		snprintf(err, errlen, "mount_options: blksize= applies only to fuseblk (block device) mounts, "
				      "which libfuring does not make");
		return -EINVAL;
	}
	snprintf(err, errlen, "mount_options: unknown option '%s%s%s' (allowed: " ALLOWED ")", item, v ? "=" : "",
		 v ? v : "");
	return -EINVAL;
}

/* Fills *x from @o (x->copy to be freed by the caller, also on failure). */
static int parse_extra(const struct fu_mount_opts *o, struct mount_extra *x, char *err, size_t errlen)
{
	int ret;

	memset(x, 0, sizeof(*x));
	if ((ret = check_name("fsname", o->fsname, FSNAME_MAX, err, errlen)) < 0 ||
	    (ret = check_name("subtype", o->subtype, SUBTYPE_MAX, err, errlen)) < 0)
		return ret;
	x->fsname = o->fsname;
	x->subtype = o->subtype;
	x->max_read = o->max_read;
	if (!o->options)
		return 0;
	x->copy = strdup(o->options);
	if (!x->copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	char *p = x->copy;
	for (char *item = strsep(&p, ","); item; item = strsep(&p, ","))
		if ((ret = parse_item(item, o->max_read, x, err, errlen)) < 0)
			return ret;
	return 0;
}

/* The names parse_item knows, flags and keys (with their '='). */
static bool mount_option_name(const char *item)
{
	static const char *const keys[] = {"fsname=", "subtype=", "context=", "max_read=", "blksize="};
	unsigned long flags = 0;

	if (mount_flag(item, &flags) || !strcmp(item, "blksize"))
		return true;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strncmp(item, keys[i], strlen(keys[i])))
			return true;
	return false;
}

int fu_mount_option_check(const char *item, char *err, size_t errlen)
{
	struct mount_extra x;
	char *copy;
	int ret;

	if (!mount_option_name(item))
		return -ENOENT;
	copy = strdup(item);
	if (!copy) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	memset(&x, 0, sizeof(x));
	/* The payload size is not known yet: furing_session_new checks
	 * max_read against it again. */
	ret = parse_item(copy, UINT32_MAX, &x, err, errlen);
	free(copy);
	return ret;
}

int fu_mount_check(const struct fu_mount_opts *o, char *err, size_t errlen)
{
	struct mount_extra x;
	int ret = parse_extra(o, &x, err, errlen);

	free(x.copy);
	return ret;
}

static int mount_as_root(const char *mnt, const struct fu_mount_opts *o, const struct mount_extra *x, char *err,
			 size_t errlen)
{
	char opts[512], type[sizeof("fuse.") + SUBTYPE_MAX];
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open /dev/fuse: %s", strerror(errno));
		return -1;
	}
	/* The kernel's option parser splits at commas and knows no escapes:
	 * only numbers and the checked context go in here. The fsname is the
	 * mount's source and the subtype part of its type, separate strings. */
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s%s,max_read=%u%s%s", fd,
		 (unsigned)o->root_mode, (unsigned)getuid(), (unsigned)getgid(),
		 o->default_permissions ? ",default_permissions" : "", o->allow_other ? ",allow_other" : "", x->max_read,
		 x->context ? ",context=" : "", x->context ? x->context : "");
	snprintf(type, sizeof(type), "fuse.%s", x->subtype);
	unsigned long flags = MS_NOSUID | MS_NODEV | x->flags | (o->read_only ? MS_RDONLY : 0);
	if (mount(x->fsname, mnt, type, flags, opts) < 0) {
		int e = errno;
		snprintf(err, errlen, "mounting %s failed: %s%s", mnt, strerror(e),
			 x->context && e == EINVAL ? " (context= needs a security module such as SELinux)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

/* fusermount3 mounts for us and hands the /dev/fuse fd back over the socket
 * named by $_FUSE_COMMFD, as an SCM_RIGHTS message. */
static int receive_fd(int sock)
{
	char byte;
	struct iovec iov = {&byte, 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf)};

	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	int fd;
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	return fd;
}

static int run_fusermount(char *const argv[], int commfd)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (commfd >= 0) {
			char num[16];
			snprintf(num, sizeof(num), "%d", commfd);
			setenv("_FUSE_COMMFD", num, 1);
			fcntl(commfd, F_SETFD, 0);
		}
		execvp("fusermount3", argv);
		_exit(127);
	}
	return pid;
}

/* Appends ",@key=@v" with a backslash before each ',' and '\': fusermount3
 * takes those as part of an fsname= or subtype= value (and only there). */
static char *put_escaped(char *out, const char *key, const char *v)
{
	out += sprintf(out, ",%s=", key);
	for (; *v; v++) {
		if (*v == ',' || *v == '\\')
			*out++ = '\\';
		*out++ = *v;
	}
	*out = '\0';
	return out;
}

/* fusermount3's -o: every value the library places there is a number, a
 * fixed word or an escaped name. */
static char *fusermount_opts(const struct fu_mount_opts *o, const struct mount_extra *x)
{
	char *s = malloc(2 * (strlen(x->fsname) + strlen(x->subtype)) + 256);
	if (!s)
		return NULL;
	char *p = s + sprintf(s, "%s,nosuid,nodev%s%s", o->read_only ? "ro" : "rw",
			      o->default_permissions ? ",default_permissions" : "", o->allow_other ? ",allow_other" : "");
	for (size_t i = 0; i < sizeof(mount_flags) / sizeof(mount_flags[0]); i++)
		if (x->flags & mount_flags[i].flag & ~(unsigned long)(MS_NOSUID | MS_NODEV))
			p += sprintf(p, ",%s", mount_flags[i].name);
	p = put_escaped(p, "fsname", x->fsname);
	p = put_escaped(p, "subtype", x->subtype);
	sprintf(p, ",max_read=%u", x->max_read);
	return s;
}

static int mount_with_fusermount(const char *mnt, const struct fu_mount_opts *o, const struct mount_extra *x,
				 char *err, size_t errlen)
{
	int sv[2];

	if (!fu_in_path("fusermount3")) {
		snprintf(err, errlen, "not root and fusermount3 is not in PATH (install the fuse3 package, or run as root)");
		return -1;
	}
	if (x->context) {
		snprintf(err, errlen, "mount_options: context= needs root (fusermount3 does not pass it on)");
		return -1;
	}
	char *opts = fusermount_opts(o, x);
	if (!opts) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(err, errlen, "socketpair: %s", strerror(errno));
		free(opts);
		return -1;
	}
	char *argv[] = {"fusermount3", "-o", opts, "--", (char *)mnt, NULL};
	int pid = run_fusermount(argv, sv[1]);
	free(opts);
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		snprintf(err, errlen, "cannot run fusermount3: %s", strerror(-pid));
		return -1;
	}
	int fd = receive_fd(sv[0]);
	close(sv[0]);
	int status = 0;
	waitpid(pid, &status, 0);
	if (fd < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "fusermount3 could not mount %s (its message is above)", mnt);
		return -1;
	}
	return fd;
}

int fu_mount(const char *mnt, const struct fu_mount_opts *o, bool *via_fusermount, char *err, size_t errlen)
{
	struct mount_extra x;
	int fd = parse_extra(o, &x, err, errlen) < 0 ? -1 : 0;

	*via_fusermount = geteuid() != 0;
	if (fd == 0)
		fd = *via_fusermount ? mount_with_fusermount(mnt, o, &x, err, errlen) : mount_as_root(mnt, o, &x, err, errlen);
	free(x.copy);
	return fd;
}

int fu_unmount(const char *mnt, bool via_fusermount)
{
	if (!via_fusermount)
		return umount2(mnt, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
	char *argv[] = {"fusermount3", "-u", "-q", "-z", "--", (char *)mnt, NULL};
	int pid = run_fusermount(argv, -1);
	if (pid < 0)
		return pid;
	int status = 0;
	waitpid(pid, &status, 0);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EINVAL;
}

int fu_abort_connection(dev_t dev)
{
	char path[128];

	snprintf(path, sizeof(path), FUSECTL_DIR "/%u/abort", minor(dev));
	bool mounted_here = false;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && geteuid() == 0) {
		/* fusectl is not mounted on every system: mount it for this one
		 * write, and take it away again afterwards. */
		mounted_here = mount("fusectl", FUSECTL_DIR, "fusectl", 0, NULL) == 0;
		fd = open(path, O_WRONLY | O_CLOEXEC);
	}
	int ret = 0;
	if (fd < 0) {
		ret = -errno;
	} else {
		if (write(fd, "1", 1) != 1)
			ret = -errno;
		close(fd);
	}
	if (mounted_here)
		umount2(FUSECTL_DIR, MNT_DETACH);
	return ret;
}

int furing_clear_dead_mount(const char *path, const char *subtype, unsigned int timeout_ms,
			    struct furing_dead_mount *out)
{
	char ours[sizeof(out->fstype)];

	snprintf(ours, sizeof(ours), "fuse.%s", subtype ? subtype : "furing");
	/* Another server starting here may replace the dead mount while we
	 * probe: unmount only the one probed (narrows that window), else
	 * look again. */
	for (int tries = 0; tries < 8; tries++) {
		struct fu_mount_entry m, now;
		if (fu_mount_lookup(path, &m) != 1 || strncmp(m.fstype, "fuse", 4) != 0)
			return 0;
		snprintf(out->mountpoint, sizeof(out->mountpoint), "%s", m.mountpoint);
		snprintf(out->fstype, sizeof(out->fstype), "%s", m.fstype);
		out->user_id = m.user_id;
		int r = fu_probe_path(m.mountpoint, timeout_ms ? timeout_ms : 2000);
		if (r == -ETIMEDOUT)
			return r;
		if (r != -ENOTCONN && r != -ECONNABORTED && r != -ECONNREFUSED)
			return 0; /* alive: busy, which furing_session_start reports */
		if (strcmp(m.fstype, ours) != 0)
			return -ENOTCONN;
		if (fu_mount_lookup(path, &now) != 1 || now.dev != m.dev)
			continue;
		int ret = fu_unmount(m.mountpoint, geteuid() != 0);
		return ret < 0 ? ret : 1;
	}
	return 0;
}
