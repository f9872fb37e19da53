/* bench_memory: what the engine keeps per tracked call, from the structures themselves: the call
 * entry (table node, key hashes, timestamps, state, tags' fingerprints, label ids, and the
 * Call-ID and URI text when events or rules need it), the records a table keeps per entry
 * apart from it (timer, hash chain link, age-list link, heap slot) and its share of the hash
 * index. Prints key=value lines for tests/bench/bench.py, which sets them beside the RSS
 * measured with gen_calls.
 *
 *   bench_memory [CALLS]   (CALLS = the --max-calls capacity, default 1000000) */
#include "sip_dialog.h"
#include "sip_txn.h"
#include "table.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    unsigned long cap = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned long buckets = 1;
    double bucket_share, per_call;

    if (cap == 0 || cap > (1ul << 31)) {
        fprintf(stderr, "usage: bench_memory [CALLS (1..2^31)]\n");
        return 2;
    }
    /* table_init: one uint32 bucket per entry, rounded up to a power of two. */
    while (buckets < cap)
        buckets <<= 1;
    bucket_share = (double)(buckets * sizeof(uint32_t)) / (double)cap;
    /* Every entry has these records, allocated for the capacity (touched as entries are). */
    double records = (double)(sizeof(struct table_timer) + sizeof(struct table_link) +
                              sizeof(struct table_age) + sizeof(struct table_heap_slot));
    size_t entry = sip_dialog_entry_size(SIP_DIALOG_KEEP_NONE),
           entry_text = sip_dialog_entry_size(SIP_DIALOG_KEEP_TEXT),
           entry_cdr = sip_dialog_entry_size(SIP_DIALOG_KEEP_CDR);
    per_call = (double)entry + records + bucket_share;
    printf("calls=%lu\n", cap);
    printf("sizeof_sip_dialog=%zu\n", sizeof(struct sip_dialog));
    printf("entry_bytes=%zu\n", entry);
    printf("entry_bytes_with_text=%zu\n", entry_text);
    printf("sizeof_table_node=%zu\n", sizeof(struct table_node));
    printf("text_bytes=%zu\n", sizeof(((struct sip_dialog *)0)->text));
    printf("label_bytes=%zu\n", sizeof(((struct sip_dialog *)0)->labels));
    printf("record_bytes=%.0f\n", records);
    printf("bucket_bytes_per_call=%.2f\n", bucket_share);
    printf("bytes_per_call=%.1f\n", per_call);
    printf("bytes_per_call_with_text=%.1f\n", (double)entry_text + records + bucket_share);
    printf("entry_bytes_with_cdr=%zu\n", entry_cdr);
    printf("cdr_bytes=%zu\n", sizeof(struct call_cdr));
    printf("bytes_per_call_with_cdr=%.1f\n", (double)entry_cdr + records + bucket_share);
    printf("sizeof_sip_txn=%zu\n", sizeof(struct sip_txn));
    return 0;
}
