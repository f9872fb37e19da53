#include "call_cdr.h"

#include <errno.h>
#include <netinet/in.h>

#include "decode.h"
#include "test.h"

/* The codec the SDP puts first, as a C string ("" for none). */
static const char *codec_of(const char *sdp)
{
    static char out[CALL_CDR_CODEC_MAX + 1];
    size_t n = call_cdr_sdp_codec(slice_make(sdp, strlen(sdp)), out);
    out[n] = 0;
    return out;
}

TEST(sdp_codec_is_the_first_payload_type_of_the_first_audio_stream)
{
    /* rtpmap names the first payload type; a static one needs none */
    CHECK_STR(codec_of("v=0\r\nm=audio 4000 RTP/AVP 8 0\r\na=rtpmap:8 PCMA/8000\r\n"), "PCMA");
    CHECK_STR(codec_of("v=0\r\nm=audio 4000 RTP/AVP 0 8\r\n"), "PCMU");
    CHECK_STR(codec_of("m=audio 4000 RTP/AVP 18\n"), "G729"); /* bare LF lines */
    /* a dynamic type without rtpmap: its number */
    CHECK_STR(codec_of("m=audio 4000 RTP/AVP 96 8\r\n"), "96");
    CHECK_STR(codec_of("m=audio 4000 RTP/SAVPF 111 0\r\na=rtpmap:0 PCMU/8000\r\n"
                       "a=rtpmap:111 opus/48000/2\r\n"),
              "opus");
    /* the video stream before it, and its rtpmap of the same number, do not count */
    CHECK_STR(codec_of("m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
                       "m=audio 4000 RTP/AVP 96\r\na=rtpmap:96 AMR-WB/16000\r\n"),
              "AMR-WB");
    /* nor does a second audio stream's, nor a session-level rtpmap */
    CHECK_STR(codec_of("a=rtpmap:96 X/8000\r\nm=audio 4000 RTP/AVP 96\r\n"
                       "m=audio 4002 RTP/AVP 97\r\na=rtpmap:96 Y/8000\r\n"),
              "96");
    /* the last rtpmap of the number wins; a malformed one (no rate, no name) is skipped */
    CHECK_STR(
        codec_of("m=audio 1 RTP/AVP 97\r\na=rtpmap:97 iLBC/8000\r\na=rtpmap:97 G7221/16000\r\n"
                 "a=rtpmap:97 bad\r\na=rtpmap:97 /8000\r\n"),
        "G7221");
    /* a format that is not a number is passed over */
    CHECK_STR(codec_of("m=audio 4000 udp t38 8\r\n"), "PCMA");
}

TEST(sdp_codec_is_none_without_an_audio_stream_with_a_payload_type)
{
    CHECK_STR(codec_of(""), "");
    CHECK_STR(codec_of("v=0\r\nm=video 5000 RTP/AVP 96\r\n"), "");
    CHECK_STR(codec_of("m=audio 4000 RTP/AVP\r\n"), "");
    CHECK_STR(codec_of("m=audio 4000 udptl t38\r\nm=audio 4002 RTP/AVP 0\r\n"), "");
    CHECK_STR(codec_of("m=audio\r\n"), "");
    CHECK_STR(codec_of("m=audio 4000 RTP/AVP 1234567890\r\n"), ""); /* not a payload type */
    /* an encoding name too long to keep */
    CHECK_STR(codec_of("m=audio 1 RTP/AVP 96\r\na=rtpmap:96 "
                       "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/8000\r\n"),
              "");
    /* a static type with no name in RFC 3551 (1, 2, 19...) */
    CHECK_STR(codec_of("m=audio 1 RTP/AVP 19\r\n"), "19");
}

/* Parses msg_text (a whole message, headers in \r\n) into msg. */
static void parse(const char *text, struct sip_msg *msg, struct sip_header *hdrs)
{
    int rc = sip_parse(text, strlen(text), SIP_PARSE_DATAGRAM, msg, hdrs, 32);
    CHECK(rc > 0);
}

#define REQUEST_HEAD                                                                               \
    "BYE sip:b@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"              \
    "From: <sip:a@example.net>;tag=1\r\nTo: <sip:b@example.net>;tag=2\r\nCall-ID: c1\r\n"          \
    "CSeq: 2 BYE\r\n"

static int cause_of(const char *reason_headers)
{
    char text[1024];
    struct sip_header hdrs[32];
    struct sip_msg msg;
    unsigned cause = 0;

    snprintf(text, sizeof(text), "%s%sContent-Length: 0\r\n\r\n", REQUEST_HEAD, reason_headers);
    parse(text, &msg, hdrs);
    return call_cdr_q850_of(&msg, &cause) ? (int)cause : -1;
}

TEST(q850_cause_is_taken_from_the_first_q850_element_of_any_reason_header)
{
    CHECK_INT(cause_of(""), -1);
    CHECK_INT(cause_of("Reason: Q.850;cause=16;text=\"Normal call clearing\"\r\n"), 16);
    CHECK_INT(cause_of("Reason: SIP;cause=200\r\nReason: Q.850;cause=31\r\n"), 31);
    CHECK_INT(cause_of("Reason: SIP;cause=486, Q.850;cause=17\r\n"), 17);
    CHECK_INT(cause_of("Reason: Q.850 ; CAUSE = 21\r\n"), 21);
    CHECK_INT(cause_of("reason: q.850;cause=127\r\n"), 127);
    /* a SIP cause is no Q.850 one, nor is a protocol that merely starts like it */
    CHECK_INT(cause_of("Reason: SIP;cause=487\r\n"), -1);
    CHECK_INT(cause_of("Reason: Q.8500;cause=3\r\n"), -1);
    /* not a cause: no digits, too many, signs, hex, decimals; the next element is tried */
    CHECK_INT(cause_of("Reason: Q.850;cause=abc\r\n"), -1);
    CHECK_INT(cause_of("Reason: Q.850;cause=1000\r\n"), -1);
    CHECK_INT(cause_of("Reason: Q.850;cause=+3\r\n"), -1);
    CHECK_INT(cause_of("Reason: Q.850;cause=0x1\r\n"), -1);
    CHECK_INT(cause_of("Reason: Q.850;cause=1.5, Q.850;cause=2\r\n"), 2);
    CHECK_INT(cause_of("Reason: Q.850;text=\"cause=16\"\r\n"), -1);
}

TEST(start_keeps_addresses_transport_and_user_agent_cut_on_a_character)
{
    char text[1024], ua[200];
    struct sip_header hdrs[32];
    struct sip_msg msg;
    struct packet pkt = {.ip_version = 6, .l4_proto = IPPROTO_TCP, .sport = 5061, .dport = 5060};
    struct call_cdr c;

    memset(&c, 0xa5, sizeof(c)); /* a reused entry: start must reset what it reads */
    pkt.src[0] = 0x20;
    pkt.src[1] = 0x01;
    pkt.src[15] = 7;
    /* 127 ASCII bytes, then a two-byte character across the 128-byte limit */
    memset(ua, 'u', 127);
    memcpy(ua + 127, "\xc3\xa9", 3);
    snprintf(text, sizeof(text), "%sUser-Agent: %s\r\nContent-Length: 0\r\n\r\n", REQUEST_HEAD, ua);
    parse(text, &msg, hdrs);
    call_cdr_start(&c, &msg, &pkt);
    CHECK_INT(c.ip_version, 6);
    CHECK_INT(c.sport, 5061);
    CHECK_INT(c.dport, 5060);
    CHECK_INT(c.src[15], 7);
    CHECK_INT(c.transport, CALL_CDR_TRANSPORT_TCP);
    CHECK_INT(c.user_agent_len, 127);
    CHECK_INT(c.server_len, 0);
    CHECK_INT(c.codec_len, 0);
    CHECK_INT(c.q850, 0);
    pkt.websocket = 1;
    call_cdr_start(&c, &msg, &pkt);
    CHECK_INT(c.transport, CALL_CDR_TRANSPORT_WS);
    call_cdr_start(&c, &msg, NULL); /* no packet: no addresses */
    CHECK_INT(c.ip_version, 0);
    CHECK_INT(c.transport, CALL_CDR_TRANSPORT_NONE);
}

/* A response to the INVITE: status line, then the common headers, extra (each ending in
 * \r\n) and body; parsed into msg. */
static void response(const char *status, const char *extra, const char *body, struct sip_msg *msg,
                     struct sip_header *hdrs, char text[1024])
{
    snprintf(text, 1024,
             "SIP/2.0 %s\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
             "From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n"
             "%sContent-Length: %zu\r\n\r\n%s",
             status, extra, strlen(body), body);
    parse(text, msg, hdrs);
}

TEST(answer_takes_server_else_user_agent_and_the_codec_of_an_sdp_body_only)
{
    static const char sdp[] = "v=0\r\nm=audio 4000 RTP/AVP 9\r\n";
    char text[1024];
    struct sip_header hdrs[32];
    struct sip_msg msg;
    struct call_cdr c;

    memset(&c, 0, sizeof(c));
    response("200 OK", "User-Agent: UA/1\r\nServer: Srv/2\r\nContent-Type: Application/SDP\r\n",
             sdp, &msg, hdrs, text);
    call_cdr_answer(&c, &msg);
    CHECK_INT(c.server_len, 5);
    CHECK(memcmp(c.server, "Srv/2", 5) == 0);
    CHECK_INT(c.codec_len, 4);
    CHECK(memcmp(c.codec, "G722", 4) == 0);

    /* no Server: the User-Agent; a body that is not SDP has no codec */
    response("200 OK", "User-Agent: UA/1\r\nContent-Type: text/plain\r\n", sdp, &msg, hdrs, text);
    call_cdr_answer(&c, &msg);
    CHECK_INT(c.server_len, 4);
    CHECK(memcmp(c.server, "UA/1", 4) == 0);
    CHECK_INT(c.codec_len, 0);

    /* no Content-Type: the body is taken for SDP */
    response("200 OK", "", sdp, &msg, hdrs, text);
    call_cdr_answer(&c, &msg);
    CHECK_INT(c.codec_len, 4);
    CHECK(memcmp(c.codec, "G722", 4) == 0);

    /* a final with neither clears what an earlier response left */
    response("486 Busy", "", "", &msg, hdrs, text);
    call_cdr_final(&c, &msg);
    CHECK_INT(c.server_len, 0);
}

TEST(field_lists_parse_with_clear_errors)
{
    uint32_t mask = 0;
    char err[256];

    CHECK_INT(call_cdr_parse_fields("all", &mask, err, sizeof(err)), 0);
    CHECK_INT(mask, CALL_CDR_ALL);
    CHECK_INT(call_cdr_parse_fields("none", &mask, err, sizeof(err)), 0);
    CHECK_INT(mask, 0);
    CHECK_INT(call_cdr_parse_fields("q850,src_ip,q850", &mask, err, sizeof(err)), 0);
    CHECK_INT(mask, (1u << CALL_CDR_Q850) | (1u << CALL_CDR_SRC_IP));
    CHECK_INT(call_cdr_parse_fields("src_ip,codecs", &mask, err, sizeof(err)), -EINVAL);
    CHECK(strstr(err, "unknown field 'codecs'") != NULL);
    CHECK_INT(call_cdr_parse_fields("", &mask, err, sizeof(err)), -EINVAL);
    CHECK_INT(call_cdr_parse_fields("src_ip,", &mask, err, sizeof(err)), -EINVAL);
    CHECK_INT(call_cdr_parse_fields("ALL", &mask, err, sizeof(err)), -EINVAL);
    /* all and none are whole lists, not fields of one. */
    CHECK_INT(call_cdr_parse_fields("all,none", &mask, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "--events-fields: 'all' stands alone (all, or none, or a list of fields)");
    CHECK_INT(call_cdr_parse_fields("src_ip,none", &mask, err, sizeof(err)), -EINVAL);
    CHECK_STR(err, "--events-fields: 'none' stands alone (all, or none, or a list of fields)");
    CHECK_INT(call_cdr_field_in(CALL_CDR_ALL, "pdd", 3), CALL_CDR_PDD);
    CHECK_INT(call_cdr_field_in(1u << CALL_CDR_SRC_IP, "pdd", 3), -1);
    CHECK_STR(call_cdr_field_name(CALL_CDR_HANGUP), "hangup");
}

TEST_MAIN()
