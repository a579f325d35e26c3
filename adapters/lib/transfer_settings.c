#include "transfer_settings.h"

#include <inttypes.h>

#define MIN_PART (UINT64_C(5) << 20)
#define MAX_PART (UINT64_C(5) << 30)

int transfer_settings_read(const amber_config *cfg, amber_ctx *ctx, const char *who,
			   struct transfer_settings *s)
{
	const amber_host *h = amber_host_api;
	int r;
	if ((r = h->config_get_size(cfg, "part_size", &s->part_size)) < 0 ||
	    (r = h->config_get_int(cfg, "parallel_parts", &s->parallel_parts)) < 0 ||
	    (r = h->config_get_duration_ms(cfg, "connect_timeout", &s->connect_ms)) < 0 ||
	    (r = h->config_get_duration_ms(cfg, "stall_timeout", &s->stall_ms)) < 0)
		return h->set_error(ctx, r, "%s: cannot read the numeric settings", who);
	if (s->part_size < MIN_PART || s->part_size > MAX_PART)
		return h->set_error(ctx, AMBER_EINVAL, "%s: part_size: %" PRIu64 " bytes is outside "
				    "5MiB..5GiB", who, s->part_size);
	if (s->parallel_parts < 1 || s->parallel_parts > 64)
		return h->set_error(ctx, AMBER_EINVAL, "%s: parallel_parts: %" PRId64
				    " is outside 1..64", who, s->parallel_parts);
	if (s->connect_ms == 0 || s->stall_ms < 1000)
		return h->set_error(ctx, AMBER_EINVAL, "%s: connect_timeout must be above 0 and "
				    "stall_timeout at least 1s", who);
	return AMBER_OK;
}
