/* route.c: naming requests by route, and the worker's route table (see include/route.h).
 * It touches: the target it is given, and the route table of the slot route_attach() gave
 * it (the worker's own). */
#include <string.h>

#include "route.h"

static int is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static int is_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

/* Characters of base64, base64url and the usual token alphabets. */
static int is_token(unsigned char c)
{
	return is_digit(c) || is_upper(c) || is_lower(c) || c == '-' || c == '_' || c == '.' ||
	    c == '~' || c == '+' || c == '%';
}

/* Prefixes of well-known API keys and tokens (Stripe, GitHub, GitLab, Slack, AWS, Google,
 * OpenAI-style): a segment that starts with one and goes on is a credential. */
static int key_prefix(const char *s, size_t n)
{
	static const char *const prefixes[] = {
		"sk_", "pk_", "rk_", "sk-", "ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_",
		"glpat-", "xoxb-", "xoxp-", "xoxa-", "xapp-", "AKIA", "ASIA", "AIza", "ya29.", "eyJ",
	};
	size_t i, k;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		k = strlen(prefixes[i]);
		if (n >= k + 8 && memcmp(s, prefixes[i], k) == 0)
			return 1;
	}
	return 0;
}

/* Does a segment look like a credential: a key, a token, a session, a person? */
static int looks_like_secret(const char *s, size_t n)
{
	size_t i, token = 0, upper = 0, lower = 0, flips = 0, mixes = 0;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		token += is_token(c);
		upper += is_upper(c);
		lower += is_lower(c);
		if (c == '=' || c == '@' || c == ':')
			return 1;			/* key=value, user@host, user:secret */
		/* Random strings change between digits and letters, and between cases, often;
		 * names seldom do (page-2, getUserName). */
		if (i > 0 && is_digit(c) != is_digit((unsigned char)s[i - 1]) &&
		    (is_upper(c) || is_lower(c) || is_upper((unsigned char)s[i - 1]) ||
		     is_lower((unsigned char)s[i - 1])))
			mixes++;
		if (i > 0 && (is_upper(c) || is_lower(c)) &&
		    (is_upper(c) != is_upper((unsigned char)s[i - 1])) &&
		    (is_upper((unsigned char)s[i - 1]) || is_lower((unsigned char)s[i - 1])))
			flips++;
	}
	if (key_prefix(s, n))
		return 1;				/* sk_live_..., ghp_..., a JWT */
	if (token == n && n >= 16 && mixes >= 3)
		return 1;				/* base64-like tokens */
	if (token == n && n >= 16 && upper >= 2 && lower >= 2 && flips * 3 >= n)
		return 1;				/* random mixed case: AbCdEfGhIjKlMnOp */
	return n > 40;					/* too long to be a name */
}

/* Does a segment look like an identifier or a credential rather than a name?  Routes are
 * labels: whatever a user would take for a number, a key, a token, a session or a person
 * is replaced, at the cost of an odd long name now and then. */
static int looks_like_id(const char *s, size_t n)
{
	size_t i, digits = 0, hex = 0;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++) {
		digits += is_digit((unsigned char)s[i]);
		hex += is_hex((unsigned char)s[i]);
	}
	if (digits == n)
		return 1;				/* 42 */
	if (n == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' &&
	    hex == 32)
		return 1;				/* a UUID */
	if (hex == n && (n >= 16 || (n >= 8 && digits > 0)))
		return 1;				/* a hex digest or object id */
	if (n >= 6 && digits * 2 >= n)
		return 1;				/* 2024-01-31, 123abc456 */
	return looks_like_secret(s, n);
}

/* Does the path match a pattern?  ":x" matches one segment, a final "*" any rest. */
static int matches(const char *pat, const char *path, size_t n)
{
	size_t i = 0;

	while (*pat) {
		if (*pat == '/' ) {
			if (i >= n || path[i] != '/')
				return 0;
			pat++;
			i++;
			continue;
		}
		if (*pat == '*')
			return 1;
		if (*pat == ':') {
			size_t seg = 0;

			while (*pat && *pat != '/')
				pat++;
			while (i < n && path[i] != '/') {
				i++;
				seg++;
			}
			if (seg == 0)
				return 0;
			continue;
		}
		if (i >= n || path[i] != *pat)
			return 0;
		pat++;
		i++;
	}
	return i == n;
}

/* Append a segment, percent-encoding anything that is not plainly printable. */
static size_t put_segment(char *out, size_t at, size_t cap, const char *s, size_t n)
{
	static const char hexd[] = "0123456789ABCDEF";
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
			if (at + 1 >= cap)
				return cap;
			out[at++] = (char)c;
		} else {
			if (at + 3 >= cap)
				return cap;
			out[at++] = '%';
			out[at++] = hexd[c >> 4];
			out[at++] = hexd[c & 15];
		}
	}
	return at;
}

size_t route_name(const struct config *cf, const char *target, size_t len, char *out,
    size_t outlen)
{
	const char *path = target, *end;
	char clean[4 * SHM_ROUTE_LEN];
	size_t n, at = 0, depth = 0, cap = outlen < SHM_ROUTE_LEN ? outlen : SHM_ROUTE_LEN;
	unsigned k;

	/* absolute-form: scheme://authority/path */
	if (len > 0 && path[0] != '/') {
		const char *sep = memchr(target, ':', len);

		if (sep == NULL || (size_t)(sep - target) + 3 > len || sep[1] != '/' || sep[2] != '/')
			return 0;
		path = memchr(sep + 3, '/', len - (size_t)(sep + 3 - target));
		if (path == NULL) {
			memcpy(out, "/", 2);
			return 1;
		}
	}
	end = target + len;
	n = (size_t)(end - path);
	/* The query and any fragment are dropped here, before anything is stored, and so are
	 * path parameters (";jsessionid=..."): they carry sessions. */
	for (k = 0, at = 0; k < n && path[k] != '?' && path[k] != '#'; k++) {
		if (path[k] == ';') {
			while (k + 1 < n && path[k + 1] != '/' && path[k + 1] != '?' && path[k + 1] != '#')
				k++;
			continue;
		}
		if (at == sizeof(clean))
			break;	/* long past what a route keeps: the rest cannot show */
		clean[at++] = path[k];
	}
	path = clean;
	n = at;
	at = 0;

	for (k = 0; k < cf->cf_npatterns; k++)
		if (matches(cf->cf_patterns[k], path, n)) {
			size_t pl = strlen(cf->cf_patterns[k]);

			memcpy(out, cf->cf_patterns[k], pl + 1);
			return pl;
		}

	while (n > 0) {
		const char *seg;
		size_t sn = 0, was = at;

		/* path[0] is '/' */
		seg = path + 1;
		while (sn < n - 1 && seg[sn] != '/')
			sn++;
		if (depth == ROUTE_DEPTH) {
			at = put_segment(out, at, cap, "/*", 2);
			break;
		}
		at = put_segment(out, at, cap, "/", 1);
		if (looks_like_id(seg, sn))
			at = put_segment(out, at, cap, ":id", 3);
		else
			at = put_segment(out, at, cap, seg, sn);
		if (at >= cap - 1) {
			/* Too long: end at the last whole segment. */
			at = put_segment(out, was, cap, "/*", 2);
			break;
		}
		depth++;
		path += sn + 1;
		n -= sn + 1;
	}
	if (at == 0)
		out[at++] = '/';
	out[at] = '\0';
	return at;
}

/* ---- the worker's table ---- */

#define INDEX_SIZE 2048		/* > 2 * SHM_ROUTES: open addressing stays short */

static struct shm_slot *route_slot;
static unsigned route_limit;
static uint16_t route_hash[INDEX_SIZE];	/* 1 + index in the slot, 0: empty */

/* The worker's recent paths and their routes: naming a path costs a few hundred
 * instructions, and clients ask for the same paths again and again.  Only the path is kept
 * (never the query), in this worker's private memory. */
#define CACHE_SIZE 64
#define CACHE_PATH 96

struct route_cached {
	uint8_t rc_len;			/* 0: empty */
	uint16_t rc_route;
	char rc_path[CACHE_PATH];
};

static struct route_cached route_cache[CACHE_SIZE];

static unsigned hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h & (INDEX_SIZE - 1);
}

/* Position for name in the index: where it is, or the empty place where it would go. */
static unsigned find(const char *name, size_t n, int *found)
{
	unsigned h = hash(name, n);

	for (;;) {
		unsigned at = route_hash[h];

		if (at == 0) {
			*found = 0;
			return h;
		}
		if (strncmp(route_slot->sl_routes[at - 1], name, n) == 0 &&
		    route_slot->sl_routes[at - 1][n] == '\0') {
			*found = 1;
			return at - 1;
		}
		h = (h + 1) & (INDEX_SIZE - 1);
	}
}

void route_attach(struct shm_slot *sl, unsigned max_routes)
{
	unsigned i, n = atomic_load_explicit(&sl->sl_nroutes, memory_order_relaxed);
	int found;

	route_slot = sl;
	route_limit = max_routes + 1;	/* and "other" */
	memset(route_hash, 0, sizeof(route_hash));
	memset(route_cache, 0, sizeof(route_cache));
	for (i = 1; i < n; i++) {
		size_t len = strlen(sl->sl_routes[i]);
		unsigned h = find(sl->sl_routes[i], len, &found);

		if (!found)
			route_hash[h] = (uint16_t)(i + 1);
	}
}

/* The index of a route name in this slot's table, added if it is new. */
static unsigned intern(const char *name, size_t n)
{
	unsigned at;
	int found, idx;

	if (n == 0)
		return SHM_ROUTE_OTHER;
	at = find(name, n, &found);
	if (found)
		return at;
	idx = shm_stats_route_add(route_slot, name, n, route_limit);
	if (idx < 0)
		return SHM_ROUTE_OTHER;
	route_hash[at] = (uint16_t)(idx + 1);
	return (unsigned)idx;
}

static unsigned name_and_add(const struct config *cf, const char *target, size_t len)
{
	char name[SHM_ROUTE_LEN];

	return intern(name, route_name(cf, target, len, name, sizeof(name)));
}

unsigned route_intern(const char *name)
{
	size_t n = strnlen(name, SHM_ROUTE_LEN);

	return n == SHM_ROUTE_LEN ? SHM_ROUTE_OTHER : intern(name, n);
}

const char *route_text(unsigned route)
{
	if (route == SHM_ROUTE_OTHER ||
	    route >= atomic_load_explicit(&route_slot->sl_nroutes, memory_order_relaxed))
		return "";
	return route_slot->sl_routes[route];
}

unsigned route_index(const struct config *cf, const char *target, size_t len)
{
	const char *q = memchr(target, '?', len);
	size_t plen = q ? (size_t)(q - target) : len;
	struct route_cached *rc;
	unsigned r;

	if (plen == 0 || plen >= CACHE_PATH || memchr(target, '#', plen) != NULL)
		return name_and_add(cf, target, len);
	rc = &route_cache[(plen * 31 + (unsigned char)target[plen - 1] * 7 +
	    (unsigned char)target[plen / 2]) % CACHE_SIZE];
	if (rc->rc_len == plen && memcmp(rc->rc_path, target, plen) == 0)
		return rc->rc_route;
	r = name_and_add(cf, target, plen);
	rc->rc_len = (uint8_t)plen;
	rc->rc_route = (uint16_t)r;
	memcpy(rc->rc_path, target, plen);
	return r;
}

/* ---- a request's path, for the access log ---- */

size_t route_redact(const char *target, size_t len, char *out, size_t outlen)
{
	static const char hidden[] = "\xe2\x80\xa6";	/* U+2026 */
	size_t at = 0, i = 0, q;

#define PUT(p, n) do { if (at + (n) < outlen) { memcpy(out + at, (p), (n)); at += (n); } } while (0)
	if (outlen == 0)
		return 0;
	for (q = 0; q < len && target[q] != '?' && target[q] != '#'; q++)
		;
	/* the path: each segment as it is, unless it looks like a credential */
	while (i < q) {
		size_t e = i;

		while (e < q && target[e] != '/')
			e++;
		if (e > i && looks_like_secret(target + i, e - i))
			PUT(hidden, 3);
		else
			PUT(target + i, e - i);
		if (e < q)
			PUT("/", 1);
		i = e + 1;
	}
	/* the query: every key, no value */
	if (q < len && target[q] == '?') {
		PUT("?", 1);
		for (i = q + 1; i < len && target[i] != '#';) {
			size_t e = i, eq;

			while (e < len && target[e] != '&' && target[e] != '#')
				e++;
			for (eq = i; eq < e && target[eq] != '='; eq++)
				;
			if (eq > i && looks_like_secret(target + i, eq - i))
				PUT(hidden, 3);
			else
				PUT(target + i, eq - i);
			if (eq < e) {
				PUT("=", 1);
				PUT(hidden, 3);
			}
			if (e < len && target[e] == '&')
				PUT("&", 1);
			i = e < len && target[e] == '&' ? e + 1 : e;
		}
	}
#undef PUT
	out[at] = '\0';
	return at;
}
