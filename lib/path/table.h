/* The path API's node table: node ids <-> (parent, name), lookup counts,
 * open counts. One mutex guards it; every call below but table_new and
 * table_free expects it held (table_lock), since a caller usually does
 * several steps that must be seen together (find, then count a lookup). */
#ifndef FURING_PATH_TABLE_H
#define FURING_PATH_TABLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct pnode {
	uint64_t id;
	struct pnode *parent; /* NULL for the root and for a removed node */
	char *name;           /* NULL for the root and for a removed node */
	uint64_t nlookup;     /* the kernel's references: entry answers minus forgets */
	unsigned int opens;   /* open files and directories */
	unsigned int children; /* named nodes below: a parent outlives them */
	void *file; /* an open file of the node (struct pfile): getattr/setattr of a removed node use it */
	struct pnode *name_next, *id_next;
};

struct ptable {
	pthread_mutex_t lock;
	struct pnode **by_name, **by_id; /* both sized nbuckets */
	size_t nbuckets, count;
	uint64_t next_id;
	struct pnode root;
};

int table_init(struct ptable *t);
void table_free(struct ptable *t);
void table_lock(struct ptable *t);
void table_unlock(struct ptable *t);

struct pnode *table_get(struct ptable *t, uint64_t id);
struct pnode *table_child(struct ptable *t, const struct pnode *dir, const char *name);
/* The child @name of @dir, made when missing; NULL on ENOMEM. */
struct pnode *table_child_make(struct ptable *t, struct pnode *dir, const char *name);
/* The same, taking the lock, and counted as one more lookup by the kernel:
 * the node an entry answer names (a lookup's, a readdirplus entry's). */
struct pnode *table_child_lookup(struct ptable *t, struct pnode *dir, const char *name);
/* Takes one such lookup back (an entry that was not sent), taking the lock. */
void table_child_unlookup(struct ptable *t, struct pnode *n);
/* Takes the node's name away (unlink, rmdir, renamed over): it stays
 * until it has no lookup, open or child left. */
void table_detach(struct ptable *t, struct pnode *n);
/* Gives @n the name @name in @dir (after detaching it from where it was). 0 or -ENOMEM. */
int table_move(struct ptable *t, struct pnode *n, struct pnode *dir, const char *name);
/* Frees @n if nothing holds it any more (and then perhaps its parent). */
void table_maybe_free(struct ptable *t, struct pnode *n);
/* The node's path, malloc'ed: "/" for the root, NULL for a removed node
 * (or one below a removed directory) and on ENOMEM (*enomem set). */
char *table_path(struct ptable *t, const struct pnode *n, int *enomem);
/* @dir's path + "/" + @name. */
char *table_path_of(struct ptable *t, const struct pnode *dir, const char *name, int *enomem);

#endif
