/* The daemon's control protocol, as data (doc/control.md): one JSON
 * object per line. Parsing a request and building the greeting and the
 * replies; no I/O, so the fuzzer and both ends (daemon.c, ctl.c) share it. */
#ifndef FURING_TOOLS_CONTROL_PROTO_H
#define FURING_TOOLS_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define CONTROL_PROTOCOL_VERSION 1
/* The longest message either side accepts, newline excluded. */
#define CONTROL_MAX_MESSAGE (64 * 1024)
/* The longest reply a client should expect: statistics grow with the
 * exports and their queues, a request does not. */
#define CONTROL_MAX_REPLY (16 * 1024 * 1024)

/* The classes of error replies. */
#define CONTROL_ERR_PROTOCOL "ProtocolError"      /* not a JSON object, not a request, too long */
#define CONTROL_ERR_COMMAND "CommandNotFound"     /* no such command */
#define CONTROL_ERR_ARGUMENT "InvalidArgument"    /* a missing, unknown or ill-typed argument, a bad value */
#define CONTROL_ERR_UNSUPPORTED "Unsupported"     /* a valid request this daemon does not serve (yet) */
#define CONTROL_ERR_EXISTS "Exists"               /* the id or the mountpoint is taken */
#define CONTROL_ERR_NOT_FOUND "NotFound"          /* no export has that id */
#define CONTROL_ERR_BUSY "Busy"                   /* export-del safe: the file is in use */
#define CONTROL_ERR_FAILED "Failed"               /* the export could not be started or stopped */
#define CONTROL_ERR_PERMISSION "PermissionDenied" /* the peer may not use this socket */

/* The commands, in the order the greeting lists them. */
extern const char *const control_commands[];

/* One request, parsed. */
struct control_request {
	json_t *msg;         /* the whole message (owned: control_request_free) */
	const char *command; /* its "command" */
	json_t *args;        /* its "arguments", an object (an empty one when absent); borrowed from msg */
	json_t *tag;         /* its "tag" (any JSON value, echoed in the reply), or NULL */
};

/* An error found in a request: the class and one line. */
struct control_error {
	const char *cls;
	char desc[512];
};

/* Parses the @len bytes at @buf (one line, without its newline). 0, or -1
 * with @e filled: not JSON, not an object, no string "command", arguments
 * not an object, a member other than command, arguments and tag; then
 * req->command (when it was a string) and req->tag still name the request
 * for the error reply, and the request must still be freed. Does not
 * check that the command exists. */
int control_parse(const char *buf, size_t len, struct control_request *req, struct control_error *e);
void control_request_free(struct control_request *req);

/* Sets @e and returns -1, for a caller's one-line "return control_fail(...)". */
int control_fail(struct control_error *e, const char *cls, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Only the argument names in @allowed (NULL-terminated) in @args; else -1
 * with @e naming the first other one. */
int control_known_args(json_t *args, const char *const allowed[], const char *command, struct control_error *e);
/* The string argument @name: 0 with *@out (NULL when absent and not
 * @required), or -1 with @e (missing, not a string, empty). */
int control_string_arg(json_t *args, const char *name, bool required, const char **out, struct control_error *e);

/* The messages the daemon sends. Each returns a new reference. */
json_t *control_greeting(const char *version, json_t *capabilities);
/* {"reply": COMMAND, "return": @ret (stolen), "tag": TAG}; @command NULL
 * for a message whose command is unknown (JSON null). */
json_t *control_reply_ok(const char *command, json_t *ret, json_t *tag);
json_t *control_reply_error(const char *command, const struct control_error *e, json_t *tag);

/* @msg as one line: compact JSON and a newline (malloc'd, NUL-terminated),
 * or NULL when out of memory. */
char *control_encode(const json_t *msg, size_t *len);

#endif
