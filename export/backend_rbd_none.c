/* The RBD backend of a build without librbd: the rbd: source is known (so
 * it is not mistaken for a file name) and refused in one line. */
#include "backend_rbd.h"

#include <stdio.h>

struct backend *rbd_backend_open(const struct export_opts *o, const char *source, char *err, size_t errlen)
{
	snprintf(err, errlen,
		 "%s: this furing was built without Ceph RBD support (librbd-dev was missing, or -Drbd=disabled)",
		 source);
	return NULL;
}
