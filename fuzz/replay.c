/* A plain driver for a libFuzzer target, without libFuzzer: runs every
 * input named on the command line once (a directory: each regular file in
 * it, in name order), as libFuzzer does when given files. Any compiler, no
 * instrumentation needed; a check of the harness that fails aborts, and
 * so fails the run. fuzz/meson.build builds it around the engine harness
 * as the 'engine-corpus' test (meson test; scripts/test.sh also runs it
 * under valgrind):
 *   build/fuzz/fuzz_engine_replay fuzz/corpus-engine
 *   FE_TRACE=1 build/fuzz/fuzz_engine_replay CRASH   (a reproducer, with its script) */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static unsigned long replayed;

static void replay_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	uint8_t *data = NULL;
	size_t size = 0, cap = 0;
	for (;;) {
		if (size == cap) {
			cap = cap ? 2 * cap : 4096;
			data = realloc(data, cap);
			if (!data) {
				fprintf(stderr, "replay: out of memory\n");
				exit(2);
			}
		}
		size_t n = fread(data + size, 1, cap - size, f);
		if (n == 0)
			break;
		size += n;
	}
	if (ferror(f)) {
		fprintf(stderr, "replay: %s: read error\n", path);
		exit(2);
	}
	fclose(f);
	if (getenv("REPLAY_VERBOSE"))
		fprintf(stderr, "replay: %s (%zu bytes)\n", path, size);
	/* A copy of just the input's size, as libFuzzer hands it: reading past
	 * the end is then visible to ASan and valgrind. */
	uint8_t *exact = malloc(size ? size : 1);
	if (!exact) {
		fprintf(stderr, "replay: out of memory\n");
		exit(2);
	}
	memcpy(exact, data, size);
	free(data);
	LLVMFuzzerTestOneInput(exact, size);
	free(exact);
	replayed++;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void replay_dir(const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, by_name);
	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		exit(2);
	}
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode))
			replay_file(path);
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIRECTORY...\n", argv[0]);
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			return 2;
		}
		if (S_ISDIR(st.st_mode))
			replay_dir(argv[i]);
		else
			replay_file(argv[i]);
	}
	if (replayed == 0) {
		fprintf(stderr, "replay: no input found\n");
		return 2;
	}
	printf("replay: %lu inputs, no failure\n", replayed);
	return 0;
}
