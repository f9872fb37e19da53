/* sip_txn: the transaction table (RFC 3261 §17). A transaction is identified by the top Via
 * branch with the magic cookie, sent-by and CSeq method (§17.2.3), or for peers without the
 * cookie by Call-ID, From-tag, CSeq and sent-by (RFC 2543 matching). It records what is needed to
 * tell first copies from retransmissions and first finals from late ones; the protocol decisions
 * built on that are made by track, sip_dialog and sip_reg. */
#ifndef SIPSCOPE_SIP_TXN_H
#define SIPSCOPE_SIP_TXN_H

#include <stdbool.h>
#include <stdint.h>

#include "sip_parse.h"
#include "table.h"
#include "track_event.h"

#define SIP_TXN_MAX_RESPONSES 6 /* distinct (code, To-tag, RSeq) remembered per transaction */

enum sip_txn_state {
    SIP_TXN_CALLING = 0, /* request seen, no response yet */
    SIP_TXN_PROCEEDING,  /* a provisional response seen */
    SIP_TXN_COMPLETED,   /* a final response seen; kept to recognise copies */
    SIP_TXN_TIMED_OUT,   /* no final in time; kept to recognise copies */
};

/* Age lists, in eviction order: completed transactions go first, then those without any
 * response yet (any method), INVITEs with a provisional (ringing calls) last. A scanner's
 * flood of requests nobody answers keeps each of its transactions live for Timer F or B
 * (32 s) and must not push out the calls that ring (their final decides the outcome); nor,
 * as INVITEs, the REGISTERs and BYEs waiting for their answer. */
enum sip_txn_class {
    SIP_TXN_CLASS_DONE = 0,
    SIP_TXN_CLASS_LIVE = 1,
    SIP_TXN_CLASS_PROCEEDING_INVITE = 2,
};

enum sip_txn_owner {
    SIP_TXN_OWNER_NONE = 0,
    SIP_TXN_OWNER_CALL,     /* an INVITE, CANCEL, BYE or other request of a call */
    SIP_TXN_OWNER_REGISTER, /* a REGISTER attempt */
};

enum sip_txn_flag {
    SIP_TXN_F_ACKED = 1u << 0,      /* INVITE: an ACK was seen (a later one is a copy) */
    SIP_TXN_F_ORPHAN = 1u << 1,     /* an in-dialog request for a dialog never seen */
    SIP_TXN_F_REFRESH = 1u << 2,    /* a re-INVITE or UPDATE of a call */
    SIP_TXN_F_PRIMARY = 1u << 3,    /* decides: a call's own INVITE, an attempt's own REGISTER */
    SIP_TXN_F_ENDING_BYE = 1u << 4, /* the BYE that ended its call (RFC 6076 SDD) */
    SIP_TXN_F_CANCEL_OK = 1u << 5,  /* INVITE: its CANCEL got a 2xx; Timer C restarts no more,
                                     * and its timeout is a cancellation, not a failure (§9.1) */
};

struct sip_txn_key {
    uint64_t hash;  /* table index */
    uint64_t check; /* independent hash of the same key: 128 bits tell transactions apart */
};

struct sip_txn {
    struct table_node node; /* hash and check: the two halves of the key (sip_txn_key) */
    uint64_t t_first; /* first copy of the request */
    uint64_t t_prov;  /* latest provisional (Timer C runs from it) */
    uint32_t owner;   /* table index of the call or REGISTER attempt, when owner_kind is set */
    uint16_t owner_gen;
    uint16_t final_code; /* first final, 0 before */
    uint16_t labels[TRACK_MAX_LABELS];
    uint32_t responses[SIP_TXN_MAX_RESPONSES]; /* fingerprints of responses seen */
    uint8_t method;     /* enum sip_method of the request (INVITE for its ACK) */
    uint8_t state;      /* enum sip_txn_state */
    uint8_t n_responses;
    uint8_t flags;      /* enum sip_txn_flag */
    uint8_t owner_kind; /* enum sip_txn_owner */
    uint8_t final_slots; /* bit i: responses[i] is a final's */
    /* The request's CSeq number, low 16 bits: tells a call's INVITEs apart (one that a newer
     * INVITE replaced, after a challenge or not, whose failure or timeout then decides nothing).
     * In padding: no room. */
    uint16_t cseq_low;
};

struct sip_txn_table {
    struct table t;
    uint64_t evictions;
};

/* Allocates room for cap transactions. Returns 0 or -ENOMEM / -EINVAL. */
int sip_txn_init(struct sip_txn_table *tbl, uint32_t cap);
void sip_txn_fini(struct sip_txn_table *tbl);

/* Computes the key of msg's transaction as if its method were `method` (pass SIP_METHOD_INVITE
 * to find the INVITE an ACK or a CANCEL refers to; for a response pass its CSeq method). */
void sip_txn_key(const struct sip_msg *msg, enum sip_method method, struct sip_txn_key *key);

/* An INVITE transaction got its first provisional: it goes to the list evicted last. */
void sip_txn_proceeding(struct sip_txn_table *tbl, struct sip_txn *txn);

/* The live or remembered transaction with this key and method, or NULL. */
struct sip_txn *sip_txn_find(struct sip_txn_table *tbl, const struct sip_txn_key *key);

/* Creates a transaction for a request first seen at now (state SIP_TXN_CALLING, no deadline).
 * When the table is full the oldest completed transaction, else the oldest without a response,
 * else the oldest ringing INVITE, is evicted and counted in tbl->evictions. Returns the transaction (never NULL: cap >= 1). */
struct sip_txn *sip_txn_create(struct sip_txn_table *tbl, const struct sip_txn_key *key,
                               enum sip_method method, uint64_t now);

/* Records a response (status code, To-tag, RSeq) on txn. Returns true when the same response
 * was seen before: a retransmission (RFC 3261 §17.1.1.2). Past SIP_TXN_MAX_RESPONSES distinct
 * responses (forks, reliable provisionals), a new one takes the place of the newest provisional,
 * so that the finals, whose retransmissions matter (a 2xx sent again for each fork until its ACK
 * comes), stay known; a provisional finds no place among finals only. */
bool sip_txn_response_seen(struct sip_txn *txn, const struct sip_msg *msg);

/* Marks txn finished (completed or timed out) and moves it to the eviction-first age list. */
void sip_txn_finish(struct sip_txn_table *tbl, struct sip_txn *txn, enum sip_txn_state state);

/* The transaction whose deadline is due at now, or NULL. */
struct sip_txn *sip_txn_due(struct sip_txn_table *tbl, uint64_t now);

/* The timers a transaction runs, each a fixed time from the packet that starts it: each has a
 * lane in the table (table_set_deadline_lane), so that setting one is O(1). */
enum sip_txn_timer {
    SIP_TXN_TIMER_REQUEST = 0, /* Timer B or F from the request */
    SIP_TXN_TIMER_C,           /* Timer C from the latest provisional */
    SIP_TXN_TIMER_LINGER,      /* 64*T1 from the final or the timeout: then it is forgotten */
    SIP_TXN_TIMER_CANCEL,      /* INVITE: 64*T1 from its CANCEL's 2xx (RFC 3261 §9.1) */
};

/* Sets txn's deadline, for timer `timer`. */
void sip_txn_set_deadline(struct sip_txn_table *tbl, struct sip_txn *txn, uint64_t deadline,
                          enum sip_txn_timer timer);
void sip_txn_remove(struct sip_txn_table *tbl, struct sip_txn *txn);

static inline uint32_t sip_txn_count(const struct sip_txn_table *tbl)
{
    return tbl->t.used;
}

#endif
