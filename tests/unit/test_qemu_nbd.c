/* export/qemu_nbd.c, white-box: several private qemu-nbds in one process
 * (the daemon's case, issue 19). Stopping one leaves the others to the exit
 * handler, which stops every one still running (a single "live" pointer
 * forgot them all once any stopped). Needs qemu-nbd (qemu-utils); skipped
 * without it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../export/qemu_nbd.c"

struct captured {
	unsigned int lines;
};

static void capture(void *data, enum furing_log_level level, const char *msg)
{
	((struct captured *)data)->lines++;
}

static bool exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static void test_each_stops_alone_and_exit_stops_the_rest(void **state)
{
	char prog[4096], image[] = "/tmp/furing-test-qemu-nbd-XXXXXX", err[512];
	struct captured log = {0};
	struct export_log msgs = {.fn = capture, .data = &log};
	struct qemu_nbd *q[3];
	char dirs[3][sizeof(q[0]->dir)];

	if (!find_in_path("qemu-nbd", prog, sizeof(prog)))
		skip();
	int fd = mkstemp(image);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 1 << 20), 0);
	close(fd);
	for (int i = 0; i < 3; i++) {
		q[i] = qemu_nbd_start(image, "raw", false, false, 1, &msgs, err, sizeof(err));
		if (!q[i]) {
			fail_msg("qemu_nbd_start: %s", err);
			return; /* (cmocka's fail does not say it returns no more: -O3 would warn) */
		}
		memcpy(dirs[i], q[i]->dir, sizeof(dirs[i]));
	}

	/* The middle one's export stops it: the others keep running. */
	assert_int_equal(qemu_nbd_stop(q[1]), 0);
	assert_false(exists(dirs[1]));
	assert_true(accepts_connections(q[0]) && accepts_connections(q[2]));

	/* exit(): every one still running is stopped and cleaned up. */
	stop_all_at_exit();
	assert_null(running);
	assert_false(exists(dirs[0]));
	assert_false(exists(dirs[2]));
	assert_int_equal(log.lines, 0); /* each stopped cleanly on SIGTERM */
	unlink(image);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_stops_alone_and_exit_stops_the_rest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
