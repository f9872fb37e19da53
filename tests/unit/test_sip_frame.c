#include "sip_frame.h"

#include <time.h>

#include "test.h"

/* Each message is logged as "<Call-ID>|", each report as "[sip:reason]" or "[reasm:reason]". */
static char log_[8192];
static struct sip_header hdrs[SIP_MAX_HEADERS];

static void logs(const char *s, size_t n)
{
    size_t at = strlen(log_);
    if (at + n < sizeof log_) {
        memcpy(log_ + at, s, n);
        log_[at + n] = 0;
    }
}

static bool show_method; /* on_msg logs the method name before the Call-ID */

static void on_msg(void *ctx, const struct sip_msg *msg)
{
    (void)ctx;
    if (show_method) {
        logs(msg->method_name.p, msg->method_name.len);
        logs(" ", 1);
    }
    logs(msg->call_id.p, msg->call_id.len);
    logs("|", 1);
}

static void on_err(void *ctx, int sip, const char *reason)
{
    (void)ctx;
    logs(sip ? "[sip:" : "[reasm:", sip ? 5 : 7);
    logs(reason, strlen(reason));
    logs("]", 1);
}

static const struct sip_frame_ops ops = {on_msg, on_err};

#define MSG(id, extra, body)                                                                       \
    "OPTIONS sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK" id "\r\nFrom: <sip:a@x>;tag=1"  \
    "\r\nTo: <sip:b@x>\r\nCall-ID: " id "\r\nCSeq: 1 OPTIONS\r\n" extra "\r\n" body
#define CL0 "Content-Length: 0\r\n"

static struct tcp_stream_chunk chunk;

/* Offers text with the given flags; returns the bytes used. */
static uint64_t offer(const char *text, size_t len, uint8_t flags, int quiet)
{
    chunk = (struct tcp_stream_chunk){(const uint8_t *)text, (uint32_t)len, flags, 0};
    return sip_frame_consume(&ops, NULL, &chunk, quiet, hdrs, SIP_MAX_HEADERS);
}

static uint64_t offer_s(const char *text, uint8_t flags)
{
    return offer(text, strlen(text), flags, 0);
}

TEST(pipelined_messages_are_framed_one_by_one)
{
    static const char s[] =
        MSG("a", CL0, "") MSG("b", "Content-Length: 3\r\n", "xyz") MSG("c", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "a|b|c|");
    CHECK_INT(chunk.flags, SIP_FRAME_SIP_SEEN);
}

TEST(an_unfinished_message_is_left_for_more_bytes)
{
    static const char s[] = MSG("a", CL0, "") MSG("b", "Content-Length: 3\r\n", "xyz");
    size_t first = sizeof(MSG("a", CL0, "")) - 1;
    log_[0] = 0;
    /* Every cut inside the second message leaves exactly that message. */
    for (size_t cut = first + 1; cut < sizeof s - 1; cut++) {
        log_[0] = 0;
        CHECK_INT(offer(s, cut, 0, 0), first);
        CHECK_STR(log_, "a|");
    }
}

TEST(crlf_keep_alives_between_messages_are_skipped_silently)
{
    static const char s[] = "\r\n\r\n" MSG("a", CL0, "") "\r\n"
                                                         "\r\n\r\n" MSG("b", CL0, "") "\r\n";
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "a|b|");
    CHECK_INT(offer_s("\r\n\r\n", 0), 4);
    CHECK_INT(offer_s("\r", 0), 1);
    CHECK_STR(log_, "a|b|");
}

TEST(missing_content_length_is_an_error_then_resync)
{
    static const char s[] = MSG("a", "", "") MSG("b", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "[sip:content_length]b|");
    CHECK_INT(chunk.flags, SIP_FRAME_SIP_SEEN);
}

TEST(non_numeric_content_length_is_an_error_then_resync)
{
    static const char s[] = MSG("a", "Content-Length: ten\r\n", "0123456789") MSG("b", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "[sip:content_length]b|");
}

/* Bodies that hold SIP: a message/sipfrag quoting a whole response (its own Call-ID "frag",
 * 149 bytes), and a REFER's NOTIFY sipfrag of its status line alone (16 bytes). */
#define FRAG                                                                                       \
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKf\r\nFrom: <sip:a@x>;tag=1\r\n"            \
    "To: <sip:b@x>;tag=2\r\nCall-ID: frag\r\nCSeq: 1 OPTIONS\r\n" CL0 "\r\n"
#define FRAG_LINE "SIP/2.0 200 OK\r\n"
/* A request with a bad SIP-Version (RFC 4475 badvers) and otherwise valid headers. */
#define BADVERS(id, extra, body)                                                                   \
    "OPTIONS sip:b@x SIP/7.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK" id "\r\nFrom: <sip:a@x>;tag=1"  \
    "\r\nTo: <sip:b@x>\r\nCall-ID: " id "\r\nCSeq: 1 OPTIONS\r\n" extra "\r\n" body

TEST(a_rejected_message_of_known_length_is_skipped_whole)
{
    /* Its header block ended and its Content-Length is a number: the body is skipped with it,
     * not read line by line for a start line, and the next message is expected right after. */
    CHECK_INT(sizeof(FRAG) - 1, 149);
    static const char s1[] = BADVERS("v",
                                     "Content-Type: message/sipfrag\r\n"
                                     "Content-Length: 149\r\n",
                                     FRAG) MSG("b", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s1, 0), sizeof s1 - 1);
    CHECK_STR(log_, "[sip:version]b|");
    CHECK_INT(chunk.flags, SIP_FRAME_SIP_SEEN);
    /* A bad header line; the status line alone in the body was parsed as a response whose
     * "header" was the next start line: a second error. */
    static const char s2[] =
        MSG("h", "no colon here\r\nContent-Length: 16\r\n", FRAG_LINE) MSG("b", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s2, 0), sizeof s2 - 1);
    CHECK_STR(log_, "[sip:header_syntax]b|");
    /* A following message whose start line the framer does not recognise (SIP/7.0) is parsed
     * where it starts and counted on its own, not skipped under the first one's count. */
    static const char s3[] = MSG("h", "no colon here\r\n" CL0, "")
        BADVERS("v", "Content-Length: 16\r\n", FRAG_LINE) MSG("c", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s3, 0), sizeof s3 - 1);
    CHECK_STR(log_, "[sip:header_syntax][sip:version]c|");
    /* A body past the chunk's end is skipped as it arrives: 149 bytes, 10 of them here. */
    static const char s4[] = BADVERS("v", "Content-Length: 149\r\n", "SIP/2.0 20");
    log_[0] = 0;
    CHECK_INT(offer_s(s4, 0), sizeof s4 - 1 - 10 + 149);
    CHECK_STR(log_, "[sip:version]");
    /* Quiet, before any SIP: the message counts as skipped bytes, reported once a message
     * follows, as junk is. */
    log_[0] = 0;
    CHECK_INT(offer(s1, sizeof s1 - 1, 0, 1), sizeof s1 - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]b|");
    /* Its header block cut after 30 bytes: waited for (its mark the 30 bytes), unless quiet
     * before any SIP, where the start line (25 bytes) is skipped and the rest of the line kept
     * as it may be one. */
    log_[0] = 0;
    CHECK_INT(offer(s1, 30, 0, 0), 0);
    CHECK_INT(chunk.mark, 30);
    CHECK_INT(offer(s1, 30, 0, 1), 25);
    CHECK_INT(chunk.flags, TCP_STREAM_LOST | SIP_FRAME_SKIPPED);
    CHECK_STR(log_, "");
}

TEST(a_rejected_message_of_unknown_length_is_resynchronised_line_by_line)
{
    /* No Content-Length: line by line, the sipfrag's response is found and counted, as a
     * receiver resynchronising would (RFC 3261 §18.3 leaves it no other way). */
    static const char s1[] = BADVERS("v", "", FRAG) MSG("b", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s1, 0), sizeof s1 - 1);
    CHECK_STR(log_, "[sip:version]frag|b|");
    /* Junk before a message is no header block: a start line among its "headers" ends it. */
    static const char s2[] = "some text\r\n" MSG("a", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s2, 0), sizeof s2 - 1);
    CHECK_STR(log_, "[sip:start_line]a|");
    /* A control byte in the block, a folded Content-Length, one over SIP_MAX_MSG, a first one
     * that is no number (sip_parse frames by the first: the second counts for nothing). Line by
     * line, the sipfrag's status line is parsed, its "header" the next start line: a second
     * error, then the next message. */
    static const char *const unknown[] = {
        BADVERS("v",
                "X: a\x01"
                "b\r\nContent-Length: 16\r\n",
                FRAG_LINE) MSG("b", CL0, ""),
        BADVERS("v", "Content-Length:\r\n 16\r\n", FRAG_LINE) MSG("b", CL0, ""),
        BADVERS("v", "Content-Length: 65536\r\n", FRAG_LINE) MSG("b", CL0, ""),
        BADVERS("v", "Content-Length: 1 6\r\nContent-Length: 16\r\n", FRAG_LINE) MSG("b", CL0, ""),
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        log_[0] = 0;
        CHECK_INT(offer_s(unknown[i], 0), strlen(unknown[i]));
        CHECK_STR(log_, "[sip:version][sip:header_syntax]b|");
    }
}

TEST(junk_before_a_request_line_is_reported_and_skipped)
{
    static const char s[] = "\x16\x03\x01junk\r\nmore junk\r\n" MSG("a", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "[sip:start_line]a|");
}

TEST(after_a_loss_bytes_up_to_a_start_line_are_skipped_once)
{
    static const char tail[] = "a=rtpmap:0 PCMU/8000\r\n";
    static const char s[] = "a=rtpmap:0 PCMU/8000\r\n" MSG("a", CL0, "");
    log_[0] = 0;
    /* The search goes on across offers; the skip is reported when the start line is found. */
    CHECK_INT(offer_s(tail, TCP_STREAM_LOST), sizeof tail - 1);
    CHECK_STR(log_, "");
    CHECK_INT(chunk.flags, TCP_STREAM_LOST | SIP_FRAME_SKIPPED);
    CHECK_INT(offer_s(s, chunk.flags), sizeof s - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]a|");
    CHECK_INT(chunk.flags, SIP_FRAME_SIP_SEEN);
}

TEST(a_loss_right_before_a_start_line_reports_nothing)
{
    static const char s[] = MSG("a", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, TCP_STREAM_LOST), sizeof s - 1);
    CHECK_STR(log_, "a|");
}

TEST(a_start_line_after_a_body_tail_without_line_break_is_found_where_it_starts)
{
    /* Picked up mid-message: the tail of a body without a final CRLF runs into the next
     * start line. The message starts at its method (or at SIP/2.0 for a response), not at the
     * body's tail, whose bytes are the skipped ones. */
    static const char req[] = "</xml>" MSG("b", CL0, "") MSG("c", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(req, TCP_STREAM_LOST), sizeof req - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]b|c|");
    static const char resp[] = "tail"
                               "SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKr\r\n"
                               "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: r\r\n"
                               "CSeq: 1 OPTIONS\r\n" CL0 "\r\n";
    log_[0] = 0;
    CHECK_INT(offer_s(resp, TCP_STREAM_LOST), sizeof resp - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]r|");
    /* A PRACK is a PRACK, not the ACK its name ends with (the log shows the method). */
    static const char prack[] =
        "</xml>PRACK sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKpr\r\n"
        "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: pr\r\nCSeq: 2 PRACK\r\n"
        "RAck: 1 1 INVITE\r\n" CL0 "\r\n";
    log_[0] = 0;
    show_method = true;
    CHECK_INT(offer_s(prack, TCP_STREAM_LOST), sizeof prack - 1);
    show_method = false;
    CHECK_STR(log_, "[reasm:tcp_resync]PRACK pr|");
    /* Binary bytes before it are junk, not a body's tail: the line is skipped whole, as a
     * receiver would have failed on it too. */
    static const char junk[] = "\x81\x7e\x01\x0b" MSG("j", CL0, "") MSG("k", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer(junk, sizeof junk - 1, TCP_STREAM_LOST, 0), sizeof junk - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]k|");
    /* An extension method is a method: a request line whose method ends in no known one is
     * taken whole. */
    static const char ext[] = "PING sip:b@x SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bKp\r\n"
                              "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: p\r\n"
                              "CSeq: 1 PING\r\n" CL0 "\r\n";
    log_[0] = 0;
    CHECK_INT(offer_s(ext, TCP_STREAM_LOST), sizeof ext - 1);
    CHECK_STR(log_, "p|");
}

TEST(an_unfinished_line_is_kept_while_it_may_be_a_start_line)
{
    log_[0] = 0;
    CHECK_INT(offer_s("garbage\r\nINVITE sip:x@y SI", TCP_STREAM_LOST), 9);
    CHECK_INT(offer_s("garbage\r\n\x01nvite", TCP_STREAM_LOST), 15);
    CHECK_STR(log_, "");
}

TEST(status_lines_end_a_resync_too)
{
    static const char s[] =
        "x\r\nSIP/2.0 200 OK\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n"
        "To: <sip:b@x>;tag=2\r\nCall-ID: r\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    log_[0] = 0;
    CHECK_INT(offer_s(s, TCP_STREAM_LOST), sizeof s - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]r|");
}

TEST(quiet_mode_reports_nothing_until_sip_appears)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char s[] =
        "GET / HTTP/1.1\r\nHost: x\r\n\r\n" MSG("a", CL0, "") MSG("b", "", "") MSG("c", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer(http, sizeof http - 1, 0, 1), sizeof http - 1);
    CHECK_STR(log_, "");
    /* Once SIP shows up, the junk before it is reported, and later errors are too. */
    CHECK_INT(offer(s, sizeof s - 1, 0, 1), sizeof s - 1);
    CHECK_STR(log_, "[reasm:tcp_resync]a|[sip:content_length]c|");
}

TEST(a_message_longer_than_the_limit_is_seen_and_its_body_skipped)
{
    static char s[1024];
    size_t n = (size_t)snprintf(s, sizeof s, "%s", MSG("big", "Content-Length: 70000\r\n", "vv"));
    log_[0] = 0;
    /* Headers, then 2 of the 70000 body bytes: the rest is to be skipped. */
    CHECK_INT(offer(s, n, 0, 0), n - 2 + 70000);
    CHECK_STR(log_, "[reasm:tcp_oversized_body]big|");
    /* With the whole header block still cut, it waits like any other message. */
    CHECK_INT(offer(s, 40, 0, 0), 0);
}

TEST(an_implausible_content_length_is_not_skipped_past_the_next_messages)
{
    /* 99999999 bytes of body would hide the next 100 MB of the stream: the message is seen,
     * and the framer resynchronises after its header block, on the next start line. */
    static const char s[] =
        MSG("huge", "Content-Length: 99999999\r\n", "") MSG("next1", CL0, "") MSG("next2", CL0, "");
    log_[0] = 0;
    CHECK_INT(offer_s(s, 0), sizeof s - 1);
    CHECK_STR(log_, "[reasm:tcp_oversized_body]huge|next1|next2|");
    CHECK_INT(chunk.flags & (TCP_STREAM_LOST | SIP_FRAME_REPORTED), 0);
    /* A body of SIP_FRAME_MAX_SKIP bytes, the most that is skipped, still is. */
    static char t[1024];
    size_t n = (size_t)snprintf(t, sizeof t, MSG("max", "Content-Length: %u\r\n", "vv"),
                                SIP_FRAME_MAX_SKIP);
    log_[0] = 0;
    CHECK_INT(offer(t, n, 0, 0), n - 2 + SIP_FRAME_MAX_SKIP);
    CHECK_STR(log_, "[reasm:tcp_oversized_body]max|");
}

TEST(a_header_block_longer_than_the_limit_is_an_error)
{
    static char s[SIP_MAX_MSG + 200];
    size_t n = (size_t)snprintf(s, sizeof s, "%s", "OPTIONS sip:b@x SIP/2.0\r\nX: ");
    memset(s + n, 'a', sizeof s - n);
    log_[0] = 0;
    CHECK_INT(offer(s, sizeof s, 0, 0), sizeof s);
    CHECK_STR(log_, "[sip:too_long]");
}

TEST(start_lines_are_recognised_exactly)
{
#define L(s) (const uint8_t *)(s), sizeof(s) - 1
    CHECK(sip_frame_is_start_line(L("INVITE sip:a@b SIP/2.0")));
    CHECK(sip_frame_is_start_line(L("FOO.bar sip:a@b sip/2.0 \r")));
    CHECK(sip_frame_is_start_line(L("SIP/2.0 180 Ringing")));
    CHECK(sip_frame_is_start_line(L("SIP/2.0 200")));
    CHECK(!sip_frame_is_start_line(L("SIP/2.0 20 OK")));
    CHECK(!sip_frame_is_start_line(L("Via: SIP/2.0/TCP h")));
    CHECK(!sip_frame_is_start_line(L("INVITE sip:a@b HTTP/1.1")));
    CHECK(!sip_frame_is_start_line(L("INVITE  sip:a@b SIP/2.0")));
    CHECK(!sip_frame_is_start_line(L("INVITE sip:a@b SIP/2.0x")));
    CHECK(!sip_frame_is_start_line(L("")));
#undef L
}

/* Resynchronising, a line is looked at for a status line starting anywhere in it ("...</xml>SIP/
 * 2.0 200 OK"). A line of "xSIP/2.0 " over and over, then as many blanks, made every candidate
 * trim those blanks again: a frame's 256 KiB of it (the snap length; a TSO or GRO frame holds
 * that much) took seconds of CPU. Linear now: it takes well under a millisecond per 100 KiB,
 * 50 ms is a bound no sanitizer build comes near and the quadratic cost never stays under. */
TEST(a_long_line_of_status_line_lookalikes_is_scanned_in_linear_time)
{
    static char s[262144];
    static const char tail[] = "\n" MSG("t", CL0, "");
    size_t half = (sizeof s - sizeof tail) / 2, n = 0;
    struct timespec t0, t1;

    while (n + 9 <= half) {
        memcpy(s + n, "xSIP/2.0 ", 9);
        n += 9;
    }
    memset(s + n, ' ', sizeof s - (sizeof tail - 1) - n);
    memcpy(s + sizeof s - (sizeof tail - 1), tail, sizeof tail - 1);
    log_[0] = 0;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    CHECK_INT(offer(s, sizeof s, TCP_STREAM_LOST, 0), sizeof s);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    CHECK_STR(log_, "[reasm:tcp_resync]t|");
    int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    CHECK(ns < 50000000);
}

/* Feeds s[0..n) to the framer as tcp_stream does, step bytes at a time: what the framer leaves
 * is offered again with the next bytes, with its flags and, when keep_mark, its mark (else 0:
 * every unfinished message parsed again from its start, as before marks). Leaves the log in
 * log_ and returns it timed: what each offer logged, then "@" and how many bytes had come. */
static const char *fed(const char *s, size_t n, size_t step, bool keep_mark)
{
    static uint8_t buf[2 * SIP_MAX_MSG];
    static char timed[2 * sizeof log_];
    size_t held = 0, logged = 0, t = 0;
    uint64_t skip = 0;
    uint8_t flags = 0;
    uint32_t mark = 0;

    log_[0] = 0;
    timed[0] = 0;
    for (size_t at = 0; at < n; at += step) {
        size_t k = step < n - at ? step : n - at, d = skip < k ? (size_t)skip : k;
        skip -= d;
        if (k == d)
            continue;
        memcpy(buf + held, s + at + d, k - d);
        held += k - d;
        chunk = (struct tcp_stream_chunk){buf, (uint32_t)held, flags, keep_mark ? mark : 0};
        uint64_t used = sip_frame_consume(&ops, NULL, &chunk, 0, hdrs, SIP_MAX_HEADERS);
        flags = chunk.flags;
        mark = chunk.mark;
        if (used >= held) {
            skip = used - held;
            held = 0;
            mark = 0;
        } else {
            memmove(buf, buf + used, held - used);
            held -= (size_t)used;
        }
        if (strlen(log_) > logged && t < sizeof timed) {
            t += (size_t)snprintf(timed + t, sizeof timed - t, "%s@%zu", log_ + logged, at + k);
            logged = strlen(log_);
        }
    }
    return timed;
}

/* An unfinished message is not parsed again while the bytes that came cannot change the parse's
 * answer (sip_frame.c, still_waiting): every stream framed with that shortcut gives exactly
 * what it gives parsed again at every offer, whatever the cut. The streams hold what ends a
 * header block's wait early: a stray control byte (NUL, a CR before no LF, in the start line
 * and in a header), a line that is no header, folded lines, bare LFs, an escaped control byte
 * (RFC 4475's quoted-pair), junk, keep-alives, a missing Content-Length and an oversized
 * body; each ends with a good message. */
TEST(an_unfinished_message_gives_the_same_messages_and_errors_without_parsing_it_again)
{
    static char big[80000];
    static const struct {
        const char *s, *want; /* want: the log, derived by hand, at every step */
    } cases[] = {
        {MSG("a", CL0, "") MSG("b", "Content-Length: 3\r\n", "xyz") "\r\n\r\n" MSG("c", CL0, ""),
         "a|b|c|"},
        {MSG("f", "Subject: one\r\n two\r\n\tthree\r\n" CL0, ""), "f|"},
        {MSG("n", "X-A: a\0b\r\n" CL0, "") MSG("ok1", CL0, ""), "[sip:header_syntax]ok1|"},
        {MSG("r", "X-A: a\rb\r\n" CL0, "") MSG("ok2", CL0, ""), "[sip:header_syntax]ok2|"},
        {"OPTIONS sip:b@x\r SIP/2.0\r\n\r\n" MSG("ok3", CL0, ""), "[sip:start_line]ok3|"},
        {MSG("h", "no colon here\r\n" CL0, "") MSG("ok4", CL0, ""), "[sip:header_syntax]ok4|"},
        {"OPTIONS sip:b@x SIP/2.0\nVia: SIP/2.0/TCP h;branch=z9hG4bKlf\nFrom: <sip:a@x>;tag=1\n"
         "To: <sip:b@x>\nCall-ID: lf\nCSeq: 1 OPTIONS\nContent-Length: 2\n\nhi",
         "lf|"},
        {MSG("e", "To: \"a\\\x07\" <sip:b@x>\r\n" CL0, ""), "e|"},
        {"\x16\x03junk\r\n" MSG("j", CL0, ""), "[sip:start_line]j|"},
        {MSG("m", "", "") MSG("ok5", CL0, ""), "[sip:content_length]ok5|"},
        {MSG("bin", "Content-Length: 4\r\n", "\0\r\x01\n") MSG("ok6", CL0, ""), "bin|ok6|"},
        {BADVERS("v", "Content-Length: 149\r\n", FRAG) MSG("ok7", CL0, ""), "[sip:version]ok7|"},
        {MSG("hs", "no colon\r\nContent-Length: 16\r\n", FRAG_LINE) "\r\n" MSG("ok8", CL0, ""),
         "[sip:header_syntax]ok8|"},
    };
    /* The NUL bytes are in the middle of the literals: their lengths are their sizes. */
    static const size_t lens[] = {
        sizeof(MSG("a", CL0, "")
                   MSG("b", "Content-Length: 3\r\n", "xyz") "\r\n\r\n" MSG("c", CL0, "")) -
            1,
        sizeof(MSG("f", "Subject: one\r\n two\r\n\tthree\r\n" CL0, "")) - 1,
        sizeof(MSG("n", "X-A: a\0b\r\n" CL0, "") MSG("ok1", CL0, "")) - 1,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        sizeof(MSG("bin", "Content-Length: 4\r\n", "\0\r\x01\n") MSG("ok6", CL0, "")) - 1,
        0,
        0,
    };
    static const size_t steps[] = {1, 2, 3, 5, 64, 1500};

    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t n = lens[c] ? lens[c] : strlen(cases[c].s);
        for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
            char old[2 * sizeof log_];
            snprintf(old, sizeof old, "%s", fed(cases[c].s, n, steps[k], false));
            CHECK_STR(log_, cases[c].want);
            CHECK_STR(fed(cases[c].s, n, steps[k], true), old);
            CHECK_STR(log_, cases[c].want);
        }
    }

    /* A 4 KB INVITE body in 1-byte segments, then one over SIP_MAX_MSG (its body skipped). */
    size_t n =
        (size_t)snprintf(big, sizeof big, "%s", MSG("big4k", "Content-Length: 4000\r\n", ""));
    memset(big + n, 'v', 4000);
    n += 4000;
    n += (size_t)snprintf(big + n, sizeof big - n, "%s",
                          MSG("huge", "Content-Length: 66000\r\n", ""));
    memset(big + n, 'w', 66000);
    n += 66000;
    n += (size_t)snprintf(big + n, sizeof big - n, "%s", MSG("after", CL0, ""));
    char old[2 * sizeof log_];
    snprintf(old, sizeof old, "%s", fed(big, n, 1, false));
    CHECK_STR(log_, "big4k|[reasm:tcp_oversized_body]huge|after|");
    CHECK_STR(fed(big, n, 1, true), old);

    /* A header block that reaches SIP_MAX_MSG bytes inside a line: too long there and then. */
    n = (size_t)snprintf(big, sizeof big, "%s", "OPTIONS sip:b@x SIP/2.0\r\n");
    while (n < SIP_MAX_MSG + 100)
        n += (size_t)snprintf(big + n, sizeof big - n, "X-Long: %07000d\r\n", 0);
    n += (size_t)snprintf(big + n, sizeof big - n, "%s", MSG("after", CL0, ""));
    snprintf(old, sizeof old, "%s", fed(big, n, 1, false));
    CHECK_STR(log_, "[sip:too_long]after|");
    CHECK_STR(fed(big, n, 1, true), old);
}

/* A bad line, then short lines, one segment each: the rejected message waits for the end of
 * its header block, and each line ending parses the wait again from the start. It used to wait
 * through all of them (some 21,800 lines here, about 20 s of CPU: quadratic); it waits 64 lines
 * at most (sip_frame.c, REJECTED_MAX_LINES), then resynchronises line by line: the error is
 * reported once the 64th line has come (64 lines of 3 bytes: byte 192), and the message after
 * the lines is found where it starts. */
TEST(a_rejected_block_of_many_short_lines_waits_64_lines_then_resynchronises)
{
    static char s[65536];
    static const char tail[] = MSG("t", CL0, "");
    size_t n = 0;
    struct timespec t0, t1;
    char want[64];

    memcpy(s, "x\r\n", 3);
    for (n = 3; n + 3 + sizeof tail - 1 <= 60000; n += 3)
        memcpy(s + n, "a\r\n", 3);
    memcpy(s + n, tail, sizeof tail - 1);
    n += sizeof tail - 1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
    const char *got = fed(s, n, 3, true);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
    snprintf(want, sizeof want, "[sip:start_line]@192t|@%zu", n);
    CHECK_STR(got, want);
    int64_t ns = (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec);
    CHECK(ns < 500000000);
}

/* A DEL in a rejected block's wait ends the wait as soon as it comes (the block is no text):
 * reported with the DEL, the 10th byte, not at the line's end (byte 12). */
TEST(a_del_byte_ends_a_rejected_blocks_wait_at_once)
{
    static const char s[] = "x\r\nFoo: b\x7f\r\n" MSG("t", CL0, "");
    char want[64];

    snprintf(want, sizeof want, "[sip:start_line]@10t|@%zu", sizeof s - 1);
    CHECK_STR(fed(s, sizeof s - 1, 1, true), want);
}

TEST_MAIN()
