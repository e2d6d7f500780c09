/* What daemon_exports.c (the list, removal, queries) and daemon_add.c
 * (export-add, in the loop's thread or one of its own) share about the
 * daemon's exports; nothing else sees it. Only the loop's thread touches
 * the list and the exports on it, but for what a starting export's
 * starter fills in (see struct dexport). */
#ifndef FURING_TOOLS_DAEMON_EXPORTS_PRIV_H
#define FURING_TOOLS_DAEMON_EXPORTS_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "daemon_args.h"
#include "daemon_exports.h"
#include "export_run.h"
#include "passthrough_run.h"

/* Far more than one machine's worth of disks; a bound on what one client
 * can make the daemon hold. */
#define EXPORTS_MAX 256

struct dexport {
	struct dexport *next;
	json_t *args; /* a copy of export-add's arguments: @spec points into it */
	struct daemon_args spec;
	struct furing_config cfg;
	struct export_run run;        /* type export */
	struct passthrough_run prun;  /* type passthrough */
	struct furing_session *s;     /* the one of them */
	const char *mnt_abs;          /* its mountpoint's real path (NULL: unknown) */
	pthread_t waiter;
	int wake_fd;
	uint64_t buffer_bytes; /* its request buffers' bound (furing_config_buffer_bytes) */
	/* Starting: on the list, not yet serving. Only the loop's thread
	 * reads or writes @starting; while it is true, the other fields
	 * start() fills (run, prun, s, mnt_abs) are the starter's. */
	bool starting;
	pthread_t starter;
	atomic_bool started; /* the starter is done: join it, then add_complete */
	int start_result;
	char start_err[2048];
	uint64_t token;      /* daemon_exports_add_async's, for the reply */
	char *want_abs;      /* the mountpoint's real path when export-add came (NULL: none yet) */
	atomic_bool ended; /* the session is over: the waiter is done */
	int wait_result;   /* furing_session_wait's */
};

struct daemon_exports {
	struct dexport *head;
	unsigned int count;
	uint64_t buffer_bytes; /* the exports' buffer_bytes, summed */
	uint64_t buffer_limit; /* --max-buffer-memory */
	int wake_fd;
	daemon_gone_fn *on_gone;
	void *on_gone_data;
	daemon_added_fn *on_added;
	void *on_added_data;
};

/* daemon_exports.c */
void *dexport_wait_for_end(void *arg); /* the waiter thread: furing_session_wait, then the wake eventfd */
struct dexport *dexports_find(struct daemon_exports *x, const char *id);
/* The export already served at @mountpoint (the same file by its real
 * path, or the same name while it does not exist yet), or NULL. */
struct dexport *dexports_find_mountpoint(struct daemon_exports *x, const char *mountpoint);
void dexport_free(struct dexport *d); /* only what add_prepare made: the session is gone or never was */
/* Takes @d off the list (its count and buffer bytes too) and frees it: it never ran, or it ended. */
void dexports_unlist(struct daemon_exports *x, struct dexport *d);
json_t *dexport_describe(const struct dexport *d); /* as query-exports shows it; NULL when out of memory */

/* daemon_add.c */
/* Completes every start its starter finished (daemon_exports_reap). */
void dexports_complete_starts(struct daemon_exports *x);
/* Waits for every start under way and completes it, replying to no one
 * (daemon_exports_free). */
void dexports_join_starts(struct daemon_exports *x);

#endif
