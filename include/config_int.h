/* config_int.h: the option table's row, shared by config.c (the table, the simple values,
 * parsing, --help, --check) and config_lists.c (the options that take a list) and no one
 * else.  The contract for everyone else is include/config.h. */
#ifndef SIDEMETER_CONFIG_INT_H
#define SIDEMETER_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct option_def;
typedef int option_setter(struct config *, const struct option_def *, const char *, char *,
    size_t);

struct option_def {
	const char *od_name;		/* flag without the dashes; env is SIDEMETER_<NAME> */
	const char *od_metavar;		/* NULL: an action without a value (--help) */
	const char *od_default;		/* parsed like a user's value; NULL: nothing to set */
	option_setter *od_set;
	size_t od_offset;		/* field for the generic setters */
	int64_t od_min, od_max;		/* range for numbers and durations (ms) */
	const char *od_help;
};

/* config_lists.c: --route, --label, --buckets and --access-log-filter.  From a flag each
 * takes one value (--route, --label) or one list; from the environment, a list. */
option_setter opt_route, opt_label, opt_buckets, opt_alog_filter;

/* SIDEMETER_LABELS: "name=value,..." into cf's labels; the count added, or -1 with err. */
int opt_env_labels(struct config *cf, char *err, size_t len);

#endif
