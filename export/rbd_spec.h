/* QEMU's rbd: source syntax, parsed without librbd (the unit test and the
 * build without librbd use it too):
 *
 *   rbd:POOL[/NAMESPACE]/IMAGE[@SNAP][:KEY=VALUE]...
 *
 * KEY conf (a ceph.conf), id (the client name without "client."), keyring,
 * or any other Ceph option, given to the cluster handle as it is (QEMU
 * does the same: rbd:pool/img:mon_host=10.0.0.1). A backslash escapes the
 * next character, so "\:" is a colon inside a name or value. */
#ifndef FURING_EXPORT_RBD_SPEC_H
#define FURING_EXPORT_RBD_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#define RBD_SPEC_MAX_OPTIONS 16

struct rbd_spec {
	char *pool, *nspace, *image, *snap; /* nspace, snap: NULL when absent */
	char *conf, *id, *keyring;          /* NULL when absent */
	unsigned int nopts;                 /* other KEY=VALUE pairs, in order */
	char *opt_key[RBD_SPEC_MAX_OPTIONS], *opt_val[RBD_SPEC_MAX_OPTIONS];
	char *buf;                          /* the strings above point into it */
};

/* Whether @source names an RBD image (starts with "rbd:"). */
bool rbd_spec_is_rbd(const char *source);

/* Parses @source into @s (which rbd_spec_free releases): 0, or -1 with
 * @err (one line) for a malformed one. */
int rbd_spec_parse(const char *source, struct rbd_spec *s, char *err, size_t errlen);
void rbd_spec_free(struct rbd_spec *s);

#endif
