/* log: formatting, escaping and level filtering of diagnostic messages. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
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

/* The length of the UTF-8 sequence at s that may be written as it is (2 to 4), or 0: the byte
 * at s is then escaped on its own. Not overlong, no surrogate, at most U+10FFFF, and none of
 * the characters that act on the display rather than show: C1 controls, U+2028 and U+2029,
 * the bidirectional embeddings, overrides and isolates. */
static size_t utf8_printable(const unsigned char *s, size_t len)
{
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    unsigned char c = s[0];
    size_t n = c < 0xc2 ? 0 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf5 ? 4 : 0;
    uint32_t cp;

    if (n == 0 || len < n)
        return 0;
    cp = c & (0x3fu >> (n - 1));
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3fu);
    }
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || cp < 0xa0 ||
        cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e) ||
        (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return n;
}

/* Appends s[0..len) to out[*n..cap) escaped (log.h), stopping before what would not fit.
 * Returns the bytes of s written. */
static size_t log_escape(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned char c = u[i];
        size_t seq = c >= 0x80 ? utf8_printable(u + i, len - i) : 0;
        if (c >= 0x20 && c != 0x7f && c < 0x80) {
            if (*n + 1 > cap)
                break;
            out[(*n)++] = (char)c;
            i++;
        } else if (seq) {
            if (*n + seq > cap)
                break;
            memcpy(out + *n, u + i, seq);
            *n += seq;
            i += seq;
        } else {
            char e = c == '\n' ? 'n' : c == '\r' ? 'r' : c == '\t' ? 't' : 0;
            if (*n + (e ? 2 : 4) > cap)
                break;
            out[(*n)++] = '\\';
            if (e) {
                out[(*n)++] = e;
            } else {
                out[(*n)++] = 'x';
                out[(*n)++] = hex[c >> 4];
                out[(*n)++] = hex[c & 15];
            }
            i++;
        }
    }
    return i;
}

/* Formats the message, escapes it, and writes the whole line with one call: lines of two
 * threads do not mix. Nothing is allocated (a message about running out of memory works).
 * module NULL: no level or module in the line (log_plain). */
__attribute__((format(printf, 3, 0))) static void log_vmsg(enum log_level level, const char *module,
                                                          const char *fmt, va_list ap)
{
    char msg[LOG_MAX_MESSAGE + 1];
    char line[LOG_MAX_MESSAGE + 192];
    size_t n, len, done;
    int total, head;

    if (module && level > log_threshold)
        return;
    total = vsnprintf(msg, sizeof msg, fmt, ap);
    if (total < 0)
        total = 0;
    len = (size_t)total < sizeof msg ? (size_t)total : sizeof msg - 1;
    head = module ? snprintf(line, 96, "sipscope: %s: %.40s: ", log_names[level], module)
                  : snprintf(line, 96, "sipscope: ");
    n = head < 0 ? 0 : (size_t)head < 96 ? (size_t)head : 95;
    done = log_escape(line, n + LOG_MAX_MESSAGE, &n, msg, len);
    if (done < (size_t)total)
        n += (size_t)snprintf(line + n, sizeof line - n, "... [cut, %d bytes]", total);
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}

void log_msg(enum log_level level, const char *module, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, module, fmt, ap);
    va_end(ap);
}

void log_plain(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(LOG_ERROR, NULL, fmt, ap);
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
