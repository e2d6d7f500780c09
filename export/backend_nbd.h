/* The NBD backend: a disk an NBD server offers, through libnbd (see
 * backend.h and nbd_conn.h). */
#ifndef FURING_EXPORT_BACKEND_NBD_H
#define FURING_EXPORT_BACKEND_NBD_H

#include <stddef.h>

#include "backend.h"
#include "export.h"

/* Connects to @uri: one connection, or o->workers of them when the server
 * allows multi-conn. NULL with @err (one line) on failure. */
struct backend *nbd_backend_open(const struct export_opts *o, const char *uri, char *err, size_t errlen);

#endif
