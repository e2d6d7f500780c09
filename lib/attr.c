/* Helpers for the attributes a filesystem is handed (see furing.h). */
#include <sys/stat.h>

#include "furing/furing.h"

/* UTIME_NOW/UTIME_OMIT are glibc's; the header keeps to what a strict C11
 * program can include, so the mapping lives here. */
bool furing_setattr_times(const struct furing_setattr *a, struct timespec ts[2])
{
	ts[0] = (struct timespec){.tv_sec = 0, .tv_nsec = UTIME_OMIT};
	ts[1] = ts[0];
	if (a->valid & FURING_SET_ATIME_NOW)
		ts[0].tv_nsec = UTIME_NOW;
	else if (a->valid & FURING_SET_ATIME)
		ts[0] = a->atime;
	if (a->valid & FURING_SET_MTIME_NOW)
		ts[1].tv_nsec = UTIME_NOW;
	else if (a->valid & FURING_SET_MTIME)
		ts[1] = a->mtime;
	return ts[0].tv_nsec != UTIME_OMIT || ts[1].tv_nsec != UTIME_OMIT;
}
