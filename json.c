/* json.c: a small JSON reader for the subcommands (contract in include/json.h): recursive
 * descent over the text, one node per value, strings decoded into their own allocation.
 * It touches nothing but the text it is given and the tree it returns. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* Deeper nesting is refused: recursion is bounded by this, not by the stack, whatever a
 * server (or something pretending to be one on the metrics port) sends. */
#define DEPTH_MAX 64

/* The text is not NUL-terminated (it is a response body): every read is checked against
 * end, never against a terminator. */
struct reader {
	const char *p, *end;
	int depth;
};

static void skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

/* true, false, null: the whole word, or the value is malformed. */
static int literal(struct reader *r, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return -1;
	r->p += n;
	return 0;
}

/* The four hex digits of a \u escape, either case. */
static int hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++) {
		char c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
			v |= (unsigned)((c | 0x20) - 'a' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

/* A code point (at most U+10FFFF: the decoder never makes more) as UTF-8; the bytes put. */
static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A string, the reader at its opening quote: decoded into a new allocation (its bytes never
 * outnumber the text's), or NULL. */
static char *string(struct reader *r)
{
	const char *p = r->p + 1;
	char *out, *o;

	out = malloc((size_t)(r->end - p) + 1);
	if (out == NULL)
		return NULL;
	for (o = out; p < r->end && *p != '"'; p++) {
		unsigned cp, lo;

		if ((unsigned char)*p < 0x20)
			goto bad;
		if (*p != '\\') {
			*o++ = *p;
			continue;
		}
		if (++p == r->end)
			goto bad;
		switch (*p) {
		case '"': case '\\': case '/': *o++ = *p; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if (r->end - p < 5 || hex4(p + 1, &cp) == -1)
				goto bad;
			p += 4;
			/* a surrogate pair is one code point; a lone half becomes U+FFFD */
			if (cp >= 0xd800 && cp < 0xdc00 && r->end - p >= 7 && p[1] == '\\' &&
			    p[2] == 'u' && hex4(p + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
				p += 6;
			} else if (cp >= 0xd800 && cp < 0xe000) {
				cp = 0xfffd;
			}
			/* \u escapes are 6 bytes, their UTF-8 at most 4 */
			o += put_utf8(o, cp);
			break;
		default:
			goto bad;
		}
	}
	if (p == r->end)
		goto bad;
	*o = '\0';
	r->p = p + 1;
	return out;
bad:
	free(out);
	return NULL;
}

static struct json *value(struct reader *r);

/* Objects keep their members in order, duplicates too; json_get() finds the first, which
 * is all a reader of our own /stats.json needs. */
/* The elements of an array or the members of an object, the reader past its opening. */
static int elements(struct reader *r, struct json *v, char close)
{
	struct json **tail = &v->j_child, *e;
	char *key = NULL;

	skip_space(r);
	if (r->p < r->end && *r->p == close) {
		r->p++;
		return 0;
	}
	for (;;) {
		skip_space(r);
		if (close == '}') {
			if (r->p == r->end || *r->p != '"' || (key = string(r)) == NULL)
				return -1;
			skip_space(r);
			if (r->p == r->end || *r->p++ != ':') {
				free(key);
				return -1;
			}
		}
		e = value(r);
		if (e == NULL) {
			free(key);
			return -1;
		}
		e->j_key = key;
		key = NULL;
		*tail = e;
		tail = &e->j_next;
		skip_space(r);
		if (r->p == r->end)
			return -1;
		if (*r->p == close) {
			r->p++;
			return 0;
		}
		if (*r->p++ != ',')
			return -1;
	}
}

/* One value and what it contains; NULL when it is malformed, truncated, too deep, or
 * memory ran out (the caller cannot tell which, and need not: it shows "bad answer"). */
static struct json *value(struct reader *r)
{
	struct json *v;
	char *end;

	skip_space(r);
	if (r->p == r->end || r->depth >= DEPTH_MAX)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return NULL;
	switch (*r->p) {
	case '{':
	case '[':
		v->j_type = *r->p == '{' ? JSON_OBJECT : JSON_ARRAY;
		r->p++;
		r->depth++;
		if (elements(r, v, v->j_type == JSON_OBJECT ? '}' : ']') == -1)
			goto bad;
		r->depth--;
		return v;
	case '"':
		v->j_type = JSON_STRING;
		if ((v->j_str = string(r)) == NULL)
			goto bad;
		return v;
	case 't':
		v->j_type = JSON_TRUE;
		return literal(r, "true") == 0 ? v : (free(v), NULL);
	case 'f':
		v->j_type = JSON_FALSE;
		return literal(r, "false") == 0 ? v : (free(v), NULL);
	case 'n':
		v->j_type = JSON_NULL;
		return literal(r, "null") == 0 ? v : (free(v), NULL);
	default:
		if (*r->p != '-' && (*r->p < '0' || *r->p > '9'))
			goto bad;
		{
			/* strtod needs a terminated copy: the text need not end after the number */
			char num[64];
			size_t k = 0;

			while (r->p + k < r->end && k + 1 < sizeof(num) &&
			    strchr("+-.eE0123456789", r->p[k]) != NULL && r->p[k] != '\0')
				k++;
			memcpy(num, r->p, k);
			num[k] = '\0';
			v->j_type = JSON_NUMBER;
			v->j_num = strtod(num, &end);
			if (end == num || *end != '\0')
				goto bad;
			r->p += k;
		}
		return v;
	}
bad:
	json_free(v);
	return NULL;
}

/* The whole text must be one value: trailing bytes (a second object, a cut chunk) make it
 * malformed rather than half read. */
struct json *json_parse(const char *text, size_t n)
{
	struct reader r = { text, text + n, 0 };
	struct json *v = value(&r);

	skip_space(&r);
	if (v != NULL && r.p != r.end) {
		json_free(v);
		return NULL;
	}
	return v;
}

/* A node, its children and its following siblings: the tree is freed from any node the
 * parser returned. */
void json_free(struct json *v)
{
	while (v != NULL) {
		struct json *next = v->j_next;

		json_free(v->j_child);
		free((char *)(uintptr_t)v->j_key);
		free((char *)(uintptr_t)v->j_str);
		free(v);
		v = next;
	}
}

const struct json *json_get(const struct json *v, const char *key)
{
	const struct json *e;

	if (v == NULL || v->j_type != JSON_OBJECT)
		return NULL;
	for (e = v->j_child; e != NULL; e = e->j_next)
		if (strcmp(e->j_key, key) == 0)
			return e;
	return NULL;
}

/* The readers take NULL and the wrong type alike and answer the default: a field that a
 * newer or older sidemeter does not send shows as missing, not as a crash. */
double json_num(const struct json *v, double dflt)
{
	return v != NULL && v->j_type == JSON_NUMBER ? v->j_num : dflt;
}

const char *json_text(const struct json *v, const char *dflt)
{
	return v != NULL && v->j_type == JSON_STRING ? v->j_str : dflt;
}
