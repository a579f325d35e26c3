#include "cli_store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store.h"

int cli_store_failure(const char *what, int r)
{
	fprintf(stderr, "amber: %s: %s\n", what,
		r == -EPROTO ? "the database was written by a newer Amber" : strerror(-r));
	return r == -ENOENT ? CLI_NOTFOUND : CLI_FAILURE;
}

int cli_store_open(const char *database, struct store **ret)
{
	if (!database || !*database) {
		fprintf(stderr, "amber: no panel database configured ([panel] database)\n");
		return CLI_USAGE;
	}
	int r = store_open(database, ret);
	if (r < 0) {
		fprintf(stderr, "amber: opening the panel database %s: %s\n", database,
			r == -EPROTO ? "written by a newer Amber" : strerror(-r));
		return CLI_FAILURE;
	}
	return CLI_OK;
}

void cli_print_json(json_t *o)
{
	if (!o) {
		fprintf(stderr, "amber: out of memory\n");
		return;
	}
	json_dumpf(o, stdout, JSON_INDENT(2));
	fputc('\n', stdout);
	json_decref(o);
}

void cli_iso_time(int64_t t, char out[32])
{
	out[0] = 0;
	if (t <= 0)
		return;
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm))
		strftime(out, 32, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
}
