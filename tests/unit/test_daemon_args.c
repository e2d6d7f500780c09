/* export-add's arguments (tools/daemon_args.c) land where the command
 * line's options would: the same fields, the same defaults, the same
 * refusals, and requests (tools/control_proto.c) are parsed as
 * doc/control.md says. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../tools/control_proto.h"
#include "../../tools/daemon_args.h"

struct parsed {
	json_t *args;
	struct furing_config cfg;
	struct daemon_args d;
	struct control_error e;
	int ret;
};

static void parse(struct parsed *p, const char *json)
{
	memset(p, 0, sizeof(*p));
	p->args = json_loads(json, 0, NULL);
	assert_non_null(p->args);
	p->ret = daemon_args_parse(p->args, &p->cfg, &p->d, &p->e);
}

static void done(struct parsed *p)
{
	json_decref(p->args);
}

#define NAMES "\"id\": \"a\", \"type\": \"export\", \"source\": \"/i\", \"mountpoint\": \"/m\""
#define PT_NAMES "\"id\": \"t\", \"type\": \"passthrough\", \"source\": \"/s\", \"mountpoint\": \"/d\""

static void export_options_as_the_command_line(void **state)
{
	struct parsed p;

	parse(&p, "{" NAMES ", \"writable\": true, \"threads\": 3, \"queue-depth\": \"64\", \"io-uring\": \"off\","
		  " \"cache\": \"kernel\", \"payload-size\": \"64K\", \"busy-poll\": 0, \"pin\": true,"
		  " \"kernel-passthrough\": \"off\", \"backend-io\": \"inline\", \"growable\": false}");
	assert_int_equal(p.ret, 0);
	assert_string_equal(p.d.id, "a");
	assert_false(p.d.passthrough);
	assert_true(p.d.ex.ex.writable);
	assert_false(p.d.ex.ex.growable);
	assert_false(p.cfg.read_only);
	assert_true(p.cfg.default_permissions);
	assert_int_equal(p.cfg.threads, 3);
	assert_int_equal(p.cfg.queue_depth, 64);
	assert_int_equal(p.cfg.io_uring, FURING_IO_URING_OFF);
	assert_int_equal(p.cfg.payload_size, 65536);
	assert_true(p.cfg.busy_poll_off);
	assert_int_equal(p.cfg.pin, FURING_PIN_ON);
	assert_int_equal(p.d.ex.ex.cache, EXPORT_CACHE_KERNEL);
	assert_int_equal(p.d.ex.ex.kernel_passthrough, EXPORT_KPT_OFF);
	assert_int_equal(p.d.ex.ex.backend_io, EXPORT_IO_INLINE);
	assert_string_equal(p.d.ex.image, "/i");
	assert_int_equal(p.d.ex.ex.nbd_timeout_s, EXPORT_NBD_TIMEOUT_DEFAULT);
	done(&p);

	parse(&p, "{" NAMES "}");
	assert_int_equal(p.ret, 0);
	assert_true(p.cfg.read_only); /* read-only unless writable, as on the command line */
	done(&p);
}

static void passthrough_options_as_the_command_line(void **state)
{
	struct parsed p;

	parse(&p, "{" PT_NAMES ", \"cache\": \"always\", \"no-xattr\": true, \"kernel-passthrough\": true,"
		  " \"threads\": 1}");
	assert_int_equal(p.ret, 0);
	assert_true(p.d.passthrough);
	assert_int_equal(p.d.pt.pt.cache, PT_CACHE_ALWAYS);
	assert_true(p.d.pt.pt.no_xattr);
	assert_true(p.d.pt.pt.kernel_passthrough);
	assert_string_equal(p.d.pt.pt.source, "/s");
	assert_int_equal(p.cfg.threads, 1);
	done(&p);
}

static void refused(const char *json, const char *cls)
{
	struct parsed p;

	parse(&p, json);
	assert_int_equal(p.ret, -1);
	assert_string_equal(p.e.cls, cls);
	assert_null(strchr(p.e.desc, '\n'));
	done(&p);
}

static void bad_arguments_refused(void **state)
{
	refused("{\"type\": \"export\", \"source\": \"/i\", \"mountpoint\": \"/m\"}", CONTROL_ERR_ARGUMENT);
	refused("{" NAMES ", \"writable\": \"yes\"}", CONTROL_ERR_ARGUMENT);
	refused("{" NAMES ", \"threads\": 0}", CONTROL_ERR_ARGUMENT);
	refused("{" NAMES ", \"threads\": 2.5}", CONTROL_ERR_ARGUMENT);
	refused("{" NAMES ", \"cache\": \"always\"}", CONTROL_ERR_ARGUMENT);   /* passthrough's, not an export's */
	refused("{" PT_NAMES ", \"writable\": true}", CONTROL_ERR_ARGUMENT);   /* an export's */
	refused("{" NAMES ", \"pidfile\": \"/p\"}", CONTROL_ERR_ARGUMENT);
	refused("{" NAMES ", \"writethrough\": true}", CONTROL_ERR_ARGUMENT);  /* needs writable */
	refused("{\"id\": \"a\", \"type\": \"export\", \"source\": \"i\", \"mountpoint\": \"/m\"}", CONTROL_ERR_ARGUMENT);
	refused("{\"id\": \"a b\", \"type\": \"export\", \"source\": \"/i\", \"mountpoint\": \"/m\"}",
		CONTROL_ERR_ARGUMENT);
	/* --format is for image files; an NBD URI is an export's source only. */
	refused("{\"id\": \"a\", \"type\": \"export\", \"source\": \"nbd://h/e\", \"mountpoint\": \"/m\", "
		"\"format\": \"qcow2\"}",
		CONTROL_ERR_ARGUMENT);
	refused("{\"id\": \"a\", \"type\": \"passthrough\", \"source\": \"nbd://h/e\", \"mountpoint\": \"/m\"}",
		CONTROL_ERR_ARGUMENT);
}

/* NBD URIs (not paths) and --format images are export sources too. */
static void nbd_and_format_sources(void **state)
{
	struct parsed p;

	(void)state;
	parse(&p, "{\"id\": \"a\", \"type\": \"export\", \"source\": \"nbd://h/e\", \"mountpoint\": \"/m\"}");
	assert_int_equal(p.ret, 0);
	assert_string_equal(p.d.ex.image, "nbd://h/e");
	done(&p);
	parse(&p, "{" NAMES ", \"format\": \"qcow2\"}");
	assert_int_equal(p.ret, 0);
	assert_string_equal(p.d.ex.ex.format, "qcow2");
	done(&p);
}

static void requests_parsed(void **state)
{
	static const char ok[] = "{\"command\": \"query-exports\", \"tag\": 5}";
	static const char dup[] = "{\"command\": \"a\", \"command\": \"b\"}";
	static const char args[] = "{\"command\": \"export-del\", \"arguments\": 3}";
	struct control_request req;
	struct control_error e;

	assert_int_equal(control_parse(ok, strlen(ok), &req, &e), 0);
	assert_string_equal(req.command, "query-exports");
	assert_true(json_is_object(req.args) && json_object_size(req.args) == 0);
	assert_int_equal(json_integer_value(req.tag), 5);
	control_request_free(&req);

	assert_int_equal(control_parse(dup, strlen(dup), &req, &e), -1);
	assert_string_equal(e.cls, CONTROL_ERR_PROTOCOL);
	control_request_free(&req);

	assert_int_equal(control_parse(args, strlen(args), &req, &e), -1);
	assert_string_equal(e.cls, CONTROL_ERR_ARGUMENT);
	assert_string_equal(req.command, "export-del"); /* the error reply still names it */
	control_request_free(&req);

	assert_int_equal(control_parse("[]", 2, &req, &e), -1);
	assert_string_equal(e.cls, CONTROL_ERR_PROTOCOL);
	assert_null(req.command);
	control_request_free(&req);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(export_options_as_the_command_line),
		cmocka_unit_test(passthrough_options_as_the_command_line),
		cmocka_unit_test(bad_arguments_refused),
		cmocka_unit_test(nbd_and_format_sources),
		cmocka_unit_test(requests_parsed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
