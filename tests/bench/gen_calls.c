/* gen_calls: writes a pcap in which CALLS calls are answered and never hung up, so that all of
 * them are tracked at once when the capture ends: the input of the memory benchmark. It does
 * not make a realistic mix (gen_traffic does); every call is INVITE(SDP), 200(SDP), ACK.
 *
 *   gen_calls OUT.pcap CALLS [CALLS_PER_SECOND] [SETTLE_SECONDS]
 *
 * Call j starts at j / CALLS_PER_SECOND (default 1000): at that rate only the transactions of
 * the last 32 s (64*T1) are alive at any time, so the transaction table stays small next to
 * the calls. SETTLE_SECONDS (default 100) after the last call an OPTIONS and its 200 move the
 * packet clock on, so that every INVITE transaction has expired when the capture ends and what
 * remains is the calls alone. Prints what sipscope must then show. */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/ipv4_checksum.h"

#define NS 1000000000ULL
#define START_NS (1700000000ULL * NS)

/* One Ethernet/IPv4/UDP frame, ports 5060, from caller to proxy or back. */
static int put_frame(FILE *f, uint64_t t, int to_caller, const char *payload, size_t len)
{
    uint8_t h[16 + 14 + 20 + 8] = {0};
    uint8_t *eth = h + 16, *ip = eth + 14, *udp = ip + 20;
    static const uint8_t caller[4] = {10, 0, 0, 1}, proxy[4] = {192, 0, 2, 1};
    uint32_t frame = (uint32_t)(14 + 20 + 8 + len);
    uint32_t rec[4] = {(uint32_t)(t / NS), (uint32_t)(t % NS), frame, frame};
    uint16_t c;

    memcpy(h, rec, sizeof(rec));
    eth[5] = 1;
    eth[11] = 2;
    eth[12] = 0x08;
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 8 + len) >> 8);
    ip[3] = (uint8_t)(20 + 8 + len);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, to_caller ? proxy : caller, 4);
    memcpy(ip + 16, to_caller ? caller : proxy, 4);
    c = ip_checksum(ip, 20);
    ip[10] = (uint8_t)(c >> 8);
    ip[11] = (uint8_t)c;
    udp[0] = udp[2] = 0x13; /* 5060 */
    udp[1] = udp[3] = 0xc4;
    udp[4] = (uint8_t)((8 + len) >> 8);
    udp[5] = (uint8_t)(8 + len);
    if (fwrite(h, 1, sizeof(h), f) != sizeof(h) || fwrite(payload, 1, len, f) != len)
        return -1;
    return 0;
}

static const char sdp[] = "v=0\r\no=bench 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\n"
                          "t=0 0\r\nm=audio 40000 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";

/* Message `step` (0 INVITE, 1 200, 2 ACK) of call j; returns its length, or -1. */
static int format(char *buf, size_t cap, uint64_t j, int step)
{
    static const char *const first[] = {"INVITE sip:bob@biloxi.example.com SIP/2.0",
                                        "SIP/2.0 200 OK", "ACK sip:bob@192.0.2.1:5060 SIP/2.0"};
    static const char sdp_headers[] = "Contact: <sip:x@10.0.0.1:5060>\r\n"
                                      "Content-Type: application/sdp\r\n";
    char to_tag[32] = "";
    int n;

    if (step > 0)
        snprintf(to_tag, sizeof(to_tag), ";tag=b%" PRIu64, j);
    n = snprintf(buf, cap,
                 "%s\r\n"
                 "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-%" PRIu64 "-%d\r\n"
                 "From: \"Alice\" <sip:alice%" PRIu64 "@atlanta.example.com>;tag=a%" PRIu64 "\r\n"
                 "To: <sip:bob@biloxi.example.com>%s\r\n"
                 "Call-ID: %016" PRIx64 "-mem@pc33.atlanta.example.com\r\n"
                 "CSeq: 1 %s\r\n"
                 "%sContent-Length: %zu\r\n\r\n%s",
                 first[step], j, step == 2 ? 2 : 1, j, j, to_tag,
                 (uint64_t)(j * 0x9e3779b97f4a7c15ULL), step == 2 ? "ACK" : "INVITE",
                 step < 2 ? sdp_headers : "", step < 2 ? sizeof(sdp) - 1 : 0, step < 2 ? sdp : "");
    return n > 0 && (size_t)n < cap ? n : -1;
}

int main(int argc, char **argv)
{
    static const char options[] = "OPTIONS sip:proxy.example.com SIP/2.0\r\n"
                                  "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-settle\r\n"
                                  "From: <sip:probe@example.com>;tag=p1\r\n"
                                  "To: <sip:proxy.example.com>\r\n"
                                  "Call-ID: settle@example.com\r\n"
                                  "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    static const char options_ok[] = "SIP/2.0 200 OK\r\n"
                                     "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-settle\r\n"
                                     "From: <sip:probe@example.com>;tag=p1\r\n"
                                     "To: <sip:proxy.example.com>;tag=x1\r\n"
                                     "Call-ID: settle@example.com\r\n"
                                     "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    uint32_t gh[6] = {0xa1b23c4d, 0x00040002, 0, 0, 65535, 1}; /* nanosecond pcap, Ethernet */
    uint64_t calls, rate = 1000, settle = 100, interval, t = START_NS;
    char buf[2048];
    FILE *f;

    if (argc < 3) {
        fprintf(stderr, "usage: gen_calls OUT.pcap CALLS [CALLS_PER_SECOND] [SETTLE_SECONDS]\n");
        return 2;
    }
    calls = strtoull(argv[2], NULL, 10);
    if (argc > 3)
        rate = strtoull(argv[3], NULL, 10);
    if (argc > 4)
        settle = strtoull(argv[4], NULL, 10);
    if (calls == 0 || rate == 0 || rate > NS / 4) {
        fprintf(stderr, "gen_calls: CALLS and CALLS_PER_SECOND must be positive\n");
        return 2;
    }
    interval = NS / rate;
    f = fopen(argv[1], "wb");
    if (!f || fwrite(gh, 4, 6, f) != 6) {
        perror(argv[1]);
        return 1;
    }
    for (uint64_t j = 0; j < calls; j++) {
        t = START_NS + j * interval;
        for (int step = 0; step < 3; step++) {
            int n = format(buf, sizeof(buf), j, step);
            /* The 200 and the ACK follow within the call's interval, so calls never overlap
             * out of order. */
            if (n < 0 ||
                put_frame(f, t + (uint64_t)step * (interval / 4), step == 1, buf, (size_t)n) != 0) {
                perror(argv[1]);
                return 1;
            }
        }
    }
    t += settle * NS;
    if (put_frame(f, t, 0, options, sizeof(options) - 1) != 0 ||
        put_frame(f, t + 1000000, 1, options_ok, sizeof(options_ok) - 1) != 0 || fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    printf("# messages %" PRIu64 "\n", 3 * calls + 2);
    printf("sip_dialogs_active{state=\"confirmed\"} %" PRIu64 "\n", calls);
    printf("sipscope_table_entries{table=\"calls\"} %" PRIu64 "\n", calls);
    printf("sip_session_attempts_total %" PRIu64 "\n", calls);
    return 0;
}
