/* bench_memory: what the engine keeps per tracked call, from the structures themselves (no
 * rules): the call entry (table node, Call-ID and URI text, tags, timestamps, state, label ids),
 * its share of the hash index, and its slot in the deadline heap. Prints key=value lines for
 * tests/bench/bench.py, which sets them beside the RSS measured with gen_calls.
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
    /* A confirmed call always has a deadline (max call age), hence a heap slot. */
    per_call = (double)sizeof(struct sip_dialog) + bucket_share + sizeof(struct table_heap_slot);
    printf("calls=%lu\n", cap);
    printf("sizeof_sip_dialog=%zu\n", sizeof(struct sip_dialog));
    printf("sizeof_table_node=%zu\n", sizeof(struct table_node));
    printf("text_bytes=%zu\n", sizeof(((struct sip_dialog *)0)->text));
    printf("label_bytes=%zu\n", sizeof(((struct sip_dialog *)0)->labels));
    printf("bucket_bytes_per_call=%.2f\n", bucket_share);
    printf("heap_slot_bytes=%zu\n", sizeof(struct table_heap_slot));
    printf("bytes_per_call=%.1f\n", per_call);
    printf("sizeof_sip_txn=%zu\n", sizeof(struct sip_txn));
    return 0;
}
