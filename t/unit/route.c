/* route.c: unit tests of route naming and the worker's route table. */
#include <string.h>

#include "route.h"
#include "unit.h"

static struct config cf;

static void name_is(const char *target, const char *want)
{
	char out[SHM_ROUTE_LEN];
	size_t n = route_name(&cf, target, strlen(target), out, sizeof(out));

	if (want == NULL) {
		CHECK(n == 0, "%s: expected no route, got %s", target, out);
		return;
	}
	CHECK(n == strlen(want) && strcmp(out, want) == 0, "%s: expected %s, got %s", target, want,
	    n ? out : "(none)");
}

int main(void)
{
	char err[256], path[64];
	int fd;
	struct shm_header *sh = shm_stats_map(1, &fd, err, sizeof(err));
	unsigned i, a, b;

	name_is("/", "/");
	name_is("/index.html", "/index.html");
	name_is("/api/users/42", "/api/users/:id");
	name_is("/api/users/42/orders?token=s3cr3t&x=1", "/api/users/:id/orders");
	name_is("/search?q=password", "/search");
	name_is("/a#frag", "/a");
	name_is("/files/550e8400-e29b-41d4-a716-446655440000/raw", "/files/:id/raw");
	name_is("/objects/5f2b6c9e8a1d4e3f9b0c7a21", "/objects/:id");
	name_is("/t/eyJhbGciOiJIUzI1NiJ9abc123XYZ", "/t/:id");
	name_is("/reports/2024-01-31", "/reports/:id");
	name_is("/v2/page2/about-us", "/v2/page2/about-us");
	name_is("/a/b/c/d/e/f/g/h", "/a/b/c/d/e/f/*");
	name_is("/caf\xc3\xa9/\"q\"\\", "/caf%C3%A9/%22q%22%5C");
	name_is("/trailing/", "/trailing/");
	name_is("http://example.org/x/1?y", "/x/:id");
	name_is("http://example.org", "/");
	name_is("example.org:443", NULL);

	/* credentials and identifiers of every usual shape never reach a route */
	name_is("/login;jsessionid=S3CR3T-SESSION", "/login");
	name_is("/login;jsessionid=S3CR3T-SESSION?x=y#f", "/login");
	name_is("/app;jsessionid=0A1B2C/home;v=1", "/app/home");
	name_is("/a;b", "/a");
	name_is("/;x=1", "/");
	name_is("/t/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
	    "/t/:id");
	name_is("/keys/sk_live_abcdefghijklmnopqrstuvwx", "/keys/:id");
	name_is("/keys/sk-proj-abcdefghijklmnopqrst", "/keys/:id");
	name_is("/gh/ghp_16C7e42F292c6912E7710c838347Ae178B4a", "/gh/:id");
	name_is("/gl/glpat-xxxxxxxxxxxxxxxxxxxx", "/gl/:id");
	name_is("/slack/xoxb-abcdefghijkl", "/slack/:id");
	name_is("/aws/AKIAIOSFODNN7EXAMPLE", "/aws/:id");
	name_is("/g/AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe", "/g/:id");
	name_is("/reset/Xk9mQ2vL8nR4tY7w", "/reset/:id");
	name_is("/s/AbCdEfGhIjKlMnOpQrSt", "/s/:id");
	name_is("/s/QmFzZTY0U2VjcmV0", "/s/:id");
	name_is("/files/c2VjcmV0LXBhc3N3b3Jk", "/files/:id");
	name_is("/share/5f4dcc3b5aa765d61d8327deb882cf99", "/share/:id");
	name_is("/commit/a1b2c3d4", "/commit/:id");
	name_is("/u/jane.doe@example.com/profile", "/u/:id/profile");
	name_is("/auth/token=abcdef", "/auth/:id");
	name_is("/auth/user:hunter2", "/auth/:id");
	name_is("/x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "/x/:id");
	name_is("http://user:hunter2@example.org/x", "/x");
	/* ... and names stay names */
	name_is("/api/getUserProfileSettings", "/api/getUserProfileSettings");
	name_is("/docs/XMLHttpRequestHandler", "/docs/XMLHttpRequestHandler");
	name_is("/static/app.min.js", "/static/app.min.js");
	name_is("/about-our-company-history", "/about-our-company-history");
	name_is("/v1/health", "/v1/health");
	name_is("*", NULL);

	/* patterns win, in the order given */
	cf.cf_npatterns = 3;
	strcpy(cf.cf_patterns[0], "/api/users/:user/orders");
	strcpy(cf.cf_patterns[1], "/static/*");
	strcpy(cf.cf_patterns[2], "/p/:a/:b");
	name_is("/api/users/bob/orders?all=1", "/api/users/:user/orders");
	name_is("/api/users/bob/orders/7", "/api/users/bob/orders/:id");
	name_is("/static/css/site.css", "/static/*");
	name_is("/p/x/y", "/p/:a/:b");
	name_is("/p/x", "/p/x");
	name_is("/p/x/", "/p/x/");
	cf.cf_npatterns = 0;

	/* the worker's table: the same name, the same index; a full table gives "other" */
	CHECK(sh != NULL, "map: %s", err);
	route_attach(shm_stats_slot(sh, 0), 3);
	a = route_index(&cf, "/x/1", 4);
	b = route_index(&cf, "/x/2?q", 6);
	CHECK(a == 1 && b == 1, "same route, same index: %u %u", a, b);
	CHECK_EQ_U("second route", 2, route_index(&cf, "/y", 2));
	CHECK_EQ_U("third route", 3, route_index(&cf, "/z", 2));
	CHECK_EQ_U("past the limit: other", SHM_ROUTE_OTHER, route_index(&cf, "/w", 2));
	CHECK_EQ_U("known still found", 2, route_index(&cf, "/y", 2));
	/* a new occupant finds the table as it was */
	route_attach(shm_stats_slot(sh, 0), 3);
	CHECK_EQ_U("after attach", 3, route_index(&cf, "/z", 2));
	/* 5000 distinct paths stay within the limit */
	route_attach(shm_stats_slot(sh, 0), 100);
	for (i = 0; i < 5000; i++) {
		snprintf(path, sizeof(path), "/distinct-%u/page", i);
		route_index(&cf, path, strlen(path));
	}
	CHECK_EQ_U("routes kept", 101, atomic_load(&shm_stats_slot(sh, 0)->sl_nroutes));
	return unit_done("route");
}
