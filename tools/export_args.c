/* See export_args.h. */
#include "export_args.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "../export/rbd_spec.h"

enum {
	OPT_WRITABLE = 256,
	OPT_GROWABLE,
	OPT_BACKEND_DIRECT,
	OPT_WRITETHROUGH,
	OPT_CACHE,
	OPT_KERNEL_PASSTHROUGH,
	OPT_BACKEND_IO,
	OPT_FORMAT,
	OPT_TIMEOUT,
};

const struct option export_options[] = {
	{"writable", no_argument, NULL, OPT_WRITABLE},
	{"growable", no_argument, NULL, OPT_GROWABLE},
	{"backend-direct", no_argument, NULL, OPT_BACKEND_DIRECT},
	{"writethrough", no_argument, NULL, OPT_WRITETHROUGH},
	{"cache", required_argument, NULL, OPT_CACHE},
	{"kernel-passthrough", required_argument, NULL, OPT_KERNEL_PASSTHROUGH},
	{"backend-io", required_argument, NULL, OPT_BACKEND_IO},
	{"format", required_argument, NULL, OPT_FORMAT},
	{"timeout", required_argument, NULL, OPT_TIMEOUT},
	CLI_SHARED_OPTIONS,
};

void export_args_init(struct export_args *a, struct furing_config *cfg)
{
	memset(a, 0, sizeof(*a));
	a->cfg = cfg;
	a->ex.nbd_timeout_s = EXPORT_NBD_TIMEOUT_DEFAULT;
	/* The export's messages while no session runs (qemu-nbd's stop, the
	 * final flush) look like the session's. */
	a->ex.log = (struct export_log){.fn = furing_log_stderr};
}

int export_args_option(struct export_args *a, int o, const char *v, char *err, size_t errlen)
{
	/* Each choice list in the order of the enum it picks from. */
	static const char *const kpt_modes[] = {"auto", "on", "off", NULL};
	static const char *const cache_modes[] = {"none", "kernel", NULL};
	static const char *const io_modes[] = {"auto", "ring", "inline", NULL};
	_Static_assert(EXPORT_KPT_AUTO == 0 && EXPORT_KPT_ON == 1 && EXPORT_KPT_OFF == 2, "kpt_modes");
	_Static_assert(EXPORT_CACHE_NONE == 0 && EXPORT_CACHE_KERNEL == 1, "cache_modes");
	_Static_assert(EXPORT_IO_AUTO == 0 && EXPORT_IO_RING == 1 && EXPORT_IO_INLINE == 2, "io_modes");
	unsigned long n;
	int i;

	switch (o) {
	case OPT_WRITABLE:
		a->ex.writable = true;
		return 1;
	case OPT_GROWABLE:
		a->ex.growable = true;
		return 1;
	case OPT_BACKEND_DIRECT:
		a->ex.backend_direct = true;
		return 1;
	case OPT_WRITETHROUGH:
		a->ex.writethrough = true;
		return 1;
	case OPT_KERNEL_PASSTHROUGH:
		if (!value_choice("--kernel-passthrough", v, kpt_modes, &i, err, errlen))
			return -1;
		a->ex.kernel_passthrough = i;
		return 1;
	case OPT_CACHE:
		if (!value_choice("--cache", v, cache_modes, &i, err, errlen))
			return -1;
		a->ex.cache = i;
		return 1;
	case OPT_BACKEND_IO:
		if (!value_choice("--backend-io", v, io_modes, &i, err, errlen))
			return -1;
		a->ex.backend_io = i;
		return 1;
	case OPT_FORMAT:
		if (!*v || v[strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-")]) {
			snprintf(err, errlen, "--format needs a format name such as qcow2, not '%s'", v);
			return -1;
		}
		a->ex.format = v;
		return 1;
	case OPT_TIMEOUT:
		if (!value_count("--timeout", v, 0, 86400, &n, err, errlen))
			return -1;
		a->ex.nbd_timeout_s = (unsigned int)n;
		return 1;
	default:
		return cli_transport_option(a->cfg, o, v, err, errlen);
	}
}

/* Options that mean nothing for a Ceph RBD image. */
static int check_rbd_options(const struct export_args *a, char *err, size_t errlen)
{
	if (!rbd_spec_is_rbd(a->image))
		return 0;
	if (a->ex.format) {
		snprintf(err, errlen, "--format is for image files; an RBD image is served as it is");
		return -1;
	}
	if (a->ex.growable) {
		snprintf(err, errlen, "--growable: an RBD image keeps its size here (resize it with rbd resize, then export it again)");
		return -1;
	}
	if (a->ex.backend_direct) {
		snprintf(err, errlen, "--backend-direct is for image files; librbd decides its caching (rbd_cache=false to turn it off)");
		return -1;
	}
	if (a->ex.backend_io != EXPORT_IO_AUTO) {
		snprintf(err, errlen, "--backend-io is for raw image files; RBD requests always go out asynchronously");
		return -1;
	}
	return 0;
}

/* Options that mean nothing for a disk behind an NBD server. */
static int check_nbd_options(const struct export_args *a, char *err, size_t errlen)
{
	bool uri = export_is_nbd_uri(a->image);
	bool qemu = a->ex.format && strcmp(a->ex.format, "raw") != 0;

	if (uri && a->ex.format) {
		snprintf(err, errlen, "--format is for image files; the NBD server at %s decides the format", a->image);
		return -1;
	}
	if (!uri && !qemu)
		return 0;
	if (a->ex.growable) {
		snprintf(err, errlen, "--growable: an NBD disk has a fixed size%s",
			 qemu ? " (qemu-nbd serves the image as one)" : "");
		return -1;
	}
	if (uri && a->ex.backend_direct) {
		snprintf(err, errlen, "--backend-direct is for image files; the NBD server decides its caching");
		return -1;
	}
	if (a->ex.backend_io != EXPORT_IO_AUTO) {
		snprintf(err, errlen, "--backend-io is for raw image files; NBD requests always go out asynchronously");
		return -1;
	}
	return 0;
}

int export_args_check(struct export_args *a, char *err, size_t errlen)
{
	if (a->ex.growable && !a->ex.writable) {
		snprintf(err, errlen, "--growable needs --writable");
		return -1;
	}
	if (a->ex.writethrough && !a->ex.writable) {
		snprintf(err, errlen, "--writethrough needs --writable");
		return -1;
	}
	if (check_rbd_options(a, err, errlen) < 0 || check_nbd_options(a, err, errlen) < 0)
		return -1;
	a->ex.image = a->image;
	a->cfg->read_only = !a->ex.writable;
	/* The export's owner and mode are what the kernel checks against. */
	a->cfg->default_permissions = true;
	return 0;
}
