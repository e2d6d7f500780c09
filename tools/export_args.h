/* What one export is asked to be: its options, as the command line and
 * the daemon's export-add arguments both give them (one table, one parser,
 * the same checks), before anything is opened. */
#ifndef FURING_TOOLS_EXPORT_ARGS_H
#define FURING_TOOLS_EXPORT_ARGS_H

#include <getopt.h>
#include <stddef.h>

#include <furing/furing.h>

#include "../export/export.h"

struct export_args {
	struct export_opts ex;
	struct furing_config *cfg; /* the session's: transport options go here */
	const char *image;
	const char *mountpoint;
};

/* getopt_long's table: the export's own options, then the shared ones
 * (CLI_SHARED_OPTIONS); the daemon looks argument names up in it. */
extern const struct option export_options[];

/* Zeroes @a (but @cfg, which it points at and leaves alone) and sets the
 * defaults. */
void export_args_init(struct export_args *a, struct furing_config *cfg);
/* Applies option @o (an export_options value) with value @v (NULL for a
 * flag): 1 applied, 0 not an export or transport option (a process one),
 * -1 a bad value (@err says why). */
int export_args_option(struct export_args *a, int o, const char *v, char *err, size_t errlen);
/* Once every option and image and mountpoint are set: the checks between
 * options, and the session settings they imply. 0, or -1 with @err. */
int export_args_check(struct export_args *a, char *err, size_t errlen);

#endif
