/* log: leveled messages to standard error with a module tag. Never called per packet: callers
 * count per-packet problems in metrics and log at most once per kind (log_once).
 *
 * A message is always one line, whatever its arguments carry: text from rules (sip.log, their
 * errors), file names and peers' bytes go through %s. Control bytes are escaped (\n, \r, \t,
 * others and DEL as \xHH), as are bytes that are not UTF-8, the C1 controls (U+0080..U+009F,
 * which some terminals obey like ESC), the line and paragraph separators and the bidirectional
 * overrides, so no argument can start a line, move the cursor or restyle the screen. A
 * backslash is left as it is. A message is at most LOG_MAX_MESSAGE bytes as written; a longer
 * one is cut and ends with "... [cut, N bytes]", N its length before escaping. */
#ifndef SIPSCOPE_LOG_H
#define SIPSCOPE_LOG_H

#include <stdbool.h>

#define LOG_MAX_MESSAGE 4096 /* bytes of a message as written, escapes included */

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

/* "sipscope: " and the message, escaped and capped as any, whatever the level: the command
 * line's own errors (a rule that fails to load: its text is the rule's). */
void log_plain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Logs only the first time *flag is seen false, then sets it: for "this happened; see the
 * counter" messages that must not repeat. */
void log_once(bool *flag, enum log_level level, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define log_error(mod, ...) log_msg(LOG_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...) log_msg(LOG_DEBUG, mod, __VA_ARGS__)

#endif
