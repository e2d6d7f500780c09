/* export-add's arguments as an export's or a passthrough mount's options:
 * the fixed ones (id, type, source, mountpoint) checked, every other one
 * looked up by name in the command line's table of that type and applied
 * by the same code as the command line's option. Pure: nothing is opened. */
#ifndef FURING_TOOLS_DAEMON_ARGS_H
#define FURING_TOOLS_DAEMON_ARGS_H

#include <stdbool.h>

#include <jansson.h>

#include "control_proto.h"
#include "export_args.h"
#include "passthrough_args.h"

struct daemon_args {
	const char *id;
	const char *type;
	const char *source;
	const char *mountpoint;
	bool passthrough;             /* type passthrough: @pt, else @ex */
	struct export_args ex;
	struct passthrough_args pt;
};

/* Fills @d from @args, whose strings @d then points into (keep @args while
 * @d is used); the transport options go to @cfg. 0, or -1 with @e
 * (InvalidArgument, Unsupported). */
int daemon_args_parse(json_t *args, struct furing_config *cfg, struct daemon_args *d, struct control_error *e);

#endif
