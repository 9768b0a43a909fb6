/* config.h: the effective configuration, from flags, SIDEMETER_* environment variables and
 * defaults, in that order of precedence.  Parsed once in the master before anything binds;
 * workers see it through fork and never change it. */
#ifndef SIDEMETER_CONFIG_H
#define SIDEMETER_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define CONFIG_MAX_WORKERS 512
#define CONFIG_MAX_ROUTES 500
#define CONFIG_MAX_PATTERNS 64
#define CONFIG_PATTERN_LEN 128
#define CONFIG_MAX_BUCKETS 40
#define CONFIG_MAX_PARKED 1000000
#define CONFIG_MAX_LABELS 16
#define CONFIG_LABEL_NAME 64		/* bytes of a --label name, at most */
#define CONFIG_LABEL_VALUE 256		/* ... and of its value */

enum config_mode { MODE_HTTP, MODE_TCP };
enum config_format { FORMAT_TEXT, FORMAT_JSON };
enum config_names { NAMES_SIDEMETER, NAMES_OTEL, NAMES_BOTH };
enum config_alog { ALOG_OFF, ALOG_STDOUT, ALOG_STDERR, ALOG_FILE };
enum config_alog_format { ALOG_JSON, ALOG_COMBINED };

struct config_label {
	char cl_name[CONFIG_LABEL_NAME + 1];
	char cl_value[CONFIG_LABEL_VALUE + 1];
};

struct config {
	struct net_addr cf_listen;
	struct net_addr cf_upstream;
	struct net_addr cf_metrics;
	int cf_metrics_on;
	unsigned cf_workers;		/* the pool's minimum (TTIN/TTOU move it) */
	unsigned cf_max_workers;	/* the pool never grows past this */
	unsigned cf_backlog;
	enum config_mode cf_mode;
	enum config_format cf_dump_format;
	int64_t cf_dump_interval_ms;	/* 0: no periodic dump */
	/* timeouts, in milliseconds */
	int64_t cf_connect_ms;
	int64_t cf_idle_ms;
	int64_t cf_header_ms;
	int64_t cf_body_ms;
	int64_t cf_response_ms;
	int64_t cf_keepalive_ms;
	int64_t cf_tunnel_ms;
	int64_t cf_drain_ms;
	int64_t cf_drain_delay_ms;
	int64_t cf_heartbeat_ms;
	int64_t cf_idle_worker_ms;	/* an idle worker above the minimum retires after this */
	int64_t cf_park_after_ms;	/* silent this long: the connection goes to the keeper */
	int64_t cf_exit_down_ms;	/* job mode: the application down this long: stop (0: never) */
	unsigned cf_max_parked;		/* the keeper holds at most this many; 0: no keeper */
	int cf_max_parked_auto;		/* ... set by main() from the descriptor limit */
	/* routes and histograms */
	unsigned cf_max_routes;
	unsigned cf_npatterns;
	char cf_patterns[CONFIG_MAX_PATTERNS][CONFIG_PATTERN_LEN];
	unsigned cf_nbuckets;
	double cf_buckets[CONFIG_MAX_BUCKETS];	/* seconds, strictly increasing */
	char cf_buckets_text[512];
	/* what /metrics says */
	enum config_names cf_metric_names;	/* the HTTP server families' names */
	unsigned cf_nlabels;
	struct config_label cf_labels[CONFIG_MAX_LABELS];	/* target_info's */
	/* the access log */
	enum config_alog cf_alog;
	char cf_alog_path[512];
	enum config_alog_format cf_alog_format;
	unsigned cf_alog_classes;	/* --access-log-filter status=: bit c for class cxx; 0: any */
	int64_t cf_alog_min_ms;		/* ... min_ms=: or at least this slow (-1: not asked) */
	unsigned cf_alog_sample;	/* ... sample=N: one line in N of those (1: all) */
	char cf_alog_filter_text[128];
	int cf_check;
};

/* The one configuration of this process. */
extern struct config cfg;

enum config_result { CONFIG_OK, CONFIG_EXIT, CONFIG_ERROR };

/* Parse argv and the environment into cf.  CONFIG_EXIT: --help or --version was printed and
 * the caller should exit 0.  CONFIG_ERROR: err holds one line naming the problem. */
enum config_result config_parse(struct config *cf, int argc, char **argv, char *err,
    size_t errlen);

/* Print the effective configuration, one "name = value  (source)" per line. */
void config_print(const struct config *cf, int fd);

/* Parse a duration: seconds with an optional fraction and an optional unit (ms, s, m, h). */
int config_parse_duration(const char *text, int64_t *ms);

#endif
