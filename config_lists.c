/* config_lists.c: the options that take a list: --route patterns, --buckets bounds,
 * --label pairs (and SIDEMETER_LABELS), --access-log-filter terms.  Each item is checked
 * whole, and an error names the item and what is wrong with it, before anything starts.
 *
 * It touches: the struct config it fills, and the environment (SIDEMETER_LABELS). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_int.h"
#include "labels.h"

extern char **environ;

/* A pattern is /-separated segments: literal text, ":name" for any one segment, or a final
 * "*" for any rest. */
static int check_pattern(const char *v, char *err, size_t len)
{
	const char *p;

	if (v[0] != '/') {
		snprintf(err, len, "'%s' does not start with /", v);
		return -1;
	}
	if (strlen(v) >= CONFIG_PATTERN_LEN) {
		snprintf(err, len, "'%.40s...' is longer than %d bytes", v, CONFIG_PATTERN_LEN - 1);
		return -1;
	}
	for (p = v; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == '?' || *p == '#' || *p == '"' || *p == '\\' ||
		    (unsigned char)*p >= 0x7f) {
			snprintf(err, len, "'%s' has a character a route cannot hold", v);
			return -1;
		}
		if (*p == '*' && (p[-1] != '/' || p[1] != '\0')) {
			snprintf(err, len, "'%s': * may only stand as the last segment", v);
			return -1;
		}
	}
	return 0;
}

static int add_pattern(struct config *cf, const char *v, size_t n, char *err, size_t len)
{
	char one[CONFIG_PATTERN_LEN + 1];

	if (n > CONFIG_PATTERN_LEN)
		n = CONFIG_PATTERN_LEN;
	memcpy(one, v, n);
	one[n] = '\0';
	if (check_pattern(one, err, len) == -1)
		return -1;
	if (cf->cf_npatterns == CONFIG_MAX_PATTERNS) {
		snprintf(err, len, "more than %d routes", CONFIG_MAX_PATTERNS);
		return -1;
	}
	memcpy(cf->cf_patterns[cf->cf_npatterns++], one, n + 1);
	return 0;
}

typedef int item_adder(struct config *cf, const char *v, size_t n, char *err, size_t len);

/* Add each item of a list whose items are separated by any of seps. */
static int each_item(struct config *cf, const char *v, const char *seps, item_adder *add,
    char *err, size_t len)
{
	while (*v) {
		size_t n = strcspn(v, seps);

		if (n > 0 && add(cf, v, n, err, len) == -1)
			return -1;
		v += n;
		v += strspn(v, seps);
	}
	return 0;
}

/* From a flag one pattern; from the environment a comma- or space-separated list. */
int opt_route(struct config *cf, const struct option_def *od, const char *v, char *err,
    size_t len)
{
	return each_item(cf, v, ", \t", add_pattern, err, len);
}

/* One item of --access-log-filter: status=CLASSES (2xx|5xx...), min_ms=N or sample=N. */
static int add_filter(struct config *cf, const char *v, size_t n, char *err, size_t len)
{
	char item[64], *end;
	unsigned long long x;
	const char *p;

	if (n >= sizeof(item)) {
		snprintf(err, len, "'%.*s...' is too long for a filter", 20, v);
		return -1;
	}
	memcpy(item, v, n);
	item[n] = '\0';
	/* status=4xx|5xx: a bit a class, so the filter's test is one AND (account.c). */
	if (strncmp(item, "status=", 7) == 0) {
		for (p = item + 7; *p;) {
			if (p[0] < '1' || p[0] > '5' || p[1] != 'x' || p[2] != 'x' ||
			    (p[3] != '\0' && p[3] != '|')) {
				snprintf(err, len, "'%s': status classes are 1xx to 5xx, joined by |", item);
				return -1;
			}
			cf->cf_alog_classes |= 1u << (p[0] - '0');
			p += p[3] ? 4 : 3;
		}
		if (cf->cf_alog_classes == 0) {
			snprintf(err, len, "'%s' names no status class", item);
			return -1;
		}
		return 0;
	}
	p = strncmp(item, "min_ms=", 7) == 0 ? item + 7 : strncmp(item, "sample=", 7) == 0 ?
	    item + 7 : NULL;
	if (p == NULL) {
		snprintf(err, len, "'%s' is not status=, min_ms= or sample=", item);
		return -1;
	}
	errno = 0;
	x = strtoull(p, &end, 10);
	if (!isdigit((unsigned char)*p) || *end != '\0' || errno != 0 || x > 86400000 ||
	    (item[0] == 's' && x == 0)) {
		snprintf(err, len, "'%s' needs a whole number%s", item, item[0] == 's' ? " from 1" : "");
		return -1;
	}
	if (item[0] == 'm')
		cf->cf_alog_min_ms = (int64_t)x;
	else
		cf->cf_alog_sample = (unsigned)x;
	return 0;
}

/* The whole filter replaces the last one (the default is the empty filter: every line);
 * its text is kept for --check, which shows it as given. */
int opt_alog_filter(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	cf->cf_alog_classes = 0;
	cf->cf_alog_min_ms = -1;
	cf->cf_alog_sample = 1;
	snprintf(cf->cf_alog_filter_text, sizeof(cf->cf_alog_filter_text), "%s", v);
	return each_item(cf, v, ", ", add_filter, err, len);
}

/* Is p[0, n) valid UTF-8 with no control character? */
static int printable_utf8(const unsigned char *p, size_t n)
{
	size_t i, k;

	for (i = 0; i < n; i += k)
		if (p[i] < 0x20 || p[i] == 0x7f || (k = utf8_len(p + i, n - i)) == 0)
			return 0;
	return 1;
}

/* NAME=VALUE: a Prometheus label name (not one of the reserved "__" ones) and a value of
 * printable UTF-8; an empty value adds nothing. */
static int add_label(struct config *cf, const char *v, size_t n, char *err, size_t len)
{
	const char *eq = memchr(v, '=', n);
	size_t name = eq ? (size_t)(eq - v) : n, i;
	struct config_label *cl;

	if (eq == NULL || name == 0) {
		snprintf(err, len, "'%.*s' is not NAME=VALUE", (int)(n > 80 ? 80 : n), v);
		return -1;
	}
	for (i = 0; i < name; i++)
		if (!(isalpha((unsigned char)v[i]) || v[i] == '_' || (i > 0 && isdigit((unsigned char)v[i]))))
			break;
	if (i < name || name > CONFIG_LABEL_NAME || (name >= 2 && v[0] == '_' && v[1] == '_')) {
		snprintf(err, len, "'%.*s' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*, at most %d "
		    "bytes, not starting with __)", (int)(name > 80 ? 80 : name), v, CONFIG_LABEL_NAME);
		return -1;
	}
	/* An empty value is no label (as in Prometheus): what the Downward API leaves empty,
	 * a missing pod label say, does not stop the sidecar. */
	if (n - name - 1 == 0)
		return 0;
	if (n - name - 1 > CONFIG_LABEL_VALUE ||
	    !printable_utf8((const unsigned char *)eq + 1, n - name - 1)) {
		snprintf(err, len, "the value of label '%.*s' must be at most %d bytes of printable "
		    "UTF-8", (int)name, v, CONFIG_LABEL_VALUE);
		return -1;
	}
	for (i = 0; i < cf->cf_nlabels; i++)
		if (strlen(cf->cf_labels[i].cl_name) == name &&
		    memcmp(cf->cf_labels[i].cl_name, v, name) == 0) {
			snprintf(err, len, "label '%.*s' is given twice", (int)name, v);
			return -1;
		}
	if (cf->cf_nlabels == CONFIG_MAX_LABELS) {
		snprintf(err, len, "more than %d labels", CONFIG_MAX_LABELS);
		return -1;
	}
	cl = &cf->cf_labels[cf->cf_nlabels++];
	memcpy(cl->cl_name, v, name);
	cl->cl_name[name] = '\0';
	memcpy(cl->cl_value, eq + 1, n - name - 1);
	cl->cl_value[n - name - 1] = '\0';
	return 0;
}

/* One label or a comma-separated list of them (so a value holds no comma). */
int opt_label(struct config *cf, const struct option_def *od, const char *v, char *err,
    size_t len)
{
	return each_item(cf, v, ",", add_label, err, len);
}

/* target_info's labels in name order, whatever order the environment listed them in: the
 * page and --check read the same from one start to the next. */
static int by_label_name(const void *a, const void *b)
{
	return strcmp(((const struct config_label *)a)->cl_name, ((const struct config_label *)b)->cl_name);
}

/* SIDEMETER_LABEL_<name>=<value>: one label each, which the Downward API fills one field at
 * a time (valueFrom needs no $(VAR) composition, which not every runtime does).  Returns
 * the labels added, or -1 with err set. */
int opt_env_labels(struct config *cf, char *err, size_t len)
{
	static const char prefix[] = "SIDEMETER_LABEL_";
	unsigned first = cf->cf_nlabels;
	char **e, one[512];
	int n = 0;

	for (e = environ; *e != NULL; e++) {
		if (strncmp(*e, prefix, sizeof(prefix) - 1) != 0)
			continue;
		if (add_label(cf, *e + sizeof(prefix) - 1, strlen(*e + sizeof(prefix) - 1), one,
		    sizeof(one)) == -1) {
			snprintf(err, len, "%.*s: %s", (int)strcspn(*e, "="), *e, one);
			return -1;
		}
		n++;
	}
	/* in the order of their names, not of the environment's */
	qsort(cf->cf_labels + first, cf->cf_nlabels - first, sizeof(cf->cf_labels[0]), by_label_name);
	return n;
}

/* --buckets: increasing positive seconds.  Each bound is checked before strtod sees it
 * (strtod alone takes "inf", "nan", hex, a sign and leading spaces); the text is kept as
 * given for --check. */
int opt_buckets(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	const char *p = v;
	char *end;
	double b;

	cf->cf_nbuckets = 0;
	while (*p) {
		if (!isdigit((unsigned char)*p) && *p != '.') {
			snprintf(err, len, "'%s' is not a list of seconds", v);
			return -1;
		}
		errno = 0;
		b = strtod(p, &end);
		if (end == p || errno != 0 || !(b > 0 && b < 1e9) || (*end != ',' && *end)) {
			snprintf(err, len, "'%s' is not a list of positive seconds", v);
			return -1;
		}
		if (cf->cf_nbuckets > 0 && b <= cf->cf_buckets[cf->cf_nbuckets - 1]) {
			snprintf(err, len, "bounds must increase ('%.*s')", (int)(end - p), p);
			return -1;
		}
		if (cf->cf_nbuckets == CONFIG_MAX_BUCKETS) {
			snprintf(err, len, "more than %d bounds", CONFIG_MAX_BUCKETS);
			return -1;
		}
		cf->cf_buckets[cf->cf_nbuckets++] = b;
		p = *end ? end + 1 : end;
		if (*end && *p == '\0') {
			snprintf(err, len, "'%s' ends with a comma", v);
			return -1;
		}
	}
	if (cf->cf_nbuckets == 0) {
		snprintf(err, len, "no bounds given");
		return -1;
	}
	snprintf(cf->cf_buckets_text, sizeof(cf->cf_buckets_text), "%s", v);
	return 0;
}
