/* What the path API's files share: the handle, the per-request state and
 * the open-file record. */
#ifndef FURING_PATH_PRIV_H
#define FURING_PATH_PRIV_H

#include <furing/furing.h>

#include "table.h"

struct furing_path {
	struct furing_path_ops ops;
	void *fs;
	/* seconds the kernel caches: names, attributes, a missing name (0: an ENOENT answer) */
	double entry_timeout, attr_timeout, negative_timeout;
	struct ptable table;
};

/* One listed name of a buffered listing: its type and inode number, or
 * (attrs) all of its attributes, from the filesystem's readdirplus. */
struct pdirent {
	struct stat st;
	bool attrs;
	char *name;
};

/* What an open answer's fh points at. */
struct pfile {
	struct pnode *node;
	struct furing_path_file fi;
	/* opendir in buffered mode: the whole listing (readdir with next_off 0) */
	struct pdirent *ents;
	size_t nents, cap;
	bool listed;
};

/* The per-request state (furing_req_data): what a step needs after the
 * filesystem's operation answered, perhaps later on another thread. */
struct preq {
	struct furing_path *p;
	int op;    /* enum pop */
	int stage; /* 0: the operation itself; 1: the getattr that follows */
	struct pnode *node, *newdir;
	const char *name, *newname; /* in the request, valid until the answer */
	char *path, *path2;
	struct pfile *pf;
	struct pfile *pf2; /* copy_file_range: the destination */
	struct stat st;
	struct statvfs sv;
	struct furing_path_file fi; /* create and open: filled by the filesystem */
	struct furing_dirbuf d;
	uint64_t off;
	bool direct; /* readdir: the filesystem gives offsets */
	bool attrs;  /* readdir: the filler's stats are whole attributes (the filesystem's readdirplus) */
};

enum pop {
	P_LOOKUP, P_GETATTR, P_SETATTR, P_MKNOD, P_MKDIR, P_UNLINK, P_RMDIR, P_RENAME, P_STATFS,
	P_SYMLINK, P_LINK, P_READLINK, P_ACCESS, P_SETXATTR, P_GETXATTR, P_LISTXATTR, P_REMOVEXATTR,
	P_OPEN, P_CREATE, P_READ, P_WRITE, P_FLUSH, P_FSYNC, P_RELEASE, P_OPENDIR, P_READDIR, P_RELEASEDIR,
	P_FALLOCATE, P_LSEEK, P_COPY_FILE_RANGE, P_FSYNCDIR,
};

static inline struct furing_path *path_of(struct furing_req *req)
{
	return furing_req_fs(req);
}

/* A new state for @req, attached as its data; NULL after answering ENOMEM. */
struct preq *preq_new(struct furing_req *req, int op);
/* Frees the state (after the answer). */
void preq_free(struct preq *q);
/* Answers @err (0: success with no data) and frees @q: the request is done. */
void preq_reply_err(struct furing_req *req, struct preq *q, int err);
/* The filesystem's operation returned @res: FURING_PATH_ASYNC, or the result. */
void preq_result(struct furing_req *req, struct preq *q, int res);
/* The step after the operation (path_files.c handles the file ones). */
void preq_finish_node(struct furing_req *req, struct preq *q, int res);
void preq_finish_file(struct furing_req *req, struct preq *q, int res);
/* The node's path into q->path; false after answering (ENOENT, ENOMEM). */
bool preq_path(struct furing_req *req, struct preq *q, uint64_t ino, bool removed_ok);

/* The getattr after an operation that made a name (@path): stage 1. */
void preq_run_getattr(struct furing_req *req, struct preq *q, const char *path);
/* @dir's child @name: its path into *out, the directory's node into *dirp; false after answering. */
bool preq_child_path(struct furing_req *req, struct preq *q, uint64_t dir, const char *name, char **out,
		     struct pnode **dirp);
/* The step after the operations of path_more.c; true when it was one of them. */
bool preq_finish_more(struct furing_req *req, struct preq *q, int res);

extern const struct furing_ops path_lowlevel;
void path_files_ops(struct furing_ops *o);

void path_open(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void path_create(struct furing_req *req, uint64_t parent, const char *name, mode_t mode, const struct furing_file *fi);
void path_read(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void path_write(struct furing_req *req, uint64_t ino, uint64_t off, const void *data, uint32_t size,
		const struct furing_file *fi);
void path_flush(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void path_fsync(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi);
void path_release(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void path_opendir(struct furing_req *req, uint64_t ino, const struct furing_file *fi);
void path_readdir(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void path_readdirplus(struct furing_req *req, uint64_t ino, uint64_t off, uint32_t size, const struct furing_file *fi);
void path_releasedir(struct furing_req *req, uint64_t ino, const struct furing_file *fi);

/* path_more.c: links, access and extended attributes. */
void path_symlink(struct furing_req *req, const char *target, uint64_t parent, const char *name);
void path_link(struct furing_req *req, uint64_t ino, uint64_t newparent, const char *newname);
void path_readlink(struct furing_req *req, uint64_t ino);
void path_access(struct furing_req *req, uint64_t ino, int mask);
void path_setxattr(struct furing_req *req, uint64_t ino, const char *name, const void *value, size_t size, int flags,
		   uint32_t xflags);
void path_getxattr(struct furing_req *req, uint64_t ino, const char *name, size_t size);
void path_listxattr(struct furing_req *req, uint64_t ino, size_t size);
void path_removexattr(struct furing_req *req, uint64_t ino, const char *name);

/* path_data.c: fallocate, lseek, copy_file_range, fsyncdir. */
void path_fallocate(struct furing_req *req, uint64_t ino, int mode, uint64_t off, uint64_t len,
		    const struct furing_file *fi);
void path_lseek(struct furing_req *req, uint64_t ino, uint64_t off, int whence, const struct furing_file *fi);
void path_copy_file_range(struct furing_req *req, uint64_t ino_in, uint64_t off_in, const struct furing_file *fi_in,
			  uint64_t ino_out, uint64_t off_out, const struct furing_file *fi_out, uint64_t len,
			  uint64_t flags);
void path_fsyncdir(struct furing_req *req, uint64_t ino, bool datasync, const struct furing_file *fi);
/* The step after one of them; true when it was one. */
bool preq_finish_data(struct furing_req *req, struct preq *q, int res);

/* The path of an open file's node (NULL when it was removed); false after answering ENOMEM. */
bool preq_file_path(struct furing_req *req, struct preq *q, const struct furing_file *fi);

#endif
