/* The node table of the path API (table.h). Two chained hashes over the
 * same nodes: by id (every request names its node so) and by (parent id,
 * name) (lookup, and the name moves of unlink and rename). They grow
 * together, doubling when there are as many nodes as buckets. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "table.h"

static size_t hash_id(uint64_t id)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id;
}

/* FNV-1a over the name, seeded with the parent's id. */
static size_t hash_name(uint64_t parent, const char *name)
{
	uint64_t h = 0xcbf29ce484222325ull ^ hash_id(parent);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 0x100000001b3ull;
	return (size_t)h;
}

int table_init(struct ptable *t)
{
	memset(t, 0, sizeof(*t));
	t->nbuckets = 256;
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	t->by_id = calloc(t->nbuckets, sizeof(*t->by_id));
	if (!t->by_name || !t->by_id) {
		free(t->by_name);
		free(t->by_id);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	t->root.id = 1; /* FURING_ROOT_ID; never in the hashes, never freed */
	t->next_id = 2;
	return 0;
}

void table_free(struct ptable *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct pnode *n = t->by_id[i], *next;
		for (; n; n = next) {
			next = n->id_next;
			free(n->name);
			free(n);
		}
	}
	free(t->by_name);
	free(t->by_id);
	pthread_mutex_destroy(&t->lock);
}

void table_lock(struct ptable *t)
{
	pthread_mutex_lock(&t->lock);
}

void table_unlock(struct ptable *t)
{
	pthread_mutex_unlock(&t->lock);
}

struct pnode *table_get(struct ptable *t, uint64_t id)
{
	if (id == 1)
		return &t->root;
	for (struct pnode *n = t->by_id[hash_id(id) % t->nbuckets]; n; n = n->id_next)
		if (n->id == id)
			return n;
	return NULL;
}

struct pnode *table_child(struct ptable *t, const struct pnode *dir, const char *name)
{
	for (struct pnode *n = t->by_name[hash_name(dir->id, name) % t->nbuckets]; n; n = n->name_next)
		if (n->parent == dir && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void name_unlink(struct ptable *t, struct pnode *n)
{
	struct pnode **p = &t->by_name[hash_name(n->parent->id, n->name) % t->nbuckets];
	while (*p != n)
		p = &(*p)->name_next;
	*p = n->name_next;
}

static void name_link(struct ptable *t, struct pnode *n)
{
	struct pnode **head = &t->by_name[hash_name(n->parent->id, n->name) % t->nbuckets];
	n->name_next = *head;
	*head = n;
}

/* Doubling rehashes both chains; on ENOMEM the table just stays longer-chained. */
static void grow(struct ptable *t)
{
	size_t nb = t->nbuckets * 2;
	struct pnode **byn = calloc(nb, sizeof(*byn)), **byi = calloc(nb, sizeof(*byi));
	if (!byn || !byi) {
		free(byn);
		free(byi);
		return;
	}
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct pnode *n = t->by_id[i], *next;
		for (; n; n = next) {
			next = n->id_next;
			n->id_next = byi[hash_id(n->id) % nb];
			byi[hash_id(n->id) % nb] = n;
		}
		n = t->by_name[i];
		for (; n; n = next) {
			next = n->name_next;
			size_t h = hash_name(n->parent->id, n->name) % nb;
			n->name_next = byn[h];
			byn[h] = n;
		}
	}
	free(t->by_name);
	free(t->by_id);
	t->by_name = byn;
	t->by_id = byi;
	t->nbuckets = nb;
}

struct pnode *table_child_make(struct ptable *t, struct pnode *dir, const char *name)
{
	struct pnode *n = table_child(t, dir, name);
	if (n)
		return n;
	if (t->count >= t->nbuckets)
		grow(t);
	n = calloc(1, sizeof(*n));
	if (!n || !(n->name = strdup(name))) {
		free(n);
		return NULL;
	}
	n->id = t->next_id++; /* never reused: generation 0 will do */
	n->parent = dir;
	dir->children++;
	name_link(t, n);
	struct pnode **head = &t->by_id[hash_id(n->id) % t->nbuckets];
	n->id_next = *head;
	*head = n;
	t->count++;
	return n;
}

struct pnode *table_child_lookup(struct ptable *t, struct pnode *dir, const char *name)
{
	table_lock(t);
	struct pnode *n = table_child_make(t, dir, name);
	if (n)
		n->nlookup++;
	table_unlock(t);
	return n;
}

void table_child_unlookup(struct ptable *t, struct pnode *n)
{
	table_lock(t);
	n->nlookup--;
	table_maybe_free(t, n);
	table_unlock(t);
}

void table_maybe_free(struct ptable *t, struct pnode *n)
{
	while (n && n != &t->root && !n->nlookup && !n->opens && !n->children) {
		struct pnode *parent = n->parent;
		if (parent) {
			name_unlink(t, n);
			parent->children--;
		}
		struct pnode **p = &t->by_id[hash_id(n->id) % t->nbuckets];
		while (*p != n)
			p = &(*p)->id_next;
		*p = n->id_next;
		t->count--;
		free(n->name);
		free(n);
		n = parent; /* a directory held only by this child goes too */
	}
}

void table_detach(struct ptable *t, struct pnode *n)
{
	struct pnode *parent = n->parent;
	if (!parent)
		return;
	name_unlink(t, n);
	free(n->name);
	n->name = NULL;
	n->parent = NULL;
	parent->children--;
	table_maybe_free(t, n);
	table_maybe_free(t, parent);
}

int table_move(struct ptable *t, struct pnode *n, struct pnode *dir, const char *name)
{
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	struct pnode *old = n->parent;
	if (old) {
		name_unlink(t, n);
		old->children--;
	}
	free(n->name);
	n->name = copy;
	n->parent = dir;
	dir->children++;
	name_link(t, n);
	if (old)
		table_maybe_free(t, old);
	return 0;
}

static char *build(const struct pnode *n, const char *last, int *enomem)
{
	size_t len = last ? strlen(last) + 1 : 0;
	const struct pnode *m;
	for (m = n; m->parent; m = m->parent)
		len += strlen(m->name) + 1;
	if (m->id != 1)
		return NULL; /* removed, or below a removed directory */
	char *path = malloc(len + 2), *end = path + len;
	if (!path) {
		*enomem = 1;
		return NULL;
	}
	*end = '\0';
	if (last) {
		size_t l = strlen(last);
		end -= l;
		memcpy(end, last, l);
		*--end = '/';
	}
	for (m = n; m->parent; m = m->parent) {
		size_t l = strlen(m->name);
		end -= l;
		memcpy(end, m->name, l);
		*--end = '/';
	}
	if (len == 0)
		strcpy(path, "/");
	return path;
}

char *table_path(struct ptable *t, const struct pnode *n, int *enomem)
{
	return build(n, NULL, enomem);
}

char *table_path_of(struct ptable *t, const struct pnode *dir, const char *name, int *enomem)
{
	return build(dir, name, enomem);
}
