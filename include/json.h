/* json.h: a small JSON reader for the subcommands (`sidemeter top` reads /stats.json,
 * `sidemeter tap` the tap's lines).  The text becomes a tree of values that json_free()
 * releases; lookups walk it.  Strings are decoded (escapes, \u with surrogates, as UTF-8). */
#ifndef SIDEMETER_JSON_H
#define SIDEMETER_JSON_H

#include <stddef.h>

enum json_type { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY,
	JSON_OBJECT };

struct json {
	enum json_type j_type;
	const char *j_key;		/* a member's name; NULL in an array or at the top */
	const char *j_str;		/* JSON_STRING: NUL-terminated */
	double j_num;			/* JSON_NUMBER */
	struct json *j_child;		/* JSON_ARRAY, JSON_OBJECT: the first element */
	struct json *j_next;		/* the next element of the parent */
};

/* Parse text[n]: the tree, to be released with json_free(), or NULL when the text is not one
 * JSON value (or nests deeper than 64, or memory ran out). */
struct json *json_parse(const char *text, size_t n);
void json_free(struct json *root);

/* A member of an object by name (NULL: none, or v is not an object). */
const struct json *json_get(const struct json *v, const char *key);

/* A number's value, or dflt when v is NULL or not a number. */
double json_num(const struct json *v, double dflt);

/* A string's text, or dflt when v is NULL or not a string. */
const char *json_text(const struct json *v, const char *dflt);

#endif
