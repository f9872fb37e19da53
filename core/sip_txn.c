/* sip_txn: transaction keys, lookup, response fingerprints and the bounded table. */
#include "sip_txn.h"

#include <string.h>

/* RFC 3261 §8.1.1.7: a branch starting with the magic cookie is unique per transaction. */
static const struct slice magic_cookie = {"z9hG4bK", 7};

#define SEED_TXN 0x5151a11ceULL

int sip_txn_init(struct sip_txn_table *tbl, uint32_t cap)
{
    tbl->evictions = 0;
    return table_init(&tbl->t, sizeof(struct sip_txn), cap);
}

void sip_txn_fini(struct sip_txn_table *tbl)
{
    table_fini(&tbl->t);
}

static bool has_cookie(struct slice branch)
{
    return branch.len > magic_cookie.len && memcmp(branch.p, magic_cookie.p, magic_cookie.len) == 0;
}

void sip_txn_key(const struct sip_msg *msg, enum sip_method method, struct sip_txn_key *key)
{
    struct hash2 h = hash2_start(SEED_TXN ^ ((uint64_t)method << 56));

    hash2_add(&h, msg->via_sent_by);
    hash2_add(&h, msg->via_branch);
    if (!has_cookie(msg->via_branch)) {
        /* RFC 2543 peers: the branch (if any) is not unique, so identify the transaction by
         * dialog identifiers and CSeq. The Request-URI of §17.2.3 is left out on purpose: a
         * response does not carry it, and responses must find their transaction. */
        hash2_add(&h, msg->call_id);
        hash2_add(&h, msg->from_tag);
        hash2_add_u64(&h, msg->cseq);
    }
    hash2_finish(&h, &key->hash, &key->check);
}

struct sip_txn *sip_txn_find(struct sip_txn_table *tbl, const struct sip_txn_key *key)
{
    uint32_t idx = table_lookup(&tbl->t, key->hash, key->check);
    return idx == TABLE_NONE ? NULL : table_entry(&tbl->t, idx);
}

struct sip_txn *sip_txn_create(struct sip_txn_table *tbl, const struct sip_txn_key *key,
                               enum sip_method method, uint64_t now)
{
    uint32_t idx = table_insert(&tbl->t, key->hash, key->check, SIP_TXN_CLASS_LIVE);
    struct sip_txn *txn;

    if (idx == TABLE_NONE) {
        uint32_t victim = table_oldest(&tbl->t, SIP_TXN_CLASS_DONE);
        if (victim == TABLE_NONE)
            victim = table_oldest(&tbl->t, SIP_TXN_CLASS_LIVE);
        if (victim == TABLE_NONE)
            victim = table_oldest(&tbl->t, SIP_TXN_CLASS_PROCEEDING_INVITE);
        table_remove(&tbl->t, victim);
        tbl->evictions++;
        idx = table_insert(&tbl->t, key->hash, key->check, SIP_TXN_CLASS_LIVE);
    }
    txn = table_entry(&tbl->t, idx);
    txn->t_first = now;
    txn->method = (uint8_t)method;
    txn->state = SIP_TXN_CALLING;
    return txn;
}

bool sip_txn_response_seen(struct sip_txn *txn, const struct sip_msg *msg)
{
    /* RFC 3262: reliable provisionals differ by RSeq; a retransmission repeats it. */
    struct slice rseq = sip_msg_header(msg, SIP_HDR_RSEQ);
    uint64_t h = hash_mix(slice_hash(msg->to_tag, msg->status), slice_hash(rseq, 0));
    uint32_t fp = (uint32_t)(h ^ (h >> 32)) | 1; /* never 0 */

    bool final = msg->status >= 200;
    unsigned slot;

    for (uint8_t i = 0; i < txn->n_responses; i++)
        if (txn->responses[i] == fp)
            return true;
    if (txn->n_responses < SIP_TXN_MAX_RESPONSES) {
        slot = txn->n_responses++;
    } else {
        /* Full: the newest provisional gives way; among finals only, the last one does. */
        slot = SIP_TXN_MAX_RESPONSES - 1;
        while (slot > 0 && (txn->final_slots & (1u << slot)))
            slot--;
        if (txn->final_slots & (1u << slot)) {
            if (!final)
                return false;
            slot = SIP_TXN_MAX_RESPONSES - 1;
        }
    }
    txn->responses[slot] = fp;
    if (final)
        txn->final_slots |= (uint8_t)(1u << slot);
    else
        txn->final_slots &= (uint8_t) ~(1u << slot);
    return false;
}

void sip_txn_proceeding(struct sip_txn_table *tbl, struct sip_txn *txn)
{
    table_set_class(&tbl->t, table_index(&tbl->t, txn), SIP_TXN_CLASS_PROCEEDING_INVITE);
}

void sip_txn_finish(struct sip_txn_table *tbl, struct sip_txn *txn, enum sip_txn_state state)
{
    txn->state = (uint8_t)state;
    table_set_class(&tbl->t, table_index(&tbl->t, txn), SIP_TXN_CLASS_DONE);
}

struct sip_txn *sip_txn_due(struct sip_txn_table *tbl, uint64_t now)
{
    uint32_t idx = table_due(&tbl->t, now);
    return idx == TABLE_NONE ? NULL : table_entry(&tbl->t, idx);
}

void sip_txn_set_deadline(struct sip_txn_table *tbl, struct sip_txn *txn, uint64_t deadline,
                          enum sip_txn_timer timer)
{
    table_set_deadline_lane(&tbl->t, table_index(&tbl->t, txn), deadline, (unsigned)timer);
}

void sip_txn_remove(struct sip_txn_table *tbl, struct sip_txn *txn)
{
    table_remove(&tbl->t, table_index(&tbl->t, txn));
}
