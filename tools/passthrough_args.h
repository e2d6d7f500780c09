/* What one passthrough mount is asked to be: its options, as the command
 * line and the daemon's export-add arguments both give them (one table,
 * one parser), before anything is opened. See export_args.h. */
#ifndef FURING_TOOLS_PASSTHROUGH_ARGS_H
#define FURING_TOOLS_PASSTHROUGH_ARGS_H

#include <getopt.h>
#include <stddef.h>

#include <furing/furing.h>

#include "../passthrough/passthrough.h"

struct passthrough_args {
	struct pt_opts pt;
	struct furing_config *cfg; /* the session's: transport options go here */
	const char *mountpoint;
};

/* getopt_long's table: passthrough's own options, then the shared ones. */
extern const struct option passthrough_options[];

/* Zeroes @a (but @cfg, which it points at and leaves alone). */
void passthrough_args_init(struct passthrough_args *a, struct furing_config *cfg);
/* Applies option @o (a passthrough_options value) with value @v (NULL
 * for a flag): 1 applied, 0 not a passthrough or transport option, -1 a
 * bad value (@err says why). */
int passthrough_args_option(struct passthrough_args *a, int o, const char *v, char *err, size_t errlen);
/* Once every option, pt.source and mountpoint are set: the session
 * settings they imply. */
void passthrough_args_finish(struct passthrough_args *a);

#endif
