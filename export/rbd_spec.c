/* See rbd_spec.h. The string is split at unescaped separators first and
 * unescaped last, so that "\:" "\/" "\@" "\=" never split anything. */
#include "rbd_spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "rbd:"

bool rbd_spec_is_rbd(const char *source)
{
	return strncmp(source, PREFIX, strlen(PREFIX)) == 0;
}

/* The first unescaped @sep in @s, or NULL. */
static char *find_unescaped(char *s, char sep)
{
	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		else if (*s == sep)
			return s;
	}
	return NULL;
}

/* Cuts @s at its first unescaped @sep: returns what follows, or NULL. */
static char *cut(char *s, char sep)
{
	char *p = find_unescaped(s, sep);

	if (!p)
		return NULL;
	*p = 0;
	return p + 1;
}

static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1])
			s++;
		*o++ = *s;
	}
	*o = 0;
}

static int fail(struct rbd_spec *s, char *err, size_t errlen, const char *source, const char *why)
{
	snprintf(err, errlen, "%s: %s (rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:conf=FILE][:id=NAME][:keyring=FILE])",
		 source, why);
	rbd_spec_free(s);
	return -1;
}

static int parse_option(struct rbd_spec *s, char *kv, const char *source, char *err, size_t errlen)
{
	char *val = cut(kv, '=');

	unescape(kv);
	if (!val || !*kv) {
		snprintf(err, errlen, "%s: option '%s' is not KEY=VALUE", source, kv);
		return -1;
	}
	unescape(val);
	if (!strcmp(kv, "conf"))
		s->conf = val;
	else if (!strcmp(kv, "id"))
		s->id = val;
	else if (!strcmp(kv, "keyring"))
		s->keyring = val;
	else if (s->nopts == RBD_SPEC_MAX_OPTIONS) {
		snprintf(err, errlen, "%s: more than %d options", source, RBD_SPEC_MAX_OPTIONS);
		return -1;
	} else {
		s->opt_key[s->nopts] = kv;
		s->opt_val[s->nopts++] = val;
	}
	return 0;
}

int rbd_spec_parse(const char *source, struct rbd_spec *s, char *err, size_t errlen)
{
	memset(s, 0, sizeof(*s));
	if (!rbd_spec_is_rbd(source))
		return fail(s, err, errlen, source, "does not start with rbd:");
	for (const char *p = source; *p; p++)
		if (*p == '\\' && !*++p)
			return fail(s, err, errlen, source, "ends in a lone backslash");
	if (!(s->buf = strdup(source + strlen(PREFIX)))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}

	/* The path, then the options, each up to the next unescaped colon. */
	char *opts = cut(s->buf, ':');
	while (opts) {
		char *kv = opts;
		opts = cut(kv, ':');
		if (parse_option(s, kv, source, err, errlen) < 0) {
			rbd_spec_free(s);
			return -1;
		}
	}

	char *path = s->buf;
	char *snap = cut(path, '@');
	char *second = cut(path, '/');
	char *third = second ? cut(second, '/') : NULL;
	if (!second)
		return fail(s, err, errlen, source, "no image name (POOL/IMAGE)");
	if (third && find_unescaped(third, '/'))
		return fail(s, err, errlen, source, "too many '/' (POOL/NAMESPACE/IMAGE at most)");
	s->pool = path;
	s->nspace = third ? second : NULL;
	s->image = third ? third : second;
	s->snap = snap;
	if (!*s->pool)
		return fail(s, err, errlen, source, "the pool name is empty");
	if (!*s->image)
		return fail(s, err, errlen, source, "the image name is empty");
	if (s->nspace && !*s->nspace)
		return fail(s, err, errlen, source, "the namespace is empty");
	if (s->snap && !*s->snap)
		return fail(s, err, errlen, source, "the snapshot name after '@' is empty");
	unescape(s->pool);
	unescape(s->image);
	if (s->nspace)
		unescape(s->nspace);
	if (s->snap)
		unescape(s->snap);
	return 0;
}

void rbd_spec_free(struct rbd_spec *s)
{
	free(s->buf);
	memset(s, 0, sizeof(*s));
}
