/* fuzz_archive.c - libFuzzer target for the zip reader and extractor
 * (common/archive.c).  Each input is written to a fresh temporary directory
 * as in.zip, opened, verified, read and extracted into d/d/d/out below it
 * (so that a "../" chain of up to four steps still lands where it is
 * seen); then each level must hold only what the target put there, and, if
 * extraction succeeded, out/ regular files and directories alone: nothing
 * written outside, no staging left behind, no symlink, device or FIFO. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "error.h"
#include "fsutil.h"
#include "xalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small limits: the fuzzer looks for ways past them, not for big files. */
static const struct tn_archive_limits limits = {
    .max_entries = 64,
    .max_entry_bytes = 256 * 1024,
    .max_total_bytes = 1024 * 1024,
    .max_ratio = 200,
};

static void require(int cond)
{
	if (!cond)
		abort();
}

/* Every path below dir is a regular file or a directory; bounded depth. */
static void check_tree(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	require(d != NULL && depth <= TN_ARCHIVE_DEPTH_MAX + 1);
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		char *p;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		p = xasprintf("%s/%s", dir, e->d_name);
		require(lstat(p, &st) == 0);
		require(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode));
		if (S_ISDIR(st.st_mode))
			check_tree(p, depth + 1);
		free(p);
	}
	closedir(d);
}

/* dir holds exactly the name given, or nothing when name is NULL. */
static void check_holds(const char *dir, const char *name)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	require(d != NULL);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		require(name && strcmp(e->d_name, name) == 0);
		n++;
	}
	closedir(d);
	require(n == (name ? 1 : 0));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *tmp = getenv("TMPDIR");
	char *top = xasprintf("%s/tn-fuzz-archive-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	char *zip = NULL, *level = NULL, *out = NULL, *text = NULL;
	struct tn_archive *ar = NULL;
	size_t len;
	int verified, extracted = 0;

	require(mkdtemp(top) != NULL);
	zip = xasprintf("%s/in.zip", top);
	level = xasprintf("%s/d/d/d", top);
	out = xasprintf("%s/out", level);
	require(tn_mkdir_p(level, 0700, NULL) == 0);
	require(tn_write_file_atomic(zip, data, size, 0600, NULL) == 0);
	if (tn_archive_open(zip, &limits, &ar, NULL) == 0) {
		for (size_t i = 0; i < tn_archive_entry_count(ar); i++) {
			const struct tn_archive_entry *e = tn_archive_entry(ar, i);

			require(tn_archive_find(ar, e->name) == e);
			if (!e->is_dir &&
			    tn_archive_read_entry(ar, e->name, 64 * 1024, &text, &len, NULL) == 0)
				require(text[len] == '\0');
			free(text);
			text = NULL;
		}
		/* Extraction counts the same bytes as verification: it cannot
		 * pass an archive verification refused. */
		verified = tn_archive_verify(ar, NULL) == 0;
		extracted = tn_archive_extract(ar, out, NULL) == 0;
		require(verified || !extracted);
	}
	/* Each level holds what was put there: d/d/d/out only if extracted,
	 * d and d/d one d each, the top in.zip and d (checked by removing
	 * in.zip first). */
	check_holds(level, extracted ? "out" : NULL);
	if (extracted)
		check_tree(out, 0);
	for (int depth = 2; depth >= 0; depth--) {
		free(level);
		level = xasprintf("%s%s", top, depth == 2 ? "/d/d" : depth == 1 ? "/d" : "");
		if (depth == 0)
			require(unlink(zip) == 0);
		check_holds(level, "d");
	}
	tn_archive_close(ar);
	require(tn_remove_tree(top, NULL) == 0);
	free(zip);
	free(level);
	free(out);
	free(top);
	return 0;
}
