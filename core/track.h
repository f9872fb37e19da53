/* track: routes each parsed SIP message through the transaction, call and registration trackers
 * and runs their timers on the engine clock (packet time). It owns the three tables and reports
 * everything as track events to one sink. It does not parse, decode or count metrics. */
#ifndef SIPSCOPE_TRACK_H
#define SIPSCOPE_TRACK_H

#include <stdint.h>

#include "sip_parse.h"
#include "track_event.h"

struct packet;

struct track_config {
    uint64_t t1_ns;           /* RFC 3261 T1 (500 ms); lingering and retry windows are 64*T1 (an
                               * ended call lingers for Timer F when that is longer) */
    uint64_t timer_b_ns;      /* INVITE without any response (default 64*T1) */
    uint64_t timer_c_ns;      /* INVITE without a final after a provisional (180 s) */
    uint64_t timer_f_ns;      /* non-INVITE without a final (default 64*T1) */
    uint64_t max_call_age_ns; /* calls older than this end as max_age (4 h) */
    uint32_t max_calls;
    uint32_t max_transactions;
    uint32_t max_registrations; /* bindings; as many REGISTER attempts in flight */
    uint8_t call_keep;          /* enum sip_dialog_keep: calls keep their Call-ID and URIs (events,
                                 * rules), and the events line's call_cdr record */
};

/* Fills cfg with the defaults of DESIGN.md §7. */
void track_config_defaults(struct track_config *cfg);

struct track_stats {
    uint32_t calls, transactions, registrations, reg_attempts; /* entries in use */
    uint64_t call_evictions, transaction_evictions;
    uint64_t registration_evictions, reg_attempt_evictions; /* bindings; REGISTER attempts */
};

struct track;

/* Creates the trackers with their tables allocated (untouched memory is not resident).
 * The sink is copied. Returns NULL when memory is short or a capacity is 0. */
struct track *track_new(const struct track_config *cfg, const struct track_sink *sink);

/* Frees the trackers without emitting anything: calls still open are not ended. NULL is fine. */
void track_free(struct track *tr);

/* Tracks one message captured at pkt->ts_ns: first advances the clock to that time (running
 * due timers), then matches and records the message and emits its events, TRACK_MESSAGE last.
 * msg and pkt are only read during the call. */
void track_message(struct track *tr, const struct sip_msg *msg, const struct packet *pkt);

/* The keys track_message looks a message's transaction and call up by, computed ahead of it.
 * A caller that parses messages ahead of tracking them (offline input) fills one per message
 * with track_prepare, calls track_prefetch, track_prefetch_more and track_prefetch_neighbours on
 * later messages, and
 * at last track_message_prepared: each step loads what the next one reads, so the lookups find
 * their cache lines loaded. */
struct track_hint {
    uint64_t txn_hash, txn_check;   /* the transaction (an ACK's: its INVITE's) */
    uint64_t from_hash, from_check; /* the call, by (Call-ID, From-tag), when has_from */
    uint64_t to_hash, to_check;     /* the call, by (Call-ID, To-tag), when has_to */
    uint8_t has_from, has_to;
    /* Set by track_prefetch_more: the transaction and the call found at the head of their
     * chains, TABLE_NONE (UINT32_MAX) when not found there. Only prefetches read them. */
    uint32_t txn_idx, call_idx;
};

/* Computes msg's keys into *hint and starts loading the hash buckets they fall in. Changes no
 * state; *hint belongs to msg until it is tracked. */
void track_prepare(struct track *tr, const struct sip_msg *msg, struct track_hint *hint);

/* Starts loading the entries at the head of those buckets (which track_prepare loaded). */
void track_prefetch(const struct track *tr, const struct track_hint *hint);

/* Starts loading the rest of those chains, the call the message belongs to and the records
 * (timer, age-list place) of the transaction and call found (all found from what track_prefetch
 * loaded); notes what it found in *hint. */
void track_prefetch_more(const struct track *tr, struct track_hint *hint);

/* Starts loading the records of the neighbours of what track_prefetch_more found (read from
 * the records it loaded): moving an entry in its lists writes them. */
void track_prefetch_neighbours(const struct track *tr, const struct track_hint *hint);

/* The call track_prefetch_more found for the message (its entry loading since), or NULL. */
const struct sip_dialog *track_hint_call(const struct track *tr, const struct track_hint *hint);

/* track_message with msg's keys from track_prepare: the same matching, records and events. */
void track_message_prepared(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                            const struct track_hint *hint);

/* Advances the clock to now (if later) and runs every timer due by then, in deadline order. */
void track_advance(struct track *tr, uint64_t now_ns);

/* The engine clock: the latest packet or tick time seen. */
uint64_t track_clock(const struct track *tr);

void track_get_stats(const struct track *tr, struct track_stats *out);

#endif
