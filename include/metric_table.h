/* metric_table.h: every metric, once.  The Prometheus page, the JSON dump and the text dump
 * are all driven by this table, so they cannot disagree on a name or a meaning.
 *
 * Columns: id, name, type, dump key, dump shape, help.
 *   dump key:   the field's name in the summary line ("" when it is not in the line)
 *   dump shape: SUM   the counter's increase over the interval (all labels together)
 *               RATE  as SUM, plus the increase per second as KEY_per_s
 *               VALUE the gauge's value now
 *               PCT   p50/p90/p99/max of the interval, in milliseconds, as KEY_ms
 *               POOL  busy and total workers
 *               NONE  not in the line */
#ifndef SIDEMETER_METRIC_TABLE_H
#define SIDEMETER_METRIC_TABLE_H

#define METRIC_TABLE(X)                                                                    \
	X(CONNECTIONS, "sidemeter_connections_total", COUNTER, "conns", RATE,              \
	    "Client connections that ended, by how they ended.")                           \
	X(CONNECTIONS_ACTIVE, "sidemeter_connections_active", GAUGE, "active", VALUE,      \
	    "Client connections open now.")                                                \
	X(RECEIVED_BYTES, "sidemeter_received_bytes_total", COUNTER, "in_bytes", SUM,      \
	    "Bytes relayed from clients to the application.")                              \
	X(SENT_BYTES, "sidemeter_sent_bytes_total", COUNTER, "out_bytes", SUM,             \
	    "Bytes relayed from the application to clients.")                              \
	X(CONNECT_DURATION, "sidemeter_upstream_connect_duration_seconds", HISTOGRAM,      \
	    "connect", PCT, "Time to open the connection to the application.")            \
	X(CONNECTION_DURATION, "sidemeter_connection_duration_seconds", HISTOGRAM, "conn",  \
	    PCT, "Client connection lifetime, from accept to close.")                      \
	X(UPSTREAM_ERRORS, "sidemeter_upstream_errors_total", COUNTER, "upstream_errors",  \
	    SUM, "Failures to reach or hear from the application, by reason.")            \
	X(ACCEPT_ERRORS, "sidemeter_accept_errors_total", COUNTER, "accept_errors", SUM,   \
	    "accept() failures, by reason (emfile: out of descriptors).")                 \
	X(WORKERS, "sidemeter_workers", GAUGE, "workers", POOL,                            \
	    "Worker processes, by state.")                                                 \
	X(WORKER_RESTARTS, "sidemeter_worker_restarts_total", COUNTER, "restarts", SUM,    \
	    "Workers that ended unplanned (crashed or killed as wedged) and were replaced.") \
	X(RING_DROPPED, "sidemeter_ring_dropped_records_total", COUNTER, "dropped", SUM,   \
	    "Per-request samples dropped because a worker's ring was full (counts are exact).")

enum metric_type { MT_COUNTER, MT_GAUGE, MT_HISTOGRAM };
enum dump_shape { DUMP_NONE, DUMP_SUM, DUMP_RATE, DUMP_VALUE, DUMP_PCT, DUMP_POOL };

#define X_METRIC_ENUM(id, name, type, key, shape, help) METRIC_##id,
enum metric_id { METRIC_TABLE(X_METRIC_ENUM) METRIC_MAX };

struct metric_def {
	const char *md_name;
	enum metric_type md_type;
	const char *md_key;
	enum dump_shape md_shape;
	const char *md_help;
};

/* Indexed by enum metric_id. */
extern const struct metric_def metric_defs[METRIC_MAX];

#endif
