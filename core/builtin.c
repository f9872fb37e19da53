/* builtin: declaration and updates of the sip_ families, and the RFC 6076 ratio gauges. */
#include "builtin.h"

#include <stdlib.h>
#include <string.h>

#include "sip_dialog.h"
#include "sip_parse.h"
#include "sip_reg.h"

#define BUILTIN_SERIES_CAP 10000 /* METRICS.md: per built-in family */
/* A loss is counted only for label values that have their own attempts series: never more than
 * the attempts family holds, so the hidden families never overflow (nor show up in
 * sipscope_series_overflow_total). */
#define LOST_SERIES_CAP (BUILTIN_SERIES_CAP + 1)
#define CODE_MIN 100
#define CODE_COUNT 600

static const double delay_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2,     5,    10,  30};
static const double duration_buckets[] = {1,   5,    10,   30,   60,   120,
                                          300, 600, 1800, 3600, 7200, 14400};
#define N_DELAY (sizeof(delay_buckets) / sizeof(delay_buckets[0]))
#define N_DURATION (sizeof(duration_buckets) / sizeof(duration_buckets[0]))

enum fam {
    F_REQUESTS,
    F_RESPONSES,
    F_RETRANS,
    F_TIMEOUTS,
    F_ORPHAN_RESP,
    F_ORPHAN_REQ,
    F_LATE_FINALS,
    F_ATTEMPTS,
    F_OUTCOMES,
    F_CHALLENGES,
    F_COMPLETED,
    F_ACTIVE,
    F_ENDED,
    F_REINVITES,
    F_SRD,
    F_PDD,
    F_SETUP,
    F_SDD,
    F_DURATION,
    F_TXN_RESPONSE,
    F_REG_ATTEMPTS,
    F_REG_OUTCOMES,
    F_RRD,
    F_REG_ACTIVE,
    F_NEGATIVE,
    F_LOST_SESSION,
    F_LOST_REGISTRATION,
    F_COUNT
};

struct fam_def {
    const char *name;
    const char *help;
    enum metric_type type;
    const char *labels[2];
    const double *buckets;
    size_t n_buckets;
    int op; /* carries operator labels */
};

static const struct fam_def defs[F_COUNT] = {
    [F_REQUESTS] = {"sip_requests_total", "SIP requests seen, every copy (retransmissions too).",
                    METRIC_COUNTER, {"method"}, NULL, 0, 1},
    [F_RESPONSES] = {"sip_responses_total",
                     "SIP responses seen, every copy, by CSeq method and status code.",
                     METRIC_COUNTER, {"method", "code"}, NULL, 0, 1},
    [F_RETRANS] = {"sip_retransmissions_total",
                   "Copies of a request or response after the first.", METRIC_COUNTER,
                   {"method", "kind"}, NULL, 0, 1},
    [F_TIMEOUTS] = {"sip_transaction_timeouts_total",
                    "Client transactions without a final response in time (Timers B, C, F).",
                    METRIC_COUNTER, {"method"}, NULL, 0, 1},
    [F_ORPHAN_RESP] = {"sip_orphan_responses_total",
                       "Responses whose request was never seen.", METRIC_COUNTER, {"method"},
                       NULL, 0, 1},
    [F_ORPHAN_REQ] = {"sip_orphan_requests_total",
                      "In-dialog requests for a dialog never seen.", METRIC_COUNTER,
                      {"method"}, NULL, 0, 1},
    [F_LATE_FINALS] = {"sip_late_finals_total",
                       "Final responses after the transaction's first final or its timeout "
                       "(losing forks, late 2xx).",
                       METRIC_COUNTER, {"method"}, NULL, 0, 1},
    [F_ATTEMPTS] = {"sip_session_attempts_total",
                    "Calls started (RFC 6076 session attempts); a challenged retry is the same "
                    "call.",
                    METRIC_COUNTER, {NULL}, NULL, 0, 1},
    [F_OUTCOMES] = {"sip_session_outcomes_total",
                    "Call outcomes: the first final response other than a folded challenge, or "
                    "timeout.",
                    METRIC_COUNTER, {"code"}, NULL, 0, 1},
    [F_CHALLENGES] = {"sip_session_challenges_total",
                      "401/407 challenges received by calls.", METRIC_COUNTER, {"code"}, NULL,
                      0, 1},
    [F_COMPLETED] = {"sip_sessions_completed_total",
                     "Confirmed calls ended by BYE (RFC 6076 SCR numerator).", METRIC_COUNTER,
                     {NULL}, NULL, 0, 1},
    [F_ACTIVE] = {"sip_dialogs_active", "Calls now, by state.", METRIC_GAUGE, {"state"}, NULL, 0,
                  1},
    [F_ENDED] = {"sip_dialogs_ended_total", "Calls ended, by reason.", METRIC_COUNTER,
                 {"reason"}, NULL, 0, 1},
    [F_REINVITES] = {"sip_reinvites_total", "re-INVITEs and UPDATEs inside calls.",
                     METRIC_COUNTER, {"method"}, NULL, 0, 1},
    [F_SRD] = {"sip_session_request_delay_seconds",
               "RFC 6076 SRD: first INVITE to first non-100 provisional or 2xx (success), or to a "
               "failure final (failure).",
               METRIC_HISTOGRAM, {"outcome"}, delay_buckets, N_DELAY, 1},
    [F_PDD] = {"sip_post_dial_delay_seconds", "First INVITE to first 180 or 183.",
               METRIC_HISTOGRAM, {NULL}, delay_buckets, N_DELAY, 1},
    [F_SETUP] = {"sip_session_setup_seconds", "First INVITE to 2xx.", METRIC_HISTOGRAM, {NULL},
                 delay_buckets, N_DELAY, 1},
    [F_SDD] = {"sip_session_disconnect_delay_seconds",
               "RFC 6076 SDD: BYE to its 2xx (success), or to another final or the timeout "
               "(failure).",
               METRIC_HISTOGRAM, {"outcome"}, delay_buckets, N_DELAY, 1},
    [F_DURATION] = {"sip_session_duration_seconds",
                    "RFC 6076 SDT: 2xx to BYE, or to the session expiry.", METRIC_HISTOGRAM,
                    {NULL}, duration_buckets, N_DURATION, 1},
    [F_TXN_RESPONSE] = {"sip_transaction_response_seconds",
                        "Request to its transaction's first final response.", METRIC_HISTOGRAM,
                        {"method"}, delay_buckets, N_DELAY, 1},
    [F_REG_ATTEMPTS] = {"sip_registration_attempts_total",
                        "REGISTER transactions; a challenge and its retry are one attempt.",
                        METRIC_COUNTER, {NULL}, NULL, 0, 1},
    [F_REG_OUTCOMES] = {"sip_registration_outcomes_total",
                        "REGISTER outcomes: the first final after a folded challenge, or "
                        "timeout.",
                        METRIC_COUNTER, {"code"}, NULL, 0, 1},
    [F_RRD] = {"sip_registration_request_delay_seconds",
               "RFC 6076 RRD: first REGISTER to its 2xx, challenge included.", METRIC_HISTOGRAM,
               {NULL}, delay_buckets, N_DELAY, 1},
    [F_REG_ACTIVE] = {"sip_registrations_active", "Live bindings (AoR, Contact).", METRIC_GAUGE,
                      {NULL}, NULL, 0, 1},
    [F_NEGATIVE] = {"sipscope_negative_delays_total",
                    "Delays that came out negative (capture out of order) and were counted as 0.",
                    METRIC_COUNTER, {NULL}, NULL, 0, 0},
    /* Outcomes (or completions) that found their family full and went to its overflow series,
     * by the operator labels of their call or registration: the ratio gauges leave those label
     * values out rather than show a made-up value (METRICS.md: no fake 0). Hidden. One per
     * kind of ratio: registrations' losses say nothing of the calls'. */
    [F_LOST_SESSION] = {"sipscope_session_ratio_inputs_lost_total",
                        "Call outcomes and completions counted in an overflow series.",
                        METRIC_COUNTER, {NULL}, NULL, 0, 1},
    [F_LOST_REGISTRATION] = {"sipscope_registration_ratio_inputs_lost_total",
                             "Registration outcomes counted in an overflow series.",
                             METRIC_COUNTER, {NULL}, NULL, 0, 1},
};

/* Family flags (enum metric_flag): the ratio bookkeeping is never shown. */
static const unsigned fam_flags[F_COUNT] = {
    [F_LOST_SESSION] = METRIC_HIDDEN,
    [F_LOST_REGISTRATION] = METRIC_HIDDEN,
};

struct code_sym {
    uint32_t sym;
    uint16_t code;
};

enum ratio {
    R_SER,
    R_SEER,
    R_ISA,
    R_SCR,
    R_ASR,
    R_NER,
    R_IRA,
    R_COUNT
};

struct ratio_collector {
    struct builtin *b;
    enum ratio which;
};

/* Series looked up by family, label symbols and operator label value ids: a direct-mapped cache
 * in front of metrics_series, which interns the operator labels' symbols, hashes and compares
 * them on every call. Value ids are never reused for another value, and series never move, so
 * a kept pointer stays valid; the overflow series is never kept (each lookup that returns it
 * counts an overflow). */
#define SERIES_CACHE_BITS 10
#define SERIES_CACHE_SYM_BITS 29 /* label symbols below 2^29 fit the packed key */

_Static_assert(TRACK_MAX_LABELS * sizeof(uint16_t) == 2 * sizeof(uint64_t),
               "the operator label ids fill two words of the cache key");

struct series_cache_slot {
    uint64_t key;    /* family, first label, second label (see series) */
    uint64_t ops[2]; /* the operator label value ids, those past the declared ones zero */
    struct metric_series *s; /* NULL: empty */
};

struct builtin {
    struct series_cache_slot cache[1u << SERIES_CACHE_BITS];
    struct metrics *reg;
    const struct oplabel_set *ops;
    size_t n_ops;
    uint64_t ops_mask[2]; /* the bits of a labels array that hold declared labels' ids */
    struct metric_family *fam[F_COUNT];
    uint32_t method_sym[SIP_METHOD_COUNT];
    uint32_t code_sym[CODE_COUNT];
    struct code_sym by_sym[CODE_COUNT]; /* code_sym sorted by symbol, for the ratio collector */
    uint32_t timeout_sym, request_sym, response_sym, success_sym, failure_sym;
    uint32_t overflow_sym; /* the overflow series' labels */
    uint32_t state_sym[SIP_DIALOG_STATE_COUNT];
    uint32_t end_sym[SIP_END_COUNT];
    uint64_t negative;
    struct ratio_collector collectors[R_COUNT]; /* contexts the registry calls back with */
};

static uint32_t intern(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

static int cmp_code_sym(const void *a, const void *b)
{
    const struct code_sym *x = a, *y = b;
    return (x->sym > y->sym) - (x->sym < y->sym);
}

/* Ratio gauges are computed from the counters at scrape time (declared below). */
static void collect_ratios(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx);

struct ratio_def {
    const char *name;
    const char *help;
};

static const struct ratio_def ratio_defs[R_COUNT] = {
    [R_SER] = {"sip_session_establishment_ratio",
               "RFC 6076 SER: outcomes 200 / (attempts - outcomes 3xx); cumulative."},
    [R_SEER] = {"sip_session_establishment_effectiveness_ratio",
                "RFC 6076 SEER: outcomes 200, 480, 486, 600, 603 / (attempts - outcomes 3xx); "
                "cumulative."},
    [R_ISA] = {"sip_ineffective_session_attempts_ratio",
               "RFC 6076 ISA: outcomes 408, 500, 503, 504, timeout / attempts; cumulative."},
    [R_SCR] = {"sip_session_completion_ratio",
               "RFC 6076 SCR: calls completed by BYE / attempts; cumulative."},
    [R_ASR] = {"sip_answer_seizure_ratio", "ITU-T E.411 ASR: outcomes 2xx / attempts; cumulative."},
    [R_NER] = {"sip_network_effectiveness_ratio", "GSMA IR.42 NER: 1 - ISA; cumulative."},
    [R_IRA] = {"sip_ineffective_registration_attempts_ratio",
               "RFC 6076 IRA: REGISTER outcomes 4xx except 401/402/407, 5xx, 6xx, timeout / "
               "attempts; cumulative."},
};

/* Series exported from the start at 0 (METRICS.md), with the operator labels at their defaults:
 * rate() and increase() see an increment only between two samples of a series, so a series
 * created by its first event, already at 1, hides that event (the first timeout of a method).
 * Only closed label sets known here are listed; open ones (status codes) would bloat the
 * exposition. methods is a mask of enum sip_method (SIP_METHOD_OTHER included) and leaves out
 * the methods a family never counts; second names the second label's value, if any. */
#define METHOD_BIT(m) (1u << SIP_METHOD_##m)
#define ALL_METHODS ((1u << SIP_METHOD_COUNT) - 1)

_Static_assert(SIP_METHOD_COUNT <= 32, "a method mask fits 32 bits");

struct zero_def {
    enum fam f;
    const char *second;
    uint32_t methods;
};

static const struct zero_def method_zeros[] = {
    {F_REQUESTS, NULL, ALL_METHODS},
    /* An ACK retransmits (the same ACK for each copy of the 2xx) but is never answered
     * (RFC 3261 §17.1.1.1): no response to repeat, no transaction (track.c) to time out or to
     * get a late final. */
    {F_RETRANS, "request", ALL_METHODS},
    {F_RETRANS, "response", ALL_METHODS & ~METHOD_BIT(ACK)},
    {F_TIMEOUTS, NULL, ALL_METHODS & ~METHOD_BIT(ACK)},
    {F_LATE_FINALS, NULL, ALL_METHODS & ~METHOD_BIT(ACK)},
    /* A response with CSeq method ACK answers nothing: it is counted as an orphan. */
    {F_ORPHAN_RESP, NULL, ALL_METHODS},
    /* A REGISTER is never in a dialog; SUBSCRIBE and NOTIFY outside a call belong to
     * subscription dialogs, which are not tracked (METRICS.md): none is an orphan. */
    {F_ORPHAN_REQ, NULL,
     ALL_METHODS & ~(METHOD_BIT(REGISTER) | METHOD_BIT(SUBSCRIBE) | METHOD_BIT(NOTIFY))},
    {F_REINVITES, NULL, METHOD_BIT(INVITE) | METHOD_BIT(UPDATE)},
};

static struct metric_series *series_lookup(struct builtin *b, enum fam f, uint32_t l0, uint32_t l1,
                                           const uint16_t *labels)
{
    uint32_t key[METRICS_MAX_LABELS];
    size_t n = 0;

    if (defs[f].labels[0])
        key[n++] = l0;
    if (defs[f].labels[1])
        key[n++] = l1;
    for (size_t i = 0; i < b->n_ops; i++)
        key[n++] = oplabel_symbol(b->ops, i, labels ? labels[i] : 0);
    return metrics_series(b->fam[f], key);
}

/* Creates the series of method_zeros, sip_session_challenges_total{code=401|407} and
 * sip_dialogs_ended_total{reason} for every end reason, at 0. Once, at start: nothing per
 * event. */
static void export_zeros(struct builtin *b)
{
    for (size_t i = 0; i < sizeof(method_zeros) / sizeof(method_zeros[0]); i++) {
        const struct zero_def *z = &method_zeros[i];
        uint32_t second = z->second ? intern(b->reg, z->second) : 0;
        for (int m = 0; m < SIP_METHOD_COUNT; m++)
            if (z->methods & (1u << m))
                series_lookup(b, z->f, b->method_sym[m], second, NULL);
    }
    series_lookup(b, F_CHALLENGES, b->code_sym[401 - CODE_MIN], 0, NULL);
    series_lookup(b, F_CHALLENGES, b->code_sym[407 - CODE_MIN], 0, NULL);
    for (int r = SIP_END_NONE + 1; r < SIP_END_COUNT; r++)
        series_lookup(b, F_ENDED, b->end_sym[r], 0, NULL);
}

struct builtin *builtin_new(struct metrics *reg, const struct oplabel_set *ops)
{
    struct builtin *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    b->reg = reg;
    b->ops = ops;
    b->n_ops = ops ? oplabel_count(ops) : 0;
    uint16_t mask[TRACK_MAX_LABELS] = {0};
    for (size_t i = 0; i < b->n_ops; i++)
        mask[i] = 0xffff;
    memcpy(b->ops_mask, mask, sizeof(mask)); /* laid out as series() reads the labels */
    for (int m = 0; m < SIP_METHOD_COUNT; m++)
        b->method_sym[m] = intern(reg, sip_method_name((enum sip_method)m));
    for (int c = 0; c < CODE_COUNT; c++) {
        char text[4] = {(char)('0' + (c + CODE_MIN) / 100), (char)('0' + (c + CODE_MIN) / 10 % 10),
                        (char)('0' + (c + CODE_MIN) % 10), 0};
        b->code_sym[c] = intern(reg, text);
        b->by_sym[c] = (struct code_sym){b->code_sym[c], (uint16_t)(c + CODE_MIN)};
    }
    qsort(b->by_sym, CODE_COUNT, sizeof(b->by_sym[0]), cmp_code_sym);
    b->timeout_sym = intern(reg, "timeout");
    b->request_sym = intern(reg, "request");
    b->response_sym = intern(reg, "response");
    b->success_sym = intern(reg, "success");
    b->failure_sym = intern(reg, "failure");
    b->overflow_sym = intern(reg, METRICS_OVERFLOW_VALUE);
    for (int s = 0; s < SIP_DIALOG_ENDED; s++)
        b->state_sym[s] = intern(reg, sip_dialog_state_name((enum sip_dialog_state)s));
    for (int r = 0; r < SIP_END_COUNT; r++)
        b->end_sym[r] = intern(reg, sip_dialog_end_name((enum sip_dialog_end)r));

    for (int f = 0; f < F_COUNT; f++) {
        const char *names[METRICS_MAX_LABELS];
        size_t n = 0;
        for (int i = 0; i < 2 && defs[f].labels[i]; i++)
            names[n++] = defs[f].labels[i];
        for (size_t i = 0; defs[f].op && i < b->n_ops; i++)
            names[n++] = oplabel_name(ops, i);
        b->fam[f] = metrics_family(reg, defs[f].name, defs[f].help, defs[f].type, names, n,
                                   defs[f].buckets, defs[f].n_buckets,
                                   (fam_flags[f] & METRIC_HIDDEN) ? LOST_SERIES_CAP
                                                                  : BUILTIN_SERIES_CAP,
                                   fam_flags[f]);
        if (!b->fam[f]) {
            free(b);
            return NULL;
        }
        /* METRICS.md: families without labels other than OP are exported from the start. */
        if (defs[f].op && !defs[f].labels[0] && b->n_ops) {
            uint32_t key[METRICS_MAX_LABELS];
            for (size_t i = 0; i < b->n_ops; i++)
                key[i] = oplabel_symbol(ops, i, 0);
            metrics_series(b->fam[f], key);
        }
    }
    export_zeros(b);
    for (int r = 0; r < R_COUNT; r++) {
        const char *names[METRICS_MAX_LABELS];
        for (size_t i = 0; i < b->n_ops; i++)
            names[i] = oplabel_name(ops, i);
        b->collectors[r] = (struct ratio_collector){b, (enum ratio)r};
        if (metrics_collector(reg, ratio_defs[r].name, ratio_defs[r].help, METRIC_GAUGE, names,
                              b->n_ops, 0, collect_ratios, &b->collectors[r]) != 0) {
            free(b);
            return NULL;
        }
    }
    return b;
}

void builtin_free(struct builtin *b)
{
    free(b);
}

uint64_t builtin_negative_delays(const struct builtin *b)
{
    return b->negative;
}

/* A miss in the series cache: the registry's lookup, remembered unless it is the overflow
 * series. Out of line so that series() inlines into its callers. */
__attribute__((noinline)) static struct metric_series *
series_miss(struct builtin *b, struct series_cache_slot *c, uint64_t key, const uint64_t ops[2],
            enum fam f, uint32_t l0, uint32_t l1, const uint16_t *labels)
{
    struct metric_series *s = series_lookup(b, f, l0, l1, labels);
    if (!metrics_series_is_overflow(s))
        *c = (struct series_cache_slot){key, {ops[0], ops[1]}, s};
    return s;
}

/* The series of family f for these label symbols and the event's operator label ids. Inlined:
 * f is a constant at every call, so the family's label layout folds away and a hit in the cache
 * costs a multiply and a compare. */
static inline __attribute__((always_inline)) struct metric_series *
series(struct builtin *b, enum fam f, uint32_t l0, uint32_t l1, const uint16_t *labels)
{
    if (!defs[f].labels[0])
        l0 = 0;
    if (!defs[f].labels[1])
        l1 = 0;
    if (__builtin_expect((l0 | l1) >> SERIES_CACHE_SYM_BITS, 0))
        return series_lookup(b, f, l0, l1, labels);
    uint64_t key = (uint64_t)f << (2 * SERIES_CACHE_SYM_BITS) |
                   (uint64_t)l0 << SERIES_CACHE_SYM_BITS | l1;
    uint64_t ops[2] = {0, 0}, h = key;
    if (b->n_ops && labels) {
        memcpy(ops, labels, sizeof(ops));
        ops[0] &= b->ops_mask[0];
        ops[1] &= b->ops_mask[1];
        h ^= ops[0] * 0xff51afd7ed558ccdULL ^ ops[1] * 0xc4ceb9fe1a85ec53ULL;
    }
    h *= 0x9e3779b97f4a7c15ULL;
    struct series_cache_slot *c = &b->cache[h >> (64 - SERIES_CACHE_BITS)];
    if (__builtin_expect(c->s && c->key == key && c->ops[0] == ops[0] && c->ops[1] == ops[1], 1))
        return c->s;
    return series_miss(b, c, key, ops, f, l0, l1, labels);
}

static uint32_t code_symbol(const struct builtin *b, uint16_t code)
{
    return code ? b->code_sym[code - CODE_MIN] : b->timeout_sym;
}

static void count(struct builtin *b, enum fam f, uint32_t l0, uint32_t l1, const uint16_t *labels)
{
    metric_counter_add(series(b, f, l0, l1, labels), 1);
}

/* An input of the ratio gauges: when its family is full, the ratios of these operator label
 * values are no longer known (F_LOST_*). Label values whose attempts are in the overflow
 * series are left out of the ratios anyway (row_known): no loss is counted for them. */
static void count_ratio_input(struct builtin *b, enum fam f, uint32_t l0, const uint16_t *labels,
                              enum fam attempts, enum fam lost)
{
    struct metric_series *s = series(b, f, l0, 0, labels);
    metric_counter_add(s, 1);
    if (__builtin_expect(metrics_series_is_overflow(s), 0) &&
        !metrics_series_is_overflow(series(b, attempts, 0, 0, labels)))
        count(b, lost, 0, 0, labels);
}

static void observe(struct builtin *b, enum fam f, uint32_t l0, const struct track_event *ev)
{
    metric_histogram_observe(series(b, f, l0, 0, ev->labels), ev->delay);
}

static void on_message(struct builtin *b, const struct track_event *ev)
{
    uint32_t method = b->method_sym[ev->method];

    if (ev->code == 0) {
        count(b, F_REQUESTS, method, 0, ev->labels);
        if (ev->flags & TRACK_F_RETRANSMISSION)
            count(b, F_RETRANS, method, b->request_sym, ev->labels);
        if (ev->flags & TRACK_F_ORPHAN)
            count(b, F_ORPHAN_REQ, method, 0, ev->labels);
        return;
    }
    count(b, F_RESPONSES, method, code_symbol(b, ev->code), ev->labels);
    if (ev->flags & TRACK_F_RETRANSMISSION)
        count(b, F_RETRANS, method, b->response_sym, ev->labels);
    if (ev->flags & TRACK_F_ORPHAN)
        count(b, F_ORPHAN_RESP, method, 0, ev->labels);
    if (ev->flags & TRACK_F_LATE_FINAL)
        count(b, F_LATE_FINALS, method, 0, ev->labels);
}

static void on_state(struct builtin *b, const struct track_event *ev)
{
    if (ev->old_state < SIP_DIALOG_ENDED)
        metric_gauge_add(series(b, F_ACTIVE, b->state_sym[ev->old_state], 0, ev->labels), -1);
    if (ev->new_state < SIP_DIALOG_ENDED)
        metric_gauge_add(series(b, F_ACTIVE, b->state_sym[ev->new_state], 0, ev->labels), 1);
}

void builtin_on_event(struct builtin *b, const struct track_event *ev)
{
    uint32_t outcome = ev->outcome == TRACK_SUCCESS ? b->success_sym : b->failure_sym;

    if (ev->flags & TRACK_F_NEGATIVE_DELAY) {
        b->negative++;
        count(b, F_NEGATIVE, 0, 0, NULL);
    }
    switch ((enum track_event_type)ev->type) {
    case TRACK_MESSAGE:
        on_message(b, ev);
        break;
    case TRACK_TXN_END:
        if (ev->code == 0)
            count(b, F_TIMEOUTS, b->method_sym[ev->method], 0, ev->labels);
        else
            observe(b, F_TXN_RESPONSE, b->method_sym[ev->method], ev);
        break;
    case TRACK_CALL_START:
        count(b, F_ATTEMPTS, 0, 0, ev->labels);
        break;
    case TRACK_CALL_STATE:
        on_state(b, ev);
        break;
    case TRACK_CALL_CHALLENGE:
        count(b, F_CHALLENGES, code_symbol(b, ev->code), 0, ev->labels);
        break;
    case TRACK_CALL_RINGING:
        observe(b, F_PDD, 0, ev);
        break;
    case TRACK_CALL_SRD:
        observe(b, F_SRD, outcome, ev);
        break;
    case TRACK_CALL_ANSWER:
        observe(b, F_SETUP, 0, ev);
        break;
    case TRACK_CALL_OUTCOME:
        count_ratio_input(b, F_OUTCOMES, code_symbol(b, ev->code), ev->labels, F_ATTEMPTS,
                          F_LOST_SESSION);
        break;
    case TRACK_CALL_END:
        count(b, F_ENDED, b->end_sym[ev->reason], 0, ev->labels);
        if (ev->flags & TRACK_F_COMPLETED)
            count_ratio_input(b, F_COMPLETED, 0, ev->labels, F_ATTEMPTS, F_LOST_SESSION);
        if (ev->flags & TRACK_F_HAS_DURATION)
            observe(b, F_DURATION, 0, ev);
        break;
    case TRACK_CALL_DISCONNECT:
        observe(b, F_SDD, outcome, ev);
        break;
    case TRACK_CALL_REFRESH:
        count(b, F_REINVITES, b->method_sym[ev->method], 0, ev->labels);
        break;
    case TRACK_REG_ATTEMPT:
        count(b, F_REG_ATTEMPTS, 0, 0, ev->labels);
        break;
    case TRACK_REG_OUTCOME:
        count_ratio_input(b, F_REG_OUTCOMES, code_symbol(b, ev->code), ev->labels,
                          F_REG_ATTEMPTS, F_LOST_REGISTRATION);
        if (ev->code >= 200 && ev->code < 300)
            observe(b, F_RRD, 0, ev);
        break;
    case TRACK_REG_BINDING:
        if (ev->reason == SIP_BINDING_ADDED)
            metric_gauge_add(series(b, F_REG_ACTIVE, 0, 0, ev->labels), 1);
        else if (ev->reason != SIP_BINDING_REFRESHED)
            metric_gauge_add(series(b, F_REG_ACTIVE, 0, 0, ev->labels), -1);
        break;
    case TRACK_EVENT_COUNT:
        break;
    }
}

/* --- ratio gauges --------------------------------------------------------------------------
 * One row per operator-label combination seen in the attempts family: the counters a ratio
 * needs are summed into it from the outcome families, then the ratio is emitted when its
 * denominator is not zero (METRICS.md: no fake 0). */

struct ratio_row {
    uint32_t ops[TRACK_MAX_LABELS];
    double attempts, completed;
    double o200, o2xx, o3xx, seer, isa;
    double reg_attempts, ira;
    int lost; /* some of its inputs went to an overflow series: its ratio is unknown */
};

struct ratio_scan {
    struct builtin *b;
    struct ratio_row *rows;
    size_t n, cap;
    int failed;
    int all_lost; /* the F_LOST_* family itself overflowed (never, by its cap): no row known */
};

static int cmp_ops(const void *a, const void *b, void *n_ops)
{
    const uint32_t *x = a, *y = b;
    for (size_t i = 0; i < *(size_t *)n_ops; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return 0;
}

/* Primary scans (attempts) add one row per series: each series has distinct labels. */
static struct ratio_row *row_add(struct ratio_scan *sc, const uint32_t *ops)
{
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? 2 * sc->cap : 16;
        struct ratio_row *rows = realloc(sc->rows, cap * sizeof(*rows));
        if (!rows) {
            sc->failed = 1;
            return NULL;
        }
        sc->rows = rows;
        sc->cap = cap;
    }
    memset(&sc->rows[sc->n], 0, sizeof(sc->rows[0]));
    memcpy(sc->rows[sc->n].ops, ops, sc->b->n_ops * sizeof(uint32_t));
    return &sc->rows[sc->n++];
}

/* Secondary scans find their row among the sorted rows (ops is the row's first member). */
static struct ratio_row *row_for(struct ratio_scan *sc, const uint32_t *ops)
{
    size_t lo = 0, hi = sc->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp_ops(ops, sc->rows[mid].ops, &sc->b->n_ops);
        if (c == 0)
            return &sc->rows[mid];
        if (c > 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static void rows_sort(struct ratio_scan *sc)
{
    qsort_r(sc->rows, sc->n, sizeof(sc->rows[0]), cmp_ops, &sc->b->n_ops);
}

static int code_of_symbol(const struct builtin *b, uint32_t sym)
{
    size_t lo = 0, hi = CODE_COUNT;
    if (sym == b->timeout_sym)
        return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (b->by_sym[mid].sym == sym)
            return b->by_sym[mid].code;
        if (b->by_sym[mid].sym < sym)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1; /* the overflow series */
}

static void scan_attempts(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_row *r = row_add(ctx, sym);
    if (r)
        r->attempts += metric_value(s);
}

static void scan_completed(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_row *r = row_for(ctx, sym);
    if (r)
        r->completed += metric_value(s);
}

static void scan_outcomes(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_scan *sc = ctx;
    struct ratio_row *r = row_for(sc, sym + 1);
    int code = code_of_symbol(sc->b, sym[0]);
    double v = metric_value(s);

    if (!r || code < 0)
        return;
    if (code == 200)
        r->o200 += v;
    if (code >= 200 && code < 300)
        r->o2xx += v;
    if (code >= 300 && code < 400)
        r->o3xx += v;
    if (code == 200 || code == 480 || code == 486 || code == 600 || code == 603)
        r->seer += v;
    if (code == 0 || code == 408 || code == 500 || code == 503 || code == 504)
        r->isa += v;
}

static void scan_reg_attempts(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_row *r = row_add(ctx, sym);
    if (r)
        r->reg_attempts += metric_value(s);
}

static void scan_reg_outcomes(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_scan *sc = ctx;
    struct ratio_row *r = row_for(sc, sym + 1);
    int code = code_of_symbol(sc->b, sym[0]);

    if (!r || code < 0)
        return;
    /* RFC 6076 §4.2: 4xx other than the authentication challenges, 5xx, 6xx and timeouts. */
    if (code == 0 || (code >= 400 && code != 401 && code != 402 && code != 407))
        r->ira += metric_value(s);
}

static void scan_lost(void *ctx, const struct metric_series *s, const uint32_t *sym)
{
    struct ratio_scan *sc = ctx;
    struct ratio_row *r;

    if (sc->b->n_ops && sym[0] == sc->b->overflow_sym) {
        sc->all_lost = 1;
        return;
    }
    if (metric_value(s) == 0)
        return;
    r = row_for(sc, sym);
    if (r)
        r->lost = 1;
}

/* A row is known when none of its inputs was lost to an overflow series. The overflow row of
 * the attempts (every operator label "_overflow_") never is: its calls' outcomes are counted
 * under their own label values. */
static bool row_known(const struct ratio_scan *sc, const struct ratio_row *r)
{
    if (r->lost || sc->all_lost)
        return false;
    for (size_t i = 0; i < sc->b->n_ops; i++)
        if (r->ops[i] == sc->b->overflow_sym)
            return false;
    return true;
}

static void emit_row(const struct builtin *b, const struct ratio_row *r, double value,
                     metrics_emit_fn emit, void *emit_ctx)
{
    /* Symbols are bytes with a length; the collector API takes C strings. */
    static __thread char text[TRACK_MAX_LABELS][METRICS_MAX_SYMBOL_LEN + 1];
    const char *values[METRICS_MAX_LABELS];
    size_t len;

    for (size_t i = 0; i < b->n_ops; i++) {
        const char *p = metrics_symbol(b->reg, r->ops[i], &len);
        memcpy(text[i], p, len);
        text[i][len] = '\0';
        values[i] = text[i];
    }
    emit(emit_ctx, values, value);
}

static void collect_ratios(void *ctx, struct metrics *reg, metrics_emit_fn emit, void *emit_ctx)
{
    struct ratio_collector *rc = ctx;
    struct builtin *b = rc->b;
    struct ratio_scan sc = {.b = b};
    (void)reg;

    if (rc->which == R_IRA) {
        metrics_series_each(b->fam[F_REG_ATTEMPTS], scan_reg_attempts, &sc);
        rows_sort(&sc);
        metrics_series_each(b->fam[F_REG_OUTCOMES], scan_reg_outcomes, &sc);
        metrics_series_each(b->fam[F_LOST_REGISTRATION], scan_lost, &sc);
    } else {
        metrics_series_each(b->fam[F_ATTEMPTS], scan_attempts, &sc);
        rows_sort(&sc);
        metrics_series_each(b->fam[F_OUTCOMES], scan_outcomes, &sc);
        if (rc->which == R_SCR)
            metrics_series_each(b->fam[F_COMPLETED], scan_completed, &sc);
        metrics_series_each(b->fam[F_LOST_SESSION], scan_lost, &sc);
    }
    for (size_t i = 0; i < sc.n && !sc.failed; i++) {
        const struct ratio_row *r = &sc.rows[i];
        double established = r->attempts - r->o3xx;
        if (!row_known(&sc, r))
            continue;
        switch (rc->which) {
        case R_SER:
            if (established > 0)
                emit_row(b, r, r->o200 / established, emit, emit_ctx);
            break;
        case R_SEER:
            if (established > 0)
                emit_row(b, r, r->seer / established, emit, emit_ctx);
            break;
        case R_ISA:
            if (r->attempts > 0)
                emit_row(b, r, r->isa / r->attempts, emit, emit_ctx);
            break;
        case R_SCR:
            if (r->attempts > 0)
                emit_row(b, r, r->completed / r->attempts, emit, emit_ctx);
            break;
        case R_ASR:
            if (r->attempts > 0)
                emit_row(b, r, r->o2xx / r->attempts, emit, emit_ctx);
            break;
        case R_NER:
            if (r->attempts > 0)
                emit_row(b, r, 1.0 - r->isa / r->attempts, emit, emit_ctx);
            break;
        case R_IRA:
            if (r->reg_attempts > 0)
                emit_row(b, r, r->ira / r->reg_attempts, emit, emit_ctx);
            break;
        case R_COUNT:
            break;
        }
    }
    free(sc.rows);
}
