#include "capture_pcap.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "decode.h"
#include "pcap_same.h"
#include "test.h"

/* Capture files are written byte by byte into a temporary directory: the pcap file header and
 * record headers in either byte order, and pcapng blocks by hand (pcapng_create for one
 * interface; struct ng for sections in either byte order and every kind of block). pcapng files
 * are read both mapped and through a named pipe (read_both), which must agree. */

static char tmpdir[64];
static char pathbuf[128];

static void remove_tmpdir(void)
{
    rmdir(tmpdir);
}

static const char *tmp_path(const char *name)
{
    if (!tmpdir[0]) {
        strcpy(tmpdir, "/tmp/sipscope_test_pcap_XXXXXX");
        if (!mkdtemp(tmpdir)) {
            perror("mkdtemp");
            exit(1);
        }
        atexit(remove_tmpdir);
    }
    snprintf(pathbuf, sizeof pathbuf, "%s/%s", tmpdir, name);
    return pathbuf;
}

struct out {
    FILE *f;
    int be; /* write multi-byte fields big-endian */
};

static void w16(struct out *o, unsigned v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    if (o->be) {
        b[0] = (uint8_t)(v >> 8);
        b[1] = (uint8_t)v;
    }
    fwrite(b, 1, 2, o->f);
}

static void w32(struct out *o, uint32_t v)
{
    if (o->be) {
        w16(o, v >> 16);
        w16(o, v & 0xffff);
    } else {
        w16(o, v & 0xffff);
        w16(o, v >> 16);
    }
}

static void wbytes(struct out *o, const void *p, size_t n)
{
    fwrite(p, 1, n, o->f);
}

#define MAGIC_USEC 0xa1b2c3d4u
#define MAGIC_NSEC 0xa1b23c4du

static struct out pcap_file_create(const char *name, uint32_t magic, uint32_t linktype, int be)
{
    struct out o = {fopen(tmp_path(name), "wb"), be};
    if (!o.f) {
        perror("fopen");
        exit(1);
    }
    w32(&o, magic);
    w16(&o, 2);
    w16(&o, 4);
    w32(&o, 0);
    w32(&o, 0);
    w32(&o, 65535); /* snaplen */
    w32(&o, linktype);
    return o;
}

static void pcap_record(struct out *o, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len)
{
    w32(o, sec);
    w32(o, frac);
    w32(o, caplen);
    w32(o, len);
}

static uint8_t pattern[256];

static void fill_pattern(void)
{
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)(i * 7 + 3);
}

/* Opens the file just written; fails the test (returning NULL) if it does not open. */
static struct capture_pcap *open_ok(const char *name)
{
    char err[256] = "";
    struct capture_pcap *cap = capture_pcap_open(tmp_path(name), err, sizeof err);
    if (!cap)
        TEST_FAIL_AT("open %s: %s", name, err);
    return cap;
}

static void check_contains(const char *s, const char *part)
{
    if (!strstr(s, part))
        TEST_FAIL_AT("\"%s\" does not contain \"%s\"", s, part);
}

TEST(usec_pcap_gives_frames_with_nanosecond_timestamps_then_a_clean_end)
{
    fill_pattern();
    struct out o = pcap_file_create("usec.pcap", MAGIC_USEC, 1, 0);
    pcap_record(&o, 1700000000, 123456, 60, 60);
    wbytes(&o, pattern, 60);
    pcap_record(&o, 1700000001, 999999, 40, 1500); /* cut at a snap length of 40 */
    wbytes(&o, pattern + 1, 40);
    fclose(o.f);

    struct capture_pcap *cap = open_ok("usec.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    /* Every field is written, whatever the caller's frame held: a gso_size left over made the
     * engine split datagrams that files never hold split. */
    memset(&fr, 0xa5, sizeof fr);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 1700000000123456000ull);
    CHECK_INT(fr.caplen, 60);
    CHECK_INT(fr.wirelen, 60);
    CHECK_INT(fr.link, CAPTURE_LINK_ETHERNET);
    CHECK_INT(fr.dir, CAPTURE_DIR_UNKNOWN);
    CHECK_INT(fr.iface, 0);
    CHECK_INT(fr.gso_size, 0);
    CHECK(memcmp(fr.data, pattern, 60) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 1700000001999999000ull);
    CHECK_INT(fr.caplen, 40);
    CHECK_INT(fr.wirelen, 1500);
    CHECK(memcmp(fr.data, pattern + 1, 40) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("usec.pcap"));
}

TEST(nanosecond_magic_keeps_every_digit)
{
    fill_pattern();
    struct out o = pcap_file_create("nsec.pcap", MAGIC_NSEC, 101, 0);
    pcap_record(&o, 1700000000, 123456789, 20, 20);
    wbytes(&o, pattern, 20);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("nsec.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256];
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 1700000000123456789ull);
    CHECK_INT(fr.link, CAPTURE_LINK_RAW);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("nsec.pcap"));
}

TEST(big_endian_file_reads_like_a_little_endian_one)
{
    fill_pattern();
    struct out o = pcap_file_create("be.pcap", MAGIC_NSEC, 113, 1);
    pcap_record(&o, 1600000000, 5, 33, 34);
    wbytes(&o, pattern, 33);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("be.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256];
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.link, CAPTURE_LINK_LINUX_SLL);
    CHECK_INT(fr.ts_ns, 1600000000000000005ull);
    CHECK_INT(fr.caplen, 33);
    CHECK_INT(fr.wirelen, 34);
    CHECK(memcmp(fr.data, pattern, 33) == 0);
    capture_pcap_free(cap);
    unlink(tmp_path("be.pcap"));
}

TEST(record_shorter_on_the_wire_than_captured_keeps_wirelen_at_least_caplen)
{
    fill_pattern();
    struct out o = pcap_file_create("len.pcap", MAGIC_USEC, 1, 0);
    pcap_record(&o, 1, 0, 50, 20);
    wbytes(&o, pattern, 50);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("len.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256];
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.caplen, 50);
    CHECK_INT(fr.wirelen, 50);
    capture_pcap_free(cap);
    unlink(tmp_path("len.pcap"));
}

/* The LINKTYPE_ values sipscope decodes, and 12: libpcap takes a file's 12 as its DLT_RAW
 * (the value old Linux libpcap wrote for raw IP). */
static const struct {
    uint32_t linktype;
    int link;
} supported_links[] = {
    {0, CAPTURE_LINK_NULL},   {1, CAPTURE_LINK_ETHERNET},     {101, CAPTURE_LINK_RAW},
    {108, CAPTURE_LINK_LOOP}, {113, CAPTURE_LINK_LINUX_SLL},  {228, CAPTURE_LINK_IPV4},
    {229, CAPTURE_LINK_IPV6}, {276, CAPTURE_LINK_LINUX_SLL2}, {12, CAPTURE_LINK_RAW},
};

TEST(every_supported_linktype_maps_to_its_capture_link)
{
    fill_pattern();
    for (size_t i = 0; i < sizeof supported_links / sizeof supported_links[0]; i++) {
        struct out o = pcap_file_create("link.pcap", MAGIC_USEC, supported_links[i].linktype, 0);
        pcap_record(&o, 1, 2, 20, 20);
        wbytes(&o, pattern, 20);
        fclose(o.f);
        struct capture_pcap *cap = open_ok("link.pcap");
        if (!cap)
            continue;
        struct capture_frame fr;
        char err[256];
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        if (fr.link != supported_links[i].link)
            TEST_FAIL_AT("LINKTYPE %u gave %d, expected %d", supported_links[i].linktype, fr.link,
                         supported_links[i].link);
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
        capture_pcap_free(cap);
    }
    unlink(tmp_path("link.pcap"));
}

TEST(unsupported_link_type_fails_open_naming_it)
{
    struct out o = pcap_file_create("ppp.pcap", MAGIC_USEC, 9, 0);
    fclose(o.f);
    char err[256] = "";
    const char *path = tmp_path("ppp.pcap");
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    char want[256];
    snprintf(want, sizeof want, "cannot read capture %s: unsupported link type PPP (PPP, DLT 9)",
             path);
    CHECK_STR(err, want);

    o = pcap_file_create("ppp.pcap", MAGIC_USEC, 127, 0);
    fclose(o.f);
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    check_contains(err, "unsupported link type IEEE802_11_RADIO (");

    o = pcap_file_create("ppp.pcap", MAGIC_USEC, 147, 0); /* USER0: libpcap has no name for it */
    fclose(o.f);
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "cannot read capture %s: unsupported link type DLT 147", path);
    CHECK_STR(err, want);
    unlink(path);
}

TEST(missing_file_and_non_capture_fail_open_with_a_reason)
{
    char err[256] = "";
    char path[160];
    snprintf(path, sizeof path, "%s", tmp_path("missing.pcap"));
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    char want[256];
    snprintf(want, sizeof want, "cannot read capture %s: No such file or directory", path);
    CHECK_STR(err, want);

    FILE *f = fopen(tmp_path("text.pcap"), "wb");
    fputs("INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP host\r\n\r\n", f);
    fclose(f);
    snprintf(path, sizeof path, "%s", tmp_path("text.pcap"));
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    snprintf(want, sizeof want, "cannot read capture %s: unknown file format", path);
    CHECK_STR(err, want);
    unlink(path);
}

/* A compressed capture (tcpdump -z gzip, a rotated .pcap.gz): libpcap reads none, and says only
 * "unknown file format". The gzip magic (RFC 1952: 1f 8b) tells it, and the way to read it. */
TEST(gzipped_capture_fails_open_saying_how_to_read_it)
{
    char err[256] = "", path[160], want[512];
    FILE *f = fopen(tmp_path("calls.pcap.gz"), "wb");
    fwrite("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 1, 10, f);
    fclose(f);
    snprintf(path, sizeof path, "%s", tmp_path("calls.pcap.gz"));
    CHECK(capture_pcap_open(path, err, sizeof err) == NULL);
    snprintf(want, sizeof want,
             "cannot read capture %s: it is compressed with gzip: zcat %s | sipscope --read - "
             "...",
             path, path);
    CHECK_STR(err, want);
    unlink(path);
}

TEST(file_ending_inside_a_record_is_eio_with_libpcaps_reason)
{
    fill_pattern();
    struct out o = pcap_file_create("cut.pcap", MAGIC_USEC, 1, 0);
    pcap_record(&o, 1, 0, 60, 60);
    wbytes(&o, pattern, 60);
    pcap_record(&o, 2, 0, 100, 100);
    wbytes(&o, pattern, 50);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("cut.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated dump file; tried to read 100 captured bytes, only got 50");
    capture_pcap_free(cap);

    o = pcap_file_create("cut.pcap", MAGIC_USEC, 1, 0);
    pcap_record(&o, 1, 0, 60, 60);
    wbytes(&o, pattern, 60);
    wbytes(&o, pattern, 7); /* part of a record header */
    fclose(o.f);
    cap = open_ok("cut.pcap");
    if (!cap)
        return;
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated dump file; tried to read 16 header bytes, only got 7");
    capture_pcap_free(cap);
    unlink(tmp_path("cut.pcap"));
}

/* ---- the in-place reader of classic pcap files, against libpcap itself ---- */

/* The frames pcap_same_as_libpcap read alike from name; a difference (or a file read in place
 * or not, against want_in_place) fails the test. */
static int check_same_as_libpcap(const char *name, bool want_in_place)
{
    char why[512];
    bool in_place = !want_in_place;
    int frames = pcap_same_as_libpcap(tmp_path(name), &in_place, why, sizeof why);

    if (why[0])
        TEST_FAIL_AT("%s: %s", name, why);
    else if (in_place != want_in_place)
        TEST_FAIL_AT("%s: in place %d, expected %d", name, in_place, want_in_place);
    return frames;
}

/* Three records: a plain one, one cut at a 40-byte snap length by the writer, and one with a
 * time past 2038 (the top bit of the 32-bit second set) and a fraction far past the second
 * (kept as written, as libpcap does). */
static void write_three(const char *name, uint32_t magic, int be, uint32_t linktype)
{
    struct out o = pcap_file_create(name, magic, linktype, be);
    pcap_record(&o, 1700000000, 250, 60, 60);
    wbytes(&o, pattern, 60);
    pcap_record(&o, 1700000001, 999999, 40, 1500);
    wbytes(&o, pattern + 3, 40);
    pcap_record(&o, 0x80000001u, 0xfffffff0u, 17, 17);
    wbytes(&o, pattern + 9, 17);
    fclose(o.f);
}

TEST(classic_pcap_is_read_in_place_in_both_byte_orders_with_both_magics)
{
    fill_pattern();
    static const struct {
        uint32_t magic;
        int be;
        uint64_t ts0, ts1; /* hand-derived: seconds * 10^9 + fraction (* 1000 for usec) */
    } v[] = {
        {MAGIC_USEC, 0, 1700000000000250000ull, 1700000001999999000ull},
        {MAGIC_USEC, 1, 1700000000000250000ull, 1700000001999999000ull},
        {MAGIC_NSEC, 0, 1700000000000000250ull, 1700000001000999999ull},
        {MAGIC_NSEC, 1, 1700000000000000250ull, 1700000001000999999ull},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        write_three("three.pcap", v[i].magic, v[i].be, 1);
        struct capture_pcap *cap = open_ok("three.pcap");
        if (!cap)
            continue;
        CHECK(capture_pcap_in_place(cap));
        struct capture_frame fr;
        char err[256] = "";
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        CHECK_INT(fr.link, CAPTURE_LINK_ETHERNET);
        CHECK_INT(fr.ts_ns, v[i].ts0);
        CHECK_INT(fr.caplen, 60);
        CHECK_INT(fr.wirelen, 60);
        CHECK(memcmp(fr.data, pattern, 60) == 0);
        const uint8_t *first = fr.data;
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        CHECK_INT(fr.ts_ns, v[i].ts1);
        CHECK_INT(fr.caplen, 40);
        CHECK_INT(fr.wirelen, 1500);
        CHECK(memcmp(fr.data, pattern + 3, 40) == 0);
        /* In place: the second record's bytes sit 60 + 16 bytes after the first's. */
        CHECK(fr.data == first + 76);
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        CHECK_INT(fr.caplen, 17);
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
        capture_pcap_free(cap);
        CHECK_INT(check_same_as_libpcap("three.pcap", true), 3);
    }
    unlink(tmp_path("three.pcap"));
}

TEST(record_longer_than_the_snap_length_is_cut_to_it_and_the_next_follows)
{
    fill_pattern();
    struct out o = pcap_file_create("snap.pcap", MAGIC_USEC, 1, 0);
    /* pcap_create writes a snap length of 65535: patch it to 40. */
    fseek(o.f, 16, SEEK_SET);
    w32(&o, 40);
    fseek(o.f, 0, SEEK_END);
    pcap_record(&o, 5, 6, 60, 100);
    wbytes(&o, pattern, 60);
    pcap_record(&o, 7, 8, 20, 20);
    wbytes(&o, pattern + 100, 20);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("snap.pcap");
    if (!cap)
        return;
    CHECK(capture_pcap_in_place(cap));
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.caplen, 40);
    CHECK_INT(fr.wirelen, 100);
    CHECK(memcmp(fr.data, pattern, 40) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 7000008000ull);
    CHECK_INT(fr.caplen, 20);
    CHECK(memcmp(fr.data, pattern + 100, 20) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    CHECK_INT(check_same_as_libpcap("snap.pcap", true), 2);

    /* Cut inside the part past the snap length, and inside the snap length itself. */
    o = pcap_file_create("snap.pcap", MAGIC_USEC, 1, 0);
    fseek(o.f, 16, SEEK_SET);
    w32(&o, 40);
    fseek(o.f, 0, SEEK_END);
    pcap_record(&o, 5, 6, 60, 100);
    wbytes(&o, pattern, 50);
    fclose(o.f);
    cap = open_ok("snap.pcap");
    if (!cap)
        return;
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated dump file; tried to read 60 captured bytes, only got 50");
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    CHECK_INT(check_same_as_libpcap("snap.pcap", true), 0);
    if (truncate(tmp_path("snap.pcap"), 24 + 16 + 30) != 0)
        TEST_FAIL_AT("truncate: %s", strerror(errno));
    cap = open_ok("snap.pcap");
    if (!cap)
        return;
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated dump file; tried to read 40 captured bytes, only got 30");
    capture_pcap_free(cap);
    CHECK_INT(check_same_as_libpcap("snap.pcap", true), 0);
    unlink(tmp_path("snap.pcap"));
}

TEST(records_longer_than_the_headers_snap_length_are_counted_apart_from_those_cut_when_captured)
{
    fill_pattern();
    struct out o = pcap_file_create("overlong.pcap", MAGIC_USEC, 1, 0);
    fseek(o.f, 16, SEEK_SET);
    w32(&o, 40);
    fseek(o.f, 0, SEEK_END);
    pcap_record(&o, 1, 0, 40, 100); /* cut when captured: 40 of 100 bytes in the file */
    wbytes(&o, pattern, 40);
    pcap_record(&o, 2, 0, 60, 60); /* whole in the file, longer than the header says */
    wbytes(&o, pattern, 60);
    pcap_record(&o, 3, 0, 41, 41); /* one byte longer */
    wbytes(&o, pattern, 41);
    pcap_record(&o, 4, 0, 20, 20);
    wbytes(&o, pattern, 20);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("overlong.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    uint32_t snaplen = 0;
    for (int i = 0; i < 4; i++)
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    CHECK_INT(capture_pcap_overlong(cap, &snaplen), 2);
    CHECK_INT(snaplen, 40);
    capture_pcap_free(cap);
    unlink(tmp_path("overlong.pcap"));
}

TEST(every_cut_of_an_in_place_file_ends_as_libpcap_ends_it)
{
    fill_pattern();
    for (int be = 0; be < 2; be++) {
        write_three("whole.pcap", be ? MAGIC_NSEC : MAGIC_USEC, be, 101);
        FILE *f = fopen(tmp_path("whole.pcap"), "rb");
        uint8_t whole[512];
        size_t n = fread(whole, 1, sizeof whole, f);
        fclose(f);
        /* Record boundaries at 24, 24+16+60 = 100, 100+16+40 = 156 and 156+16+17 = 189. */
        CHECK_INT(n, 189);
        for (size_t cut = 24; cut <= n; cut++) {
            f = fopen(tmp_path("cut.pcap"), "wb");
            fwrite(whole, 1, cut, f);
            fclose(f);
            int frames = check_same_as_libpcap("cut.pcap", true);
            int want = cut >= 189 ? 3 : cut >= 156 ? 2 : cut >= 100 ? 1 : 0;
            if (frames != want)
                TEST_FAIL_AT("cut at %zu: %d frames, expected %d", cut, frames, want);
        }
    }
    unlink(tmp_path("whole.pcap"));
    unlink(tmp_path("cut.pcap"));
}

/* A file truncated in place while it is mapped (a rotation): the lost pages would raise SIGBUS.
 * The reader ends it as a truncated file instead, and a second file opened meanwhile goes
 * through libpcap. */
TEST(file_shrinking_while_mapped_ends_as_truncated_without_a_crash)
{
    static uint8_t big[10000];
    struct capture_frame fr;
    char err[256] = "";
    struct out o = pcap_file_create("shrink.pcap", MAGIC_USEC, 1, 0);
    for (int i = 0; i < 3; i++) {
        memset(big, 'a' + i, sizeof big);
        pcap_record(&o, 100 + (uint32_t)i, 0, sizeof big, sizeof big);
        wbytes(&o, big, sizeof big);
    }
    fclose(o.f);
    struct capture_pcap *cap = open_ok("shrink.pcap");
    if (!cap)
        return;
    CHECK(capture_pcap_in_place(cap));
    struct capture_pcap *other = open_ok("shrink.pcap");
    if (other) {
        CHECK(!capture_pcap_in_place(other)); /* the handler covers one mapping */
        capture_pcap_free(other);
    }
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.data[9999], 'a');
    /* Cut inside the second record, in the page after the one its header is in. */
    CHECK_INT(truncate(tmp_path("shrink.pcap"), 24 + 16 + 10000 + 16 + 5000), 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    check_contains(err, "truncated dump file");
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("shrink.pcap"));
}

TEST(capture_length_past_libpcaps_maximum_is_ebadmsg_like_libpcap)
{
    fill_pattern();
    struct out o = pcap_file_create("huge.pcap", MAGIC_USEC, 1, 0);
    pcap_record(&o, 1, 2, 300000, 300000);
    wbytes(&o, pattern, 100);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("huge.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EBADMSG);
    CHECK_STR(err, "invalid packet capture length 300000, bigger than snaplen of 65535");
    capture_pcap_free(cap);
    CHECK_INT(check_same_as_libpcap("huge.pcap", true), 0);
    unlink(tmp_path("huge.pcap"));
}

TEST(other_pcap_variants_go_through_libpcap_with_the_same_frames)
{
    fill_pattern();
    /* Version 2.3, a snap length of 0, FCS bits in the link type, and a swapped Linux cooked
     * capture: libpcap has rules of its own for each. */
    write_three("v23.pcap", MAGIC_USEC, 0, 1);
    FILE *f = fopen(tmp_path("v23.pcap"), "r+b");
    struct out o = {f, 0};
    fseek(f, 6, SEEK_SET);
    w16(&o, 3);
    fclose(f);
    CHECK_INT(check_same_as_libpcap("v23.pcap", false), 3);
    write_three("snap0.pcap", MAGIC_USEC, 0, 1);
    f = fopen(tmp_path("snap0.pcap"), "r+b");
    o.f = f;
    fseek(f, 16, SEEK_SET);
    w32(&o, 0);
    fclose(f);
    CHECK_INT(check_same_as_libpcap("snap0.pcap", false), 3);
    write_three("fcs.pcap", MAGIC_USEC, 0, 1u | 0x10000000u);
    CHECK_INT(check_same_as_libpcap("fcs.pcap", false), 3);
    write_three("sll.pcap", MAGIC_NSEC, 1, 113);
    CHECK_INT(check_same_as_libpcap("sll.pcap", false), 3);
    write_three("sll.pcap", MAGIC_NSEC, 0, 113);
    CHECK_INT(check_same_as_libpcap("sll.pcap", true), 3);
    unlink(tmp_path("v23.pcap"));
    unlink(tmp_path("snap0.pcap"));
    unlink(tmp_path("fcs.pcap"));
    unlink(tmp_path("sll.pcap"));
}

/* pcapng, little-endian: section header, one interface (if_tsresol given when tsresol >= 0),
 * then enhanced packet blocks. */
static struct out pcapng_create(const char *name, unsigned linktype, int tsresol)
{
    struct out o = {fopen(tmp_path(name), "wb"), 0};
    if (!o.f) {
        perror("fopen");
        exit(1);
    }
    w32(&o, 0x0a0d0d0a); /* SHB */
    w32(&o, 28);
    w32(&o, 0x1a2b3c4d);
    w16(&o, 1);
    w16(&o, 0);
    w32(&o, 0xffffffff); /* section length unknown */
    w32(&o, 0xffffffff);
    w32(&o, 28);
    uint32_t idb_len = tsresol >= 0 ? 32 : 20;
    w32(&o, 1); /* IDB */
    w32(&o, idb_len);
    w16(&o, linktype);
    w16(&o, 0);
    w32(&o, 0); /* snaplen: none */
    if (tsresol >= 0) {
        w16(&o, 9); /* if_tsresol */
        w16(&o, 1);
        uint8_t v[4] = {(uint8_t)tsresol, 0, 0, 0};
        wbytes(&o, v, 4);
        w32(&o, 0); /* opt_endofopt */
    }
    w32(&o, idb_len);
    return o;
}

/* Writes an EPB of interface iface; only the first `keep` bytes of it when keep < its size. */
static void pcapng_epb_of(struct out *o, uint32_t iface, uint64_t ts, const uint8_t *data,
                          uint32_t caplen, uint32_t origlen, uint32_t keep)
{
    uint32_t padded = (caplen + 3) & ~3u;
    uint32_t len = 32 + padded;
    uint8_t b[512];
    struct out m = {fmemopen(b, sizeof b, "wb"), 0};
    w32(&m, 6);
    w32(&m, len);
    w32(&m, iface);
    w32(&m, (uint32_t)(ts >> 32));
    w32(&m, (uint32_t)ts);
    w32(&m, caplen);
    w32(&m, origlen);
    wbytes(&m, data, caplen);
    static const uint8_t pad[3];
    wbytes(&m, pad, padded - caplen);
    w32(&m, len);
    fclose(m.f);
    wbytes(o, b, keep < len ? keep : len);
}

/* The same on the first (only) interface. */
static void pcapng_epb(struct out *o, uint64_t ts, const uint8_t *data, uint32_t caplen,
                       uint32_t origlen, uint32_t keep)
{
    pcapng_epb_of(o, 0, ts, data, caplen, origlen, keep);
}

TEST(pcapng_with_nanosecond_resolution_gives_exact_timestamps)
{
    fill_pattern();
    struct out o = pcapng_create("ns.pcapng", 276, 9);
    pcapng_epb(&o, 1700000000123456789ull, pattern, 61, 61, ~0u);
    pcapng_epb(&o, 1700000000123456790ull, pattern + 2, 20, 1000, ~0u);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("ns.pcapng");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.link, CAPTURE_LINK_LINUX_SLL2);
    CHECK_INT(fr.ts_ns, 1700000000123456789ull);
    CHECK_INT(fr.caplen, 61);
    CHECK_INT(fr.wirelen, 61);
    CHECK(memcmp(fr.data, pattern, 61) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 1700000000123456790ull);
    CHECK_INT(fr.caplen, 20);
    CHECK_INT(fr.wirelen, 1000);
    CHECK(memcmp(fr.data, pattern + 2, 20) == 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("ns.pcapng"));
}

TEST(pcapng_without_tsresol_counts_microseconds)
{
    fill_pattern();
    struct out o = pcapng_create("us.pcapng", 1, -1);
    pcapng_epb(&o, 1700000000123456ull, pattern, 14, 14, ~0u);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("us.pcapng");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256];
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.link, CAPTURE_LINK_ETHERNET);
    CHECK_INT(fr.ts_ns, 1700000000123456000ull);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("us.pcapng"));
}

TEST(pcapng_ending_inside_a_block_is_eio)
{
    fill_pattern();
    struct out o = pcapng_create("cut.pcapng", 1, 9);
    pcapng_epb(&o, 1, pattern, 60, 60, ~0u);
    pcapng_epb(&o, 2, pattern, 60, 60, 50); /* 92-byte block: 8-byte head, then 42 of 84 */
    fclose(o.f);
    struct capture_pcap *cap = open_ok("cut.pcapng");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated pcapng dump file; tried to read 84 bytes, only got 42");
    capture_pcap_free(cap);
    unlink(tmp_path("cut.pcapng"));
}

/* A block libpcap refuses past the start (here a packet of an interface the file never
 * described) ends the file as unreadable, not as cut: -EBADMSG with libpcap's reason. */
TEST(pcapng_with_a_block_libpcap_refuses_is_ebadmsg)
{
    fill_pattern();
    struct out o = pcapng_create("badif.pcapng", 1, 9);
    pcapng_epb(&o, 1, pattern, 60, 60, ~0u);
    pcapng_epb_of(&o, 1, 2, pattern, 60, 60, ~0u);
    pcapng_epb(&o, 3, pattern, 60, 60, ~0u);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("badif.pcapng");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EBADMSG);
    CHECK_STR(err, "a packet arrived on interface 1, but there's no Interface Description "
                   "Block for that interface");
    capture_pcap_free(cap);
    unlink(tmp_path("badif.pcapng"));
}

/* Times outside what 64-bit nanoseconds plus a deadline can hold are clamped: before 1970
 * (negative seconds or fraction, as libpcap reads them signed) to 0, past CAPTURE_MAX_TS_NS to
 * it. 2038 and later in an unsigned reading stay exact. */
TEST(timestamps_before_1970_or_past_2116_are_clamped)
{
    fill_pattern();
    struct out o = pcap_file_create("clamp.pcap", MAGIC_NSEC, 1, 0);
    pcap_record(&o, 0xffffffffu, 5, 14, 14); /* -1 s */
    wbytes(&o, pattern, 14);
    pcap_record(&o, 0, 0xfffffff0u, 14, 14); /* -16 ns */
    wbytes(&o, pattern, 14);
    pcap_record(&o, 1, 0xc4653600u, 14, 14); /* 1 s - 1e9 ns */
    wbytes(&o, pattern, 14);
    pcap_record(&o, 0x7fffffffu, 999999999, 14, 14);
    wbytes(&o, pattern, 14);
    fclose(o.f);
    struct capture_pcap *cap = open_ok("clamp.pcap");
    if (!cap)
        return;
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, 2147483647999999999ull);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("clamp.pcap"));

    o = pcapng_create("clamp.pcapng", 1, 9);
    pcapng_epb(&o, CAPTURE_MAX_TS_NS - 1, pattern, 14, 14, ~0u);
    pcapng_epb(&o, 0xfffffffffffffff0ull, pattern, 14, 14, ~0u); /* year 2554 */
    fclose(o.f);
    cap = open_ok("clamp.pcapng");
    if (!cap)
        return;
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, CAPTURE_MAX_TS_NS - 1);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.ts_ns, CAPTURE_MAX_TS_NS);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("clamp.pcapng"));
}

/* A fraction past a second (kept as written, as libpcap keeps it) counts in full, after a
 * negative second too: -1 s and 872,415,231 us is 871,415.231 s after 1970, read in place and
 * through libpcap alike. fuzz_pcap_file found the libpcap path taking any negative second as
 * 1970. */
TEST(a_fraction_past_a_second_counts_after_a_negative_second_on_both_paths)
{
    fill_pattern();
    for (int via_libpcap = 0; via_libpcap < 2; via_libpcap++) {
        struct out o = pcap_file_create("frac.pcap", MAGIC_USEC, 1, 0);
        pcap_record(&o, 0xffffffffu, 872415231u, 14, 14);
        wbytes(&o, pattern, 14);
        if (via_libpcap) { /* version 2.3: libpcap's */
            fseek(o.f, 6, SEEK_SET);
            w16(&o, 3);
        }
        fclose(o.f);
        CHECK_INT(check_same_as_libpcap("frac.pcap", !via_libpcap), 1);
        struct capture_pcap *cap = open_ok("frac.pcap");
        if (!cap)
            return;
        struct capture_frame fr;
        char err[256] = "";
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        CHECK_INT(fr.ts_ns, 871415231000ull);
        capture_pcap_free(cap);
        unlink(tmp_path("frac.pcap"));
    }
}

TEST(dash_reads_standard_input)
{
    fill_pattern();
    struct out o = pcap_file_create("stdin.pcap", MAGIC_NSEC, 228, 0);
    pcap_record(&o, 3, 4, 20, 20);
    wbytes(&o, pattern, 20);
    fclose(o.f);
    if (!freopen(tmp_path("stdin.pcap"), "rb", stdin)) {
        TEST_FAIL_AT("freopen: %s", strerror(errno));
        return;
    }
    char err[256] = "";
    struct capture_pcap *cap = capture_pcap_open("-", err, sizeof err);
    if (!cap) {
        TEST_FAIL_AT("open -: %s", err);
        return;
    }
    struct capture_frame fr;
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.link, CAPTURE_LINK_IPV4);
    CHECK_INT(fr.ts_ns, 3000000004ull);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap); /* stdin stays open: it is not the reader's */
    unlink(tmp_path("stdin.pcap"));
}

/* ---- pcapng read natively: several link types, sections, byte orders ---- */

/* A pcapng file built in memory, block by block, each block in the byte order of its section. */
struct ng {
    uint8_t *b;
    size_t n, size;
    int be;
};

static void ng_bytes(struct ng *g, const void *p, size_t n)
{
    if (g->n + n > g->size) {
        g->size = (g->n + n) * 2;
        g->b = realloc(g->b, g->size);
        if (!g->b)
            abort();
    }
    if (n)
        memcpy(g->b + g->n, p, n);
    g->n += n;
}

static void ng_u16(struct ng *g, unsigned v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    if (g->be) {
        b[0] = (uint8_t)(v >> 8);
        b[1] = (uint8_t)v;
    }
    ng_bytes(g, b, 2);
}

static void ng_u32(struct ng *g, uint32_t v)
{
    ng_u16(g, g->be ? v >> 16 : v & 0xffff);
    ng_u16(g, g->be ? v & 0xffff : v >> 16);
}

static void ng_u64(struct ng *g, uint64_t v)
{
    ng_u32(g, (uint32_t)(g->be ? v >> 32 : v));
    ng_u32(g, (uint32_t)(g->be ? v : v >> 32));
}

/* Starts a block: returns where, for ng_end. */
static size_t ng_begin(struct ng *g, uint32_t type)
{
    size_t at = g->n;
    ng_u32(g, type);
    ng_u32(g, 0); /* the length, set by ng_end */
    return at;
}

/* Pads the block begun at `at` to 4 bytes and writes its length at both ends. */
static void ng_end(struct ng *g, size_t at)
{
    static const uint8_t zeros[4];
    ng_bytes(g, zeros, (4 - (g->n - at) % 4) % 4);
    uint32_t len = (uint32_t)(g->n - at + 4);
    ng_u32(g, len);
    size_t end = g->n;
    g->n = at + 4;
    ng_u32(g, len);
    g->n = end;
}

static void ng_section(struct ng *g, int be)
{
    g->be = be;
    size_t at = ng_begin(g, 0x0a0d0d0a);
    ng_u32(g, 0x1a2b3c4d);
    ng_u16(g, 1);
    ng_u16(g, 0);
    ng_u64(g, ~0ull); /* section length unknown */
    ng_end(g, at);
}

#define NO_TSRESOL (-1)

/* An interface; tsresol is the option's byte (NO_TSRESOL: none), tsoffset 0 writes none. */
static void ng_iface(struct ng *g, unsigned linktype, uint32_t snaplen, int tsresol,
                     int64_t tsoffset)
{
    size_t at = ng_begin(g, 1);
    ng_u16(g, linktype);
    ng_u16(g, 0);
    ng_u32(g, snaplen);
    ng_u16(g, 2); /* if_name, to skip */
    ng_u16(g, 5);
    ng_bytes(g, "eth0\0\0\0", 8);
    if (tsresol != NO_TSRESOL) {
        uint8_t v[4] = {(uint8_t)tsresol, 0, 0, 0};
        ng_u16(g, 9);
        ng_u16(g, 1);
        ng_bytes(g, v, 4);
    }
    if (tsoffset) {
        ng_u16(g, 14);
        ng_u16(g, 8);
        ng_u64(g, (uint64_t)tsoffset);
    }
    ng_u32(g, 0); /* opt_endofopt */
    ng_end(g, at);
}

static void ng_epb(struct ng *g, uint32_t iface, uint64_t ts, const uint8_t *data, uint32_t caplen,
                   uint32_t origlen)
{
    size_t at = ng_begin(g, 6);
    ng_u32(g, iface);
    ng_u32(g, (uint32_t)(ts >> 32));
    ng_u32(g, (uint32_t)ts);
    ng_u32(g, caplen);
    ng_u32(g, origlen);
    ng_bytes(g, data, caplen);
    static const uint8_t zeros[4];
    ng_bytes(g, zeros, (4 - caplen % 4) % 4);
    ng_u16(g, 2); /* epb_flags: inbound, to skip */
    ng_u16(g, 4);
    ng_u32(g, 1);
    ng_u32(g, 0);
    ng_end(g, at);
}

/* A Simple Packet Block holding n bytes of data, of a packet of origlen bytes. */
static void ng_spb(struct ng *g, const uint8_t *data, uint32_t n, uint32_t origlen)
{
    size_t at = ng_begin(g, 3);
    ng_u32(g, origlen);
    ng_bytes(g, data, n);
    ng_end(g, at);
}

/* The obsolete Packet Block. */
static void ng_pb(struct ng *g, uint16_t iface, uint64_t ts, const uint8_t *data, uint32_t caplen)
{
    size_t at = ng_begin(g, 2);
    ng_u16(g, iface);
    ng_u16(g, 0); /* drops */
    ng_u32(g, (uint32_t)(ts >> 32));
    ng_u32(g, (uint32_t)ts);
    ng_u32(g, caplen);
    ng_u32(g, caplen);
    ng_bytes(g, data, caplen);
    ng_end(g, at);
}

/* Any other block, its body as given. */
static void ng_other(struct ng *g, uint32_t type, const char *body)
{
    size_t at = ng_begin(g, type);
    ng_bytes(g, body, strlen(body));
    ng_end(g, at);
}

static void save(const char *name, const void *p, size_t n)
{
    FILE *f = fopen(tmp_path(name), "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(name);
        exit(1);
    }
}

/* What a reader gave of a whole file: the frames (up to 16, bytes compared with pattern-like
 * data by the tests), how it ended and why. */
struct got {
    int n, end, opened;
    bool in_place;
    char err[256];
    struct {
        uint64_t ts;
        uint32_t caplen, wirelen;
        uint16_t link;
        uint8_t data[8]; /* the first bytes */
        const uint8_t *p;
    } f[16];
};

static void read_all(struct capture_pcap *cap, struct got *g)
{
    struct capture_frame fr;
    int rc;

    while ((rc = capture_pcap_next(cap, &fr, g->err, sizeof g->err)) == 1) {
        if (g->n < 16) {
            g->f[g->n].ts = fr.ts_ns;
            g->f[g->n].caplen = fr.caplen;
            g->f[g->n].wirelen = fr.wirelen;
            g->f[g->n].link = fr.link;
            g->f[g->n].p = fr.data;
            memcpy(g->f[g->n].data, fr.data, fr.caplen < 8 ? fr.caplen : 8);
        }
        g->n++;
    }
    g->end = rc;
    CHECK_INT(capture_pcap_next(cap, &fr, g->err + 128, 128), 0); /* then 0, whatever came */
}

/* Reads name through a named pipe, as `--read FIFO` or standard input would: a child writes
 * the file into it. */
static void read_piped(const char *name, struct got *g)
{
    char fifo[160], file[160];
    snprintf(file, sizeof file, "%s", tmp_path(name));
    snprintf(fifo, sizeof fifo, "%s", tmp_path("pipe"));
    unlink(fifo);
    if (mkfifo(fifo, 0600) != 0) {
        TEST_FAIL_AT("mkfifo: %s", strerror(errno));
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        FILE *in = fopen(file, "rb");
        FILE *out = fopen(fifo, "wb");
        int c;
        while (in && out && (c = getc(in)) != EOF)
            putc(c, out);
        if (out)
            fclose(out); /* _exit flushes nothing */
        _exit(0);
    }
    memset(g, 0, sizeof *g);
    struct capture_pcap *cap = capture_pcap_open(fifo, g->err, sizeof g->err);
    if (cap) {
        g->opened = 1;
        g->in_place = capture_pcap_in_place(cap);
        read_all(cap, g);
        capture_pcap_free(cap);
    }
    waitpid(pid, NULL, 0);
    unlink(fifo);
}

/* err past "cannot read capture PATH: ", or all of it. */
static const char *reason(const char *err)
{
    const char *p = strstr(err, ": ");
    return strncmp(err, "cannot read capture ", 20) == 0 && p ? p + 2 : err;
}

/* Reads name mapped and through a pipe; both must give the same frames, end and reason (the
 * one through the pipe not in place). Returns what the mapped reader gave in *g. */
static void read_both(const char *name, struct got *g)
{
    static struct got piped;
    memset(g, 0, sizeof *g);
    struct capture_pcap *cap = capture_pcap_open(tmp_path(name), g->err, sizeof g->err);
    if (cap) {
        g->opened = 1;
        g->in_place = capture_pcap_in_place(cap);
        read_all(cap, g);
        capture_pcap_free(cap);
    }
    read_piped(name, &piped);
    if (piped.opened != g->opened || piped.n != g->n || piped.end != g->end ||
        strcmp(reason(piped.err), reason(g->err)) != 0 ||
        (g->opened && (!g->in_place || piped.in_place)))
        TEST_FAIL_AT("%s: mapped %d frames, end %d \"%s\", in place %d; piped %d, %d \"%s\", %d",
                     name, g->n, g->end, g->err, g->in_place, piped.n, piped.end, piped.err,
                     piped.in_place);
    for (int i = 0; i < g->n && i < piped.n && i < 16; i++)
        if (piped.f[i].ts != g->f[i].ts || piped.f[i].caplen != g->f[i].caplen ||
            piped.f[i].wirelen != g->f[i].wirelen || piped.f[i].link != g->f[i].link ||
            memcmp(piped.f[i].data, g->f[i].data, sizeof g->f[i].data) != 0)
            TEST_FAIL_AT("%s frame %d: mapped and piped differ", name, i);
}

struct want_frame {
    uint64_t ts;
    uint32_t caplen, wirelen;
    uint16_t link;
    const uint8_t *data; /* its first bytes (min(caplen, 8)) */
};

static void check_frames(const struct got *g, const struct want_frame *w, int n, int end,
                         const char *err)
{
    CHECK_INT(g->n, n);
    CHECK_INT(g->end, end);
    if (err)
        CHECK_STR(g->err, err);
    for (int i = 0; i < n && i < g->n; i++) {
        if (g->f[i].ts != w[i].ts || g->f[i].caplen != w[i].caplen ||
            g->f[i].wirelen != w[i].wirelen || g->f[i].link != w[i].link ||
            memcmp(g->f[i].data, w[i].data, w[i].caplen < 8 ? w[i].caplen : 8) != 0)
            TEST_FAIL_AT("frame %d: ts %" PRIu64 " caplen %u wirelen %u link %u, expected %" PRIu64
                         " %u %u %u",
                         i, g->f[i].ts, g->f[i].caplen, g->f[i].wirelen, g->f[i].link, w[i].ts,
                         w[i].caplen, w[i].wirelen, w[i].link);
    }
}

/* Three interfaces: Ethernet in microseconds (no if_tsresol), raw IP in nanoseconds, Linux
 * cooked v2 in 2^-20 s with an if_tsoffset of 10^9 s. */
static void write_three_links(struct ng *g, int be)
{
    ng_section(g, be);
    ng_iface(g, 1, 65535, NO_TSRESOL, 0);
    ng_iface(g, 101, 0, 9, 0);
    ng_iface(g, 276, 262144, 0x80 | 20, 1000000000);
    ng_epb(g, 0, 1700000000123456ull, pattern, 60, 60);
    ng_epb(g, 1, 1700000000123456789ull, pattern + 1, 41, 1500);
    ng_epb(g, 2, 700000000ull << 20 | 1u << 19, pattern + 2, 33, 33); /* + 0.5 s */
    ng_epb(g, 2, 700000000ull << 20 | 1u, pattern + 3, 20, 20);       /* + 953.67 ns */
    ng_epb(g, 0, 1700000001000000ull, pattern + 4, 3, 3);
}

static const struct want_frame three_links[] = {
    {1700000000123456000ull, 60, 60, CAPTURE_LINK_ETHERNET, pattern},
    {1700000000123456789ull, 41, 1500, CAPTURE_LINK_RAW, pattern + 1},
    {1700000000500000000ull, 33, 33, CAPTURE_LINK_LINUX_SLL2, pattern + 2},
    {1700000000000000953ull, 20, 20, CAPTURE_LINK_LINUX_SLL2, pattern + 3},
    {1700000001000000000ull, 3, 3, CAPTURE_LINK_ETHERNET, pattern + 4},
};

TEST(pcapng_interfaces_of_different_link_types_give_each_frame_its_own_in_both_byte_orders)
{
    fill_pattern();
    for (int be = 0; be < 2; be++) {
        struct ng g = {0};
        write_three_links(&g, be);
        save("links.pcapng", g.b, g.n);
        struct got got;
        read_both("links.pcapng", &got);
        check_frames(&got, three_links, 5, 0, NULL);
        /* In place: the second packet's bytes are those of the file, one block after the
         * first's (an EPB of 60 bytes of data, an 8-byte option and the end of options: 104
         * bytes). */
        CHECK(got.in_place);
        CHECK(got.f[1].p == got.f[0].p + 104);
        /* libpcap stops at the second interface, before any packet: nothing to compare. */
        CHECK_INT(check_same_as_libpcap("links.pcapng", true), 0);
        free(g.b);
    }
    unlink(tmp_path("links.pcapng"));
}

TEST(pcapng_resolutions_and_offsets_give_exact_nanoseconds_as_libpcap_does)
{
    static const struct {
        int tsresol;
        int64_t offset;
        uint64_t ts, want;
    } v[] = {
        {0, 0, 1700000000ull, 1700000000000000000ull},                /* seconds */
        {3, 0, 1700000000123ull, 1700000000123000000ull},             /* milliseconds */
        {NO_TSRESOL, 0, 1700000000123456ull, 1700000000123456000ull}, /* microseconds */
        {6, -3600, 1700000000123456ull, 1699996400123456000ull},      /* an hour back */
        {9, 0, 1700000000123456789ull, 1700000000123456789ull},       /* nanoseconds */
        {12, 0, 12345678901234567ull, 12345678901234ull},             /* truncated */
        {19, 0, 17000000001234567891ull, 1700000000ull},              /* the finest */
        {0x80 | 0, 0, 1700000000ull, 1700000000000000000ull},         /* 2^0 */
        {0x80 | 10, 0, 1700000000ull << 10 | 512, 1700000000500000000ull},
        {0x80 | 20, 0, 1700000000ull << 20 | 3, 1700000000000002861ull}, /* 3 * 953.67 */
        {0x80 | 29, 0, 1ull << 29 | 1, 1000000001ull},                   /* 1.86 ns */
        {0x80 | 30, 0, 1700000000ull << 30 | 1u << 29, 1700000000500000000ull},
        {0x80 | 33, 0, 1700000000ull << 33 | 1, 1700000000000000000ull}, /* 0.12 ns */
        {0x80 | 63, 0, 1ull << 62, 500000000ull},                        /* half a second */
        /* Just under a second of fraction: libpcap 1.10 overflows its 64-bit product there. */
        {0x80 | 40, 0, 1700ull << 40 | ((1ull << 40) - 1), 1700999999999ull},
        {9, -1700000001, 1700000000000000000ull, 0}, /* before 1970 */
        {9, INT64_MAX / 2, 1, CAPTURE_MAX_TS_NS},    /* past 2116 */
    };
    fill_pattern();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct ng g = {0};
        ng_section(&g, (int)i % 2);
        ng_iface(&g, 1, 0, v[i].tsresol, v[i].offset);
        ng_epb(&g, 0, v[i].ts, pattern, 14, 14);
        save("res.pcapng", g.b, g.n);
        free(g.b);
        struct got got;
        read_both("res.pcapng", &got);
        if (got.n != 1 || got.end != 0 || got.f[0].ts != v[i].want)
            TEST_FAIL_AT("tsresol 0x%x offset %" PRId64 ": %d frames, end %d \"%s\", ts %" PRIu64
                         ", expected %" PRIu64,
                         v[i].tsresol, v[i].offset, got.n, got.end, got.err, got.f[0].ts,
                         v[i].want);
        CHECK_INT(check_same_as_libpcap("res.pcapng", true), 1);
    }
    unlink(tmp_path("res.pcapng"));
}

TEST(pcapng_section_describes_its_own_interfaces_in_its_own_byte_order)
{
    fill_pattern();
    struct ng g = {0};
    ng_section(&g, 0);
    ng_iface(&g, 1, 0, 9, 0);
    ng_epb(&g, 0, 5, pattern, 14, 14);
    ng_section(&g, 1); /* interfaces from 0 again, big-endian */
    ng_iface(&g, 101, 0, 6, 0);
    ng_iface(&g, 113, 0, 9, 0);
    ng_epb(&g, 1, 6, pattern + 1, 16, 16);
    ng_epb(&g, 0, 7, pattern + 2, 20, 20);
    ng_section(&g, 0); /* none described yet */
    ng_epb(&g, 0, 8, pattern + 3, 14, 14);
    save("sections.pcapng", g.b, g.n);
    free(g.b);
    static const struct want_frame w[] = {
        {5, 14, 14, CAPTURE_LINK_ETHERNET, pattern},
        {6, 16, 16, CAPTURE_LINK_LINUX_SLL, pattern + 1},
        {7000, 20, 20, CAPTURE_LINK_RAW, pattern + 2},
    };
    struct got got;
    read_both("sections.pcapng", &got);
    check_frames(&got, w, 3, -EBADMSG,
                 "a packet arrived on interface 0, but there's no Interface Description Block "
                 "for that interface");
    CHECK_INT(check_same_as_libpcap("sections.pcapng", true), 1); /* libpcap: one byte order */
    unlink(tmp_path("sections.pcapng"));
}

/* A Simple Packet Block has no time and no captured length: it takes the time of the frame
 * before it (0 at the start) and the first interface's snap length; the obsolete Packet Block
 * has both. */
TEST(pcapng_simple_packet_block_takes_the_time_of_the_frame_before_it)
{
    fill_pattern();
    struct ng g = {0};
    ng_section(&g, 1);
    ng_iface(&g, 1, 64, 9, 0);
    ng_iface(&g, 101, 0, 9, 0);
    ng_spb(&g, pattern, 30, 30);
    ng_epb(&g, 1, 1700000000000000001ull, pattern + 1, 20, 20);
    ng_spb(&g, pattern + 2, 64, 100); /* cut at the snap length */
    ng_pb(&g, 1, 1700000000000000002ull, pattern + 3, 21);
    ng_spb(&g, pattern + 4, 12, 12);
    ng_spb(&g, pattern + 5, 12, 200); /* claims 64 bytes, holds 12: malformed */
    save("spb.pcapng", g.b, g.n);
    free(g.b);
    static const struct want_frame w[] = {
        {0, 30, 30, CAPTURE_LINK_ETHERNET, pattern},
        {1700000000000000001ull, 20, 20, CAPTURE_LINK_RAW, pattern + 1},
        {1700000000000000001ull, 64, 100, CAPTURE_LINK_ETHERNET, pattern + 2},
        {1700000000000000002ull, 21, 21, CAPTURE_LINK_RAW, pattern + 3},
        {1700000000000000002ull, 12, 12, CAPTURE_LINK_ETHERNET, pattern + 4},
    };
    struct got got;
    read_both("spb.pcapng", &got);
    check_frames(&got, w, 5, -EBADMSG, "block of type 3 in pcapng dump file is too short");

    g = (struct ng){0}; /* a Simple Packet Block before any interface */
    ng_section(&g, 0);
    ng_spb(&g, pattern, 12, 12);
    save("spb.pcapng", g.b, g.n);
    free(g.b);
    read_both("spb.pcapng", &got);
    check_frames(&got, w, 0, -EBADMSG,
                 "a packet arrived on interface 0, but there's no Interface Description Block "
                 "for that interface");
    unlink(tmp_path("spb.pcapng"));
}

TEST(pcapng_blocks_other_than_packets_interfaces_and_sections_are_skipped)
{
    fill_pattern();
    struct ng g = {0};
    ng_section(&g, 0);
    ng_other(&g, 4, "\x01\x00\x08\x00\x0a\x00\x00\x01host\0\0\0\0\0\0\0"); /* name resolution */
    ng_iface(&g, 1, 0, 9, 0);
    ng_epb(&g, 0, 1, pattern, 14, 14);
    ng_other(&g, 5, "\0\0\0\0\0\0\0\0\0\0\0\0");        /* interface statistics */
    ng_other(&g, 10, "TLSK\x04\x00\x00\x00keys");       /* decryption secrets */
    ng_other(&g, 0xbad, "\x1f\x7e\x00\x00custom");      /* custom, to copy */
    ng_other(&g, 0x40000bad, "\x1f\x7e\x00\x00custom"); /* custom, not to copy */
    ng_other(&g, 0x80000001, "");                       /* local use */
    ng_other(&g, 0x12345678, "who knows");              /* unknown */
    ng_epb(&g, 0, 2, pattern + 1, 15, 15);
    save("skip.pcapng", g.b, g.n);
    free(g.b);
    static const struct want_frame w[] = {
        {1, 14, 14, CAPTURE_LINK_ETHERNET, pattern},
        {2, 15, 15, CAPTURE_LINK_ETHERNET, pattern + 1},
    };
    struct got got;
    read_both("skip.pcapng", &got);
    check_frames(&got, w, 2, 0, NULL);
    CHECK_INT(check_same_as_libpcap("skip.pcapng", true), 2);
    unlink(tmp_path("skip.pcapng"));
}

TEST(pcapng_interface_of_an_unsupported_link_type_does_not_stop_the_read)
{
    fill_pattern();
    struct ng g = {0};
    ng_section(&g, 0);
    ng_iface(&g, 1, 0, 9, 0);
    ng_iface(&g, 9, 0, 9, 0);   /* PPP */
    ng_iface(&g, 147, 0, 9, 0); /* USER0 */
    ng_iface(&g, 12, 0, 9, 0);  /* raw IP, as libpcap takes 12 */
    for (uint32_t i = 0; i < 4; i++)
        ng_epb(&g, i, 10 + i, pattern + i, 14, 14);
    save("ppp.pcapng", g.b, g.n);
    free(g.b);
    static const struct want_frame w[] = {
        {10, 14, 14, CAPTURE_LINK_ETHERNET, pattern},
        {11, 14, 14, 9, pattern + 1},
        {12, 14, 14, 147, pattern + 2},
        {13, 14, 14, CAPTURE_LINK_RAW, pattern + 3},
    };
    struct got got;
    read_both("ppp.pcapng", &got);
    check_frames(&got, w, 4, 0, NULL);
    /* decode counts them and goes on. */
    struct capture_frame fr = {.data = pattern, .caplen = 14, .wirelen = 14, .link = 147};
    struct packet pkt;
    CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_ERROR);
    CHECK_STR(pkt.error_reason, "unsupported_link");

    /* Every link type a classic file may have maps the same in a pcapng file. */
    for (size_t i = 0; i < sizeof supported_links / sizeof supported_links[0]; i++) {
        g = (struct ng){0};
        ng_section(&g, (int)i % 2);
        ng_iface(&g, supported_links[i].linktype, 0, NO_TSRESOL, 0);
        ng_epb(&g, 0, 1, pattern, 20, 20);
        save("link.pcapng", g.b, g.n);
        free(g.b);
        read_both("link.pcapng", &got);
        if (got.n != 1 || got.f[0].link != supported_links[i].link)
            TEST_FAIL_AT("LINKTYPE %u: %d frames, link %d, expected %d",
                         supported_links[i].linktype, got.n, got.f[0].link,
                         supported_links[i].link);
    }
    unlink(tmp_path("ppp.pcapng"));
    unlink(tmp_path("link.pcapng"));
}

/* Cut anywhere: the packets of the blocks wholly before the cut come out, then a clean end at a
 * block boundary or -EIO inside a block; a cut inside the first section header fails the open.
 * The same through a pipe, and as libpcap for a file of one link type. */
TEST(every_cut_of_a_pcapng_file_gives_the_packets_before_it_then_eio)
{
    fill_pattern();
    for (int multi = 0; multi < 2; multi++) {
        struct ng g = {0};
        size_t bounds[16], packets_before[16];
        int nb = 0, packets = 0;
        if (multi) {
            write_three_links(&g, 1);
        } else {
            ng_section(&g, 0);
            ng_iface(&g, 1, 0, 9, 0);
            ng_other(&g, 0x80000001, "skip me");
            ng_epb(&g, 0, 1, pattern, 14, 14);
            ng_epb(&g, 0, 2, pattern + 1, 33, 33);
            ng_spb(&g, pattern + 2, 14, 14);
        }
        /* Block boundaries, and the packets before each. */
        for (size_t off = 0; off < g.n;) {
            uint32_t type, len;
            memcpy(&type, g.b + off, 4);
            memcpy(&len, g.b + off + 4, 4);
            if (multi) {
                type = __builtin_bswap32(type);
                len = __builtin_bswap32(len);
            }
            off += len;
            packets += type == 6 || type == 3;
            bounds[nb] = off;
            packets_before[nb++] = (size_t)packets;
        }
        CHECK_INT(bounds[nb - 1], g.n);
        for (size_t cut = 0; cut <= g.n; cut++) {
            save("cut.pcapng", g.b, cut);
            int want = 0, boundary = 0;
            for (int i = 0; i < nb; i++)
                if (bounds[i] <= cut) {
                    want = (int)packets_before[i];
                    boundary = bounds[i] == cut;
                }
            struct got got;
            read_both("cut.pcapng", &got);
            if (cut < bounds[0]) {
                if (got.opened)
                    TEST_FAIL_AT("cut at %zu, inside the section header: opened", cut);
                continue;
            }
            if (got.n != want || got.end != (boundary ? 0 : -EIO))
                TEST_FAIL_AT("cut at %zu: %d frames, end %d \"%s\"; expected %d, %d", cut, got.n,
                             got.end, got.err, want, boundary ? 0 : -EIO);
            /* libpcap opens no file cut before its first interface is whole (-2). */
            int same = multi ? want : check_same_as_libpcap("cut.pcapng", true);
            if (same != want && !(same == -2 && want == 0))
                TEST_FAIL_AT("cut at %zu: %d frames as libpcap", cut, same);
        }
        free(g.b);
    }
    /* libpcap's words: the 104-byte block of the first packet cut after 58 of its bytes. */
    struct ng g = {0};
    ng_section(&g, 0);
    ng_iface(&g, 1, 0, 9, 0);
    size_t at = g.n;
    ng_epb(&g, 0, 1, pattern, 60, 60);
    save("cut.pcapng", g.b, at + 58);
    free(g.b);
    struct got got;
    read_both("cut.pcapng", &got);
    check_frames(&got, NULL, 0, -EIO,
                 "truncated pcapng dump file; tried to read 96 bytes, only got 50");
    unlink(tmp_path("cut.pcapng"));
}

/* Each malformed block comes after a good packet, which is still read. */
TEST(pcapng_malformed_block_is_ebadmsg_after_the_packets_before_it)
{
    static const struct {
        const char *what;
        uint32_t type, len, trailer; /* trailer 0: the file ends after the length */
        const char *err;
    } v[] = {
        {"short", 0x12345678, 8, 0, "block in pcapng dump file has a length of 8 < 12"},
        {"odd", 0x12345678, 30, 30,
         "block in pcapng dump file has a length of 30 that is not a multiple of 4"},
        {"disagree", 0x12345678, 16, 20, "block total length in header and trailer don't match"},
        {"huge", 0x12345678, 0x7ffffffc, 0, "pcapng block size 2147483644 > maximum 16777216"},
        {"past the max", 0x12345678, (16u << 20) + 4, 0,
         "pcapng block size 16777220 > maximum 16777216"},
        {"epb short", 6, 28, 28, "block of type 6 in pcapng dump file is too short"},
        {"idb short", 1, 16, 16, "block of type 1 in pcapng dump file is too short"},
        {"spb short", 3, 12, 12, "block of type 3 in pcapng dump file is too short"},
        {"pb short", 2, 20, 20, "block of type 2 in pcapng dump file is too short"},
        {"shb short", 0x0a0d0d0a, 24, 24,
         "block of type 168627466 in pcapng dump file is too short"},
    };
    fill_pattern();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct ng g = {0};
        ng_section(&g, 0);
        ng_iface(&g, 1, 0, 9, 0);
        ng_epb(&g, 0, 1, pattern, 14, 14);
        ng_u32(&g, v[i].type);
        ng_u32(&g, v[i].len);
        if (v[i].trailer) { /* the rest of the block: zeros (an SHB's magic first), trailer */
            static const uint8_t zeros[64];
            size_t body = v[i].len - 12;
            if (v[i].type == 0x0a0d0d0a) {
                ng_u32(&g, 0x1a2b3c4d);
                body -= 4;
            }
            ng_bytes(&g, zeros, body);
            ng_u32(&g, v[i].trailer);
        }
        save("bad.pcapng", g.b, g.n);
        free(g.b);
        struct got got;
        read_both("bad.pcapng", &got);
        if (got.n != 1 || got.end != -EBADMSG || strcmp(got.err, v[i].err) != 0)
            TEST_FAIL_AT("%s: %d frames, end %d \"%s\"", v[i].what, got.n, got.end, got.err);
    }

    /* Packets of interfaces never described, a bad byte-order magic and version, bad options. */
    for (int i = 0; i < 9; i++) {
        struct ng g = {0};
        ng_section(&g, i % 2);
        ng_iface(&g, 1, 0, 9, 0);
        ng_epb(&g, 0, 1, pattern, 14, 14);
        size_t at;
        const char *err = NULL;
        switch (i) {
        case 0:
            ng_epb(&g, 1, 2, pattern, 14, 14);
            err = "a packet arrived on interface 1, but there's no Interface Description Block "
                  "for that interface";
            break;
        case 1:
            ng_pb(&g, 7, 2, pattern, 14);
            err = "a packet arrived on interface 7, but there's no Interface Description Block "
                  "for that interface";
            break;
        case 2:
            at = ng_begin(&g, 0x0a0d0d0a);
            ng_u32(&g, 0x1a2b3c4e);
            ng_u32(&g, 1);
            ng_u64(&g, 0);
            ng_end(&g, at);
            err = "the file has a section with a bad byte order magic field";
            break;
        case 3:
            at = ng_begin(&g, 0x0a0d0d0a);
            ng_u32(&g, 0x1a2b3c4d);
            ng_u16(&g, 2);
            ng_u16(&g, 0);
            ng_u64(&g, 0);
            ng_end(&g, at);
            err = "unknown pcapng savefile major version number 2";
            break;
        case 4:
            ng_iface(&g, 1, 0, 20, 0);
            err = "Interface Description Block if_tsresol option resolution 10^-20 is too high";
            break;
        case 5:
            ng_iface(&g, 1, 0, 0x80 | 64, 0);
            err = "Interface Description Block if_tsresol option resolution 2^-64 is too high";
            break;
        case 6: /* an option longer than the block */
            at = ng_begin(&g, 1);
            ng_u16(&g, 1);
            ng_u16(&g, 0);
            ng_u32(&g, 0);
            ng_u16(&g, 2);
            ng_u16(&g, 200);
            ng_end(&g, at);
            err = "block of type 1 in pcapng dump file is too short";
            break;
        case 7: /* an option length past the block, hostile */
            at = ng_begin(&g, 1);
            ng_u16(&g, 1);
            ng_u16(&g, 0);
            ng_u32(&g, 0);
            ng_u16(&g, 14);
            ng_u16(&g, 0xffff);
            ng_u32(&g, 0);
            ng_end(&g, at);
            err = "block of type 1 in pcapng dump file is too short";
            break;
        case 8: /* caplen past the block */
            at = ng_begin(&g, 6);
            ng_u32(&g, 0);
            ng_u32(&g, 0);
            ng_u32(&g, 3);
            ng_u32(&g, 0xfffffff0);
            ng_u32(&g, 14);
            ng_bytes(&g, pattern, 16);
            ng_end(&g, at);
            err = "block of type 6 in pcapng dump file is too short";
            break;
        }
        ng_epb(&g, 0, 3, pattern, 14, 14);
        save("bad.pcapng", g.b, g.n);
        free(g.b);
        struct got got;
        read_both("bad.pcapng", &got);
        if (got.n != 1 || got.end != -EBADMSG || strcmp(got.err, err) != 0)
            TEST_FAIL_AT("case %d: %d frames, end %d \"%s\", expected \"%s\"", i, got.n, got.end,
                         got.err, err);
        if (i != 3 && check_same_as_libpcap("bad.pcapng", true) != 1)
            TEST_FAIL_AT("case %d: not as libpcap", i);
    }
    unlink(tmp_path("bad.pcapng"));
}

TEST(pcapng_first_section_header_that_cannot_be_read_fails_the_open)
{
    static const struct {
        const char *bytes;
        size_t n;
        const char *err;
    } v[] = {
        {"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00", 8, "unknown file format"},
        {"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1b", 12, "unknown file format"},
        {"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x01\x00", 14,
         "truncated pcapng dump file; tried to read 20 bytes, only got 6"},
        {"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\x4d\x3c\x2b\x1a\x02\x00\x00\x00\xff\xff\xff\xff\xff"
         "\xff\xff\xff\x1c\x00\x00\x00",
         28, "unknown pcapng savefile major version number 2"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        save("open.pcapng", v[i].bytes, v[i].n);
        struct got got;
        read_both("open.pcapng", &got);
        char want[256];
        snprintf(want, sizeof want, "cannot read capture %s: %s", tmp_path("open.pcapng"),
                 v[i].err);
        CHECK(!got.opened);
        CHECK_STR(got.err, want);
    }
    /* A section header alone: an empty capture. */
    struct ng g = {0};
    ng_section(&g, 1);
    save("open.pcapng", g.b, g.n);
    free(g.b);
    struct got got;
    read_both("open.pcapng", &got);
    CHECK(got.opened);
    check_frames(&got, NULL, 0, 0, NULL);
    unlink(tmp_path("open.pcapng"));
}

/* Standard input and pipes read through one buffer that grows for a long block, up to
 * CAPTURE_PCAPNG_MAX_BLOCK; a block past that is refused before it is read. */
TEST(pcapng_block_longer_than_the_read_buffer_is_read_from_a_pipe)
{
    static uint8_t big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 13);
    struct ng g = {0};
    ng_section(&g, 0);
    ng_iface(&g, 1, 0, 9, 0);
    for (int i = 0; i < 3; i++) {
        ng_epb(&g, 0, 1, pattern, 14, 14);
        ng_epb(&g, 0, 2, big + i, sizeof big - 7, sizeof big - 7);
    }
    save("big.pcapng", g.b, g.n);
    free(g.b);
    struct got got;
    read_both("big.pcapng", &got);
    CHECK_INT(got.n, 6);
    CHECK_INT(got.end, 0);
    CHECK_INT(got.f[5].caplen, sizeof big - 7);
    CHECK(memcmp(got.f[5].data, big + 2, 8) == 0);
    unlink(tmp_path("big.pcapng"));
}

TEST(pcapng_on_standard_input_is_read_with_every_link_type)
{
    fill_pattern();
    struct ng g = {0};
    write_three_links(&g, 0);
    save("stdin.pcapng", g.b, g.n);
    free(g.b);
    if (!freopen(tmp_path("stdin.pcapng"), "rb", stdin)) {
        TEST_FAIL_AT("freopen: %s", strerror(errno));
        return;
    }
    struct got got = {0};
    struct capture_pcap *cap = capture_pcap_open("-", got.err, sizeof got.err);
    if (!cap) {
        TEST_FAIL_AT("open -: %s", got.err);
        return;
    }
    CHECK(!capture_pcap_in_place(cap));
    read_all(cap, &got);
    capture_pcap_free(cap);
    check_frames(&got, three_links, 5, 0, NULL);
    unlink(tmp_path("stdin.pcapng"));
}

/* A file opened while another is mapped is read through the buffer (one SIGBUS handler), and
 * one that shrinks while it is mapped ends as truncated. */
TEST(pcapng_file_shrinking_while_mapped_ends_as_truncated_without_a_crash)
{
    static uint8_t big[10000];
    struct ng g = {0};
    ng_section(&g, 0);
    ng_iface(&g, 1, 0, 9, 0);
    for (int i = 0; i < 3; i++) {
        memset(big, 'a' + i, sizeof big);
        ng_epb(&g, 0, 100 + (uint64_t)i, big, sizeof big, sizeof big);
    }
    save("shrink.pcapng", g.b, g.n);
    free(g.b);
    struct capture_pcap *cap = open_ok("shrink.pcapng");
    if (!cap)
        return;
    CHECK(capture_pcap_in_place(cap));
    struct capture_pcap *other = open_ok("shrink.pcapng");
    if (other) {
        struct got got = {0};
        CHECK(!capture_pcap_in_place(other));
        read_all(other, &got);
        CHECK_INT(got.n, 3);
        CHECK_INT(got.end, 0);
        capture_pcap_free(other);
    }
    struct capture_frame fr;
    char err[256] = "";
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
    CHECK_INT(fr.data[9999], 'a');
    /* Cut inside the second packet, in the page after the one its header is in. */
    CHECK_INT(truncate(tmp_path("shrink.pcapng"), 28 + 40 + 10040 + 5000), 0);
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), -EIO);
    CHECK_STR(err, "truncated pcapng dump file; the file shrank while it was read");
    CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 0);
    capture_pcap_free(cap);
    unlink(tmp_path("shrink.pcapng"));
}

TEST(free_accepts_null)
{
    capture_pcap_free(NULL);
}

/* ---- third-party captures through capture_pcap and decode_frame ---- */

/* Expected results found independently with tshark 4.0, with reassembly off:
 *   T="tshark -o ip.defragment:FALSE -o ipv6.defragment:FALSE"
 *   udp:   $T -r F -Y 'udp && !icmp && !ipv6.fraghdr' | wc -l
 *   tcp:   $T -r F -Y 'tcp && !icmp' | wc -l
 *   frag:  $T -r F -Y 'ipv6.fraghdr || ip.flags.mf==1 || ip.frag_offset>0' | wc -l
 *   skip:  $T -r F -Y '(!ip && !ipv6) || icmp' | wc -l     (ARP, STP/CDP over LLC; ICMP)
 *   udp bytes: $T -r F -Y 'udp && !icmp && !ipv6.fraghdr' -T fields -e udp.length
 *              | awk '{s+=$1-8} END{print s}'
 *   tcp bytes: $T -o tcp.desegment_tcp_streams:FALSE -r F -Y 'tcp && !icmp' -T fields
 *              -e tcp.len | awk '{s+=$1} END{print s}'
 *   frag bytes (IPv6 only here): $T -r F -Y ipv6.fraghdr -T fields -e ipv6.plen
 *              | awk '{s+=$1-8} END{print s}'
 *   tunnels: $T -r F -Y 'ip.proto==4 || ip.proto==41' | wc -l
 *   first timestamp: $T -r F -c 1 -T fields -e frame.time_epoch
 * No frame of these files is cut at the snap length (frame.cap_len < frame.len matches none)
 * and none is malformed, so no DECODE_ERROR is expected. */
struct shared_expect {
    const char *file;
    int link;
    uint32_t udp, tcp, frag, skip, tunnelled;
    uint64_t udp_bytes, tcp_bytes, frag_bytes;
    uint64_t first_ts_ns;
};

static const struct shared_expect shared[] = {
    /* Raw IP (LINKTYPE_RAW, DLT_RAW 12 here); despite the name, no IP-in-IP inside. */
    {"heplify_ipip0.pcap", CAPTURE_LINK_RAW, 8, 0, 0, 0, 0, 5709, 0, 0, 0},
    /* Linux cooked v1, IPv6, two datagrams in two fragments each. */
    {"sngrep_ipv6frag.pcap", CAPTURE_LINK_LINUX_SLL, 30, 0, 4, 0, 0, 25007, 0, 3578,
     1647926426047902000ull},
    /* Ethernet, TCP, two segments inside IPv4-in-IPv4. */
    {"sngrep_ipip.pcap", CAPTURE_LINK_ETHERNET, 0, 4, 0, 0, 2, 0, 2749, 0, 0},
    /* BSD NULL loopback, TCP with 16 KiB segments. */
    {"suricata-verify_sip-body-large__sip-body-large.pcap", CAPTURE_LINK_NULL, 0, 16, 0, 0, 0, 0,
     66000, 0, 0},
    /* Raw IPv4 (LINKTYPE_IPV4 228), 9.5 KB datagrams unfragmented. */
    {"zeek_sip-long-request-response-paths.pcap", CAPTURE_LINK_IPV4, 2, 0, 0, 0, 0, 19111, 0, 0, 0},
    /* pcapng, Ethernet, SIP and RTP. */
    {"sipnab_b2bua-asterisk.pcapng", CAPTURE_LINK_ETHERNET, 416, 0, 0, 0, 0, 101290, 0, 0,
     1463595783881485000ull},
    /* Ethernet with ARP and LLC (STP, CDP) frames to skip. */
    {"sipnab_SIP_CALL_RTP_G711.pcap", CAPTURE_LINK_ETHERNET, 3583, 522, 0, 164, 0, 562129, 99282, 0,
     0},
    /* PPPoE sessions. */
    {"sipnab_DTMFsipinfo.pcap", CAPTURE_LINK_ETHERNET, 32, 0, 0, 0, 0, 23293, 0, 0, 0},
    /* An ICMP error quoting a UDP header: skipped. */
    {"sipnab_metasploit-sip-invite-spoof.pcap", CAPTURE_LINK_ETHERNET, 2, 0, 0, 1, 0, 468, 0, 0, 0},
    {"sngrep_aaa.pcap", CAPTURE_LINK_ETHERNET, 590, 57, 0, 44, 0, 68956, 814, 0, 0},
    {"sipnab_sip-over-tcp.pcap", CAPTURE_LINK_ETHERNET, 68, 16, 0, 0, 0, 10510, 4035, 0, 0},
    {"sipnab_sipp-branch-scenario.pcapng", CAPTURE_LINK_ETHERNET, 8989, 0, 0, 0, 0, 3035885, 0, 0,
     0},
};

TEST(shared_captures_decode_to_the_counts_tshark_finds)
{
    DIR *d = opendir(SIPSCOPE_SHARED_PCAPS);
    if (!d)
        TEST_SKIP("no shared captures at %s", SIPSCOPE_SHARED_PCAPS);
    closedir(d);
    for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++) {
        const struct shared_expect *e = &shared[i];
        char path[512], err[256] = "";
        snprintf(path, sizeof path, "%s/%s", SIPSCOPE_SHARED_PCAPS, e->file);
        struct capture_pcap *cap = capture_pcap_open(path, err, sizeof err);
        if (!cap) {
            TEST_FAIL_AT("%s", err);
            continue;
        }
        uint32_t n[5] = {0}, tunnelled = 0, frames = 0;
        uint64_t bytes[3] = {0};
        struct capture_frame fr;
        struct packet pkt;
        int rc;
        while ((rc = capture_pcap_next(cap, &fr, err, sizeof err)) == 1) {
            if (fr.link != e->link)
                TEST_FAIL_AT("%s frame %u: link %d, expected %d", e->file, frames, fr.link,
                             e->link);
            if (frames++ == 0 && e->first_ts_ns && fr.ts_ns != e->first_ts_ns)
                TEST_FAIL_AT("%s: first timestamp %" PRIu64, e->file, fr.ts_ns);
            enum decode_result r = decode_frame(&fr, 0, &pkt);
            n[r]++;
            if (r <= DECODE_FRAGMENT)
                bytes[r] += pkt.payload_len;
            tunnelled += pkt.tunnels != 0;
            if (r == DECODE_ERROR)
                fprintf(stderr, "  %s frame %u: %s\n", e->file, frames, pkt.error_reason);
        }
        if (rc != 0)
            TEST_FAIL_AT("%s: read error %d: %s", e->file, rc, err);
        capture_pcap_free(cap);
        if (n[DECODE_UDP] != e->udp || n[DECODE_TCP] != e->tcp || n[DECODE_FRAGMENT] != e->frag ||
            n[DECODE_SKIP] != e->skip || n[DECODE_ERROR] != 0 || tunnelled != e->tunnelled)
            TEST_FAIL_AT("%s: udp %u tcp %u frag %u skip %u error %u tunnelled %u, expected "
                         "%u %u %u %u 0 %u",
                         e->file, n[0], n[1], n[2], n[3], n[4], tunnelled, e->udp, e->tcp, e->frag,
                         e->skip, e->tunnelled);
        if (bytes[DECODE_UDP] != e->udp_bytes || bytes[DECODE_TCP] != e->tcp_bytes ||
            bytes[DECODE_FRAGMENT] != e->frag_bytes)
            TEST_FAIL_AT("%s: payload bytes udp %" PRIu64 " tcp %" PRIu64 " frag %" PRIu64
                         ", expected %" PRIu64 " %" PRIu64 " %" PRIu64,
                         e->file, bytes[0], bytes[1], bytes[2], e->udp_bytes, e->tcp_bytes,
                         e->frag_bytes);
    }
}

/* Field-level checks against tshark -T fields on single frames. */
static int read_frame(const char *file, uint32_t number, struct capture_pcap **capp,
                      struct capture_frame *fr)
{
    char path[512], err[256] = "";
    snprintf(path, sizeof path, "%s/%s", SIPSCOPE_SHARED_PCAPS, file);
    *capp = capture_pcap_open(path, err, sizeof err);
    if (!*capp) {
        TEST_FAIL_AT("%s", err);
        return -1;
    }
    for (uint32_t i = 0; i < number; i++) {
        if (capture_pcap_next(*capp, fr, err, sizeof err) != 1) {
            TEST_FAIL_AT("%s: no frame %u", file, number);
            return -1;
        }
    }
    return 0;
}

TEST(shared_ipip_frame_reports_the_inner_tcp_flow)
{
    DIR *d = opendir(SIPSCOPE_SHARED_PCAPS);
    if (!d)
        TEST_SKIP("no shared captures at %s", SIPSCOPE_SHARED_PCAPS);
    closedir(d);
    /* tshark -r sngrep_ipip.pcap -Y frame.number==2 -T fields -e ip.src -e ip.dst
     *   -e tcp.srcport -e tcp.dstport -e tcp.seq_raw -e tcp.flags -e tcp.len
     * 10.15.196.229,10.15.193.31  10.15.194.19,10.15.197.103  33093 5090 658869884 0x0018 621 */
    struct capture_pcap *cap;
    struct capture_frame fr;
    if (read_frame("sngrep_ipip.pcap", 2, &cap, &fr) == 0) {
        struct packet pkt;
        char a[64];
        CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_TCP);
        CHECK_INT(pkt.tunnels, 1);
        CHECK_INT(decode_addr_format(&pkt, 0, a, sizeof a), 12);
        CHECK_STR(a, "10.15.193.31");
        CHECK_INT(decode_addr_format(&pkt, 1, a, sizeof a), 13);
        CHECK_STR(a, "10.15.197.103");
        CHECK_INT(pkt.sport, 33093);
        CHECK_INT(pkt.dport, 5090);
        CHECK_INT(pkt.tcp_seq, 658869884u);
        CHECK_INT(pkt.tcp_flags, 0x18);
        CHECK_INT(pkt.payload_len, 621);
        CHECK(memcmp(pkt.payload, "SIP/2.0 183 ", 12) == 0); /* sip.Status-Line */
    }
    capture_pcap_free(cap);
}

TEST(shared_ipv6_fragments_carry_tsharks_fragment_fields)
{
    DIR *d = opendir(SIPSCOPE_SHARED_PCAPS);
    if (!d)
        TEST_SKIP("no shared captures at %s", SIPSCOPE_SHARED_PCAPS);
    closedir(d);
    /* tshark -o ipv6.defragment:FALSE -r sngrep_ipv6frag.pcap -Y ipv6.fraghdr -T fields
     *   -e frame.number -e ipv6.plen -e ipv6.fraghdr.nxt -e ipv6.fraghdr.offset
     *   -e ipv6.fraghdr.more -e ipv6.fraghdr.ident -e ipv6.src -e ipv6.dst
     * 1  1456  17  0    1  0xb0647780  fd17:625c:f037:2:a00:27ff:feb9:1521  ...:feb9:3519
     * 2  259   17  181  0  0xb0647780  (same addresses); offset is in 8-octet units */
    struct capture_pcap *cap;
    struct capture_frame fr;
    if (read_frame("sngrep_ipv6frag.pcap", 1, &cap, &fr) == 0) {
        struct packet pkt;
        char a[64];
        CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_FRAGMENT);
        CHECK_INT(pkt.l4_proto, IPPROTO_UDP);
        CHECK_INT(pkt.frag_id, 0xb0647780u);
        CHECK_INT(pkt.frag_offset, 0);
        CHECK_INT(pkt.frag_more, 1);
        CHECK_INT(pkt.payload_len, 1448);
        CHECK_INT(pkt.dir, 0); /* sll.pkttype 0: to us */
        CHECK_INT(decode_addr_format(&pkt, 0, a, sizeof a), 35);
        CHECK_STR(a, "fd17:625c:f037:2:a00:27ff:feb9:1521");
        char err[256];
        CHECK_INT(capture_pcap_next(cap, &fr, err, sizeof err), 1);
        CHECK_INT(decode_frame(&fr, 0, &pkt), DECODE_FRAGMENT);
        CHECK_INT(pkt.frag_id, 0xb0647780u);
        CHECK_INT(pkt.frag_offset, 181 * 8);
        CHECK_INT(pkt.frag_more, 0);
        CHECK_INT(pkt.payload_len, 251);
        CHECK_INT(decode_addr_format(&pkt, 1, a, sizeof a), 35);
        CHECK_STR(a, "fd17:625c:f037:2:a00:27ff:feb9:3519");
    }
    capture_pcap_free(cap);
}

TEST_MAIN()
