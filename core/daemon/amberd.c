/* amberd: the node API, the remote API and the client API in one process (design.md §1). main() owns
 * every long-lived object; signals are taken by this thread only, with sigtimedwait,
 * so no handler ever runs inside library code. */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "adapter_config.h"
#include "adapter_loader.h"
#include "config.h"
#include "http.h"
#include "instances.h"
#include "log.h"
#include "node_service.h"
#include "panel_service.h"
#include "routes_client.h"
#include "store.h"

#define MAINTENANCE_INTERVAL_S 30
#define DRAIN_TIMEOUT_MS (10 * 60 * 1000)

struct daemon {
	struct config *cfg;
	struct adapter_registry *reg;
	struct instance_set *instances;
	struct store *store;
	struct node_service *node;
	struct panel_service *panel;
	struct client_service *client;
	struct http_server *http;
	struct http_route *routes;
	char *gen_token_id, *gen_token; /* generated credentials, when none are configured */
};

static void daemon_close(struct daemon *d)
{
	http_server_free(d->http);
	node_service_free(d->node);
	panel_service_free(d->panel);
	client_service_free(d->client);
	store_close(d->store);
	instance_set_free(d->instances);
	adapter_registry_free(d->reg);
	config_free(d->cfg);
	free(d->routes);
	free(d->gen_token_id);
	if (d->gen_token)
		explicit_bzero(d->gen_token, strlen(d->gen_token));
	free(d->gen_token);
}

static const char *cfg_str(const amber_config *c, const char *name)
{
	const char *v = NULL;
	adapter_config_get_string(c, name, &v);
	return v;
}

/* mkdir -p, 0755 for the parents and 0700 for the last component. */
static int make_dirs(const char *path)
{
	char *p = strdup(path);
	if (!p)
		return -ENOMEM;
	int r = 0;
	for (char *s = p + 1; r == 0; s++) {
		bool last = *s == 0;
		if (*s != '/' && !last)
			continue;
		*s = 0;
		if (mkdir(p, last ? 0700 : 0755) < 0 && errno != EEXIST)
			r = -errno;
		if (last)
			break;
		*s = '/';
	}
	free(p);
	return r;
}

/* The node's credentials when the configuration gives none (the built-in default):
 * made once, kept in <state_dir>/node.credentials (0600) as "token_id\ntoken\n". */
static int default_credentials(const char *state_dir, char **ret_id, char **ret_token,
			       char **ret_err)
{
	char *path = NULL;
	if (asprintf(&path, "%s/node.credentials", state_dir) < 0)
		return -ENOMEM;
	char buf[256] = "";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT) {
		uint8_t raw[40];
		if (getrandom(raw, sizeof(raw), 0) != sizeof(raw)) {
			free(path);
			return -EIO;
		}
		char *p = buf;
		for (size_t i = 0; i < sizeof(raw); i++)
			p += sprintf(p, "%02x%s", raw[i], i == 7 ? "\n" : "");
		strcat(p, "\n");
		fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 || write(fd, buf, strlen(buf)) != (ssize_t)strlen(buf) || fsync(fd) < 0) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			*ret_err = NULL;
			if (asprintf(ret_err, "%s: %s", path, strerror(e)) < 0)
				*ret_err = NULL;
			free(path);
			return -e;
		}
		close(fd);
		log_msg(LOG_LEVEL_NOTICE, "no [node] token configured: generated credentials in %s",
			path);
	} else if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
	} else {
		int e = errno;
		if (asprintf(ret_err, "%s: %s", path, strerror(e)) < 0)
			*ret_err = NULL;
		free(path);
		return -e;
	}
	char *nl = strchr(buf, '\n');
	char *tok = nl ? nl + 1 : NULL;
	if (!nl || !*tok) {
		if (asprintf(ret_err, "%s: expected a token id line and a token line", path) < 0)
			*ret_err = NULL;
		free(path);
		return -EINVAL;
	}
	*nl = 0;
	tok[strcspn(tok, "\n")] = 0;
	*ret_id = strdup(buf);
	*ret_token = strdup(tok);
	explicit_bzero(buf, sizeof(buf));
	free(path);
	return *ret_id && *ret_token ? 0 : -ENOMEM;
}

static void access_log(const struct http_access_entry *e, void *data)
{
	(void)data;
	log_msg(LOG_LEVEL_INFO, "request_id=%s %s %s %u %llu bytes %llu ms client=%s%s",
		e->request_id, e->method, e->path, e->status, (unsigned long long)e->bytes,
		(unsigned long long)e->duration_ms, e->client, e->completed ? "" : " (aborted)");
}

static void http_error_log(const char *msg, void *data)
{
	(void)data;
	log_msg(LOG_LEVEL_WARNING, "http: %s", msg);
}

static int daemon_open(struct daemon *d, const char *config_path, const char *adapter_dir)
{
	char *err = NULL;
	int r = config_path ? config_load_file(config_path, &d->cfg, &err)
			    : config_load_text(config_default_text(), strlen(config_default_text()),
					       "(built-in default)", &d->cfg, &err);
	if (r < 0)
		goto fail;
	enum log_level lvl = LOG_LEVEL_NOTICE;
	if (d->cfg->log_level && log_level_parse(d->cfg->log_level, &lvl) < 0) {
		r = -EINVAL;
		if (asprintf(&err, "%s: log_level '%s' is not error, warning, notice, info or "
				   "debug", d->cfg->file, d->cfg->log_level) < 0)
			err = NULL;
		goto fail;
	}
	if (d->cfg->log_file) {
		r = log_open_file(d->cfg->log_file, lvl);
		if (r < 0) {
			if (asprintf(&err, "log_file %s: %s", d->cfg->log_file, strerror(-r)) < 0)
				err = NULL;
			goto fail;
		}
	} else {
		log_setup(2, lvl);
	}

	adapter_registry_new(&d->reg);
	const char *env = secure_getenv("AMBER_ADAPTER_DIR");
	const char *dir = adapter_dir ? adapter_dir
			  : env && *env ? env
			  : d->cfg->adapter_dir ? d->cfg->adapter_dir
						: AMBER_ADAPTER_INSTALL_DIR;
	r = adapter_registry_load_dir(d->reg, dir);
	if (r < 0) {
		if (asprintf(&err, "adapter directory %s: %s", dir, strerror(-r)) < 0)
			err = NULL;
		goto fail;
	}
	r = instance_set_open(d->cfg, d->reg, NULL, &d->instances, &err);
	if (r < 0)
		goto fail;

	const amber_config *node = d->cfg->node, *panel = d->cfg->panel;
	const char *db = cfg_str(panel, "database");
	const char *state_dir = cfg_str(node, "state_dir");
	/* A fresh machine has none of the directories the defaults name. */
	const char *dirs[] = { state_dir, cfg_str(node, "data_dir") };
	for (size_t i = 0; i < 2; i++) {
		r = make_dirs(dirs[i]);
		if (r < 0) {
			if (asprintf(&err, "%s: %s", dirs[i], strerror(-r)) < 0)
				err = NULL;
			goto fail;
		}
	}
	const char *db_path = strncmp(db, "sqlite:", 7) == 0 ? db + 7 : db;
	const char *slash = strrchr(db_path, '/');
	if (slash && slash != db_path && strcmp(db_path, ":memory:") != 0) {
		char *parent = strndup(db_path, (size_t)(slash - db_path));
		r = parent ? make_dirs(parent) : -ENOMEM;
		free(parent);
		if (r < 0) {
			if (asprintf(&err, "database directory of %s: %s", db, strerror(-r)) < 0)
				err = NULL;
			goto fail;
		}
	}
	r = store_open(db, &d->store);
	if (r < 0) {
		if (asprintf(&err, "panel database %s: %s", db, strerror(-r)) < 0)
			err = NULL;
		goto fail;
	}
	const char *token_id = cfg_str(node, "token_id"), *token = cfg_str(node, "token");
	if (!token_id != !token) {
		r = -EINVAL;
		if (asprintf(&err, "%s: [node] needs both token_id and token (or token_file), or "
				   "neither to have them generated",
			     d->cfg->file) < 0)
			err = NULL;
		goto fail;
	}
	if (!token_id) {
		r = default_credentials(state_dir, &d->gen_token_id, &d->gen_token, &err);
		if (r < 0)
			goto fail;
		token_id = d->gen_token_id;
		token = d->gen_token;
	}
	/* All-in-one: the panel side must know this node's credentials. */
	int64_t node_id;
	const char *listen = cfg_str(node, "listen");
	const char *public_url = cfg_str(node, "public_url");
	char url[300];
	snprintf(url, sizeof(url), "http://%s", listen);
	if (public_url && strncmp(public_url, "http://", 7) && strncmp(public_url, "https://", 8)) {
		r = -EINVAL;
		if (asprintf(&err, "%s: [node] public_url must be an http:// or https:// URL",
			     d->cfg->file) < 0)
			err = NULL;
		goto fail;
	}
	/* What the panel calls and puts in download links; the node's own reports to
	 * this process keep using the listening address. */
	char reg_url[300];
	snprintf(reg_url, sizeof(reg_url), "%s", public_url ? public_url : url);
	size_t rl = strlen(reg_url);
	while (rl > 0 && reg_url[rl - 1] == '/')
		reg_url[--rl] = 0;
	r = store_node_add(d->store, "local", reg_url, token_id, token, &node_id);
	if (r == -EEXIST)
		r = store_node_update(d->store, "local", reg_url, token_id, token);
	if (r < 0) {
		if (asprintf(&err, "registering the local node in %s: %s", db, strerror(-r)) < 0)
			err = NULL;
		goto fail;
	}

	int64_t jobs = 2;
	adapter_config_get_int(node, "max_concurrent_jobs", &jobs);
	struct node_service_config nc = {
		.data_dir = cfg_str(node, "data_dir"),
		.state_dir = cfg_str(node, "state_dir"),
		.token_id = token_id,
		.token = token,
		.panel_url = cfg_str(node, "panel_url"),
		.max_concurrent_jobs = jobs > 0 && jobs < 1024 ? (unsigned)jobs : 2,
		.instances = d->instances,
		.restore_uid = -1,
		.restore_gid = -1,
		.threads = d->cfg->threads,
		.io_bytes_per_s = d->cfg->io_mib_per_s << 20,
	};
	if (!nc.panel_url)
		nc.panel_url = url;
	r = node_service_new(&nc, &d->node, &err);
	if (r < 0)
		goto fail;
	uint64_t part_size = 0, stuck_ms = 0, presign_ms = 0;
	adapter_config_get_size(panel, "part_size", &part_size);
	adapter_config_get_duration_ms(panel, "stuck_after", &stuck_ms);
	adapter_config_get_duration_ms(panel, "presign_ttl", &presign_ms);
	struct panel_service_config pc = {
		.store = d->store,
		.instances = d->instances,
		.part_size = part_size,
		.presign_ttl_s = presign_ms / 1000 > 604800 ? 604800 : (unsigned)(presign_ms / 1000),
		.stuck_after_s = (unsigned)(stuck_ms / 1000),
	};
	r = panel_service_new(&pc, &d->panel, &err);
	if (r < 0)
		goto fail;

	uint64_t max_size = 0, throttle_ms = 0, retention_ms = 0, ttl_ms = 0, node_ms = 0,
		 connect_ms = 0;
	int64_t throttle_limit = 0;
	adapter_config_get_size(panel, "max_backup_size", &max_size);
	adapter_config_get_int(panel, "throttle_limit", &throttle_limit);
	adapter_config_get_duration_ms(panel, "throttle_period", &throttle_ms);
	adapter_config_get_duration_ms(panel, "retention", &retention_ms);
	adapter_config_get_duration_ms(panel, "download_ttl", &ttl_ms);
	adapter_config_get_duration_ms(panel, "node_timeout", &node_ms);
	adapter_config_get_duration_ms(panel, "node_connect_timeout", &connect_ms);
	struct client_service_config cc = {
		.store = d->store,
		.instances = d->instances,
		.default_adapter = cfg_str(panel, "default_adapter"),
		.max_backup_size = max_size,
		.throttle_limit = throttle_limit,
		.throttle_period_s = (int64_t)(throttle_ms / 1000),
		.retention_s = (int64_t)(retention_ms / 1000),
		.download_ttl_s = ttl_ms / 1000 > UINT32_MAX ? UINT32_MAX : (unsigned)(ttl_ms / 1000),
		.node_url_ttl_s = presign_ms / 1000 > 604800 ? 604800 : (unsigned)(presign_ms / 1000),
		.node_timeout_ms = node_ms > UINT32_MAX ? UINT32_MAX : (unsigned)node_ms,
		.node_connect_timeout_ms = connect_ms > UINT32_MAX ? UINT32_MAX : (unsigned)connect_ms,
	};
	r = client_service_new(&cc, &d->client, &err);
	if (r < 0)
		goto fail;

	size_t nn, np, nc_;
	const struct http_route *rn = node_service_routes(d->node, &nn);
	const struct http_route *rp = panel_service_routes(d->panel, &np);
	const struct http_route *rc = client_service_routes(d->client, &nc_);
	d->routes = calloc(nn + np + nc_, sizeof(*d->routes));
	if (!d->routes) {
		r = -ENOMEM;
		goto fail;
	}
	memcpy(d->routes, rn, nn * sizeof(*rn));
	memcpy(d->routes + nn, rp, np * sizeof(*rp));
	memcpy(d->routes + nn + np, rc, nc_ * sizeof(*rc));
	int64_t http_threads = 16;
	adapter_config_get_int(node, "http_threads", &http_threads);
	struct http_config hc = {
		.listen = listen,
		.routes = d->routes,
		.n_routes = nn + np + nc_,
		/* A client-API request holds its thread while it calls a node, which in the
		 * all-in-one default is this same server: the pool must have threads left
		 * for those calls when many users act at once. */
		.threads = http_threads > 0 && http_threads <= 1024 ? (unsigned)http_threads : 16,
		.access_log = access_log,
		.error_log = http_error_log,
	};
	r = http_server_new(&hc, &d->http);
	if (r < 0) {
		if (asprintf(&err, "listen %s: %s", listen, strerror(-r)) < 0)
			err = NULL;
		goto fail;
	}
	log_msg(LOG_LEVEL_NOTICE, "amberd %s listening on %s port %u (config %s)", AMBER_VERSION,
		listen, http_server_port(d->http), d->cfg->file);
	return 0;
fail:
	fprintf(stderr, "amberd: %s\n", err ? err : strerror(-r));
	log_msg(LOG_LEVEL_ERR, "amberd: not starting: %s", err ? err : strerror(-r));
	free(err);
	return r < 0 ? r : -EINVAL;
}

static void maintenance(struct daemon *d)
{
	node_service_flush_outbox(d->node);
	int n = panel_service_sweep(d->panel, (int64_t)time(NULL));
	if (n > 0)
		log_msg(LOG_LEVEL_WARNING, "%d backups had no report for too long and were marked "
					   "failed", n);
	store_download_uses_prune(d->store, 7 * 24 * 3600, (int64_t)time(NULL));
	client_service_sweep(d->client, (int64_t)time(NULL));
}

static int run(struct daemon *d, const sigset_t *sigs)
{
	maintenance(d);
	for (;;) {
		struct timespec ts = { MAINTENANCE_INTERVAL_S, 0 };
		int sig = sigtimedwait(sigs, NULL, &ts);
		if (sig < 0 && errno == EAGAIN) {
			maintenance(d);
			continue;
		}
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			if (d->cfg->log_file) {
				int r = log_reopen_file(d->cfg->log_file);
				if (r < 0)
					log_msg(LOG_LEVEL_ERR, "SIGHUP: reopening %s: %s",
						d->cfg->log_file, strerror(-r));
			}
			log_msg(LOG_LEVEL_NOTICE, "SIGHUP: log reopened");
			continue;
		}
		log_msg(LOG_LEVEL_NOTICE, "%s: draining: no new jobs; waiting for running ones",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
		/* Jobs first: their reports may go to the panel side of this very process,
		 * which must still be listening. New jobs are refused meanwhile (503). */
		node_service_drain(d->node, DRAIN_TIMEOUT_MS);
		http_server_stop_accepting(d->http);
		/* In-flight requests (a download) get a moment to finish. */
		for (int i = 0; i < 300 && http_server_connections(d->http) > 0; i++)
			usleep(100 * 1000);
		node_service_flush_outbox(d->node);
		log_msg(LOG_LEVEL_NOTICE, "stopped");
		return 0;
	}
}

static void usage(FILE *f)
{
	fputs("usage: amberd [--config FILE] [--adapter-dir DIR]\n"
	      "Serves the node API and the panel's remote API (see amber.toml [node], "
	      "[panel]).\n"
	      "SIGTERM drains (running jobs finish), SIGHUP reopens log_file.\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "config", required_argument, 0, 'c' },
		{ "adapter-dir", required_argument, 0, 'd' },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0 },
	};
	const char *config_path = NULL, *adapter_dir = NULL;
	int c;
	while ((c = getopt_long(argc, argv, "c:", lo, NULL)) != -1) {
		switch (c) {
		case 'c': config_path = optarg; break;
		case 'd': adapter_dir = optarg; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("amberd %s\n", AMBER_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!config_path) {
		const char *env = secure_getenv("AMBER_CONFIG");
		if (env && *env)
			config_path = env;
		else if (access("/etc/amber/amber.toml", F_OK) == 0)
			config_path = "/etc/amber/amber.toml";
	}
	/* Before any thread exists: every thread inherits the mask, so only sigtimedwait
	 * below ever sees these signals. */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);

	struct daemon d = { 0 };
	int rc = daemon_open(&d, config_path, adapter_dir) == 0 ? run(&d, &sigs) : 1;
	daemon_close(&d);
	curl_global_cleanup();
	return rc;
}
