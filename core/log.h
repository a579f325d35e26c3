/* One line per event on stderr (or a file): time, level, then the message. The sink
 * and threshold are the process's single log configuration, set by main(). */
#ifndef AMBER_LOG_H
#define AMBER_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LEVEL_ERR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Called once by main before threads start. fd is where lines go (stderr: 2). */
void log_setup(int fd, enum log_level threshold);
/* Sends lines to the file at path (appending, created 0640). log_reopen_file opens it
 * again in place (SIGHUP after a rotation): writers never see a closed descriptor. */
int log_open_file(const char *path, enum log_level threshold);
int log_reopen_file(const char *path);
int log_level_parse(const char *name, enum log_level *ret);
const char *log_level_name(int level);

void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(int level, const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif
