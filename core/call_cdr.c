/* call_cdr: the signalling facts of a call's events line, taken from its messages. */
#include "call_cdr.h"

#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"

static const char *const field_names[CALL_CDR_FIELD_COUNT] = {
    "src_ip", "src_port", "dst_ip", "dst_port", "transport", "user_agent",
    "server", "pdd",      "codec",  "hangup",   "q850",
};

const char *call_cdr_field_name(enum call_cdr_field f)
{
    return f < CALL_CDR_FIELD_COUNT ? field_names[f] : "unknown";
}

int call_cdr_field_in(uint32_t mask, const char *name, size_t len)
{
    for (int f = 0; f < CALL_CDR_FIELD_COUNT; f++) {
        if ((mask & (1u << f)) && strlen(field_names[f]) == len &&
            memcmp(field_names[f], name, len) == 0)
            return f;
    }
    return -1;
}

int call_cdr_parse_fields(const char *list, uint32_t *mask, char *err, size_t errlen)
{
    uint32_t m = 0;
    const char *p = list;

    if (strcmp(list, "all") == 0) {
        *mask = CALL_CDR_ALL;
        return 0;
    }
    if (strcmp(list, "none") == 0) {
        *mask = 0;
        return 0;
    }
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int f = call_cdr_field_in(CALL_CDR_ALL, p, len);
        if (f < 0 &&
            ((len == 3 && memcmp(p, "all", 3) == 0) || (len == 4 && memcmp(p, "none", 4) == 0))) {
            snprintf(err, errlen,
                     "--events-fields: '%.*s' stands alone (all, or none, or a list of fields)",
                     (int)len, p);
            return -EINVAL;
        }
        if (f < 0) {
            snprintf(err, errlen,
                     "--events-fields: unknown field '%.*s' (all, none, or a list of src_ip, "
                     "src_port, dst_ip, dst_port, transport, user_agent, server, pdd, codec, "
                     "hangup, q850)",
                     (int)(len > 64 ? 64 : len), p);
            return -EINVAL;
        }
        m |= 1u << f;
        if (!end)
            break;
        p = end + 1;
    }
    *mask = m;
    return 0;
}

/* Copies a header value cut to max bytes without splitting a UTF-8 character: the byte at the
 * cut must not be a continuation byte. Returns the length kept. */
static uint8_t copy_text(char *dst, struct slice v, size_t max)
{
    size_t n = v.len;
    if (n > max) {
        const unsigned char *u = (const unsigned char *)v.p;
        n = max;
        while (n > 0 && (u[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, v.p, n);
    return (uint8_t)n;
}

/* The first header of id when the message has one (an empty value counts: it is there). */
static bool header_of(const struct sip_msg *msg, enum sip_hdr id, struct slice *v)
{
    if (!msg->first[id])
        return false;
    *v = msg->headers[msg->first[id] - 1].value;
    return true;
}

_Static_assert(offsetof(struct call_cdr, codec_len) < offsetof(struct call_cdr, codec) &&
                   offsetof(struct call_cdr, q850) < offsetof(struct call_cdr, codec),
               "call_cdr_start resets every field before the texts");

void call_cdr_start(struct call_cdr *c, const struct sip_msg *invite, const struct packet *pkt)
{
    struct slice ua;

    memset(c, 0, offsetof(struct call_cdr, codec)); /* the text is read only up to its length */
    if (pkt && (pkt->ip_version == 4 || pkt->ip_version == 6)) {
        memcpy(c->src, pkt->src, sizeof(c->src));
        memcpy(c->dst, pkt->dst, sizeof(c->dst));
        c->sport = pkt->sport;
        c->dport = pkt->dport;
        c->ip_version = pkt->ip_version;
        if (pkt->websocket)
            c->transport = CALL_CDR_TRANSPORT_WS;
        else if (pkt->l4_proto == IPPROTO_UDP)
            c->transport = CALL_CDR_TRANSPORT_UDP;
        else if (pkt->l4_proto == IPPROTO_TCP)
            c->transport = CALL_CDR_TRANSPORT_TCP;
    }
    if (header_of(invite, SIP_HDR_USER_AGENT, &ua))
        c->user_agent_len = copy_text(c->user_agent, ua, CALL_CDR_TEXT_MAX);
}

static void take_server(struct call_cdr *c, const struct sip_msg *resp)
{
    struct slice v;
    if (header_of(resp, SIP_HDR_SERVER, &v) || header_of(resp, SIP_HDR_USER_AGENT, &v))
        c->server_len = copy_text(c->server, v, CALL_CDR_TEXT_MAX);
    else
        c->server_len = 0;
}

/* The body is SDP when the message says so, or says nothing (RFC 3261 §20.15 makes
 * Content-Type mandatory with a body, but UAs leave it out). */
static bool body_is_sdp(const struct sip_msg *msg)
{
    static const struct slice sdp = {"application/sdp", 15};
    struct slice ct;

    if (!header_of(msg, SIP_HDR_CONTENT_TYPE, &ct))
        return true;
    for (size_t i = 0; i + sdp.len <= ct.len; i++) {
        if (slice_eq_nocase(slice_make(ct.p + i, sdp.len), sdp))
            return true;
    }
    return false;
}

void call_cdr_answer(struct call_cdr *c, const struct sip_msg *resp)
{
    take_server(c, resp);
    c->q850 = 0; /* a CANCEL seen before the 2xx crossed it (a capture at the caller's side) */
    c->codec_len =
        resp->body.len && body_is_sdp(resp) ? (uint8_t)call_cdr_sdp_codec(resp->body, c->codec) : 0;
}

void call_cdr_final(struct call_cdr *c, const struct sip_msg *resp)
{
    take_server(c, resp);
}

void call_cdr_reason(struct call_cdr *c, const struct sip_msg *req)
{
    unsigned cause;
    c->q850 = call_cdr_q850_of(req, &cause) ? (uint16_t)(cause + 1) : 0;
}

/* A number of one to max_digits decimal digits, nothing else ("0x10", "+3", "1.5" are none). */
static bool small_number(struct slice v, size_t max_digits, unsigned *out)
{
    uint32_t n;
    if (v.len > max_digits || slice_to_u32(v, &n) != 0)
        return false;
    *out = n;
    return true;
}

bool call_cdr_q850_of(const struct sip_msg *msg, unsigned *cause)
{
    static const struct slice q850 = {"Q.850", 5}, cause_name = {"cause", 5};

    if (!msg->first[SIP_HDR_REASON])
        return false;
    /* Reason: protocol *(;param), comma-separated (RFC 3326 §2); usually one, the Q.850 one,
     * sometimes after "SIP;cause=200". Headers from the first on; few messages have any. */
    for (uint32_t h = msg->first[SIP_HDR_REASON] - 1u; h < msg->n_headers; h++) {
        struct slice item;
        size_t pos = 0;
        if (msg->headers[h].id != SIP_HDR_REASON)
            continue;
        while (sip_list_next(msg->headers[h].value, &pos, &item)) {
            struct slice v;
            size_t n = 0;
            while (n < item.len && item.p[n] != ';' && !slice_is_lws(item.p[n]))
                n++;
            if (!slice_eq_nocase(slice_make(item.p, n), q850) ||
                !sip_header_param(item, cause_name, &v))
                continue;
            /* Q.850's causes are 1 to 127: three digits at most (what they say is not checked) */
            if (small_number(slice_trim(v), 3, cause))
                return true;
        }
    }
    return false;
}

/* RFC 3551 tables 4 and 5: the static payload types' encoding names. */
static const char *static_codec(unsigned pt)
{
    static const char *const names[35] = {
        [0] = "PCMU",  [3] = "GSM",   [4] = "G723",  [5] = "DVI4",  [6] = "DVI4",   [7] = "LPC",
        [8] = "PCMA",  [9] = "G722",  [10] = "L16",  [11] = "L16",  [12] = "QCELP", [13] = "CN",
        [14] = "MPA",  [15] = "G728", [16] = "DVI4", [17] = "DVI4", [18] = "G729",  [26] = "JPEG",
        [31] = "H261", [32] = "MPV",  [34] = "H263",
    };
    return pt < 35 ? names[pt] : NULL;
}

/* A payload type: digits only, at most 9 (RTP's are 0 to 127; a longer run is not one). */
static bool payload_type(struct slice s, unsigned *pt)
{
    return small_number(s, 9, pt);
}

/* The next word of s from *pos (spaces and tabs between words). */
static bool next_word(struct slice s, size_t *pos, struct slice *word)
{
    size_t i = *pos, start;
    while (i < s.len && (s.p[i] == ' ' || s.p[i] == '\t'))
        i++;
    if (i == s.len)
        return false;
    start = i;
    while (i < s.len && s.p[i] != ' ' && s.p[i] != '\t')
        i++;
    *word = slice_make(s.p + start, i - start);
    *pos = i;
    return true;
}

/* "a=rtpmap:<pt> <name>/<rate>[/<channels>]": the name when the line maps pt. */
static bool rtpmap_name(struct slice value, unsigned pt, struct slice *name)
{
    size_t i = 0, start;
    unsigned mapped;

    while (i < value.len && value.p[i] >= '0' && value.p[i] <= '9')
        i++;
    if (!payload_type(slice_make(value.p, i), &mapped) || mapped != pt || i == value.len ||
        !slice_is_lws(value.p[i]))
        return false;
    while (i < value.len && slice_is_lws(value.p[i]))
        i++;
    start = i;
    while (i < value.len && value.p[i] != '/' && !slice_is_lws(value.p[i]))
        i++;
    /* the clock rate must follow: "PCMA/8000" */
    if (i == start || i + 1 >= value.len || value.p[i] != '/' || value.p[i + 1] < '0' ||
        value.p[i + 1] > '9')
        return false;
    *name = slice_make(value.p + start, i - start);
    return true;
}

size_t call_cdr_sdp_codec(struct slice body, char out[CALL_CDR_CODEC_MAX])
{
    static const struct slice rtpmap = {"a=rtpmap:", 9};
    bool in_audio = false, have_pt = false;
    struct slice name = {NULL, 0};
    unsigned pt = 0;
    size_t pos = 0;

    while (pos < body.len) {
        const char *nl = memchr(body.p + pos, '\n', body.len - pos);
        size_t end = nl ? (size_t)(nl - body.p) : body.len;
        struct slice line = slice_make(body.p + pos, end - pos);
        pos = end + 1;
        if (line.len && line.p[line.len - 1] == '\r')
            line.len--;
        if (line.len < 2 || line.p[1] != '=')
            continue;
        if (line.p[0] == 'm') {
            struct slice rest = slice_make(line.p + 2, line.len - 2), word;
            size_t w = 0;
            if (in_audio)
                break; /* the first audio stream ended */
            if (!next_word(rest, &w, &word) || !slice_eq(word, slice_make("audio", 5)))
                continue;
            in_audio = true;
            /* port, proto, then the formats: the first that is a number */
            for (int i = 0; next_word(rest, &w, &word); i++) {
                if (i >= 2 && payload_type(word, &pt)) {
                    have_pt = true;
                    break;
                }
            }
            if (!have_pt)
                return 0;
        } else if (in_audio && line.len > rtpmap.len &&
                   slice_eq(slice_make(line.p, rtpmap.len), rtpmap)) {
            struct slice n; /* the last line mapping it wins, as several would overwrite */
            if (rtpmap_name(slice_make(line.p + rtpmap.len, line.len - rtpmap.len), pt, &n))
                name = n;
        }
    }
    if (!have_pt)
        return 0;
    if (!name.len) {
        const char *st = static_codec(pt);
        if (!st)
            return (size_t)snprintf(out, CALL_CDR_CODEC_MAX, "%u", pt);
        name = slice_make(st, strlen(st));
    }
    if (name.len > CALL_CDR_CODEC_MAX)
        return 0;
    memcpy(out, name.p, name.len);
    return name.len;
}
