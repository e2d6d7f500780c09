/* Answer encoding: the public reply types (struct stat, furing_entry, ...)
 * -> the kernel's wire structs. Pure functions like the decoder: no I/O, no
 * threads; unit-tested in tests/unit/test_encode.c. */
#ifndef FURING_PROTO_ENCODE_H
#define FURING_PROTO_ENCODE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "furing/furing.h"
#include "fuse_kernel.h"

/* A timeout in seconds -> the kernel's (seconds, nanoseconds); negative,
 * NaN and zero give 0, huge values saturate. */
void fu_encode_timeout(double t, uint64_t *sec, uint32_t *nsec);
void fu_encode_attr(struct fuse_attr *a, const struct stat *st);
void fu_encode_entry(struct fuse_entry_out *out, const struct furing_entry *e);
void fu_encode_open(struct fuse_open_out *out, const struct furing_open *o);
void fu_encode_statfs(struct fuse_kstatfs *out, const struct statvfs *st);
void fu_encode_statx(struct fuse_statx *out, const struct statx *stx);

/* POSIX locks: the kernel's inclusive [start, end] (end = INT64_MAX for
 * "to the end") <-> struct flock's (l_start, l_len with 0 = to the end). */
void fu_lock_to_flock(const struct fuse_file_lock *in, struct flock *out);
void fu_flock_to_lock(const struct flock *in, struct fuse_file_lock *out);

/* Directory entries: the bytes one entry takes (8-byte aligned), and the
 * encoders, which write at @buf + *used and advance *used, or return false
 * and write nothing when @size does not leave room. */
size_t fu_dirent_size(size_t namelen, bool plus);
bool fu_dirent_add(char *buf, size_t size, size_t *used, const char *name, uint64_t ino, uint32_t type,
		   uint64_t next_off);
bool fu_direntplus_add(char *buf, size_t size, size_t *used, const char *name, const struct furing_entry *e,
		       uint64_t next_off);

#endif
