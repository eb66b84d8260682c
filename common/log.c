/* log.c - structured logging: `level component event=... key=value` lines,
 * or JSON lines.  A line is formatted whole, then written with one fputs
 * under the stream lock, so lines from threads never interleave. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

#include "xalloc.h"

static enum tn_log_level min_level = TN_LOG_INFO;
static bool json_mode;
static FILE *out_stream;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void tn_log_set_level(enum tn_log_level level) { min_level = level; }
void tn_log_set_json(bool json) { json_mode = json; }
void tn_log_set_stream(FILE *stream) { out_stream = stream; }

int tn_log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

/* A value needs quotes when it is empty or holds a space, quote, '=' or a
 * control character; inside quotes, '"' and '\' are escaped and control
 * characters written as \xNN, so one event is always one line. */
static void append_text_value(FILE *mem, const char *v)
{
	bool quote = *v == '\0';

	for (const char *p = v; *p && !quote; p++)
		if (*p == ' ' || *p == '"' || *p == '=' || (unsigned char)*p < 0x20)
			quote = true;
	if (!quote) {
		fputs(v, mem);
		return;
	}
	fputc('"', mem);
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(mem, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(mem, "\\x%02x", *p);
		else
			fputc(*p, mem);
	}
	fputc('"', mem);
}

static void format_text(FILE *mem, enum tn_log_level level, const char *component,
			const char *event, json_t *fields)
{
	const char *key;
	json_t *value;

	fprintf(mem, "%s %s event=%s", level_names[level], component, event);
	json_object_foreach(fields, key, value) {
		fprintf(mem, " %s=", key);
		if (json_is_string(value)) {
			append_text_value(mem, json_string_value(value));
		} else {
			char *dumped = json_dumps(value, JSON_ENCODE_ANY | JSON_COMPACT);

			append_text_value(mem, dumped ? dumped : "?");
			free(dumped);
		}
	}
	fputc('\n', mem);
}

static void format_json(FILE *mem, enum tn_log_level level, const char *component,
			const char *event, json_t *fields)
{
	char ts[32];
	time_t now = time(NULL);
	struct tm tm;
	json_t *line = json_object();
	char *dumped;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(line, "ts", json_string(ts));
	json_object_set_new(line, "level", json_string(level_names[level]));
	json_object_set_new(line, "component", json_string(component));
	json_object_set_new(line, "event", json_string(event));
	json_object_update_missing(line, fields);
	dumped = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	fprintf(mem, "%s\n", dumped ? dumped : "{}");
	free(dumped);
	json_decref(line);
}

void tn_log(enum tn_log_level level, const char *component, const char *event,
	    const char *fields_fmt, ...)
{
	json_t *fields = NULL;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem;
	FILE *out = out_stream ? out_stream : stderr;

	if (level < min_level || level > TN_LOG_ERROR)
		return;
	if (fields_fmt) {
		json_error_t jerr;
		va_list ap;

		va_start(ap, fields_fmt);
		fields = json_vpack_ex(&jerr, 0, fields_fmt, ap);
		va_end(ap);
		if (!fields)
			fields = json_pack("{s:s}", "log_error", jerr.text);
	}
	if (!fields)
		fields = json_object();
	mem = open_memstream(&buf, &len);
	if (!mem) {
		json_decref(fields);
		return;
	}
	if (json_mode)
		format_json(mem, level, component, event, fields);
	else
		format_text(mem, level, component, event, fields);
	fclose(mem);
	flockfile(out);
	fputs(buf, out);
	fflush(out);
	funlockfile(out);
	free(buf);
	json_decref(fields);
}
