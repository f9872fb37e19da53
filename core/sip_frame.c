/* sip_frame: SIP message framing over a TCP byte stream (see sip_frame.h for the rules). */
#include "sip_frame.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

/* RFC 3261 §25.1 token characters. */
static int is_token(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c && memchr("-.!%*_+`'~", c, 10) != NULL;
}

static int is_version(const uint8_t *p, size_t n)
{
    static const char v[] = "sip/2.0";
    if (n < 7)
        return 0;
    for (size_t i = 0; i < 7; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)v[i])
            return 0;
    }
    return 1;
}

/* len less the blanks and CR at the end of line[len). */
static size_t trim_end(const uint8_t *line, size_t len)
{
    while (len && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
        len--;
    return len;
}

/* sip_frame_is_start_line on a line whose end is trimmed already. */
static int start_line_trimmed(const uint8_t *line, size_t len)
{
    size_t i = 0, uri;

    /* Status-Line = SIP-Version SP Status-Code SP Reason-Phrase */
    if (is_version(line, len) && len >= 11 && line[7] == ' ') {
        for (i = 8; i < 11; i++)
            if (line[i] < '0' || line[i] > '9')
                return 0;
        return len == 11 || line[11] == ' ';
    }
    /* Request-Line = Method SP Request-URI SP SIP-Version */
    while (i < len && is_token(line[i]))
        i++;
    if (i == 0 || i == len || line[i] != ' ')
        return 0;
    uri = ++i;
    while (i < len && line[i] > ' ' && line[i] < 0x7f)
        i++;
    if (i == uri || i == len || line[i] != ' ')
        return 0;
    i++;
    return len - i == 7 && is_version(line + i, 7);
}

int sip_frame_is_start_line(const uint8_t *line, size_t len)
{
    return start_line_trimmed(line, trim_end(line, len));
}

/* Whether an unfinished line could still become a start line. */
static int may_be_start(const uint8_t *p, size_t n)
{
    if (n > SIP_FRAME_MAX_LINE)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\r') || p[i] >= 0x7f)
            return 0;
    return 1;
}

/* Whether line[0..n) is text: printable ASCII or tabs. */
static bool text_before(const uint8_t *line, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((line[i] < 0x20 && line[i] != '\t') || line[i] >= 0x7f)
            return false;
    return true;
}

/* Where a start line begins in line[0..n): 0 when the line is one; or further on when the line
 * is the tail of a body without a final line break followed by a start line (a stream picked up
 * mid-message: "...</xml>OPTIONS sip:b SIP/2.0"), which reads as a request line with a method no
 * one uses, or as no start line at all for a status line. Then the start is where the token
 * before the first SP ends with a known method, or where "SIP/2.0 " begins a status line, when
 * what comes before it is text, as a body's tail is (binary bytes before a start line are
 * junk, which a receiver would have choked on too); n when the line holds none. A request line
 * whose method is unknown and ends in no known one stays whole: an extension method. */
static size_t start_in(const uint8_t *line, size_t n)
{
    const uint8_t *sp = memchr(line, ' ', n);
    size_t end = sp ? (size_t)(sp - line) : 0, tok = end; /* the token before the first SP */
    /* The blanks that end the line are trimmed once: trimmed at every candidate below, a line
     * of "xSIP/2.0 " many times over, ending in as many blanks, cost time quadratic in its
     * length (a 60,000-byte segment of it took 120 ms). */
    size_t t = trim_end(line, n);
    bool whole = start_line_trimmed(line, t);

    while (tok > 0 && is_token(line[tok - 1]))
        tok--;
    if (whole && sip_method_id(slice_make((const char *)line, end)) != SIP_METHOD_OTHER)
        return 0;
    /* The longest method that ends the token: PRACK, not the ACK at its end. */
    size_t best = 0;
    for (int m = SIP_METHOD_OTHER + 1; m < SIP_METHOD_COUNT; m++) {
        const char *name = sip_method_name((enum sip_method)m);
        size_t k = strlen(name);
        if (k > best && end >= tok + k && memcmp(line + end - k, name, k) == 0)
            best = k;
    }
    if (best && text_before(line, end - best) &&
        start_line_trimmed(line + end - best, t - (end - best)))
        return end - best;
    if (whole)
        return 0;
    /* A status line is 11 bytes at least, without the blanks after it. */
    for (size_t k = 1; k + 11 <= t; k++) {
        if (!text_before(line + k - 1, 1))
            return n; /* binary junk so far: nothing after it counts */
        if ((line[k] == 'S' || line[k] == 's') && is_version(line + k, t - k) &&
            line[k + 7] == ' ' && start_line_trimmed(line + k, t - k))
            return k;
    }
    return n;
}

/* Looks for a start line from data[from]; from is at a line start. Returns its offset, or
 * where to stop (keeping an unfinished line that may be one), with *found set accordingly. */
static size_t find_start(const uint8_t *data, size_t len, size_t from, int *found)
{
    size_t at = from;
    *found = 0;
    while (at < len) {
        const uint8_t *nl = memchr(data + at, '\n', len - at);
        if (!nl)
            return may_be_start(data + at, len - at) ? at : len;
        size_t n = (size_t)(nl - (data + at)), k = start_in(data + at, n);
        if (k < n) {
            *found = 1;
            return at + k;
        }
        at += n + 1;
    }
    return len;
}

/* rejected_length's answers besides a length. */
#define LENGTH_UNKNOWN 0
#define LENGTH_WAIT (-1)

/* A Content-Length value (RFC 3261 §20.14: 1*DIGIT, blanks around it trimmed) of at most
 * SIP_MAX_MSG, or -1. */
static int32_t length_value(const uint8_t *p, size_t n)
{
    int32_t v = 0;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    while (n && (*p == ' ' || *p == '\t'))
        p++, n--;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
        if (v > SIP_MAX_MSG)
            return -1;
    }
    return v;
}

/* How long the message at p[0..n), which sip_parse rejected, is (see "A message that sip_parse
 * rejects" in sip_frame.h): its header block up to the first empty line plus the value of its
 * first Content-Length, when every line of that block is text (no control byte but HT, a CR
 * only before the LF), no line after the first holds a start line (one does when the rejected
 * bytes were junk before a message: that message is not to be skipped with them), the first
 * Content-Length is a number on one line, the block has at most REJECTED_MAX_LINES lines, and
 * the whole is at most SIP_MAX_MSG bytes. LENGTH_UNKNOWN when it is not so; LENGTH_WAIT while
 * the block may still end that way.
 *
 * The wait is parsed again from the start each time a line ends (still_waiting): without the
 * line cap, a stream of short lines after a bad one (2 bytes a segment, up to 64 KiB) cost time
 * quadratic in its length, some 20 s of the engine thread for one connection. With it, at most
 * REJECTED_MAX_LINES passes over at most SIP_MAX_MSG bytes; a longer block is resynchronised
 * line by line, in linear time, as before lengths were trusted. 64 lines hold any real header
 * block that a parse rejects for one bad line. */
#define REJECTED_MAX_LINES 64

static int64_t rejected_length(const uint8_t *p, size_t n)
{
    size_t at = 0;
    int32_t cl = -2;      /* -2: no Content-Length yet; -1: the first is no number */
    bool cl_last = false; /* the line before was the first Content-Length */

    for (size_t line = 0; at < SIP_MAX_MSG; line++) {
        if (line == REJECTED_MAX_LINES)
            return LENGTH_UNKNOWN;
        const uint8_t *nl = memchr(p + at, '\n', n - at);
        size_t k = nl ? (size_t)(nl - (p + at)) : n - at, t = k;
        if (t && p[at + t - 1] == '\r')
            t--; /* the line's CR; without an LF yet, the last byte, which may become one */
        for (size_t i = 0; i < t; i++) {
            uint8_t c = p[at + i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return LENGTH_UNKNOWN;
        }
        if (!nl)
            return n < SIP_MAX_MSG ? LENGTH_WAIT : LENGTH_UNKNOWN;
        if (t == 0) {
            if (line == 0 || cl < 0)
                return LENGTH_UNKNOWN;
            uint64_t total = at + k + 1 + (uint64_t)cl;
            return total <= SIP_MAX_MSG ? (int64_t)total : LENGTH_UNKNOWN;
        }
        if (line > 0 && start_in(p + at, k) < k)
            return LENGTH_UNKNOWN;
        if (line > 0 && (p[at] == ' ' || p[at] == '\t')) {
            if (cl_last)
                return LENGTH_UNKNOWN; /* a folded Content-Length: left to line by line */
        } else if (line > 0) {
            const uint8_t *colon = memchr(p + at, ':', t);
            cl_last = false;
            if (colon && cl == -2) {
                size_t name = (size_t)(colon - (p + at));
                while (name && (p[at + name - 1] == ' ' || p[at + name - 1] == '\t'))
                    name--;
                if (sip_header_id(slice_make((const char *)p + at, name)) ==
                    SIP_HDR_CONTENT_LENGTH) {
                    cl = length_value(colon + 1, t - (size_t)(colon + 1 - (p + at)));
                    cl_last = true;
                }
            }
        }
        at += k + 1;
    }
    return LENGTH_UNKNOWN;
}

/* The header block is complete but the message is longer than SIP_MAX_MSG: parse the headers
 * and what is here of the body as a datagram. Returns the message's full length, or 0 when
 * the headers do not parse that way either. */
static uint64_t oversized(const struct sip_frame_ops *ops, void *ctx, const uint8_t *p, size_t n,
                          const struct sip_msg *stream_msg, struct sip_header *hdrs,
                          size_t max_hdrs)
{
    struct sip_msg msg;
    uint64_t cl = (uint64_t)stream_msg->content_length;
    if (n > SIP_MAX_MSG)
        n = SIP_MAX_MSG;
    if (sip_parse((const char *)p, n, SIP_PARSE_DATAGRAM, &msg, hdrs, max_hdrs) <= 0 ||
        msg.content_length < 0)
        return 0;
    msg.anomalies &= ~(uint32_t)(SIP_ANOM_BODY_TRUNCATED | SIP_ANOM_TRAILING_DATA);
    ops->error(ctx, 0, "tcp_oversized_body");
    ops->message(ctx, &msg);
    return (uint64_t)((const uint8_t *)msg.body.p - p) + cl;
}

/* A message left unfinished is offered again with every segment that follows; parsed again
 * from its start each time, a message in 1-byte segments cost time quadratic in its length (up
 * to the 64 KiB pending cap). Its chunk's mark says how far the last parse got, so that the
 * framer parses again only when the new bytes can change sip_parse's answer:
 * - MARK_BODY | n: the header block is complete and the message is n bytes long: -EAGAIN until
 *   n bytes are there (the header block is what it was; the body's bytes are not read);
 * - n: the header block was unfinished in the first n bytes. More bytes keep it -EAGAIN unless
 *   they complete a line (an LF, and byte n - 1 too: after a line's LF the parse looks at the
 *   next line's first byte, for folding), hold a control byte the lines reject (any but HT, and
 *   a CR only as the last byte: byte n - 1 too, a CR then last and no longer; and DEL), or make
 *   SIP_MAX_MSG bytes (E2BIG). The same holds for a rejected message waiting for the end of
 *   its header block (rejected_length's LENGTH_WAIT): its error is what it was, and only those
 *   bytes can end the wait.
 * The parse is then skipped with the same result: nothing is reported, nothing is used. */
#define MARK_BODY 0x80000000u

static bool still_waiting(const struct tcp_stream_chunk *chunk)
{
    uint32_t mark = chunk->mark, len = chunk->len;

    if (mark & MARK_BODY)
        return len < (mark & ~MARK_BODY);
    if (mark > len || len >= SIP_MAX_MSG)
        return false;
    for (uint32_t i = mark - 1; i < len; i++) {
        uint8_t c = chunk->data[i];
        if ((c < 0x20 && c != '\t' && !(c == '\r' && i + 1 == len)) || c == 0x7f)
            return false; /* DEL: rejected_length gives a rejected block's wait up at it */
    }
    return true;
}

/* The mark for a message whose parse at p[0..n) said -EAGAIN (see still_waiting). */
static uint32_t waiting_mark(const uint8_t *p, size_t n, const struct sip_msg *msg)
{
    if (msg->content_length >= 0 && msg->body.p)
        return MARK_BODY |
               (uint32_t)((const uint8_t *)msg->body.p - p + (uint64_t)msg->content_length);
    return (uint32_t)n;
}

uint64_t sip_frame_consume(const struct sip_frame_ops *ops, void *ctx,
                           struct tcp_stream_chunk *chunk, int quiet, struct sip_header *hdrs,
                           size_t max_hdrs)
{
    const uint8_t *data = chunk->data;
    size_t len = chunk->len, pos = 0;

    if (chunk->mark && !(chunk->flags & TCP_STREAM_LOST) && still_waiting(chunk)) {
        if (!(chunk->mark & MARK_BODY))
            chunk->mark = chunk->len; /* as a parse would have left it: each byte looked at once */
        return 0;
    }
    chunk->mark = 0;
    while (pos < len) {
        struct sip_msg msg;
        int rc;

        if (data[pos] == '\r' || data[pos] == '\n') {
            pos++; /* keep-alive, or the line break ending a skipped line */
            continue;
        }
        if (chunk->flags & TCP_STREAM_LOST) {
            int found;
            size_t at = find_start(data, len, pos, &found);
            if (at > pos)
                chunk->flags |= SIP_FRAME_SKIPPED;
            pos = at;
            if (!found)
                break;
            /* A parse error already reported covers what its resynchronisation skips. */
            if ((chunk->flags & (SIP_FRAME_SKIPPED | SIP_FRAME_REPORTED)) == SIP_FRAME_SKIPPED)
                ops->error(ctx, 0, "tcp_resync");
            chunk->flags &= (uint8_t) ~(TCP_STREAM_LOST | SIP_FRAME_SKIPPED | SIP_FRAME_REPORTED);
        }
        rc = sip_parse((const char *)data + pos, len - pos, SIP_PARSE_STREAM, &msg, hdrs, max_hdrs);
        if (rc > 0) {
            chunk->flags |= SIP_FRAME_SIP_SEEN;
            ops->message(ctx, &msg);
            pos += (size_t)rc;
            continue;
        }
        if (rc == -EAGAIN) {
            chunk->mark = waiting_mark(data + pos, len - pos, &msg);
            break;
        }
        if (rc == -E2BIG && msg.error == SIP_ERR_TOO_LONG && msg.content_length >= 0) {
            uint64_t total = oversized(ops, ctx, data + pos, len - pos, &msg, hdrs, max_hdrs);
            if (total) {
                chunk->flags |= SIP_FRAME_SIP_SEEN;
                if (total <= len - pos) {
                    pos += (size_t)total;
                    continue;
                }
                if ((uint64_t)msg.content_length <= SIP_FRAME_MAX_SKIP)
                    return pos + total;
                /* An implausible body: resynchronise after the header block, not past it. */
                pos += (size_t)(total - (uint64_t)msg.content_length);
                chunk->flags |= TCP_STREAM_LOST | SIP_FRAME_REPORTED;
                continue;
            }
        }
        /* Rejected: where does it end? */
        int64_t whole = rejected_length(data + pos, len - pos);
        bool silent = quiet && !(chunk->flags & SIP_FRAME_SIP_SEEN);
        if (whole == LENGTH_WAIT && !silent) {
            chunk->mark = (uint32_t)(len - pos); /* an unfinished header block's mark */
            break;
        }
        /* Quiet, a stream that carried no SIP yet may be any text protocol, whose lines could
         * be held up to SIP_MAX_MSG bytes waiting for an empty line: it is not waited for. */
        if (whole == LENGTH_WAIT)
            whole = LENGTH_UNKNOWN;
        if (silent)
            chunk->flags |= SIP_FRAME_SKIPPED;
        else if (!(chunk->flags & SIP_FRAME_REPORTED))
            ops->error(ctx, 1, sip_error_name((enum sip_error)msg.error));
        if (whole > 0) {
            /* Skipped whole: the next message is expected right after it. Quiet, the bytes
             * count as skipped, reported as tcp_resync once a message follows. */
            if (silent)
                chunk->flags |= TCP_STREAM_LOST;
            if ((uint64_t)whole > len - pos)
                return pos + (uint64_t)whole;
            pos += (size_t)whole;
            continue;
        }
        chunk->flags |= TCP_STREAM_LOST;
        if (!silent)
            chunk->flags |= SIP_FRAME_REPORTED;
        /* Resynchronise from the line after the one where this message began. */
        const uint8_t *nl = memchr(data + pos, '\n', len - pos);
        pos = nl ? (size_t)(nl - data) + 1 : len;
    }
    return pos;
}
