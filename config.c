/* config.c: flags and environment.  One table lists every option once; the flag parser, the
 * environment reader, --help and --check are all driven by it.  The options that take a
 * list (routes, buckets, labels, the access log's filter) are parsed in config_lists.c.
 *
 * It touches: argv, the environment and the struct config it fills; nothing else (it runs
 * before anything is set up, and `--check` must have no effect). */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

#include "config.h"
#include "config_int.h"
#include "labels.h"

struct config cfg;

static option_setter set_listen, set_upstream, set_metrics, set_uint, set_duration,
    set_mode, set_format, set_max_workers, set_max_parked, set_metric_names, set_alog,
    set_alog_format;

#define F(field) offsetof(struct config, field)
#define HOUR (3600 * 1000LL)

/* Every option, in --help's order.  A default is the text a user would type, parsed by the
 * same setter (so --check shows it as a user's value would be shown).  Durations are held
 * in ms and bounded in ms: the minimums keep a timeout from being 0 by mistake, where 0 is
 * not "off". */
static const struct option_def options[] = {
	{ "listen", "ADDR:PORT", "0.0.0.0:8080", set_listen, 0, 0, 0,
	  "where clients connect" },
	{ "upstream", "HOST:PORT", "127.0.0.1:8087", set_upstream, 0, 0, 0,
	  "the application; resolved once at start" },
	{ "metrics", "ADDR:PORT|off", "0.0.0.0:9145", set_metrics, 0, 0, 0,
	  "/metrics, /healthz, /readyz, /stats.json and the status page" },
	{ "mode", "http|tcp", "http", set_mode, 0, 0, 0,
	  "http: observe HTTP/1.x requests; tcp: count connections only" },
	{ "workers", "N", "4", set_uint, F(cf_workers), 1, CONFIG_MAX_WORKERS,
	  "workers always running (the pool's minimum)" },
	{ "max-workers", "N", "auto", set_max_workers, 0, 1, CONFIG_MAX_WORKERS,
	  "the pool grows up to N when no worker is idle (auto: max(64, --workers))" },
	{ "backlog", "N", "1024", set_uint, F(cf_backlog), 1, 65535,
	  "listen backlog: connections waiting while every worker is busy" },
	{ "dump-interval", "SECONDS", "10", set_duration, F(cf_dump_interval_ms), 0, 24 * HOUR,
	  "summary line on stdout every SECONDS; 0 turns it off" },
	{ "dump-format", "text|json", "text", set_format, 0, 0, 0,
	  "the summary line as text or as one JSON object" },
	{ "connect-timeout", "SECONDS", "5", set_duration, F(cf_connect_ms), 1, HOUR,
	  "connecting to the application" },
	{ "idle-timeout", "SECONDS", "60", set_duration, F(cf_idle_ms), 1, 24 * HOUR,
	  "no byte either way within an exchange (tcp mode: at all)" },
	{ "header-timeout", "SECONDS", "10", set_duration, F(cf_header_ms), 1, HOUR,
	  "a request head must arrive within this time (slowloris)" },
	{ "body-timeout", "SECONDS", "30", set_duration, F(cf_body_ms), 1, HOUR,
	  "a request body must keep moving: longest pause between its bytes" },
	{ "response-timeout", "SECONDS", "60", set_duration, F(cf_response_ms), 1, 24 * HOUR,
	  "the application must start answering within this time (else 504)" },
	{ "keepalive-timeout", "SECONDS", "30", set_duration, F(cf_keepalive_ms), 1, 24 * HOUR,
	  "a client connection idle between requests is closed after this" },
	{ "tunnel-timeout", "SECONDS", "3600", set_duration, F(cf_tunnel_ms), 1, 7 * 24 * HOUR,
	  "no byte either way in an upgraded connection (WebSocket, CONNECT)" },
	{ "drain-delay", "SECONDS", "0", set_duration, F(cf_drain_delay_ms), 0, HOUR,
	  "on TERM, keep accepting this long before draining (endpoint removal lag)" },
	{ "drain-timeout", "SECONDS", "25", set_duration, F(cf_drain_ms), 1, HOUR,
	  "on TERM, in-flight exchanges get this long to finish" },
	{ "heartbeat-timeout", "SECONDS", "10", set_duration, F(cf_heartbeat_ms), 2000, HOUR,
	  "a worker silent this long is killed and replaced" },
	{ "park-after", "SECONDS", "0.005", set_duration, F(cf_park_after_ms), 1, 10 * 1000,
	  "a connection that says nothing this long waits in the keeper, not in a worker" },
	{ "max-parked", "N|auto", "auto", set_max_parked, 0, 0, CONFIG_MAX_PARKED,
	  "connections the keeper holds at most; 0: no keeper (auto: what the descriptor limit allows)" },
	{ "exit-when-upstream-down", "SECONDS", "0", set_duration, F(cf_exit_down_ms), 0, 24 * HOUR,
	  "job mode: once the application, seen up, is unreachable this long, drain and exit 0 (0: never)" },
	{ "pool-idle-timeout", "SECONDS", "30", set_duration, F(cf_idle_worker_ms), 1, 24 * HOUR,
	  "a worker above the minimum, idle this long, retires" },
	{ "max-routes", "N", "100", set_uint, F(cf_max_routes), 1, CONFIG_MAX_ROUTES,
	  "distinct routes kept; the rest count as 'other'" },
	{ "route", "PATTERN", NULL, opt_route, 0, 0, 0,
	  "name a route, e.g. /api/users/:id/orders (repeatable; env: comma-separated)" },
	{ "buckets", "S,S,...", "0.0001,0.00025,0.0005,0.001,0.0025,0.005,0.01,0.025,0.05,0.1,"
	  "0.25,0.5,1,2.5,5,10,30,60", opt_buckets, 0, 0, 0,
	  "histogram bucket bounds in seconds, increasing" },
	{ "metric-names", "sidemeter|otel|both", "sidemeter", set_metric_names, 0, 0, 0,
	  "HTTP server metrics under sidemeter's names, OpenTelemetry's, or both" },
	{ "label", "NAME=VALUE", NULL, opt_label, 0, 0, 0,
	  "a label of target_info on /metrics (repeatable; env SIDEMETER_LABELS: comma-separated, "
	  "and SIDEMETER_LABEL_<NAME>=VALUE, one each)" },
	{ "access-log", "off|stdout|stderr|PATH", "off", set_alog, 0, 0, 0,
	  "one line per request (and per connection that ended without one); a file reopens on USR1" },
	{ "access-log-format", "json|combined", "json", set_alog_format, 0, 0, 0,
	  "the access log's lines: JSON objects, or the NCSA combined format" },
	{ "access-log-filter", "status=4xx|5xx,min_ms=N,sample=N", "", opt_alog_filter, 0, 0, 0,
	  "log only these classes or slower ones (either), then one in N; empty: all" },
	{ "check", NULL, NULL, NULL, 0, 0, 0,
	  "print the effective configuration and exit (2 if it is invalid)" },
	{ "version", NULL, NULL, NULL, 0, 0, 0, "print the version and exit" },
	{ "help", NULL, NULL, NULL, 0, 0, 0, "print this help and exit" },
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

/* Where each option's value came from, for --check and for the rule that a flag wins over
 * the environment (and a repeated flag adds, for the list options, rather than replaces). */
enum source { SRC_DEFAULT, SRC_ENV, SRC_FLAG };
static enum source sources[NOPTIONS];
static int max_workers_auto;	/* --max-workers auto: resolved once --workers is known */

/* ---- setters ---------------------------------------------------------------------------- */

/* passive: an address to bind (a wildcard host allowed), else one to connect to. */
static int set_addr(struct net_addr *na, const char *v, int passive, char *err, size_t len)
{
	return net_parse_addr(na, v, passive, err, len);
}

/* The setters: one per kind of value, each the only place its kind is parsed, so that a
 * flag, the environment and a default are all parsed alike (a default is a string in the
 * table, and a bad default fails the first run of the tests, not a user's pod).  Each
 * writes an error that names the value and what was wrong, and returns -1. */

/* Addresses are resolved here, once: a name that does not resolve stops sidemeter before it
 * binds anything, and the workers never call the resolver. */
static int set_listen(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	return set_addr(&cf->cf_listen, v, 1, err, len);
}

static int set_upstream(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	return set_addr(&cf->cf_upstream, v, 0, err, len);
}

/* "off" turns the port off: a sidecar whose metrics are scraped elsewhere, or a test. */
static int set_metrics(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	if (strcmp(v, "off") == 0) {
		cf->cf_metrics_on = 0;
		return 0;
	}
	cf->cf_metrics_on = 1;
	return set_addr(&cf->cf_metrics, v, 1, err, len);
}

/* Digits only: strtoull alone would take " 4", "+4" and "-1" (as a huge number). */
static int parse_uint(const char *v, int64_t min, int64_t max, int64_t *out, char *err,
    size_t len)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)v[0])) {
		snprintf(err, len, "'%s' is not a whole number", v);
		return -1;
	}
	errno = 0;
	n = strtoull(v, &end, 10);
	if (*end != '\0') {
		snprintf(err, len, "'%s' is not a whole number", v);
		return -1;
	}
	if (errno == ERANGE || n < (unsigned long long)min || n > (unsigned long long)max) {
		snprintf(err, len, "%s is out of range (%lld-%lld)", v, (long long)min,
		    (long long)max);
		return -1;
	}
	*out = (int64_t)n;
	return 0;
}

/* The generic setters write through od_offset: the table row names the field, so a new
 * numeric option is one row. */
static int set_uint(struct config *cf, const struct option_def *od, const char *v, char *err,
    size_t len)
{
	int64_t n;

	if (parse_uint(v, od->od_min, od->od_max, &n, err, len) == -1)
		return -1;
	*(unsigned *)(void *)((char *)cf + od->od_offset) = (unsigned)n;
	return 0;
}

/* "auto" is decided by the master at start (server.c), once it has raised the descriptor
 * limit: two descriptors a parked pair, within what is left. */
static int set_max_parked(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	int64_t n;

	if (strcmp(v, "auto") == 0) {
		cf->cf_max_parked_auto = 1;
		return 0;
	}
	if (parse_uint(v, od->od_min, od->od_max, &n, err, len) == -1)
		return -1;
	cf->cf_max_parked_auto = 0;
	cf->cf_max_parked = (unsigned)n;
	return 0;
}

/* "auto" is max(64, --workers), which is only known once --workers is parsed. */
static int set_max_workers(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	int64_t n;

	if (strcmp(v, "auto") == 0) {
		max_workers_auto = 1;
		return 0;
	}
	if (parse_uint(v, od->od_min, od->od_max, &n, err, len) == -1)
		return -1;
	max_workers_auto = 0;
	cf->cf_max_workers = (unsigned)n;
	return 0;
}

/* Digits by hand, not strtod: strtod takes the locale's decimal point, "inf", "nan", hex
 * and exponents, none of which a duration should be. */
int config_parse_duration(const char *text, int64_t *ms)
{
	static const struct { const char *u; double ms; } units[] = {
		{ "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 }, { "h", 3600000 },
	};
	const char *p = text;
	double whole = 0, frac = 0, scale = 1;
	size_t i;
	int digits = 0;

	while (isdigit((unsigned char)*p)) {
		whole = whole * 10 + (*p++ - '0');
		digits++;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			scale /= 10;
			frac += (*p++ - '0') * scale;
			digits++;
		}
	}
	if (digits == 0 || whole > 1e12)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(p, units[i].u) == 0) {
			*ms = (int64_t)((whole + frac) * units[i].ms + 0.5);
			return 0;
		}
	}
	return -1;
}

static int set_duration(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	int64_t ms;

	if (config_parse_duration(v, &ms) == -1) {
		snprintf(err, len, "'%s' is not a duration (seconds, e.g. 10, 0.5, 250ms, 2m)", v);
		return -1;
	}
	if (ms < od->od_min || ms > od->od_max) {
		snprintf(err, len, "%s is out of range (%gs-%gs)", v, (double)od->od_min / 1000,
		    (double)od->od_max / 1000);
		return -1;
	}
	*(int64_t *)(void *)((char *)cf + od->od_offset) = ms;
	return 0;
}

/* v as one of the n names: its index in *out, or an error that lists them. */
static int choose(const char *v, const char *const *names, unsigned n, int *out, char *err,
    size_t len)
{
	size_t at;
	unsigned i;

	for (i = 0; i < n; i++)
		if (strcmp(v, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	at = (size_t)snprintf(err, len, "'%s' is not ", v);
	for (i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(err + at, len - at, "%s%s", i == 0 ? "" : i + 1 == n ? " or " :
		    ", ", names[i]);
	return -1;
}

static int set_mode(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	static const char *const names[] = { "http", "tcp" };
	int x;

	if (choose(v, names, 2, &x, err, len) == -1)
		return -1;
	cf->cf_mode = (enum config_mode)x;
	return 0;
}

static int set_format(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	static const char *const names[] = { "text", "json" };
	int x;

	if (choose(v, names, 2, &x, err, len) == -1)
		return -1;
	cf->cf_dump_format = (enum config_format)x;
	return 0;
}

static int set_metric_names(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	static const char *const names[] = { "sidemeter", "otel", "both" };
	int x;

	if (choose(v, names, 3, &x, err, len) == -1)
		return -1;
	cf->cf_metric_names = (enum config_names)x;
	return 0;
}

static int set_alog(struct config *cf, const struct option_def *od, const char *v, char *err,
    size_t len)
{
	if (strcmp(v, "off") == 0)
		cf->cf_alog = ALOG_OFF;
	else if (strcmp(v, "stdout") == 0)
		cf->cf_alog = ALOG_STDOUT;
	else if (strcmp(v, "stderr") == 0)
		cf->cf_alog = ALOG_STDERR;
	else if (v[0] == '\0' || strlen(v) >= sizeof(cf->cf_alog_path)) {
		snprintf(err, len, "a path of 1 to %zu bytes, or off, stdout, stderr",
		    sizeof(cf->cf_alog_path) - 1);
		return -1;
	} else {
		cf->cf_alog = ALOG_FILE;
		snprintf(cf->cf_alog_path, sizeof(cf->cf_alog_path), "%s", v);
	}
	return 0;
}

static int set_alog_format(struct config *cf, const struct option_def *od, const char *v,
    char *err, size_t len)
{
	static const char *const names[] = { "json", "combined" };
	int x;

	if (choose(v, names, 2, &x, err, len) == -1)
		return -1;
	cf->cf_alog_format = (enum config_alog_format)x;
	return 0;
}

/* ---- parsing ---------------------------------------------------------------------------- */

/* --max-workers is SIDEMETER_MAX_WORKERS: dashes become underscores, letters capitals. */
static void env_name(const struct option_def *od, char *buf, size_t len)
{
	size_t i, n;

	if (od->od_set == opt_label) {	/* a list, so the plural */
		snprintf(buf, len, "SIDEMETER_LABELS");
		return;
	}
	n = (size_t)snprintf(buf, len, "SIDEMETER_");

	for (i = 0; od->od_name[i] && n + 1 < len; i++)
		buf[n++] = od->od_name[i] == '-' ? '_' : (char)toupper((unsigned char)od->od_name[i]);
	buf[n] = '\0';
}

/* --help, from the table: every option with its value, its default and its variable, so
 * the help cannot name an option that does not exist or miss one that does. */
static void usage(void)
{
	char env[64], left[64];
	size_t i;

	printf("usage: sidemeter [options]\n\n"
	    "A sidecar forwarder: accepts clients on --listen, relays every byte unchanged to\n"
	    "--upstream, and measures connections and HTTP/1.x requests on the way.\n\n"
	    "options (each also from the environment as SIDEMETER_<NAME>; a flag wins):\n");
	for (i = 0; i < NOPTIONS; i++) {
		const struct option_def *od = &options[i];

		snprintf(left, sizeof(left), "--%s%s%s", od->od_name, od->od_metavar ? " " : "",
		    od->od_metavar ? od->od_metavar : "");
		printf("  %-30s %s\n", left, od->od_help);
		if (od->od_metavar) {
			env_name(od, env, sizeof(env));
			if (od->od_default && strlen(od->od_default) < 30)
				printf("  %-30s   default %s; env %s\n", "", od->od_default, env);
			else
				printf("  %-30s   env %s\n", "", env);
		}
	}
	printf("\nsignals to the master: TERM/INT drain and stop, HUP rotate workers, USR1 dump now\n"
	    "and reopen the access log, TTIN/TTOU one worker more/less, USR2 re-exec the binary\n"
	    "keeping the listen socket.\n"
	    "\nsubcommands, for a running sidemeter (through its metrics port; see their --help):\n"
	    "  sidemeter top    a live terminal view: rates, latency, workers, routes\n"
	    "  sidemeter tap    its requests as they finish, one line each, with filters\n");
}

/* Whole names only: "--work" is not --workers (a prefix match would change meaning the day
 * an option with the same prefix is added). */
static const struct option_def *find_option(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < NOPTIONS; i++)
		if (strncmp(options[i].od_name, name, n) == 0 && options[i].od_name[n] == '\0')
			return &options[i];
	return NULL;
}

/* One value through its setter; the error says where the value came from ("--workers",
 * "SIDEMETER_WORKERS", "default of --workers"), then what is wrong with it. */
static int apply(struct config *cf, const struct option_def *od, const char *v,
    const char *who, char *err, size_t errlen)
{
	char why[256];

	if (od->od_set(cf, od, v, why, sizeof(why)) == -1) {
		snprintf(err, errlen, "%s: %s", who, why);
		return -1;
	}
	return 0;
}

enum config_result config_parse(struct config *cf, int argc, char **argv, char *err,
    size_t errlen)
{
	char who[80];
	int i;
	size_t k;

	memset(cf, 0, sizeof(*cf));
	memset(sources, 0, sizeof(sources));

	/* Flags first, so a flag's option is never read from the environment. */
	for (i = 1; i < argc; i++) {
		const char *arg = argv[i], *val = NULL, *eq;
		const struct option_def *od;

		if (strncmp(arg, "--", 2) != 0) {
			snprintf(err, errlen, "unexpected argument '%s' (see --help)", arg);
			return CONFIG_ERROR;
		}
		eq = strchr(arg + 2, '=');
		od = find_option(arg + 2, eq ? (size_t)(eq - arg - 2) : strlen(arg + 2));
		if (od == NULL) {
			snprintf(err, errlen, "unknown option '%.*s' (see --help)",
			    eq ? (int)(eq - arg) : (int)strlen(arg), arg);
			return CONFIG_ERROR;
		}
		if (od->od_metavar == NULL) {
			if (eq != NULL) {
				snprintf(err, errlen, "--%s takes no value", od->od_name);
				return CONFIG_ERROR;
			}
			if (strcmp(od->od_name, "help") == 0) {
				usage();
				return CONFIG_EXIT;
			}
			if (strcmp(od->od_name, "version") == 0) {
				printf("sidemeter %s\n", SIDEMETER_VERSION);
				return CONFIG_EXIT;
			}
			cf->cf_check = 1;
			continue;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "--%s needs a value (%s)", od->od_name, od->od_metavar);
			return CONFIG_ERROR;
		}
		snprintf(who, sizeof(who), "--%s", od->od_name);
		/* A repeated option replaces the earlier value, except --route and --label,
		 * which add. */
		if (od->od_set == opt_route && sources[od - options] != SRC_FLAG)
			cf->cf_npatterns = 0;
		if (od->od_set == opt_label && sources[od - options] != SRC_FLAG)
			cf->cf_nlabels = 0;
		if (apply(cf, od, val, who, err, errlen) == -1)
			return CONFIG_ERROR;
		sources[od - options] = SRC_FLAG;
	}

	/* Then every option not given as a flag: its variable if set, else its default.  An
	 * empty variable counts as set and is checked like any value: SIDEMETER_WORKERS= is an
	 * error, not the default (a manifest's typo should not pass unseen). */
	for (k = 0; k < NOPTIONS; k++) {
		const struct option_def *od = &options[k];
		const char *v;

		if (od->od_metavar == NULL || sources[k] == SRC_FLAG)
			continue;
		env_name(od, who, sizeof(who));
		v = getenv(who);
		if (od->od_set == opt_label) {
			int n = opt_env_labels(cf, err, errlen);

			if (n == -1)
				return CONFIG_ERROR;
			if (n > 0)
				sources[k] = SRC_ENV;
		}
		if (v != NULL) {
			if (apply(cf, od, v, who, err, errlen) == -1)
				return CONFIG_ERROR;
			sources[k] = SRC_ENV;
		} else if (od->od_default != NULL) {
			snprintf(who, sizeof(who), "default of --%s", od->od_name);
			if (apply(cf, od, od->od_default, who, err, errlen) == -1)
				return CONFIG_ERROR;
		}
	}

	/* What depends on more than one option, once all are in. */
	if (max_workers_auto)
		cf->cf_max_workers = cf->cf_workers > 64 ? cf->cf_workers : 64;
	if (cf->cf_max_workers < cf->cf_workers) {
		snprintf(err, errlen, "--max-workers %u is below --workers %u", cf->cf_max_workers,
		    cf->cf_workers);
		return CONFIG_ERROR;
	}
	if (cf->cf_metrics_on && cf->cf_metrics.na_len == cf->cf_listen.na_len &&
	    memcmp(&cf->cf_metrics.na_ss, &cf->cf_listen.na_ss, cf->cf_listen.na_len) == 0) {
		snprintf(err, errlen, "--metrics and --listen are the same address (%s)",
		    cf->cf_listen.na_text);
		return CONFIG_ERROR;
	}
	return CONFIG_OK;
}

/* ---- --check ---------------------------------------------------------------------------- */

static void print_duration(char *buf, size_t len, int64_t ms)
{
	if (ms % 1000 == 0)
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

/* --check: every option's value as it will be used, and where it came from (default, env,
 * flag), one a line, on fd; what USR2 runs before it trusts a new binary. */
void config_print(const struct config *cf, int fd)
{
	static const char *src_name[] = { "default", "env", "flag" };
	char line[6400], val[6144];
	size_t k;
	unsigned j;
	int n;

	for (k = 0; k < NOPTIONS; k++) {
		const struct option_def *od = &options[k];

		if (od->od_metavar == NULL)
			continue;
		if (od->od_set == set_listen)
			snprintf(val, sizeof(val), "%s", cf->cf_listen.na_text);
		else if (od->od_set == set_upstream)
			snprintf(val, sizeof(val), "%s", cf->cf_upstream.na_text);
		else if (od->od_set == set_metrics)
			snprintf(val, sizeof(val), "%s", cf->cf_metrics_on ? cf->cf_metrics.na_text : "off");
		else if (od->od_set == set_mode)
			snprintf(val, sizeof(val), "%s", cf->cf_mode == MODE_HTTP ? "http" : "tcp");
		else if (od->od_set == set_format)
			snprintf(val, sizeof(val), "%s", cf->cf_dump_format == FORMAT_JSON ? "json" : "text");
		else if (od->od_set == set_uint)
			snprintf(val, sizeof(val), "%u",
			    *(const unsigned *)(const void *)((const char *)cf + od->od_offset));
		else if (od->od_set == set_max_workers)
			snprintf(val, sizeof(val), "%u", cf->cf_max_workers);
		else if (od->od_set == set_max_parked && cf->cf_max_parked_auto)
			snprintf(val, sizeof(val), "auto");
		else if (od->od_set == set_max_parked)
			snprintf(val, sizeof(val), "%u", cf->cf_max_parked);
		else if (od->od_set == set_duration)
			print_duration(val, sizeof(val),
			    *(const int64_t *)(const void *)((const char *)cf + od->od_offset));
		else if (od->od_set == opt_buckets)
			snprintf(val, sizeof(val), "%s", cf->cf_buckets_text);
		else if (od->od_set == set_alog)
			snprintf(val, sizeof(val), "%s", cf->cf_alog == ALOG_FILE ? cf->cf_alog_path :
			    cf->cf_alog == ALOG_STDOUT ? "stdout" : cf->cf_alog == ALOG_STDERR ? "stderr" : "off");
		else if (od->od_set == set_alog_format)
			snprintf(val, sizeof(val), "%s", cf->cf_alog_format == ALOG_COMBINED ? "combined" : "json");
		else if (od->od_set == opt_alog_filter)
			snprintf(val, sizeof(val), "%s", cf->cf_alog_filter_text[0] ? cf->cf_alog_filter_text : "(none)");
		else if (od->od_set == set_metric_names)
			snprintf(val, sizeof(val), "%s", cf->cf_metric_names == NAMES_OTEL ? "otel" :
			    cf->cf_metric_names == NAMES_BOTH ? "both" : "sidemeter");
		else if (od->od_set == opt_label) {
			val[0] = '\0';
			for (j = 0; j < cf->cf_nlabels; j++) {
				size_t used = strlen(val);

				snprintf(val + used, sizeof(val) - used, "%s%s=%s", j ? "," : "",
				    cf->cf_labels[j].cl_name, cf->cf_labels[j].cl_value);
			}
			if (cf->cf_nlabels == 0)
				snprintf(val, sizeof(val), "(none)");
		} else if (od->od_set == opt_route) {
			val[0] = '\0';
			for (j = 0; j < cf->cf_npatterns; j++) {
				size_t used = strlen(val);

				snprintf(val + used, sizeof(val) - used, "%s%s", j ? "," : "",
				    cf->cf_patterns[j]);
			}
			if (cf->cf_npatterns == 0)
				snprintf(val, sizeof(val), "(none)");
		}
		n = snprintf(line, sizeof(line), "%-18s = %s  (%s)\n", od->od_name, val,
		    src_name[sources[k]]);
		if (n > 0 && write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
			return;
	}
}
