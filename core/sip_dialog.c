/* sip_dialog: the call state machine, its timers and the bounded call table. */
#include "sip_dialog.h"

#include <stddef.h>
#include <string.h>

/* table_clear_only (sip_dialog_init): what a new call must find zeroed comes before the text. */
_Static_assert(offsetof(struct sip_dialog, to_len) < offsetof(struct sip_dialog, text) &&
                   offsetof(struct sip_dialog, rule_slot) < offsetof(struct sip_dialog, text),
               "the text's lengths and the tracker's fields must come before the text");

/* The fields every message of a call reads stay within what the lookahead loads. */
_Static_assert(offsetof(struct sip_dialog, t_challenge) <= 128,
               "the hot fields of struct sip_dialog must fit in its first 128 bytes");

size_t sip_dialog_entry_size(enum sip_dialog_keep keep)
{
    /* Up to the first part not kept, rounded to the 8 bytes table entries are made of. */
    size_t end = keep == SIP_DIALOG_KEEP_CDR    ? sizeof(struct sip_dialog)
                 : keep == SIP_DIALOG_KEEP_TEXT ? offsetof(struct sip_dialog, cdr)
                                                : offsetof(struct sip_dialog, text);
    return (end + 7) & ~(size_t)7;
}

#define SEED_KEY 0xca11ab1eULL
#define NS_PER_S 1000000000ULL

static const char *const state_names[SIP_DIALOG_STATE_COUNT] = {
    "trying", "early", "confirmed", "ended",
};

static const char *const end_names[SIP_END_COUNT] = {
    "none", "bye", "cancel", "rejected", "redirected", "timeout", "expired", "max_age", "evicted",
};

const char *sip_dialog_state_name(enum sip_dialog_state s)
{
    return s < SIP_DIALOG_STATE_COUNT ? state_names[s] : "unknown";
}

const char *sip_dialog_end_name(enum sip_dialog_end r)
{
    return r < SIP_END_COUNT ? end_names[r] : "unknown";
}

int sip_dialog_init(struct sip_dialog_table *tbl, uint32_t cap,
                    const struct sip_dialog_timers *timers, const struct track_sink *sink,
                    enum sip_dialog_keep keep)
{
    int rc;

    tbl->timers = *timers;
    tbl->sink = *sink;
    tbl->evictions = 0;
    tbl->keep = (uint8_t)keep;
    rc = table_init(&tbl->t, sip_dialog_entry_size(keep), cap);
    if (rc != 0)
        return rc;
    /* The text is read only up to its lengths (zeroed: they come before it), the CDR record
     * only after call_cdr_start resets it: a new call zeroes what comes before the text, a
     * fifth of the entry with both (sip_dialog_entry_size). */
    table_clear_only(&tbl->t, offsetof(struct sip_dialog, text));
    return 0;
}

void sip_dialog_fini(struct sip_dialog_table *tbl)
{
    table_fini(&tbl->t);
}

/* A call's key: its Call-ID hashed, then (key_finish) one of its tags. The Call-ID's state is
 * kept apart so that both tags of a request hash it once. */
static struct hash2 key_start(struct slice call_id)
{
    struct hash2 h = hash2_start(SEED_KEY);
    hash2_add(&h, call_id);
    return h;
}

static void key_finish(struct hash2 h, struct slice tag, struct sip_dialog_key *key)
{
    hash2_add(&h, tag);
    hash2_finish(&h, &key->hash, &key->check);
}

void sip_dialog_key(struct slice call_id, struct slice tag, struct sip_dialog_key *key)
{
    key_finish(key_start(call_id), tag, key);
}

void sip_dialog_keys(struct slice call_id, struct slice from_tag, struct slice to_tag,
                     struct sip_dialog_key *from, struct sip_dialog_key *to)
{
    struct hash2 c = key_start(call_id);
    key_finish(c, from_tag, from);
    if (to_tag.len)
        key_finish(c, to_tag, to);
    else
        *to = (struct sip_dialog_key){0, 0};
}

struct sip_dialog *sip_dialog_find_key(struct sip_dialog_table *tbl,
                                       const struct sip_dialog_key *key)
{
    /* Newest first, so a call that replaced an older one with the same key (a new INVITE after
     * an outcome) is found before it. */
    uint32_t idx = table_lookup(&tbl->t, key->hash, key->check);
    return idx == TABLE_NONE ? NULL : table_entry(&tbl->t, idx);
}

struct sip_dialog *sip_dialog_find(struct sip_dialog_table *tbl, struct slice call_id,
                                   struct slice tag)
{
    struct sip_dialog_key key;
    sip_dialog_key(call_id, tag, &key);
    return sip_dialog_find_key(tbl, &key);
}

struct sip_dialog *sip_dialog_find_in_dialog(struct sip_dialog_table *tbl,
                                             const struct sip_msg *msg)
{
    /* A request from the caller carries the call's tag in From, one from the callee in To. The
     * Call-ID is hashed once for both. */
    struct hash2 c = key_start(msg->call_id);
    struct sip_dialog_key key;
    struct sip_dialog *d;
    key_finish(c, msg->from_tag, &key);
    d = sip_dialog_find_key(tbl, &key);
    if (d)
        return d;
    key_finish(c, msg->to_tag, &key);
    return sip_dialog_find_key(tbl, &key);
}

static uint32_t tag_hash(struct slice tag)
{
    uint64_t h = slice_hash(tag, 0x7a9);
    return (uint32_t)(h ^ (h >> 32)) | 1;
}

/* Index of the dialog with this To-tag among the call's, adding it if new; -1 when the tag is
 * empty or the call already holds SIP_DIALOG_MAX_TO_TAGS dialogs. */
static int dialog_slot(struct sip_dialog *d, struct slice tag, bool add)
{
    uint32_t h;
    if (tag.len == 0)
        return -1;
    h = tag_hash(tag);
    for (uint8_t i = 0; i < d->n_to_tags; i++)
        if (d->to_tags[i] == h)
            return i;
    if (!add || d->n_to_tags == SIP_DIALOG_MAX_TO_TAGS)
        return -1;
    d->to_tags[d->n_to_tags] = h;
    return d->n_to_tags++;
}

static void remember_to_tag(struct sip_dialog *d, struct slice tag)
{
    dialog_slot(d, tag, true);
}

static void confirm_dialog(struct sip_dialog *d, struct slice tag)
{
    int i = dialog_slot(d, tag, true);
    /* Every place holds an early dialog (a ring group of five phones or more): the answering
     * fork takes the place of one that never answered. Untracked, a confirmed fork's BYE
     * would not be told from the BYE that ends the last dialog. */
    for (uint8_t k = 0; i < 0 && tag.len && k < d->n_to_tags; k++)
        if (!(d->confirmed_tags & (1u << k))) {
            d->to_tags[k] = tag_hash(tag);
            i = k;
        }
    if (i >= 0)
        d->confirmed_tags |= (uint8_t)(1u << i);
}

/* Delays are measured between packet times; a capture out of order can make them negative. */
static double delay_between(uint64_t from, uint64_t to, uint32_t *flags)
{
    if (to < from) {
        *flags |= TRACK_F_NEGATIVE_DELAY;
        return 0.0;
    }
    return (double)(to - from) / 1e9;
}

static void emit(struct sip_dialog_table *tbl, struct track_event *ev, const struct sip_dialog *d)
{
    ev->dialog = d;
    ev->labels = d->labels;
    tbl->sink.emit(tbl->sink.ctx, ev);
}

static void set_state(struct sip_dialog_table *tbl, struct sip_dialog *d,
                      enum sip_dialog_state state, uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_STATE, .time_ns = now};

    ev.old_state = d->state;
    ev.new_state = (uint8_t)state;
    d->state = (uint8_t)state;
    if (state == SIP_DIALOG_EARLY)
        table_set_class(&tbl->t, table_index(&tbl->t, d), SIP_DIALOG_CLASS_EARLY);
    else if (state == SIP_DIALOG_CONFIRMED)
        table_set_class(&tbl->t, table_index(&tbl->t, d), SIP_DIALOG_CLASS_CONFIRMED);
    else if (state == SIP_DIALOG_ENDED)
        table_set_class(&tbl->t, table_index(&tbl->t, d), SIP_DIALOG_CLASS_ENDED);
    emit(tbl, &ev, d);
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Deadline lanes of the call timers that run a fixed time from an event (table.h): the session
 * expiry depends on each call's Session-Expires and stays in the heap. */
enum dialog_lane {
    LANE_LINGER = 0,
    LANE_MAX_AGE = 1,
    LANE_CHALLENGE = 2,
    LANE_NONE = 3, /* the heap */
};

static void rearm(struct sip_dialog_table *tbl, struct sip_dialog *d)
{
    uint64_t deadline = TABLE_NO_DEADLINE;
    uint64_t t;
    enum dialog_lane lane;

    if (d->state == SIP_DIALOG_ENDED) {
        /* Kept from when it was seen to end: an expired call's t_end is its session's end, the
         * grace before (end_call), and late messages may come until its linger after that. */
        deadline = add_sat(d->t_end, tbl->timers.linger);
        if (d->end_reason == SIP_END_EXPIRED)
            deadline = add_sat(deadline, tbl->timers.expiry_grace);
        lane = LANE_LINGER;
    } else {
        deadline = add_sat(d->t_start, tbl->timers.max_age);
        lane = LANE_MAX_AGE;
        if (d->state == SIP_DIALOG_CONFIRMED && d->session_expires) {
            t = add_sat(add_sat(d->t_refresh, (uint64_t)d->session_expires * NS_PER_S),
                        tbl->timers.expiry_grace);
            if (t < deadline) {
                deadline = t;
                lane = LANE_NONE;
            }
        }
    }
    if (d->flags & SIP_DIALOG_F_CHALLENGED) {
        t = add_sat(d->t_challenge, tbl->timers.retry_window);
        if (t < deadline) {
            deadline = t;
            lane = LANE_CHALLENGE;
        }
    }
    if (lane == LANE_NONE)
        table_set_deadline(&tbl->t, table_index(&tbl->t, d), deadline);
    else
        table_set_deadline_lane(&tbl->t, table_index(&tbl->t, d), deadline, lane);
}

static void end_call(struct sip_dialog_table *tbl, struct sip_dialog *d, enum sip_dialog_end why,
                     const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_END, .time_ns = now, .msg = msg, .pkt = pkt};

    if (d->state == SIP_DIALOG_ENDED)
        return;
    ev.reason = (uint8_t)why;
    /* RFC 6076 §4.5: session duration runs from the 2xx to the BYE; an expired session ran to
     * its expiry (now, for it: sip_dialog_run_timer). Calls cut by the age limit or eviction have
     * no meaningful duration. */
    if (d->state == SIP_DIALOG_CONFIRMED && (why == SIP_END_BYE || why == SIP_END_EXPIRED)) {
        ev.flags |= TRACK_F_HAS_DURATION;
        ev.delay = delay_between(d->t_answer, now, &ev.flags);
    }
    if (d->state == SIP_DIALOG_CONFIRMED && why == SIP_END_BYE)
        ev.flags |= TRACK_F_COMPLETED;
    d->end_reason = (uint8_t)why;
    d->t_end = now;
    emit(tbl, &ev, d);
    set_state(tbl, d, SIP_DIALOG_ENDED, now);
    rearm(tbl, d);
}

static void decide_outcome(struct sip_dialog_table *tbl, struct sip_dialog *d, uint16_t code,
                           const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_OUTCOME, .time_ns = now, .msg = msg, .pkt = pkt};

    d->flags |= SIP_DIALOG_F_OUTCOME;
    d->flags &= (uint8_t)~SIP_DIALOG_F_CHALLENGED;
    d->final_code = code;
    ev.code = code;
    emit(tbl, &ev, d);
}

static void observe_srd(struct sip_dialog_table *tbl, struct sip_dialog *d, uint8_t outcome,
                        const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_SRD, .time_ns = now, .msg = msg, .pkt = pkt};

    if (d->flags & SIP_DIALOG_F_SRD)
        return;
    d->flags |= SIP_DIALOG_F_SRD;
    ev.outcome = outcome;
    ev.delay = delay_between(d->t_start, now, &ev.flags);
    emit(tbl, &ev, d);
}

static void copy_text(const struct sip_dialog_table *tbl, struct sip_dialog *d,
                      const struct sip_msg *msg)
{
    struct slice parts[3] = {msg->call_id, msg->from_uri, msg->to_uri};
    size_t max[3] = {SIP_DIALOG_CALL_ID_MAX, SIP_DIALOG_URI_MAX, SIP_DIALOG_URI_MAX};
    uint8_t *lens[3] = {&d->call_id_len, &d->from_len, &d->to_len};
    size_t off = 0;

    if (tbl->keep == SIP_DIALOG_KEEP_NONE)
        return;
    for (int i = 0; i < 3; i++) {
        size_t n = parts[i].len;
        if (n > max[i]) { /* not inside a character: a cut one would read as U+FFFD */
            n = slice_utf8_cut(parts[i].p, n, max[i]);
            d->flags |= SIP_DIALOG_F_TRUNCATED;
        }
        if (n) /* an absent value is an empty slice with a NULL pointer */
            memcpy(d->text + off, parts[i].p, n);
        *lens[i] = (uint8_t)n;
        off += max[i];
    }
}

struct slice sip_dialog_call_id(const struct sip_dialog *d)
{
    return slice_make(d->text, d->call_id_len);
}

struct slice sip_dialog_from_uri(const struct sip_dialog *d)
{
    return slice_make(d->text + SIP_DIALOG_CALL_ID_MAX, d->from_len);
}

struct slice sip_dialog_to_uri(const struct sip_dialog *d)
{
    return slice_make(d->text + SIP_DIALOG_CALL_ID_MAX + SIP_DIALOG_URI_MAX, d->to_len);
}

static uint16_t invite_via_of(const struct sip_txn *txn, const struct sip_msg *msg)
{
    uint64_t by = slice_hash(msg->via_sent_by, 0x5e17b9);
    return (uint16_t)((by >> 56) << 8 | (txn->node.hash >> 56));
}

bool sip_dialog_joinable(const struct sip_dialog_table *tbl, const struct sip_dialog *d,
                         const struct sip_txn *txn, const struct sip_msg *msg, uint64_t now)
{
    /* The same INVITE seen on another hop. Once the call has ended, the same INVITE from the
     * same sender with a new branch is a UA's retry at the next server (RFC 3263 §4.3:
     * identical but for the branch, after a 503 or a timeout), which METRICS.md counts as a
     * new call like any INVITE after an outcome. The same branch (a retransmission whose
     * transaction was let go) or another sender (a hop forwarding late) is still this call. */
    if ((uint16_t)msg->cseq == d->invite_cseq) {
        uint16_t v = invite_via_of(txn, msg);
        return d->state != SIP_DIALOG_ENDED || (v >> 8) != (d->invite_via >> 8) ||
               (v & 0xff) == (d->invite_via & 0xff);
    }
    if (d->flags & SIP_DIALOG_F_CHALLENGED)
        return now <= d->t_challenge + tbl->timers.retry_window;
    /* METRICS.md: a later INVITE with the same key after an outcome is a new call. */
    return !(d->flags & SIP_DIALOG_F_OUTCOME) && d->state != SIP_DIALOG_ENDED;
}

void sip_dialog_join(struct sip_dialog_table *tbl, struct sip_dialog *d, struct sip_txn *txn,
                     const struct sip_msg *msg)
{
    sip_dialog_own(tbl, txn, d);
    txn->flags |= SIP_TXN_F_PRIMARY;
    /* Serial arithmetic on the low 16 bits (RFC 1982): a CSeq ahead of the call's is a newer
     * INVITE, one behind it a late copy, on another hop, of an INVITE already replaced. */
    if ((int16_t)((uint16_t)msg->cseq - d->invite_cseq) > 0) {
        /* The retry of a challenge (or a re-sent INVITE): its fate now decides the call. */
        d->invite_cseq = (uint16_t)msg->cseq;
        d->invite_via = invite_via_of(txn, msg);
        d->copy_failure = 0;
        /* A CANCEL of the INVITE it replaces was that INVITE's, which its sender gave up: this
         * one is not cancelled, and owes no 487 for it. */
        d->flags &= (uint8_t) ~(SIP_DIALOG_F_CANCELLED | SIP_DIALOG_F_CANCEL_OK);
        if (d->flags & SIP_DIALOG_F_CHALLENGED) {
            d->flags &= (uint8_t)~SIP_DIALOG_F_CHALLENGED;
            rearm(tbl, d);
        }
    } else {
        txn->flags &= (uint8_t)~SIP_TXN_F_PRIMARY; /* a copy on another hop, or a late one */
    }
    memcpy(txn->labels, d->labels, sizeof(txn->labels));
}

static void evict_one(struct sip_dialog_table *tbl)
{
    uint32_t victim = table_oldest(&tbl->t, SIP_DIALOG_CLASS_ENDED);
    struct sip_dialog *d;

    if (victim == TABLE_NONE)
        victim = table_oldest(&tbl->t, SIP_DIALOG_CLASS_UNANSWERED);
    if (victim == TABLE_NONE)
        victim = table_oldest(&tbl->t, SIP_DIALOG_CLASS_BYE_PENDING);
    if (victim == TABLE_NONE)
        victim = table_oldest(&tbl->t, SIP_DIALOG_CLASS_EARLY);
    if (victim == TABLE_NONE)
        victim = table_oldest(&tbl->t, SIP_DIALOG_CLASS_CONFIRMED);
    d = table_entry(&tbl->t, victim);
    /* The call ends at the time of its last known event, not at the evicting packet's time. */
    uint64_t last = d->t_answer > d->t_start ? d->t_answer : d->t_start;
    /* Every attempt gets an outcome (METRICS.md), or the ratios count it as one still ringing
     * forever: what is known (a challenge left without retry, a failure on another hop), else
     * timeout. */
    if (!(d->flags & SIP_DIALOG_F_OUTCOME))
        decide_outcome(tbl, d,
                       (d->flags & SIP_DIALOG_F_CHALLENGED) ? d->challenge_code : d->copy_failure,
                       NULL, NULL, last);
    if (d->state != SIP_DIALOG_ENDED)
        end_call(tbl, d, SIP_END_EVICTED, NULL, NULL, last);
    table_remove(&tbl->t, victim);
    tbl->evictions++;
}

struct sip_dialog *sip_dialog_start(struct sip_dialog_table *tbl, struct sip_txn *txn,
                                    const struct sip_msg *msg, const struct packet *pkt,
                                    const uint16_t *labels, const struct sip_dialog_key *key,
                                    uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_START, .time_ns = now, .msg = msg, .pkt = pkt};
    uint32_t idx = table_insert(&tbl->t, key->hash, key->check, SIP_DIALOG_CLASS_UNANSWERED);
    struct sip_dialog *d;

    if (idx == TABLE_NONE) {
        evict_one(tbl);
        idx = table_insert(&tbl->t, key->hash, key->check, SIP_DIALOG_CLASS_UNANSWERED);
    }
    d = table_entry(&tbl->t, idx);
    d->t_start = now;
    d->invite_cseq = (uint16_t)msg->cseq;
    d->invite_via = invite_via_of(txn, msg);
    d->state = SIP_DIALOG_ENDED; /* not yet in the active gauge: set_state moves it to trying */
    memcpy(d->labels, labels, sizeof(d->labels));
    copy_text(tbl, d, msg);
    if (tbl->keep == SIP_DIALOG_KEEP_CDR)
        call_cdr_start(&d->cdr, msg, pkt);
    sip_dialog_own(tbl, txn, d);
    txn->flags |= SIP_TXN_F_PRIMARY;
    memcpy(txn->labels, labels, sizeof(txn->labels));
    emit(tbl, &ev, d);
    set_state(tbl, d, SIP_DIALOG_TRYING, now);
    table_set_class(&tbl->t, idx, SIP_DIALOG_CLASS_UNANSWERED);
    rearm(tbl, d);
    return d;
}

static uint32_t session_expires_of(const struct sip_msg *msg)
{
    /* RFC 4028 §4: "Session-Expires: 1800;refresher=uac"; absent means no session timer. */
    struct slice v = sip_msg_header(msg, SIP_HDR_SESSION_EXPIRES);
    uint32_t secs = 0;
    size_t n = 0;

    while (n < v.len && v.p[n] != ';' && v.p[n] != ' ' && v.p[n] != '\t')
        n++;
    if (slice_to_u32(slice_make(v.p, n), &secs) != 0)
        return 0;
    return secs;
}

static void answer(struct sip_dialog_table *tbl, struct sip_dialog *d, const struct sip_msg *msg,
                   const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_CALL_ANSWER, .time_ns = now, .msg = msg, .pkt = pkt};

    confirm_dialog(d, msg->to_tag);
    d->t_answer = now;
    d->t_refresh = now;
    d->session_expires = session_expires_of(msg);
    if (tbl->keep == SIP_DIALOG_KEEP_CDR)
        call_cdr_answer(&d->cdr, msg);
    ev.code = msg->status;
    ev.delay = delay_between(d->t_start, now, &ev.flags);
    emit(tbl, &ev, d);
    set_state(tbl, d, SIP_DIALOG_CONFIRMED, now);
    rearm(tbl, d);
}

/* How a call ends on the final failure code (300 to 699) of its INVITE. */
static enum sip_dialog_end end_of_failure(uint16_t code)
{
    if (code < 400)
        return SIP_END_REDIRECTED;
    return code == 487 ? SIP_END_CANCEL : SIP_END_REJECTED;
}

void sip_dialog_on_invite_response(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                   const struct sip_txn *txn, const struct sip_msg *msg,
                                   const struct packet *pkt, bool first_final, uint64_t now)
{
    uint16_t code = msg->status;
    bool decided = d->flags & SIP_DIALOG_F_OUTCOME;

    if (code < 200) {
        /* A provisional after the call ended (timed out, hung up early) rings nothing. */
        if (code == 100 || d->state == SIP_DIALOG_ENDED)
            return;
        if (!decided)
            observe_srd(tbl, d, TRACK_SUCCESS, msg, pkt, now);
        /* A losing fork's 180 after the answer is no post-dial delay. */
        if ((code == 180 || code == 183) && !(d->flags & SIP_DIALOG_F_RINGING) && !decided) {
            struct track_event ev = {.type = TRACK_CALL_RINGING, .time_ns = now, .msg = msg,
                                     .pkt = pkt, .code = code};
            d->flags |= SIP_DIALOG_F_RINGING;
            d->t_ringing = now;
            ev.delay = delay_between(d->t_start, now, &ev.flags);
            emit(tbl, &ev, d);
        }
        remember_to_tag(d, msg->to_tag);
        if (msg->to_tag.len && d->state == SIP_DIALOG_TRYING)
            set_state(tbl, d, SIP_DIALOG_EARLY, now);
        return;
    }
    /* Finals: only a transaction's first final can decide the call; later ones are late finals
     * (forks, late 2xx) counted by track. A late 2xx from another fork still creates a dialog
     * that the caller acknowledges and must end (RFC 3261 §13.2.2.4). */
    if (code < 300 && d->state == SIP_DIALOG_CONFIRMED)
        confirm_dialog(d, msg->to_tag);
    if (!first_final || decided)
        return;
    /* A failure of an INVITE that the call's own replaced (a new request, a new CSeq, RFC 3261
     * §8.1.1.5: the retry of a challenge, or the initial INVITE sent again unchallenged) is
     * the final of a request its sender gave up: it decides nothing, not even as another hop's
     * would (join cleared those). A 2xx to it makes a dialog all the same (§13.2.2.4). */
    if (code >= 300 && txn->cseq_low != d->invite_cseq)
        return;
    if (code >= 300 && !(txn->flags & SIP_TXN_F_PRIMARY)) {
        if (!d->copy_failure)
            d->copy_failure = code;
        return;
    }
    remember_to_tag(d, msg->to_tag);
    if (code < 300) {
        observe_srd(tbl, d, TRACK_SUCCESS, msg, pkt, now);
        decide_outcome(tbl, d, code, msg, pkt, now);
        if (d->state != SIP_DIALOG_ENDED)
            answer(tbl, d, msg, pkt, now);
        return;
    }
    if (code == 401 || code == 407) {
        /* Folded into the call if the retry comes within the window (METRICS.md). */
        struct track_event ev = {.type = TRACK_CALL_CHALLENGE, .time_ns = now, .msg = msg,
                                 .pkt = pkt, .code = code};
        emit(tbl, &ev, d);
        d->flags |= SIP_DIALOG_F_CHALLENGED;
        d->challenge_code = code;
        d->t_challenge = now;
        rearm(tbl, d);
        return;
    }
    if (code >= 400)
        observe_srd(tbl, d, TRACK_FAILURE, msg, pkt, now);
    if (tbl->keep == SIP_DIALOG_KEEP_CDR && d->state != SIP_DIALOG_ENDED)
        call_cdr_final(&d->cdr, msg); /* the final that ends it answers for the other side */
    decide_outcome(tbl, d, code, msg, pkt, now);
    end_call(tbl, d, end_of_failure(code), msg, pkt, now);
}

void sip_dialog_on_cancel(struct sip_dialog_table *tbl, struct sip_dialog *d,
                          const struct sip_msg *msg)
{
    d->flags |= SIP_DIALOG_F_CANCELLED;
    /* A CANCEL that crossed the 2xx does not end the call (RFC 3261 §9.2): its cause is not
     * the call's, even if no BYE comes to replace it. */
    if (tbl->keep == SIP_DIALOG_KEEP_CDR && d->state != SIP_DIALOG_ENDED && !d->t_answer)
        call_cdr_reason(&d->cdr, msg);
}

bool sip_dialog_on_request(struct sip_dialog_table *tbl, struct sip_dialog *d, struct sip_txn *txn,
                           const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    if (msg->method == SIP_METHOD_ACK) {
        /* An ACK to a 2xx is a transaction of its own, named by its top Via (RFC 3261
         * §17.1.1.3). Its retransmission repeats it whole: the UAC passes the same ACK to the
         * transport again for each copy of the 2xx (§13.2.2.4). A proxy forwards it under a
         * branch of its own, so its copy on another hop is no retransmission, as an INVITE's
         * copy is not. ACKs to the 2xx of two forks differ in To-tag; without a branch (RFC
         * 2543), each hop's sent-by tells them apart. */
        struct slice via = msg->via_branch.len ? msg->via_branch : msg->via_sent_by;
        uint64_t h = slice_hash(via, (uint64_t)tag_hash(msg->to_tag) << 32 ^ msg->cseq);
        uint16_t fp = (uint16_t)((h ^ h >> 32) % 65535 + 1); /* never 0 */
        if (d->ack_seen[0] == fp || d->ack_seen[1] == fp)
            return true;
        d->ack_seen[1] = d->ack_seen[0];
        d->ack_seen[0] = fp;
        return false;
    }
    if (txn)
        sip_dialog_own(tbl, txn, d);
    if (d->state == SIP_DIALOG_ENDED)
        return false;
    if (msg->method == SIP_METHOD_BYE) {
        /* The callee's tag is whichever of From and To names one of the call's dialogs; the
         * BYE came from the callee when it is From. Where neither does (the 2xx was not seen),
         * the call's key says: it is the caller's tag. */
        bool from_callee = false;
        int slot = dialog_slot(d, msg->to_tag, false);
        if (slot < 0) {
            slot = dialog_slot(d, msg->from_tag, false);
            from_callee = slot >= 0;
        }
        if (slot < 0) {
            struct sip_dialog_key key;
            sip_dialog_key(msg->call_id, msg->from_tag, &key);
            from_callee = key.hash != d->node.hash || key.check != d->node.check;
        }
        /* While another fork's dialog goes on, a BYE ends only its own: the first copy clears
         * its bit, and a copy of it seen on another hop (or a BYE for a fork never answered)
         * finds the bit clear and ends nothing either. */
        if (slot >= 0 && (d->confirmed_tags & ~(1u << slot))) {
            d->confirmed_tags &= (uint8_t) ~(1u << slot);
            return false;
        }
        if (txn)
            txn->flags |= SIP_TXN_F_ENDING_BYE;
        if (from_callee)
            d->flags |= SIP_DIALOG_F_BYE_CALLEE;
        if (tbl->keep == SIP_DIALOG_KEEP_CDR)
            call_cdr_reason(&d->cdr, msg);
        end_call(tbl, d, SIP_END_BYE, msg, pkt, now);
        if (txn) /* kept for the BYE's final, its disconnect delay */
            table_set_class(&tbl->t, table_index(&tbl->t, d), SIP_DIALOG_CLASS_BYE_PENDING);
    } else if (msg->method == SIP_METHOD_INVITE || msg->method == SIP_METHOD_UPDATE) {
        struct track_event ev = {.type = TRACK_CALL_REFRESH, .time_ns = now, .msg = msg,
                                 .pkt = pkt, .method = msg->method};
        /* Either side refreshes, each with CSeqs of its own; the low bit keeps 0 for none. */
        uint16_t fp =
            (uint16_t)(((tag_hash(msg->from_tag) ^ (msg->cseq * 0x9e3779b1u)) >> 16) | 1u);
        if (txn)
            txn->flags |= SIP_TXN_F_REFRESH; /* a copy's final too is the refresh's */
        if (d->refresh_seen != fp) {
            d->refresh_seen = fp;
            emit(tbl, &ev, d);
        }
    }
    return false;
}

void sip_dialog_on_in_dialog_final(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                   struct sip_txn *txn, const struct sip_msg *msg,
                                   const struct packet *pkt, uint16_t code, uint64_t now)
{
    if (txn->flags & SIP_TXN_F_ENDING_BYE) {
        /* RFC 6076 §4.4: BYE to its 2xx is a success; any other final, or none, a failure. */
        struct track_event ev = {.type = TRACK_CALL_DISCONNECT, .time_ns = now, .msg = msg,
                                 .pkt = pkt, .code = code};
        ev.outcome = (code >= 200 && code < 300) ? TRACK_SUCCESS : TRACK_FAILURE;
        ev.delay = delay_between(txn->t_first, now, &ev.flags);
        emit(tbl, &ev, d);
        if (d->node.cls == SIP_DIALOG_CLASS_BYE_PENDING)
            table_set_class(&tbl->t, table_index(&tbl->t, d), SIP_DIALOG_CLASS_ENDED);
        return;
    }
    /* In an early dialog (an UPDATE or PRACK before the answer) a 481 or 408 ends only that
     * early dialog: the INVITE goes on and its final decides the call. */
    if (!(txn->flags & SIP_TXN_F_REFRESH) || d->state != SIP_DIALOG_CONFIRMED)
        return;
    if (code >= 200 && code < 300) {
        d->t_refresh = now;
        d->session_expires = session_expires_of(msg);
        rearm(tbl, d);
    } else if (code == 481) {
        end_call(tbl, d, SIP_END_REJECTED, msg, pkt, now); /* RFC 3261 §12.2.1.2 */
    } else if (code == 408 || (code == 0 && !(txn->flags & SIP_TXN_F_CANCEL_OK))) {
        /* Not a re-INVITE whose CANCEL got a 2xx and whose 487 never came: its UAC gave it up
         * (RFC 3261 §9.1), and the session goes on as it was. */
        end_call(tbl, d, SIP_END_TIMEOUT, msg, pkt, now);
    }
}

void sip_dialog_on_cancel_answered(struct sip_dialog *d)
{
    d->flags |= SIP_DIALOG_F_CANCEL_OK;
}

void sip_dialog_on_invite_timeout(struct sip_dialog_table *tbl, struct sip_dialog *d,
                                  uint64_t now)
{
    /* Another hop may have answered already: then this transaction's silence decides nothing. */
    if (d->flags & (SIP_DIALOG_F_OUTCOME | SIP_DIALOG_F_CHALLENGED))
        return;
    /* The caller gave up and the callee agreed: the 487 that is owed, lost on the way or never
     * sent, is the outcome, whatever another hop said (RFC 3261 §9.1: the UAC then takes the
     * INVITE for cancelled). Not a timeout: the session did not fail, it was abandoned. */
    if (d->flags & SIP_DIALOG_F_CANCEL_OK) {
        decide_outcome(tbl, d, 487, NULL, NULL, now);
        end_call(tbl, d, SIP_END_CANCEL, NULL, NULL, now);
        return;
    }
    if (d->copy_failure) { /* what the other hop said is all there is */
        uint16_t code = d->copy_failure;
        decide_outcome(tbl, d, code, NULL, NULL, now);
        end_call(tbl, d, end_of_failure(code), NULL, NULL, now);
        return;
    }
    decide_outcome(tbl, d, 0, NULL, NULL, now);
    end_call(tbl, d,
             (d->flags & SIP_DIALOG_F_CANCELLED) ? SIP_END_CANCEL : SIP_END_TIMEOUT, NULL, NULL,
             now);
}

bool sip_dialog_run_timer(struct sip_dialog_table *tbl, uint64_t now)
{
    uint32_t idx = table_due(&tbl->t, now);
    struct sip_dialog *d;
    uint64_t due;

    if (idx == TABLE_NONE)
        return false;
    d = table_entry(&tbl->t, idx);
    due = d->node.deadline;
    if ((d->flags & SIP_DIALOG_F_CHALLENGED) &&
        add_sat(d->t_challenge, tbl->timers.retry_window) <= due) {
        /* No retry: the challenge is the outcome and the call is rejected. */
        decide_outcome(tbl, d, d->challenge_code, NULL, NULL, due);
        end_call(tbl, d, SIP_END_REJECTED, NULL, NULL, due);
        rearm(tbl, d);
    } else if (d->state == SIP_DIALOG_ENDED) {
        /* A call that ended before its INVITE had a final (a BYE or an error in an early
         * dialog) and got none while it lingered: its INVITE may wait for Timer C longer than
         * the call is kept, so its outcome is decided now: a failure another hop saw, else
         * none (timeout, METRICS.md). */
        if (!(d->flags & SIP_DIALOG_F_OUTCOME))
            decide_outcome(tbl, d, d->copy_failure, NULL, NULL, due);
        table_remove(&tbl->t, idx);
    } else if (add_sat(d->t_start, tbl->timers.max_age) <= due) {
        end_call(tbl, d, SIP_END_MAX_AGE, NULL, NULL, due);
    } else {
        /* The session ended when its interval ran out without a refresh (RFC 4028 §10: the UAs
         * then end it), due - expiry_grace; the grace is only sipscope's wait for a refresh or
         * a BYE late on the wire. So the duration (RFC 6076 §4.5), the end time of the events
         * line and rules' d.end_time stop there, as one. */
        end_call(tbl, d, SIP_END_EXPIRED, NULL, NULL,
                 add_sat(d->t_refresh, (uint64_t)d->session_expires * NS_PER_S));
    }
    return true;
}
