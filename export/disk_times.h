/* What a file that stands for a whole remote disk (NBD, RBD) shows in
 * stat and statfs. Such a disk has no times of its own: the export keeps
 * them (set by utimensat, read by stat) in memory, from when it started. */
#ifndef FURING_EXPORT_DISK_TIMES_H
#define FURING_EXPORT_DISK_TIMES_H

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

struct disk_times {
	pthread_mutex_t lock; /* stat and utimensat come from any worker */
	struct timespec atime, mtime, ctime;
};

/* All three times now. */
void disk_times_init(struct disk_times *t);
void disk_times_destroy(struct disk_times *t);
/* utimensat's two times (UTIME_NOW, UTIME_OMIT honoured); ctime becomes now. */
void disk_times_set(struct disk_times *t, const struct timespec ts[2]);
/* A disk of @size bytes in blocks of @block bytes: its stat (times from @t),
 * and its statfs (one file, the disk's blocks, all in use). */
void disk_stat(struct disk_times *t, uint64_t size, uint32_t block, struct stat *st);
void disk_statfs(uint64_t size, uint32_t block, struct statvfs *st);

#endif
