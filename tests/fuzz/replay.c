/* replay.c - the main() of a fuzz target in `make check`: feeds every file
 * of its seed corpus and of its regressions to LLVMFuzzerTestOneInput, one
 * TAP line each, so that an input that once crashed stays a test.  The
 * target's name comes from the program's (fuzz_NAME): its files are
 * tests/fuzz/corpus/NAME and tests/fuzz/regressions/NAME; directories or
 * files given as arguments replace them. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fsutil.h"
#include "xalloc.h"

#define REPLAY_INPUT_MAX (8u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Defined by the targets that need set-up; NULL otherwise. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

struct inputs {
	char **paths;
	size_t n;
};

static void add(struct inputs *in, char *path)
{
	in->paths = xrealloc(in->paths, (in->n + 1) * sizeof *in->paths);
	in->paths[in->n++] = path;
}

/* Adds the regular files of dir, sorted; a missing dir adds nothing. */
static void add_dir(struct inputs *in, const char *dir)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, alphasort);

	for (int i = 0; i < n; i++) {
		if (names[i]->d_name[0] != '.' && names[i]->d_type != DT_DIR)
			add(in, xasprintf("%s/%s", dir, names[i]->d_name));
		free(names[i]);
	}
	free(names);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *name = strncmp(base, "fuzz_", 5) == 0 ? base + 5 : base;
	struct inputs in = {0};
	int failed = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	if (argc > 1) {
		for (int i = 1; i < argc; i++) {
			size_t before = in.n;

			add_dir(&in, argv[i]);
			if (in.n == before)
				add(&in, xstrdup(argv[i]));
		}
	} else {
		char *corpus = xasprintf("%s/tests/fuzz/corpus/%s", TN_SRCDIR, name);
		char *regressions = xasprintf("%s/tests/fuzz/regressions/%s", TN_SRCDIR, name);

		add_dir(&in, corpus);
		add_dir(&in, regressions);
		free(corpus);
		free(regressions);
	}
	printf("1..%zu\n", in.n ? in.n : 1);
	if (!in.n) {
		printf("not ok 1 - fuzz_%s: no inputs to replay\n", name);
		failed = 1;
	}
	for (size_t i = 0; i < in.n; i++) {
		struct tn_error err = {0};
		char *data = NULL;
		size_t len = 0;

		if (tn_read_file(in.paths[i], REPLAY_INPUT_MAX, &data, &len, &err)) {
			printf("not ok %zu - %s: %s\n", i + 1, in.paths[i], err.message);
			failed = 1;
		} else {
			/* A crash ends the program: the TAP driver counts the
			 * missing lines as a failure. */
			LLVMFuzzerTestOneInput((const uint8_t *)data, len);
			printf("ok %zu - %s\n", i + 1, in.paths[i]);
		}
		fflush(stdout);
		free(data);
		free(in.paths[i]);
	}
	printf("# fuzz_%s: %zu inputs replayed\n", name, in.n);
	free(in.paths);
	return failed;
}
