/* The daemon's configuration file (furing-daemon.conf(5)): a JSON object
 * whose "exports" array holds export-add's arguments, one object per
 * export. Read at the start, and again at every reload (SIGHUP, the
 * reload command), which adds and removes exports until the daemon serves
 * what the file says. Only the exports the file started are the file's:
 * those added over the control socket are left alone by a reload. */
#ifndef FURING_TOOLS_DAEMON_CONFIG_H
#define FURING_TOOLS_DAEMON_CONFIG_H

#include <stddef.h>

#include <jansson.h>

#include "control_proto.h"
#include "daemon_exports.h"

struct daemon_config;

/* Reads and checks @path (kept, not copied): NULL with one line in @err
 * naming the file and the entry when it is not a valid configuration. */
struct daemon_config *daemon_config_open(const char *path, char *err, size_t errlen);
/* Starts every export the file names. -1 with @err when one cannot be
 * started (the ones started before it keep running: the caller stops). */
int daemon_config_start(struct daemon_config *c, struct daemon_exports *x, char *err, size_t errlen);
/* Reads the file again and adds, removes and replaces exports to match
 * it. A file that is not valid changes nothing. The reload command's
 * return value (what was done), or NULL with @e: InvalidArgument for a
 * bad file, Failed when a step could not be done (the others are). */
json_t *daemon_config_reload(struct daemon_config *c, struct daemon_exports *x, struct control_error *e);
const char *daemon_config_path(const struct daemon_config *c);
void daemon_config_free(struct daemon_config *c);

#endif
