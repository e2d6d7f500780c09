/* furing_parse_cmdline (lib/cmdline.c): the usual FUSE command line into a
 * furing_config and a furing_cmdline. Pure: nothing is mounted here; the
 * integration tests (test_examples.py) run hello's command line for real. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <furing/furing.h>

#define MAXARGS 16

static char err[512];

/* Parses the NULL-terminated arguments after "prog". */
static int parse_v(unsigned int flags, struct furing_cmdline *cl, struct furing_config *cfg, va_list ap)
{
	char *argv[MAXARGS + 2] = {(char *)"prog"};
	int argc = 1;
	const char *a;

	while ((a = va_arg(ap, const char *)) != NULL && argc <= MAXARGS)
		argv[argc++] = (char *)a;
	argv[argc] = NULL;
	err[0] = '\0';
	return furing_parse_cmdline(argc, argv, flags, cl, sizeof(*cl), cfg, sizeof(*cfg), err, sizeof(err));
}

static int parse(unsigned int flags, struct furing_cmdline *cl, struct furing_config *cfg, ...)
{
	va_list ap;
	va_start(ap, cfg);
	int ret = parse_v(flags, cl, cfg, ap);
	va_end(ap);
	return ret;
}

/* Expects a failure whose message contains @needle. */
static void fails(const char *needle, ...)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};
	va_list ap;

	va_start(ap, needle);
	int ret = parse_v(0, &cl, &cfg, ap);
	va_end(ap);
	assert_int_equal(ret, -EINVAL);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
	assert_null(cl.priv); /* nothing to free after a failure */
}

static void test_plain_mountpoint_keeps_defaults(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {.fsname = "mine", .subtype = "sub", .threads = 7};

	assert_int_equal(parse(0, &cl, &cfg, "/mnt", NULL), 0);
	assert_string_equal(cl.mountpoint, "/mnt");
	assert_false(cl.foreground);
	assert_false(cl.help);
	assert_false(cl.version);
	assert_int_equal(cl.nargs, 0);
	assert_non_null(cl.args);
	assert_null(cl.args[0]);
	assert_null(cl.fs_options);
	assert_string_equal(cfg.fsname, "mine");
	assert_string_equal(cfg.subtype, "sub");
	assert_int_equal(cfg.threads, 7);
	assert_null(cfg.mount_options);
	assert_null(cfg.log);
	assert_false(cfg.debug);
	furing_cmdline_free(&cl);
	assert_null(cl.priv);
	furing_cmdline_free(&cl); /* twice: harmless */
}

static void test_flags(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	assert_int_equal(parse(0, &cl, &cfg, "-f", "-s", "/m", NULL), 0);
	assert_true(cl.foreground);
	assert_int_equal(cfg.threads, 1);
	assert_false(cfg.debug);
	furing_cmdline_free(&cl);

	/* -d: debug, foreground, and a log when the caller set none. */
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(parse(0, &cl, &cfg, "-d", "/m", NULL), 0);
	assert_true(cl.foreground);
	assert_true(cfg.debug);
	assert_ptr_equal(cfg.log, furing_log_stderr);
	furing_cmdline_free(&cl);

	/* ... but the caller's log stays. */
	furing_log_fn mine = (furing_log_fn)(uintptr_t)0x1234;
	memset(&cfg, 0, sizeof(cfg));
	cfg.log = mine;
	assert_int_equal(parse(0, &cl, &cfg, "-o", "debug", "/m", NULL), 0);
	assert_true(cfg.debug);
	assert_ptr_equal(cfg.log, mine);
	furing_cmdline_free(&cl);

	/* Grouped short flags, -o last taking the next argument or the rest. */
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(parse(0, &cl, &cfg, "-fso", "ro", "-oallow_other", "/m", NULL), 0);
	assert_true(cl.foreground);
	assert_int_equal(cfg.threads, 1);
	assert_true(cfg.read_only);
	assert_true(cfg.allow_other);
	furing_cmdline_free(&cl);
}

static void test_help_and_version_need_no_mountpoint(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	assert_int_equal(parse(0, &cl, &cfg, "--help", NULL), 0);
	assert_true(cl.help);
	assert_null(cl.mountpoint);
	furing_cmdline_free(&cl);
	assert_int_equal(parse(0, &cl, &cfg, "-h", NULL), 0);
	assert_true(cl.help);
	furing_cmdline_free(&cl);
	assert_int_equal(parse(0, &cl, &cfg, "-V", NULL), 0);
	assert_true(cl.version);
	furing_cmdline_free(&cl);
	assert_int_equal(parse(0, &cl, &cfg, "--version", "/m", NULL), 0);
	assert_true(cl.version);
	assert_string_equal(cl.mountpoint, "/m");
	furing_cmdline_free(&cl);
	assert_non_null(strstr(furing_cmdline_help(), "-o io_uring=MODE"));
}

static void test_session_options(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	assert_int_equal(parse(0, &cl, &cfg, "-o", "default_permissions,io_uring=off,threads=3,queue_depth=64", "-o",
			       "ro,rw", "/m", NULL),
			 0);
	assert_true(cfg.default_permissions);
	assert_int_equal(cfg.io_uring, FURING_IO_URING_OFF);
	assert_int_equal(cfg.threads, 3);
	assert_int_equal(cfg.queue_depth, 64);
	assert_false(cfg.read_only); /* the later one wins */
	assert_null(cfg.mount_options);
	furing_cmdline_free(&cl);
	assert_int_equal(parse(0, &cl, &cfg, "-o", "io_uring=on", "/m", NULL), 0);
	assert_int_equal(cfg.io_uring, FURING_IO_URING_ON);
	furing_cmdline_free(&cl);
	assert_int_equal(parse(0, &cl, &cfg, "-o", "io_uring=auto", "/m", NULL), 0);
	assert_int_equal(cfg.io_uring, FURING_IO_URING_AUTO);
	furing_cmdline_free(&cl);
}

static void test_mount_options_follow_the_callers(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {.mount_options = "noatime"};

	assert_int_equal(parse(0, &cl, &cfg, "-o", "noexec,fsname=x=y", "-o", "max_read=65536,subtype=s", "/m", NULL),
			 0);
	assert_string_equal(cfg.mount_options, "noatime,noexec,fsname=x=y,max_read=65536,subtype=s");
	furing_cmdline_free(&cl);

	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(parse(0, &cl, &cfg, "-o", "nosuid,nodev,context=system_u:object_r:tmp_t:s0", "/m", NULL), 0);
	assert_string_equal(cfg.mount_options, "nosuid,nodev,context=system_u:object_r:tmp_t:s0");
	furing_cmdline_free(&cl);
}

static void test_fs_options(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	assert_int_equal(parse(FURING_CMDLINE_FS_OPTIONS, &cl, &cfg, "-o", "cache=yes,allow_other", "-o", "uid=5",
			       "/m", NULL),
			 0);
	assert_string_equal(cl.fs_options, "cache=yes,uid=5");
	assert_true(cfg.allow_other);
	furing_cmdline_free(&cl);
	/* Without the flag an unknown item is an error. */
	fails("unknown option '-o cache=yes'", "-o", "cache=yes", "/m", NULL);
}

static void test_arguments_before_the_mountpoint(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	assert_int_equal(parse(FURING_CMDLINE_ARGS, &cl, &cfg, "a.tar", "-f", "b", "/m", NULL), 0);
	assert_string_equal(cl.mountpoint, "/m");
	assert_int_equal(cl.nargs, 2);
	assert_string_equal(cl.args[0], "a.tar");
	assert_string_equal(cl.args[1], "b");
	assert_null(cl.args[2]);
	assert_true(cl.foreground);
	furing_cmdline_free(&cl);

	/* "--" ends the options; "-" alone is an argument. */
	assert_int_equal(parse(FURING_CMDLINE_ARGS, &cl, &cfg, "-", "--", "-f", NULL), 0);
	assert_string_equal(cl.mountpoint, "-f");
	assert_false(cl.foreground);
	assert_int_equal(cl.nargs, 1);
	assert_string_equal(cl.args[0], "-");
	furing_cmdline_free(&cl);

	fails("one MOUNTPOINT expected, not 'a' and 'b'", "a", "b", NULL);
}

static void test_errors(void **state)
{
	fails("no MOUNTPOINT", NULL);
	fails("no MOUNTPOINT", "-f", "-o", "ro", NULL);
	fails("unknown option -x", "-x", "/m", NULL);
	fails("unknown option -x (in a group", "-fx", "/m", NULL);
	fails("unknown option --foreground", "--foreground", "/m", NULL);
	fails("needs a value", "/m", "-o", NULL);
	/* -o VALUE: the message each refusal must contain. */
	static const char *const bad_o[][2] = {
		{"ro,,rw", "empty option"},
		{"threads=0", "-o threads=0: needs a whole number from 1 to 1024"},
		{"threads=2x", "-o threads=2x"},
		{"threads=-1", "-o threads=-1"},
		{"queue_depth=4097", "-o queue_depth=4097"},
		{"io_uring=yes", "io_uring must be auto, on or off"},
		{"max_read=12", "max_read=12 is below 4096"},
		{"blksize=4096", "blksize= applies only to fuseblk"},
		{"context=a\"b", "not allowed in a context"},
		{"fsname=", "fsname= is empty"},
		{"fsname=a\\b", "a backslash is not allowed"},
		{"suid", "unknown option '-o suid'"},
	};
	for (size_t i = 0; i < sizeof(bad_o) / sizeof(bad_o[0]); i++)
		fails(bad_o[i][1], "-o", bad_o[i][0], "/m", NULL);
}

/* A caller built against an older, shorter struct: nothing past its size
 * is written, and an option whose field it lacks fails. */
static void test_sizes_are_respected(void **state)
{
	struct {
		struct furing_config cfg;
		unsigned char guard[16];
	} c;
	struct {
		struct furing_cmdline cl;
		unsigned char guard[16];
	} l;
	char *argv[] = {(char *)"prog", (char *)"-f", (char *)"-o", (char *)"allow_other,ro", (char *)"/m", NULL};
	const size_t cfg_size = offsetof(struct furing_config, threads); /* debug, log, mount_options beyond */
	const size_t cl_size = offsetof(struct furing_cmdline, help);

	memset(&c, 0xa5, sizeof(c));
	memset(&l, 0xa5, sizeof(l));
	c.cfg.fsname = "x";
	c.cfg.subtype = "y";
	c.cfg.allow_other = false;
	c.cfg.read_only = false;
	assert_int_equal(furing_parse_cmdline(5, argv, 0, &l.cl, cl_size, &c.cfg, cfg_size, err, sizeof(err)), 0);
	assert_string_equal(l.cl.mountpoint, "/m");
	assert_true(l.cl.foreground);
	assert_true(c.cfg.allow_other);
	assert_true(c.cfg.read_only);
	const unsigned char *p = (const unsigned char *)&l.cl;
	for (size_t i = cl_size; i < sizeof(l); i++)
		assert_int_equal(p[i], 0xa5);
	p = (const unsigned char *)&c.cfg;
	for (size_t i = cfg_size; i < sizeof(c); i++)
		assert_int_equal(p[i], 0xa5);
	assert_string_equal(c.cfg.fsname, "x");
	furing_cmdline_free(&l.cl);

	static const char *const beyond[][2] = {{"-d", NULL}, {"-s", NULL}, {"-o", "noexec"}, {"-o", "threads=2"}};
	for (size_t i = 0; i < sizeof(beyond) / sizeof(beyond[0]); i++) {
		char *a[] = {(char *)"prog", (char *)beyond[i][0], (char *)beyond[i][1], (char *)"/m", NULL};
		int n = beyond[i][1] ? 4 : 3;
		if (!beyond[i][1])
			a[2] = (char *)"/m";
		assert_int_equal(furing_parse_cmdline(n, a, 0, &l.cl, cl_size, &c.cfg, cfg_size, err, sizeof(err)),
				 -EINVAL);
		if (!strstr(err, "this program's struct furing_config has no"))
			fail_msg("%s: %s", beyond[i][0], err);
	}
	for (size_t i = cfg_size; i < sizeof(c); i++)
		assert_int_equal(p[i], 0xa5);
}

static void test_no_getopt_state(void **state)
{
	struct furing_cmdline cl;
	struct furing_config cfg = {0};

	optind = 5;
	opterr = 1;
	assert_int_equal(parse(0, &cl, &cfg, "-f", "/m", NULL), 0);
	assert_int_equal(optind, 5);
	assert_int_equal(opterr, 1);
	furing_cmdline_free(&cl);
	struct furing_cmdline zero = {0};
	furing_cmdline_free(&zero);
	furing_cmdline_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_mountpoint_keeps_defaults),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_help_and_version_need_no_mountpoint),
		cmocka_unit_test(test_session_options),
		cmocka_unit_test(test_mount_options_follow_the_callers),
		cmocka_unit_test(test_fs_options),
		cmocka_unit_test(test_arguments_before_the_mountpoint),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_sizes_are_respected),
		cmocka_unit_test(test_no_getopt_state),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
