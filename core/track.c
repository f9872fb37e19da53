/* track: message routing between the transaction, call and registration trackers, and the
 * engine clock that drives their timers. */
#include "track.h"

#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "sip_dialog.h"
#include "sip_reg.h"
#include "sip_txn.h"

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL

struct track {
    struct track_config cfg;
    struct track_sink sink;
    uint64_t clock;
    uint64_t linger; /* 64*T1: how long a finished transaction is remembered */
    struct sip_txn_table txns;
    struct sip_dialog_table dialogs;
    struct sip_reg_table reg;
};

static const uint16_t default_labels[TRACK_MAX_LABELS];

void track_config_defaults(struct track_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->t1_ns = 500 * NS_PER_MS;
    cfg->timer_b_ns = 64 * cfg->t1_ns;
    cfg->timer_c_ns = 180 * NS_PER_S;
    cfg->timer_f_ns = 64 * cfg->t1_ns;
    cfg->max_call_age_ns = 4 * 3600 * NS_PER_S;
    cfg->max_calls = 1000000;
    cfg->max_transactions = 2000000;
    cfg->max_registrations = 1000000;
    cfg->call_keep = SIP_DIALOG_KEEP_TEXT;
}

struct track *track_new(const struct track_config *cfg, const struct track_sink *sink)
{
    struct track *tr = calloc(1, sizeof(*tr));
    struct sip_dialog_timers timers;

    if (!tr)
        return NULL;
    tr->cfg = *cfg;
    tr->sink = *sink;
    tr->linger = 64 * cfg->t1_ns;
    /* An ended call is kept while the BYE that ended it may still be answered or time out: its
     * disconnect delay needs the call (a --timer-f above 64*T1). */
    timers.linger = cfg->timer_f_ns > tr->linger ? cfg->timer_f_ns : tr->linger;
    timers.retry_window = tr->linger;
    timers.expiry_grace = 32 * NS_PER_S; /* METRICS.md: Session-Expires plus 32 s */
    timers.max_age = cfg->max_call_age_ns;
    if (sip_txn_init(&tr->txns, cfg->max_transactions) != 0 ||
        sip_dialog_init(&tr->dialogs, cfg->max_calls, &timers, sink, cfg->call_keep) != 0 ||
        sip_reg_init(&tr->reg, cfg->max_registrations, tr->linger, cfg->timer_f_ns, sink) != 0) {
        track_free(tr);
        return NULL;
    }
    return tr;
}

void track_free(struct track *tr)
{
    if (!tr)
        return;
    sip_txn_fini(&tr->txns);
    sip_dialog_fini(&tr->dialogs);
    sip_reg_fini(&tr->reg);
    free(tr);
}

uint64_t track_clock(const struct track *tr)
{
    return tr->clock;
}

void track_get_stats(const struct track *tr, struct track_stats *out)
{
    out->calls = tr->dialogs.t.used;
    out->transactions = tr->txns.t.used;
    out->registrations = tr->reg.bindings.used;
    out->reg_attempts = tr->reg.attempts.used;
    out->call_evictions = tr->dialogs.evictions;
    out->transaction_evictions = tr->txns.evictions;
    out->registration_evictions = tr->reg.binding_evictions;
    out->reg_attempt_evictions = tr->reg.attempt_evictions;
}

static void emit(struct track *tr, const struct track_event *ev)
{
    tr->sink.emit(tr->sink.ctx, ev);
}

static void label_new(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                      uint16_t *labels)
{
    if (tr->sink.label)
        tr->sink.label(tr->sink.ctx, msg, pkt, labels);
}

static void txn_timeout(struct track *tr, struct sip_txn *txn)
{
    uint64_t deadline = txn->node.deadline;
    struct track_event ev = {.type = TRACK_TXN_END, .time_ns = deadline, .method = txn->method};
    struct sip_dialog *d = sip_dialog_of_txn(&tr->dialogs, txn);

    ev.txn = txn;
    ev.dialog = d;
    ev.labels = txn->labels;
    ev.delay = (double)(deadline - txn->t_first) / 1e9;
    emit(tr, &ev);
    sip_txn_finish(&tr->txns, txn, SIP_TXN_TIMED_OUT);
    sip_txn_set_deadline(&tr->txns, txn, deadline + tr->linger, SIP_TXN_TIMER_LINGER);
    /* Only the call's current INVITE decides its timeout: not one a retry has replaced. */
    if (d && txn->method == SIP_METHOD_INVITE && (txn->flags & SIP_TXN_F_PRIMARY) &&
        txn->cseq_low == d->invite_cseq)
        sip_dialog_on_invite_timeout(&tr->dialogs, d, deadline);
    else if (d)
        sip_dialog_on_in_dialog_final(&tr->dialogs, d, txn, NULL, NULL, 0, deadline);
    else if (txn->owner_kind == SIP_TXN_OWNER_REGISTER)
        sip_reg_on_final(&tr->reg, txn, NULL, NULL, 0, deadline);
}

static void run_txn_timer(struct track *tr, uint64_t now)
{
    struct sip_txn *txn = sip_txn_due(&tr->txns, now);

    if (txn->state == SIP_TXN_CALLING || txn->state == SIP_TXN_PROCEEDING)
        txn_timeout(tr, txn);
    else
        sip_txn_remove(&tr->txns, txn); /* remembered long enough */
}

void track_advance(struct track *tr, uint64_t now)
{
    if (now > tr->clock)
        tr->clock = now;
    now = tr->clock;
    /* The next transaction and call to come due are long out of cache by then. */
    table_prefetch_due(&tr->txns.t);
    table_prefetch_due(&tr->dialogs.t);
    /* Run timers across the three tables in deadline order, so that a replay always produces
     * the same sequence of events. */
    for (;;) {
        uint64_t dt = table_next_deadline(&tr->txns.t);
        uint64_t dd = table_next_deadline(&tr->dialogs.t);
        uint64_t dr = sip_reg_next_deadline(&tr->reg);
        /* Timers often come due several at once: after each, the next ones start loading. */
        if (dt <= dd && dt <= dr && dt <= now) {
            run_txn_timer(tr, now);
            table_prefetch_due(&tr->txns.t);
        } else if (dd <= dr && dd <= now) {
            sip_dialog_run_timer(&tr->dialogs, now);
            table_prefetch_due(&tr->dialogs.t);
        } else if (dr <= now) {
            sip_reg_run_timer(&tr->reg, now);
        } else {
            break;
        }
    }
}

/* Whether inv, an INVITE transaction of call d, is one that a newer INVITE of the call (a new
 * CSeq) replaced: its sender gave it up, so a CANCEL of it says nothing of the call, and the
 * 487 it is owed is that transaction's alone. A copy on another hop shares the current CSeq; a
 * re-INVITE (SIP_TXN_F_REFRESH) is no replaced INVITE. */
static bool replaced_invite(const struct sip_dialog *d, const struct sip_txn *inv)
{
    return !(inv->flags & SIP_TXN_F_REFRESH) && inv->cseq_low != d->invite_cseq;
}

/* The call an in-dialog request belongs to, whichever side sent it: a request from the caller
 * carries the call's tag in From, one from the callee in To. */
static struct sip_dialog *find_in_dialog(struct track *tr, const struct track_hint *hint)
{
    struct sip_dialog_key key = {hint->from_hash, hint->from_check};
    struct sip_dialog *d = sip_dialog_find_key(&tr->dialogs, &key);
    if (d)
        return d;
    key = (struct sip_dialog_key){hint->to_hash, hint->to_check};
    return sip_dialog_find_key(&tr->dialogs, &key);
}

static void on_ack(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                   struct track_event *ev, uint64_t now, const struct track_hint *hint)
{
    struct sip_txn_key key = {hint->txn_hash, hint->txn_check};
    struct sip_txn *inv;
    struct sip_dialog *d;

    /* An ACK to a non-2xx shares its INVITE's transaction (RFC 3261 §17.1.1.3); an ACK to a
     * 2xx is a new request inside the dialog (§13.2.2.4). The hint holds the INVITE's key. */
    inv = sip_txn_find(&tr->txns, &key);
    if (inv) {
        ev->txn = inv;
        ev->labels = inv->labels;
        ev->dialog = sip_dialog_of_txn(&tr->dialogs, inv);
        if (inv->flags & SIP_TXN_F_ACKED)
            ev->flags |= TRACK_F_RETRANSMISSION;
        inv->flags |= SIP_TXN_F_ACKED;
        if (ev->dialog && inv->final_code >= 200 && inv->final_code < 300 &&
            !(ev->flags & TRACK_F_RETRANSMISSION))
            sip_dialog_on_request(&tr->dialogs, (struct sip_dialog *)ev->dialog, NULL, msg, pkt,
                                  now);
        return;
    }
    if (msg->to_tag.len == 0)
        return;
    d = find_in_dialog(tr, hint);
    if (!d) {
        ev->flags |= TRACK_F_ORPHAN;
        return;
    }
    ev->dialog = d;
    ev->labels = d->labels;
    if (sip_dialog_on_request(&tr->dialogs, d, NULL, msg, pkt, now))
        ev->flags |= TRACK_F_RETRANSMISSION;
}

static struct sip_dialog *on_out_of_dialog(struct track *tr, struct sip_txn *txn,
                                           const struct sip_msg *msg, const struct packet *pkt,
                                           uint64_t now, const struct track_hint *hint)
{
    struct sip_dialog *d = NULL;

    switch (msg->method) {
    case SIP_METHOD_INVITE: {
        uint16_t labels[TRACK_MAX_LABELS] = {0};
        struct sip_dialog_key key = {hint->from_hash, hint->from_check};
        d = sip_dialog_find_key(&tr->dialogs, &key);
        if (d && sip_dialog_joinable(&tr->dialogs, d, txn, msg, now)) {
            sip_dialog_join(&tr->dialogs, d, txn, msg);
            break;
        }
        label_new(tr, msg, pkt, labels);
        d = sip_dialog_start(&tr->dialogs, txn, msg, pkt, labels, &key, now);
        break;
    }
    case SIP_METHOD_CANCEL: {
        /* RFC 3261 §9.1: a CANCEL carries its INVITE's branch. The CANCEL's own transaction
         * was created first, so an eviction cannot pull the INVITE away under us. */
        struct sip_txn_key key;
        struct sip_txn *inv;
        sip_txn_key(msg, SIP_METHOD_INVITE, &key);
        inv = sip_txn_find(&tr->txns, &key);
        if (!inv)
            break;
        memcpy(txn->labels, inv->labels, sizeof(txn->labels));
        d = sip_dialog_of_txn(&tr->dialogs, inv);
        if (d) {
            if (!replaced_invite(d, inv))
                sip_dialog_on_cancel(&tr->dialogs, d, msg);
            sip_dialog_own(&tr->dialogs, txn, d);
        }
        break;
    }
    case SIP_METHOD_REGISTER:
        sip_reg_on_request(&tr->reg, txn, msg, pkt, now);
        break;
    default:
        label_new(tr, msg, pkt, txn->labels);
        break;
    }
    return d;
}

static void on_request(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                       uint64_t now, const struct track_hint *hint)
{
    struct track_event ev = {.type = TRACK_MESSAGE, .time_ns = now, .msg = msg, .pkt = pkt};
    struct sip_txn_key key = {hint->txn_hash, hint->txn_check};
    struct sip_txn *txn;
    struct sip_dialog *d = NULL;

    ev.method = msg->method;
    ev.labels = default_labels;
    if (msg->method == SIP_METHOD_ACK) {
        on_ack(tr, msg, pkt, &ev, now, hint);
        emit(tr, &ev);
        return;
    }
    txn = sip_txn_find(&tr->txns, &key);
    if (txn) {
        /* A copy of a request whose transaction is live or recently ended (METRICS.md). */
        ev.flags |= TRACK_F_RETRANSMISSION;
        if (txn->flags & SIP_TXN_F_ORPHAN)
            ev.flags |= TRACK_F_ORPHAN;
        ev.txn = txn;
        ev.dialog = sip_dialog_of_txn(&tr->dialogs, txn);
        ev.labels = txn->labels;
        emit(tr, &ev);
        return;
    }
    txn = sip_txn_create(&tr->txns, &key, (enum sip_method)msg->method, now);
    txn->cseq_low = (uint16_t)msg->cseq;
    sip_txn_set_deadline(&tr->txns, txn,
                         now + (msg->method == SIP_METHOD_INVITE ? tr->cfg.timer_b_ns
                                                                 : tr->cfg.timer_f_ns),
                         SIP_TXN_TIMER_REQUEST);
    /* A REGISTER never belongs to a dialog, also when a UA (against RFC 3261 §8.1.1.2) puts
     * the To-tag of the last 200 into its refresh: it is still an attempt. */
    if (msg->to_tag.len && msg->method != SIP_METHOD_REGISTER) {
        d = find_in_dialog(tr, hint);
        if (d) {
            memcpy(txn->labels, d->labels, sizeof(txn->labels));
            sip_dialog_on_request(&tr->dialogs, d, txn, msg, pkt, now);
        } else if (msg->method != SIP_METHOD_SUBSCRIBE && msg->method != SIP_METHOD_NOTIFY) {
            txn->flags |= SIP_TXN_F_ORPHAN;
            ev.flags |= TRACK_F_ORPHAN;
        }
        /* SUBSCRIBE and NOTIFY outside a call belong to a subscription's dialog (RFC 6665),
         * which is not tracked: not seen is not never seen, so they are no orphans. */
    } else {
        d = on_out_of_dialog(tr, txn, msg, pkt, now, hint);
        if (msg->method != SIP_METHOD_CANCEL)
            ev.flags |= TRACK_F_INITIAL;
    }
    ev.txn = txn;
    ev.dialog = d;
    ev.labels = txn->labels;
    emit(tr, &ev);
}

/* A provisional response of a transaction in progress: Timer C (RFC 3261 §16.6 step 11) of an
 * INVITE restarts from it. */
static void on_provisional(struct track *tr, struct sip_txn *txn, uint64_t now)
{
    txn->t_prov = now;
    if (txn->method == SIP_METHOD_INVITE && !(txn->flags & SIP_TXN_F_CANCEL_OK))
        sip_txn_set_deadline(&tr->txns, txn, now + tr->cfg.timer_c_ns, SIP_TXN_TIMER_C);
}

/* A 2xx to a CANCEL (msg) of call d. RFC 3261 §9.1: the UAC waits 64*T1 more for its INVITE's
 * final, then takes the INVITE for cancelled; §9.2: the UAS answers it 487 right after the 2xx.
 * So a missing 487 (lost, or a UAS that never sends it) ends the call cancelled 64*T1 later,
 * not as an ineffective attempt at Timer C, minutes on; a re-INVITE's, with the call going on
 * (not ended as a timeout). A CANCEL without a 2xx proves nothing (a dead callee answers
 * neither): the INVITE keeps its timers. */
static void on_cancel_answered(struct track *tr, const struct sip_msg *msg, struct sip_dialog *d,
                               uint64_t now)
{
    struct sip_txn_key key;
    struct sip_txn *inv;

    sip_txn_key(msg, SIP_METHOD_INVITE, &key); /* the CANCEL carries its INVITE's branch */
    inv = sip_txn_find(&tr->txns, &key);
    if (!inv || (inv->state != SIP_TXN_CALLING && inv->state != SIP_TXN_PROCEEDING))
        return; /* not seen, or its final crossed the CANCEL */
    inv->flags |= SIP_TXN_F_CANCEL_OK;
    /* A re-INVITE's CANCEL is not the call's, nor is that of an INVITE a newer one replaced. */
    if (!(inv->flags & SIP_TXN_F_REFRESH) && !replaced_invite(d, inv))
        sip_dialog_on_cancel_answered(d);
    if (inv->node.deadline > now + tr->linger)
        sip_txn_set_deadline(&tr->txns, inv, now + tr->linger, SIP_TXN_TIMER_CANCEL);
}

static void on_response(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                        uint64_t now, const struct track_hint *hint)
{
    struct track_event ev = {.type = TRACK_MESSAGE, .time_ns = now, .msg = msg, .pkt = pkt};
    struct sip_txn_key key = {hint->txn_hash, hint->txn_check};
    struct sip_txn *txn;
    struct sip_dialog *d;
    bool first_final = false;
    uint16_t code = msg->status;

    ev.method = msg->cseq_method;
    ev.code = code;
    ev.labels = default_labels;
    txn = sip_txn_find(&tr->txns, &key);
    if (!txn || msg->cseq_method == SIP_METHOD_ACK) {
        ev.flags |= TRACK_F_ORPHAN;
        emit(tr, &ev);
        return;
    }
    d = sip_dialog_of_txn(&tr->dialogs, txn);
    ev.txn = txn;
    ev.dialog = d;
    ev.labels = txn->labels;
    if (sip_txn_response_seen(txn, msg)) {
        ev.flags |= TRACK_F_RETRANSMISSION;
        /* A repeated provisional other than 100 restarts Timer C too (RFC 3261 §16.7 step 2):
         * a UAS that rings for minutes sends its 180 again every minute (§13.3.1.1) so that
         * the call is not given up after 180 s. */
        if (code > 100 && code < 200 && txn->state == SIP_TXN_PROCEEDING)
            on_provisional(tr, txn, now);
        emit(tr, &ev);
        return;
    }
    if (code < 200) {
        if (txn->state == SIP_TXN_CALLING || txn->state == SIP_TXN_PROCEEDING) {
            if (txn->state == SIP_TXN_CALLING && txn->method == SIP_METHOD_INVITE)
                sip_txn_proceeding(&tr->txns, txn); /* a call that rings: evicted last */
            txn->state = SIP_TXN_PROCEEDING;
            on_provisional(tr, txn, now);
        }
    } else if (txn->state == SIP_TXN_COMPLETED || txn->state == SIP_TXN_TIMED_OUT) {
        ev.flags |= TRACK_F_LATE_FINAL; /* a losing fork, a late 2xx, or after the timeout */
    } else {
        struct track_event end = {.type = TRACK_TXN_END, .time_ns = now, .msg = msg, .pkt = pkt,
                                  .method = txn->method, .code = code, .txn = txn,
                                  .dialog = d, .labels = txn->labels};
        first_final = true;
        txn->final_code = code;
        sip_txn_finish(&tr->txns, txn, SIP_TXN_COMPLETED);
        sip_txn_set_deadline(&tr->txns, txn, now + tr->linger, SIP_TXN_TIMER_LINGER);
        if (now >= txn->t_first)
            end.delay = (double)(now - txn->t_first) / 1e9;
        else
            end.flags |= TRACK_F_NEGATIVE_DELAY;
        emit(tr, &end);
    }
    if (d) {
        if (txn->method == SIP_METHOD_INVITE && !(txn->flags & SIP_TXN_F_REFRESH))
            sip_dialog_on_invite_response(&tr->dialogs, d, txn, msg, pkt, first_final, now);
        else if (first_final && txn->method == SIP_METHOD_CANCEL && code < 300)
            on_cancel_answered(tr, msg, d, now);
        else if (first_final)
            sip_dialog_on_in_dialog_final(&tr->dialogs, d, txn, msg, pkt, code, now);
    } else if (first_final && txn->owner_kind == SIP_TXN_OWNER_REGISTER) {
        sip_reg_on_final(&tr->reg, txn, msg, pkt, code, now);
    }
    emit(tr, &ev);
}

/* The keys of the hint; no prefetch. */
static void hint_keys(const struct sip_msg *msg, struct track_hint *hint)
{
    struct sip_txn_key key;
    enum sip_method m = msg->is_request ? (enum sip_method)msg->method
                                        : (enum sip_method)msg->cseq_method;

    if (msg->is_request && m == SIP_METHOD_ACK)
        m = SIP_METHOD_INVITE;
    sip_txn_key(msg, m, &key);
    hint->txn_hash = key.hash;
    hint->txn_check = key.check;
    hint->has_from = hint->has_to = 0;
    /* Requests look their call up: in-dialog ones by either tag, an INVITE by its From-tag. */
    if (msg->is_request && (msg->to_tag.len || msg->method == SIP_METHOD_INVITE)) {
        struct sip_dialog_key from, to;
        sip_dialog_keys(msg->call_id, msg->from_tag, msg->to_tag, &from, &to);
        hint->from_hash = from.hash;
        hint->from_check = from.check;
        hint->to_hash = to.hash;
        hint->to_check = to.check;
        hint->has_from = 1;
        hint->has_to = msg->to_tag.len != 0;
    }
}

void track_prepare(struct track *tr, const struct sip_msg *msg, struct track_hint *hint)
{
    hint_keys(msg, hint);
    table_prefetch_bucket(&tr->txns.t, hint->txn_hash);
    if (hint->has_from)
        table_prefetch_bucket(&tr->dialogs.t, hint->from_hash);
    if (hint->has_to)
        table_prefetch_bucket(&tr->dialogs.t, hint->to_hash);
}

void track_prefetch(const struct track *tr, const struct track_hint *hint)
{
    table_prefetch_head(&tr->txns.t, hint->txn_hash);
    if (hint->has_from)
        table_prefetch_head(&tr->dialogs.t, hint->from_hash);
    if (hint->has_to)
        table_prefetch_head(&tr->dialogs.t, hint->to_hash);
}

/* The call at the head of a chain of the dialog table (track_prefetch loaded it) with its
 * records loading, else TABLE_NONE with the rest of the chain loading. */
static uint32_t prefetch_call(const struct table *t, uint64_t hash, uint64_t check)
{
    uint32_t idx = table_head_match(t, hash, check);
    if (idx != TABLE_NONE)
        table_prefetch_records(t, idx);
    else
        table_prefetch_chain(t, hash);
    return idx;
}

void track_prefetch_more(const struct track *tr, struct track_hint *hint)
{
    /* Only the chain's head was loaded: look no further (a walk would wait on the next). */
    uint32_t idx = table_head_match(&tr->txns.t, hint->txn_hash, hint->txn_check);

    hint->txn_idx = idx;
    hint->call_idx = TABLE_NONE;
    if (idx != TABLE_NONE) {
        const struct sip_txn *txn = table_entry(&tr->txns.t, idx);
        table_prefetch_records(&tr->txns.t, idx);
        if (txn->owner_kind == SIP_TXN_OWNER_CALL) {
            hint->call_idx = txn->owner;
            table_prefetch_entry(&tr->dialogs.t, txn->owner);
            table_prefetch_records(&tr->dialogs.t, txn->owner);
        }
    } else {
        table_prefetch_chain(&tr->txns.t, hint->txn_hash);
    }
    if (hint->has_from) {
        idx = prefetch_call(&tr->dialogs.t, hint->from_hash, hint->from_check);
        if (hint->call_idx == TABLE_NONE)
            hint->call_idx = idx;
    }
    if (hint->has_to) {
        idx = prefetch_call(&tr->dialogs.t, hint->to_hash, hint->to_check);
        if (hint->call_idx == TABLE_NONE)
            hint->call_idx = idx;
    }
}

const struct sip_dialog *track_hint_call(const struct track *tr, const struct track_hint *hint)
{
    if (hint->call_idx == TABLE_NONE)
        return NULL;
    return table_entry(&tr->dialogs.t, hint->call_idx);
}

void track_prefetch_neighbours(const struct track *tr, const struct track_hint *hint)
{
    if (hint->txn_idx != TABLE_NONE)
        table_prefetch_neighbours(&tr->txns.t, hint->txn_idx);
    if (hint->call_idx != TABLE_NONE)
        table_prefetch_neighbours(&tr->dialogs.t, hint->call_idx);
}

void track_message_prepared(struct track *tr, const struct sip_msg *msg, const struct packet *pkt,
                            const struct track_hint *hint)
{
    uint64_t now = pkt->ts_ns;

    track_advance(tr, now);
    if (msg->is_request)
        on_request(tr, msg, pkt, now, hint);
    else
        on_response(tr, msg, pkt, now, hint);
}

void track_message(struct track *tr, const struct sip_msg *msg, const struct packet *pkt)
{
    struct track_hint hint;

    hint_keys(msg, &hint);
    track_message_prepared(tr, msg, pkt, &hint);
}
