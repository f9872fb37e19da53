/* sip_reg: REGISTER attempts with challenge folding, and the binding table with expiry. */
#include "sip_reg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sip_uri.h"

#define SEED_ATTEMPT 0x4e6157e7ULL
#define SEED_BINDING 0xb1d1ULL
#define SEED_AOR 0xa02ULL
#define NS_PER_S 1000000000ULL
#define AOR_MIN_BUCKETS 1024u

static const char *const change_names[SIP_BINDING_CHANGE_COUNT] = {
    "added", "refreshed", "removed", "expired", "evicted",
};

const char *sip_binding_change_name(enum sip_binding_change c)
{
    return c < SIP_BINDING_CHANGE_COUNT ? change_names[c] : "unknown";
}

int sip_reg_init(struct sip_reg_table *reg, uint32_t cap, uint64_t retry_window, uint64_t timer_f,
                 const struct track_sink *sink)
{
    int err;

    memset(reg, 0, sizeof(*reg));
    reg->retry_window = retry_window;
    reg->timer_f = timer_f;
    reg->sink = *sink;
    err = table_init(&reg->attempts, sizeof(struct sip_reg_attempt), cap);
    if (!err)
        err = table_init(&reg->bindings, sizeof(struct sip_binding), cap);
    if (!err) {
        reg->aor_max_mask = reg->bindings.max_mask;
        reg->aor_mask = reg->aor_max_mask < AOR_MIN_BUCKETS - 1 ? reg->aor_max_mask
                                                                : AOR_MIN_BUCKETS - 1;
        reg->aor_buckets = calloc((size_t)reg->aor_max_mask + 1, sizeof(uint32_t));
        if (!reg->aor_buckets)
            err = -ENOMEM;
    }
    if (err)
        sip_reg_fini(reg);
    return err;
}

void sip_reg_fini(struct sip_reg_table *reg)
{
    table_fini(&reg->attempts);
    table_fini(&reg->bindings);
    free(reg->aor_buckets);
    reg->aor_buckets = NULL;
}

struct slice sip_binding_aor(const struct sip_binding *b)
{
    return slice_make(b->text, b->aor_len);
}

struct slice sip_binding_contact(const struct sip_binding *b)
{
    return slice_make(b->text + SIP_BINDING_AOR_MAX, b->contact_len);
}

/* Keys compare URIs as RFC 3261 does, not byte for byte (sip_uri.h): the AoR in its canonical
 * form (§10.3 step 5: parameters removed, escapes decoded, host case ignored), a contact by the
 * URI rules of §19.1.4 (the binding a REGISTER refreshes or removes is the one whose contact URI
 * is equal, §10.3 step 7). */

/* An attempt's key, (Call-ID, To URI as an AoR: aor_key's), as table hash and check. */
static void attempt_key(const struct sip_msg *msg, uint64_t aor, uint64_t *hash, uint64_t *check)
{
    struct hash2 h = hash2_start(SEED_ATTEMPT);
    hash2_add(&h, msg->call_id);
    hash2_add_u64(&h, aor);
    hash2_finish(&h, hash, check);
}

/* A binding's key, (AoR, Contact), as table hash and check. removal_id names the binding among
 * an attempt's removals. */
static void binding_key(uint64_t aor_hash, struct slice contact, uint64_t *hash, uint64_t *check)
{
    struct hash2 h = hash2_start(SEED_BINDING);
    hash2_add_u64(&h, aor_hash);
    sip_uri_hash(&h, contact, SIP_URI_FULL);
    hash2_finish(&h, hash, check);
}

/* 32 bits of both halves of a binding's key: contacts crafted to collide in one half (see
 * hash2 in slice.h) still differ in the other. */
static uint32_t removal_id(uint64_t hash, uint64_t check)
{
    return (uint32_t)(hash ^ (check >> 32));
}

/* The AoR's identity: the first half of its key (the bindings keep 64 bits of it). */
static uint64_t aor_key(struct slice aor)
{
    struct hash2 h = hash2_start(SEED_AOR);
    uint64_t hash, check;
    sip_uri_hash(&h, aor, SIP_URI_AOR);
    hash2_finish(&h, &hash, &check);
    return hash;
}

/* Expiry values are "delta-seconds" (RFC 3261 §20.19, §20.10); an absurd value is clamped. */
static uint32_t parse_expires(struct slice v, uint32_t fallback)
{
    uint32_t secs;
    int err = slice_to_u32(slice_trim(v), &secs);
    if (err == -ERANGE)
        return (uint32_t)INT32_MAX; /* all digits but too big: clamp */
    return err ? fallback : secs;
}

static void emit_binding(struct sip_reg_table *reg, const struct sip_binding *b,
                         enum sip_binding_change change, const struct sip_msg *msg,
                         const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_REG_BINDING, .time_ns = now, .msg = msg, .pkt = pkt};
    ev.reason = (uint8_t)change;
    ev.binding = b;
    ev.labels = b->labels;
    reg->sink.emit(reg->sink.ctx, &ev);
}

static void emit_outcome(struct sip_reg_table *reg, const struct sip_reg_attempt *a, uint16_t code,
                         const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    struct track_event ev = {.type = TRACK_REG_OUTCOME, .time_ns = now, .msg = msg, .pkt = pkt};
    ev.code = code;
    ev.labels = a->labels;
    if (code >= 200 && code < 300) {
        if (now < a->t_first)
            ev.flags |= TRACK_F_NEGATIVE_DELAY;
        else
            ev.delay = (double)(now - a->t_first) / 1e9;
    }
    reg->sink.emit(reg->sink.ctx, &ev);
}

static struct sip_reg_attempt *attempt_of(struct sip_reg_table *reg, const struct sip_txn *txn)
{
    struct sip_reg_attempt *a;
    if (txn->owner_kind != SIP_TXN_OWNER_REGISTER)
        return NULL;
    a = table_entry(&reg->attempts, txn->owner);
    return (a->node.in_use && a->node.gen == txn->owner_gen) ? a : NULL;
}

static void own(struct sip_reg_table *reg, struct sip_txn *txn, const struct sip_reg_attempt *a)
{
    txn->owner_kind = SIP_TXN_OWNER_REGISTER;
    txn->owner = table_index(&reg->attempts, a);
    txn->owner_gen = a->node.gen;
    memcpy(txn->labels, a->labels, sizeof(txn->labels));
}

/* The attempt a REGISTER with this key and CSeq belongs to: a challenged one whose retry it is
 * (within the window), or one waiting for its final that it copies (*copy set): the same
 * REGISTER forwarded by a proxy under a branch of its own. RFC 3261 §10.2: every REGISTER of a
 * Call-ID has a CSeq of its own, so the same key and CSeq is the same request. NULL: a new
 * attempt. */
static struct sip_reg_attempt *find_attempt(struct sip_reg_table *reg, uint64_t hash,
                                            uint64_t check, uint32_t cseq, uint64_t now, bool *copy,
                                            uint32_t *n_key, uint32_t *oldest)
{
    *n_key = 0;
    *oldest = TABLE_NONE;
    for (uint32_t i = table_lookup(&reg->attempts, hash, check); i != TABLE_NONE;
         i = table_lookup_next(&reg->attempts, i)) {
        struct sip_reg_attempt *a = table_entry(&reg->attempts, i);
        if (a->challenged ? now <= a->t_challenge + reg->retry_window : a->cseq == cseq) {
            *copy = !a->challenged;
            return a;
        }
        (*n_key)++;
        *oldest = i; /* newest first */
    }
    return NULL;
}

/* The items of a message's Contact headers, in order: start with *h = 0 and *pos = 0. */
struct contact_iter {
    const struct sip_msg *msg;
    uint32_t h;
    size_t pos;
};

static bool contact_next(struct contact_iter *it, struct slice *item)
{
    for (; it->h < it->msg->n_headers; it->h++, it->pos = 0) {
        if (it->msg->headers[it->h].id == SIP_HDR_CONTACT &&
            sip_list_next(it->msg->headers[it->h].value, &it->pos, item))
            return true;
    }
    return false;
}

/* What the REGISTER asks: the removals (RFC 3261 §10.2.2 "Contact: *" with "Expires: 0", or
 * contacts with expires=0; the 2xx lists only the bindings that remain, so the request is the
 * only place that names the removed ones), and the expiry each other contact asks for. */
static void note_contacts(struct sip_reg_attempt *a, const struct sip_msg *msg, uint64_t aor)
{
    a->n_asked = 0;
    a->remove_all = 0;
    a->removals_cut = 0;
    struct contact_iter it = {msg, 0, 0};
    struct slice item;

    while (contact_next(&it, &item)) {
        struct slice val;
        uint32_t expires = a->req_expires;
        if (item.len == 1 && item.p[0] == '*') {
            if (a->req_expires == 0)
                a->remove_all = 1;
            continue;
        }
        bool own = sip_header_param(item, SLICE_LIT("expires"), &val);
        if (own)
            expires = parse_expires(val, a->req_expires);
        if (expires != 0 && !own)
            continue; /* the request's Expires header, kept in req_expires */
        if (a->n_asked < SIP_REG_MAX_ASKED) {
            uint64_t hash, check;
            binding_key(aor, sip_addr_uri(item), &hash, &check);
            a->asked[a->n_asked] = removal_id(hash, check);
            a->asked_expires[a->n_asked++] = expires;
        } else if (expires == 0) {
            a->removals_cut = 1;
        }
    }
}

/* Ends an attempt that no final will end: a challenge left without retry is its outcome, else
 * a failure seen on another hop, else timeout. */
static void attempt_give_up(struct sip_reg_table *reg, struct sip_reg_attempt *a, uint64_t when)
{
    emit_outcome(reg, a, a->challenged ? a->challenge_code : a->copy_failure, NULL, NULL, when);
    table_remove(&reg->attempts, table_index(&reg->attempts, a));
}

void sip_reg_on_request(struct sip_reg_table *reg, struct sip_txn *txn, const struct sip_msg *msg,
                        const struct packet *pkt, uint64_t now)
{
    uint64_t hash, check, aor = aor_key(msg->to_uri);
    attempt_key(msg, aor, &hash, &check);
    bool copy = false;
    uint32_t n_key, oldest, idx;
    struct sip_reg_attempt *a =
        find_attempt(reg, hash, check, msg->cseq, now, &copy, &n_key, &oldest);

    if (a && copy) {
        /* Another hop's copy: one attempt, as an INVITE's copy is one call. Its transaction
         * is not the attempt's own (no SIP_TXN_F_PRIMARY), and the request is the same. */
        own(reg, txn, a);
        return;
    }
    if (a) {
        a->challenged = 0;
        a->copy_failure = 0; /* what the copies of the challenged REGISTER said is past */
    } else {
        struct track_event ev = {.type = TRACK_REG_ATTEMPT, .time_ns = now, .msg = msg,
                                 .pkt = pkt, .method = SIP_METHOD_REGISTER};
        /* RFC 3261 §10.2 allows a UA one REGISTER at a time: more waiting on one Call-ID and
         * AoR are a flood, whose attempts all share one key, so that each lookup walked them
         * all. The oldest of the key gives way as if evicted; a key's attempts stay few. */
        if (n_key >= SIP_REG_MAX_PER_KEY) {
            attempt_give_up(reg, table_entry(&reg->attempts, oldest), now);
            reg->attempt_evictions++;
        }
        idx = table_insert(&reg->attempts, hash, check, 0);
        if (idx == TABLE_NONE) {
            /* Full: the oldest attempt still waiting gives way, with the outcome it has so far
             * (its challenge, else timeout): its transaction will no longer find it. */
            struct sip_reg_attempt *old = table_entry(&reg->attempts,
                                                      table_oldest(&reg->attempts, 0));
            attempt_give_up(reg, old, now);
            reg->attempt_evictions++;
            idx = table_insert(&reg->attempts, hash, check, 0);
        }
        a = table_entry(&reg->attempts, idx);
        a->t_first = now;
        if (reg->sink.label)
            reg->sink.label(reg->sink.ctx, msg, pkt, a->labels);
        ev.labels = a->labels;
        reg->sink.emit(reg->sink.ctx, &ev);
    }
    /* The transaction ends the attempt: with its final, or with its timeout at Timer F from
     * this REGISTER (track sets it from --timer-f when it creates the transaction, here at the
     * same now; provisionals do not extend a non-INVITE, RFC 3261 §17.1.2.2). This deadline is
     * only for an attempt whose transaction a full table evicted, which would otherwise wait
     * without an outcome, so it must come after that Timer F whatever --timer-f and --timer-t1
     * say: earlier, it would give a timeout to an attempt whose final may still come. Timer F
     * plus the retry window (64*T1) keeps it strictly later (128*T1 with the default timers). */
    table_set_deadline(&reg->attempts, table_index(&reg->attempts, a),
                       now + reg->timer_f + reg->retry_window);
    a->req_expires = parse_expires(sip_msg_header(msg, SIP_HDR_EXPIRES), UINT32_MAX);
    a->cseq = msg->cseq;
    note_contacts(a, msg, aor);
    own(reg, txn, a);
    txn->flags |= SIP_TXN_F_PRIMARY;
}

/* Doubles the AoR buckets in use: each chain splits into its bucket and the one half the new
 * size above it, keeping its order (newest first), which is the order in which Contact: *
 * reports the removed bindings. */
static void aor_grow(struct sip_reg_table *reg)
{
    uint32_t old = reg->aor_mask + 1;

    for (uint32_t i = 0; i < old; i++) {
        uint32_t idx = reg->aor_buckets[i] - 1;
        struct sip_binding *tail[2] = {NULL, NULL}; /* of the chain staying, of the one moving */
        reg->aor_buckets[i] = 0;
        while (idx != TABLE_NONE) {
            struct sip_binding *b = table_entry(&reg->bindings, idx);
            uint32_t next = b->aor_next;
            int up = (b->aor_hash & old) != 0;
            if (tail[up])
                tail[up]->aor_next = idx;
            else
                reg->aor_buckets[up ? i + old : i] = idx + 1;
            tail[up] = b;
            b->aor_next = TABLE_NONE;
            idx = next;
        }
    }
    reg->aor_mask = 2 * old - 1;
}

static void aor_link(struct sip_reg_table *reg, struct sip_binding *b)
{
    if (reg->bindings.used > (reg->aor_mask + 1) / 2 && reg->aor_mask < reg->aor_max_mask)
        aor_grow(reg);
    uint32_t *bucket = &reg->aor_buckets[b->aor_hash & reg->aor_mask];
    b->aor_next = *bucket - 1;
    *bucket = table_index(&reg->bindings, b) + 1;
}

static void aor_unlink(struct sip_reg_table *reg, struct sip_binding *b)
{
    uint32_t idx = table_index(&reg->bindings, b);
    uint32_t *bucket = &reg->aor_buckets[b->aor_hash & reg->aor_mask];

    if (*bucket == idx + 1) {
        *bucket = b->aor_next + 1;
        return;
    }
    for (uint32_t i = *bucket - 1; i != TABLE_NONE;) {
        struct sip_binding *prev = table_entry(&reg->bindings, i);
        if (prev->aor_next == idx) {
            prev->aor_next = b->aor_next;
            return;
        }
        i = prev->aor_next;
    }
}

static void binding_drop(struct sip_reg_table *reg, struct sip_binding *b,
                         enum sip_binding_change why, const struct sip_msg *msg,
                         const struct packet *pkt, uint64_t now)
{
    emit_binding(reg, b, why, msg, pkt, now);
    aor_unlink(reg, b);
    table_remove(&reg->bindings, table_index(&reg->bindings, b));
}

static struct sip_binding *binding_find(struct sip_reg_table *reg, uint64_t hash, uint64_t check)
{
    uint32_t idx = table_lookup(&reg->bindings, hash, check);
    return idx == TABLE_NONE ? NULL : table_entry(&reg->bindings, idx);
}

static void copy_text(char *dst, uint8_t *len, struct slice src, size_t max, uint8_t *truncated)
{
    size_t n = src.len;
    if (n > max) { /* not inside a character: a cut one would read as U+FFFD */
        n = slice_utf8_cut(src.p, n, max);
        *truncated = 1;
    }
    if (n) /* an absent value is an empty slice with a NULL pointer */
        memcpy(dst, src.p, n);
    *len = (uint8_t)n;
}

/* Adds or refreshes the binding of contact (its key hash, check) to the AoR aor. */
static void binding_set(struct sip_reg_table *reg, const struct sip_reg_attempt *a, uint64_t aor,
                        struct slice contact, uint64_t hash, uint64_t check, uint32_t expires,
                        const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    struct sip_binding *b = binding_find(reg, hash, check);
    enum sip_binding_change change = SIP_BINDING_REFRESHED;
    uint32_t idx;

    if (!b) {
        idx = table_insert(&reg->bindings, hash, check, 0);
        if (idx == TABLE_NONE) {
            binding_drop(reg, table_entry(&reg->bindings, table_oldest(&reg->bindings, 0)),
                         SIP_BINDING_EVICTED, msg, pkt, now);
            reg->binding_evictions++;
            idx = table_insert(&reg->bindings, hash, check, 0);
        }
        b = table_entry(&reg->bindings, idx);
        b->aor_hash = aor;
        b->t_registered = now;
        memcpy(b->labels, a->labels, sizeof(b->labels));
        copy_text(b->text, &b->aor_len, msg->to_uri, SIP_BINDING_AOR_MAX, &b->truncated);
        copy_text(b->text + SIP_BINDING_AOR_MAX, &b->contact_len, contact,
                  SIP_BINDING_CONTACT_MAX, &b->truncated);
        aor_link(reg, b);
        change = SIP_BINDING_ADDED;
    }
    b->t_refreshed = now;
    b->expires = expires;
    b->expires_at = now + (uint64_t)expires * NS_PER_S;
    table_set_deadline(&reg->bindings, table_index(&reg->bindings, b), b->expires_at);
    emit_binding(reg, b, change, msg, pkt, now);
}

static void remove_listed(struct sip_reg_table *reg, const struct sip_reg_attempt *a, uint64_t aor,
                          const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    uint32_t *bucket = &reg->aor_buckets[aor & reg->aor_mask];
    uint32_t i = *bucket - 1;

    while (i != TABLE_NONE) {
        struct sip_binding *b = table_entry(&reg->bindings, i);
        bool drop = false;
        i = b->aor_next;
        if (b->aor_hash != aor)
            continue;
        drop = a->remove_all;
        for (uint8_t r = 0; r < a->n_asked && !drop; r++)
            drop = a->asked_expires[r] == 0 &&
                   a->asked[r] == removal_id(b->node.hash, b->node.check);
        if (drop)
            binding_drop(reg, b, SIP_BINDING_REMOVED, msg, pkt, now);
    }
}

#define LISTED_MAX 64

/* More removals than an attempt remembers: every binding of the AoR that the 2xx does not list
 * is gone (RFC 3261 §10.3 step 8: the 2xx lists them all). By the 2xx's own list, not by refresh
 * time: another REGISTER's 2xx at the same instant refreshed its binding too. A 2xx listing more
 * than LISTED_MAX contacts removes nothing this way. */
static void remove_unlisted(struct sip_reg_table *reg, uint64_t aor, const struct sip_msg *msg,
                            const struct packet *pkt, uint64_t now)
{
    uint32_t listed[LISTED_MAX], n = 0;
    uint32_t i;

    struct contact_iter it = {msg, 0, 0};
    struct slice item;

    while (contact_next(&it, &item)) {
        uint64_t hash, check;
        if (n == LISTED_MAX)
            return;
        binding_key(aor, sip_addr_uri(item), &hash, &check);
        listed[n++] = removal_id(hash, check);
    }
    i = reg->aor_buckets[aor & reg->aor_mask] - 1;
    while (i != TABLE_NONE) {
        struct sip_binding *b = table_entry(&reg->bindings, i);
        bool keep = false;
        i = b->aor_next;
        if (b->aor_hash != aor)
            continue;
        for (uint32_t k = 0; k < n && !keep; k++)
            keep = listed[k] == removal_id(b->node.hash, b->node.check);
        if (!keep)
            binding_drop(reg, b, SIP_BINDING_REMOVED, msg, pkt, now);
    }
}

/* The expiry a 2xx contact without one of its own gets: the 2xx's Expires header, else what
 * the request asked for this contact (0 included: a contact the request removed and the 2xx
 * echoes without an expiry stays removed), else the request's Expires header (UINT32_MAX:
 * none). id is the contact's removal_id. */
static uint32_t asked_expiry(const struct sip_reg_attempt *a, uint32_t hdr_expires, uint32_t id,
                             bool has_hdr)
{
    if (has_hdr)
        return hdr_expires;
    for (uint8_t r = 0; r < a->n_asked; r++)
        if (a->asked[r] == id)
            return a->asked_expires[r];
    return hdr_expires;
}

static void apply_bindings(struct sip_reg_table *reg, const struct sip_reg_attempt *a,
                           const struct sip_msg *msg, const struct packet *pkt, uint64_t now)
{
    uint64_t aor = aor_key(msg->to_uri);
    struct slice hdr = sip_msg_header(msg, SIP_HDR_EXPIRES);
    uint32_t hdr_expires = parse_expires(hdr, a->req_expires);

    if (a->remove_all || a->n_asked)
        remove_listed(reg, a, aor, msg, pkt, now);
    /* RFC 3261 §10.3 step 8: the 2xx lists the AoR's current bindings with their expiry. */
    struct contact_iter it = {msg, 0, 0};
    struct slice item;

    while (contact_next(&it, &item)) {
        struct slice val, uri = sip_addr_uri(item);
        uint32_t expires = hdr_expires;
        uint64_t hash, check;
        struct sip_binding *b;
        if (uri.len == 0)
            continue;
        binding_key(aor, uri, &hash, &check);
        if (sip_header_param(item, SLICE_LIT("expires"), &val))
            expires = parse_expires(val, hdr_expires);
        else
            expires = asked_expiry(a, hdr_expires, removal_id(hash, check), hdr.len != 0);
        if (expires == UINT32_MAX)
            expires = SIP_REG_DEFAULT_EXPIRES;
        if (expires > 0) {
            binding_set(reg, a, aor, uri, hash, check, expires, msg, pkt, now);
            continue;
        }
        if ((b = binding_find(reg, hash, check)) != NULL)
            binding_drop(reg, b, SIP_BINDING_REMOVED, msg, pkt, now);
    }
    if (a->removals_cut)
        remove_unlisted(reg, aor, msg, pkt, now);
}

void sip_reg_on_final(struct sip_reg_table *reg, struct sip_txn *txn, const struct sip_msg *msg,
                      const struct packet *pkt, uint16_t code, uint64_t now)
{
    struct sip_reg_attempt *a = attempt_of(reg, txn);
    uint32_t idx;

    if (!a || a->challenged)
        return;
    if (!(txn->flags & SIP_TXN_F_PRIMARY) && (code < 200 || code >= 300)) {
        /* A copy's failure or silence decides nothing: the proxy may fail over from it (to
         * another registrar), and relays what counts to the attempt's own REGISTER. A 2xx on
         * any hop is the registrar's acceptance. */
        if (code && !a->copy_failure)
            a->copy_failure = code;
        return;
    }
    idx = table_index(&reg->attempts, a);
    if (code == 401 || code == 407) {
        a->challenged = 1;
        a->challenge_code = code;
        a->t_challenge = now;
        table_set_deadline(&reg->attempts, idx, now + reg->retry_window);
        return;
    }
    if (code == 0)
        code = a->copy_failure; /* timed out: what another hop said, if anything */
    emit_outcome(reg, a, code, msg, pkt, now);
    if (code >= 200 && code < 300 && msg)
        apply_bindings(reg, a, msg, pkt, now);
    table_remove(&reg->attempts, idx);
}

uint64_t sip_reg_next_deadline(const struct sip_reg_table *reg)
{
    uint64_t a = table_next_deadline(&reg->attempts), b = table_next_deadline(&reg->bindings);
    return a < b ? a : b;
}

bool sip_reg_run_timer(struct sip_reg_table *reg, uint64_t now)
{
    uint64_t da = table_next_deadline(&reg->attempts), db = table_next_deadline(&reg->bindings);
    uint32_t idx;

    if (da <= db && (idx = table_due(&reg->attempts, now)) != TABLE_NONE) {
        /* No retry came after a challenge, or (its transaction evicted) no final at all. */
        attempt_give_up(reg, table_entry(&reg->attempts, idx), da);
        return true;
    }
    if ((idx = table_due(&reg->bindings, now)) != TABLE_NONE) {
        struct sip_binding *b = table_entry(&reg->bindings, idx);
        binding_drop(reg, b, SIP_BINDING_EXPIRED, NULL, NULL, b->expires_at);
        return true;
    }
    return false;
}
