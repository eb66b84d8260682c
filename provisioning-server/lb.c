/* lb.c - see lb.h: the driver table and the `none` driver. */
#include "lb.h"
#include "lb_haproxy.h"

#include <stdlib.h>
#include <string.h>

static int none_list(json_t *lb, struct tn_lb_member **out, size_t *n, struct tn_error *err)
{
	(void)lb;
	(void)err;
	*out = NULL;
	*n = 0;
	return 0;
}

static int none_add(json_t *lb, const struct tn_lb_want *w, struct tn_error *err)
{
	(void)lb;
	(void)w;
	(void)err;
	return 0;
}

static int none_name(json_t *lb, const char *name, struct tn_error *err)
{
	(void)lb;
	(void)name;
	(void)err;
	return 0;
}

static const struct tn_lb_ops lb_none = {
	.name = "none", .list = none_list, .add = none_add, .drain = none_name,
	.remove = none_name,
};

static const struct tn_lb_ops *const drivers[] = {&lb_none, &tn_lb_haproxy};

const struct tn_lb_ops *tn_lb_driver(json_t *lb)
{
	const char *name = json_string_value(json_object_get(lb, "driver"));

	if (!name)
		return &lb_none;
	for (size_t i = 0; i < sizeof drivers / sizeof *drivers; i++)
		if (strcmp(drivers[i]->name, name) == 0)
			return drivers[i];
	return NULL;
}

void tn_lb_members_free(struct tn_lb_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(m[i].name);
		free(m[i].addr);
		free(m[i].status);
	}
	free(m);
}
