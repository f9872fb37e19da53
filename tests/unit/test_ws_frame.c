#include "ws_frame.h"

#include "test.h"

/* Each message is logged as "<its bytes>|", each report as "[reason]". */
static char log_[1 << 17];
static uint8_t scratch[WS_FRAME_MAX_MESSAGE];

static void logs(const char *s, size_t n)
{
    size_t at = strlen(log_);
    if (at + n < sizeof log_) {
        memcpy(log_ + at, s, n);
        log_[at + n] = 0;
    }
}

static void on_msg(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    logs((const char *)data, len);
    logs("|", 1);
}

static void on_err(void *ctx, const char *reason)
{
    (void)ctx;
    logs("[", 1);
    logs(reason, strlen(reason));
    logs("]", 1);
}

static const struct ws_frame_ops ops = {on_msg, on_err};

#define SIP_A "OPTIONS sip:b@x SIP/2.0\r\nCall-ID: a\r\n\r\n"
#define SIP_B "SIP/2.0 200 OK\r\nCall-ID: b\r\n\r\n"

static const uint8_t key1[4] = {0x37, 0xfa, 0x21, 0x3d}, key2[4] = {0x01, 0x80, 0xfe, 0x7f};

/* Appends a frame to out at *at: FIN and opcode in b0 (RSV bits too), the payload masked with key
 * when key is not NULL, the length in the shortest form unless form says 126 or 127. */
static void frame(uint8_t *out, size_t *at, uint8_t b0, const uint8_t *key, const void *payload,
                  size_t len, int form)
{
    uint8_t *p = out + *at;
    size_t h = 2;

    p[0] = b0;
    if (!form)
        form = len < 126 ? 0 : len < 65536 ? 126 : 127;
    if (form == 126) {
        p[1] = 126;
        p[2] = (uint8_t)(len >> 8);
        p[3] = (uint8_t)len;
        h = 4;
    } else if (form == 127) {
        p[1] = 127;
        for (int i = 0; i < 8; i++)
            p[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    } else {
        p[1] = (uint8_t)len;
    }
    if (key) {
        p[1] |= 0x80;
        memcpy(p + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        p[h + i] = (uint8_t)(((const uint8_t *)payload)[i] ^ (key ? key[i & 3] : 0));
    *at += h + len;
}

static struct tcp_stream_chunk chunk;

static uint64_t consume(const uint8_t *data, size_t len, uint8_t flags)
{
    chunk = (struct tcp_stream_chunk){data, (uint32_t)len, (uint8_t)(flags | WS_FRAME_ON), 0};
    return ws_frame_consume(&ops, NULL, &chunk, scratch);
}

/* Offers buf[n) whole to a stream in WebSocket, and checks that all of it is used and what was
 * logged. */
#define CHECK_ALL_READ(buf, n, want)                                                               \
    do {                                                                                           \
        log_[0] = 0;                                                                               \
        CHECK_INT(consume((buf), (n), 0), (n));                                                    \
        CHECK_STR(log_, want);                                                                     \
    } while (0)

static enum ws_frame_start detect(const char *text, size_t len, uint8_t flags, size_t *skip)
{
    chunk = (struct tcp_stream_chunk){(const uint8_t *)text, (uint32_t)len, flags, 0};
    return ws_frame_detect(&ops, NULL, &chunk, skip);
}

#define CLIENT_HS                                                                                  \
    "GET /ws HTTP/1.1\r\nHost: pbx.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"   \
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: sip\r\n"               \
    "Sec-WebSocket-Version: 13\r\n\r\n"
#define SERVER_HS                                                                                  \
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"            \
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: sip\r\n\r\n"

TEST(the_client_and_server_handshakes_start_websocket)
{
    size_t skip = 99;
    CHECK_INT(detect(CLIENT_HS, sizeof CLIENT_HS - 1, 0, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, sizeof CLIENT_HS - 1);
    CHECK_INT(chunk.flags, WS_FRAME_ON);
    CHECK_INT(detect(SERVER_HS "tail", sizeof SERVER_HS - 1 + 4, 0, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, sizeof SERVER_HS - 1);
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(a_handshake_cut_short_waits_for_more_at_every_cut)
{
    size_t skip;
    for (size_t cut = 0; cut < sizeof CLIENT_HS - 1; cut++) {
        CHECK_INT(detect(CLIENT_HS, cut, 0, &skip), WS_FRAME_MORE);
        CHECK_INT(chunk.flags, 0);
    }
    for (size_t cut = 0; cut < sizeof SERVER_HS - 1; cut++)
        CHECK_INT(detect(SERVER_HS, cut, 0, &skip), WS_FRAME_MORE);
}

TEST(what_is_not_a_sip_websocket_handshake_is_left_to_the_sip_framer)
{
    static const char *const no[] = {
        /* SIP itself, and a SIP request whose method happens to be GET */
        "OPTIONS sip:b@x SIP/2.0\r\n",
        "GET sip:b@x SIP/2.0\r\nCall-ID: a\r\n\r\n",
        /* HTTP that is not an upgrade, or not to websocket */
        "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /ws HTTP/1.1\r\nUpgrade: h2c\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "GET /ws HTTP/1.0\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        /* a websocket for something else than SIP (RFC 7118 §4: "sip" must be offered) */
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: chat\r\n\r\n",
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: sips\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        "HTTP/1.1 200 OK\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
        "HTTP/1.1 1010\r\nSec-WebSocket-Protocol: sip\r\n\r\n",
    };
    size_t skip;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        CHECK_INT(detect(no[i], strlen(no[i]), 0, &skip), WS_FRAME_NOT);
        CHECK_INT(chunk.flags, 0);
    }
}

TEST(header_names_and_list_values_are_matched_without_case)
{
    static const char hs[] = "GET /ws?x=1 HTTP/1.1\r\nUPGRADE :  h2c , WebSocket\r\n"
                             "sec-websocket-protocol: chat,SIP\r\n\r\n";
    size_t skip;
    CHECK_INT(detect(hs, sizeof hs - 1, 0, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, sizeof hs - 1);
}

TEST(a_head_that_never_ends_is_not_waited_for_past_the_limit)
{
    static char hs[WS_FRAME_MAX_HANDSHAKE + 64];
    size_t n = (size_t)snprintf(hs, sizeof hs, "GET /ws HTTP/1.1\r\nX: ");
    size_t skip;
    memset(hs + n, 'a', sizeof hs - n);
    CHECK_INT(detect(hs, WS_FRAME_MAX_HANDSHAKE - 1, 0, &skip), WS_FRAME_MORE);
    CHECK_INT(detect(hs, WS_FRAME_MAX_HANDSHAKE, 0, &skip), WS_FRAME_NOT);
}

TEST(masked_and_unmasked_frames_are_handed_on_as_sent)
{
    uint8_t buf[512];
    size_t at = 0;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    frame(buf, &at, 0x82, NULL, SIP_B, strlen(SIP_B), 0);
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    CHECK_ALL_READ(buf, at, SIP_A "|" SIP_B "|" SIP_A "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(a_frame_cut_anywhere_waits_whole)
{
    uint8_t buf[512];
    size_t at = 0, first;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    first = at;
    frame(buf, &at, 0x81, key2, SIP_B, strlen(SIP_B), 126);
    for (size_t cut = 0; cut < at; cut++) {
        log_[0] = 0;
        CHECK_INT(consume(buf, cut, 0), cut < first ? 0 : first);
        CHECK_STR(log_, cut < first ? "" : SIP_A "|");
    }
}

TEST(every_length_form_is_read)
{
    static uint8_t buf[3 * 70000], msg[70000];
    static char want[3 * 70000];
    size_t at = 0, sizes[] = {125, 126, 300, WS_FRAME_MAX_MESSAGE}, w = 0;

    memset(msg, 'x', sizeof msg);
    memcpy(msg, "SIP/2.0 200 OK\r\n", 16);
    for (size_t i = 0; i < 4; i++) {
        frame(buf, &at, 0x81, i % 2 ? key1 : NULL, msg, sizes[i], 0);
        memcpy(want + w, msg, sizes[i]);
        w += sizes[i];
        want[w++] = '|';
    }
    /* A short message in the 64-bit form: legal, if not the shortest. */
    frame(buf, &at, 0x82, key2, SIP_A, strlen(SIP_A), 127);
    memcpy(want + w, SIP_A "|", strlen(SIP_A) + 1);
    w += strlen(SIP_A) + 1;
    want[w] = 0;
    log_[0] = 0;
    CHECK_INT(consume(buf, at, 0), at);
    CHECK_INT(strlen(log_), w);
    CHECK(strcmp(log_, want) == 0);
}

TEST(control_frames_are_skipped_even_between_fragments)
{
    uint8_t buf[512];
    size_t at = 0, a = strlen(SIP_A);
    frame(buf, &at, 0x89, key1, "ping", 4, 0);
    frame(buf, &at, 0x01, key1, SIP_A, 10, 0); /* text, not final */
    frame(buf, &at, 0x8a, key2, "", 0, 0);     /* a pong between fragments */
    frame(buf, &at, 0x00, key2, SIP_A + 10, 5, 0);
    frame(buf, &at, 0x89, NULL, "p", 1, 0);
    frame(buf, &at, 0x80, key1, SIP_A + 15, a - 15, 0); /* final continuation */
    frame(buf, &at, 0x88, key1, "\x03\xe8", 2, 0);      /* close */
    CHECK_ALL_READ(buf, at, SIP_A "|");
    /* Cut before the final fragment ends, nothing of the message is used yet: only the ping
     * before it (10 bytes), once its header (6) is there: the rest of a frame skipped is
     * skipped as it comes. */
    for (size_t cut = 0; cut < at - 8; cut++) {
        log_[0] = 0;
        CHECK_INT(consume(buf, cut, 0), cut < 6 ? 0 : 10);
        CHECK_STR(log_, "");
    }
}

TEST(line_break_messages_are_keep_alives)
{
    uint8_t buf[128];
    size_t at = 0;
    frame(buf, &at, 0x81, key1, "\r\n\r\n", 4, 0);
    frame(buf, &at, 0x81, NULL, "\r\n", 2, 0);
    frame(buf, &at, 0x81, key2, "", 0, 0);
    CHECK_ALL_READ(buf, at, "");
}

TEST(a_compressed_frame_is_reported_and_skipped_by_its_length)
{
    uint8_t buf[256];
    size_t at = 0;
    frame(buf, &at, 0xc1, key1, "deflated", 8, 0); /* RSV1: permessage-deflate */
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    CHECK_ALL_READ(buf, at, "[ws_compressed]" SIP_A "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(a_frame_that_breaks_the_protocol_resynchronises_on_the_next_sip_frame)
{
    static const struct {
        uint8_t b0;
        size_t len;
    } bad[] = {
        {0x83, 1},   /* reserved data opcode */
        {0x80, 4},   /* continuation, nothing begun */
        {0x8b, 1},   /* reserved control opcode */
        {0x09, 4},   /* fragmented control frame */
        {0x89, 200}, /* a ping over 125 bytes */
    };
    static uint8_t buf[1024], junk[200];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t at = 0;
        frame(buf, &at, bad[i].b0, key1, junk, bad[i].len, 0);
        frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
        log_[0] = 0;
        CHECK_INT(consume(buf, at, 0), at);
        CHECK_STR(log_, "[ws_bad_frame]" SIP_A "|"); /* the report began it: no tcp_resync */
        CHECK_INT(chunk.flags, WS_FRAME_ON);
    }
}

TEST(a_frame_skipped_past_the_offer_skips_the_bytes_still_to_come)
{
    uint8_t buf[64];
    size_t at = 0;
    frame(buf, &at, 0xc1, key1, "0123456789", 10, 0);
    log_[0] = 0;
    /* Only the header and 3 payload bytes are here: all 16 of the frame are used. */
    CHECK_INT(consume(buf, 9, 0), at);
    CHECK_STR(log_, "[ws_compressed]");
}

TEST(an_oversized_message_is_reported_and_skipped_whole)
{
    static uint8_t buf[200000], big[WS_FRAME_MAX_MESSAGE + 1];
    size_t at = 0, first;
    memcpy(big, "SIP/2.0 200 OK\r\n", 16);
    frame(buf, &at, 0x81, key1, big, sizeof big, 0);
    first = at;
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    CHECK_INT(consume(buf, 100, 0), first);
    CHECK_STR(log_, "[ws_oversized]");
    CHECK_ALL_READ(buf, at, "[ws_oversized]" SIP_A "|");

    /* Fragmented: the fragments past the limit go without more reports. */
    static uint8_t half[WS_FRAME_MAX_MESSAGE / 2 + 1];
    at = 0;
    frame(buf, &at, 0x01, key1, half, sizeof half, 0);
    frame(buf, &at, 0x00, key1, half, sizeof half, 0);
    first = at;
    frame(buf, &at, 0x00, key2, half, 10, 0);
    frame(buf, &at, 0x80, key2, half, 10, 0);
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    CHECK_INT(consume(buf, first, 0), first);
    CHECK_INT(chunk.flags, WS_FRAME_ON | 0x20);
    CHECK_INT(ws_frame_consume(
                  &ops, NULL,
                  &(struct tcp_stream_chunk){buf + first, (uint32_t)(at - first), chunk.flags, 0},
                  scratch),
              at - first);
    CHECK_STR(log_, "[ws_oversized]" SIP_A "|");
}

TEST(a_new_message_inside_a_fragmented_one_drops_the_fragments_before_it)
{
    uint8_t buf[512];
    size_t at = 0;
    frame(buf, &at, 0x01, key1, "OPTIONS", 7, 0);
    frame(buf, &at, 0x81, key2, SIP_B, strlen(SIP_B), 0);
    CHECK_ALL_READ(buf, at, "[ws_bad_frame]" SIP_B "|");
}

TEST(a_compressed_fragmented_message_is_reported_once)
{
    uint8_t buf[256];
    size_t at = 0;
    /* RFC 7692 §6: RSV1 on the first frame only. */
    frame(buf, &at, 0x41, key1, "\x01\x02\x03", 3, 0);
    frame(buf, &at, 0x00, key1, "\x04\x05", 2, 0);
    frame(buf, &at, 0x80, key2, "\x06", 1, 0);
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    CHECK_ALL_READ(buf, at, "[ws_compressed]" SIP_A "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(a_continuation_too_long_is_skipped_before_it_is_waited_for)
{
    static uint8_t buf[256], big[100000];
    size_t at = 0, first;
    frame(buf, &at, 0x01, key1, SIP_A, 20, 0);
    first = at;
    frame(buf, &at, 0x80, key2, big, 40, 127); /* declares 40; patched to 100000 below */
    for (int i = 0; i < 8; i++)
        buf[first + 2 + i] = (uint8_t)((uint64_t)sizeof big >> (56 - 8 * i));
    log_[0] = 0;
    /* Only its header is here: the whole frame is skipped, past the offer. */
    CHECK_INT(consume(buf, first + 14, 0), first + 14 + sizeof big);
    CHECK_STR(log_, "[ws_oversized]");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(fragments_spanning_more_than_the_buffer_holds_are_skipped)
{
    static uint8_t buf[120000];
    static char body[16384];
    size_t at = 0, k = 0;
    memset(body, 'x', sizeof body);
    memcpy(body, SIP_A, strlen(SIP_A));
    /* One byte per fragment: 16 KB of payload in 7-byte frames spans over 100 KB. */
    frame(buf, &at, 0x01, key1, body, 1, 0);
    for (k = 1; k + 1 < sizeof body; k++)
        frame(buf, &at, 0x00, key1, body + k, 1, 0);
    frame(buf, &at, 0x80, key1, body + k, 1, 0);
    frame(buf, &at, 0x82, NULL, SIP_B, strlen(SIP_B), 0);
    CHECK_ALL_READ(buf, at, "[ws_oversized]" SIP_B "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(fragments_up_to_the_span_wait_for_a_header_cut_at_its_end)
{
    static uint8_t buf[70000], a[40000], b[25382];
    size_t at = 0, cut;
    memset(a, 'a', sizeof a);
    memset(b, 'b', sizeof b);
    frame(buf, &at, 0x01, NULL, a, sizeof a, 0);
    frame(buf, &at, 0x89, NULL, a, 125, 0);
    frame(buf, &at, 0x00, NULL, b, sizeof b, 0);
    cut = at; /* 65,517 bytes: within WS_FRAME_MAX_SPAN, with room for a header */
    CHECK_INT(cut, 65517);
    frame(buf, &at, 0x80, NULL, "", 0, 0);
    frame(buf, &at, 0x82, NULL, SIP_B, strlen(SIP_B), 0);
    log_[0] = 0;
    CHECK_INT(consume(buf, cut + 1, 0), 0);
    CHECK_STR(log_, "");
    CHECK_INT(consume(buf, at, 0), at);
    CHECK_INT(strlen(log_), sizeof a + sizeof b + 1 + strlen(SIP_B) + 1);
    CHECK(strchr(log_, '[') == NULL);
}

TEST(a_bad_control_frame_among_fragments_drops_the_message_with_one_report)
{
    static uint8_t buf[1024], pad[200];
    size_t at = 0;
    frame(buf, &at, 0x01, key1, "SIP", 3, 0);
    frame(buf, &at, 0x8b, key1, "z", 1, 0); /* reserved control opcode */
    frame(buf, &at, 0x80, key1, "q", 1, 0);
    frame(buf, &at, 0x01, key2, "SIP", 3, 0);
    frame(buf, &at, 0x89, key2, pad, sizeof pad, 0); /* a ping over 125 bytes */
    frame(buf, &at, 0x00, key2, "r", 1, 0);
    frame(buf, &at, 0x80, key2, "s", 1, 0);
    frame(buf, &at, 0x82, NULL, SIP_B, strlen(SIP_B), 0);
    log_[0] = 0;
    CHECK_INT(consume(buf, at, 0), at);
    /* The second message's bad ping goes in the first one's resynchronisation. */
    CHECK_STR(log_, "[ws_bad_frame]" SIP_B "|");
}

TEST(a_bad_new_message_inside_a_fragmented_one_is_reported_once)
{
    uint8_t buf[256];
    size_t at = 0;
    frame(buf, &at, 0x01, key1, "OPT", 3, 0);
    frame(buf, &at, 0x83, key1, "x", 1, 0); /* reserved data opcode */
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    CHECK_ALL_READ(buf, at, "[ws_bad_frame]" SIP_A "|");
}

TEST(a_whole_message_after_fragments_is_read_however_long)
{
    static uint8_t buf[80000], a[10000], b[60000];
    size_t at = 0;
    memset(b, 'x', sizeof b);
    memcpy(b, SIP_B, strlen(SIP_B));
    frame(buf, &at, 0x01, key1, a, sizeof a, 0);
    frame(buf, &at, 0x81, key2, b, sizeof b, 0); /* together over the span: still read */
    log_[0] = 0;
    CHECK_INT(consume(buf, at, 0), at);
    CHECK_INT(strncmp(log_, "[ws_bad_frame]" SIP_B, strlen("[ws_bad_frame]" SIP_B)), 0);
    CHECK_INT(strlen(log_), strlen("[ws_bad_frame]") + sizeof b + 1);
}

TEST(a_control_frame_with_an_absurd_length_among_fragments_is_not_trusted)
{
    uint8_t buf[512];
    size_t at = 0;
    frame(buf, &at, 0x01, key1, "SIP", 3, 0);
    buf[at++] = 0x88; /* close, unmasked, 64-bit length 2^40 */
    buf[at++] = 127;
    for (int i = 0; i < 8; i++)
        buf[at++] = i == 3 ? 1 : 0;
    frame(buf, &at, 0x81, key2, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    CHECK_INT(consume(buf, at, 0), at); /* not 2^40 more */
    CHECK_STR(log_, "[ws_bad_frame]" SIP_A "|");
}

TEST(bytes_made_to_look_like_frames_are_decided_at_once)
{
    static char crafted[64 * 1024];
    size_t skip;
    for (size_t i = 0; i + 5 <= sizeof crafted; i += 5)
        memcpy(crafted + i,
               "\x81\x7e\x10\x00"
               "A",
               5);
    /* Every candidate's payload holds a byte no start line has: none waits for more. */
    CHECK_INT(detect(crafted, sizeof crafted, TCP_STREAM_LOST, &skip), WS_FRAME_NOT);
}

TEST(sip_over_tcp_whose_body_ends_like_a_frame_header_is_not_taken_for_websocket)
{
    /* "。" ends in 0x82; with the next request's 'O' (79) it reads as an unmasked frame header,
     * and "PTIONS sip:..." as a start line. Cut where that frame would end (taken), inside it
     * once "PTIONS sip:" is there (waited for), or anywhere: never WebSocket. */
    static const char tcp[] = "tail\r\nMESSAGE sip:b@x SIP/2.0\r\nContent-Length: 3\r\n\r\n"
                              "\xe3\x80\x82"
                              "OPTIONS sip:bob@example.com SIP/2.0\r\nCall-ID: c2\r\n"
                              "CSeq: 1 OPTIONS\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKx\r\n"
                              "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nContent-Length: 0\r\n\r\n";
    const char *fake = strstr(tcp, "\x82OPTIONS");
    size_t skip, at = (size_t)(fake - tcp);
    CHECK_INT((unsigned char)fake[1], 79);
    for (size_t cut = at + 1; cut <= sizeof tcp - 1; cut++)
        CHECK_INT(detect(tcp, cut, TCP_STREAM_LOST, &skip), WS_FRAME_NOT);
}

TEST(a_handshake_sent_again_is_skipped)
{
    static uint8_t buf[1024];
    size_t at = sizeof CLIENT_HS - 1;
    memcpy(buf, CLIENT_HS, at);
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    CHECK_ALL_READ(buf, at, SIP_A "|");
    /* Cut inside it: waited for. */
    CHECK_INT(consume(buf, 40, 0), 0);
}

TEST(a_handshake_with_a_long_cookie_is_recognised)
{
    static char hs[24000];
    size_t n =
        (size_t)snprintf(hs, sizeof hs, "GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nCookie: ");
    size_t skip;
    memset(hs + n, 'c', 20000);
    n += 20000;
    n += (size_t)snprintf(hs + n, sizeof hs - n, "\r\nSec-WebSocket-Protocol: sip\r\n\r\n");
    CHECK_INT(detect(hs, n, 0, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, n);
}

TEST(a_length_with_its_top_bit_set_loses_the_place_until_a_sip_frame_starts_an_offer)
{
    uint8_t buf[512], next[256];
    size_t at = 0, n = 0;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    buf[at++] = 0x81;
    buf[at++] = 127;
    buf[at++] = 0x80; /* 2^63 and more */
    memset(buf + at, 0, 7);
    at += 7;
    memcpy(buf + at, "junk", 4);
    at += 4;
    CHECK_ALL_READ(buf, at, SIP_A "|[ws_bad_frame]");
    CHECK_INT(chunk.flags, WS_FRAME_ON | TCP_STREAM_LOST | SIP_FRAME_SKIPPED | SIP_FRAME_REPORTED);
    /* An offer that does not start with a frame carrying SIP is skipped whole. */
    uint8_t flags = chunk.flags;
    frame(next, &n, 0x81, key1, "hello\n", 6, 0);
    log_[0] = 0;
    CHECK_INT(consume(next, n, flags), n);
    CHECK_STR(log_, "");
    /* The one that does is taken, with no tcp_resync: the error that began this counted. */
    n = 0;
    frame(next, &n, 0x81, key2, SIP_B, strlen(SIP_B), 0);
    CHECK_INT(consume(next, n, flags), n);
    CHECK_STR(log_, SIP_B "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(after_a_loss_skipped_bytes_count_one_tcp_resync)
{
    uint8_t buf[256];
    size_t at = 0;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    /* The rest of a frame: skipped whole. */
    CHECK_INT(consume(buf + 9, at - 9, TCP_STREAM_LOST), at - 9);
    CHECK_INT(chunk.flags, WS_FRAME_ON | TCP_STREAM_LOST | SIP_FRAME_SKIPPED);
    /* A frame header cut: more is waited for. */
    CHECK_INT(consume(buf, 5, chunk.flags), 0);
    CHECK_INT(consume(buf, at, chunk.flags), at);
    CHECK_STR(log_, "[tcp_resync]" SIP_A "|");
    CHECK_INT(chunk.flags, WS_FRAME_ON);
}

TEST(a_stream_picked_up_midway_is_websocket_when_it_starts_with_a_sip_frame)
{
    uint8_t buf[256];
    size_t at = 0, skip = 9;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    CHECK_INT(detect((const char *)buf, at, TCP_STREAM_LOST, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, 0);
    CHECK_INT(chunk.flags, WS_FRAME_ON);
    CHECK_STR(log_, "");
    /* Before the frame is whole, it waits, once its header and the beginning of a start line
     * ("OPTIONS sip:", 12 bytes) are here; less is not waited for (a segment of SIP over TCP
     * often ends in bytes like 0x82, the end of a UTF-8 character, and must not be held). */
    for (size_t cut = 1; cut < at; cut++)
        CHECK_INT(detect((const char *)buf, cut, TCP_STREAM_LOST, &skip),
                  cut < 6 + 12 ? WS_FRAME_NOT : WS_FRAME_MORE);
    /* So a message over TCP whose body ends in such bytes is not held: in this one a 0x82 reads
     * as a masked frame header whose payload, unmasked, is 8 printable bytes. */
    static const char utf8_end[] = "MESSAGE sip:b@x SIP/2.0\r\nContent-Length: 18\r\n\r\n"
                                   "\xe3\x81\x93\xe3\x82\x93\xe3\x81\xab\xe3\x81\xa1"
                                   "\xe3\x81\xaf\xe3\x80\x82";
    CHECK_INT(detect(utf8_end, sizeof utf8_end - 1, TCP_STREAM_LOST, &skip), WS_FRAME_NOT);
    /* Bytes skipped by the SIP framer before count one tcp_resync. */
    CHECK_INT(detect((const char *)buf, at, TCP_STREAM_LOST | SIP_FRAME_SKIPPED, &skip),
              WS_FRAME_ACCEPTED);
    CHECK_STR(log_, "[tcp_resync]");

    /* After bytes that are no such frame (a keep-alive frame, the tail of a message), the
     * first that is one is found; what came before is skipped, one tcp_resync. */
    static const char tail[] = "a=sendrecv\r\n";
    uint8_t two[512];
    size_t m = sizeof tail - 1, sip_at;
    memcpy(two, tail, m);
    frame(two, &m, 0x81, key2, "\r\n\r\n", 4, 0);
    sip_at = m;
    frame(two, &m, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    log_[0] = 0;
    CHECK_INT(detect((const char *)two, m, TCP_STREAM_LOST, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, sip_at);
    CHECK_STR(log_, "[tcp_resync]");
    /* A frame header whose length ends in a line feed, before an unmasked response: the
     * frame, not the line after the LF. */
    static uint8_t resp[600];
    char body[266];
    size_t r = 0;
    memset(body, 'x', sizeof body);
    memcpy(body, SIP_B, strlen(SIP_B));
    memcpy(resp, tail, sizeof tail - 1);
    r = sizeof tail - 1;
    frame(resp, &r, 0x81, NULL, body, sizeof body, 0); /* 81 7e 01 0a */
    CHECK_INT(resp[sizeof tail - 1 + 3], '\n');
    CHECK_INT(detect((const char *)resp, r, TCP_STREAM_LOST, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, sizeof tail - 1);
    /* A frame followed by bytes that start no frame (text: SIP over TCP whose body ends in
     * two bytes that look like a frame header) is not one. */
    m = 0;
    frame(two, &m, 0x81, NULL, SIP_A, strlen(SIP_A), 0);
    memcpy(two + m, "OPTIONS", 7);
    CHECK_INT(detect((const char *)two, m + 7, TCP_STREAM_LOST, &skip), WS_FRAME_NOT);

    static const char *const no[] = {"OPTIONS sip:b@x SIP/2.0\r\n", "\x81\x05hello"};
    for (size_t i = 0; i < 2; i++)
        CHECK_INT(detect(no[i], strlen(no[i]), TCP_STREAM_LOST, &skip), WS_FRAME_NOT);
    /* A message's first fragment starts it; a continuation does not. */
    at = 0;
    frame(buf, &at, 0x01, key1, SIP_A, strlen(SIP_A), 0);
    CHECK_INT(detect((const char *)buf, at, TCP_STREAM_LOST, &skip), WS_FRAME_ACCEPTED);
    at = 0;
    frame(buf, &at, 0x80, key1, SIP_A, strlen(SIP_A), 0);
    CHECK_INT(detect((const char *)buf, at, TCP_STREAM_LOST, &skip), WS_FRAME_NOT);
    /* A start line longer than 1 KiB (a long Request-URI) is still one. */
    static char longline[3000];
    size_t ll = (size_t)snprintf(longline, sizeof longline, "OPTIONS sip:");
    memset(longline + ll, 'u', 2000);
    ll += 2000;
    ll += (size_t)snprintf(longline + ll, sizeof longline - ll, "@x SIP/2.0\r\nCall-ID: l\r\n\r\n");
    static uint8_t lbuf[7000];
    at = 0;
    memcpy(lbuf, "junk\r\n", 6);
    at = 6;
    frame(lbuf, &at, 0x81, key2, longline, ll, 0);
    CHECK_INT(detect((const char *)lbuf + 6, at - 6, TCP_STREAM_LOST, &skip), WS_FRAME_ACCEPTED);
    CHECK_INT(skip, 0);
    /* While a candidate is not whole, *skip says which bytes before it are not WebSocket. */
    CHECK_INT(detect((const char *)lbuf, at - 1, TCP_STREAM_LOST, &skip), WS_FRAME_MORE);
    CHECK_INT(skip, 6);
    /* Without a loss, frames are not looked for: a stream starts with its handshake. */
    at = 0;
    frame(buf, &at, 0x81, key1, SIP_A, strlen(SIP_A), 0);
    CHECK_INT(detect((const char *)buf, at, 0, &skip), WS_FRAME_NOT);
}

TEST_MAIN()
