/* fuzz_pcap_file: libFuzzer target for capture files, read as `sipscope --read` reads them.
 * Each input becomes a file, which is read twice:
 *   - by capture_pcap and by libpcap side by side (pcap_same_as_libpcap): capture_pcap.h
 *     promises the same frames and the same end from its in-place reader of classic pcap as
 *     from libpcap, and from its pcapng reader too wherever libpcap reads the file (pcap_same.h
 *     lists where they differ on purpose); a difference aborts;
 *   - by engine_read_file, with the engine of fuzz_engine.h: the mapped readers and the
 *     lookahead (which engine_frame alone, in fuzz_pipeline, does not turn on) over everything
 *     after.
 *
 * Input: an input that starts as a capture file does (a pcap or pcapng magic number) is the
 * file as it is: the test captures and the pcapng files of fuzz/pcapng_corpus (several link
 * types, sections in both byte orders, every packet block) are the seeds. Anything else is one mode
 * byte, then records after a classic pcap file header made from the mode: bit 0 the other byte
 * order, bit 1 nanosecond times, bits 2-4 the link type, bits 5-6 the snap length (tables below).
 * The engine options (fuzz_engine_config) are the first byte's bits 0-3, whichever the form. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture.h"
#include "fuzz_engine.h"
#include "pcap_same.h"

static const uint32_t links[8] = {
    CAPTURE_LINK_ETHERNET, CAPTURE_LINK_RAW,  CAPTURE_LINK_LINUX_SLL, CAPTURE_LINK_LINUX_SLL2,
    CAPTURE_LINK_NULL,     CAPTURE_LINK_IPV4, CAPTURE_LINK_IPV6,      CAPTURE_LINK_LOOP,
};
/* A common one, a short one that cuts records, libpcap's largest, and one past it (the in-place
 * reader leaves such a file to libpcap, which reads it: capture_pcap's libpcap path is fuzzed
 * on classic pcap records too). */
static const uint32_t snaplens[4] = {65535, 96, 262144, 262145};

/* The file: a memfd, named by its /proc path, so that both readers open it as a file and a
 * crash leaves nothing behind. */
static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = memfd_create("fuzz_pcap_file", MFD_CLOEXEC);
    if (fd < 0)
        abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

static void put32(uint8_t *p, uint32_t v, int swapped)
{
    if (swapped)
        v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

static void put16(uint8_t *p, uint16_t v, int swapped)
{
    if (swapped)
        v = __builtin_bswap16(v);
    memcpy(p, &v, 2);
}

/* Whether data starts with the magic number of a capture file, in either byte order. */
static int is_capture_file(const uint8_t *data, size_t size)
{
    static const uint32_t magics[] = {0xa1b2c3d4u, 0xa1b23c4du, 0x0a0d0d0au};
    uint32_t m;

    if (size < 4)
        return 0;
    memcpy(&m, data, 4);
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (m == magics[i] || m == __builtin_bswap32(magics[i]))
            return 1;
    return 0;
}

static void write_all(const void *p, size_t n, off_t off)
{
    if (n && pwrite(fd, p, n, off) != (ssize_t)n)
        abort();
}

static void write_input(const uint8_t *data, size_t size)
{
    uint8_t mode = data[0];

    if (ftruncate(fd, 0) != 0)
        abort();
    if (is_capture_file(data, size)) {
        write_all(data, size, 0);
        return;
    }
    uint8_t hdr[24] = {0};
    int swapped = mode & 1;
    put32(hdr, (mode & 2) ? 0xa1b23c4du : 0xa1b2c3d4u, swapped);
    put16(hdr + 4, 2, swapped);
    put16(hdr + 6, 4, swapped);
    put32(hdr + 16, snaplens[(mode >> 5) & 3], swapped);
    put32(hdr + 20, links[(mode >> 2) & 7], swapped);
    write_all(hdr, sizeof hdr, 0);
    write_all(data + 1, size - 1, sizeof hdr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct engine_config cfg;
    struct portset ports;
    struct engine *e;
    char why[512], err[256];

    if (size < 1)
        return 0;
    write_input(data, size);
    /* capture_pcap refusing a file is no difference: libpcap refuses it too, or opens a link
     * type sipscope does not decode. Anything else that differs is. */
    if (pcap_same_as_libpcap(path, NULL, why, sizeof why) != -1 && why[0]) {
        fprintf(stderr, "fuzz_pcap_file: capture_pcap and libpcap differ: %s\n", why);
        abort();
    }
    fuzz_engine_config(&cfg, data[0], &ports);
    e = fuzz_engine_new(&cfg);
    engine_read_file(e, path, err, sizeof err);
    /* Timers fire an hour past 2023-11-14; a file's clock may be later, and stays (the engine's
     * clock never goes back). */
    fuzz_engine_end(e, 1700000000ULL * 1000000000ULL);
    return 0;
}
