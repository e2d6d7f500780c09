/* See disk_times.h. */
#include "disk_times.h"

#include <string.h>

void disk_times_init(struct disk_times *t)
{
	pthread_mutex_init(&t->lock, NULL);
	clock_gettime(CLOCK_REALTIME, &t->mtime);
	t->atime = t->ctime = t->mtime;
}

void disk_times_destroy(struct disk_times *t)
{
	pthread_mutex_destroy(&t->lock);
}

static void set_one(struct timespec *t, const struct timespec *v, const struct timespec *now)
{
	if (v->tv_nsec == UTIME_NOW)
		*t = *now;
	else if (v->tv_nsec != UTIME_OMIT)
		*t = *v;
}

void disk_times_set(struct disk_times *t, const struct timespec ts[2])
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	pthread_mutex_lock(&t->lock);
	set_one(&t->atime, &ts[0], &now);
	set_one(&t->mtime, &ts[1], &now);
	t->ctime = now;
	pthread_mutex_unlock(&t->lock);
}

void disk_stat(struct disk_times *t, uint64_t size, uint32_t block, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_blksize = block;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	pthread_mutex_lock(&t->lock);
	st->st_atim = t->atime;
	st->st_mtim = t->mtime;
	st->st_ctim = t->ctime;
	pthread_mutex_unlock(&t->lock);
}

void disk_statfs(uint64_t size, uint32_t block, struct statvfs *st)
{
	memset(st, 0, sizeof(*st));
	st->f_bsize = block;
	st->f_frsize = block;
	st->f_blocks = size / block;
	st->f_files = 1;
	st->f_namemax = 255;
}
