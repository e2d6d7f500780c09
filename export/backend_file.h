/* The file backend: a raw image file or a block device (see backend.h). */
#ifndef FURING_EXPORT_BACKEND_FILE_H
#define FURING_EXPORT_BACKEND_FILE_H

#include <stddef.h>

#include "backend.h"
#include "export.h"

/* Opens o->image; NULL with @err (one line) on failure. */
struct backend *file_backend_open(const struct export_opts *o, char *err, size_t errlen);

#endif
