/* export/nbd_conn.c, white-box: what the connections of one NBD export
 * share (struct nbd_disk) is that export's alone. Two exports in one process
 * (the daemon's case, issue 19) each say once that their server is lost,
 * once that it is back, once that it failed a request, whatever the other
 * export's connections do. No server: the connections are made up here,
 * with no worker, so messages go to each export's own log (export.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../export/nbd_conn.c"

struct captured {
	unsigned int lost, back, refused, other;
	char last[1024];
};

static void capture(void *data, enum furing_log_level level, const char *msg)
{
	struct captured *c = data;

	snprintf(c->last, sizeof(c->last), "%s", msg);
	if (strstr(msg, "NBD server lost"))
		c->lost++;
	else if (strstr(msg, "NBD server back"))
		c->back++;
	else if (strstr(msg, "failed a"))
		c->refused++;
	else
		c->other++;
}

struct fake_export {
	struct nbd_disk disk;
	struct captured log;
	struct nbd_conn *conn[2];
};

/* A connection as nbd_conn_open leaves it, without a server: ready, with a
 * handle that never connected. Its caps are what such a handle reports
 * (size -1), so that a "reconnect" finds the same disk. */
static struct nbd_conn *fake_conn(struct nbd_disk *disk, unsigned int index)
{
	struct nbd_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->disk = disk;
	c->uri = strdup("nbd+unix:///?socket=/nonexistent");
	c->index = index;
	c->fd = -1;
	c->h = nbd_create();
	assert_non_null(c->h);
	read_caps(c->h, &c->caps);
	c->state = CONN_READY;
	return c;
}

static void fake_export_init(struct fake_export *e)
{
	memset(e, 0, sizeof(*e));
	e->disk.log = (struct export_log){.fn = capture, .data = &e->log};
	for (unsigned int i = 0; i < 2; i++)
		e->conn[i] = fake_conn(&e->disk, i);
}

static void fake_export_close(struct fake_export *e)
{
	for (unsigned int i = 0; i < 2; i++)
		assert_int_equal(nbd_conn_close(e->conn[i]), 0);
}

/* What settle() does when a reconnect finished its handshake. */
static void reconnect(struct nbd_conn *c)
{
	c->h = nbd_create();
	assert_non_null(c->h);
	c->state = CONN_CONNECTING;
	conn_reconnected(c);
	assert_int_equal(c->state, CONN_READY);
}

static void test_loss_and_return_are_each_exports_own(void **state)
{
	struct fake_export a, b;

	fake_export_init(&a);
	fake_export_init(&b);

	conn_lost(a.conn[0], "test");
	conn_lost(a.conn[1], "test");
	assert_int_equal(a.log.lost, 1); /* one line for the export, not one per connection */
	assert_int_equal(atomic_load(&a.disk.conns_down), 2);

	/* B's server is lost too: B says so, though A's connections are down. */
	conn_lost(b.conn[0], "test");
	assert_int_equal(b.log.lost, 1);
	assert_int_equal(a.log.lost, 1);
	assert_int_equal(atomic_load(&b.disk.conns_down), 1);

	/* A is back when its own connections are, not when B's are. */
	reconnect(a.conn[0]);
	assert_int_equal(a.log.back, 0);
	reconnect(a.conn[1]);
	assert_int_equal(a.log.back, 1);
	assert_int_equal(b.log.back, 0);
	assert_int_equal(atomic_load(&b.disk.conns_down), 1);
	reconnect(b.conn[0]);
	assert_int_equal(b.log.back, 1);
	assert_int_equal(atomic_load(&a.disk.conns_down), 0);
	assert_int_equal(atomic_load(&b.disk.conns_down), 0);

	assert_int_equal(a.log.other + b.log.other, 0);
	fake_export_close(&a);
	fake_export_close(&b);
}

static void test_first_refusal_is_each_exports_own(void **state)
{
	struct fake_export a, b;

	fake_export_init(&a);
	fake_export_init(&b);

	note_refusal(a.conn[0], NBD_OP_WRITE, EIO);
	note_refusal(a.conn[1], NBD_OP_READ, EIO);
	assert_int_equal(a.log.refused, 1);
	assert_non_null(strstr(a.log.last, "failed a write"));

	note_refusal(b.conn[1], NBD_OP_FLUSH, ENOSPC);
	assert_int_equal(b.log.refused, 1);
	assert_non_null(strstr(b.log.last, "failed a flush"));

	fake_export_close(&a);
	fake_export_close(&b);
}

/* No callback and no session: the message goes nowhere (the library's and
 * the export's rule: nothing printed unless asked). */
static void test_no_log_is_silent(void **state)
{
	struct nbd_disk disk = {0};
	struct nbd_conn *c = fake_conn(&disk, 0);

	conn_lost(c, "test");
	note_refusal(c, NBD_OP_READ, EIO);
	assert_int_equal(atomic_load(&disk.conns_down), 1);
	assert_int_equal(nbd_conn_close(c), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loss_and_return_are_each_exports_own),
		cmocka_unit_test(test_first_refusal_is_each_exports_own),
		cmocka_unit_test(test_no_log_is_silent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
