/* See control_proto.h. */
#include "control_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const control_commands[] = {"export-add", "export-del", "query-exports", "query-stats", "metrics",
					    "reload", NULL};

int control_fail(struct control_error *e, const char *cls, const char *fmt, ...)
{
	va_list ap;

	e->cls = cls;
	va_start(ap, fmt);
	vsnprintf(e->desc, sizeof(e->desc), fmt, ap);
	va_end(ap);
	/* Descriptions quote what the client sent (a key, a value, the JSON
	 * parser's view of bad bytes), which may hold newlines and other
	 * control characters: one line stays one. And they become a JSON
	 * string, which must be UTF-8: bytes that are not ASCII (maybe not
	 * UTF-8 at all, or a character the length limit cut in two) become
	 * '?' too, or the error reply could not be made. */
	for (char *c = e->desc; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
			*c = '?';
	return -1;
}

int control_parse(const char *buf, size_t len, struct control_request *req, struct control_error *e)
{
	json_error_t jerr;
	const char *key;
	json_t *value;

	memset(req, 0, sizeof(*req));
	if (len > CONTROL_MAX_MESSAGE)
		return control_fail(e, CONTROL_ERR_PROTOCOL, "message of %zu bytes, longer than %d", len,
				    CONTROL_MAX_MESSAGE);
	/* Duplicate keys are refused: which of two "id"s counts would be a
	 * guess. NUL bytes in strings stay refused (the default), so every
	 * string is a C string. */
	json_t *msg = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg)
		return control_fail(e, CONTROL_ERR_PROTOCOL, "not JSON: %s at byte %d", jerr.text, jerr.position);
	if (!json_is_object(msg)) {
		json_decref(msg);
		return control_fail(e, CONTROL_ERR_PROTOCOL, "a request is a JSON object");
	}
	req->msg = msg;
	req->tag = json_object_get(msg, "tag");
	json_t *command = json_object_get(msg, "command");
	if (!json_is_string(command)) {
		control_fail(e, CONTROL_ERR_PROTOCOL, "a request needs \"command\", a string");
		goto fail;
	}
	/* Known from here on: an error reply names it. */
	req->command = json_string_value(command);
	json_object_foreach(msg, key, value) {
		if (strcmp(key, "command") && strcmp(key, "arguments") && strcmp(key, "tag")) {
			control_fail(e, CONTROL_ERR_PROTOCOL, "unknown member '%s' in a request", key);
			goto fail;
		}
	}
	req->args = json_object_get(msg, "arguments");
	if (!req->args) {
		req->args = json_object();
		if (!req->args || json_object_set_new(msg, "arguments", req->args) < 0) {
			req->args = NULL;
			control_fail(e, CONTROL_ERR_FAILED, "out of memory");
			goto fail;
		}
	} else if (!json_is_object(req->args)) {
		control_fail(e, CONTROL_ERR_ARGUMENT, "\"arguments\" must be an object");
		goto fail;
	}
	return 0;
fail:
	/* The command (when known) and the tag stay usable for the error
	 * reply, until control_request_free. */
	req->args = NULL;
	return -1;
}

void control_request_free(struct control_request *req)
{
	json_decref(req->msg);
	memset(req, 0, sizeof(*req));
}

int control_known_args(json_t *args, const char *const allowed[], const char *command, struct control_error *e)
{
	const char *key;
	json_t *value;

	json_object_foreach(args, key, value) {
		int i = 0;
		while (allowed[i] && strcmp(allowed[i], key))
			i++;
		if (!allowed[i])
			return control_fail(e, CONTROL_ERR_ARGUMENT, "%s takes no argument '%s'", command, key);
	}
	return 0;
}

int control_string_arg(json_t *args, const char *name, bool required, const char **out, struct control_error *e)
{
	json_t *v = json_object_get(args, name);

	*out = NULL;
	if (!v) {
		if (required)
			return control_fail(e, CONTROL_ERR_ARGUMENT, "missing argument '%s'", name);
		return 0;
	}
	if (!json_is_string(v))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "argument '%s' must be a string", name);
	if (!json_string_length(v))
		return control_fail(e, CONTROL_ERR_ARGUMENT, "argument '%s' is empty", name);
	*out = json_string_value(v);
	return 0;
}

json_t *control_greeting(const char *version, json_t *capabilities)
{
	return json_pack("{s:{s:s, s:s, s:i, s:o}}", "greeting", "program", "furing", "version", version, "protocol",
			 CONTROL_PROTOCOL_VERSION, "capabilities", capabilities);
}

static json_t *reply(const char *command, const char *key, json_t *body, json_t *tag)
{
	/* s? : a NULL command is JSON null. */
	json_t *msg = json_pack("{s:s?, s:o}", "reply", command, key, body);

	if (msg && tag)
		json_object_set(msg, "tag", tag);
	return msg;
}

json_t *control_reply_ok(const char *command, json_t *ret, json_t *tag)
{
	return reply(command, "return", ret ? ret : json_object(), tag);
}

json_t *control_reply_error(const char *command, const struct control_error *e, json_t *tag)
{
	return reply(command, "error", json_pack("{s:s, s:s}", "class", e->cls, "desc", e->desc), tag);
}

char *control_encode(const json_t *msg, size_t *len)
{
	char *text = json_dumps(msg, JSON_COMPACT);

	if (!text)
		return NULL;
	size_t n = strlen(text);
	char *line = realloc(text, n + 2);
	if (!line) {
		free(text);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = 0;
	*len = n + 1;
	return line;
}
