/* The remote client against a real HTTP server: tests/tools/fake_panel.py, a scripted
 * test double of the panel's remote API. It records every request it gets (method, path,
 * headers, body) before answering, so each test checks both what went over the wire
 * (headers and bodies exactly as pterodactyl-protocol.md §1.3 and §3 say) and how many
 * times (retries on transient failures only, inside the budget).
 *
 * Budgets and timeouts are short (well under a second or two) to keep the suite fast;
 * the lower bounds checked follow from the backoff caps set in make_client. */
#include "remote_client.h"
#include "testutil.h"

#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define UUID1 "4a2b3c4d-1111-4222-8333-944455556666"
#define UUID2 "5b2b3c4d-1111-4222-8333-944455556666"
#define SHA1_HEX "0123456789abcdef0123456789abcdef01234567"

/* A port nothing listens on: one a fake panel had, and gave back. */
static int dead_port(const char *dir)
{
	struct tu_panel p;
	const char *steps[] = { "204", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	int port = p.port;
	tu_panel_stop(&p);
	return port;
}

static const char *req_str(json_t *req, const char *key)
{
	return json_string_value(json_object_get(req, key));
}

static const char *req_header(json_t *req, const char *name)
{
	return json_string_value(json_object_get(json_object_get(req, "headers"), name));
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the client ---- */

static struct remote_client *make_client(int port, unsigned budget_ms, const char *outbox,
					 const atomic_int *cancel)
{
	char url[64];
	/* trailing '/' on purpose: the client must drop it (§1.3) */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", port);
	struct remote_client_config cfg = {
		.panel_url = url,
		.token_id = "tid",
		.token = "s3cret",
		.version = "1.2.3",
		.timeout_ms = 1000,
		.connect_timeout_ms = 500,
		.retry_budget_ms = budget_ms,
		.retry_initial_ms = 50,
		.retry_max_interval_ms = 300,
		.cancel = cancel,
		.outbox_dir = outbox,
	};
	struct remote_client *c = NULL;
	ck_assert_int_eq(remote_client_new(&cfg, &c), 0);
	return c;
}

static void check_headers(json_t *req)
{
	ck_assert_str_eq(req_header(req, "authorization"), "Bearer tid.s3cret");
	ck_assert_str_eq(req_header(req, "user-agent"), "Pterodactyl Wings/v1.2.3 (id:tid)");
	ck_assert_str_eq(req_header(req, "accept"), "application/vnd.pterodactyl.v1+json");
	ck_assert_str_eq(req_header(req, "content-type"), "application/json");
	ck_assert_ptr_null(req_header(req, "expect"));
}

static json_t *req_body(json_t *req)
{
	return json_object_get(req, "body");
}

static void check_failure_body(json_t *b)
{
	/* How Wings reports a failure: its Go zero values, parts null. */
	ck_assert_int_eq(json_object_size(b), 5);
	ck_assert(json_is_false(json_object_get(b, "successful")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum")), "");
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum_type")), "");
	ck_assert(json_is_integer(json_object_get(b, "size")));
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 0);
	ck_assert(json_is_null(json_object_get(b, "parts")));
}

static const struct remote_part two_parts[] = { { "\"etag-one\"", 1 }, { "\"etag-two\"", 2 } };

/* ---- wire format ---- */

START_TEST(test_wire_format)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	const char *steps[] = { "204", "204", "204", "204", "204", "parts:5242880", "204", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 2000, NULL, NULL);
	struct remote_status st;

	struct backup_report s3 = { true, SHA1_HEX, 10485761, two_parts, 2, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &s3, &st), 0);
	ck_assert_int_eq(st.http_status, 204);
	ck_assert_uint_eq(st.attempts, 1);
	ck_assert(!st.spooled);
	struct backup_report local = { true, SHA1_HEX, 1234, NULL, 0, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &local, &st), 0);
	/* a failure report ignores whatever else the caller filled in */
	struct backup_report fail = { false, "junk", 99, two_parts, 2, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &fail, &st), 0);
	ck_assert_int_eq(remote_restore_report(c, UUID2, true, &st), 0);
	ck_assert_int_eq(remote_restore_report(c, UUID2, false, NULL), 0);
	struct remote_part_urls urls;
	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, 12582912, &urls, &st), 0);
	remote_part_urls_free(&urls);

	/* The default version is the build's. */
	struct remote_client_config cfg = { .panel_url = "http://127.0.0.1", .token_id = "tid",
					    .token = "s3cret" };
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", p.port);
	cfg.panel_url = url;
	struct remote_client *c2 = NULL;
	ck_assert_int_eq(remote_client_new(&cfg, &c2), 0);
	ck_assert_int_eq(remote_restore_report(c2, UUID2, true, NULL), 0);
	remote_client_free(c2);

	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 7);
	for (size_t i = 0; i < 6; i++)
		check_headers(json_array_get(reqs, i));

	json_t *r = json_array_get(reqs, 0), *b = req_body(r);
	ck_assert_str_eq(req_str(r, "method"), "POST");
	ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID1);
	ck_assert_int_eq(json_object_size(b), 5);
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum")), SHA1_HEX);
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum_type")), "sha1");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 10485761);
	json_t *parts = json_object_get(b, "parts");
	ck_assert_uint_eq(json_array_size(parts), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *part = json_array_get(parts, i);
		ck_assert_int_eq(json_object_size(part), 2);
		ck_assert_str_eq(json_string_value(json_object_get(part, "etag")),
				 two_parts[i].etag);
		ck_assert_int_eq(json_integer_value(json_object_get(part, "part_number")),
				 (int)i + 1);
	}

	b = req_body(json_array_get(reqs, 1));
	ck_assert_int_eq(json_object_size(b), 5);
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 1234);
	ck_assert(json_is_null(json_object_get(b, "parts")));

	check_failure_body(req_body(json_array_get(reqs, 2)));

	r = json_array_get(reqs, 3);
	ck_assert_str_eq(req_str(r, "method"), "POST");
	ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID2 "/restore");
	ck_assert_str_eq(req_str(r, "raw"), "{\"successful\":true}");
	ck_assert_str_eq(req_str(json_array_get(reqs, 4), "raw"), "{\"successful\":false}");

	r = json_array_get(reqs, 5);
	ck_assert_str_eq(req_str(r, "method"), "GET");
	ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID1 "?size=12582912");
	ck_assert_str_eq(req_str(r, "raw"), "");

	ck_assert_str_eq(req_header(json_array_get(reqs, 6), "user-agent"),
			 "Pterodactyl Wings/v" AMBER_VERSION " (id:tid)");

	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct remote_client *c = NULL;
	struct remote_client_config cfg = { .panel_url = "http://127.0.0.1:1", .token_id = "a.b",
					    .token = "s" };
	ck_assert_int_eq(remote_client_new(&cfg, &c), -EINVAL);
	cfg.token_id = "tid";
	cfg.token = "";
	ck_assert_int_eq(remote_client_new(&cfg, &c), -EINVAL);
	cfg.token = "has space";
	ck_assert_int_eq(remote_client_new(&cfg, &c), -EINVAL);
	cfg.token = "s";
	cfg.panel_url = NULL;
	ck_assert_int_eq(remote_client_new(&cfg, &c), -EINVAL);

	/* Nothing listens on port 1: had a request gone out, these would be -EAGAIN. */
	cfg.panel_url = "http://127.0.0.1:1";
	cfg.no_retry = true;
	ck_assert_int_eq(remote_client_new(&cfg, &c), 0);
	struct remote_status st;
	struct backup_report ok = { true, SHA1_HEX, 1, NULL, 0, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, "../etc", &ok, &st), -EINVAL);
	ck_assert_uint_eq(st.attempts, 0);
	struct backup_report bad_sum = { true, "xyz", 1, NULL, 0, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &bad_sum, &st), -EINVAL);
	struct remote_part_urls urls;
	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, 0, &urls, &st), -EINVAL);
	ck_assert_int_eq(remote_backup_report(c, UUID1, &ok, &st), -EAGAIN);
	ck_assert_uint_eq(st.attempts, 1);
	ck_assert_int_eq(st.http_status, 0);
	remote_client_free(c);
}
END_TEST

/* ---- retries ---- */

static void run_retry_case(const char *const *steps, size_t want_requests)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 5000, NULL, NULL);
	struct remote_status st;
	struct backup_report ok = { true, SHA1_HEX, 77, NULL, 0, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &ok, &st), 0);
	ck_assert_uint_eq(st.attempts, want_requests);
	ck_assert_int_eq(st.http_status, 204);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), want_requests);
	/* every attempt is the same request */
	const char *raw0 = req_str(json_array_get(reqs, 0), "raw");
	for (size_t i = 0; i < want_requests; i++) {
		check_headers(json_array_get(reqs, i));
		ck_assert_str_eq(req_str(json_array_get(reqs, i), "raw"), raw0);
	}
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}

START_TEST(test_retry_5xx)
{
	const char *steps[] = { "503", "500", "502", "204", NULL };
	run_retry_case(steps, 4);
}
END_TEST

START_TEST(test_retry_reset)
{
	const char *steps[] = { "close", "close", "204", NULL };
	run_retry_case(steps, 3);
}
END_TEST

START_TEST(test_retry_timeout)
{
	/* the first attempt times out (1 s) while the panel sleeps */
	const char *steps[] = { "slow:3", "204", NULL };
	run_retry_case(steps, 2);
}
END_TEST

START_TEST(test_retry_connection_refused)
{
	char *dir = tu_mkdtemp("remote");
	int port = dead_port(dir);
	struct tu_panel p;
	const char *steps[] = { "204", NULL };
	/* The panel comes up 0.7 s after the first attempt was refused. */
	tu_panel_start(&p, dir, port, 0.7, steps);
	struct remote_client *c = make_client(port, 5000, NULL, NULL);
	struct remote_status st;
	ck_assert_int_eq(remote_restore_report(c, UUID1, true, &st), 0);
	ck_assert_uint_ge(st.attempts, 2);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 1);
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_no_retry_on_4xx)
{
	static const struct {
		const char *step;
		long status;
		int rc;
		const char *detail;
	} cases[] = {
		{ "400", 400, -EINVAL, "Bad request." },
		{ "401", 401, -EACCES, "Authorization header" },
		{ "403", 403, -EPERM, "You are not authorized to access this resource." },
		{ "404", 404, -ENOENT, "could not be found" },
		{ "409", 409, -EEXIST, "already in a completed state" },
		{ "422", 422, -EINVAL, "An error was encountered." },
	};
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/outbox", dir), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tu_panel p;
		const char *steps[] = { cases[i].step, "204", NULL };
		tu_panel_start(&p, dir, 0, 0, steps);
		struct remote_client *c = make_client(p.port, 5000, outbox, NULL);
		struct remote_status st;
		struct backup_report ok = { true, SHA1_HEX, 77, NULL, 0, NULL, NULL };
		int rc = i % 2 ? remote_backup_report(c, UUID1, &ok, &st)
			       : remote_restore_report(c, UUID1, false, &st);
		ck_assert_int_eq(rc, cases[i].rc);
		ck_assert_int_eq(st.http_status, cases[i].status);
		ck_assert_uint_eq(st.attempts, 1);
		ck_assert_msg(strstr(st.detail, cases[i].detail), "detail: %s", st.detail);
		/* permanent refusals are not kept for later */
		ck_assert(!st.spooled);
		json_t *reqs = tu_panel_requests(&p, NULL);
		ck_assert_uint_eq(json_array_size(reqs), 1);
		json_decref(reqs);
		remote_client_free(c);
		tu_panel_stop(&p);
	}
	ck_assert_int_ne(access(outbox, F_OK), 0); /* never even created */
	free(outbox);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_budget_respected)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	const char *steps[] = { "503", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 1500, NULL, NULL);
	struct remote_status st;
	double t0 = now_s();
	ck_assert_int_eq(remote_restore_report(c, UUID1, true, &st), -EAGAIN);
	double dt = now_s() - t0;
	/* The loop stops once elapsed + next delay (<= 300 ms) would pass 1.5 s. */
	ck_assert_msg(dt >= 1.1 && dt < 2.5, "took %.2f s", dt);
	ck_assert_uint_ge(st.attempts, 3);
	ck_assert_int_eq(st.http_status, 503);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), st.attempts);
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_retry_after)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	const char *steps[] = { "429:1", "204", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 3000, NULL, NULL);
	struct remote_status st;
	ck_assert_int_eq(remote_restore_report(c, UUID1, true, &st), 0);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 2);
	double gap = json_real_value(json_object_get(json_array_get(reqs, 1), "t")) -
		     json_real_value(json_object_get(json_array_get(reqs, 0), "t"));
	/* the backoff alone would have come back within 300 ms */
	ck_assert_msg(gap >= 0.95, "second try after %.2f s", gap);
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);

	/* A Retry-After past the budget: give up at once instead of waiting for nothing. */
	const char *steps2[] = { "429:30", "204", NULL };
	tu_panel_start(&p, dir, 0, 0, steps2);
	c = make_client(p.port, 2000, NULL, NULL);
	double t0 = now_s();
	ck_assert_int_eq(remote_restore_report(c, UUID1, true, &st), -EAGAIN);
	ck_assert_msg(now_s() - t0 < 1.0, "waited %.2f s", now_s() - t0);
	ck_assert_int_eq(st.http_status, 429);
	reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 1);
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

struct canceller {
	atomic_int *flag;
	unsigned after_ms;
};

static void *cancel_later(void *arg)
{
	struct canceller *k = arg;
	struct timespec ts = { 0, (long)k->after_ms * 1000000L };
	nanosleep(&ts, NULL);
	atomic_store(k->flag, 1);
	return NULL;
}

START_TEST(test_cancel)
{
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/outbox", dir), 0);
	struct tu_panel p;
	const char *steps[] = { "503:20", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	atomic_int flag = 0;
	/* Retry-After 20 s inside a 30 s budget: only the flag can end the wait early. */
	struct remote_client *c = make_client(p.port, 30000, outbox, &flag);
	struct canceller k = { &flag, 300 };
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, cancel_later, &k), 0);
	struct remote_status st;
	struct backup_report ok = { true, SHA1_HEX, 5, NULL, 0, NULL, NULL };
	double t0 = now_s();
	ck_assert_int_eq(remote_backup_report(c, UUID1, &ok, &st), -ECANCELED);
	ck_assert_msg(now_s() - t0 < 1.5, "cancel took %.2f s", now_s() - t0);
	pthread_join(th, NULL);
	/* a report cut short by shutdown is kept for the next start */
	ck_assert(st.spooled);
	char *spooled = NULL;
	ck_assert_int_ge(asprintf(&spooled, "%s/" UUID1 ".backup.json", outbox), 0);
	ck_assert_int_eq(access(spooled, F_OK), 0);
	free(spooled);
	free(outbox);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- outbox ---- */

static unsigned count_entries(const char *dir)
{
	int st = 0;
	char *out = tu_sh_out(&st, "ls -A '%s' | wc -l", dir);
	unsigned n = (unsigned)atoi(out);
	free(out);
	return n;
}

static char *spool_path(const char *outbox, const char *uuid, const char *kind)
{
	char *p = NULL;
	ck_assert_int_ge(asprintf(&p, "%s/%s.%s.json", outbox, uuid, kind), 0);
	return p;
}

struct cb_log {
	unsigned calls;
	int last_rc;
};

static void count_cb(void *ud, const char *file, const char *uuid, enum remote_report_kind kind,
		     int rc, const struct remote_status *st)
{
	struct cb_log *l = ud;
	ck_assert_ptr_nonnull(file);
	ck_assert_ptr_nonnull(uuid);
	ck_assert_ptr_nonnull(st);
	ck_assert(kind == REMOTE_REPORT_BACKUP || kind == REMOTE_REPORT_RESTORE);
	l->calls++;
	l->last_rc = rc;
}

START_TEST(test_outbox_down_then_up)
{
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/spool", dir), 0);
	int port = dead_port(dir);
	struct remote_client *c = make_client(port, 400, outbox, NULL);

	struct remote_status st;
	struct backup_report s3 = { true, SHA1_HEX, 10485761, two_parts, 2, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &s3, &st), -EAGAIN);
	ck_assert(st.spooled);
	ck_assert_int_eq(st.http_status, 0);
	ck_assert_int_eq(remote_restore_report(c, UUID2, false, &st), -EAGAIN);
	ck_assert(st.spooled);
	char *f1 = spool_path(outbox, UUID1, "backup");
	char *f2 = spool_path(outbox, UUID2, "restore");
	ck_assert_int_eq(access(f1, F_OK), 0);
	ck_assert_int_eq(access(f2, F_OK), 0);
	ck_assert_uint_eq(count_entries(outbox), 2);
	struct stat sb;
	ck_assert_int_eq(stat(outbox, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0700);

	/* Still down: the flush keeps both and stops after the first try. */
	struct remote_outbox_result res;
	ck_assert_int_eq(remote_outbox_flush(c, outbox, NULL, NULL, &res), 0);
	ck_assert_uint_eq(res.kept, 2);
	ck_assert_uint_eq(res.delivered, 0);
	ck_assert_uint_eq(count_entries(outbox), 2);

	struct tu_panel p;
	const char *steps[] = { "204", NULL };
	tu_panel_start(&p, dir, port, 0, steps);
	struct cb_log log = { 0, 1 };
	ck_assert_int_eq(remote_outbox_flush(c, outbox, count_cb, &log, &res), 0);
	ck_assert_uint_eq(res.delivered, 2);
	ck_assert_uint_eq(res.kept + res.rejected + res.corrupt, 0);
	ck_assert_uint_eq(log.calls, 2);
	ck_assert_int_eq(log.last_rc, 0);
	ck_assert_uint_eq(count_entries(outbox), 0);

	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 2);
	/* name order: UUID1's backup report first; bodies exactly what was reported */
	json_t *r = json_array_get(reqs, 0);
	check_headers(r);
	ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID1);
	json_t *b = req_body(r);
	ck_assert_int_eq(json_object_size(b), 5);
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_str_eq(json_string_value(json_object_get(b, "checksum_type")), "sha1");
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 10485761);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_array_get(json_object_get(b, "parts"), 1), "etag")),
			 "\"etag-two\"");
	r = json_array_get(reqs, 1);
	check_headers(r);
	ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID2 "/restore");
	ck_assert_str_eq(req_str(r, "raw"), "{\"successful\":false}");
	json_decref(reqs);

	/* A missing outbox is an empty one. */
	ck_assert_int_eq(remote_outbox_flush(c, "/nonexistent/amber-outbox", NULL, NULL, &res), 0);

	remote_client_free(c);
	tu_panel_stop(&p);
	free(f1);
	free(f2);
	free(outbox);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_outbox_replace)
{
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/spool", dir), 0);
	int port = dead_port(dir);
	struct remote_client *c = make_client(port, 300, outbox, NULL);
	struct remote_status st;

	struct backup_report fail = { false, NULL, 0, NULL, 0, NULL, NULL };
	struct backup_report ok = { true, SHA1_HEX, 4242, NULL, 0, NULL, NULL };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &fail, &st), -EAGAIN);
	ck_assert_int_eq(remote_backup_report(c, UUID1, &ok, &st), -EAGAIN);
	ck_assert_int_eq(remote_restore_report(c, UUID1, true, &st), -EAGAIN);
	/* one file per backup and kind: the newer backup report replaced the older */
	ck_assert_uint_eq(count_entries(outbox), 2);

	struct tu_panel p;
	const char *steps[] = { "204", NULL };
	tu_panel_start(&p, dir, port, 0, steps);
	struct remote_outbox_result res;
	ck_assert_int_eq(remote_outbox_flush(c, outbox, NULL, NULL, &res), 0);
	ck_assert_uint_eq(res.delivered, 2);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 2);
	json_t *b = req_body(json_array_get(reqs, 0));
	ck_assert(json_is_true(json_object_get(b, "successful")));
	ck_assert_int_eq(json_integer_value(json_object_get(b, "size")), 4242);
	ck_assert_str_eq(req_str(json_array_get(reqs, 1), "path"),
			 "/api/remote/backups/" UUID1 "/restore");
	json_decref(reqs);

	/* A report delivered directly drops an older spooled one for the same backup,
	 * which would otherwise overwrite it at the next flush. */
	ck_assert_int_eq(remote_outbox_put_backup(outbox, UUID2, &fail), 0);
	ck_assert_uint_eq(count_entries(outbox), 1);
	ck_assert_int_eq(remote_backup_report(c, UUID2, &ok, &st), 0);
	ck_assert_uint_eq(count_entries(outbox), 0);

	remote_client_free(c);
	tu_panel_stop(&p);
	free(outbox);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* A failure's reason travels as "error": sent directly, and through the outbox (the
 * spool keeps the body). A successful report never carries one. */
START_TEST(test_failure_reason)
{
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/spool", dir), 0);
	int port = dead_port(dir);
	struct remote_client *c = make_client(port, 300, outbox, NULL);
	struct remote_status st;
	struct backup_report fail = { .successful = false,
				      .error = "the archive grew past the maximum backup size "
					       "of 4096 bytes" };
	ck_assert_int_eq(remote_backup_report(c, UUID1, &fail, &st), -EAGAIN);
	ck_assert(st.spooled);
	/* a file name in Latin-1 in the reason: '?' for the bytes, the report still goes */
	struct backup_report odd = { .successful = false, .error = "server/caf\xe9: gone" };
	ck_assert_int_eq(remote_outbox_put_backup(outbox, UUID2, &odd), 0);
	ck_assert_uint_eq(count_entries(outbox), 2);

	struct tu_panel p;
	const char *steps[] = { "204", NULL };
	tu_panel_start(&p, dir, port, 0, steps);
	struct remote_outbox_result res;
	ck_assert_int_eq(remote_outbox_flush(c, outbox, NULL, NULL, &res), 0);
	ck_assert_uint_eq(res.delivered, 2);
	/* sent directly, and a success that was handed a reason anyway */
	ck_assert_int_eq(remote_backup_report(c, UUID1, &fail, &st), 0);
	const char *sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
	struct backup_report ok = { true, SHA1_HEX, 10, NULL, 0, "ignored", sha256 };
	ck_assert_int_eq(remote_backup_report(c, UUID2, &ok, &st), 0);
	/* an empty reason is left out: Wings' body exactly */
	struct backup_report empty = { .successful = false, .error = "" };
	ck_assert_int_eq(remote_backup_report(c, UUID2, &empty, &st), 0);

	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 5);
	for (size_t i = 0; i < 3; i++) {
		json_t *r = json_array_get(reqs, i), *b = req_body(r);
		const char *want = strcmp(req_str(r, "path"), "/api/remote/backups/" UUID1) == 0
					   ? fail.error
					   : "server/caf?: gone";
		ck_assert_str_eq(json_string_value(json_object_get(b, "error")), want);
		ck_assert(json_is_false(json_object_get(b, "successful")));
		ck_assert_int_eq(json_object_size(b), 6);
	}
	ck_assert_ptr_null(json_object_get(req_body(json_array_get(reqs, 3)), "error"));
	/* the SHA-256 rides along with a success, for the client API's sha256_hash */
	ck_assert_str_eq(json_string_value(json_object_get(req_body(json_array_get(reqs, 3)),
							   "sha256_hash")),
			 sha256);
	check_failure_body(req_body(json_array_get(reqs, 4)));
	json_decref(reqs);

	remote_client_free(c);
	tu_panel_stop(&p);
	free(outbox);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_outbox_corrupt_and_rejected)
{
	char *dir = tu_mkdtemp("remote");
	char *outbox = NULL;
	ck_assert_int_ge(asprintf(&outbox, "%s/spool", dir), 0);
	struct backup_report fail = { false, NULL, 0, NULL, 0, NULL, NULL };
	/* 1: garbage; 2: valid JSON, but says it is for another backup; 3: fine */
	char *bad1 = spool_path(outbox, "1aaaaaaa-0000-0000-0000-000000000000", "backup");
	char *bad2 = spool_path(outbox, "2aaaaaaa-0000-0000-0000-000000000000", "restore");
	tu_write_file(bad1, "{\"amber_outbox\":1, truncated", 28, 0600);
	const char *other = "{\"amber_outbox\":1,\"kind\":\"restore\",\"uuid\":\"" UUID2
			    "\",\"body\":{\"successful\":true}}";
	tu_write_file(bad2, other, strlen(other), 0600);
	ck_assert_int_eq(remote_outbox_put_backup(outbox, UUID1, &fail), 0);
	/* a claim left by a flush that crashed mid-send goes back into the queue */
	char *claim = NULL;
	ck_assert_int_ge(asprintf(&claim, "%s/." UUID2 ".restore.json.sending", outbox), 0);
	ck_assert_int_eq(remote_outbox_put_restore(outbox, UUID2, true), 0);
	char *f2 = spool_path(outbox, UUID2, "restore");
	ck_assert_int_eq(rename(f2, claim), 0);
	/* files that are not reports are left alone */
	char *note = NULL;
	ck_assert_int_ge(asprintf(&note, "%s/README", outbox), 0);
	tu_write_file(note, "x", 1, 0600);

	struct tu_panel p;
	const char *steps[] = { "400", NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 2000, outbox, NULL);
	struct remote_outbox_result res;
	ck_assert_int_eq(remote_outbox_flush(c, outbox, NULL, NULL, &res), 0);
	ck_assert_uint_eq(res.corrupt, 2);
	ck_assert_uint_eq(res.rejected, 2); /* 400: dropped, never retried */
	ck_assert_uint_eq(res.delivered + res.kept, 0);
	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 2);
	check_failure_body(req_body(json_array_get(reqs, 0)));
	ck_assert_str_eq(req_str(json_array_get(reqs, 1), "raw"), "{\"successful\":true}");
	json_decref(reqs);

	char *aside = NULL;
	ck_assert_int_ge(asprintf(&aside, "%s.corrupt", bad1), 0);
	ck_assert_int_eq(access(aside, F_OK), 0);
	free(aside);
	ck_assert_int_ge(asprintf(&aside, "%s.corrupt", bad2), 0);
	ck_assert_int_eq(access(aside, F_OK), 0);
	free(aside);
	ck_assert_int_ne(access(bad1, F_OK), 0);
	ck_assert_int_ne(access(claim, F_OK), 0);
	ck_assert_uint_eq(count_entries(outbox), 3); /* two .corrupt and the README */

	/* Nothing left to try. */
	ck_assert_int_eq(remote_outbox_flush(c, outbox, NULL, NULL, &res), 0);
	ck_assert_uint_eq(res.corrupt + res.rejected + res.delivered + res.kept, 0);

	remote_client_free(c);
	tu_panel_stop(&p);
	free(bad1);
	free(bad2);
	free(claim);
	free(f2);
	free(note);
	free(outbox);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

/* ---- part URLs ---- */

/* Amber's extension for resumable sessions (gcs): one start URL, its headers, a chunk
 * size the node can hold; nothing the panel sends may inject a header. */
START_TEST(test_resumable_url)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	const char *steps[] = {
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o?X-Goog-Signature=ab\","
		"\"resumable_headers\":{\"x-goog-resumable\":\"start\"},\"chunk_size\":16777216}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\",\"chunk_size\":1000000}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\",\"chunk_size\":1073741824}",
		"json:{\"resumable_url\":\"\",\"chunk_size\":16777216}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\"}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\",\"resumable_headers\":"
		"{\"x-a\":\"1\\r\\nx-evil: 1\"},\"chunk_size\":262144}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\",\"resumable_headers\":"
		"{\"x a\":\"1\"},\"chunk_size\":262144}",
		"json:{\"resumable_url\":\"http://gcs.invalid/b/o\",\"resumable_headers\":"
		"[\"x\"],\"chunk_size\":262144}",
		NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 2000, NULL, NULL);
	struct remote_status st;
	struct remote_part_urls u;
	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, 123, &u, &st), 0);
	ck_assert_str_eq(u.resumable_url, "http://gcs.invalid/b/o?X-Goog-Signature=ab");
	ck_assert_uint_eq(u.n_resumable_headers, 1);
	ck_assert_str_eq(u.resumable_headers[0], "x-goog-resumable: start");
	ck_assert_uint_eq(u.chunk_size, 16777216);
	ck_assert_uint_eq(u.n, 0);
	remote_part_urls_free(&u);
	/* not a 256 KiB multiple, above what a node holds, empty URL, no chunk size, a
	 * header value with a line break, a header name with a space, headers not an
	 * object */
	for (int i = 0; i < 7; i++) {
		ck_assert_int_eq(remote_backup_part_urls(c, UUID1, 123, &u, &st), -EBADMSG);
		ck_assert_ptr_null(u.resumable_url);
		ck_assert_ptr_null(u.resumable_headers);
	}
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

START_TEST(test_part_urls)
{
	char *dir = tu_mkdtemp("remote");
	struct tu_panel p;
	const char *steps[] = { "parts:5242880",
				"parts:5242880:7",
				"garbage",
				"json:{\"parts\":[],\"part_size\":5242880}",
				"json:{\"parts\":[\"http://a\"],\"part_size\":5242880}",
				"json:{\"parts\":[\"http://a\",\"http://b\",\"http://c\"],"
				"\"part_size\":0}",
				"json:{\"parts\":[\"http://a\",2,\"http://c\"],\"part_size\":5242880}",
				"404",
				NULL };
	tu_panel_start(&p, dir, 0, 0, steps);
	struct remote_client *c = make_client(p.port, 2000, NULL, NULL);
	struct remote_status st;
	struct remote_part_urls u;
	const uint64_t size = 2 * 5242880ull + 1;

	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, size, &u, &st), 0);
	ck_assert_uint_eq(u.n, 3);
	ck_assert_uint_eq(u.part_size, 5242880);
	ck_assert_uint_eq(u.max_concurrent_uploads, 0);
	for (size_t i = 0; i < 3; i++) {
		char want[160];
		snprintf(want, sizeof(want),
			 "http://s3.invalid/bucket/srv/%s.tar.gz?partNumber=%zu&uploadId=u", UUID1,
			 i + 1);
		ck_assert_str_eq(u.urls[i], want);
	}
	remote_part_urls_free(&u);
	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, size, &u, &st), 0);
	ck_assert_uint_eq(u.max_concurrent_uploads, 7);
	remote_part_urls_free(&u);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(remote_backup_part_urls(c, UUID1, size, &u, &st), -EBADMSG);
		ck_assert_int_eq(st.http_status, 200);
		ck_assert_uint_eq(st.attempts, 1);
		ck_assert_ptr_null(u.urls);
		ck_assert_uint_eq(u.n, 0);
	}
	ck_assert_int_eq(remote_backup_part_urls(c, UUID1, size, &u, &st), -ENOENT);

	json_t *reqs = tu_panel_requests(&p, NULL);
	ck_assert_uint_eq(json_array_size(reqs), 8);
	for (size_t i = 0; i < 8; i++) {
		json_t *r = json_array_get(reqs, i);
		check_headers(r);
		ck_assert_str_eq(req_str(r, "method"), "GET");
		ck_assert_str_eq(req_str(r, "path"), "/api/remote/backups/" UUID1 "?size=10485761");
	}
	json_decref(reqs);
	remote_client_free(c);
	tu_panel_stop(&p);
	tu_rmrf(dir);
	free(dir);
}
END_TEST

int main(void)
{
	/* The library leaves this to the process (remote_client.h). */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	Suite *s = suite_create("remote_client");
	TCase *tc = tcase_create("remote_client");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_wire_format);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_retry_5xx);
	tcase_add_test(tc, test_retry_reset);
	tcase_add_test(tc, test_retry_timeout);
	tcase_add_test(tc, test_retry_connection_refused);
	tcase_add_test(tc, test_no_retry_on_4xx);
	tcase_add_test(tc, test_budget_respected);
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_outbox_down_then_up);
	tcase_add_test(tc, test_outbox_replace);
	tcase_add_test(tc, test_outbox_corrupt_and_rejected);
	tcase_add_test(tc, test_failure_reason);
	tcase_add_test(tc, test_part_urls);
	tcase_add_test(tc, test_resumable_url);
	suite_add_tcase(s, tc);
	int rc = tu_run_suite(s);
	curl_global_cleanup();
	return rc;
}
