#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* The process's one log configuration: written by log_setup before any thread starts,
 * only read afterwards. */
static struct {
	int fd;
	enum log_level threshold;
} log_config = { 2, LOG_LEVEL_NOTICE };

static const char *const level_names[] = {
	[LOG_LEVEL_ERR] = "error", [LOG_LEVEL_WARNING] = "warning",
	[LOG_LEVEL_NOTICE] = "notice", [LOG_LEVEL_INFO] = "info",
	[LOG_LEVEL_DEBUG] = "debug",
};

void log_setup(int fd, enum log_level threshold)
{
	log_config.fd = fd;
	log_config.threshold = threshold;
}

int log_open_file(const char *path, enum log_level threshold)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	log_setup(fd, threshold);
	return 0;
}

int log_reopen_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	/* dup3 swaps the file under the same descriptor number in one step. */
	int r = dup3(fd, log_config.fd, O_CLOEXEC) < 0 ? -errno : 0;
	close(fd);
	return r;
}

int log_level_parse(const char *name, enum log_level *ret)
{
	for (int l = LOG_LEVEL_ERR; l <= LOG_LEVEL_DEBUG; l++) {
		if (strcasecmp(name, level_names[l]) == 0) {
			*ret = (enum log_level)l;
			return 0;
		}
	}
	return -1;
}

const char *log_level_name(int level)
{
	if (level < LOG_LEVEL_ERR)
		level = LOG_LEVEL_ERR;
	if (level > LOG_LEVEL_DEBUG)
		level = LOG_LEVEL_DEBUG;
	return level_names[level];
}

void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
{
	if (level > (int)log_config.threshold)
		return;
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	int k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s%s", ts.tv_nsec / 1000000,
			 log_level_name(level), prefix ? prefix : "", prefix ? " " : "");
	if (k > 0)
		n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	if (k > 0)
		n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
	/* One event, one line: a message with newlines would split a log record. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A single write keeps lines from concurrent threads whole. */
	ssize_t w = write(log_config.fd, line, n);
	(void)w;
}

void log_msg(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}
