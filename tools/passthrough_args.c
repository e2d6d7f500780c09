/* See passthrough_args.h. */
#include "passthrough_args.h"

#include <stdbool.h>
#include <string.h>

#include "cli.h"

enum {
	OPT_CACHE = 256,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
	OPT_NO_XATTR,
};

const struct option passthrough_options[] = {
	{"cache", required_argument, NULL, OPT_CACHE},
	{"kernel-passthrough", no_argument, NULL, OPT_KERNEL_PASSTHROUGH},
	{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
	{"no-xattr", no_argument, NULL, OPT_NO_XATTR},
	CLI_SHARED_OPTIONS,
};

void passthrough_args_init(struct passthrough_args *a, struct furing_config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
}

int passthrough_args_option(struct passthrough_args *a, int o, const char *v, char *err, size_t errlen)
{
	static const char *const cache_modes[] = {"none", "auto", "always", NULL};
	static const enum pt_cache cache_values[] = {PT_CACHE_NONE, PT_CACHE_AUTO, PT_CACHE_ALWAYS};
	/* In the order of enum pt_io. */
	static const char *const io_modes[] = {"auto", "ring", "inline", NULL};
	_Static_assert(PT_IO_AUTO == 0 && PT_IO_RING == 1 && PT_IO_INLINE == 2, "io_modes");
	int i;

	switch (o) {
	case OPT_CACHE:
		if (!value_choice("--cache", v, cache_modes, &i, err, errlen))
			return -1;
		a->pt.cache = cache_values[i];
		return 1;
	case OPT_KERNEL_PASSTHROUGH:
		a->pt.kernel_passthrough = true;
		return 1;
	case OPT_BACKEND_IO:
		if (!value_choice("--backend-io", v, io_modes, &i, err, errlen))
			return -1;
		a->pt.backend_io = i;
		return 1;
	case OPT_NO_XATTR:
		a->pt.no_xattr = true;
		return 1;
	default:
		return cli_transport_option(a->cfg, o, v, err, errlen);
	}
}

void passthrough_args_finish(struct passthrough_args *a)
{
	/* The kernel checks permissions from the attributes, which are
	 * SOURCE's (see ident.c for why this and not a check per call). */
	a->cfg->default_permissions = true;
}
