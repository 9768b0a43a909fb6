/* reader.c: unit tests of what reads outside input in the subcommands and the tap: the JSON
 * reader (sidemeter's own pages, and whatever else answers on the port) and the tap's
 * filters (the query of anyone who reaches the metrics port). */
#include <string.h>

#include "json.h"
#include "labels.h"
#include "tap.h"
#include "unit.h"

static void bad_json(const char *text)
{
	struct json *j = json_parse(text, strlen(text));

	CHECK(j == NULL, "expected [%s] to be refused", text);
	json_free(j);
}

static void json_string_is(const char *text, const char *want)
{
	struct json *j = json_parse(text, strlen(text));
	const char *got = json_text(j, NULL);

	CHECK(got != NULL && strcmp(got, want) == 0, "%s: expected [%s], got [%s]", text, want,
	    got ? got : "(none)");
	json_free(j);
}

static void json_tests(void)
{
	const char *page = "{\"a\":1.5,\"s\":\"x\",\"o\":{\"n\":null,\"t\":true,\"f\":false},"
	    "\"l\":[1,2,{\"k\":-3e2}] ,\"e\":{},\"ea\":[]}";
	struct json *j = json_parse(page, strlen(page));
	const struct json *l;
	char deep[300];
	unsigned i;

	CHECK(j != NULL, "the page parses");
	CHECK(json_num(json_get(j, "a"), 0) == 1.5, "a");
	CHECK(strcmp(json_text(json_get(j, "s"), ""), "x") == 0, "s");
	CHECK(json_get(json_get(j, "o"), "t")->j_type == JSON_TRUE, "o.t");
	CHECK(json_get(json_get(j, "o"), "n")->j_type == JSON_NULL, "o.n");
	CHECK(json_num(json_get(j, "s"), 7) == 7, "a string is no number");
	CHECK(json_get(j, "missing") == NULL, "missing");
	CHECK(json_get(json_get(j, "a"), "x") == NULL, "a number has no members");
	l = json_get(j, "l");
	CHECK(l && l->j_child && l->j_child->j_next && l->j_child->j_next->j_next, "three elements");
	CHECK(json_num(json_get(l->j_child->j_next->j_next, "k"), 0) == -300, "l[2].k");
	CHECK(json_get(j, "e")->j_child == NULL && json_get(j, "ea")->j_child == NULL, "empties");
	json_free(j);

	json_string_is("\"a\\\"b\\\\c\\/d\\n\"", "a\"b\\c/d\n");
	json_string_is("\"\\u00e9\\u2026\"", "\xc3\xa9\xe2\x80\xa6");
	json_string_is("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");	/* a surrogate pair */
	json_string_is("\"\\ud83d!\"", "\xef\xbf\xbd!");		/* a lone half */
	json_string_is("  \"\"  ", "");

	bad_json("");
	bad_json("{");
	bad_json("{\"a\":}");
	bad_json("{\"a\" 1}");
	bad_json("{a:1}");
	bad_json("[1,]");
	bad_json("[1 2]");
	bad_json("\"open");
	bad_json("\"bad \\x escape\"");
	bad_json("\"\\u12\"");
	bad_json("\"raw\ncontrol\"");
	bad_json("tru");
	bad_json("nul");
	bad_json("-");
	bad_json("1 2");
	bad_json("{} x");
	for (i = 0; i < sizeof(deep) - 1; i++)
		deep[i] = '[';
	deep[sizeof(deep) - 1] = '\0';
	bad_json(deep);		/* deeper than 64: refused, not a stack overflow */
}

static int filter_ok(const char *q, struct tap_filter *f)
{
	char why[256];

	return tap_parse_filter(q, strlen(q), f, why, sizeof(why)) == 0;
}

static void filter_refused(const char *q, const char *want)
{
	struct tap_filter f;
	char why[256] = "";

	CHECK(tap_parse_filter(q, strlen(q), &f, why, sizeof(why)) == -1 && strstr(why, want),
	    "%s: expected a refusal saying [%s], got [%s]", q, want, why);
}

static void tap_tests(void)
{
	struct tap_filter f;
	struct tap_facts t = { "/users/:id", METHOD_GET, 404, 5000000 };

	CHECK(filter_ok("", &f) && tap_matches(&f, &t), "no filter: everything");
	CHECK(filter_ok("code=4xx", &f) && tap_matches(&f, &t), "4xx");
	CHECK(filter_ok("code=5xx,404", &f) && tap_matches(&f, &t), "5xx,404");
	CHECK(filter_ok("code=5xx,403", &f) && !tap_matches(&f, &t), "5xx,403");
	CHECK(filter_ok("route=%2Fusers%2F%3Aid&method=get,POST", &f) && tap_matches(&f, &t),
	    "route percent-encoded, method in any case");
	CHECK(filter_ok("route=/users", &f) && !tap_matches(&f, &t), "a route is whole, not a prefix");
	CHECK(filter_ok("min_ms=5", &f) && tap_matches(&f, &t), "min_ms=5");
	CHECK(filter_ok("min_ms=6", &f) && !tap_matches(&f, &t), "min_ms=6");
	CHECK(filter_ok("max_rps=3&&", &f) && f.tf_max_rps == 3, "max_rps, empty items");
	t.tf_route = NULL;
	t.tf_method = -1;
	t.tf_code = 0;
	CHECK(filter_ok("method=GET", &f) && !tap_matches(&f, &t), "no request line: no method");
	CHECK(filter_ok("code=2xx", &f) && !tap_matches(&f, &t), "no status: no class");

	filter_refused("code=600", "neither a status");
	filter_refused("code=99", "neither a status");
	filter_refused("code=4xy", "neither a status");
	filter_refused("code=1,2,3,4,5,6,7,8,9", "neither a status");
	filter_refused("code=200,201,202,203,204,205,206,207,208", "at most 8");
	filter_refused("method=BREW", "not one of the metrics' methods");
	filter_refused("min_ms=-1", "not a number");
	filter_refused("min_ms=1e3", "not a number");
	filter_refused("max_rps=0", "lines a second");
	filter_refused("x=1", "unknown filter 'x'");
	filter_refused("route", "not key=value");
	filter_refused("=1", "not key=value");
	filter_refused("route=a%00b", "holds a NUL");
}

int main(void)
{
	json_tests();
	tap_tests();
	return unit_done("reader");
}
