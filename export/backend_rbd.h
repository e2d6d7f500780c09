/* The RBD backend: a Ceph RBD image or snapshot through librbd (see
 * backend.h and backend_rbd.c). Without librbd at build time
 * (-Drbd=disabled, or auto without librbd-dev) backend_rbd_none.c stands
 * in and refuses in one line. */
#ifndef FURING_EXPORT_BACKEND_RBD_H
#define FURING_EXPORT_BACKEND_RBD_H

#include <stddef.h>

#include "backend.h"
#include "export.h"

/* Connects to the cluster and opens @source (rbd:POOL/IMAGE..., see
 * rbd_spec.h), taking the exclusive lock when writable. NULL with @err
 * (one line) on failure. */
struct backend *rbd_backend_open(const struct export_opts *o, const char *source, char *err, size_t errlen);

#endif
