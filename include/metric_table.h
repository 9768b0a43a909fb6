/* metric_table.h: every metric, once.  The Prometheus page, the JSON dump and the text dump
 * are all driven by this table, so they cannot disagree on a name or a meaning.
 *
 * Columns: id, name, type, scope, dump key, dump shape, help.
 *   scope:      ANY, or HTTP for what only --mode http measures
 *   dump key:   the field's name in the summary line ("" when it is not in the line)
 *   dump shape: a sum of
 *               SUM    the counter's increase over the interval (all labels together)
 *               RATE   that increase per second, as KEY_per_s
 *               VALUE  the gauge's value now
 *               PCT    p50/p90/p99/max of the interval, in milliseconds, as KEY_ms
 *               POOL   busy and total workers
 *               CODES  the increase by status class (1xx ... 5xx)
 *               ROUTES the routes of the interval (text: the top ones; JSON: all) */
#ifndef SIDEMETER_METRIC_TABLE_H
#define SIDEMETER_METRIC_TABLE_H

#define METRIC_TABLE(X)                                                                    \
	X(CONNECTIONS, "sidemeter_connections_total", COUNTER, ANY, "conns", DUMP_SUM | DUMP_RATE, \
	    "Client connections that ended, by how they ended.")                           \
	X(CONNECTIONS_ACTIVE, "sidemeter_connections_active", GAUGE, ANY, "active", DUMP_VALUE,  \
	    "Client connections open now.")                                                \
	X(RECEIVED_BYTES, "sidemeter_received_bytes_total", COUNTER, ANY, "in_bytes", DUMP_SUM,  \
	    "Bytes relayed from clients to the application.")                              \
	X(SENT_BYTES, "sidemeter_sent_bytes_total", COUNTER, ANY, "out_bytes", DUMP_SUM,         \
	    "Bytes relayed from the application to clients.")                              \
	X(CONNECT_DURATION, "sidemeter_upstream_connect_duration_seconds", HISTOGRAM, ANY,  \
	    "connect", DUMP_PCT, "Time to open the connection to the application.")            \
	X(CONNECTION_DURATION, "sidemeter_connection_duration_seconds", HISTOGRAM, ANY,     \
	    "conn", DUMP_PCT, "Client connection lifetime, from accept to close.")              \
	X(HTTP_REQUESTS, "sidemeter_http_requests_total", COUNTER, HTTP, "reqs",            \
	    DUMP_SUM | DUMP_RATE | DUMP_CODES,                                                  \
	    "HTTP requests that got their final answer, by method, status code and route.") \
	X(HTTP_REQUEST_DURATION, "sidemeter_http_request_duration_seconds", HISTOGRAM, HTTP, \
	    "req", DUMP_PCT | DUMP_ROUTES,                                                      \
	    "Time of a whole exchange, from the request's first byte to the answer's last, by route.") \
	X(OTEL_REQUEST_DURATION, "http_server_request_duration_seconds", HISTOGRAM, HTTP,   \
	    "", DUMP_NONE,                                                                      \
	    "Duration of HTTP server requests (OpenTelemetry semantic conventions; --metric-names otel or both).") \
	X(HTTP_UPSTREAM_DURATION, "sidemeter_http_upstream_duration_seconds", HISTOGRAM,    \
	    HTTP, "app", DUMP_PCT,                                                              \
	    "Time the application took to start answering, from the request's last byte to the answer's first, by route.") \
	X(HTTP_REQUEST_SIZE, "sidemeter_http_request_size_bytes", HISTOGRAM, HTTP, "", DUMP_NONE, \
	    "Request body sizes.")                                                         \
	X(HTTP_RESPONSE_SIZE, "sidemeter_http_response_size_bytes", HISTOGRAM, HTTP, "",    \
	    DUMP_NONE, "Response body sizes.")                                                  \
	X(HTTP_INCOMPLETE, "sidemeter_http_requests_incomplete_total", COUNTER, HTTP,       \
	    "incomplete", DUMP_SUM, "HTTP requests cut short before their answer was complete, by reason.") \
	X(OPAQUE, "sidemeter_opaque_connections_total", COUNTER, HTTP, "opaque", DUMP_SUM,       \
	    "Connections the HTTP observer stopped reading (their bytes still flowed), by reason.") \
	X(TUNNELS, "sidemeter_tunnels_total", COUNTER, HTTP, "tunnels", DUMP_SUM,                \
	    "Connections that became tunnels (101 Switching Protocols, 2xx to CONNECT).")  \
	X(UPSTREAM_UP, "sidemeter_upstream_up", GAUGE, ANY, "", DUMP_NONE,                  \
	    "1 if the application accepts a TCP connection (probed at most once a second), else 0.") \
	X(UPSTREAM_ERRORS, "sidemeter_upstream_errors_total", COUNTER, ANY, "upstream_errors", \
	    DUMP_SUM, "Failures to reach or hear from the application, by reason.")            \
	X(ACCEPT_ERRORS, "sidemeter_accept_errors_total", COUNTER, ANY, "accept_errors",    \
	    DUMP_SUM, "accept() failures, by reason (emfile: out of descriptors).")            \
	X(WORKERS, "sidemeter_workers", GAUGE, ANY, "workers", DUMP_POOL,                        \
	    "Worker processes, by state.")                                                 \
	X(WORKERS_LIMIT, "sidemeter_workers_limit", GAUGE, ANY, "", DUMP_NONE,              \
	    "The pool's bounds: min (--workers, moved by TTIN/TTOU) and max (--max-workers).") \
	X(LISTEN_QUEUE, "sidemeter_listen_queue", GAUGE, ANY, "queued", DUMP_VALUE,         \
	    "Connections waiting in the listen backlog for a free worker.")                \
	X(PARKED, "sidemeter_parked_connections", GAUGE, HTTP, "parked", DUMP_VALUE,        \
	    "Client connections waiting in the keeper now: idle between requests, no first byte yet, or a stalled request head.") \
	X(PARKS, "sidemeter_parks_total", COUNTER, HTTP, "", DUMP_NONE,                     \
	    "Connections a worker handed to the keeper.")                                  \
	X(UNPARKS, "sidemeter_unparks_total", COUNTER, HTTP, "", DUMP_NONE,                 \
	    "Connections the keeper handed back to a worker, to carry on where they were.") \
	X(PARK_REFUSED, "sidemeter_park_refused_total", COUNTER, HTTP, "", DUMP_NONE,       \
	    "Connections a worker kept because the keeper had no room for them.")          \
	X(WORKER_RESTARTS, "sidemeter_worker_restarts_total", COUNTER, ANY, "restarts", DUMP_SUM, \
	    "Workers that ended unplanned (crashed or killed as wedged) and were replaced.") \
	X(RING_DROPPED, "sidemeter_ring_dropped_records_total", COUNTER, ANY, "dropped",    \
	    DUMP_SUM, "Per-request samples dropped because a worker's ring was full (counts are exact).") \
	X(QUIT_REQUESTS, "sidemeter_quit_requests_total", COUNTER, ANY, "quit_requests", DUMP_SUM, \
	    "POST /quitquitquit requests taken (job mode: drain and exit).")                \
	X(UPSTREAM_DOWN_EXITS, "sidemeter_upstream_down_exits_total", COUNTER, ANY, "upstream_down_exits", \
	    DUMP_SUM, "Stops because the application stayed unreachable for --exit-when-upstream-down.") \
	X(ACCESS_LOG_DROPPED, "sidemeter_access_log_dropped_total", COUNTER, ANY, "", DUMP_NONE, \
	    "Access log lines dropped whole, by where: a process's ring was full (ring), or the output did not keep up (output); counts are unaffected.") \
	X(TAP_CLIENTS, "sidemeter_tap_clients", GAUGE, ANY, "", DUMP_NONE,                  \
	    "Clients of GET /tap listening now.")                                          \
	X(TAP_LINES, "sidemeter_tap_lines_total", COUNTER, ANY, "", DUMP_NONE,              \
	    "Lines queued for /tap clients (a line that goes to two clients counts twice).") \
	X(TAP_DROPPED, "sidemeter_tap_dropped_total", COUNTER, ANY, "", DUMP_NONE,          \
	    "Lines a /tap client did not get, by reason: its queue was full (slow) or over its max_rps (max_rps).") \
	X(TAP_CUT, "sidemeter_tap_clients_cut_total", COUNTER, ANY, "", DUMP_NONE,          \
	    "/tap clients disconnected because they took nothing for 10 seconds.")         \
	X(LINES_SKIPPED, "sidemeter_dump_lines_skipped_total", COUNTER, ANY, "", DUMP_NONE, \
	    "Summary lines skipped because stdout still held the last one (a log reader that does not keep up).") \
	X(BUILD_INFO, "sidemeter_build_info", INFO, ANY, "", DUMP_NONE,                     \
	    "The running version, as a label; always 1.")                                  \
	X(TARGET_INFO, "target_info", INFO, ANY, "", DUMP_NONE,                             \
	    "Who this is: the labels given with --label (SIDEMETER_LABELS); always 1.")    \
	X(PROCESS_CPU, "process_cpu_seconds_total", COUNTER, ANY, "", DUMP_NONE,             \
	    "User and system CPU time, master and workers together.")                     \
	X(PROCESS_RSS, "process_resident_memory_bytes", GAUGE, ANY, "", DUMP_NONE,           \
	    "Resident memory, master and workers added up (shared pages count in each).")  \
	X(PROCESS_FDS, "process_open_fds", GAUGE, ANY, "", DUMP_NONE,                        \
	    "Open file descriptors, master and workers together.")                        \
	X(PROCESS_START, "process_start_time_seconds", GAUGE, ANY, "", DUMP_NONE,            \
	    "When the master started, in seconds since the Unix epoch.")

/* INFO: a gauge of 1 whose labels are the information (OpenMetrics' info type; a gauge in
 * the Prometheus text format), named NAME_info. */
enum metric_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM, MT_INFO };
enum metric_scope { SCOPE_ANY, SCOPE_HTTP };

#define DUMP_NONE 0
#define DUMP_SUM 0x01
#define DUMP_RATE 0x02
#define DUMP_VALUE 0x04
#define DUMP_PCT 0x08
#define DUMP_POOL 0x10
#define DUMP_CODES 0x20
#define DUMP_ROUTES 0x40

#define X_METRIC_ENUM(id, name, type, scope, key, shape, help) METRIC_##id,
enum metric_id { METRIC_TABLE(X_METRIC_ENUM) METRIC_MAX };

struct metric_def {
	const char *md_name;
	enum metric_type md_type;
	enum metric_scope md_scope;
	const char *md_key;
	unsigned md_shape;
	const char *md_help;
};

/* Indexed by enum metric_id. */
extern const struct metric_def metric_defs[METRIC_MAX];

#endif
