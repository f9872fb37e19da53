/* sip_dialog: calls, i.e. RFC 6076 session attempts, and the dialogs inside them (RFC 3261 §12).
 * A call starts with an out-of-dialog INVITE and is keyed by (Call-ID, From-tag); the dialogs a
 * forking INVITE creates (one per To-tag) live inside it, and in-dialog requests find it from
 * either side. It decides the call's state, outcome and single end reason under the rules of
 * METRICS.md "Semantics", and reports them as track events. Transactions are matched by track;
 * this module is told what happened to the ones that belong to a call. */
#ifndef SIPSCOPE_SIP_DIALOG_H
#define SIPSCOPE_SIP_DIALOG_H

#include <stdbool.h>
#include <stdint.h>

#include "call_cdr.h"
#include "sip_parse.h"
#include "sip_txn.h"
#include "table.h"
#include "track_event.h"

enum sip_dialog_state {
    SIP_DIALOG_TRYING = 0, /* INVITE sent, no dialog yet */
    SIP_DIALOG_EARLY,      /* a 1xx with a To-tag */
    SIP_DIALOG_CONFIRMED,  /* a 2xx */
    SIP_DIALOG_ENDED,      /* ended; kept a while so late messages still match */
    SIP_DIALOG_STATE_COUNT
};

enum sip_dialog_end {
    SIP_END_NONE = 0,
    SIP_END_BYE,
    SIP_END_CANCEL,
    SIP_END_REJECTED,
    SIP_END_REDIRECTED,
    SIP_END_TIMEOUT,
    SIP_END_EXPIRED,
    SIP_END_MAX_AGE,
    SIP_END_EVICTED,
    SIP_END_COUNT
};

/* Age lists, evicted in this order when the table is full: a scanner's flood of INVITEs that
 * nobody answers pushes out its own calls, not the ones that ring (a 1xx with a To-tag), nor
 * those that a BYE ended and that wait for its final (their disconnect delay). */
enum sip_dialog_class {
    SIP_DIALOG_CLASS_ENDED = 0,
    SIP_DIALOG_CLASS_UNANSWERED = 1,
    SIP_DIALOG_CLASS_BYE_PENDING = 2,
    SIP_DIALOG_CLASS_EARLY = 3,
    SIP_DIALOG_CLASS_CONFIRMED = 4,
};

enum sip_dialog_flag {
    SIP_DIALOG_F_OUTCOME = 1u << 0,    /* the outcome is decided (final_code, 0 = timeout) */
    SIP_DIALOG_F_CHALLENGED = 1u << 1, /* a 401/407 waits for its retry */
    SIP_DIALOG_F_CANCELLED = 1u << 2,  /* a CANCEL was seen */
    SIP_DIALOG_F_SRD = 1u << 3,        /* session request delay observed */
    SIP_DIALOG_F_RINGING = 1u << 4,    /* post-dial delay observed */
    SIP_DIALOG_F_CANCEL_OK = 1u << 5,  /* a CANCEL of its INVITE was answered with a 2xx */
    SIP_DIALOG_F_TRUNCATED = 1u << 6,  /* a text field did not fit and was cut */
    SIP_DIALOG_F_BYE_CALLEE = 1u << 7, /* the BYE that ended the call came from the callee */
};

/* Room for the identifiers kept as text (CDRs and rule handles): Call-ID up to 128 bytes, the
 * From and To URIs up to 60 each. The key itself is hashed, so cutting text never merges calls. */
#define SIP_DIALOG_CALL_ID_MAX 128
#define SIP_DIALOG_URI_MAX 60
#define SIP_DIALOG_MAX_TO_TAGS 4

/* One call. Times are packet times in ns since the epoch; 0 when the event has not happened. */
struct sip_dialog {
    struct table_node node; /* hash and check: two hashes of (Call-ID, From-tag) */
    uint64_t t_start;     /* first INVITE */
    uint64_t t_answer;    /* first 2xx */
    uint64_t t_ringing;   /* first 180 or 183 of the INVITE (rules: d.ringing_time), 0 before */
    uint64_t t_end;       /* end; expired: the last refresh's 2xx + Session-Expires (not + grace) */
    uint64_t t_refresh;   /* last 2xx to INVITE or UPDATE: session timer base (RFC 4028) */
    uint32_t session_expires; /* seconds from the last 2xx, 0 without a session timer */
    /* CSeq of the latest out-of-dialog INVITE of the call, its low 16 bits as a transaction's
     * cseq_low: the INVITEs of one call are a few CSeqs apart, never 65,536. */
    uint16_t invite_cseq;
    /* 16-bit fingerprints, 0 for none. Of the last two ACKs to a 2xx, of (top Via branch, or
     * sent-by without one, CSeq, To-tag): an ACK equal to either is a retransmission (two, so
     * that on a capture of both hops of a proxy the first hop's ACK sent again is known after
     * the second hop's copy). Of the last re-INVITE or UPDATE counted, of (CSeq, From-tag), so
     * that its copy seen on another hop, a transaction of its own, is told from the next one (a
     * new CSeq). 1 in 65,535 of the next ones is mistaken for a copy; wider, the entry grows by
     * 8 bytes. */
    uint16_t ack_seen[2];
    uint16_t refresh_seen;
    uint32_t to_tags[SIP_DIALOG_MAX_TO_TAGS]; /* hashes of the dialogs' To-tags (forks) */
    uint16_t labels[TRACK_MAX_LABELS];
    uint16_t final_code;     /* the outcome; valid with SIP_DIALOG_F_OUTCOME; 0 = timeout */
    uint16_t challenge_code; /* 401 or 407 while SIP_DIALOG_F_CHALLENGED */
    uint8_t state;           /* enum sip_dialog_state */
    uint8_t end_reason;      /* enum sip_dialog_end */
    uint8_t flags;           /* enum sip_dialog_flag */
    uint8_t n_to_tags;
    uint8_t confirmed_tags; /* bit i: dialog to_tags[i] was confirmed by a 2xx and not ended */
    uint8_t call_id_len, from_len, to_len;
    /* Every field above is in the first 128 bytes, which the engine's lookahead loads ahead
     * (table_prefetch_entry); what follows is read on challenges and by events and rules. */
    uint64_t t_challenge; /* the 401/407 waiting for a retry */
    /* The rules' per-call data (d.vars, d.cdr): the Lua bridge's slot number, 0 for none. The one
     * field the bridge writes; it checks the number against its own record of the slot. */
    uint32_t rule_slot;
    /* The first failure (3xx to 6xx) seen on a copy of the INVITE on another hop, 0 for none:
     * it decides nothing by itself, but it is the outcome if the call's own INVITE then times
     * out (a capture of a UA's failover, or of the downstream legs only). */
    uint16_t copy_failure;
    /* The call's own INVITE's top Via: 8 bits of a hash of its sent-by, 8 of its transaction's
     * key, which the branch makes (sip_dialog_joinable: after the end, a UA's retry at the next
     * server repeats the sent-by with a new branch; a late copy from another hop, or a
     * retransmission, does not). In the padding: 8 bits each mistake 1 in 256 of those rare
     * cases, a wider field costs 8 bytes a call. */
    uint16_t invite_via;
    /* Call-ID, From URI, To URI. Only events and rules read them: a table made without text
     * (sip_dialog_init) has entries that end before it, and the lengths stay 0. */
    char text[SIP_DIALOG_CALL_ID_MAX + 2 * SIP_DIALOG_URI_MAX];
    /* The events line's signalling fields (call_cdr.h): only in a table made with
     * SIP_DIALOG_KEEP_CDR, whose entries alone reach this far. */
    struct call_cdr cdr;
};

/* What a call's entry keeps beyond what tracking needs. Each level keeps the one before. */
enum sip_dialog_keep {
    SIP_DIALOG_KEEP_NONE = 0, /* no text: metrics alone */
    SIP_DIALOG_KEEP_TEXT,     /* Call-ID and URIs (rules, events) */
    SIP_DIALOG_KEEP_CDR,      /* and the call_cdr record (events with --events-fields) */
};

/* Timing rules the calls follow, in ns. */
struct sip_dialog_timers {
    uint64_t linger;       /* an ended call is kept this long for late messages (64*T1, or
                            * Timer F when longer: its BYE's final or timeout) */
    uint64_t retry_window; /* a 401/407 is folded when the retry comes within this (64*T1) */
    uint64_t expiry_grace; /* added to Session-Expires before a call counts as expired (32 s) */
    uint64_t max_age;      /* --max-call-age */
};

struct sip_dialog_table {
    struct table t;
    struct sip_dialog_timers timers;
    struct track_sink sink;
    uint64_t evictions;
    uint8_t keep; /* enum sip_dialog_keep */
};

/* The bytes of a call's table entry keeping that much (enum sip_dialog_keep). */
size_t sip_dialog_entry_size(enum sip_dialog_keep keep);

/* keep: what calls keep beyond tracking. With text, calls keep their Call-ID and URIs
 * (sip_dialog_call_id...): an entry is 392 bytes instead of 144, and the text fields read empty
 * without. With the CDR record too (struct sip_dialog's cdr), 728. */
int sip_dialog_init(struct sip_dialog_table *tbl, uint32_t cap,
                    const struct sip_dialog_timers *timers, const struct track_sink *sink,
                    enum sip_dialog_keep keep);
void sip_dialog_fini(struct sip_dialog_table *tbl);

/* A call's key: the two halves of a hash of (Call-ID, caller's tag). */
struct sip_dialog_key {
    uint64_t hash, check;
};

void sip_dialog_key(struct slice call_id, struct slice tag, struct sip_dialog_key *key);

/* The keys of both tags of a Call-ID (the Call-ID hashed once); an empty to_tag gives a key
 * too (no call has it). */
void sip_dialog_keys(struct slice call_id, struct slice from_tag, struct slice to_tag,
                     struct sip_dialog_key *from, struct sip_dialog_key *to);

/* The call with this Call-ID whose caller's tag is `tag`, newest first; NULL when none. */
struct sip_dialog *sip_dialog_find(struct sip_dialog_table *tbl, struct slice call_id,
                                   struct slice tag);

/* The same for a key computed already. */
struct sip_dialog *sip_dialog_find_key(struct sip_dialog_table *tbl,
                                       const struct sip_dialog_key *key);

/* The call an in-dialog request (with a To-tag) belongs to, whichever side sent it. */
struct sip_dialog *sip_dialog_find_in_dialog(struct sip_dialog_table *tbl,
                                             const struct sip_msg *msg);

/* An out-of-dialog INVITE for existing call d arrived on a new transaction, txn. Returns true
 * when it belongs to d: another hop's copy (same CSeq; after d ended, not the sender's own retry
 * on a new branch), the retry of a challenged INVITE within the retry window, or a new CSeq
 * while d has no outcome yet. False means it starts a new call. */
bool sip_dialog_joinable(const struct sip_dialog_table *tbl, const struct sip_dialog *d,
                         const struct sip_txn *txn, const struct sip_msg *msg, uint64_t now);

/* Makes txn an INVITE transaction of d (after sip_dialog_joinable said so). An INVITE with a new
 * CSeq (a challenge retry, or the INVITE sent again unchallenged) becomes the call's own: its
 * primary transaction, and invite_cseq; what a CANCEL of the INVITE it replaces marked is
 * cleared. A copy on another hop (the same CSeq) does not. */
void sip_dialog_join(struct sip_dialog_table *tbl, struct sip_dialog *d, struct sip_txn *txn,
                     const struct sip_msg *msg);

/* Starts a call for the out-of-dialog INVITE msg on transaction txn (its primary one), with the
 * operator labels given; key is the call's key (msg's Call-ID and From-tag). Evicts (and ends
 * as evicted) the oldest call when the table is full. Emits TRACK_CALL_START and the state
 * change to trying. Never NULL. */
struct sip_dialog *sip_dialog_start(struct sip_dialog_table *tbl, struct sip_txn *txn,
                                    const struct sip_msg *msg, const struct packet *pkt,
                                    const uint16_t *labels, const struct sip_dialog_key *key,
                                    uint64_t now);

/* A response arrived on txn, an INVITE transaction of call d (not a re-INVITE). first_final is
 * true for the transaction's first final response; retransmissions are not reported. Only the
 * call's own INVITE, its primary transaction (SIP_TXN_F_PRIMARY) with the call's current CSeq
 * (invite_cseq), decides a failure: a failure on a copy of the INVITE on another hop (a
 * proxy's leg that it fails over from, a fork that loses) decides nothing unless the own INVITE
 * then times out, and one of an INVITE a newer CSeq replaced decides nothing at all. A 2xx on
 * any of them answers the call (proxies forward every 2xx, RFC 3261 §16.7). */
void sip_dialog_on_invite_response(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                   const struct sip_txn *txn, const struct sip_msg *msg,
                                   const struct packet *pkt, bool first_final, uint64_t now);

/* A CANCEL (msg) for the call's INVITE (invite_cseq: not one a newer INVITE replaced). */
void sip_dialog_on_cancel(struct sip_dialog_table *tbl, struct sip_dialog *d,
                          const struct sip_msg *msg);

/* A 2xx to such a CANCEL while the INVITE had no final: the UAS now owes the INVITE its 487 (RFC
 * 3261 §9.2), so if the INVITE times out instead, the call's outcome is that 487. */
void sip_dialog_on_cancel_answered(struct sip_dialog *d);

/* A new in-dialog request of call d on transaction txn: BYE ends the call (or, when a forked
 * INVITE confirmed several dialogs, the dialog it names until the last one ends), INVITE and
 * UPDATE are refreshes, ACK copies are recognised (returns true for an ACK already seen). */
bool sip_dialog_on_request(struct sip_dialog_table *tbl, struct sip_dialog *d, struct sip_txn *txn,
                           const struct sip_msg *msg, const struct packet *pkt, uint64_t now);

/* The first final response (code) of an in-dialog transaction txn of call d, or its timeout
 * (code 0, at time now = the deadline). */
void sip_dialog_on_in_dialog_final(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                   struct sip_txn *txn, const struct sip_msg *msg,
                                   const struct packet *pkt, uint16_t code, uint64_t now);

/* The primary INVITE transaction of d timed out at now without a final response (Timer B or C,
 * or 64*T1 after a 2xx to its CANCEL). */
void sip_dialog_on_invite_timeout(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                  uint64_t now);

/* Runs the call timers due at now (challenge without retry, session expiry, maximum age, end of
 * the linger time). Returns true if one ran, false when nothing is due. A call found expired at
 * now ended expiry_grace before (its TRACK_CALL_END time, t_end, duration); it is kept for late
 * messages linger after now all the same. */
bool sip_dialog_run_timer(struct sip_dialog_table *tbl, uint64_t now);

/* Text fields of a call; empty in a table made without text. */
struct slice sip_dialog_call_id(const struct sip_dialog *d);
struct slice sip_dialog_from_uri(const struct sip_dialog *d);
struct slice sip_dialog_to_uri(const struct sip_dialog *d);

/* snake_case names, for labels and rule handles. */
const char *sip_dialog_state_name(enum sip_dialog_state s);
const char *sip_dialog_end_name(enum sip_dialog_end r);

static inline struct sip_dialog *sip_dialog_of_txn(struct sip_dialog_table *tbl,
                                                   const struct sip_txn *txn)
{
    struct sip_dialog *d;
    if (txn->owner_kind != SIP_TXN_OWNER_CALL)
        return NULL;
    d = table_entry(&tbl->t, txn->owner);
    return (d->node.in_use && d->node.gen == txn->owner_gen) ? d : NULL;
}

static inline void sip_dialog_own(struct sip_dialog_table *tbl, struct sip_txn *txn,
                                  const struct sip_dialog *d)
{
    txn->owner_kind = SIP_TXN_OWNER_CALL;
    txn->owner = table_index(&tbl->t, d);
    txn->owner_gen = d->node.gen;
}

#endif
