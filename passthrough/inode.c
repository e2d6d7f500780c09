/* The inode table: every node the kernel knows, keyed both by its nodeid
 * and by SOURCE's (device, inode number).
 *
 * Node ids. A node on SOURCE's own device gets its inode number as nodeid,
 * so that stat(2), readdir's d_ino and the kernel's inode agree with what
 * SOURCE shows (the library puts the nodeid in every entry's st_ino). The
 * root is 1 (FURING_ROOT_ID). Nodes that cannot use their number - on
 * another device below SOURCE (a mount point), or whose number is 1 or has
 * the top bit set - get a synthetic id with the top bit set.
 *
 * Each node holds an O_PATH handle on its inode for as long as the kernel
 * knows it: the handle is how later requests reach the inode without a
 * path, and it keeps the inode (and so its number) from being reused while
 * the nodeid is in use. Lookup counts are the kernel's (FORGET takes them
 * back); `refs` counts operations in flight and open files, so a node whose
 * count reaches zero is only freed once nobody uses it. One mutex guards
 * the table: requests touch it once or twice each, never on the read/write
 * path (which goes through the open file). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "pt.h"

#define SYNTHETIC_BIT (1ull << 63)
#define INITIAL_BUCKETS 1024

static size_t hash64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return (size_t)x;
}

static size_t id_bucket(const struct pt_table *t, uint64_t nodeid)
{
	return hash64(nodeid) & (t->nbuckets - 1);
}

static size_t key_bucket(const struct pt_table *t, dev_t dev, ino_t ino)
{
	return hash64((uint64_t)ino ^ hash64((uint64_t)dev)) & (t->nbuckets - 1);
}

static void link_node(struct pt_table *t, struct pt_inode *in)
{
	size_t b = id_bucket(t, in->nodeid);
	in->next_id = t->by_id[b];
	t->by_id[b] = in;
	b = key_bucket(t, in->dev, in->ino);
	in->next_key = t->by_key[b];
	t->by_key[b] = in;
}

static void unlink_node(struct pt_table *t, struct pt_inode *in)
{
	struct pt_inode **p = &t->by_id[id_bucket(t, in->nodeid)];
	while (*p != in)
		p = &(*p)->next_id;
	*p = in->next_id;
	p = &t->by_key[key_bucket(t, in->dev, in->ino)];
	while (*p != in)
		p = &(*p)->next_key;
	*p = in->next_key;
	t->count--;
}

/* Doubles the buckets when the table is fuller than one node per bucket;
 * a failed allocation only makes the chains longer. */
static void maybe_grow(struct pt_table *t)
{
	if (t->count < t->nbuckets)
		return;
	size_t n = t->nbuckets * 2;
	struct pt_inode **by_id = calloc(n, sizeof(*by_id));
	struct pt_inode **by_key = calloc(n, sizeof(*by_key));
	if (!by_id || !by_key) {
		free(by_id);
		free(by_key);
		return;
	}
	struct pt_inode **old = t->by_id;
	size_t oldn = t->nbuckets;
	free(t->by_key);
	t->by_id = by_id;
	t->by_key = by_key;
	t->nbuckets = n;
	for (size_t b = 0; b < oldn; b++) {
		struct pt_inode *in = old[b];
		while (in) {
			struct pt_inode *next = in->next_id;
			link_node(t, in);
			in = next;
		}
	}
	free(old);
}

static struct pt_inode *find_id(const struct pt_table *t, uint64_t nodeid)
{
	struct pt_inode *in = t->by_id[id_bucket(t, nodeid)];
	while (in && in->nodeid != nodeid)
		in = in->next_id;
	return in;
}

static struct pt_inode *find_key(const struct pt_table *t, dev_t dev, ino_t ino)
{
	struct pt_inode *in = t->by_key[key_bucket(t, dev, ino)];
	while (in && (in->ino != ino || in->dev != dev))
		in = in->next_key;
	return in;
}

static void free_node(struct pt_inode *in)
{
	if (in->fd >= 0)
		close(in->fd);
	pthread_mutex_destroy(&in->backing_lock);
	free(in);
}

static uint64_t choose_nodeid(struct pt_fs *fs, dev_t dev, ino_t ino)
{
	struct pt_table *t = &fs->table;

	if (dev == fs->root_dev && ino == fs->root_ino)
		return FURING_ROOT_ID; /* SOURCE itself, reached again (a bind mount of it below itself) */
	if (dev == fs->root_dev && ino != FURING_ROOT_ID && !((uint64_t)ino & SYNTHETIC_BIT) && ino != 0 &&
	    !find_id(t, (uint64_t)ino))
		return (uint64_t)ino;
	uint64_t id;
	do
		id = SYNTHETIC_BIT | ++t->next_synthetic;
	while (find_id(t, id));
	return id;
}

int pt_table_init(struct pt_fs *fs, int root_fd, const struct stat *root_st, bool mem, char *err, size_t errlen)
{
	struct pt_table *t = &fs->table;

	pthread_mutex_init(&t->lock, NULL);
	t->nbuckets = INITIAL_BUCKETS;
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	t->by_key = calloc(t->nbuckets, sizeof(*t->by_key));
	struct pt_inode *root = calloc(1, sizeof(*root));
	if (!t->by_id || !t->by_key || !root) {
		free(root);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	root->nodeid = FURING_ROOT_ID;
	root->dev = root_st->st_dev;
	root->ino = root_st->st_ino;
	root->type = S_IFDIR;
	root->fd = root_fd;
	root->mem = mem;
	root->local = fs->root_local;
	root->nlookup = 1; /* the kernel never forgets the root */
	root->refs = 1;    /* nor do we, until the end */
	root->backing_id = -1;
	pthread_mutex_init(&root->backing_lock, NULL);
	link_node(t, root);
	t->count = 1;
	fs->root = root;
	return 0;
}

void pt_table_destroy(struct pt_fs *fs)
{
	struct pt_table *t = &fs->table;

	if (!t->by_id)
		return;
	/* At unmount the kernel does not forget what it knew: free all. */
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct pt_inode *in = t->by_id[b];
		while (in) {
			struct pt_inode *next = in->next_id;
			free_node(in);
			in = next;
		}
	}
	free(t->by_id);
	free(t->by_key);
	t->by_id = t->by_key = NULL;
	fs->root = NULL;
	pthread_mutex_destroy(&t->lock);
}

struct pt_inode *pt_get(struct pt_fs *fs, uint64_t nodeid)
{
	struct pt_table *t = &fs->table;

	if (nodeid == FURING_ROOT_ID)
		return fs->root; /* held until the end: no reference to count */
	pthread_mutex_lock(&t->lock);
	struct pt_inode *in = find_id(t, nodeid);
	if (in)
		in->refs++;
	pthread_mutex_unlock(&t->lock);
	return in;
}

void pt_ref(struct pt_fs *fs, struct pt_inode *in)
{
	if (in == fs->root)
		return;
	pthread_mutex_lock(&fs->table.lock);
	in->refs++;
	pthread_mutex_unlock(&fs->table.lock);
}

void pt_put(struct pt_fs *fs, struct pt_inode *in)
{
	struct pt_table *t = &fs->table;
	bool gone = false;

	if (!in || in == fs->root)
		return;
	pthread_mutex_lock(&t->lock);
	if (--in->refs == 0 && in->nlookup == 0) {
		unlink_node(t, in);
		gone = true;
	}
	pthread_mutex_unlock(&t->lock);
	if (gone)
		free_node(in);
}

static mode_t stx_type(const struct statx *stx)
{
	return stx->stx_mode & S_IFMT;
}

struct pt_inode *pt_found(struct pt_fs *fs, int fd, const struct statx *stx, bool ref)
{
	struct pt_table *t = &fs->table;
	dev_t dev = makedev(stx->stx_dev_major, stx->stx_dev_minor);
	ino_t ino = (ino_t)stx->stx_ino;

	pthread_mutex_lock(&t->lock);
	struct pt_inode *in = find_key(t, dev, ino);
	if (in) {
		in->nlookup++;
		if (ref && in != fs->root)
			in->refs++;
		pthread_mutex_unlock(&t->lock);
		close(fd); /* the node already has its handle */
		return in;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		pthread_mutex_unlock(&t->lock);
		close(fd);
		return NULL;
	}
	in->nodeid = choose_nodeid(fs, dev, ino);
	in->generation = ++t->next_generation;
	in->dev = dev;
	in->ino = ino;
	in->type = stx_type(stx);
	in->fd = fd;
	in->mem = dev == fs->root_dev ? fs->root_mem : false;
	in->local = dev == fs->root_dev ? fs->root_local : false; /* another mount below SOURCE: unknown */
	in->nlookup = 1;
	in->refs = ref ? 1 : 0;
	in->backing_id = -1;
	pthread_mutex_init(&in->backing_lock, NULL);
	link_node(t, in);
	t->count++;
	maybe_grow(t);
	pthread_mutex_unlock(&t->lock);
	return in;
}

void pt_lookup_again(struct pt_fs *fs, struct pt_inode *in)
{
	pthread_mutex_lock(&fs->table.lock);
	in->nlookup++;
	pthread_mutex_unlock(&fs->table.lock);
}

void pt_forget(struct pt_fs *fs, uint64_t nodeid, uint64_t nlookup)
{
	struct pt_table *t = &fs->table;
	bool gone = false;

	if (nodeid == FURING_ROOT_ID)
		return;
	pthread_mutex_lock(&t->lock);
	struct pt_inode *in = find_id(t, nodeid);
	if (in) {
		in->nlookup = nlookup >= in->nlookup ? 0 : in->nlookup - nlookup;
		if (in->nlookup == 0 && in->refs == 0) {
			unlink_node(t, in);
			gone = true;
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (gone)
		free_node(in);
}

uint64_t pt_shown_ino(const struct pt_fs *fs, const struct pt_inode *in)
{
	/* The kernel's root inode takes the number of its attributes too:
	 * show SOURCE's, as readdir's "." of the root does. */
	return in == fs->root ? (uint64_t)fs->root_ino : in->nodeid;
}

size_t pt_table_count(struct pt_fs *fs)
{
	pthread_mutex_lock(&fs->table.lock);
	size_t n = fs->table.count;
	pthread_mutex_unlock(&fs->table.lock);
	return n;
}
