/* educa-conf.c - see educa-conf.h: the "key = value" configuration files
 * of the Educa sample application. */
#include "educa-conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

static char *trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	*end = '\0';
	return s;
}

static int valid_key(const char *k)
{
	if (!*k)
		return 0;
	for (; *k; k++)
		if (!isalnum((unsigned char)*k) && *k != '_' && *k != '.' && *k != '-')
			return 0;
	return 1;
}

int educa_conf_read(const char *path, educa_conf_fn fn, void *ctx, char *err, size_t err_size)
{
	char why[512], *line = NULL;
	size_t cap = 0;
	ssize_t len;
	FILE *f = fopen(path, "re");
	unsigned lineno = 0;
	int rc = 0;

	if (!f) {
		snprintf(err, err_size, "%s: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *eq, *key, *value;

		lineno++;
		if (len > EDUCA_CONF_LINE_MAX) {
			snprintf(err, err_size, "%s:%u: line longer than %d bytes", path, lineno,
				 EDUCA_CONF_LINE_MAX);
			rc = -1;
			break;
		}
		if (memchr(line, '\0', (size_t)len)) {
			snprintf(err, err_size, "%s:%u: NUL byte", path, lineno);
			rc = -1;
			break;
		}
		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			snprintf(err, err_size, "%s:%u: expected \"key = value\"", path, lineno);
			rc = -1;
			break;
		}
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		if (!valid_key(key)) {
			snprintf(err, err_size, "%s:%u: bad key \"%s\"", path, lineno, key);
			rc = -1;
			break;
		}
		why[0] = '\0';
		if (fn(key, value, ctx, why, sizeof why) != 0) {
			snprintf(err, err_size, "%s:%u: %s: %s", path, lineno, key,
				 why[0] ? why : "refused");
			rc = -1;
			break;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, err_size, "%s: read error", path);
		rc = -1;
	}
	free(line);
	fclose(f);
	return rc;
}

int educa_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (!*s || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

char *educa_strdup(const char *s)
{
	char *p = strdup(s);

	if (!p) {
		fputs("educa: out of memory\n", stderr);
		exit(1);
	}
	return p;
}
