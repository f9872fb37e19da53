/* Tracker tests: SIP text goes through the real parser and tracker; a recording sink keeps the
 * events. Each expected value is derived from the call flow and METRICS.md "Semantics". */
#include "track.h"

#include <netinet/in.h>
#include <stdio.h>

#include "decode.h"
#include "sip_dialog.h"
#include "sip_parse.h"
#include "sip_reg.h"
#include "test.h"

#define S 1000000000ULL
#define MS 1000000ULL

struct recorded {
    uint8_t type, method, reason, outcome, old_state, new_state;
    uint16_t code;
    uint32_t flags;
    uint64_t time_ns;
    double delay;
    uint16_t label0;
};

struct recorder {
    struct recorded ev[512];
    int n;
    int binding_changes[SIP_BINDING_CHANGE_COUNT]; /* every TRACK_REG_BINDING, past the 512 too */
    char end_text[256]; /* Call-ID, From URI and To URI of the last call that ended */
    uint64_t end_time;  /* t_end of the last call that ended: rules' d.end_time, the CDR's */
    char removed[128];  /* contacts of the removed bindings, in event order, space-separated */
    int label_calls;
    uint16_t next_label;
};

static void rec_emit(void *ctx, const struct track_event *ev)
{
    struct recorder *r = ctx;
    if (ev->type == TRACK_REG_BINDING && ev->reason < SIP_BINDING_CHANGE_COUNT)
        r->binding_changes[ev->reason]++;
    if (ev->type == TRACK_REG_BINDING && ev->reason == SIP_BINDING_REMOVED) {
        struct slice c = sip_binding_contact(ev->binding);
        size_t n = strlen(r->removed);
        snprintf(r->removed + n, sizeof(r->removed) - n, "%s%.*s", n ? " " : "", (int)c.len, c.p);
    }
    if (ev->type == TRACK_CALL_END) {
        struct slice c = sip_dialog_call_id(ev->dialog), f = sip_dialog_from_uri(ev->dialog),
                     t = sip_dialog_to_uri(ev->dialog);
        snprintf(r->end_text, sizeof(r->end_text), "%.*s|%.*s|%.*s", (int)c.len, c.p, (int)f.len,
                 f.p, (int)t.len, t.p);
        r->end_time = ev->dialog->t_end;
    }
    if (r->n < 512)
        r->ev[r->n++] = (struct recorded){ev->type,      ev->method,    ev->reason, ev->outcome,
                                          ev->old_state, ev->new_state, ev->code,   ev->flags,
                                          ev->time_ns,   ev->delay,     ev->labels[0]};
}

static void rec_label(void *ctx, const struct sip_msg *msg, const struct packet *pkt,
                      uint16_t *labels)
{
    struct recorder *r = ctx;
    (void)msg;
    (void)pkt;
    r->label_calls++;
    labels[0] = ++r->next_label;
}

static int count_type(const struct recorder *r, enum track_event_type t)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->ev[i].type == t;
    return n;
}

/* The i-th (0-based) event of type t, or NULL. */
static const struct recorded *nth(const struct recorder *r, enum track_event_type t, int i)
{
    for (int k = 0; k < r->n; k++)
        if (r->ev[k].type == t && i-- == 0)
            return &r->ev[k];
    return NULL;
}

static int count_flag(const struct recorder *r, uint32_t flag)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->ev[i].type == TRACK_MESSAGE && (r->ev[i].flags & flag) != 0;
    return n;
}

struct fixture {
    struct recorder rec;
    struct track *tr;
    struct track_config cfg;
};

static void setup(struct fixture *f)
{
    struct track_sink sink = {rec_emit, rec_label, &f->rec};
    memset(&f->rec, 0, sizeof(f->rec));
    if (!f->cfg.t1_ns)
        track_config_defaults(&f->cfg);
    f->tr = track_new(&f->cfg, &sink);
}

/* Parses text (LF line ends are turned into CRLF) and tracks it at time t. */
static void feed(struct fixture *f, uint64_t t, const char *text)
{
    static char buf[8192];
    struct sip_header hdrs[SIP_MAX_HEADERS];
    struct sip_msg msg;
    struct packet pkt = {0};
    size_t n = 0;

    for (const char *p = text; *p && n < sizeof(buf) - 2; p++) {
        if (*p == '\n')
            buf[n++] = '\r';
        buf[n++] = *p;
    }
    pkt.ts_ns = t;
    pkt.ip_version = 4;
    pkt.l4_proto = IPPROTO_UDP;
    if (sip_parse(buf, n, SIP_PARSE_DATAGRAM, &msg, hdrs, SIP_MAX_HEADERS) <= 0) {
        TEST_FAIL_AT("fixture message does not parse: %.40s", text);
        return;
    }
    track_message(f->tr, &msg, &pkt);
}

/* Message builders for one call between alice (tag a1) and bob. */
static char msgbuf[4096];

static const char *req(const char *method, const char *branch, unsigned cseq, const char *cseq_m,
                       const char *from_tag, const char *to_tag, const char *extra)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "%s sip:bob@example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\n"
             "From: <sip:alice@example.com>;tag=%s\n"
             "To: <sip:bob@example.com>%s%s\n"
             "Call-ID: call-1@192.0.2.1\n"
             "CSeq: %u %s\n"
             "%s"
             "Content-Length: 0\n\n",
             method, branch, from_tag, to_tag[0] ? ";tag=" : "", to_tag, cseq, cseq_m, extra);
    return msgbuf;
}

static const char *resp(unsigned code, const char *branch, unsigned cseq, const char *cseq_m,
                        const char *to_tag, const char *extra)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "SIP/2.0 %u Reason\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\n"
             "From: <sip:alice@example.com>;tag=a1\n"
             "To: <sip:bob@example.com>%s%s\n"
             "Call-ID: call-1@192.0.2.1\n"
             "CSeq: %u %s\n"
             "%s"
             "Content-Length: 0\n\n",
             code, branch, to_tag[0] ? ";tag=" : "", to_tag, cseq, cseq_m, extra);
    return msgbuf;
}

#define INVITE(t, br, cseq) feed(&f, t, req("INVITE", br, cseq, "INVITE", "a1", "", ""))
#define RESP(t, code, br, cseq, m, tag) feed(&f, t, resp(code, br, cseq, m, tag, ""))

TEST(answered_call_reports_each_milestone_once)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(10 * MS, 100, "z9hG4bK-1", 1, "INVITE", "");
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 2 * S + 10 * MS, req("ACK", "z9hG4bK-2", 1, "ACK", "a1", "b1", ""));
    feed(&f, 12 * S, req("BYE", "z9hG4bK-3", 2, "BYE", "a1", "b1", ""));
    RESP(12 * S + 50 * MS, 200, "z9hG4bK-3", 2, "BYE", "b1");

    CHECK_INT(count_type(&f.rec, TRACK_MESSAGE), 7);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_SRD, 0)->outcome, TRACK_SUCCESS);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_SRD, 0)->delay, 0.1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_RINGING, 0)->delay, 0.1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 2.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->flags & (TRACK_F_COMPLETED | TRACK_F_HAS_DURATION),
              TRACK_F_COMPLETED | TRACK_F_HAS_DURATION);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 0)->delay, 10.0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->outcome, TRACK_SUCCESS);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->delay, 0.05);
    /* trying -> early -> confirmed -> ended: four state changes, starting from "not counted" */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_STATE), 4);
    CHECK_INT(nth(&f.rec, TRACK_CALL_STATE, 0)->new_state, SIP_DIALOG_TRYING);
    CHECK_INT(nth(&f.rec, TRACK_CALL_STATE, 1)->new_state, SIP_DIALOG_EARLY);
    CHECK_INT(nth(&f.rec, TRACK_CALL_STATE, 2)->new_state, SIP_DIALOG_CONFIRMED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_STATE, 3)->old_state, SIP_DIALOG_CONFIRMED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_STATE, 3)->new_state, SIP_DIALOG_ENDED);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 2);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION | TRACK_F_ORPHAN | TRACK_F_LATE_FINAL), 0);
    CHECK_INT(f.rec.label_calls, 1);
    track_free(f.tr);
}

/* Calls keep their Call-ID and URIs for events and rules; without them (call_text off, as the
 * engine runs with neither) the entry ends before the text, which reads empty. */
TEST(call_text_is_kept_only_when_asked_for)
{
    for (int keep = 0; keep < 2; keep++) {
        struct fixture f = {0};
        track_config_defaults(&f.cfg);
        f.cfg.call_keep = keep ? SIP_DIALOG_KEEP_TEXT : SIP_DIALOG_KEEP_NONE;
        setup(&f);
        INVITE(0, "z9hG4bK-1", 1);
        RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
        feed(&f, 12 * S, req("BYE", "z9hG4bK-3", 2, "BYE", "a1", "b1", ""));
        CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
        CHECK_STR(f.rec.end_text,
                  keep ? "call-1@192.0.2.1|sip:alice@example.com|sip:bob@example.com" : "||");
        track_free(f.tr);
    }
}

/* A Call-ID or URI longer than the room kept for it is cut before a character that would not
 * fit whole (a cut "é" is an invalid byte, written as U+FFFD in the events file): Call-ID
 * 127 'c' then "é" keeps 127 bytes of its 128; From URI "sip:" 55 'a' then "é" keeps 59 of 60. */
TEST(call_text_is_cut_between_utf8_characters)
{
    struct fixture f = {0};
    char cid[160], from[100], want[256];
    static char m[3][1024];
    static const char *const starts[3] = {"INVITE sip:bob@example.com SIP/2.0", "SIP/2.0 200 OK",
                                          "BYE sip:bob@example.com SIP/2.0"};
    static const char *const cseqs[3] = {"1 INVITE", "1 INVITE", "2 BYE"};

    memset(cid, 'c', 127);
    snprintf(cid + 127, sizeof(cid) - 127, "\xc3\xa9@h");
    memcpy(from, "sip:", 4);
    memset(from + 4, 'a', 55);
    snprintf(from + 59, sizeof(from) - 59, "\xc3\xa9@x");
    track_config_defaults(&f.cfg);
    f.cfg.call_keep = SIP_DIALOG_KEEP_TEXT;
    setup(&f);
    for (int i = 0; i < 3; i++) {
        snprintf(m[i], sizeof(m[i]),
                 "%s\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-%d\nFrom: <%s>;tag=a1\n"
                 "To: <sip:bob@example.com>%s\nCall-ID: %s\nCSeq: %s\nContent-Length: 0\n\n",
                 starts[i], i == 2 ? 3 : 1, from, i ? ";tag=b1" : "", cid, cseqs[i]);
        feed(&f, (uint64_t)i * S, m[i]);
    }
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    snprintf(want, sizeof(want), "%.127s|%.59s|sip:bob@example.com", cid, from);
    CHECK_STR(f.rec.end_text, want);
    track_free(f.tr);
}

TEST(copies_of_requests_and_responses_are_retransmissions)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    INVITE(500 * MS, "z9hG4bK-1", 1);
    RESP(600 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(700 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(1 * S, 486, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(2 * S, 486, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 2 * S, req("ACK", "z9hG4bK-1", 1, "ACK", "a1", "b1", ""));
    feed(&f, 3 * S, req("ACK", "z9hG4bK-1", 1, "ACK", "a1", "b1", ""));

    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 4);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 486);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_REJECTED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_SRD, 0)->outcome, TRACK_SUCCESS); /* the 180 came first */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 1);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

TEST(challenge_and_retry_are_one_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(50 * MS, 407, "z9hG4bK-1", 1, "INVITE", "p1");
    feed(&f, 60 * MS, req("ACK", "z9hG4bK-1", 1, "ACK", "a1", "p1", ""));
    feed(&f, 100 * MS, req("INVITE", "z9hG4bK-2", 2, "INVITE", "a1", "", "Proxy-Authorization: x\n"));
    RESP(300 * MS, 183, "z9hG4bK-2", 2, "INVITE", "b1");
    RESP(1 * S, 200, "z9hG4bK-2", 2, "INVITE", "b1");

    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_CHALLENGE), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_CHALLENGE, 0)->code, 407);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_SRD, 0)->delay, 0.3); /* from the first INVITE */
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 1.0);
    CHECK_INT(f.rec.label_calls, 1); /* labels come once per call */
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 0);
    track_free(f.tr);
}

TEST(challenge_without_retry_is_the_outcome_after_the_window)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(50 * MS, 401, "z9hG4bK-1", 1, "INVITE", "p1");
    track_advance(f.tr, 32 * S); /* 64*T1 after the 401 is 32.05 s */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 33 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 401);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 32 * S + 50 * MS);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_REJECTED);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 0); /* 401/407 is not an SRD failure */
    track_free(f.tr);
}

TEST(invite_without_answer_times_out_at_timer_b)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(1 * S, "z9hG4bK-1", 1);
    track_advance(f.tr, 33 * S - 1);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 0);
    track_advance(f.tr, 33 * S);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_TXN_END, 0)->code, 0);
    CHECK_DBL(nth(&f.rec, TRACK_TXN_END, 0)->delay, 32.0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->time_ns, 33 * S);
    track_free(f.tr);
}

TEST(provisional_switches_invite_to_timer_c)
{
    struct fixture f = {0};
    f.cfg.t1_ns = 0;
    track_config_defaults(&f.cfg);
    f.cfg.timer_c_ns = 60 * S;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    track_advance(f.tr, 40 * S); /* past Timer B: no timeout after a provisional */
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 0);
    track_advance(f.tr, 61 * S);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    track_free(f.tr);
}

/* RFC 3261 §13.3.1.1: a UAS that does not answer soon sends its 180 again every minute so
 * that no proxy gives up; each one restarts Timer C (§16.7 step 2), a copy included. A 100
 * sent again does not (§16.7: 101 to 199). */
TEST(a_repeated_180_restarts_timer_c_a_repeated_100_does_not)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.timer_c_ns = 60 * S;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(50 * S, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    track_advance(f.tr, 110 * S - 1); /* 61 s, the first 180's Timer C, is long past */
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 0);
    RESP(100 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 1);
    CHECK_INT(count_flag(&f.rec, TRACK_F_LATE_FINAL), 0);
    track_free(f.tr);

    struct fixture g = {0};
    g.cfg = f.cfg;
    setup(&g);
    feed(&g, 0, req("INVITE", "z9hG4bK-1", 1, "INVITE", "a1", "", ""));
    feed(&g, 1 * S, resp(100, "z9hG4bK-1", 1, "INVITE", "", ""));
    feed(&g, 50 * S, resp(100, "z9hG4bK-1", 1, "INVITE", "", ""));
    track_advance(g.tr, 61 * S);
    CHECK_INT(count_type(&g.rec, TRACK_TXN_END), 1);
    CHECK_INT(nth(&g.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&g.rec, TRACK_CALL_END, 0)->time_ns, 61 * S);
    track_free(g.tr);
}

TEST(forked_second_final_is_a_late_final_not_a_second_answer)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "fa");
    RESP(200 * MS, 180, "z9hG4bK-1", 1, "INVITE", "fb");
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "fa");
    RESP(1100 * MS, 200, "z9hG4bK-1", 1, "INVITE", "fb");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_INT(count_flag(&f.rec, TRACK_F_LATE_FINAL), 1);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 0); /* new To-tag: a fork, no copy */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_RINGING), 1);
    track_free(f.tr);
}

TEST(call_with_two_confirmed_forks_ends_with_the_last_dialog)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "fa");
    feed(&f, 1 * S, req("ACK", "z9hG4bK-2", 1, "ACK", "a1", "fa", ""));
    RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "fb"); /* late final, second dialog */
    feed(&f, 2 * S, req("ACK", "z9hG4bK-3", 1, "ACK", "a1", "fb", ""));
    feed(&f, 3 * S, req("BYE", "z9hG4bK-4", 2, "BYE", "a1", "fb", ""));
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 0); /* two ACKs, two dialogs */
    CHECK_INT(count_flag(&f.rec, TRACK_F_LATE_FINAL), 1);
    feed(&f, 60 * S, req("BYE", "z9hG4bK-5", 3, "BYE", "a1", "fa", ""));
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 0)->delay, 59.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_DISCONNECT), 0); /* its 200 has not come yet */
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

/* A ring group of five: f5 answers when every place holds a ringing fork; f1's late 200 and its
 * BYE follow. The call goes on with f5 until f5's BYE. */
TEST(a_fifth_fork_that_answers_is_tracked_like_the_others)
{
    struct fixture f = {0};
    static const char *const forks[] = {"f1", "f2", "f3", "f4", "f5"};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    for (int i = 0; i < 5; i++)
        RESP((uint64_t)(i + 1) * 100 * MS, 180, "z9hG4bK-1", 1, "INVITE", forks[i]);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "f5");
    feed(&f, 1010 * MS, req("ACK", "z9hG4bK-2", 1, "ACK", "a1", "f5", ""));
    RESP(1050 * MS, 200, "z9hG4bK-1", 1, "INVITE", "f1"); /* late final, a second dialog */
    feed(&f, 1060 * MS, req("ACK", "z9hG4bK-3", 1, "ACK", "a1", "f1", ""));
    feed(&f, 1070 * MS, req("BYE", "z9hG4bK-4", 2, "BYE", "a1", "f1", ""));
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    feed(&f, 31 * S, req("BYE", "z9hG4bK-5", 3, "BYE", "a1", "f5", ""));
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 0)->delay, 30.0);
    track_free(f.tr);
}

TEST(cancel_then_487_ends_the_call_as_cancel)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 3 * S, req("CANCEL", "z9hG4bK-1", 1, "CANCEL", "a1", "", ""));
    RESP(3 * S + 10 * MS, 200, "z9hG4bK-1", 1, "CANCEL", "b1");
    RESP(3 * S + 20 * MS, 487, "z9hG4bK-1", 1, "INVITE", "b1");
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 487);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_CANCEL);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 2); /* CANCEL 200, INVITE 487 */
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    CHECK_INT(f.rec.label_calls, 1); /* the CANCEL inherits */
    track_free(f.tr);
}

TEST(cancel_without_any_final_ends_as_cancel_at_the_timeout)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    feed(&f, 1 * S, req("CANCEL", "z9hG4bK-1", 1, "CANCEL", "a1", "", ""));
    track_advance(f.tr, 40 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_CANCEL);
    track_free(f.tr);
}

TEST(bye_from_the_callee_finds_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    /* the callee's BYE: its own tag in From, the caller's in To */
    feed(&f, 5 * S, req("BYE", "z9hG4bK-9", 7, "BYE", "b1", "a1", ""));
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 0)->delay, 4.0);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

/* The BYE that ended a call, never answered, fails its disconnect at Timer F (RFC 6076 §4.4):
 * with a Timer F longer than 64*T1, the ended call is still known then. */
TEST(an_unanswered_bye_fails_its_disconnect_at_a_long_timer_f)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.timer_f_ns = 40 * S;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 10 * S, req("BYE", "z9hG4bK-3", 2, "BYE", "a1", "b1", ""));
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    track_advance(f.tr, 50 * S - 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_DISCONNECT), 0);
    track_advance(f.tr, 50 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_DISCONNECT), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->outcome, TRACK_FAILURE);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->delay, 40.0);
    track_free(f.tr);
}

TEST(bye_without_dialog_is_counted_as_orphan)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, req("BYE", "z9hG4bK-9", 7, "BYE", "x1", "y1", ""));
    RESP(1 * MS, 481, "z9hG4bK-9", 7, "BYE", "y1");
    feed(&f, 2 * MS, resp(200, "z9hG4bK-unknown", 3, "OPTIONS", "", ""));
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 2); /* the BYE and the OPTIONS response */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 0);
    CHECK_INT(f.rec.label_calls, 0); /* orphans get the defaults */
    CHECK_INT(nth(&f.rec, TRACK_MESSAGE, 0)->label0, 0);
    track_free(f.tr);
}

TEST(copy_on_another_hop_joins_the_call_without_retransmission)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-hop1", 1);
    INVITE(5 * MS, "z9hG4bK-hop2", 1);
    RESP(100 * MS, 200, "z9hG4bK-hop2", 1, "INVITE", "b1");
    RESP(105 * MS, 200, "z9hG4bK-hop1", 1, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_INT(count_type(&f.rec, TRACK_TXN_END), 2);
    track_free(f.tr);
}

/* Captured at a proxy: the caller's ACK to the 200 and the proxy's forward of it (a branch of
 * its own) are copies on two hops, no retransmission, as the INVITE's are; each sent again
 * after a copy of the 200 is one; a re-INVITE's ACK (a new CSeq) is neither. */
TEST(an_ack_forwarded_on_another_hop_is_no_retransmission)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-hop1", 1);
    INVITE(5 * MS, "z9hG4bK-hop2", 1);
    RESP(100 * MS, 200, "z9hG4bK-hop2", 1, "INVITE", "b1");
    RESP(105 * MS, 200, "z9hG4bK-hop1", 1, "INVITE", "b1");
    feed(&f, 110 * MS, req("ACK", "z9hG4bK-ack1", 1, "ACK", "a1", "b1", ""));
    feed(&f, 115 * MS, req("ACK", "z9hG4bK-ack1-p", 1, "ACK", "a1", "b1", ""));
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 0);
    RESP(600 * MS, 200, "z9hG4bK-hop2", 1, "INVITE", "b1");
    RESP(605 * MS, 200, "z9hG4bK-hop1", 1, "INVITE", "b1");
    feed(&f, 610 * MS, req("ACK", "z9hG4bK-ack1", 1, "ACK", "a1", "b1", ""));
    feed(&f, 615 * MS, req("ACK", "z9hG4bK-ack1-p", 1, "ACK", "a1", "b1", ""));
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 4); /* two 200s, two ACKs */
    feed(&f, 10 * S, req("INVITE", "z9hG4bK-re", 2, "INVITE", "a1", "b1", ""));
    RESP(10 * S + 100 * MS, 200, "z9hG4bK-re", 2, "INVITE", "b1");
    feed(&f, 10 * S + 110 * MS, req("ACK", "z9hG4bK-ack2", 2, "ACK", "a1", "b1", ""));
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 4);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

/* Captured at a proxy that fails over: the caller's INVITE (hop1), the proxy's first leg
 * (hop2, 486), its second leg (hop3, 200), then the 200 relayed to the caller. Only the
 * caller's transaction decides a failure; the first leg's 486 is the proxy's business. */
TEST(a_failed_leg_behind_a_proxy_does_not_decide_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-hop1", 1);
    INVITE(5 * MS, "z9hG4bK-hop2", 1);
    RESP(100 * MS, 486, "z9hG4bK-hop2", 1, "INVITE", "u1");
    feed(&f, 105 * MS, req("ACK", "z9hG4bK-hop2", 1, "ACK", "a1", "u1", ""));
    INVITE(110 * MS, "z9hG4bK-hop3", 1);
    RESP(2 * S, 200, "z9hG4bK-hop3", 1, "INVITE", "u2");
    RESP(2 * S + 5 * MS, 200, "z9hG4bK-hop1", 1, "INVITE", "u2");
    feed(&f, 2 * S + 10 * MS, req("ACK", "z9hG4bK-ack", 1, "ACK", "a1", "u2", ""));
    feed(&f, 10 * S, req("BYE", "z9hG4bK-bye", 2, "BYE", "a1", "u2", ""));
    RESP(10 * S + 5 * MS, 200, "z9hG4bK-bye", 2, "BYE", "u2");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 2.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->flags & TRACK_F_COMPLETED, TRACK_F_COMPLETED);
    track_free(f.tr);
}

/* A UA that fails over (RFC 3263: the same CSeq on a new branch to another server) after its
 * first server stayed silent: the second server's 486 decides nothing by itself (a copy), but
 * once the call's own INVITE times out it is all there is: the outcome is 486, not timeout. */
TEST(a_failure_on_a_copy_is_the_outcome_when_the_own_invite_times_out)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-srv1", 1);
    INVITE(4 * S, "z9hG4bK-srv2", 1);
    RESP(4 * S + 100 * MS, 486, "z9hG4bK-srv2", 1, "INVITE", "x1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 40 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 486);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_REJECTED);
    track_free(f.tr);
}

/* A retry whose challenge the capture missed: the first INVITE (CSeq 1) never gets a response
 * here, and its Timer B fires at 32 s while the retry (CSeq 2) still rings. Only the retry, the
 * call's current INVITE, decides: its 200 at 40 s answers the call. */
TEST(a_replaced_invite_timing_out_does_not_end_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    INVITE(100 * MS, "z9hG4bK-retry", 2);
    RESP(1 * S, 180, "z9hG4bK-retry", 2, "INVITE", "b1");
    track_advance(f.tr, 35 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    RESP(40 * S, 200, "z9hG4bK-retry", 2, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    track_free(f.tr);
}

/* A B2BUA sends its INVITE again with CSeq 2, unchallenged, while CSeq 1 waits after its 100;
 * CSeq 1's 503 comes late, at 4.5 s. The caller gave that INVITE up: the 503 decides nothing
 * (no outcome, no end, no failed SRD), and CSeq 2's 180 and 200 make the call's SRD and answer. */
TEST(a_late_failure_of_an_invite_sent_again_unchallenged_does_not_decide_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    RESP(10 * MS, 100, "z9hG4bK-first", 1, "INVITE", "");
    INVITE(4 * S, "z9hG4bK-again", 2);
    RESP(4 * S + 10 * MS, 100, "z9hG4bK-again", 2, "INVITE", "");
    RESP(4 * S + 500 * MS, 503, "z9hG4bK-first", 1, "INVITE", "x1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 0);
    RESP(5 * S, 180, "z9hG4bK-again", 2, "INVITE", "b1");
    RESP(7 * S, 200, "z9hG4bK-again", 2, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_SRD, 0)->outcome, TRACK_SUCCESS);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_SRD, 0)->delay, 5.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 7.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    track_free(f.tr);
}

/* The same, and the INVITE sent again then gets no response: it is the call's, and its Timer B
 * (32 s after 4 s) makes the outcome a timeout. The replaced INVITE's 486 is no other hop's
 * failure to fall back on (a copy shares the CSeq of the INVITE it copies). */
TEST(a_replaced_invites_failure_is_not_the_outcome_when_the_new_invite_times_out)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    INVITE(4 * S, "z9hG4bK-again", 2);
    RESP(4 * S + 500 * MS, 486, "z9hG4bK-first", 1, "INVITE", "x1");
    track_advance(f.tr, 35 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 36 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 36 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    track_free(f.tr);
}

/* The caller sent its INVITE again as CSeq 2, then cancelled CSeq 1, which the callee
 * answered 200: the 487 owed is CSeq 1's (RFC 3261 §9.2), a transaction the caller gave up.
 * CSeq 2, the call's INVITE, was never cancelled: when it gets nothing, its Timer B (32 s after
 * 4 s) makes the outcome a timeout and the end reason timeout. Before, the CANCEL marked the
 * call: outcome 487, end cancel. CSeq 1 times out as a transaction only (64*T1 after the 200). */
TEST(a_cancel_of_a_replaced_invite_leaves_the_new_invites_timeout_a_timeout)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    RESP(10 * MS, 100, "z9hG4bK-first", 1, "INVITE", "");
    INVITE(4 * S, "z9hG4bK-again", 2);
    feed(&f, 5 * S, req("CANCEL", "z9hG4bK-first", 1, "CANCEL", "a1", "", ""));
    RESP(5 * S + 10 * MS, 200, "z9hG4bK-first", 1, "CANCEL", "b1");
    track_advance(f.tr, 35 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 36 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 36 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    track_free(f.tr);
}

/* The same, CSeq 1 cancelled (and the CANCEL answered) before CSeq 2 replaced it: the mark was
 * CSeq 1's, and the call's INVITE is now CSeq 2, whose silence is a timeout. */
TEST(a_cancel_answered_before_the_invite_was_replaced_does_not_decide_the_new_one)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    RESP(10 * MS, 100, "z9hG4bK-first", 1, "INVITE", "");
    feed(&f, 3 * S, req("CANCEL", "z9hG4bK-first", 1, "CANCEL", "a1", "", ""));
    RESP(3 * S + 10 * MS, 200, "z9hG4bK-first", 1, "CANCEL", "b1");
    INVITE(4 * S, "z9hG4bK-again", 2);
    track_advance(f.tr, 35 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 36 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 36 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    track_free(f.tr);
}

/* A CANCEL of the call's own INVITE, answered 200, still makes its timeout the 487 owed (64*T1,
 * 32 s, after the 200), also after a replaced INVITE: CSeq 2 is the one cancelled here. */
TEST(a_cancel_of_the_new_invite_still_owes_the_call_its_487)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    INVITE(4 * S, "z9hG4bK-again", 2);
    RESP(4 * S + 10 * MS, 100, "z9hG4bK-again", 2, "INVITE", "");
    feed(&f, 5 * S, req("CANCEL", "z9hG4bK-again", 2, "CANCEL", "a1", "", ""));
    RESP(5 * S + 10 * MS, 200, "z9hG4bK-again", 2, "CANCEL", "b1");
    track_advance(f.tr, 37 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 38 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 487);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 37 * S + 10 * MS);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_CANCEL);
    track_free(f.tr);
}

/* A proxy forwards the replaced INVITE (CSeq 1) late, on another hop, after the caller sent it
 * again as CSeq 2: that copy must not make CSeq 1 the call's INVITE again. CSeq 2's 486 then
 * decides the call (before, it decided nothing and the call waited for Timer B). */
TEST(a_late_copy_of_a_replaced_invite_does_not_take_the_call_back)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    INVITE(4 * S, "z9hG4bK-again", 2);
    INVITE(4 * S + 20 * MS, "z9hG4bK-late-copy", 1);
    RESP(4 * S + 500 * MS, 486, "z9hG4bK-again", 2, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 486);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->time_ns, 4 * S + 500 * MS);
    track_free(f.tr);
}

/* A 2xx to the replaced INVITE still answers the call: it makes a dialog that the caller must
 * acknowledge (RFC 3261 §13.2.2.4), whichever of its INVITEs it answers. */
TEST(a_2xx_to_a_replaced_invite_answers_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-first", 1);
    INVITE(4 * S, "z9hG4bK-again", 2);
    RESP(6 * S, 200, "z9hG4bK-first", 1, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 6.0);
    track_free(f.tr);
}

/* A call hung up early after another hop failed: when it is let go, that failure is its
 * outcome, as it would be had its own INVITE timed out first. */
TEST(a_call_hung_up_early_takes_a_failure_seen_on_another_hop)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-hop1", 1);
    RESP(100 * MS, 180, "z9hG4bK-hop1", 1, "INVITE", "b1");
    INVITE(200 * MS, "z9hG4bK-hop2", 1);
    RESP(300 * MS, 486, "z9hG4bK-hop2", 1, "INVITE", "x1");
    feed(&f, 5 * S, req("BYE", "z9hG4bK-bye", 2, "BYE", "a1", "b1", ""));
    track_advance(f.tr, 300 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 486);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    track_free(f.tr);
}

/* A challenge from the callee's side relayed to the caller is one challenge, not two. */
TEST(a_relayed_challenge_counts_once)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-hop1", 1);
    INVITE(5 * MS, "z9hG4bK-hop2", 1);
    RESP(50 * MS, 407, "z9hG4bK-hop2", 1, "INVITE", "p1");
    RESP(55 * MS, 407, "z9hG4bK-hop1", 1, "INVITE", "p1");
    INVITE(1 * S, "z9hG4bK-retry", 2);
    RESP(2 * S, 200, "z9hG4bK-retry", 2, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_CHALLENGE), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    track_free(f.tr);
}

/* A BYE in an early dialog ends the call; no final ever comes. Its INVITE would wait for
 * Timer C (180 s), longer than the ended call is kept (64*T1): the outcome is decided when the
 * call is let go, as none (timeout), and once. */
TEST(a_call_hung_up_before_any_final_gets_the_timeout_outcome)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 5 * S, req("BYE", "z9hG4bK-2", 2, "BYE", "a1", "b1", ""));
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 0);
    track_advance(f.tr, 300 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    track_free(f.tr);
}

/* A 481 to an UPDATE in an early dialog ends that early dialog only: the INVITE goes on, and
 * its 200 and the BYE decide the call. */
TEST(a_481_in_an_early_dialog_does_not_end_the_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 183, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 200 * MS, req("UPDATE", "z9hG4bK-2", 2, "UPDATE", "a1", "b1", ""));
    RESP(250 * MS, 481, "z9hG4bK-2", 2, "UPDATE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 2 * S + 10 * MS, req("ACK", "z9hG4bK-3", 1, "ACK", "a1", "b1", ""));
    feed(&f, 9 * S, req("BYE", "z9hG4bK-4", 3, "BYE", "a1", "b1", ""));
    RESP(9 * S + 5 * MS, 200, "z9hG4bK-4", 3, "BYE", "b1");
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->flags & TRACK_F_COMPLETED, TRACK_F_COMPLETED);
    track_free(f.tr);
}

/* A 180 after the call timed out rings nothing: no post-dial delay for a call already over. */
TEST(a_provisional_after_the_timeout_rings_nothing)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    track_advance(f.tr, 40 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_TIMEOUT);
    RESP(40 * S, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_RINGING), 0);
    track_free(f.tr);
}

/* Six reliable provisionals (RSeq 1 to 6, RFC 3262) fill what a transaction remembers of its
 * responses; the 200 after them and its resend are still told apart from a late final. */
TEST(a_final_after_many_reliable_provisionals_is_still_known_when_resent)
{
    struct fixture f = {0};
    char rseq[32];
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(10 * MS, 100, "z9hG4bK-1", 1, "INVITE", "");
    for (unsigned i = 1; i <= 6; i++) {
        snprintf(rseq, sizeof rseq, "RSeq: %u\nRequire: 100rel\n", i);
        feed(&f, i * 100 * MS, resp(183, "z9hG4bK-1", 1, "INVITE", "b1", rseq));
    }
    RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(2 * S + 500 * MS, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    CHECK_INT(count_flag(&f.rec, TRACK_F_LATE_FINAL), 0);
    CHECK_INT(count_flag(&f.rec, TRACK_F_RETRANSMISSION), 1);
    track_free(f.tr);
}

TEST(new_invite_after_redirect_is_a_new_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 302, "z9hG4bK-1", 1, "INVITE", "r1");
    INVITE(200 * MS, "z9hG4bK-2", 2);
    RESP(300 * MS, 200, "z9hG4bK-2", 2, "INVITE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 2);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_REDIRECTED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 1)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_SRD), 1); /* 3xx is neither success nor failure */
    CHECK_INT(f.rec.label_calls, 2);
    track_free(f.tr);
}

/* RFC 3263 §4.3: after a 503 (or no answer) the UA sends the same INVITE, new branch only, to
 * the next server. The first call has its outcome; the retry is a new call (METRICS.md), not a
 * copy of the ended one that would hide its answer. */
TEST(the_same_invite_retried_at_another_server_after_a_503_is_a_new_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-s1", 1);
    RESP(100 * MS, 503, "z9hG4bK-s1", 1, "INVITE", "s1");
    feed(&f, 110 * MS, req("ACK", "z9hG4bK-s1", 1, "ACK", "a1", "s1", ""));
    INVITE(200 * MS, "z9hG4bK-s2", 1);
    RESP(500 * MS, 180, "z9hG4bK-s2", 1, "INVITE", "s2");
    RESP(1 * S, 200, "z9hG4bK-s2", 1, "INVITE", "s2");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 2);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 2);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 503);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 1)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 0.8); /* from the retry's INVITE */
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN | TRACK_F_LATE_FINAL), 0);
    track_free(f.tr);
}

/* After the call ended, the same INVITE on the same branch (a retransmission whose transaction
 * a full table let go) or from another sender (a proxy forwarding late) is still that call. */
TEST(the_same_invite_resent_or_forwarded_after_the_end_is_not_a_new_call)
{
    struct fixture f = {0};
    char copy[512];
    track_config_defaults(&f.cfg);
    f.cfg.max_transactions = 2;
    setup(&f);
    INVITE(0, "z9hG4bK-s1", 1);
    RESP(100 * MS, 486, "z9hG4bK-s1", 1, "INVITE", "s1");
    feed(&f, 110 * MS, req("OPTIONS", "z9hG4bK-o1", 9, "OPTIONS", "o1", "", ""));
    feed(&f, 120 * MS, req("OPTIONS", "z9hG4bK-o2", 9, "OPTIONS", "o2", "", ""));
    INVITE(500 * MS, "z9hG4bK-s1", 1); /* its transaction was evicted: a retransmission */
    snprintf(copy, sizeof(copy),
             "INVITE sip:bob@example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP proxy.example.com:5060;branch=z9hG4bK-p1\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-s1\n"
             "From: <sip:alice@example.com>;tag=a1\n"
             "To: <sip:bob@example.com>\n"
             "Call-ID: call-1@192.0.2.1\n"
             "CSeq: 1 INVITE\n"
             "Content-Length: 0\n\n");
    feed(&f, 600 * MS, copy); /* a late copy from a proxy */
    RESP(700 * MS, 486, "z9hG4bK-p1", 1, "INVITE", "s1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    track_free(f.tr);
}

TEST(the_same_invite_retried_after_its_timeout_is_a_new_call)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-s1", 1);
    track_advance(f.tr, 32 * S);
    INVITE(32 * S + 100 * MS, "z9hG4bK-s2", 1);
    RESP(35 * S, 200, "z9hG4bK-s2", 1, "INVITE", "s2");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 2);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0); /* timeout */
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 1)->code, 200);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    track_free(f.tr);
}

/* Fork fa answers without ringing; fork fb's 180 comes after the answer: no post-dial delay. */
TEST(a_losing_forks_180_after_the_answer_is_no_post_dial_delay)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "fa");
    RESP(1050 * MS, 180, "z9hG4bK-1", 1, "INVITE", "fb");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_RINGING), 0);
    track_free(f.tr);
}

TEST(session_expires_without_refresh_ends_as_expired)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    feed(&f, 1 * S, resp(200, "z9hG4bK-1", 1, "INVITE", "b1", "Session-Expires: 90;refresher=uac\n"));
    /* refreshed by UPDATE at 60 s: the deadline moves to 60 + 90 + 32 */
    feed(&f, 60 * S, req("UPDATE", "z9hG4bK-2", 2, "UPDATE", "a1", "b1", ""));
    feed(&f, 60 * S, resp(200, "z9hG4bK-2", 2, "UPDATE", "b1", "Session-Expires: 90\n"));
    track_advance(f.tr, 180 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    track_advance(f.tr, 183 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_EXPIRED);
    /* Declared expired at 182 s, but the session ended when its interval ran out (RFC 4028
     * §10): at 60 + 90 = 150 s, so it lasted 150 - 1 = 149 s from its 2xx (SDT, RFC 6076 §4.5),
     * not the 181 s that would count the 32 s sipscope waited for a late refresh. */
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->time_ns, 150 * S);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 0)->delay, 149.0);
    CHECK_INT(f.rec.end_time, 150 * S);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_REFRESH), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_REFRESH, 0)->method, SIP_METHOD_UPDATE);
    /* It is still kept for late messages 64*T1 (32 s) after it was declared expired, not after
     * the session's end: a BYE at 200 s still matches it. */
    feed(&f, 200 * S, req("BYE", "z9hG4bK-3", 3, "BYE", "a1", "b1", ""));
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

TEST(reinvite_answered_481_ends_the_call_as_rejected)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 10 * S, req("INVITE", "z9hG4bK-2", 2, "INVITE", "a1", "b1", ""));
    RESP(10 * S + 5 * MS, 491, "z9hG4bK-2", 2, "INVITE", "b1"); /* keeps the call */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 0);
    feed(&f, 11 * S, req("INVITE", "z9hG4bK-3", 3, "INVITE", "a1", "b1", ""));
    RESP(11 * S + 5 * MS, 481, "z9hG4bK-3", 3, "INVITE", "b1");
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_REJECTED);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_REFRESH), 2);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1); /* re-INVITEs are not calls */
    track_free(f.tr);
}

TEST(call_older_than_max_age_ends_as_max_age)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_call_age_ns = 600 * S;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    track_advance(f.tr, 601 * S);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_MAX_AGE);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->flags & TRACK_F_HAS_DURATION, 0);
    track_free(f.tr);
}

static const char *invite_call(const char *call_id, const char *branch)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "INVITE sip:bob@example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\n"
             "From: <sip:alice@example.com>;tag=a1\n"
             "To: <sip:bob@example.com>\n"
             "Call-ID: %s\n"
             "CSeq: 1 INVITE\n"
             "Content-Length: 0\n\n",
             branch, call_id);
    return msgbuf;
}

TEST(full_call_table_evicts_the_oldest_unanswered_call)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_calls = 2;
    setup(&f);
    feed(&f, 0, invite_call("c1", "z9hG4bK-1"));
    feed(&f, 1 * S, invite_call("c2", "z9hG4bK-2"));
    feed(&f, 2 * S, invite_call("c3", "z9hG4bK-3"));
    CHECK_INT(count_type(&f.rec, TRACK_CALL_START), 3);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_EVICTED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->time_ns, 0); /* ended at its last event */
    /* It gets an outcome, timeout, so that the ratios do not count it as ringing forever. */
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 0);
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.calls, 2);
    CHECK_INT(st.call_evictions, 1);
    track_free(f.tr);
}

/* A scanner's unanswered INVITEs fill a small call table while a real call rings: they push
 * each other out, not the ringing call, which is then answered and hung up as usual. */
TEST(full_call_table_keeps_a_ringing_call_over_unanswered_invites)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_calls = 2;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(10 * MS, 100, "z9hG4bK-1", 1, "INVITE", "");
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 1 * S, invite_call("scan-1", "z9hG4bK-s1"));
    feed(&f, 2 * S, invite_call("scan-2", "z9hG4bK-s2")); /* evicts scan-1 */
    feed(&f, 3 * S, invite_call("scan-3", "z9hG4bK-s3")); /* evicts scan-2 */
    RESP(4 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 4 * S + 10 * MS, req("ACK", "z9hG4bK-2", 1, "ACK", "a1", "b1", ""));
    feed(&f, 5 * S, invite_call("scan-4", "z9hG4bK-s4")); /* evicts scan-3 */
    feed(&f, 14 * S, req("BYE", "z9hG4bK-3", 2, "BYE", "a1", "b1", ""));
    RESP(14 * S + 50 * MS, 200, "z9hG4bK-3", 2, "BYE", "b1");

    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.call_evictions, 3);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 4);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_EVICTED);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->time_ns, 1 * S); /* scan-1 */
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 1)->time_ns, 2 * S); /* scan-2 */
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 2)->time_ns, 3 * S); /* scan-3 */
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 3)->reason, SIP_END_BYE);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_END, 3)->delay, 10.0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 4.0);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    track_free(f.tr);
}

/* A call ended by a BYE is kept until the BYE's final, which gives its disconnect delay: a
 * scanner's unanswered INVITEs that come meanwhile push out each other, not the call. */
TEST(full_call_table_keeps_a_call_until_its_bye_is_answered)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_calls = 2;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(100 * MS, 180, "z9hG4bK-1", 1, "INVITE", "b1");
    RESP(2 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    feed(&f, 2 * S + 10 * MS, req("ACK", "z9hG4bK-2", 1, "ACK", "a1", "b1", ""));
    feed(&f, 10 * S, req("BYE", "z9hG4bK-3", 2, "BYE", "a1", "b1", ""));
    feed(&f, 10 * S + 1 * MS, invite_call("scan-1", "z9hG4bK-s1"));
    feed(&f, 10 * S + 2 * MS, invite_call("scan-2", "z9hG4bK-s2")); /* evicts scan-1 */
    RESP(10 * S + 50 * MS, 200, "z9hG4bK-3", 2, "BYE", "b1");
    CHECK_INT(count_type(&f.rec, TRACK_CALL_DISCONNECT), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->outcome, TRACK_SUCCESS);
    CHECK_DBL(nth(&f.rec, TRACK_CALL_DISCONNECT, 0)->delay, 0.05);
    /* Answered, the ended call is the first to go. */
    feed(&f, 11 * S, invite_call("scan-3", "z9hG4bK-s3"));
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.call_evictions, 2);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_END), 2); /* the call's BYE, scan-1's eviction */
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 0)->reason, SIP_END_BYE);
    CHECK_INT(nth(&f.rec, TRACK_CALL_END, 1)->reason, SIP_END_EVICTED);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_OUTCOME), 2); /* the call's 200, scan-1's timeout */
    track_free(f.tr);
}

/* A scanner's unanswered OPTIONS fill a small transactions table while a call rings: they push
 * each other out, not the call's INVITE, whose 200 then still answers the call. */
TEST(full_transactions_table_keeps_ringing_invites_over_unanswered_requests)
{
    struct fixture f = {0};
    char options[512];
    track_config_defaults(&f.cfg);
    f.cfg.max_transactions = 4;
    setup(&f);
    INVITE(0, "z9hG4bK-1", 1);
    RESP(5 * MS, 100, "z9hG4bK-1", 1, "INVITE", "");
    for (int i = 0; i < 6; i++) {
        snprintf(options, sizeof(options),
                 "OPTIONS sip:probe@example.com SIP/2.0\n"
                 "Via: SIP/2.0/UDP 198.51.100.9:5060;branch=z9hG4bK-scan%d\n"
                 "From: <sip:scan@example.net>;tag=s%d\n"
                 "To: <sip:probe@example.com>\n"
                 "Call-ID: scan-%d\n"
                 "CSeq: 1 OPTIONS\n"
                 "Content-Length: 0\n\n",
                 i, i, i);
        feed(&f, (uint64_t)(i + 1) * 10 * MS, options);
    }
    RESP(1 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");

    struct track_stats st;
    track_get_stats(f.tr, &st);
    /* 1 INVITE + 6 OPTIONS in 4 places: the 4th, 5th and 6th OPTIONS each evicted the oldest
     * OPTIONS. */
    CHECK_INT(st.transaction_evictions, 3);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    CHECK_INT(nth(&f.rec, TRACK_CALL_OUTCOME, 0)->code, 200);
    track_free(f.tr);
}

TEST(peer_without_magic_cookie_still_matches_responses)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(0, "1234", 1);
    RESP(100 * MS, 180, "1234", 1, "INVITE", "b1");
    RESP(200 * MS, 200, "1234", 1, "INVITE", "b1");
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    CHECK_INT(count_type(&f.rec, TRACK_CALL_ANSWER), 1);
    track_free(f.tr);
}

static const char *register_msg(const char *branch, unsigned cseq, const char *contact,
                                const char *extra)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\n"
             "From: <sip:alice@example.com>;tag=r%u\n"
             "To: <sip:alice@example.com>\n"
             "Call-ID: reg-1@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "Contact: %s\n"
             "%s"
             "Content-Length: 0\n\n",
             branch, cseq, cseq, contact, extra);
    return msgbuf;
}

static const char *register_ok(unsigned code, const char *branch, unsigned cseq,
                               const char *contact)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "SIP/2.0 %u OK\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=%s\n"
             "From: <sip:alice@example.com>;tag=r%u\n"
             "To: <sip:alice@example.com>;tag=srv\n"
             "Call-ID: reg-1@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "%s%s%s"
             "Content-Length: 0\n\n",
             code, branch, cseq, cseq, contact[0] ? "Contact: " : "", contact,
             contact[0] ? "\n" : "");
    return msgbuf;
}

TEST(register_challenge_retry_binding_and_expiry)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>", "Expires: 60\n"));
    feed(&f, 20 * MS, register_ok(401, "z9hG4bK-r1", 1, ""));
    feed(&f, 40 * MS, register_msg("z9hG4bK-r2", 2, "<sip:alice@192.0.2.1:5060>", "Expires: 60\n"));
    feed(&f, 100 * MS, register_ok(200, "z9hG4bK-r2", 2, "<sip:alice@192.0.2.1:5060>;expires=60"));

    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 1);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 200);
    CHECK_DBL(nth(&f.rec, TRACK_REG_OUTCOME, 0)->delay, 0.1);
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 0)->reason, SIP_BINDING_ADDED);
    CHECK_INT(f.rec.label_calls, 1);

    track_advance(f.tr, 60 * S + 100 * MS);
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 2);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 1)->reason, SIP_BINDING_EXPIRED);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 1)->time_ns, 60 * S + 100 * MS);
    track_free(f.tr);
}

TEST(deregister_with_expires_zero_removes_the_binding)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>", ""));
    feed(&f, 10 * MS, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>"));
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 0)->reason, SIP_BINDING_ADDED);
    /* refresh, then de-register: the 2xx no longer lists the contact (RFC 3261 §10.3) */
    feed(&f, 1 * S, register_msg("z9hG4bK-r2", 2, "<sip:alice@192.0.2.1:5060>", ""));
    feed(&f, 1 * S, register_ok(200, "z9hG4bK-r2", 2, "<sip:alice@192.0.2.1:5060>;expires=3600"));
    feed(&f, 2 * S, register_msg("z9hG4bK-r3", 3, "<sip:alice@192.0.2.1:5060>", "Expires: 0\n"));
    feed(&f, 2 * S, register_ok(200, "z9hG4bK-r3", 3, ""));
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 3);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 1)->reason, SIP_BINDING_REFRESHED);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 2)->reason, SIP_BINDING_REMOVED);
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 3);
    track_advance(f.tr, 7200 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 3); /* nothing left to expire */
    track_free(f.tr);
}

TEST(contact_star_removes_every_binding_of_the_aor)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:a@192.0.2.1>, <sip:a@192.0.2.2>", ""));
    feed(&f, 10 * MS,
         register_ok(200, "z9hG4bK-r1", 1, "<sip:a@192.0.2.1>;expires=600, <sip:a@192.0.2.2>"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 2);
    feed(&f, 1 * S, register_msg("z9hG4bK-r2", 2, "*", "Expires: 0\n"));
    feed(&f, 1 * S, register_ok(200, "z9hG4bK-r2", 2, ""));
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 4);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 2)->reason, SIP_BINDING_REMOVED);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 3)->reason, SIP_BINDING_REMOVED);
    track_free(f.tr);
}

/* Contacts "axxxxxxxy" and "bxxxxxxxxz" give their bindings the same first half of the key
 * (the length difference is cancelled by the first byte, see hash2 in slice.h): removing one
 * must not drop the other, so a removal is named by bits of both halves. */
TEST(a_removal_drops_only_its_contact_when_one_key_half_collides)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<axxxxxxxy>, <bxxxxxxxxz>", "Expires: 600\n"));
    feed(&f, 10 * MS, register_ok(200, "z9hG4bK-r1", 1, "<axxxxxxxy>, <bxxxxxxxxz>"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 2);
    feed(&f, 1 * S, register_msg("z9hG4bK-r2", 2, "<axxxxxxxy>;expires=0", ""));
    feed(&f, 1 * S, register_ok(200, "z9hG4bK-r2", 2, "<bxxxxxxxxz>;expires=599"));
    /* One removal (a) and one refresh (b, listed in the 2xx), in either order. */
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 4);
    int r2 = nth(&f.rec, TRACK_REG_BINDING, 2)->reason, r3 = nth(&f.rec, TRACK_REG_BINDING, 3)->reason;
    CHECK((r2 == SIP_BINDING_REMOVED && r3 == SIP_BINDING_REFRESHED) ||
          (r2 == SIP_BINDING_REFRESHED && r3 == SIP_BINDING_REMOVED));
    /* b is still there: it expires at 1 + 599 s. */
    track_advance(f.tr, 700 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_BINDING), 5);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 4)->reason, SIP_BINDING_EXPIRED);
    CHECK_INT(nth(&f.rec, TRACK_REG_BINDING, 4)->time_ns, 600 * S);
    track_free(f.tr);
}

/* The 2xx lists the contact without an expiry and has no Expires header: the request's
 * contact asked for 60 s (RFC 3261 §10.2.1.1), which beats the 3600 s default. */
TEST(a_binding_without_an_expiry_in_the_2xx_takes_the_requests_contact_expiry)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>;expires=60", ""));
    feed(&f, 10 * MS, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>"));
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    track_advance(f.tr, 60 * S);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_EXPIRED], 0);
    track_advance(f.tr, 61 * S);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_EXPIRED], 1);
    track_free(f.tr);
}

/* Five contacts removed in one REGISTER, more than the attempt remembers by name: the 2xx lists
 * none of the AoR's bindings, so none stays. */
TEST(a_register_removing_five_contacts_removes_all_five)
{
    struct fixture f = {0};
    static const char five[] = "<sip:a@192.0.2.1>, <sip:b@192.0.2.1>, <sip:c@192.0.2.1>, "
                               "<sip:d@192.0.2.1>, <sip:e@192.0.2.1>";
    static const char five0[] = "<sip:a@192.0.2.1>;expires=0, <sip:b@192.0.2.1>;expires=0, "
                                "<sip:c@192.0.2.1>;expires=0, <sip:d@192.0.2.1>;expires=0, "
                                "<sip:e@192.0.2.1>;expires=0";
    /* Another device's binding y of the same AoR, refreshed by a 2xx at the very instant the
     * removal's 2xx comes: a 2xx that does not list it removes it all the same. */
    static const char other_reg[] = "REGISTER sip:example.com SIP/2.0\n"
                                     "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-y%u\n"
                                     "From: <sip:alice@example.com>;tag=y%u\n"
                                     "To: <sip:alice@example.com>\n"
                                     "Call-ID: reg-y@192.0.2.9\n"
                                     "CSeq: %u REGISTER\n"
                                     "Contact: <sip:y@192.0.2.9>\n"
                                     "Expires: 600\n"
                                     "Content-Length: 0\n\n";
    static const char other_ok[] = "SIP/2.0 200 OK\n"
                                    "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-y%u\n"
                                    "From: <sip:alice@example.com>;tag=y%u\n"
                                    "To: <sip:alice@example.com>;tag=srv\n"
                                    "Call-ID: reg-y@192.0.2.9\n"
                                    "CSeq: %u REGISTER\n"
                                    "Contact: <sip:y@192.0.2.9>;expires=600\n"
                                    "Content-Length: 0\n\n";
    char buf[1024];
    setup(&f);
    snprintf(buf, sizeof(buf), other_reg, 1u, 1u, 1u);
    feed(&f, 0, buf);
    snprintf(buf, sizeof(buf), other_ok, 1u, 1u, 1u);
    feed(&f, 5 * MS, buf);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, five, "Expires: 600\n"));
    feed(&f, 10 * MS, register_ok(200, "z9hG4bK-r1", 1, five));
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 6);
    snprintf(buf, sizeof(buf), other_reg, 2u, 2u, 2u);
    feed(&f, 1 * S, buf);
    feed(&f, 1 * S, register_msg("z9hG4bK-r2", 2, five0, ""));
    snprintf(buf, sizeof(buf), other_ok, 2u, 2u, 2u);
    feed(&f, 1 * S + 10 * MS, buf);
    feed(&f, 1 * S + 10 * MS, register_ok(200, "z9hG4bK-r2", 2, ""));
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REMOVED], 6);
    track_free(f.tr);
}

/* A REGISTER of user u's address of record (its own Call-ID and branch), Contact: * with
 * Expires: 0 when star is set. */
static const char *user_register(unsigned u, unsigned cseq, bool star)
{
    snprintf(msgbuf, sizeof(msgbuf),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-u%u-%u\n"
             "From: <sip:user%u@example.com>;tag=f%u\n"
             "To: <sip:user%u@example.com>\n"
             "Call-ID: reg-%u@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "Contact: %s\n"
             "%s"
             "Content-Length: 0\n\n",
             u, cseq, u, u, u, u, cseq, star ? "*" : "<sip:user@192.0.2.1>",
             star ? "Expires: 0\n" : "Expires: 600\n");
    return msgbuf;
}

/* user_register and its 200 OK. */
static void register_user(struct fixture *f, uint64_t t, unsigned u, unsigned cseq, bool star)
{
    char ok[1024];
    feed(f, t, user_register(u, cseq, star));
    snprintf(ok, sizeof(ok),
             "SIP/2.0 200 OK\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-u%u-%u\n"
             "From: <sip:user%u@example.com>;tag=f%u\n"
             "To: <sip:user%u@example.com>;tag=srv\n"
             "Call-ID: reg-%u@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "%s"
             "Content-Length: 0\n\n",
             u, cseq, u, u, u, u, cseq, star ? "" : "Contact: <sip:user@192.0.2.1>;expires=600\n");
    feed(f, t, ok);
}

/* Three unanswered REGISTERs in a transactions table of two: the first one's transaction is
 * evicted, so its Timer F never fires. Its attempt still gets its outcome, timeout, at Timer F
 * + 64*T1 after its REGISTER (0 + 32 + 32 s). */
TEST(a_register_whose_transaction_was_evicted_still_gets_an_outcome)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_transactions = 2;
    setup(&f);
    for (unsigned i = 0; i < 3; i++)
        feed(&f, (uint64_t)i * S, user_register(i, 1, false));
    track_advance(f.tr, 40 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 3);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 2); /* Timer F of the second and third */
    track_advance(f.tr, 64 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 3);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 2)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 2)->time_ns, 64 * S);
    track_free(f.tr);
}

/* A flood of INVITEs nobody answers (a scanner) does not push out a REGISTER waiting for its
 * answer that came after them: the oldest unanswered transaction goes first. */
TEST(full_transactions_table_evicts_the_oldest_unanswered_request_of_any_method)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_transactions = 4;
    setup(&f);
    feed(&f, 0, invite_call("scan-1", "z9hG4bK-x1"));
    feed(&f, 10 * MS, invite_call("scan-2", "z9hG4bK-x2"));
    feed(&f, 20 * MS, invite_call("scan-3", "z9hG4bK-x3"));
    feed(&f, 30 * MS, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>", ""));
    feed(&f, 40 * MS, invite_call("scan-4", "z9hG4bK-x4"));
    feed(&f, 50 * MS, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>;expires=60"));
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.transaction_evictions, 1); /* scan-1's */
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 200);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    track_free(f.tr);
}

/* A flood of unanswered REGISTERs on one Call-ID and AoR, each with a CSeq of its own: each is
 * an attempt, and all share one key. Past four waiting on a key, the oldest of them gives way
 * (outcome timeout, counted as an eviction), so that the attempts of one key stay few: looking a
 * REGISTER up walked every attempt of its key, quadratic in the flood. */
TEST(unanswered_registers_on_one_call_id_keep_at_most_four_attempts)
{
    struct fixture f = {0};
    char branch[32];
    setup(&f);
    for (unsigned i = 1; i <= 6; i++) {
        snprintf(branch, sizeof(branch), "z9hG4bK-f%u", i);
        feed(&f, (uint64_t)i * S, register_msg(branch, i, "<sip:alice@192.0.2.1:5060>", ""));
    }
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 6);
    CHECK_INT(st.reg_attempts, 4);
    CHECK_INT(st.reg_attempt_evictions, 2);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 2);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->time_ns, 5 * S); /* CSeq 1, at the 5th */
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 1)->time_ns, 6 * S); /* CSeq 2, at the 6th */
    /* The newest still find their answers. */
    feed(&f, 6 * S + 10 * MS, register_ok(200, "z9hG4bK-f6", 6, "<sip:alice@192.0.2.1:5060>"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 3);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 2)->code, 200);
    /* A long flood keeps four. */
    for (unsigned i = 7; i <= 20000; i++) {
        snprintf(branch, sizeof(branch), "z9hG4bK-f%u", i);
        feed(&f, 7 * S + i * MS, register_msg(branch, i, "<sip:alice@192.0.2.1:5060>", ""));
    }
    track_get_stats(f.tr, &st);
    CHECK_INT(st.reg_attempts, 4);
    CHECK_INT(st.reg_attempt_evictions, 2 + 19994 - 1); /* one place was free after the 200 */
    track_free(f.tr);
}

/* An attempts table of two, three REGISTERs waiting: the oldest attempt gives way with the
 * outcome it has so far (timeout), at the time the third came. */
TEST(a_register_attempt_evicted_from_a_full_attempts_table_gets_an_outcome)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.max_registrations = 2;
    setup(&f);
    for (unsigned i = 0; i < 3; i++)
        feed(&f, (uint64_t)i * S, user_register(i, 1, false));
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 3);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->time_ns, 2 * S);
    track_free(f.tr);
}

/* A UA that (against RFC 3261 §8.1.1.2) puts the To-tag of the last 200 into its refresh: the
 * REGISTER is still an attempt that refreshes the binding, not an orphan in-dialog request. */
TEST(a_refresh_register_with_a_to_tag_is_still_an_attempt)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>", "Expires: 60\n"));
    feed(&f, 10 * MS, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1:5060>;expires=60"));
    feed(&f, 50 * S,
         "REGISTER sip:example.com SIP/2.0\n"
         "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-r2\n"
         "From: <sip:alice@example.com>;tag=r2\n"
         "To: <sip:alice@example.com>;tag=srv\n"
         "Call-ID: reg-1@192.0.2.1\n"
         "CSeq: 2 REGISTER\n"
         "Contact: <sip:alice@192.0.2.1:5060>\n"
         "Expires: 60\n"
         "Content-Length: 0\n\n");
    feed(&f, 50 * S + 10 * MS,
         register_ok(200, "z9hG4bK-r2", 2, "<sip:alice@192.0.2.1:5060>;expires=60"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 2);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 2);
    CHECK_INT(count_flag(&f.rec, TRACK_F_ORPHAN), 0);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REFRESHED], 1);
    /* Refreshed at 50.01 s for 60 s: it expires at 110.01 s, not at 60.01 s. */
    track_advance(f.tr, 100 * S);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_EXPIRED], 0);
    track_advance(f.tr, 111 * S);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_EXPIRED], 1);
    track_free(f.tr);
}

/* The index from address of record to bindings starts small and doubles as bindings are added:
 * every binding must still be found by its AoR after the index has grown (here three times,
 * from 1,024 to 8,192 buckets). */
TEST(star_finds_every_binding_after_the_aor_index_grew)
{
    struct fixture f = {0};
    setup(&f);
    /* First an AoR with two contacts: Contact: * reports its bindings newest first, also after
     * the growth split the chains. */
    feed(&f, 0,
         "REGISTER sip:example.com SIP/2.0\n"
         "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-two-1\n"
         "From: <sip:two@example.com>;tag=t1\n"
         "To: <sip:two@example.com>\n"
         "Call-ID: reg-two@192.0.2.9\n"
         "CSeq: 1 REGISTER\n"
         "Contact: <sip:x@192.0.2.9>, <sip:y@192.0.2.9>\n"
         "Expires: 600\n"
         "Content-Length: 0\n\n");
    feed(&f, 0,
         "SIP/2.0 200 OK\n"
         "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-two-1\n"
         "From: <sip:two@example.com>;tag=t1\n"
         "To: <sip:two@example.com>;tag=srv\n"
         "Call-ID: reg-two@192.0.2.9\n"
         "CSeq: 1 REGISTER\n"
         "Contact: <sip:x@192.0.2.9>;expires=600, <sip:y@192.0.2.9>;expires=600\n"
         "Content-Length: 0\n\n");
    for (unsigned u = 0; u < 2100; u++)
        register_user(&f, u * MS, u, 1, false);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 2102);
    feed(&f, 5 * S,
         "REGISTER sip:example.com SIP/2.0\n"
         "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-two-2\n"
         "From: <sip:two@example.com>;tag=t2\n"
         "To: <sip:two@example.com>\n"
         "Call-ID: reg-two@192.0.2.9\n"
         "CSeq: 2 REGISTER\n"
         "Contact: *\n"
         "Expires: 0\n"
         "Content-Length: 0\n\n");
    feed(&f, 5 * S,
         "SIP/2.0 200 OK\n"
         "Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-two-2\n"
         "From: <sip:two@example.com>;tag=t2\n"
         "To: <sip:two@example.com>;tag=srv\n"
         "Call-ID: reg-two@192.0.2.9\n"
         "CSeq: 2 REGISTER\n"
         "Content-Length: 0\n\n");
    CHECK_STR(f.rec.removed, "sip:y@192.0.2.9 sip:x@192.0.2.9");
    for (unsigned u = 0; u < 2100; u++)
        register_user(&f, 10 * S + u * MS, u, 2, true);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REMOVED], 2102);
    track_advance(f.tr, 3600 * S);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_EXPIRED], 0);
    track_free(f.tr);
}

/* A REGISTER forwarded by a proxy, under a branch of its own, seen on both hops: one attempt
 * (same Call-ID, To URI and CSeq), as an INVITE's copy is one call. A failure on the proxy's
 * leg decides nothing (it fails over to another registrar); the first 2xx, on any hop, is the
 * outcome. */
TEST(a_register_copy_on_another_hop_joins_its_attempt)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    feed(&f, 10 * MS, register_msg("z9hG4bK-r1-p", 1, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    feed(&f, 20 * MS, register_ok(503, "z9hG4bK-r1-p", 1, ""));
    feed(&f, 30 * MS, register_msg("z9hG4bK-r1-q", 1, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    feed(&f, 40 * MS, register_ok(200, "z9hG4bK-r1-q", 1, "<sip:alice@192.0.2.1>;expires=600"));
    feed(&f, 50 * MS, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>;expires=600"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 1);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 200);
    CHECK_DBL(nth(&f.rec, TRACK_REG_OUTCOME, 0)->delay, 0.04);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    CHECK_INT(f.rec.label_calls, 1);
    /* The next REGISTER (a new CSeq) is a new attempt. */
    feed(&f, 300 * S, register_msg("z9hG4bK-r2", 2, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_ATTEMPT), 2);
    track_free(f.tr);
}

/* Only the attempt's own REGISTER going unanswered lets a copy's failure be the outcome. */
TEST(a_failure_on_a_register_copy_is_the_outcome_when_the_own_register_times_out)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>", ""));
    feed(&f, 10 * MS, register_msg("z9hG4bK-r1-p", 1, "<sip:alice@192.0.2.1>", ""));
    feed(&f, 20 * MS, register_ok(403, "z9hG4bK-r1-p", 1, ""));
    track_advance(f.tr, 32 * S - 1);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 0);
    track_advance(f.tr, 32 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 403);
    track_free(f.tr);
}

TEST(register_without_answer_times_out_at_timer_f)
{
    struct fixture f = {0};
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>", ""));
    track_advance(f.tr, 32 * S);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_TXN_END, 0)->method, SIP_METHOD_REGISTER);
    track_free(f.tr);
}

/* A REGISTER under To <to> and its 2xx (contact_ok: the 2xx's Contact header value, "" for
 * none), on one Call-ID. */
static void register_under(struct fixture *f, uint64_t t, const char *to, unsigned cseq,
                           const char *contact, const char *extra, const char *contact_ok)
{
    char ok[1024];
    snprintf(msgbuf, sizeof(msgbuf),
             "REGISTER sip:example.com SIP/2.0\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-u%u\n"
             "From: <%s>;tag=u%u\n"
             "To: <%s>\n"
             "Call-ID: reg-under@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "Contact: %s\n"
             "%s"
             "Content-Length: 0\n\n",
             cseq, to, cseq, to, cseq, contact, extra);
    feed(f, t, msgbuf);
    snprintf(ok, sizeof(ok),
             "SIP/2.0 200 OK\n"
             "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-u%u\n"
             "From: <%s>;tag=u%u\n"
             "To: <%s>;tag=srv\n"
             "Call-ID: reg-under@192.0.2.1\n"
             "CSeq: %u REGISTER\n"
             "%s%s%s"
             "Content-Length: 0\n\n",
             cseq, to, cseq, to, cseq, contact_ok[0] ? "Contact: " : "", contact_ok,
             contact_ok[0] ? "\n" : "");
    feed(f, t + 10 * MS, ok);
}

/* RFC 3261 §10.3 step 5: the AoR's host is case-insensitive, so the second REGISTER refreshes
 * the binding of the first. */
TEST(a_register_under_another_case_of_the_aor_host_refreshes_the_binding)
{
    struct fixture f = {0};
    setup(&f);
    register_under(&f, 0, "sip:alice@Example.COM", 1, "<sip:alice@192.0.2.1>", "Expires: 600\n",
                   "<sip:alice@192.0.2.1>;expires=600");
    register_under(&f, 1 * S, "sip:alice@example.com", 2, "<sip:alice@192.0.2.1>", "Expires: 600\n",
                   "<sip:alice@192.0.2.1>;expires=600");
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REFRESHED], 1);
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.registrations, 1);
    track_free(f.tr);
}

TEST(contact_star_under_another_case_of_the_aor_host_removes_the_binding)
{
    struct fixture f = {0};
    setup(&f);
    register_under(&f, 0, "sip:bob@Example.COM", 1, "<sip:bob@192.0.2.1>", "Expires: 600\n",
                   "<sip:bob@192.0.2.1>;expires=600");
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    register_under(&f, 1 * S, "sip:bob@example.com", 2, "*", "Expires: 0\n", "");
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REMOVED], 1);
    CHECK_STR(f.rec.removed, "sip:bob@192.0.2.1");
    track_free(f.tr);
}

/* RFC 3261 §19.1.4: transport's value is case-insensitive, and an IPv6 reference is its
 * address; the removal names the bound contact in another spelling. */
TEST(a_removal_names_its_contact_by_uri_equality_not_bytes)
{
    static const struct {
        const char *bound, *removed;
    } cases[] = {
        {"<sip:carol@192.0.2.1:5060;transport=UDP>", "<sip:carol@192.0.2.1:5060;transport=udp>"},
        {"<sip:dave@[2001:DB8::10]:5060>", "<sip:dave@[2001:db8:0::10]:5060>"},
        {"<sip:%65rin@192.0.2.1;lr;transport=tcp;user=ip>",
         "<sip:erin@192.0.2.1;user=ip;transport=TCP>"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct fixture f = {0};
        char removal[256], ok[256];
        setup(&f);
        snprintf(ok, sizeof(ok), "%s;expires=600", cases[i].bound);
        register_under(&f, 0, "sip:u@example.com", 1, cases[i].bound, "Expires: 600\n", ok);
        snprintf(removal, sizeof(removal), "%s;expires=0", cases[i].removed);
        register_under(&f, 1 * S, "sip:u@example.com", 2, removal, "", "");
        if (f.rec.binding_changes[SIP_BINDING_ADDED] != 1 ||
            f.rec.binding_changes[SIP_BINDING_REMOVED] != 1)
            TEST_FAIL_AT("%s bound, %s removed: %d added, %d removed", cases[i].bound,
                         cases[i].removed, f.rec.binding_changes[SIP_BINDING_ADDED],
                         f.rec.binding_changes[SIP_BINDING_REMOVED]);
        track_free(f.tr);
    }
}

/* A contact the request removed (expires=0, no Expires header) that the 2xx lists without any
 * expiry takes the request's expiry for it, 0: it is not bound again for the default 3600 s. */
TEST(a_removed_contact_echoed_without_expiry_stays_removed)
{
    struct fixture f = {0};
    setup(&f);
    register_under(&f, 0, "sip:erin@example.com", 1, "<sip:erin@192.0.2.1>", "Expires: 600\n",
                   "<sip:erin@192.0.2.1>;expires=600");
    register_under(&f, 1 * S, "sip:erin@example.com", 2, "<sip:erin@192.0.2.1>;expires=0", "",
                   "<sip:erin@192.0.2.1>");
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_REMOVED], 1);
    struct track_stats st;
    track_get_stats(f.tr, &st);
    CHECK_INT(st.registrations, 0);
    track_free(f.tr);
}

/* With T1 = 100 ms (128*T1 = 12.8 s) and Timer F = 30 s, a 200 at 20 s is the attempt's
 * outcome: the attempt lives as long as its transaction may. Without any final, the transaction's
 * Timer F gives the timeout, at 30 s. */
TEST(a_register_attempt_lives_as_long_as_timer_f)
{
    struct fixture f = {0};
    track_config_defaults(&f.cfg);
    f.cfg.t1_ns = 100 * MS;
    f.cfg.timer_f_ns = 30 * S;
    setup(&f);
    feed(&f, 0, register_msg("z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    feed(&f, 500 * MS, register_ok(100, "z9hG4bK-r1", 1, ""));
    feed(&f, 20 * S, register_ok(200, "z9hG4bK-r1", 1, "<sip:alice@192.0.2.1>;expires=600"));
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 0)->code, 200);
    CHECK_INT(f.rec.binding_changes[SIP_BINDING_ADDED], 1);
    feed(&f, 40 * S, register_msg("z9hG4bK-r2", 2, "<sip:alice@192.0.2.1>", "Expires: 600\n"));
    track_advance(f.tr, 69 * S + 999 * MS);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 1);
    track_advance(f.tr, 70 * S);
    CHECK_INT(count_type(&f.rec, TRACK_REG_OUTCOME), 2);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 1)->code, 0);
    CHECK_INT(nth(&f.rec, TRACK_REG_OUTCOME, 1)->time_ns, 70 * S);
    track_free(f.tr);
}

TEST(out_of_order_response_is_clamped_and_flagged)
{
    struct fixture f = {0};
    setup(&f);
    INVITE(10 * S, "z9hG4bK-1", 1);
    RESP(9 * S, 200, "z9hG4bK-1", 1, "INVITE", "b1");
    CHECK_DBL(nth(&f.rec, TRACK_CALL_ANSWER, 0)->delay, 0.0);
    CHECK(nth(&f.rec, TRACK_CALL_ANSWER, 0)->flags & TRACK_F_NEGATIVE_DELAY);
    track_free(f.tr);
}

TEST_MAIN()
