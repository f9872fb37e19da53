/* gen_traffic: writes a pcap of synthetic SIP traffic with a known mix of call and registration
 * scenarios, and prints the metric values those scenarios must produce, derived from the
 * scenario table below (never from sipscope). Deterministic for a given seed.
 *
 * usage: gen_traffic OUT.pcap MESSAGES [SEED] [CALLS_PER_SECOND] > expected.txt
 *
 * Scenarios (each a fixed message flow, UDP over IPv4, port 5060):
 *   answered    INVITE 100 180 200 ACK ... BYE 200          (hold time 20..60 s)
 *   busy        INVITE 100 486 ACK
 *   rejected    INVITE 100 503 ACK
 *   cancelled   INVITE 100 180 CANCEL 200(CANCEL) 487 ACK
 *   challenged  INVITE 407 ACK INVITE 100 180 200 ACK ... BYE 200
 *   redirected  INVITE 302 ACK
 *   unanswered  INVITE (times out at Timer B, 32 s, if the capture runs that long)
 *   register    REGISTER 401 REGISTER 200 (Contact expires=3600)
 *   options     OPTIONS 200
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipv4_checksum.h"

#define MS 1000000ULL
#define S 1000000000ULL
#define START_NS (1700000000ULL * S)
#define USERS 50000 /* distinct AoRs: later registrations refresh earlier bindings */

enum scenario {
    SC_ANSWERED,
    SC_BUSY,
    SC_REJECTED,
    SC_CANCELLED,
    SC_CHALLENGED,
    SC_REDIRECTED,
    SC_UNANSWERED,
    SC_REGISTER,
    SC_OPTIONS,
    SC_COUNT
};

/* Relative weights of the mix: mostly answered calls, as on a real trunk. */
static const unsigned weights[SC_COUNT] = {50, 8, 4, 8, 6, 2, 2, 14, 6};
static const char *const names[SC_COUNT] = {"answered",   "busy",       "rejected",
                                            "cancelled",  "challenged", "redirected",
                                            "unanswered", "register",   "options"};

/* One message to write: sorted by time before writing. */
struct event {
    uint64_t t;
    uint32_t scenario_id; /* index of the scenario instance */
    uint8_t step;
    uint8_t kind;
};

struct instance {
    uint64_t t0;
    uint32_t hold_ms;
    uint8_t kind;
};

static uint64_t rng_state;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Step offsets (ms) of each scenario; -1 marks the hold time (BYE), -2 the BYE's 200. */
static const int answered_steps[] = {0, 10, 100, 2000, 2010, -1, -2};
static const int busy_steps[] = {0, 10, 1500, 1510};
static const int rejected_steps[] = {0, 10, 40, 50};
static const int cancelled_steps[] = {0, 10, 100, 5000, 5010, 5020, 5030};
static const int challenged_steps[] = {0, 20, 30, 40, 50, 150, 3000, 3010, -1, -2};
static const int redirected_steps[] = {0, 30, 40};
static const int unanswered_steps[] = {0};
static const int register_steps[] = {0, 20, 40, 60};
static const int options_steps[] = {0, 15};

static const int *const steps[SC_COUNT] = {answered_steps,   busy_steps,       rejected_steps,
                                           cancelled_steps,  challenged_steps, redirected_steps,
                                           unanswered_steps, register_steps,   options_steps};
static const int n_steps[SC_COUNT] = {7, 4, 4, 7, 10, 3, 1, 4, 2};

static uint64_t event_time(const struct instance *in, int step)
{
    int off = steps[in->kind][step];
    if (off == -1)
        return in->t0 + 2010 * MS + (uint64_t)in->hold_ms * MS;
    if (off == -2)
        return in->t0 + 2030 * MS + (uint64_t)in->hold_ms * MS;
    return in->t0 + (uint64_t)off * MS;
}

static int cmp_event(const void *a, const void *b)
{
    const struct event *x = a, *y = b;
    if (x->t != y->t)
        return x->t < y->t ? -1 : 1;
    if (x->scenario_id != y->scenario_id)
        return x->scenario_id < y->scenario_id ? -1 : 1;
    return x->step - y->step;
}

/* --- message text ------------------------------------------------------------------------- */

struct msgspec {
    const char *method; /* request method, or NULL for a response */
    int code;
    const char *cseq_method;
    int cseq;
    int to_tag;  /* include the callee's To-tag */
    int branch;  /* branch number within the instance */
    int from_callee; /* in-dialog request sent by the callee */
};

static int format_msg(char *buf, size_t cap, uint32_t id, const struct instance *in,
                      const struct msgspec *m)
{
    char first[160], extra[256] = "", from[96], to[96];
    unsigned uid = id % USERS;
    int reg = in->kind == SC_REGISTER, n;
    const char *caller = reg ? "user" : "alice";
    const char *callee = reg ? "user" : "bob";

    if (m->method)
        snprintf(first, sizeof(first), "%s sip:%s SIP/2.0", m->method,
                 reg ? "example.net" : "bob@example.net");
    else
        snprintf(first, sizeof(first), "SIP/2.0 %d %s", m->code,
                 m->code == 200 ? "OK" : m->code < 200 ? "Progress" : "Final");
    /* From/To: the callee's own BYE swaps the parties and their tags (RFC 3261 §12.2.1.1). */
    if (m->from_callee) {
        snprintf(from, sizeof(from), "<sip:%s%u@example.net>;tag=b%u", callee, uid, id);
        snprintf(to, sizeof(to), "<sip:%s%u@example.net>;tag=a%u", caller, uid, id);
    } else {
        snprintf(from, sizeof(from), "<sip:%s%u@example.net>;tag=a%u", caller, uid, id);
        snprintf(to, sizeof(to), "<sip:%s%u@example.net>%s", callee, uid,
                 m->to_tag ? ";tag=b" : "");
        if (m->to_tag)
            snprintf(to + strlen(to), sizeof(to) - strlen(to), "%u", id);
    }
    if (m->method && strcmp(m->method, "REGISTER") == 0)
        snprintf(extra, sizeof(extra), "Contact: <sip:user%u@10.1.%u.%u:5060>\r\nExpires: 3600\r\n",
                 uid, (uid >> 8) & 255, uid & 255);
    if (!m->method && strcmp(m->cseq_method, "REGISTER") == 0 && m->code == 200)
        snprintf(extra, sizeof(extra), "Contact: <sip:user%u@10.1.%u.%u:5060>;expires=3600\r\n",
                 uid, (uid >> 8) & 255, uid & 255);
    if (!m->method && m->code == 302)
        snprintf(extra, sizeof(extra), "Contact: <sip:bob%u@redirect.example.net>\r\n", uid);
    if (m->method && strcmp(m->method, "INVITE") == 0)
        snprintf(extra, sizeof(extra), "Contact: <sip:alice@10.0.%u.%u:5060>\r\n"
                 "Content-Type: application/sdp\r\n", (id >> 8) & 255, id & 255);
    n = snprintf(buf, cap,
                 "%s\r\n"
                 "Via: SIP/2.0/UDP 10.0.%u.%u:5060;branch=z9hG4bK-%u-%d\r\n"
                 "Max-Forwards: 70\r\n"
                 "From: %s\r\n"
                 "To: %s\r\n"
                 "Call-ID: %u-%s@gen.example.net\r\n"
                 "CSeq: %d %s\r\n"
                 "User-Agent: gen_traffic\r\n"
                 "%s",
                 first, (id >> 8) & 255, id & 255, id, m->branch, from, to, id, names[in->kind],
                 m->cseq, m->cseq_method, extra);
    if (m->method && strcmp(m->method, "INVITE") == 0) {
        /* Each call offers its own media address and port, as real endpoints do (a capture
         * where every call offers the same one makes tshark's SDP conversation tracking
         * quadratic, which BENCHMARK.md's comparison must not measure). */
        char sdp[256];
        int sdp_len = snprintf(sdp, sizeof(sdp),
                               "v=0\r\no=gen %u 1 IN IP4 10.0.%u.%u\r\ns=-\r\n"
                               "c=IN IP4 10.0.%u.%u\r\nt=0 0\r\n"
                               "m=audio %u RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n",
                               id, (id >> 8) & 255, id & 255, (id >> 8) & 255, id & 255,
                               16384 + 2 * ((id >> 16) & 0x1fff));
        n += snprintf(buf + n, cap - (size_t)n, "Content-Length: %d\r\n\r\n%s", sdp_len, sdp);
    } else {
        n += snprintf(buf + n, cap - (size_t)n, "Content-Length: 0\r\n\r\n");
    }
    return n;
}

/* The message of each step. to_tag: responses after the 100 and requests after the final. */
static struct msgspec step_msg(const struct instance *in, int step)
{
    struct msgspec m = {0};
#define REQ(meth, cs, csm, tt, br) (struct msgspec){meth, 0, csm, cs, tt, br, 0}
#define RSP(code_, cs, csm, tt, br) (struct msgspec){NULL, code_, csm, cs, tt, br, 0}
    switch (in->kind) {
    case SC_ANSWERED: {
        const struct msgspec s[] = {REQ("INVITE", 1, "INVITE", 0, 1), RSP(100, 1, "INVITE", 0, 1),
                                    RSP(180, 1, "INVITE", 1, 1),      RSP(200, 1, "INVITE", 1, 1),
                                    REQ("ACK", 1, "ACK", 1, 2),       REQ("BYE", 2, "BYE", 1, 3),
                                    RSP(200, 2, "BYE", 1, 3)};
        m = s[step];
        break;
    }
    case SC_BUSY:
    case SC_REJECTED: {
        int code = in->kind == SC_BUSY ? 486 : 503;
        const struct msgspec s[] = {REQ("INVITE", 1, "INVITE", 0, 1), RSP(100, 1, "INVITE", 0, 1),
                                    RSP(code, 1, "INVITE", 1, 1), REQ("ACK", 1, "ACK", 1, 1)};
        m = s[step];
        break;
    }
    case SC_CANCELLED: {
        const struct msgspec s[] = {REQ("INVITE", 1, "INVITE", 0, 1), RSP(100, 1, "INVITE", 0, 1),
                                    RSP(180, 1, "INVITE", 1, 1),      REQ("CANCEL", 1, "CANCEL", 0, 1),
                                    RSP(200, 1, "CANCEL", 1, 1),      RSP(487, 1, "INVITE", 1, 1),
                                    REQ("ACK", 1, "ACK", 1, 1)};
        m = s[step];
        break;
    }
    case SC_CHALLENGED: {
        const struct msgspec s[] = {
            REQ("INVITE", 1, "INVITE", 0, 1), RSP(407, 1, "INVITE", 1, 1),
            REQ("ACK", 1, "ACK", 1, 1),       REQ("INVITE", 2, "INVITE", 0, 2),
            RSP(100, 2, "INVITE", 0, 2),      RSP(180, 2, "INVITE", 1, 2),
            RSP(200, 2, "INVITE", 1, 2),      REQ("ACK", 2, "ACK", 1, 3),
            REQ("BYE", 3, "BYE", 1, 4),       RSP(200, 3, "BYE", 1, 4)};
        m = s[step];
        break;
    }
    case SC_REDIRECTED: {
        const struct msgspec s[] = {REQ("INVITE", 1, "INVITE", 0, 1), RSP(302, 1, "INVITE", 1, 1),
                                    REQ("ACK", 1, "ACK", 1, 1)};
        m = s[step];
        break;
    }
    case SC_UNANSWERED:
        m = REQ("INVITE", 1, "INVITE", 0, 1);
        break;
    case SC_REGISTER: {
        const struct msgspec s[] = {REQ("REGISTER", 1, "REGISTER", 0, 1),
                                    RSP(401, 1, "REGISTER", 1, 1),
                                    REQ("REGISTER", 2, "REGISTER", 0, 2),
                                    RSP(200, 2, "REGISTER", 1, 2)};
        m = s[step];
        break;
    }
    case SC_OPTIONS: {
        const struct msgspec s[] = {REQ("OPTIONS", 1, "OPTIONS", 0, 1),
                                    RSP(200, 1, "OPTIONS", 1, 1)};
        m = s[step];
        break;
    }
    }
    /* Every second answered call is hung up by the callee (BYE from the other side). */
    if ((in->kind == SC_ANSWERED || in->kind == SC_CHALLENGED) && m.method &&
        strcmp(m.method, "BYE") == 0 && (in->t0 / MS) % 2)
        m.from_callee = 1;
#undef REQ
#undef RSP
    return m;
}

/* --- pcap output ---------------------------------------------------------------------------- */

static void write_frame(FILE *f, uint64_t t, uint32_t id, int reverse, const char *payload,
                        size_t len)
{
    uint8_t hdr[16 + 14 + 20 + 8];
    uint8_t *eth = hdr + 16, *ip = eth + 14, *udp = ip + 20;
    uint32_t caller = htonl(0x0a000000u | (id & 0xffff)), proxy = htonl(0xc0000201u);
    uint32_t frame = (uint32_t)(14 + 20 + 8 + len);
    uint32_t rec[4] = {(uint32_t)(t / S), (uint32_t)(t % S), frame, frame};

    memcpy(hdr, rec, 16);
    memset(eth, 0, 14);
    eth[5] = 1;
    eth[11] = 2;
    eth[12] = 0x08;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    ip[2] = (uint8_t)((20 + 8 + len) >> 8);
    ip[3] = (uint8_t)(20 + 8 + len);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, reverse ? &proxy : &caller, 4);
    memcpy(ip + 16, reverse ? &caller : &proxy, 4);
    {
        uint16_t c = ip_checksum(ip, 20);
        ip[10] = (uint8_t)(c >> 8);
        ip[11] = (uint8_t)c;
    }
    udp[0] = 0x13;
    udp[1] = 0xc4;
    udp[2] = 0x13;
    udp[3] = 0xc4;
    udp[4] = (uint8_t)((8 + len) >> 8);
    udp[5] = (uint8_t)(8 + len);
    udp[6] = udp[7] = 0;
    fwrite(hdr, 1, sizeof(hdr), f);
    fwrite(payload, 1, len, f);
}

int main(int argc, char **argv)
{
    uint64_t target, calls_per_s = 2000;
    struct instance *inst;
    struct event *ev;
    size_t n_inst = 0, n_ev = 0, cap_inst;
    unsigned total_weight = 0;
    unsigned long long count[SC_COUNT] = {0};
    FILE *f;
    char buf[4096];

    if (argc < 3) {
        fprintf(stderr, "usage: %s OUT.pcap MESSAGES [SEED] [CALLS_PER_SECOND]\n", argv[0]);
        return 2;
    }
    target = strtoull(argv[2], NULL, 10);
    rng_state = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    if (rng_state == 0)
        rng_state = 1;
    if (argc > 4)
        calls_per_s = strtoull(argv[4], NULL, 10);
    for (int k = 0; k < SC_COUNT; k++)
        total_weight += weights[k];
    cap_inst = target / 2 + 16;
    inst = calloc(cap_inst, sizeof(*inst));
    ev = calloc(target + 16, sizeof(*ev));
    if (!inst || !ev)
        return 1;
    /* Draw scenarios until the message budget is used; each starts 1/rate after the last. */
    for (uint64_t t = START_NS; n_ev < target && n_inst < cap_inst; t += S / calls_per_s) {
        unsigned r = rng() % total_weight, k = 0;
        while (r >= weights[k])
            r -= weights[k++];
        if (n_ev + (size_t)n_steps[k] > target)
            break;
        inst[n_inst] = (struct instance){t, 20000 + rng() % 40000, (uint8_t)k};
        for (int s = 0; s < n_steps[k]; s++)
            ev[n_ev++] = (struct event){event_time(&inst[n_inst], s), (uint32_t)n_inst,
                                        (uint8_t)s, (uint8_t)k};
        count[k]++;
        n_inst++;
    }
    qsort(ev, n_ev, sizeof(*ev), cmp_event);

    f = fopen(argv[1], "wb");
    if (!f)
        return 1;
    {
        uint32_t gh[6] = {0xa1b23c4d, 0x00040002, 0, 0, 65535, 1}; /* nanosecond pcap */
        fwrite(gh, 4, 6, f);
    }
    for (size_t i = 0; i < n_ev; i++) {
        const struct instance *in = &inst[ev[i].scenario_id];
        struct msgspec m = step_msg(in, ev[i].step);
        int len = format_msg(buf, sizeof(buf), ev[i].scenario_id, in, &m);
        write_frame(f, ev[i].t, ev[i].scenario_id, !m.method || m.from_callee, buf, (size_t)len);
    }
    fclose(f);

    /* Expected values, from the scenario table alone. */
    {
        uint64_t last = n_ev ? ev[n_ev - 1].t : START_NS;
        unsigned long long unanswered_timed_out = 0, registrations = 0;
        unsigned long long answered = count[SC_ANSWERED] + count[SC_CHALLENGED];
        unsigned long long invites = count[SC_ANSWERED] + count[SC_BUSY] + count[SC_REJECTED] +
                                     count[SC_CANCELLED] + 2 * count[SC_CHALLENGED] +
                                     count[SC_REDIRECTED] + count[SC_UNANSWERED];
        unsigned long long attempts = invites - count[SC_CHALLENGED];
        for (size_t i = 0; i < n_inst; i++)
            if (inst[i].kind == SC_UNANSWERED && inst[i].t0 + 32 * S <= last)
                unanswered_timed_out++;
        {
            /* A binding per distinct user: a later REGISTER of the same user refreshes it. */
            static uint8_t seen[USERS];
            for (size_t i = 0; i < n_inst; i++)
                if (inst[i].kind == SC_REGISTER && !seen[i % USERS]++)
                    registrations++;
        }
        for (int k = 0; k < SC_COUNT; k++)
            printf("# scenario %s %llu\n", names[k], count[k]);
        printf("# messages %zu\n# span_seconds %.3f\n", n_ev, (double)(last - START_NS) / 1e9);
        printf("sip_requests_total{method=\"INVITE\"} %llu\n", invites);
        printf("sip_requests_total{method=\"ACK\"} %llu\n",
               answered + count[SC_CHALLENGED] + count[SC_BUSY] + count[SC_REJECTED] +
                   count[SC_CANCELLED] + count[SC_REDIRECTED]);
        printf("sip_requests_total{method=\"BYE\"} %llu\n", answered);
        printf("sip_requests_total{method=\"CANCEL\"} %llu\n", count[SC_CANCELLED]);
        printf("sip_requests_total{method=\"REGISTER\"} %llu\n", 2 * count[SC_REGISTER]);
        printf("sip_requests_total{method=\"OPTIONS\"} %llu\n", count[SC_OPTIONS]);
        printf("sip_responses_total{method=\"INVITE\",code=\"100\"} %llu\n",
               answered + count[SC_BUSY] + count[SC_REJECTED] + count[SC_CANCELLED]);
        printf("sip_responses_total{method=\"INVITE\",code=\"180\"} %llu\n",
               answered + count[SC_CANCELLED]);
        printf("sip_responses_total{method=\"INVITE\",code=\"200\"} %llu\n", answered);
        printf("sip_responses_total{method=\"INVITE\",code=\"302\"} %llu\n", count[SC_REDIRECTED]);
        printf("sip_responses_total{method=\"INVITE\",code=\"407\"} %llu\n", count[SC_CHALLENGED]);
        printf("sip_responses_total{method=\"INVITE\",code=\"486\"} %llu\n", count[SC_BUSY]);
        printf("sip_responses_total{method=\"INVITE\",code=\"487\"} %llu\n", count[SC_CANCELLED]);
        printf("sip_responses_total{method=\"INVITE\",code=\"503\"} %llu\n", count[SC_REJECTED]);
        printf("sip_responses_total{method=\"BYE\",code=\"200\"} %llu\n", answered);
        printf("sip_responses_total{method=\"CANCEL\",code=\"200\"} %llu\n", count[SC_CANCELLED]);
        printf("sip_responses_total{method=\"REGISTER\",code=\"401\"} %llu\n", count[SC_REGISTER]);
        printf("sip_responses_total{method=\"REGISTER\",code=\"200\"} %llu\n", count[SC_REGISTER]);
        printf("sip_responses_total{method=\"OPTIONS\",code=\"200\"} %llu\n", count[SC_OPTIONS]);
        printf("sip_session_attempts_total %llu\n", attempts);
        printf("sip_session_outcomes_total{code=\"200\"} %llu\n", answered);
        printf("sip_session_outcomes_total{code=\"302\"} %llu\n", count[SC_REDIRECTED]);
        printf("sip_session_outcomes_total{code=\"486\"} %llu\n", count[SC_BUSY]);
        printf("sip_session_outcomes_total{code=\"487\"} %llu\n", count[SC_CANCELLED]);
        printf("sip_session_outcomes_total{code=\"503\"} %llu\n", count[SC_REJECTED]);
        printf("sip_session_outcomes_total{code=\"timeout\"} %llu\n", unanswered_timed_out);
        printf("sip_session_challenges_total{code=\"407\"} %llu\n", count[SC_CHALLENGED]);
        printf("sip_sessions_completed_total %llu\n", answered);
        printf("sip_dialogs_ended_total{reason=\"bye\"} %llu\n", answered);
        printf("sip_dialogs_ended_total{reason=\"cancel\"} %llu\n", count[SC_CANCELLED]);
        printf("sip_dialogs_ended_total{reason=\"rejected\"} %llu\n",
               count[SC_BUSY] + count[SC_REJECTED]);
        printf("sip_dialogs_ended_total{reason=\"redirected\"} %llu\n", count[SC_REDIRECTED]);
        printf("sip_dialogs_ended_total{reason=\"timeout\"} %llu\n", unanswered_timed_out);
        printf("sip_dialogs_active{state=\"trying\"} %llu\n",
               count[SC_UNANSWERED] - unanswered_timed_out);
        printf("sip_dialogs_active{state=\"early\"} 0\n");
        printf("sip_dialogs_active{state=\"confirmed\"} 0\n");
        printf("sip_transaction_timeouts_total{method=\"INVITE\"} %llu\n", unanswered_timed_out);
        printf("sip_registration_attempts_total %llu\n", count[SC_REGISTER]);
        printf("sip_registration_outcomes_total{code=\"200\"} %llu\n", count[SC_REGISTER]);
        printf("sip_registrations_active %llu\n", registrations);
        printf("sip_retransmissions_total 0\n");
        printf("sip_orphan_requests_total 0\n");
        printf("sip_orphan_responses_total 0\n");
        printf("sip_late_finals_total 0\n");
        printf("sipscope_table_evictions_total{table=\"calls\"} 0\n");
        printf("sipscope_table_evictions_total{table=\"transactions\"} 0\n");
        printf("sipscope_table_evictions_total{table=\"registrations\"} 0\n");
        printf("sipscope_sip_messages_total{transport=\"udp\",ip=\"4\"} %zu\n", n_ev);
    }
    free(inst);
    free(ev);
    return 0;
}
