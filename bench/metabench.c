/* metabench: the metadata job of bench/passthrough.sh.
 *
 *   metabench DIR THREADS FILES [SECONDS]
 *
 * Each of THREADS threads works in a directory of its own under DIR
 * (t0, t1, ...) and repeats rounds of three phases, all threads together:
 * create FILES empty files (open O_CREAT|O_EXCL|O_WRONLY, close), stat each
 * of them, unlink each of them. Rounds repeat until SECONDS have passed
 * (default 5; at least one round). One line on stdout:
 *
 *   create=OPS/s stat=OPS/s unlink=OPS/s total=OPS/s files=N rounds=R
 *
 * where each phase's rate is its operations over the wall time the phase
 * took (slowest thread), and total counts all three kinds over their sum.
 * Exit 1 with a message on the first failing call. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum phase { CREATE, STAT, UNLINK, PHASES };

struct job {
	pthread_barrier_t *bar;
	const char *dir;
	unsigned int id, files;
	volatile int *stop;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what, const char *path)
{
	fprintf(stderr, "metabench: %s %s: %s\n", what, path, strerror(errno));
	exit(1);
}

static void do_phase(const struct job *j, enum phase p)
{
	char path[4096];

	for (unsigned int i = 0; i < j->files; i++) {
		snprintf(path, sizeof(path), "%s/t%u/f%u", j->dir, j->id, i);
		if (p == CREATE) {
			int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
			if (fd < 0)
				fail("create", path);
			close(fd);
		} else if (p == STAT) {
			struct stat st;
			if (stat(path, &st) < 0)
				fail("stat", path);
		} else if (unlink(path) < 0) {
			fail("unlink", path);
		}
	}
}

static void *worker(void *arg)
{
	struct job *j = arg;

	for (;;) {
		for (int p = 0; p < PHASES; p++) {
			pthread_barrier_wait(j->bar); /* everybody starts a phase together */
			do_phase(j, (enum phase)p);
			pthread_barrier_wait(j->bar); /* ... and the phase ends with the slowest */
		}
		pthread_barrier_wait(j->bar); /* the main thread decides: another round? */
		if (*j->stop)
			return NULL;
	}
}

int main(int argc, char **argv)
{
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: metabench DIR THREADS FILES [SECONDS]\n");
		return 2;
	}
	const char *dir = argv[1];
	unsigned int threads = (unsigned int)atoi(argv[2]), files = (unsigned int)atoi(argv[3]);
	double seconds = argc == 5 ? atof(argv[4]) : 5;
	if (threads < 1 || threads > 256 || files < 1) {
		fprintf(stderr, "metabench: THREADS 1..256, FILES >= 1\n");
		return 2;
	}
	char path[4096];
	for (unsigned int t = 0; t < threads; t++) {
		snprintf(path, sizeof(path), "%s/t%u", dir, t);
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			fail("mkdir", path);
	}
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, threads + 1);
	volatile int stop = 0;
	struct job *jobs = calloc(threads, sizeof(*jobs));
	pthread_t *tids = calloc(threads, sizeof(*tids));
	if (!jobs || !tids)
		return 1;
	for (unsigned int t = 0; t < threads; t++) {
		jobs[t] = (struct job){.bar = &bar, .dir = dir, .id = t, .files = files, .stop = &stop};
		pthread_create(&tids[t], NULL, worker, &jobs[t]);
	}
	double spent[PHASES] = {0}, start = now();
	unsigned int rounds = 0;
	do {
		for (int p = 0; p < PHASES; p++) {
			pthread_barrier_wait(&bar);
			double t0 = now();
			pthread_barrier_wait(&bar);
			spent[p] += now() - t0;
		}
		rounds++;
		stop = now() - start >= seconds;
		pthread_barrier_wait(&bar);
	} while (!stop);
	for (unsigned int t = 0; t < threads; t++)
		pthread_join(tids[t], NULL);
	for (unsigned int t = 0; t < threads; t++) {
		snprintf(path, sizeof(path), "%s/t%u", dir, t);
		rmdir(path);
	}
	double n = (double)threads * files * rounds;
	printf("create=%.0f stat=%.0f unlink=%.0f total=%.0f files=%.0f rounds=%u\n", n / spent[CREATE], n / spent[STAT],
	       n / spent[UNLINK], 3 * n / (spent[CREATE] + spent[STAT] + spent[UNLINK]), n, rounds);
	free(jobs);
	free(tids);
	return 0;
}
