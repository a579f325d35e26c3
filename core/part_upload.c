/* Presigned part uploads; see part_upload.h for the contract.
 *
 * Slots circulate between the writer (filling one), a FIFO of full parts and the
 * workers (one transfer each). A worker keeps its own curl handle across parts so
 * keep-alive connections to the store are reused. The first error wins: it is kept
 * with its message, raises `stop` so every transfer and backoff ends early, and is what
 * the writer and finish return. */
#include "part_upload.h"

#include "curl_util.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_STALL_TIMEOUT_MS 60000u
#define DEFAULT_RETRY ((struct host_retry_policy){ .max_attempts = 6, .base_ms = 250, \
						    .max_ms = 8000 })
#define ETAG_MAX 256
#define ERR_BODY_MAX 300

struct slot {
	unsigned char *mem; /* memory mode: part_size bytes, allocated on first use */
	int fd;             /* spool mode: an anonymous file; -1 otherwise */
	uint64_t len;
	size_t index;       /* part number - 1 */
	struct slot *next;  /* in the free list or the queue */
};

struct part_upload {
	const char *const *urls;
	size_t n_urls;
	uint64_t part_size;
	bool spool;
	struct host_retry_policy retry;
	const atomic_int *cancel;
	unsigned connect_timeout_ms, stall_timeout_ms;

	pthread_mutex_t lock;
	pthread_cond_t cond; /* any change: a slot freed, a part queued or done, an error */
	struct slot *slots;
	size_t n_slots;
	struct slot *free_list, *queue_head, *queue_tail;
	struct slot *cur;     /* the writer's; not in any list */
	size_t next_index;    /* the part number - 1 the next slot gets */
	size_t queued, done;  /* parts handed to workers, parts stored */
	bool closing;         /* finish: no more parts will come */
	int err;
	char message[PART_UPLOAD_MESSAGE_MAX];
	atomic_int stop;
	atomic_uint_fast64_t stored;
	atomic_uint retries;

	struct part_upload_part *parts; /* n_urls entries; etag NULL until stored */
	pthread_t *threads;
	size_t n_threads;
};

static bool stopped(const struct part_upload *pu)
{
	return atomic_load(&pu->stop) || (pu->cancel && atomic_load(pu->cancel));
}

static void fail_locked(struct part_upload *pu, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void fail_locked(struct part_upload *pu, int err, const char *fmt, ...)
{
	if (!pu->err) {
		pu->err = err;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(pu->message, sizeof(pu->message), fmt, ap);
		va_end(ap);
	}
	atomic_store(&pu->stop, 1);
	pthread_cond_broadcast(&pu->cond);
}

/* ---- one PUT ---- */

struct put {
	struct part_upload *pu;
	struct slot *s;
	uint64_t off;
	int io_err; /* a spooled part could not be read back */
	char etag[ETAG_MAX];
	char body[ERR_BODY_MAX + 1];
	size_t body_len;
};

static size_t on_read(char *buf, size_t size, size_t nmemb, void *userdata)
{
	struct put *p = userdata;
	size_t want = size * nmemb;
	uint64_t left = p->s->len - p->off;
	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (p->s->mem) {
		memcpy(buf, p->s->mem + p->off, want);
	} else {
		ssize_t n = pread(p->s->fd, buf, want, (off_t)p->off);
		if (n <= 0) {
			p->io_err = n < 0 ? errno : EIO;
			return CURL_READFUNC_ABORT;
		}
		want = (size_t)n;
	}
	p->off += want;
	return want;
}

/* curl rewinds when it re-sends on a fresh connection (a reused one the store had
 * closed): the part is still all there. */
static int on_seek(void *userdata, curl_off_t offset, int origin)
{
	struct put *p = userdata;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > p->s->len)
		return CURL_SEEKFUNC_CANTSEEK;
	p->off = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct put *p = userdata;
	size_t n = size * nmemb;
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		p->etag[0] = 0; /* a new response (after 100 Continue, say) */
	/* A truncated ETag would fail the Complete: keep none rather than a wrong one. */
	if (curl_util_header_value(data, n, "etag:", p->etag, sizeof(p->etag)) >=
	    (long)sizeof(p->etag))
		p->etag[0] = 0;
	return n;
}

/* The body only matters for an error's message (S3 answers XML with a <Code>). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	struct put *p = userdata;
	size_t n = size * nmemb, room = ERR_BODY_MAX - p->body_len;
	size_t k = n < room ? n : room;
	memcpy(p->body + p->body_len, data, k);
	p->body_len += k;
	p->body[p->body_len] = 0;
	return n;
}

static int on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	(void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
	const struct put *p = userdata;
	return stopped(p->pu) ? 1 : 0;
}

/* The text of an error body, on one line, for a message. */
static void body_excerpt(const struct put *p, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < p->body_len && o + 1 < cap; i++) {
		char c = p->body[i];
		out[o++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
	}
	out[o] = 0;
}

enum outcome { PUT_OK, PUT_RETRY, PUT_FAIL };

/* One attempt. PUT_RETRY and PUT_FAIL leave *err and why set. */
static enum outcome put_once(struct part_upload *pu, CURL *h, struct slot *s, char *etag_out,
			     int *err, char *why, size_t why_cap)
{
	struct put p = { .pu = pu, .s = s };
	char errbuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL, *tmp;
	/* Wings' content type; "Expect:" sends the body at once instead of waiting up to a
	 * second for a 100 Continue that not every store or proxy sends. */
	const char *lines[] = { "Content-Type: application/x-gzip", "Expect:" };
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		tmp = curl_slist_append(hdrs, lines[i]);
		if (!tmp) {
			curl_slist_free_all(hdrs);
			*err = -ENOMEM;
			snprintf(why, why_cap, "out of memory");
			return PUT_FAIL;
		}
		hdrs = tmp;
	}
	/* reset keeps the connection cache: the next part reuses the connection. */
	curl_easy_reset(h);
	/* No overall timeout: a 5 GiB part on a slow link is legitimate. A stalled one is
	 * not. */
	struct curl_util_opts o = { .url = pu->urls[s->index],
				    .errbuf = errbuf,
				    .on_header = on_header,
				    .on_body = on_body,
				    .data = &p,
				    .on_progress = on_progress,
				    .progress_data = &p,
				    .connect_timeout_ms = pu->connect_timeout_ms,
				    .stall_timeout_ms = pu->stall_timeout_ms };
	curl_util_setup(h, &o);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)s->len);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(h, CURLOPT_READDATA, &p);
	curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
	curl_easy_setopt(h, CURLOPT_SEEKDATA, &p);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	unsigned pn = (unsigned)s->index + 1;
	if (cc != CURLE_OK) {
		if (cc == CURLE_ABORTED_BY_CALLBACK || stopped(pu)) {
			*err = -ECANCELED;
			snprintf(why, why_cap, "part %u: cancelled", pn);
			return PUT_FAIL;
		}
		if (p.io_err) {
			*err = -p.io_err;
			snprintf(why, why_cap, "part %u: reading the spooled part: %s", pn,
				 strerror(p.io_err));
			return PUT_FAIL;
		}
		*err = curl_util_request_error(cc) ? -EINVAL : -EIO;
		snprintf(why, why_cap, "part %u: %s", pn, *errbuf ? errbuf : curl_easy_strerror(cc));
		return curl_util_request_error(cc) ? PUT_FAIL : PUT_RETRY;
	}
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	char excerpt[ERR_BODY_MAX + 1];
	body_excerpt(&p, excerpt, sizeof(excerpt));
	if (status >= 200 && status < 300) {
		if (!p.etag[0]) {
			*err = -EBADMSG;
			snprintf(why, why_cap, "part %u: HTTP %ld without an ETag", pn, status);
			return PUT_FAIL;
		}
		memcpy(etag_out, p.etag, sizeof(p.etag));
		return PUT_OK;
	}
	snprintf(why, why_cap, "part %u: HTTP %ld%s%s", pn, status, excerpt[0] ? ": " : "",
		 excerpt);
	if (status >= 500 || status == 429) {
		*err = -EAGAIN;
		return PUT_RETRY;
	}
	*err = status == 401 ? -EACCES : status == 403 ? -EPERM : -EINVAL;
	return PUT_FAIL;
}

/* The host's policy (host.c svc_backoff), sleeping in slices that also watch `stop`,
 * which the host's own backoff cannot see. 0, or -ECANCELED. */
static int backoff(struct part_upload *pu, unsigned attempt)
{
	return curl_util_sleep_ms(host_backoff_delay_ms(&pu->retry, attempt), &pu->stop,
				  pu->cancel);
}

static void upload_part(struct part_upload *pu, CURL *h, struct slot *s)
{
	char etag[ETAG_MAX], why[PART_UPLOAD_MESSAGE_MAX] = "";
	int err = 0;
	for (unsigned attempt = 1;; attempt++) {
		enum outcome o = put_once(pu, h, s, etag, &err, why, sizeof(why));
		if (o == PUT_OK)
			break;
		if (o == PUT_RETRY && attempt <= pu->retry.max_attempts) {
			atomic_fetch_add(&pu->retries, 1);
			if (backoff(pu, attempt) == 0)
				continue;
			err = -ECANCELED;
			snprintf(why, sizeof(why), "part %zu: cancelled", s->index + 1);
		} else if (o == PUT_RETRY) {
			err = err == -EIO ? -EIO : -EAGAIN;
		}
		pthread_mutex_lock(&pu->lock);
		if (err == -ECANCELED && pu->cancel && atomic_load(pu->cancel))
			fail_locked(pu, err, "cancelled");
		else if (o == PUT_RETRY)
			fail_locked(pu, err, "%s (gave up after %u attempts)", why, attempt);
		else
			fail_locked(pu, err, "%s", why);
		pthread_mutex_unlock(&pu->lock);
		return;
	}
	char *copy = strdup(etag);
	pthread_mutex_lock(&pu->lock);
	if (!copy) {
		fail_locked(pu, -ENOMEM, "out of memory");
	} else {
		pu->parts[s->index].etag = copy;
		pu->parts[s->index].part_number = (unsigned)s->index + 1;
		atomic_fetch_add(&pu->stored, s->len);
		pu->done++;
		s->len = 0;
		s->next = pu->free_list;
		pu->free_list = s;
		pthread_cond_broadcast(&pu->cond);
	}
	pthread_mutex_unlock(&pu->lock);
}

static void *worker_main(void *arg)
{
	struct part_upload *pu = arg;
	CURL *h = curl_easy_init();
	pthread_mutex_lock(&pu->lock);
	if (!h)
		fail_locked(pu, -ENOMEM, "out of memory");
	for (;;) {
		while (!pu->queue_head && !pu->closing && !pu->err)
			pthread_cond_wait(&pu->cond, &pu->lock);
		if (pu->err || !pu->queue_head)
			break;
		struct slot *s = pu->queue_head;
		pu->queue_head = s->next;
		if (!pu->queue_head)
			pu->queue_tail = NULL;
		pthread_mutex_unlock(&pu->lock);
		upload_part(pu, h, s);
		pthread_mutex_lock(&pu->lock);
	}
	pthread_mutex_unlock(&pu->lock);
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

/* ---- the writer's side ---- */

static int spool_open(const char *dir)
{
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* Filesystems without O_TMPFILE: a named file, unlinked before it holds a byte. */
	size_t n = strlen(dir) + 32;
	char *path = malloc(n);
	if (!path)
		return -ENOMEM;
	snprintf(path, n, "%s/amber-part-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	int e = errno;
	if (fd >= 0)
		unlink(path);
	free(path);
	return fd >= 0 ? fd : -e;
}

int part_upload_new(const struct part_upload_config *cfg, struct part_upload **ret)
{
	*ret = NULL;
	if (!cfg || !cfg->urls || cfg->n_urls == 0 || cfg->part_size == 0)
		return -EINVAL;
	for (size_t i = 0; i < cfg->n_urls; i++)
		if (!cfg->urls[i])
			return -EINVAL;
	struct part_upload *pu = calloc(1, sizeof(*pu));
	if (!pu)
		return -ENOMEM;
	pu->urls = cfg->urls;
	pu->n_urls = cfg->n_urls;
	pu->part_size = cfg->part_size;
	pu->spool = cfg->part_size > (cfg->memory_max ? cfg->memory_max : PART_UPLOAD_MEMORY_MAX);
	pu->retry = cfg->retry.max_attempts || cfg->retry.base_ms ? cfg->retry : DEFAULT_RETRY;
	pu->cancel = cfg->cancel;
	pu->connect_timeout_ms =
		cfg->connect_timeout_ms ? cfg->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
	pu->stall_timeout_ms = cfg->stall_timeout_ms ? cfg->stall_timeout_ms
						     : DEFAULT_STALL_TIMEOUT_MS;
	atomic_init(&pu->stop, 0);
	atomic_init(&pu->stored, 0);
	atomic_init(&pu->retries, 0);
	pthread_mutex_init(&pu->lock, NULL);
	pthread_cond_init(&pu->cond, NULL);

	unsigned in_flight = cfg->in_flight ? cfg->in_flight : PART_UPLOAD_IN_FLIGHT;
	if (pu->spool && in_flight > PART_UPLOAD_SPOOL_IN_FLIGHT)
		in_flight = PART_UPLOAD_SPOOL_IN_FLIGHT;
	/* More workers than parts would only sit idle. */
	if (in_flight > cfg->n_urls)
		in_flight = (unsigned)cfg->n_urls;
	pu->n_slots = (size_t)in_flight + 1;
	pu->slots = calloc(pu->n_slots, sizeof(*pu->slots));
	pu->parts = calloc(cfg->n_urls, sizeof(*pu->parts));
	pu->threads = calloc(in_flight, sizeof(*pu->threads));
	if (!pu->slots || !pu->parts || !pu->threads) {
		part_upload_free(pu);
		return -ENOMEM;
	}
	for (size_t i = 0; i < pu->n_slots; i++) {
		pu->slots[i].fd = -1;
		pu->slots[i].next = pu->free_list;
		pu->free_list = &pu->slots[i];
	}
	if (pu->spool) {
		const char *dir = cfg->spool_dir ? cfg->spool_dir : getenv("TMPDIR");
		if (!dir || !*dir)
			dir = "/tmp";
		for (size_t i = 0; i < pu->n_slots; i++) {
			int fd = spool_open(dir);
			if (fd < 0) {
				part_upload_free(pu);
				return fd;
			}
			pu->slots[i].fd = fd;
		}
	}
	for (unsigned i = 0; i < in_flight; i++) {
		if (pthread_create(&pu->threads[i], NULL, worker_main, pu) != 0) {
			part_upload_free(pu);
			return -EAGAIN;
		}
		pu->n_threads++;
	}
	*ret = pu;
	return 0;
}

static int sink_write(void *opaque, const void *buf, size_t len)
{
	return part_upload_write(opaque, buf, len);
}

struct amber_sink part_upload_sink(struct part_upload *pu)
{
	return (struct amber_sink){ sink_write, pu };
}

/* Hands the writer's slot to the workers. Called with the lock held. */
static void enqueue_locked(struct part_upload *pu)
{
	struct slot *s = pu->cur;
	pu->cur = NULL;
	s->next = NULL;
	if (pu->queue_tail)
		pu->queue_tail->next = s;
	else
		pu->queue_head = s;
	pu->queue_tail = s;
	pu->queued++;
	pthread_cond_broadcast(&pu->cond);
}

/* One wait on pu->cond (lock held) for the workers: a cancel fails the upload instead
 * (which ends every caller's loop, on pu->err). Timed, so a cancel is seen even while
 * every part is in flight. */
static void wait_locked(struct part_upload *pu)
{
	if (pu->cancel && atomic_load(pu->cancel)) {
		fail_locked(pu, -ECANCELED, "cancelled");
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&pu->cond, &pu->lock, &ts);
}

/* Gives the writer a slot for the next part, waiting for one to be freed. */
static int take_slot(struct part_upload *pu)
{
	pthread_mutex_lock(&pu->lock);
	while (!pu->free_list && !pu->err) {
		wait_locked(pu);
	}
	int r = pu->err;
	if (r == 0 && pu->next_index >= pu->n_urls) {
		fail_locked(pu, -EFBIG,
			    "the archive needs more than the %zu parts of %" PRIu64
			    " bytes the panel presigned",
			    pu->n_urls, pu->part_size);
		r = pu->err;
	}
	if (r == 0) {
		struct slot *s = pu->free_list;
		pu->free_list = s->next;
		s->next = NULL;
		s->len = 0;
		s->index = pu->next_index++;
		pu->cur = s;
	}
	pthread_mutex_unlock(&pu->lock);
	if (r == 0 && !pu->spool && !pu->cur->mem) {
		pu->cur->mem = malloc(pu->part_size);
		if (!pu->cur->mem) {
			pthread_mutex_lock(&pu->lock);
			fail_locked(pu, -ENOMEM, "out of memory for a part of %" PRIu64 " bytes",
				    pu->part_size);
			r = pu->err;
			pthread_mutex_unlock(&pu->lock);
		}
	}
	return r;
}

static int fill(struct part_upload *pu, const unsigned char *buf, size_t n)
{
	struct slot *s = pu->cur;
	if (s->mem) {
		memcpy(s->mem + s->len, buf, n);
		s->len += n;
		return 0;
	}
	while (n > 0) {
		ssize_t w = pwrite(s->fd, buf, n, (off_t)s->len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			pthread_mutex_lock(&pu->lock);
			fail_locked(pu, -e, "spooling part %zu: %s", s->index + 1, strerror(e));
			pthread_mutex_unlock(&pu->lock);
			return -e;
		}
		s->len += (uint64_t)w;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

int part_upload_write(struct part_upload *pu, const void *buf, size_t len)
{
	const unsigned char *p = buf;
	while (len > 0) {
		if (stopped(pu)) {
			pthread_mutex_lock(&pu->lock);
			if (!pu->err)
				fail_locked(pu, -ECANCELED, "cancelled");
			int r = pu->err;
			pthread_mutex_unlock(&pu->lock);
			return r;
		}
		if (!pu->cur) {
			int r = take_slot(pu);
			if (r < 0)
				return r;
		}
		uint64_t room = pu->part_size - pu->cur->len;
		size_t n = len < room ? len : (size_t)room;
		int r = fill(pu, p, n);
		if (r < 0)
			return r;
		p += n;
		len -= n;
		if (pu->cur->len == pu->part_size) {
			pthread_mutex_lock(&pu->lock);
			enqueue_locked(pu);
			pthread_mutex_unlock(&pu->lock);
		}
	}
	return 0;
}

int part_upload_finish(struct part_upload *pu)
{
	pthread_mutex_lock(&pu->lock);
	if (pu->cur && pu->cur->len > 0 && !pu->err)
		enqueue_locked(pu);
	pu->closing = true;
	pthread_cond_broadcast(&pu->cond);
	while (!pu->err && pu->done < pu->queued) {
		wait_locked(pu);
	}
	int r = pu->err;
	if (r == 0 && pu->queued == 0)
		fail_locked(pu, -ENODATA, "nothing was written"), r = pu->err;
	pthread_mutex_unlock(&pu->lock);
	return r;
}

const struct part_upload_part *part_upload_parts(const struct part_upload *pu, size_t *ret_n)
{
	*ret_n = pu->err ? 0 : pu->done;
	return pu->parts;
}

uint64_t part_upload_bytes_stored(const struct part_upload *pu)
{
	return atomic_load(&pu->stored);
}

unsigned part_upload_retries(const struct part_upload *pu)
{
	return atomic_load(&pu->retries);
}

const char *part_upload_error(const struct part_upload *pu)
{
	return pu->message;
}

void part_upload_free(struct part_upload *pu)
{
	if (!pu)
		return;
	pthread_mutex_lock(&pu->lock);
	pu->closing = true;
	/* Unfinished: the workers stop mid-transfer; finished: they are idle anyway. */
	atomic_store(&pu->stop, 1);
	if (!pu->err)
		pu->err = -ECANCELED;
	pthread_cond_broadcast(&pu->cond);
	pthread_mutex_unlock(&pu->lock);
	for (size_t i = 0; i < pu->n_threads; i++)
		pthread_join(pu->threads[i], NULL);
	for (size_t i = 0; pu->slots && i < pu->n_slots; i++) {
		free(pu->slots[i].mem);
		if (pu->slots[i].fd >= 0)
			close(pu->slots[i].fd);
	}
	for (size_t i = 0; pu->parts && i < pu->n_urls; i++)
		free(pu->parts[i].etag);
	free(pu->slots);
	free(pu->parts);
	free(pu->threads);
	pthread_mutex_destroy(&pu->lock);
	pthread_cond_destroy(&pu->cond);
	free(pu);
}
