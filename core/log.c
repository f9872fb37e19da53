/* log: formatting and level filtering of diagnostic messages. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static enum log_level log_threshold = LOG_INFO;

static const char *const log_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_threshold = level;
}

int log_level_parse(const char *name, enum log_level *level)
{
    for (int i = 0; i <= LOG_DEBUG; i++) {
        if (strcmp(name, log_names[i]) == 0) {
            *level = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level level, const char *module,
                                                          const char *fmt, va_list ap)
{
    if (level > log_threshold)
        return;
    fprintf(stderr, "sipscope: %s: %s: ", log_names[level], module);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, module, fmt, ap);
    va_end(ap);
}

void log_once(bool *flag, enum log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    if (*flag)
        return;
    *flag = true;
    va_start(ap, fmt);
    log_vmsg(level, module, fmt, ap);
    va_end(ap);
}
