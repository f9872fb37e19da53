/* ws_frame: SIP over WebSocket framing on a TCP byte stream (see ws_frame.h for the rules). */
#include "ws_frame.h"

#include <stdbool.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "slice.h"

enum {
    OP_CONTINUATION = 0x0,
    OP_TEXT = 0x1,
    OP_BINARY = 0x2,
    OP_CLOSE = 0x8,
    OP_PONG = 0xa,
};

struct frame {
    bool fin, masked;
    uint8_t rsv, opcode;
    uint8_t key[4];
    size_t head;  /* header bytes, the masking key included */
    uint64_t len; /* payload bytes */
};

/* The frame header at p[n) (RFC 6455 §5.2). Returns 1 with *f filled, 0 when more bytes are
 * needed, -1 for a 64-bit length with its top bit set. */
static int read_head(const uint8_t *p, size_t n, struct frame *f)
{
    uint64_t len;
    size_t head = 2;

    if (n < 2)
        return 0;
    f->fin = p[0] >> 7;
    f->rsv = (p[0] >> 4) & 7;
    f->opcode = p[0] & 15;
    f->masked = p[1] >> 7;
    len = p[1] & 127;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        head = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        if (len >> 63)
            return -1;
        head = 10;
    }
    if (f->masked) {
        if (n < head + 4)
            return 0;
        memcpy(f->key, p + head, 4);
        head += 4;
    }
    f->head = head;
    f->len = len;
    return 1;
}

/* out[n] = in[n] unmasked with key, from the payload's first byte (RFC 6455 §5.3): eight bytes
 * at a time, the key repeated twice in memory order whatever the byte order. */
static void unmask(uint8_t *out, const uint8_t *in, size_t n, const uint8_t key[4])
{
    uint8_t k8[8];
    uint64_t k;
    size_t i = 0;

    memcpy(k8, key, 4);
    memcpy(k8 + 4, key, 4);
    memcpy(&k, k8, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, in + i, 8);
        v ^= k;
        memcpy(out + i, &v, 8);
    }
    for (; i < n; i++)
        out[i] = in[i] ^ key[i & 3];
}

/* A frame's payload bytes [off, off + n) into out, unmasked if masked; off is a multiple of 4,
 * so that the key's phase is 0. */
static void payload_copy(uint8_t *out, const uint8_t *frame, const struct frame *f, size_t off,
                         size_t n)
{
    if (f->masked)
        unmask(out, frame + f->head + off, n, f->key);
    else
        memcpy(out, frame + f->head + off, n);
}

/* Whether b can start a frame: no reserved bit, and a data opcode, or a control one with FIN. */
static bool frame_start_byte(uint8_t b)
{
    unsigned op = b & 15;
    return (b & 0x70) == 0 && (op <= OP_BINARY || ((b & 0x80) && op >= OP_CLOSE && op <= OP_PONG));
}

/* Whether b can start the first frame of a message: FIN or not, text or binary, no reserved
 * bit. */
static bool message_start_byte(uint8_t b)
{
    return (b & 0x7c) == 0 && (b & 3) != 0 && (b & 3) != 3;
}

/* What the start of a frame's first line tells (first_line, sip_frame_at). */
enum probe {
    PROBE_NO,   /* not a SIP start line, or not a frame to take a stream up from */
    PROBE_YES,  /* a whole frame carrying a SIP start line, followed by a frame */
    PROBE_WAIT, /* a SIP start line, or the beginning of one (begins_start_line), in a frame
                 * not whole: worth waiting for */
    PROBE_WEAK, /* too little of it here to tell: not waited for */
};

/* Whether line[k) begins the way start lines do: "SIP/2.0 ", or a method in capitals, a space
 * and a URI scheme with its colon ("INVITE sip:"). Bytes that merely could still become one are
 * not enough to hold a segment for: unmasked with a key taken from the data, any text's tail
 * (UTF-8 especially) turns printable often enough. */
static bool begins_start_line(const uint8_t *line, size_t k)
{
    size_t i = 0, j;

    if (k >= 8 && memcmp(line, "SIP/2.0 ", 8) == 0)
        return true;
    while (i < k && line[i] >= 'A' && line[i] <= 'Z')
        i++;
    if (i < 3 || i == k || line[i] != ' ')
        return false;
    for (j = i + 1; j < k && line[j] >= 'a' && line[j] <= 'z'; j++)
        ;
    return j - (i + 1) >= 3 && j < k && line[j] == ':';
}

/* The first line of the payload of frame f at p, of which have bytes are here: PROBE_YES when
 * it is a SIP start line; PROBE_NO when it is not or cannot become one (a byte no start line
 * has, or longer than SIP_FRAME_MAX_LINE); PROBE_WAIT or PROBE_WEAK when it is not whole, by
 * whether what is here begins like one. Unmasked 64 bytes at a time, and only as far as it
 * could still be one. *work counts the bytes looked at. */
static enum probe first_line(const uint8_t *p, const struct frame *f, size_t have, size_t *work)
{
    uint8_t line[SIP_FRAME_MAX_LINE + 1];
    size_t want = f->len < sizeof line ? (size_t)f->len : sizeof line;
    size_t lim = have < want ? have : want;

    for (size_t off = 0; off < lim; off += 64) {
        size_t k = lim - off < 64 ? lim - off : 64;
        payload_copy(line + off, p, f, off, k);
        *work += k;
        for (size_t i = off; i < off + k; i++) {
            uint8_t c = line[i];
            if (c == '\n')
                return sip_frame_is_start_line(line, i) ? PROBE_YES : PROBE_NO;
            if ((c < 0x20 && c != '\t' && c != '\r') || c >= 0x7f)
                return PROBE_NO;
        }
    }
    if (lim == want)
        return PROBE_NO;
    return begins_start_line(line, lim) ? PROBE_WAIT : PROBE_WEAK;
}

/* Whether p[n) starts with a SIP start line, or the beginning of one, as it is: SIP over TCP
 * whose body ends in a byte that can start a frame (UTF-8's "。" ends in 0x82, binary bodies
 * in anything) makes the next request look like an unmasked frame, its first letter read as
 * the length ('O' = 79) and the rest ("PTIONS sip:...") as a start line. The start line read
 * from the length byte on tells them apart: a real frame that short carries no SIP request
 * (the mandatory headers alone are longer). */
static bool text_line_from(const uint8_t *p, size_t n)
{
    size_t k = n < SIP_FRAME_MAX_LINE ? n : SIP_FRAME_MAX_LINE;
    const uint8_t *nl = memchr(p, '\n', k);
    return nl ? sip_frame_is_start_line(p, (size_t)(nl - p)) != 0 : begins_start_line(p, k);
}

/* Whether p[n) starts with a frame a stream that lost its place can be taken up from
 * (ws_frame.h): a message's first frame, text or binary, whose payload starts with a SIP start
 * line, followed by nothing or a frame. One that ends where p does is taken: WebSocket sends a
 * message per segment, and a connection then idle for a while must not hold its last one (its
 * response, in the other direction, would come first). One not whole is PROBE_WAIT. A header
 * not whole, or a first line too short to tell, is PROBE_WEAK: such tails are common at the end
 * of any segment (UTF-8 text ends in bytes like 0x81), and holding every one would delay SIP
 * over TCP. */
static enum probe sip_frame_at(const uint8_t *p, size_t n, size_t *work)
{
    struct frame f;
    enum probe r;
    size_t end;
    uint8_t c;
    int h;

    if ((h = read_head(p, n, &f)) <= 0)
        return h == 0 ? PROBE_WEAK : PROBE_NO;
    if (f.len == 0 || f.len > WS_FRAME_MAX_MESSAGE)
        return PROBE_NO;
    if (n == f.head)
        return PROBE_WEAK;
    /* A start line begins with a letter ("SIP/2.0", a method): most bytes that only look like
     * a frame header end here, before any copy. */
    c = (uint8_t)(p[f.head] ^ (f.masked ? f.key[0] : 0));
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
        return PROBE_NO;
    if ((r = first_line(p, &f, n - f.head, work)) == PROBE_NO || r == PROBE_WEAK)
        return r;
    if (!f.masked && f.head == 2 && text_line_from(p + 1, n - 1))
        return PROBE_NO;
    if (r == PROBE_WAIT)
        return r;
    end = f.head + (size_t)f.len;
    if (end > n)
        return PROBE_WAIT;
    return end == n || frame_start_byte(p[end]) ? PROBE_YES : PROBE_NO;
}

/* The offset of the first byte at or after p[from] that can start a message's frame; n when
 * none. Sixteen bytes at a time where SSE2 is there: on a stream that is no SIP at all (offline,
 * every TCP stream is looked at), this runs over every byte. */
static size_t next_candidate(const uint8_t *p, size_t n, size_t from)
{
    size_t i = from;
#ifdef __SSE2__
    const __m128i hi = _mm_set1_epi8(0x7c), lo = _mm_set1_epi8(3), zero = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
        __m128i low = _mm_and_si128(v, lo);
        /* (b & 0x7c) == 0, and (b & 3) is 1 or 2 */
        __m128i ok =
            _mm_andnot_si128(_mm_or_si128(_mm_cmpeq_epi8(low, zero), _mm_cmpeq_epi8(low, lo)),
                             _mm_cmpeq_epi8(_mm_and_si128(v, hi), zero));
        unsigned m = (unsigned)_mm_movemask_epi8(ok);
        if (m)
            return i + (unsigned)__builtin_ctz(m);
    }
#endif
    for (; i < n; i++)
        if (message_start_byte(p[i]))
            return i;
    return n;
}

/* The first offset of p[n) that a stream that lost its place can be taken up from
 * (sip_frame_at): PROBE_YES or PROBE_WAIT with *at set to it; PROBE_NO when there is none, *at
 * then being the first PROBE_WEAK candidate's offset (n if none), where the bytes that may still
 * become a frame begin. The candidates and the first lines looked at are bounded by a budget
 * proportional to n, so that bytes made to look like frames cost linear time, also when an
 * offer held is offered again; past it, none is found in this offer. */
static enum probe find_sip_frame(const uint8_t *p, size_t n, size_t *at)
{
    size_t work = 0, budget = 4 * n + 2 * SIP_FRAME_MAX_LINE, weak = n;

    for (size_t i = next_candidate(p, n, 0); i < n && work <= budget;
         i = next_candidate(p, n, i + 1)) {
        enum probe r = sip_frame_at(p + i, n - i, &work);
        work += 16; /* a candidate rejected at once costs too */
        if (r == PROBE_YES || r == PROBE_WAIT) {
            *at = i;
            return r;
        }
        if (r == PROBE_WEAK && weak == n)
            weak = i;
    }
    *at = weak;
    return PROBE_NO;
}

/* The stream found its place again: tcp_resync when bytes were skipped since it lost it (unless
 * a reported error began that), and the resynchronisation's flags cleared. */
static void resynced(const struct ws_frame_ops *ops, void *ctx, struct tcp_stream_chunk *chunk)
{
    if ((chunk->flags & (TCP_STREAM_LOST | SIP_FRAME_SKIPPED | SIP_FRAME_REPORTED)) ==
        (TCP_STREAM_LOST | SIP_FRAME_SKIPPED))
        ops->error(ctx, "tcp_resync");
    chunk->flags &=
        (uint8_t) ~(TCP_STREAM_LOST | SIP_FRAME_SKIPPED | SIP_FRAME_REPORTED | WS_FRAME_DROPPING);
}

/* p[n) against the literal s[len], byte for byte: 1 when p starts with s, 0 when it cannot,
 * -1 when p is a shorter prefix of it. */
static int starts_with(const uint8_t *p, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (i == n)
            return -1;
        if (p[i] != (uint8_t)s[i])
            return 0;
    }
    return 1;
}

/* Whether the comma-separated list v holds token, case-insensitively. */
static bool list_has(struct slice v, struct slice token)
{
    const char *e = v.p + v.len;

    for (const char *s = v.p;;) {
        const char *comma = memchr(s, ',', (size_t)(e - s));
        const char *end = comma ? comma : e;
        if (slice_eq_nocase(slice_trim(slice_make(s, (size_t)(end - s))), token))
            return true;
        if (!comma)
            return false;
        s = comma + 1;
    }
}

/* Whether the header block head[n) (lines after the first, CRLF-ended) has a header named
 * name whose list holds token (both case-insensitively). A line that starts with whitespace
 * continues the one before, and is not a header of its own. */
static bool header_lists(const uint8_t *head, size_t n, struct slice name, struct slice token)
{
    const char *p = (const char *)head, *e = p + n;

    while (p < e) {
        const char *eol = memchr(p, '\n', (size_t)(e - p));
        const char *end = eol ? eol : e, *colon = memchr(p, ':', (size_t)(end - p));
        if (colon && *p != ' ' && *p != '\t' &&
            slice_eq_nocase(slice_trim(slice_make(p, (size_t)(colon - p))), name) &&
            list_has(slice_make(colon + 1, (size_t)(end - colon - 1)), token))
            return true;
        if (!eol)
            break;
        p = eol + 1;
    }
    return false;
}

/* The WebSocket handshake at the start of p[n): its length through the empty line after its
 * head; 0 when p does not start with one; -1 when more bytes are needed to tell. The client's
 * is a GET for HTTP/1.1 that asks to upgrade to websocket with the "sip" subprotocol (RFC 7118
 * §4: clients must offer it), the server's a 101 that picks "sip". */
static long handshake(const uint8_t *p, size_t n)
{
    static const char get[] = "GET ", resp[] = "HTTP/1.1 101";
    int g = starts_with(p, n, get, sizeof get - 1);
    int r = starts_with(p, n, resp, sizeof resp - 1);
    const uint8_t *eol;
    size_t scan = n < WS_FRAME_MAX_HANDSHAKE ? n : WS_FRAME_MAX_HANDSHAKE, end = 0, first;

    if (g == 0 && r == 0)
        return 0;
    if (g < 0 || r < 0)
        return -1;
    for (size_t i = 3; i < scan; i++) {
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') {
            end = i + 1;
            break;
        }
    }
    if (!end)
        return n < WS_FRAME_MAX_HANDSHAKE ? -1 : 0;
    eol = memchr(p, '\n', end);
    first = (size_t)(eol - p) + 1;
    if (g == 1) {
        static const char version[] = " HTTP/1.1\r\n";
        size_t vlen = sizeof version - 1;
        if (first < vlen + 4 || memcmp(p + first - vlen, version, vlen) != 0 ||
            !header_lists(p + first, end - first, SLICE_LIT("upgrade"), SLICE_LIT("websocket")))
            return 0;
    } else if (p[sizeof resp - 1] != ' ' && p[sizeof resp - 1] != '\r') {
        return 0; /* "HTTP/1.1 1010" */
    }
    if (!header_lists(p + first, end - first, SLICE_LIT("sec-websocket-protocol"),
                      SLICE_LIT("sip")))
        return 0;
    return (long)end;
}

enum ws_frame_start ws_frame_detect(const struct ws_frame_ops *ops, void *ctx,
                                    struct tcp_stream_chunk *chunk, size_t *skip)
{
    long hs = handshake(chunk->data, chunk->len);
    size_t at = 0;

    *skip = 0;
    if (hs < 0)
        return WS_FRAME_MORE;
    if (hs == 0) {
        enum probe r;
        if (!(chunk->flags & TCP_STREAM_LOST))
            return WS_FRAME_NOT;
        if ((r = find_sip_frame(chunk->data, chunk->len, &at)) != PROBE_YES) {
            *skip = r == PROBE_WAIT ? at : 0;
            return r == PROBE_WAIT ? WS_FRAME_MORE : WS_FRAME_NOT;
        }
        if (at)
            chunk->flags |= SIP_FRAME_SKIPPED;
        hs = (long)at;
    }
    resynced(ops, ctx, chunk);
    chunk->flags |= WS_FRAME_ON;
    *skip = (size_t)hs;
    return WS_FRAME_ACCEPTED;
}

/* Hands on a message's bytes unless they are line breaks only (a keep-alive). */
static void message(const struct ws_frame_ops *ops, void *ctx, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\r' && p[i] != '\n') {
            ops->message(ctx, p, n);
            return;
        }
    }
}

/* Whether a control frame is well formed: final, at most 125 bytes, a known opcode. */
static bool control_ok(const struct frame *f)
{
    return f->fin && !f->rsv && f->len <= 125 && f->opcode <= OP_PONG;
}

/* A frame that breaks the protocol, reported: its length is not trusted, and the stream looks
 * for its place again from it (TCP_STREAM_LOST), without a tcp_resync of its own. */
static void broken(const struct ws_frame_ops *ops, void *ctx, struct tcp_stream_chunk *chunk)
{
    ops->error(ctx, "ws_bad_frame");
    chunk->flags |= TCP_STREAM_LOST | SIP_FRAME_REPORTED;
    chunk->flags &= (uint8_t)~WS_FRAME_DROPPING;
}

/* Joins the payloads of the data frames in p[0..n), a fragmented message's frames all read and
 * checked by fragmented(), into scratch. Returns the message's length. */
static size_t join(const uint8_t *p, size_t n, uint8_t *scratch)
{
    size_t pos = 0, len = 0;

    while (pos < n) {
        struct frame f;
        read_head(p + pos, n - pos, &f);
        if (f.opcode < OP_CLOSE) {
            payload_copy(scratch + len, p + pos, &f, 0, (size_t)f.len);
            len += (size_t)f.len;
        }
        pos += f.head + (size_t)f.len;
    }
    return len;
}

/* The fragmented message whose first frame (text or binary, not final, no reserved bit: checked
 * by the caller) starts p[n). Once its final fragment is there, the fragments are joined into
 * scratch and handed on, and the bytes its frames take (with the control frames among them)
 * are returned; 0 while more are needed. Otherwise (ws_frame.h says how each is reported):
 * - a new message among the fragments: the bytes before it are returned, for the caller to read
 *   it;
 * - a frame that breaks the protocol: the bytes before it, the stream resynchronising;
 * - a message that outgrows WS_FRAME_MAX_MESSAGE or WS_FRAME_MAX_SPAN (checked before its
 *   frames are waited for): the bytes through the frame that outgrew it, possibly past n
 *   (tcp_stream then skips the rest of it as it comes), its continuations to come skipped.
 * Every frame here ends within WS_FRAME_MAX_SPAN, so what waits is at most that and the start of
 * one more header. */
static uint64_t fragmented(const struct ws_frame_ops *ops, void *ctx,
                           struct tcp_stream_chunk *chunk, const uint8_t *p, size_t n,
                           uint8_t *scratch)
{
    size_t pos = 0, len = 0;

    for (;;) {
        struct frame f;
        int r = read_head(p + pos, n - pos, &f);
        uint64_t end;

        if (r < 0) {
            broken(ops, ctx, chunk);
            return pos;
        }
        if (r == 0) /* pos <= WS_FRAME_MAX_SPAN: with a header's start, it can be held */
            return 0;
        if (pos && f.opcode != OP_CONTINUATION && f.opcode < OP_CLOSE) {
            /* A new message: the caller reads it. One that breaks the protocol is reported
             * there, for both. */
            if (f.opcode <= OP_BINARY)
                ops->error(ctx, "ws_bad_frame");
            return pos;
        }
        if ((f.opcode >= OP_CLOSE && !control_ok(&f)) || (pos && f.rsv)) {
            broken(ops, ctx, chunk);
            return pos;
        }
        end = pos + f.head + f.len;
        if (end > WS_FRAME_MAX_SPAN ||
            (f.opcode < OP_CLOSE && len + f.len > WS_FRAME_MAX_MESSAGE)) {
            ops->error(ctx, "ws_oversized");
            if (!(f.fin && f.opcode == OP_CONTINUATION))
                chunk->flags |= WS_FRAME_DROPPING;
            return end;
        }
        if (end > n)
            return 0;
        if (f.opcode >= OP_CLOSE) { /* a control frame may come between fragments (§5.4) */
            pos = (size_t)end;
            continue;
        }
        /* Joined once the final fragment is there: copied at every offer while the message
         * waited, its fragments cost time quadratic in its length. */
        len += (size_t)f.len;
        pos = (size_t)end;
        if (f.fin) {
            message(ops, ctx, scratch, join(p, pos, scratch));
            return pos;
        }
    }
}

uint64_t ws_frame_consume(const struct ws_frame_ops *ops, void *ctx, struct tcp_stream_chunk *chunk,
                          uint8_t *scratch)
{
    const uint8_t *p = chunk->data;
    size_t n = chunk->len, pos = 0;

    for (;;) {
        struct frame f;
        uint64_t total;
        int r;

        if (chunk->flags & TCP_STREAM_LOST) { /* the first frame to go on from, anywhere */
            size_t at;
            enum probe found = find_sip_frame(p + pos, n - pos, &at);
            if (at)
                chunk->flags |= SIP_FRAME_SKIPPED;
            pos += at;
            if (found != PROBE_YES) /* skipped up to what may still become a frame, or all */
                return pos;
            resynced(ops, ctx, chunk);
        }
        if (pos == n)
            return pos;
        /* A handshake again (a client retrying after a 401): 'G' and 'H' start no frame (they
         * have reserved bits set). */
        if (p[pos] == 'G' || p[pos] == 'H') {
            long hs = handshake(p + pos, n - pos);
            if (hs < 0)
                return pos;
            if (hs > 0) {
                pos += (size_t)hs;
                continue;
            }
        }
        if ((r = read_head(p + pos, n - pos, &f)) == 0)
            return pos;
        if (r < 0) {
            broken(ops, ctx, chunk);
            continue;
        }
        total = f.head + f.len;
        if (f.opcode == OP_CONTINUATION && (chunk->flags & WS_FRAME_DROPPING)) {
            if (f.fin) /* the last of a message being skipped */
                chunk->flags &= (uint8_t)~WS_FRAME_DROPPING;
        } else if (f.opcode >= OP_CLOSE ? !control_ok(&f)
                                        : f.opcode > OP_BINARY || f.opcode == OP_CONTINUATION) {
            broken(ops, ctx, chunk); /* a reserved opcode, a continuation of nothing... */
            continue;
        } else if (f.opcode < OP_CLOSE) {
            chunk->flags &= (uint8_t)~WS_FRAME_DROPPING; /* a new message ends the one dropped */
            if (f.rsv || f.len > WS_FRAME_MAX_MESSAGE) { /* readable by no one here */
                ops->error(ctx, f.rsv ? "ws_compressed" : "ws_oversized");
                if (!f.fin)
                    chunk->flags |= WS_FRAME_DROPPING;
            } else if (!f.fin) {
                uint64_t used = fragmented(ops, ctx, chunk, p + pos, n - pos, scratch);
                if (!used)
                    return pos;
                if (used > n - pos)
                    return pos + used;
                pos += (size_t)used;
                continue;
            } else {
                if (total > n - pos)
                    return pos;
                if (f.masked) {
                    unmask(scratch, p + pos + f.head, (size_t)f.len, f.key);
                    message(ops, ctx, scratch, (size_t)f.len);
                } else {
                    message(ops, ctx, p + pos + f.head, (size_t)f.len);
                }
                pos += (size_t)total;
                continue;
            }
        }
        /* Skipped by its length: a control frame, a continuation of a message dropped, a
         * message no one here can read. */
        if (total > n - pos)
            return pos + total;
        pos += (size_t)total;
    }
}
