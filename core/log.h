/* log: leveled messages to standard error with a module tag. Never called per packet: callers
 * count per-packet problems in metrics and log at most once per kind (log_once). */
#ifndef SIPSCOPE_LOG_H
#define SIPSCOPE_LOG_H

#include <stdbool.h>

enum log_level {
    LOG_ERROR = 0,
    LOG_WARN,
    LOG_INFO,
    LOG_DEBUG,
};

/* Sets the most verbose level printed (default LOG_INFO). The level is process-wide by nature:
 * it is the one setting every engine instance shares. */
void log_set_level(enum log_level level);

/* Parses "error", "warn", "info" or "debug". Returns 0 and sets *level, or -EINVAL. */
int log_level_parse(const char *name, enum log_level *level);

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Logs only the first time *flag is seen false, then sets it: for "this happened; see the
 * counter" messages that must not repeat. */
void log_once(bool *flag, enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)

#endif
