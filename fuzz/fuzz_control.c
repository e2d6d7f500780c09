/* libFuzzer target: the daemon's control protocol as a client's bytes
 * reach it, one message (tools/control_proto.c), then export-add's
 * arguments as an export's options (tools/daemon_args.c and the command
 * line's own option code it calls). Nothing is opened or mounted. Checks
 * that every outcome is a well-formed one-line reply.
 *   build-fuzz/fuzz/fuzz_control fuzz/corpus-control
 * fuzz/meson.build also builds it with the plain driver (replay.c) as
 * the 'control-corpus' test. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/control_proto.h"
#include "../tools/daemon_args.h"
#include "../export/rbd_spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_control: %s\n", what);
		abort();
	}
}

/* The framing's promise: one line, its newline last, an object that
 * parses back with a "reply" member. */
static void check_reply(json_t *reply)
{
	size_t len;

	check(reply != NULL, "no reply built");
	char *line = control_encode(reply, &len);
	check(line && len > 1 && line[len - 1] == '\n' && memchr(line, '\n', len - 1) == NULL,
	      "a reply is not one line");
	json_t *back = json_loadb(line, len - 1, 0, NULL);
	check(json_is_object(back) && json_object_get(back, "reply"), "a reply does not parse back");
	json_decref(back);
	free(line);
	json_decref(reply);
}

static void check_error(const struct control_error *e)
{
	check(e->cls && e->cls[0], "an error without a class");
	check(memchr(e->desc, '\n', strlen(e->desc)) == NULL, "an error description of several lines");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct control_request req;
	struct control_error e;

	if (control_parse((const char *)data, size, &req, &e) < 0) {
		check_error(&e);
		check_reply(control_reply_error(req.command, &e, req.tag));
		control_request_free(&req);
		return 0;
	}
	check(req.command && json_is_object(req.args), "a parsed request without a command or arguments");
	if (!strcmp(req.command, "export-add")) {
		struct furing_config cfg;
		struct daemon_args d;
		memset(&cfg, 0, sizeof(cfg));
		if (daemon_args_parse(req.args, &cfg, &d, &e) < 0) {
			check_error(&e);
			check_reply(control_reply_error(req.command, &e, req.tag));
		} else {
			/* A source is a path, or for an export an NBD URI or an rbd: spec. */
			check(d.id &&
				      (d.source[0] == '/' ||
				       (!d.passthrough && (export_is_nbd_uri(d.source) || rbd_spec_is_rbd(d.source)))) &&
				      d.mountpoint[0] == '/',
			      "accepted without its names");
			check_reply(control_reply_ok(req.command, json_deep_copy(req.args), req.tag));
		}
	} else {
		check_reply(control_reply_ok(req.command, NULL, req.tag));
	}
	control_request_free(&req);
	return 0;
}
