/* metric_table.h: every metric, once.  Each row says what every output needs: the
 * Prometheus page (prom.c), /stats.json (statsjson.c) and both summary-line formats
 * (dump.c) are loops over this table and the aggregate's view, so a new metric is one row
 * and the outputs cannot disagree on a name, a label or a meaning.
 *
 * Columns: id, name, type, scope, kind, source, labels, key, shape, help.
 *   scope:  ANY, or HTTP for what only --mode http measures
 *   kind and source: where the series come from in the view (struct agg_view)
 *           VALUES     v_val[source ...], one per label value (one when unlabelled)
 *           SECONDS    the same, held in ns and shown in seconds
 *           REQUESTS   the exact request counts by method, code and route; v_val[source]
 *                      is their total
 *           HIST       one histogram, v_prom[source] (bounds by the name's unit)
 *           ROUTE_HIST one histogram a route, of v_pct[source]'s kind
 *           OTEL       OpenTelemetry's series (--metric-names otel|both)
 *           BUILD, TARGET  the information metrics
 *   labels: the label set of a VALUES or SECONDS row (LS_NONE: unlabelled)
 *   key:    the name in the summary lines and in /stats.json ("" when in neither): one
 *           vocabulary for every output but Prometheus' own names
 *   shape:  what the summary line shows of it, a sum of
 *           SUM    the increase over the interval (all labels together); /stats.json's
 *                  totals since the start
 *           RATE   that increase per second, as KEY_per_s
 *           VALUE  the value now; also among /stats.json's totals
 *           PCT    p50/p90/p99/max of the interval in ms, as KEY_ms (/stats.json: since
 *                  the start and of the last interval)
 *           POOL   busy and live workers
 *           CODES  the increase by status class (1xx ... 5xx)
 *           ROUTES the interval's routes (text: the top ones; JSON: all) */
#ifndef SIDEMETER_METRIC_TABLE_H
#define SIDEMETER_METRIC_TABLE_H

#include "shm_stats.h"

#define METRIC_TABLE(X)                                                                    \
	X(CONNECTIONS, "sidemeter_connections_total", COUNTER, ANY, VALUES, CTR_CLOSE,      \
	    &ls_close, "conns", DUMP_SUM | DUMP_RATE,                                       \
	    "Client connections that ended, by how they ended.")                           \
	X(CONNECTIONS_ACTIVE, "sidemeter_connections_active", GAUGE, ANY, VALUES, VAL_ACTIVE, \
	    LS_NONE, "active", DUMP_VALUE, "Client connections open now.")                 \
	X(RECEIVED_BYTES, "sidemeter_received_bytes_total", COUNTER, ANY, VALUES, CTR_BYTES_IN, \
	    LS_NONE, "in_bytes", DUMP_SUM, "Bytes relayed from clients to the application.") \
	X(SENT_BYTES, "sidemeter_sent_bytes_total", COUNTER, ANY, VALUES, CTR_BYTES_OUT,    \
	    LS_NONE, "out_bytes", DUMP_SUM, "Bytes relayed from the application to clients.") \
	X(CONNECT_DURATION, "sidemeter_upstream_connect_duration_seconds", HISTOGRAM, ANY,  \
	    HIST, VH_CONNECT, LS_NONE, "connect", DUMP_PCT,                                 \
	    "Time to open the connection to the application.")                             \
	X(CONNECTION_DURATION, "sidemeter_connection_duration_seconds", HISTOGRAM, ANY,     \
	    HIST, VH_CONN, LS_NONE, "conn", DUMP_PCT,                                       \
	    "Client connection lifetime, from accept to close.")                           \
	X(HTTP_REQUESTS, "sidemeter_http_requests_total", COUNTER, HTTP, REQUESTS,          \
	    VAL_REQUESTS, LS_NONE, "requests", DUMP_SUM | DUMP_RATE | DUMP_CODES,           \
	    "HTTP requests that got their final answer, by method, status code and route.") \
	X(HTTP_REQUEST_DURATION, "sidemeter_http_request_duration_seconds", HISTOGRAM, HTTP, \
	    ROUTE_HIST, VH_REQUEST, LS_NONE, "request", DUMP_PCT | DUMP_ROUTES,             \
	    "Time of a whole exchange, from the request's first byte to the answer's last, by route.") \
	X(OTEL_REQUEST_DURATION, "http_server_request_duration_seconds", HISTOGRAM, HTTP,   \
	    OTEL, VH_REQUEST, LS_NONE, "", DUMP_NONE,                                       \
	    "Duration of HTTP server requests (OpenTelemetry semantic conventions; --metric-names otel or both).") \
	X(HTTP_UPSTREAM_DURATION, "sidemeter_http_upstream_duration_seconds", HISTOGRAM,    \
	    HTTP, ROUTE_HIST, VH_APP, LS_NONE, "app", DUMP_PCT,                             \
	    "Time the application took to start answering, from the request's last byte to the answer's first, by route.") \
	X(HTTP_REQUEST_SIZE, "sidemeter_http_request_size_bytes", HISTOGRAM, HTTP, HIST,    \
	    VH_REQUEST_SIZE, LS_NONE, "", DUMP_NONE, "Request body sizes.")                \
	X(HTTP_RESPONSE_SIZE, "sidemeter_http_response_size_bytes", HISTOGRAM, HTTP, HIST,  \
	    VH_RESPONSE_SIZE, LS_NONE, "", DUMP_NONE, "Response body sizes.")              \
	X(HTTP_INCOMPLETE, "sidemeter_http_requests_incomplete_total", COUNTER, HTTP, VALUES, \
	    CTR_INCOMPLETE, &ls_incomplete, "incomplete", DUMP_SUM,                         \
	    "HTTP requests cut short before their answer was complete, by reason.")        \
	X(OPAQUE, "sidemeter_opaque_connections_total", COUNTER, HTTP, VALUES, CTR_OPAQUE,  \
	    &ls_opaque, "opaque", DUMP_SUM,                                                 \
	    "Connections the HTTP observer stopped reading (their bytes still flowed), by reason.") \
	X(TUNNELS, "sidemeter_tunnels_total", COUNTER, HTTP, VALUES, CTR_TUNNELS, LS_NONE,  \
	    "tunnels", DUMP_SUM,                                                            \
	    "Connections that became tunnels (101 Switching Protocols, 2xx to CONNECT).")  \
	X(UPSTREAM_UP, "sidemeter_upstream_up", GAUGE, ANY, VALUES, VAL_UPSTREAM_UP, LS_NONE, \
	    "", DUMP_NONE,                                                                  \
	    "1 if the application accepts a TCP connection (probed at most once a second), else 0.") \
	X(UPSTREAM_ERRORS, "sidemeter_upstream_errors_total", COUNTER, ANY, VALUES,         \
	    CTR_UPSTREAM, &ls_upstream, "upstream_errors", DUMP_SUM,                        \
	    "Failures to reach or hear from the application, by reason.")                  \
	X(ACCEPT_ERRORS, "sidemeter_accept_errors_total", COUNTER, ANY, VALUES,             \
	    CTR_ACCEPT_EMFILE, &ls_accept, "accept_errors", DUMP_SUM,                       \
	    "accept() failures, by reason (emfile: out of descriptors).")                  \
	X(WORKERS, "sidemeter_workers", GAUGE, ANY, VALUES, VAL_WORKERS, &ls_worker_state,  \
	    "workers", DUMP_POOL, "Worker processes, by state.")                           \
	X(WORKERS_LIMIT, "sidemeter_workers_limit", GAUGE, ANY, VALUES, VAL_WORKERS_MIN,    \
	    &ls_bound, "", DUMP_NONE,                                                       \
	    "The pool's bounds: min (--workers, moved by TTIN/TTOU) and max (--max-workers).") \
	X(LISTEN_QUEUE, "sidemeter_listen_queue", GAUGE, ANY, VALUES, VAL_QUEUE, LS_NONE,   \
	    "queued", DUMP_VALUE,                                                           \
	    "Connections waiting in the listen backlog for a free worker.")                \
	X(PARKED, "sidemeter_parked_connections", GAUGE, HTTP, VALUES, VAL_PARKED, LS_NONE, \
	    "parked", DUMP_VALUE,                                                           \
	    "Client connections waiting in the keeper now: idle between requests, no first byte yet, or a stalled request head.") \
	X(PARKS, "sidemeter_parks_total", COUNTER, HTTP, VALUES, CTR_PARKS, LS_NONE, "",    \
	    DUMP_NONE, "Connections a worker handed to the keeper.")                       \
	X(UNPARKS, "sidemeter_unparks_total", COUNTER, HTTP, VALUES, CTR_UNPARKS, LS_NONE,  \
	    "", DUMP_NONE,                                                                  \
	    "Connections the keeper handed back to a worker, to carry on where they were.") \
	X(PARK_REFUSED, "sidemeter_park_refused_total", COUNTER, HTTP, VALUES,              \
	    CTR_PARK_REFUSED, LS_NONE, "", DUMP_NONE,                                       \
	    "Connections a worker kept because the keeper had no room for them.")          \
	X(WORKER_RESTARTS, "sidemeter_worker_restarts_total", COUNTER, ANY, VALUES,         \
	    VAL_RESTARTS, LS_NONE, "restarts", DUMP_SUM,                                    \
	    "Workers that ended unplanned (crashed or killed as wedged) and were replaced.") \
	X(RING_DROPPED, "sidemeter_ring_dropped_records_total", COUNTER, ANY, VALUES,       \
	    CTR_RING_DROPPED, LS_NONE, "dropped", DUMP_SUM,                                 \
	    "Per-request samples dropped because a worker's ring was full (counts are exact).") \
	X(QUIT_REQUESTS, "sidemeter_quit_requests_total", COUNTER, ANY, VALUES, VAL_QUIT,   \
	    LS_NONE, "quit_requests", DUMP_SUM,                                             \
	    "POST /quitquitquit requests taken (job mode: drain and exit).")                \
	X(UPSTREAM_DOWN_EXITS, "sidemeter_upstream_down_exits_total", COUNTER, ANY, VALUES, \
	    VAL_DOWN_EXITS, LS_NONE, "upstream_down_exits", DUMP_SUM,                       \
	    "Stops because the application stayed unreachable for --exit-when-upstream-down.") \
	X(ACCESS_LOG_DROPPED, "sidemeter_access_log_dropped_total", COUNTER, ANY, VALUES,   \
	    VAL_LOG_DROPPED, &ls_log_drop, "", DUMP_NONE,                                   \
	    "Access log lines dropped whole, by where: a process's ring was full (ring), or the output did not keep up (output); counts are unaffected.") \
	X(TAP_CLIENTS, "sidemeter_tap_clients", GAUGE, ANY, VALUES, VAL_TAP_CLIENTS,        \
	    LS_NONE, "", DUMP_NONE, "Clients of GET /tap listening now.")                  \
	X(TAP_LINES, "sidemeter_tap_lines_total", COUNTER, ANY, VALUES, VAL_TAP_LINES,      \
	    LS_NONE, "", DUMP_NONE,                                                         \
	    "Lines queued for /tap clients (a line that goes to two clients counts twice).") \
	X(TAP_DROPPED, "sidemeter_tap_dropped_total", COUNTER, ANY, VALUES, VAL_TAP_DROPPED, \
	    &ls_tap_drop, "", DUMP_NONE,                                                    \
	    "Lines a /tap client did not get, by reason: its queue was full (slow) or over its max_rps (max_rps).") \
	X(TAP_CUT, "sidemeter_tap_clients_cut_total", COUNTER, ANY, VALUES, VAL_TAP_CUT,    \
	    LS_NONE, "", DUMP_NONE,                                                         \
	    "/tap clients disconnected because they took nothing for 10 seconds.")         \
	X(LINES_SKIPPED, "sidemeter_dump_lines_skipped_total", COUNTER, ANY, VALUES,        \
	    VAL_LINES_SKIPPED, LS_NONE, "", DUMP_NONE,                                      \
	    "Summary lines skipped because stdout still held the last one (a log reader that does not keep up).") \
	X(BUILD_INFO, "sidemeter_build_info", INFO, ANY, BUILD, 0, LS_NONE, "", DUMP_NONE,  \
	    "The running version, as a label; always 1.")                                  \
	X(TARGET_INFO, "target_info", INFO, ANY, TARGET, 0, LS_NONE, "", DUMP_NONE,         \
	    "Who this is: the labels given with --label (SIDEMETER_LABELS); always 1.")    \
	X(PROCESS_CPU, "process_cpu_seconds_total", COUNTER, ANY, SECONDS, VAL_CPU_NS,      \
	    LS_NONE, "", DUMP_NONE, "User and system CPU time, master and workers together.") \
	X(PROCESS_RSS, "process_resident_memory_bytes", GAUGE, ANY, VALUES, VAL_RSS, LS_NONE, \
	    "", DUMP_NONE,                                                                  \
	    "Resident memory, master and workers added up (shared pages count in each).")  \
	X(PROCESS_FDS, "process_open_fds", GAUGE, ANY, VALUES, VAL_FDS, LS_NONE, "",        \
	    DUMP_NONE, "Open file descriptors, master and workers together.")              \
	X(PROCESS_START, "process_start_time_seconds", GAUGE, ANY, VALUES, VAL_START,       \
	    LS_NONE, "", DUMP_NONE, "When the master started, in seconds since the Unix epoch.")

/* INFO: a gauge of 1 whose labels are the information (OpenMetrics' info type; a gauge in
 * the Prometheus text format), named NAME_info. */
enum metric_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM, MT_INFO };
enum metric_scope { SCOPE_ANY, SCOPE_HTTP };
enum metric_kind { MK_VALUES, MK_SECONDS, MK_REQUESTS, MK_HIST, MK_ROUTE_HIST, MK_OTEL,
	MK_BUILD, MK_TARGET };

#define DUMP_NONE 0
#define DUMP_SUM 0x01
#define DUMP_RATE 0x02
#define DUMP_VALUE 0x04
#define DUMP_PCT 0x08
#define DUMP_POOL 0x10
#define DUMP_CODES 0x20
#define DUMP_ROUTES 0x40

/* The view's values (v_val): first every slot counter summed (enum shm_counter, so a
 * counter's index is its own), then what is not a slot counter.  A labelled row's values
 * are consecutive, in its label set's order. */
enum view_value {
	VAL_ACTIVE = CTR_MAX,		/* connections open: in workers and in the keeper */
	VAL_REQUESTS,			/* exact answers, all labels (unclassified ones too) */
	VAL_QUEUE,			/* the listen backlog's length */
	VAL_PARKED,			/* connections the keeper holds */
	VAL_RESTARTS,			/* from the shared header, kept across re-exec */
	VAL_QUIT,
	VAL_DOWN_EXITS,
	VAL_LINES_SKIPPED,
	VAL_WORKERS,			/* + worker state - 1: FREE is an empty slot */
	VAL_WORKERS_MIN = VAL_WORKERS + WORKER_STATE_MAX - 1,
	VAL_WORKERS_MAX,
	VAL_LOG_DROPPED,		/* ring: CTR_LOG_DROPPED; then output */
	VAL_LOG_DROPPED_OUTPUT,
	/* the master's other parts: filled by the renderer that shows them (prom.c) */
	VAL_UPSTREAM_UP,
	VAL_TAP_CLIENTS,
	VAL_TAP_LINES,
	VAL_TAP_DROPPED,		/* slow, then max_rps */
	VAL_TAP_DROPPED_RATE,
	VAL_TAP_CUT,
	VAL_CPU_NS,
	VAL_RSS,
	VAL_FDS,
	VAL_START,			/* wall clock, seconds */
	VAL_MAX
};

/* The view's histograms (v_prom, v_pct). */
enum view_hist { VH_CONNECT, VH_CONN, VH_REQUEST, VH_APP, VH_REQUEST_SIZE, VH_RESPONSE_SIZE,
	VH_MAX };

/* A label and its values, in the order of a row's v_val entries. */
struct label_set {
	const char *ls_label;
	const char *const *ls_values;
	unsigned ls_n;
};

#define LS_NONE NULL
extern const struct label_set ls_close, ls_incomplete, ls_opaque, ls_upstream, ls_accept,
    ls_worker_state, ls_bound, ls_log_drop, ls_tap_drop;

#define X_METRIC_ENUM(id, name, type, scope, kind, source, labels, key, shape, help) \
	METRIC_##id,
enum metric_id { METRIC_TABLE(X_METRIC_ENUM) METRIC_MAX };

struct metric_def {
	const char *md_name;
	enum metric_type md_type;
	enum metric_scope md_scope;
	enum metric_kind md_kind;
	unsigned md_source;		/* enum view_value or enum view_hist, by kind */
	const struct label_set *md_labels;
	const char *md_key;
	unsigned md_shape;
	const char *md_help;
};

/* Indexed by enum metric_id. */
extern const struct metric_def metric_defs[METRIC_MAX];

/* How many values a VALUES or SECONDS row has in v_val. */
static inline unsigned metric_nvalues(const struct metric_def *md)
{
	return md->md_labels ? md->md_labels->ls_n : 1;
}

#endif
