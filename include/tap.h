/* tap.h: GET /tap on the metrics port, the access log's lines streamed live to the clients
 * that ask, each with its own filters (the query: route, method, code, min_ms, max_rps).
 * It runs in the master, with non-blocking sockets, fed by the access log's drain; it works
 * whether or not --access-log is on (while a client listens, the header's sh_tapping asks
 * workers to write lines).  A client that does not keep up loses lines, counted; one that
 * takes nothing for TAP_STUCK_MS is cut, counted; nothing else waits for it. */
#ifndef SIDEMETER_TAP_H
#define SIDEMETER_TAP_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>

#define TAP_CLIENTS 8			/* streams at once; more get a 503 */
#define TAP_QUEUE (256u << 10)		/* bytes waiting for one client, at most */
#define TAP_SNDBUF (128 << 10)		/* the socket's send buffer, for the same reason */
#define TAP_STUCK_MS 10000		/* a client that took nothing for this long is cut */

/* What the filters look at in a line. */
struct tap_facts {
	const char *tf_route;		/* the route label; NULL: no request line */
	int tf_method;			/* enum http_method; -1: no request line */
	unsigned tf_code;		/* status; 0: none */
	uint64_t tf_dur_ns;		/* the exchange's (or the connection's) time */
};

/* A client's filters, from the query of its request. */
struct tap_filter {
	char tf_route[128];		/* "": any */
	uint32_t tf_methods;		/* bit m: enum http_method m; 0: any */
	unsigned tf_classes;		/* bit c: status class cxx */
	unsigned tf_codes[8];		/* exact codes */
	unsigned tf_ncodes;		/* tf_classes and tf_codes unused when both are empty */
	int64_t tf_min_ns;		/* -1: any duration */
	unsigned tf_max_rps;		/* lines a second at most; 0: no cap */
};

/* Parse a query ("route=/users/:id&code=5xx", without the "?"; percent-decoded here).
 * Returns 0, or -1 with the problem in why[len]. */
int tap_parse_filter(const char *query, size_t n, struct tap_filter *f, char *why, size_t len);

/* Does a line pass f (not counting max_rps)? */
int tap_matches(const struct tap_filter *f, const struct tap_facts *t);

/* A request for /tap on fd (non-blocking, accepted by the metrics port): query of n bytes,
 * http10 for a client that cannot take chunks, head for HEAD.  Returns 0 when the tap took
 * fd over (it answers and closes it from now on), or the status to answer with (400 for a
 * bad filter, 503 when every place is taken) and why. */
unsigned tap_open(int fd, const char *query, size_t n, int http10, int head, int64_t now,
    char *why, size_t len);

/* Clients listening now. */
unsigned tap_clients(void);

/* Give a line (line[n], JSON, with its '\n') to every client whose filters it passes. */
void tap_feed(const struct tap_facts *t, const char *line, size_t n, int64_t now);

/* Add the clients' descriptors to pfd (room for TAP_CLIENTS); returns how many.
 * *deadline is lowered to the earliest moment a client would count as stuck. */
int tap_pollfds(struct pollfd *pfd, int64_t *deadline);

/* Act on what poll() said of the descriptors tap_pollfds() gave, and cut stuck clients. */
void tap_serve(const struct pollfd *pfd, int n, int64_t now);

/* Stopping (or re-executing): end every stream (the last chunk), send what the sockets take
 * now, and close them. */
void tap_close_all(void);

/* In a child just forked: close the master's descriptors of the clients (a copy held here
 * would keep a connection open after the master has ended it). */
void tap_forget(void);

/* For the metrics. */
struct tap_stats {
	uint64_t ts_lines;		/* lines queued for a client (one per client) */
	uint64_t ts_dropped_slow;	/* lines a client's full queue could not take */
	uint64_t ts_dropped_rate;	/* lines over a client's max_rps */
	uint64_t ts_cut;		/* clients cut: stuck for TAP_STUCK_MS */
};
void tap_get_stats(struct tap_stats *ts);

#endif
