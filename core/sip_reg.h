/* sip_reg: registrations (RFC 3261 §10). REGISTER attempts, with a 401/407 challenge and its
 * retry folded into one attempt, and the bindings (AoR, Contact) that successful attempts
 * create, refresh and remove, with their expiry. Transactions are matched by track; this
 * module is told what happened to the REGISTER transactions it owns. */
#ifndef SIPSCOPE_SIP_REG_H
#define SIPSCOPE_SIP_REG_H

#include <stdbool.h>
#include <stdint.h>

#include "sip_parse.h"
#include "sip_txn.h"
#include "table.h"
#include "track_event.h"

#define SIP_REG_DEFAULT_EXPIRES 3600 /* RFC 3261 §10.2.1.1, when no expiry is given anywhere */
#define SIP_REG_MAX_ASKED 4 /* contacts with an expiry of their own remembered from one REGISTER */
/* Attempts waiting at once on one (Call-ID, To URI): a fifth pushes out the oldest (counted as
 * an eviction). A UA sends one REGISTER at a time (RFC 3261 §10.2); a proxy's copies join it. */
#define SIP_REG_MAX_PER_KEY 4
#define SIP_BINDING_AOR_MAX 96
#define SIP_BINDING_CONTACT_MAX 96

enum sip_binding_change {
    SIP_BINDING_ADDED = 0,
    SIP_BINDING_REFRESHED,
    SIP_BINDING_REMOVED, /* de-registered (expires 0, or Contact: *) */
    SIP_BINDING_EXPIRED,
    SIP_BINDING_EVICTED,
    SIP_BINDING_CHANGE_COUNT
};

/* A REGISTER attempt waiting for its outcome. */
struct sip_reg_attempt {
    struct table_node node; /* hash and check: two hashes of (Call-ID, To URI) */
    uint64_t t_first;     /* first REGISTER of the attempt */
    uint64_t t_challenge; /* the 401/407 waiting for a retry */
    uint32_t req_expires; /* Expires header of the latest REGISTER; UINT32_MAX when absent */
    /* The request's contacts that carry their own expiry (expires=N) or are removed (expires=0,
     * or "Expires: 0"): binding ids and seconds. A 2xx contact without an expiry of its own
     * and without an Expires header takes the request's (RFC 3261 §10.2.1.1). */
    uint32_t asked[SIP_REG_MAX_ASKED];
    uint32_t asked_expires[SIP_REG_MAX_ASKED];
    uint16_t labels[TRACK_MAX_LABELS];
    uint16_t challenge_code;
    uint8_t challenged;
    uint8_t remove_all;   /* "Contact: *" with "Expires: 0" */
    uint8_t n_asked;
    uint8_t removals_cut; /* more removals than places: the 2xx's list alone says what stays */
    /* The first failure (3xx to 6xx) of a copy of the REGISTER seen on another hop, 0 for
     * none: the outcome only if the attempt's own REGISTER then gets no final. */
    uint16_t copy_failure;
    uint32_t cseq; /* of the attempt's latest REGISTER: a copy on another hop repeats it */
};

/* A live binding of a Contact to an AoR. */
struct sip_binding {
    struct table_node node; /* hash and check: two hashes of (AoR, Contact) */
    uint64_t aor_hash;
    uint64_t t_registered; /* first registration of this binding */
    uint64_t t_refreshed;  /* latest 2xx that listed it */
    uint64_t expires_at;
    uint32_t expires;  /* seconds granted by the latest 2xx */
    uint32_t aor_next; /* next binding in the same AoR bucket, TABLE_NONE at the end */
    uint16_t labels[TRACK_MAX_LABELS];
    uint8_t aor_len, contact_len, truncated;
    char text[SIP_BINDING_AOR_MAX + SIP_BINDING_CONTACT_MAX];
};

struct sip_reg_table {
    struct table attempts;
    struct table bindings;
    /* AoR hash -> first binding index + 1, 0 when empty. Allocated for the table's capacity but
     * used only as far as the bindings need (aor_mask doubles as they grow, up to aor_max_mask):
     * spread over the whole array, a few thousand bindings touched one page each of 16 MiB. */
    uint32_t *aor_buckets;
    uint32_t aor_mask, aor_max_mask;
    uint64_t retry_window; /* ns: a retry after a challenge folds within this (64*T1) */
    uint64_t timer_f;      /* ns: the REGISTER transactions' Timer F (--timer-f) */
    struct track_sink sink;
    uint64_t attempt_evictions, binding_evictions;
};

/* retry_window: a retry after a 401/407 folds into the attempt within this (64*T1); timer_f:
 * the Timer F that track gives REGISTER transactions, which an attempt outlives. Returns 0, or
 * -ENOMEM (-EINVAL for a cap of 0 or above 2^31) with nothing left allocated. */
int sip_reg_init(struct sip_reg_table *reg, uint32_t cap, uint64_t retry_window, uint64_t timer_f,
                 const struct track_sink *sink);
void sip_reg_fini(struct sip_reg_table *reg);

/* A REGISTER on the new transaction txn: folds into the challenged attempt with the same
 * (Call-ID, To URI) within the retry window (txn becomes its own REGISTER), joins the attempt
 * waiting with the same (Call-ID, To URI) and CSeq as a copy seen on another hop, or starts an
 * attempt with labels (label() is called only then; it may be NULL). Emits TRACK_REG_ATTEMPT
 * for a new attempt. */
void sip_reg_on_request(struct sip_reg_table *reg, struct sip_txn *txn, const struct sip_msg *msg,
                        const struct packet *pkt, uint64_t now);

/* The first final response of a REGISTER transaction owned by an attempt, or its timeout
 * (msg NULL, code 0, now = the deadline). On a copy seen on another hop only a 2xx decides the
 * attempt. */
void sip_reg_on_final(struct sip_reg_table *reg, struct sip_txn *txn, const struct sip_msg *msg,
                      const struct packet *pkt, uint16_t code, uint64_t now);

/* Runs one due timer (challenge without retry, binding expiry). Returns false when none is due. */
bool sip_reg_run_timer(struct sip_reg_table *reg, uint64_t now);

/* Earliest pending deadline of the attempts and bindings. */
uint64_t sip_reg_next_deadline(const struct sip_reg_table *reg);

struct slice sip_binding_aor(const struct sip_binding *b);
struct slice sip_binding_contact(const struct sip_binding *b);
const char *sip_binding_change_name(enum sip_binding_change c);

#endif
