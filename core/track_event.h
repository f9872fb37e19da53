/* track_event: what the trackers (sip_txn, sip_dialog, sip_reg, driven by track) report to their
 * consumers: built-in metrics, Lua rules and the events file. One struct, one callback; an event
 * and everything it points to are valid only during the callback. */
#ifndef SIPSCOPE_TRACK_EVENT_H
#define SIPSCOPE_TRACK_EVENT_H

#include <stdint.h>

#define TRACK_MAX_LABELS 8 /* operator label dimensions (rule labels) */

struct sip_msg;
struct packet;
struct sip_txn;
struct sip_dialog;
struct sip_binding;

enum track_event_type {
    /* Every SIP message, after tracking. msg, pkt; txn and dialog when matched; method is the
     * request method or the CSeq method of a response; code for responses; flags. */
    TRACK_MESSAGE = 0,
    /* A client transaction got its first final response (code) or timed out (code 0).
     * delay: request to final, or to the deadline on a timeout. */
    TRACK_TXN_END,
    /* A call (RFC 6076 session attempt) started: dialog, msg = the INVITE. */
    TRACK_CALL_START,
    /* A call changed state: old_state to new_state (enum sip_dialog_state; SIP_DIALOG_ENDED when
     * it leaves the active gauge). */
    TRACK_CALL_STATE,
    /* A call received a 401/407 challenge (code), first copy. */
    TRACK_CALL_CHALLENGE,
    /* First 180 or 183 of a call: delay = post-dial delay. */
    TRACK_CALL_RINGING,
    /* Session request delay (RFC 6076 §4.3): outcome = TRACK_SUCCESS on the first non-100
     * provisional or 2xx, TRACK_FAILURE on a failure final; delay. */
    TRACK_CALL_SRD,
    /* First 2xx of a call: dialog, msg; delay = setup time. */
    TRACK_CALL_ANSWER,
    /* The call's outcome: code, or 0 for a timeout. Once per call. */
    TRACK_CALL_OUTCOME,
    /* The call ended: reason (enum sip_dialog_end). flags: TRACK_F_COMPLETED for a confirmed
     * call ended by BYE, TRACK_F_HAS_DURATION when delay is the session duration. Once per call.
     * time_ns is the call's end (dialog->t_end): for an expired call, its session's expiry, the
     * grace earlier than the timer that found it (an evicted call: its last known event). */
    TRACK_CALL_END,
    /* Session disconnect delay (RFC 6076 §4.4) of the BYE that ended a call: outcome, delay. */
    TRACK_CALL_DISCONNECT,
    /* A re-INVITE or UPDATE inside a call (method), first copy. */
    TRACK_CALL_REFRESH,
    /* A REGISTER attempt started (a challenged retry is not a new one). msg. */
    TRACK_REG_ATTEMPT,
    /* The outcome of a REGISTER attempt: code, or 0 for a timeout; delay = registration request
     * delay (first REGISTER to final) when code is 2xx. */
    TRACK_REG_OUTCOME,
    /* A binding changed: reason (enum sip_binding_change), binding. */
    TRACK_REG_BINDING,
    TRACK_EVENT_COUNT
};

enum track_flag {
    TRACK_F_RETRANSMISSION = 1u << 0, /* TRACK_MESSAGE: a copy after the first */
    TRACK_F_ORPHAN = 1u << 1,         /* TRACK_MESSAGE: no matching transaction or dialog */
    TRACK_F_LATE_FINAL = 1u << 2,     /* TRACK_MESSAGE: a final after the transaction's first */
    TRACK_F_INITIAL = 1u << 3,        /* TRACK_MESSAGE: an out-of-dialog request that created a
                                         call or a transaction */
    TRACK_F_COMPLETED = 1u << 4,      /* TRACK_CALL_END: a confirmed call ended by BYE */
    TRACK_F_HAS_DURATION = 1u << 5,   /* TRACK_CALL_END: delay is the session duration */
    TRACK_F_NEGATIVE_DELAY = 1u << 6, /* delay was negative (out-of-order capture), clamped to 0 */
};

enum track_outcome {
    TRACK_SUCCESS = 0,
    TRACK_FAILURE = 1,
};

struct track_event {
    uint8_t type;    /* enum track_event_type */
    uint8_t method;  /* enum sip_method */
    uint8_t reason;  /* end reason, binding change */
    uint8_t outcome; /* enum track_outcome */
    uint8_t old_state, new_state;
    uint16_t code;
    uint32_t flags;
    uint64_t time_ns; /* when it happened: the packet's time, or a timer's deadline */
    double delay;     /* seconds, for the events that measure one; never negative */
    const uint16_t *labels; /* TRACK_MAX_LABELS operator label value ids; 0 = the default */
    const struct sip_msg *msg;   /* NULL for timer events */
    const struct packet *pkt;    /* NULL for timer events */
    const struct sip_txn *txn;
    const struct sip_dialog *dialog;
    const struct sip_binding *binding;
};

/* The consumer: called synchronously, in order, on the engine thread. */
struct track_sink {
    void (*emit)(void *ctx, const struct track_event *ev);
    /* Called once for each out-of-dialog request that creates a call, a REGISTER attempt or a
     * transaction, before it is created: writes the operator label value ids into
     * labels[TRACK_MAX_LABELS] (already zeroed). NULL when no rule declares labels. */
    void (*label)(void *ctx, const struct sip_msg *msg, const struct packet *pkt,
                  uint16_t *labels);
    void *ctx;
};

#endif
