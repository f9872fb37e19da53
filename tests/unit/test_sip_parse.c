#include "sip_parse.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "test.h"

/* test.h's CHECK_SLICE hands memcmp the slice pointer, which is NULL in an empty slice: undefined
 * even for a zero length, and UBSan says so. Empty against empty is compared here instead. */
#define CHECK_SL(s, str)                                                                           \
    do {                                                                                           \
        if ((s).len == 0 && (str)[0] == '\0')                                                      \
            break;                                                                                 \
        CHECK_SLICE(s, str);                                                                       \
    } while (0)

/* Inputs are copied against PROT_NONE pages so that a read past either end of the input faults
 * instead of passing silently. The region holds a whole SIP_MAX_MSG message and then some. */
#define GUARD_DATA (2 * (SIP_MAX_MSG + 1) + 8192)

static char *guard_base; /* first data byte, right after the leading guard page */
static size_t guard_data_len;

static void guard_setup(void)
{
    if (guard_base)
        return;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    guard_data_len = (GUARD_DATA + page - 1) / page * page;
    char *m = mmap(NULL, guard_data_len + 2 * page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("mmap");
        exit(2);
    }
    if (mprotect(m, page, PROT_NONE) || mprotect(m + page + guard_data_len, page, PROT_NONE)) {
        perror("mprotect");
        exit(2);
    }
    guard_base = m + page;
}

/* Copies n bytes so that they end right before the trailing guard page (at_end) or start right
 * after the leading one, and makes them read-only so a write to the input faults too. */
static const char *guarded(const char *src, size_t n, bool at_end)
{
    guard_setup();
    if (n > guard_data_len) {
        fprintf(stderr, "input too large for the guard region\n");
        exit(2);
    }
    if (mprotect(guard_base, guard_data_len, PROT_READ | PROT_WRITE)) {
        perror("mprotect");
        exit(2);
    }
    char *dst = at_end ? guard_base + guard_data_len - n : guard_base;
    memcpy(dst, src, n);
    if (mprotect(guard_base, guard_data_len, PROT_READ)) {
        perror("mprotect");
        exit(2);
    }
    return dst;
}

static struct sip_header hdrs[SIP_MAX_HEADERS];

static int parse(const char *s, size_t n, enum sip_parse_mode mode, struct sip_msg *m)
{
    return sip_parse(guarded(s, n, true), n, mode, m, hdrs, SIP_MAX_HEADERS);
}

#define PARSE_LIT(lit, mode, m) parse(lit, sizeof(lit) - 1, mode, m)

/* Fixtures: raw files under tests/fixtures/sip, CRLF preserved. */

static char fixture_buf[8192];

static size_t load_fixture(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/tests/fixtures/sip/%s", SIPSCOPE_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    size_t n = fread(fixture_buf, 1, sizeof(fixture_buf), f);
    fclose(f);
    return n;
}

/* Offset just past the empty line ending the header block (CRLF CRLF or a bare-LF variant). */
static size_t header_block_len(const char *s, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (s[i] == '\n' && s[i + 1] == '\n')
            return i + 2;
        if (s[i] == '\n' && s[i + 1] == '\r' && i + 2 < n && s[i + 2] == '\n')
            return i + 3;
    }
    return n;
}

struct fixture_case {
    const char *file;
    bool is_request;
    enum sip_method method;
    const char *method_name, *ruri;
    int status;
    const char *reason;
    const char *call_id, *from_uri, *from_tag, *to_uri, *to_tag;
    uint32_t cseq;
    enum sip_method cseq_method;
    const char *via_branch, *via_sent_by, *via_transport;
    int32_t content_length;
    size_t body_len;
    uint32_t n_headers;
    uint32_t anomalies; /* in datagram mode */
    bool stream_ok;     /* parses in stream mode (false: -EBADMSG once the headers are in) */
};

#define ALICE_CALL "a84b4c76e66710@pc33.atlanta.example.com"

static const struct fixture_case fixtures[] = {
    {
        .file = "invite_sdp.sip",
        .is_request = true,
        .method = SIP_METHOD_INVITE,
        .method_name = "INVITE",
        .ruri = "sip:bob@biloxi.example.com",
        .call_id = ALICE_CALL,
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 314159,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bK776asdhds",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 253,
        .body_len = 253,
        .n_headers = 14,
        .stream_ok = true,
    },
    {
        .file = "trying_100.sip",
        .is_request = false,
        .status = 100,
        .reason = "Trying",
        .call_id = ALICE_CALL,
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 314159,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bK776asdhds",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 6,
        .stream_ok = true,
    },
    {
        .file = "ringing_180.sip",
        .is_request = false,
        .status = 180,
        .reason = "Ringing",
        .call_id = ALICE_CALL,
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "a6c85cf",
        .cseq = 314159,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bK776asdhds",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 7,
        .stream_ok = true,
    },
    {
        .file = "ok_200.sip",
        .is_request = false,
        .status = 200,
        .reason = "OK",
        .call_id = ALICE_CALL,
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "a6c85cf",
        .cseq = 314159,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bK776asdhds",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 197,
        .body_len = 197,
        .n_headers = 13,
        .stream_ok = true,
    },
    {
        .file = "register.sip",
        .is_request = true,
        .method = SIP_METHOD_REGISTER,
        .method_name = "REGISTER",
        .ruri = "sip:registrar.biloxi.example.com",
        .call_id = "843817637684230@998sdasdh09",
        .from_uri = "sip:bob@biloxi.example.com",
        .from_tag = "456248",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 1826,
        .cseq_method = SIP_METHOD_REGISTER,
        .via_branch = "z9hG4bKnashds7",
        .via_sent_by = "bobspc.biloxi.example.com:5060",
        .via_transport = "TCP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 11,
        .stream_ok = true,
    },
    {
        .file = "bye.sip",
        .is_request = true,
        .method = SIP_METHOD_BYE,
        .method_name = "BYE",
        .ruri = "sip:alice@pc33.atlanta.example.com",
        .call_id = ALICE_CALL,
        .from_uri = "sip:bob@biloxi.example.com",
        .from_tag = "a6c85cf",
        .to_uri = "sip:alice@atlanta.example.com",
        .to_tag = "1928301774",
        .cseq = 231,
        .cseq_method = SIP_METHOD_BYE,
        .via_branch = "z9hG4bKnashds10",
        .via_sent_by = "192.0.2.4",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 8,
        .stream_ok = true,
    },
    {
        .file = "cancel.sip",
        .is_request = true,
        .method = SIP_METHOD_CANCEL,
        .method_name = "CANCEL",
        .ruri = "sip:bob@biloxi.example.com",
        .call_id = ALICE_CALL,
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 314159,
        .cseq_method = SIP_METHOD_CANCEL,
        .via_branch = "z9hG4bK776asdhds",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 7,
        .stream_ok = true,
    },
    {
        .file = "options.sip",
        .is_request = true,
        .method = SIP_METHOD_OPTIONS,
        .method_name = "OPTIONS",
        .ruri = "sip:carol@chicago.example.com",
        .call_id = "a84b4c76e66710",
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "1928301774",
        .to_uri = "sip:carol@chicago.example.com",
        .to_tag = "",
        .cseq = 63104,
        .cseq_method = SIP_METHOD_OPTIONS,
        .via_branch = "z9hG4bKhjhs8ass877",
        .via_sent_by = "pc33.atlanta.example.com",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 9,
        .stream_ok = true,
    },
    {
        .file = "compact.sip",
        .is_request = true,
        .method = SIP_METHOD_INVITE,
        .method_name = "INVITE",
        .ruri = "sip:bob@biloxi.example.com",
        .call_id = "compact-call-1@192.0.2.101",
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "c0mp4ct",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 1,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bKcompact1",
        .via_sent_by = "192.0.2.101:5060",
        .via_transport = "UDP",
        .content_length = 91,
        .body_len = 91,
        .n_headers = 16,
        .stream_ok = true,
    },
    {
        .file = "folded.sip",
        .is_request = true,
        .method = SIP_METHOD_INVITE,
        .method_name = "INVITE",
        .ruri = "sip:bob@biloxi.example.com",
        .call_id = "fold-1@pc33.atlanta.example.com",
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "f0ld",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 7,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bKfold1",
        .via_sent_by = "pc33.atlanta.example.com:5060",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 7,
        .anomalies = SIP_ANOM_FOLDED,
        .stream_ok = true,
    },
    {
        .file = "bare_lf.sip",
        .is_request = true,
        .method = SIP_METHOD_BYE,
        .method_name = "BYE",
        .ruri = "sip:alice@pc33.atlanta.example.com",
        .call_id = "barelf-1",
        .from_uri = "sip:bob@biloxi.example.com",
        .from_tag = "b1",
        .to_uri = "sip:alice@atlanta.example.com",
        .to_tag = "a1",
        .cseq = 2,
        .cseq_method = SIP_METHOD_BYE,
        .via_branch = "z9hG4bKbarelf",
        .via_sent_by = "192.0.2.4",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 6,
        .anomalies = SIP_ANOM_BARE_LF,
        .stream_ok = true,
    },
    {
        .file = "ipv6.sip",
        .is_request = true,
        .method = SIP_METHOD_INVITE,
        .method_name = "INVITE",
        .ruri = "sip:bob@[2001:db8::20]:5060",
        .call_id = "v6call@2001:db8::10",
        .from_uri = "sip:alice@[2001:db8::10]",
        .from_tag = "v6from",
        .to_uri = "sip:bob@[2001:db8::20]:5060",
        .to_tag = "",
        .cseq = 10,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bKv6a",
        .via_sent_by = "[2001:db8::10]:5060",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 8,
        .stream_ok = true,
    },
    {
        .file = "multi_via.sip",
        .is_request = false,
        .status = 486,
        .reason = "Busy Here",
        .call_id = "multivia-1",
        .from_uri = "sip:caller@example.com",
        .from_tag = "fr0m",
        .to_uri = "sip:x@y.example.com;tag=no",
        .to_tag = "yes",
        .cseq = 5,
        .cseq_method = SIP_METHOD_INVITE,
        .via_branch = "z9hG4bKp1a",
        .via_sent_by = "proxy1.example.com",
        .via_transport = "UDP",
        .content_length = 0,
        .body_len = 0,
        .n_headers = 7,
        .stream_ok = true,
    },
    {
        .file = "no_content_length.sip",
        .is_request = true,
        .method = SIP_METHOD_MESSAGE,
        .method_name = "MESSAGE",
        .ruri = "sip:bob@biloxi.example.com",
        .call_id = "msg-nocl-1",
        .from_uri = "sip:alice@atlanta.example.com",
        .from_tag = "m1",
        .to_uri = "sip:bob@biloxi.example.com",
        .to_tag = "",
        .cseq = 1,
        .cseq_method = SIP_METHOD_MESSAGE,
        .via_branch = "z9hG4bKmsg1",
        .via_sent_by = "pc33.atlanta.example.com",
        .via_transport = "UDP",
        .content_length = -1,
        .body_len = 18,
        .n_headers = 7,
        .anomalies = SIP_ANOM_NO_CONTENT_LENGTH,
        .stream_ok = false,
    },
};

#define N_FIXTURES (sizeof(fixtures) / sizeof(fixtures[0]))

static void check_fixture_values(const struct fixture_case *fc, const struct sip_msg *m)
{
    CHECK_INT(m->is_request, fc->is_request);
    CHECK_INT(m->method, fc->method);
    CHECK_SL(m->method_name, fc->method_name ? fc->method_name : "");
    CHECK_SL(m->ruri, fc->ruri ? fc->ruri : "");
    CHECK_INT(m->status, fc->status);
    CHECK_SL(m->reason, fc->reason ? fc->reason : "");
    CHECK_SL(m->call_id, fc->call_id);
    CHECK_SL(m->from_uri, fc->from_uri);
    CHECK_SL(m->from_tag, fc->from_tag);
    CHECK_SL(m->to_uri, fc->to_uri);
    CHECK_SL(m->to_tag, fc->to_tag);
    CHECK_INT(m->cseq, fc->cseq);
    CHECK_INT(m->cseq_method, fc->cseq_method);
    CHECK_STR(sip_method_name(m->cseq_method), sip_method_name(fc->cseq_method));
    CHECK_SL(m->via_branch, fc->via_branch);
    CHECK_SL(m->via_sent_by, fc->via_sent_by);
    CHECK_SL(m->via_transport, fc->via_transport);
    CHECK_INT(m->content_length, fc->content_length);
    CHECK_INT(m->body.len, fc->body_len);
    CHECK_INT(m->n_headers, fc->n_headers);
    CHECK_INT(m->error, SIP_ERR_NONE);
    CHECK(m->headers == hdrs);
}

TEST(every_fixture_yields_its_hand_derived_values_in_datagram_mode)
{
    for (size_t i = 0; i < N_FIXTURES; i++) {
        const struct fixture_case *fc = &fixtures[i];
        size_t n = load_fixture(fc->file);
        struct sip_msg m;
        int failed_before = test_failed_checks;
        int rc = parse(fixture_buf, n, SIP_PARSE_DATAGRAM, &m);
        if (rc != (int)n)
            TEST_FAIL_AT("%s: rc %d, expected %zu", fc->file, rc, n);
        check_fixture_values(fc, &m);
        CHECK_INT(m.anomalies, fc->anomalies);
        CHECK_INT(m.raw.len, n);
        CHECK_INT(m.body.p + m.body.len - m.raw.p, n);
        if (test_failed_checks != failed_before)
            fprintf(stderr, "  (the checks above are for %s)\n", fc->file);
    }
}

TEST(every_fixture_yields_the_same_values_in_stream_mode)
{
    for (size_t i = 0; i < N_FIXTURES; i++) {
        const struct fixture_case *fc = &fixtures[i];
        size_t n = load_fixture(fc->file);
        struct sip_msg m;
        int rc = parse(fixture_buf, n, SIP_PARSE_STREAM, &m);
        if (!fc->stream_ok) {
            CHECK_INT(rc, -EBADMSG);
            CHECK_INT(m.error, SIP_ERR_CONTENT_LENGTH);
            continue;
        }
        int failed_before = test_failed_checks;
        if (rc != (int)n)
            TEST_FAIL_AT("%s: rc %d, expected %zu", fc->file, rc, n);
        check_fixture_values(fc, &m);
        CHECK_INT(m.anomalies, fc->anomalies);
        if (test_failed_checks != failed_before)
            fprintf(stderr, "  (the checks above are for %s)\n", fc->file);
    }
}

TEST(every_stream_prefix_asks_for_more_bytes)
{
    for (size_t i = 0; i < N_FIXTURES; i++) {
        const struct fixture_case *fc = &fixtures[i];
        size_t n = load_fixture(fc->file);
        size_t hlen = header_block_len(fixture_buf, n);
        for (size_t k = 0; k < n; k++) {
            struct sip_msg m;
            int rc = parse(fixture_buf, k, SIP_PARSE_STREAM, &m);
            int want = (fc->stream_ok || k < hlen) ? -EAGAIN : -EBADMSG;
            if (rc != want)
                TEST_FAIL_AT("%s: prefix %zu: rc %d, expected %d", fc->file, k, rc, want);
        }
    }
}

TEST(every_datagram_prefix_parses_or_fails_cleanly_inside_its_bounds)
{
    for (size_t i = 0; i < N_FIXTURES; i++) {
        const struct fixture_case *fc = &fixtures[i];
        size_t n = load_fixture(fc->file);
        size_t hlen = header_block_len(fixture_buf, n);
        for (size_t k = 0; k <= n; k++) {
            for (int at_end = 0; at_end < 2; at_end++) {
                struct sip_msg m;
                const char *in = guarded(fixture_buf, k, at_end);
                int rc = sip_parse(in, k, SIP_PARSE_DATAGRAM, &m, hdrs, SIP_MAX_HEADERS);
                if (k < hlen) {
                    if (rc != -EAGAIN)
                        TEST_FAIL_AT("%s: prefix %zu: rc %d", fc->file, k, rc);
                    continue;
                }
                if (rc != (int)k) {
                    TEST_FAIL_AT("%s: prefix %zu: rc %d", fc->file, k, rc);
                    continue;
                }
                CHECK_INT(m.body.len, k - hlen);
                bool cut = fc->content_length > 0 && k < n;
                CHECK_INT(m.anomalies, fc->anomalies | (cut ? SIP_ANOM_BODY_TRUNCATED : 0));
            }
        }
    }
}

TEST(headers_are_stored_in_order_with_name_as_written_and_trimmed_value)
{
    size_t n = load_fixture("folded.sip");
    struct sip_msg m;
    CHECK_INT(parse(fixture_buf, n, SIP_PARSE_DATAGRAM, &m), (int)n);
    CHECK_INT(m.n_headers, 7);
    CHECK_SL(hdrs[0].name, "Via");
    CHECK_SL(hdrs[0].value, "SIP/2.0/UDP pc33.atlanta.example.com:5060\r\n ;branch=z9hG4bKfold1");
    CHECK_SL(hdrs[2].name, "From");
    CHECK_SL(hdrs[2].value, "\"Alice\" <sip:alice@atlanta.example.com>\r\n   ;tag=f0ld");
    CHECK_SL(hdrs[4].value, "7\r\n INVITE");
    CHECK_SL(hdrs[5].name, "Subject");
    CHECK_SL(hdrs[5].value, "I know you're there,\r\n         pick up the phone\r\n"
                            "         and talk to me!");
    CHECK_INT(hdrs[5].id, SIP_HDR_SUBJECT);
    CHECK_INT(m.first[SIP_HDR_SUBJECT], 6);
    CHECK_INT(m.first[SIP_HDR_CONTENT_LENGTH], 7);
    CHECK_INT(m.first[SIP_HDR_CONTACT], 0);
}

TEST(compact_forms_index_their_full_headers)
{
    size_t n = load_fixture("compact.sip");
    struct sip_msg m;
    CHECK_INT(parse(fixture_buf, n, SIP_PARSE_STREAM, &m), (int)n);
    static const uint8_t want[] = {
        SIP_HDR_VIA,
        SIP_HDR_TO,
        SIP_HDR_FROM,
        SIP_HDR_CALL_ID,
        SIP_HDR_CSEQ,
        SIP_HDR_CONTACT,
        SIP_HDR_SUPPORTED,
        SIP_HDR_SUBJECT,
        SIP_HDR_SESSION_EXPIRES,
        SIP_HDR_EVENT,
        SIP_HDR_ALLOW_EVENTS,
        SIP_HDR_REFER_TO,
        SIP_HDR_REFERRED_BY,
        SIP_HDR_CONTENT_ENCODING,
        SIP_HDR_CONTENT_TYPE,
        SIP_HDR_CONTENT_LENGTH,
    };
    CHECK_INT(m.n_headers, sizeof(want));
    for (size_t i = 0; i < sizeof(want) && i < m.n_headers; i++) {
        CHECK_INT(hdrs[i].id, want[i]);
        CHECK_INT(m.first[want[i]], i + 1);
    }
    CHECK_SL(sip_msg_header(&m, SIP_HDR_SUBJECT), "hello");
    CHECK_SL(sip_msg_header(&m, SIP_HDR_CONTENT_TYPE), "application/sdp");
    CHECK_SL(sip_msg_header(&m, SIP_HDR_SESSION_EXPIRES), "1800");
    CHECK_SL(sip_msg_header(&m, SIP_HDR_EXPIRES), "");
    CHECK_SL(m.body, "v=0\r\no=- 1 1 IN IP4 192.0.2.101\r\ns=-\r\nc=IN IP4 192.0.2.101\r\n"
                     "t=0 0\r\nm=audio 4000 RTP/AVP 0\r\n");
}

TEST(register_contacts_iterate_with_their_expires)
{
    size_t n = load_fixture("register.sip");
    struct sip_msg m;
    CHECK_INT(parse(fixture_buf, n, SIP_PARSE_STREAM, &m), (int)n);
    const char *uris[] = {"sip:bob@192.0.2.4", "sip:bob@192.0.2.5;transport=tcp",
                          "sip:bob@192.0.2.6"};
    const char *expires[] = {"3600", "600", "60"};
    size_t k = 0;
    for (uint32_t h = 0; h < m.n_headers; h++) {
        if (hdrs[h].id != SIP_HDR_CONTACT)
            continue;
        size_t pos = 0;
        struct slice item, v;
        while (sip_list_next(hdrs[h].value, &pos, &item)) {
            if (k < 3) {
                CHECK_SL(sip_addr_uri(item), uris[k]);
                CHECK(sip_header_param(item, SLICE_LIT("EXPIRES"), &v));
                CHECK_SL(v, expires[k]);
            }
            k++;
        }
    }
    CHECK_INT(k, 3);
    struct slice q;
    CHECK(sip_header_param(hdrs[7].value, SLICE_LIT("q"), &q));
    CHECK_SL(q, "0.5");
    CHECK(!sip_header_param(hdrs[6].value, SLICE_LIT("transport"), &q));
    CHECK_SL(sip_msg_header(&m, SIP_HDR_EXPIRES), "7200");
}

TEST(via_list_spans_headers_and_top_via_is_the_first_element)
{
    size_t n = load_fixture("multi_via.sip");
    struct sip_msg m;
    CHECK_INT(parse(fixture_buf, n, SIP_PARSE_STREAM, &m), (int)n);
    const char *want[] = {"SIP/2.0/UDP proxy1.example.com;branch=z9hG4bKp1a",
                          "SIP/2.0/UDP [2001:db8::1];branch=z9hG4bKp2b",
                          "SIP/2.0/TLS client.example.com:5061;branch=z9hG4bKc3c"};
    size_t k = 0;
    for (uint32_t h = 0; h < m.n_headers; h++) {
        if (hdrs[h].id != SIP_HDR_VIA)
            continue;
        size_t pos = 0;
        struct slice item;
        while (sip_list_next(hdrs[h].value, &pos, &item)) {
            if (k < 3)
                CHECK_SL(item, want[k]);
            k++;
        }
    }
    CHECK_INT(k, 3);
    /* The tag of a list value is the first element's; the branch of the first element, too. */
    struct slice b;
    CHECK(sip_header_param(hdrs[0].value, SLICE_LIT("branch"), &b));
    CHECK_SL(b, "z9hG4bKp1a");
}

TEST(tags_inside_quotes_or_angle_brackets_are_not_header_tags)
{
    struct slice t;
    struct slice v = SLICE_LIT("\"a;tag=no\" <sip:x@y;tag=no>;tag=yes");
    CHECK(sip_header_param(v, SLICE_LIT("tag"), &t));
    CHECK_SL(t, "yes");
    CHECK_SL(sip_addr_uri(v), "sip:x@y;tag=no");
    CHECK(!sip_header_param(SLICE_LIT("\"a;tag=no\" <sip:x@y;tag=no>"), SLICE_LIT("tag"), &t));
    CHECK(!sip_header_param(SLICE_LIT("<sip:x@y>, <sip:z@w>;tag=2"), SLICE_LIT("tag"), &t));
    CHECK(sip_header_param(SLICE_LIT("\"\\\"q;tag=no\" <sip:x@y> ; TAG = t1 ;lr"), SLICE_LIT("tag"),
                           &t));
    CHECK_SL(t, "t1");
    CHECK(sip_header_param(SLICE_LIT("<sip:x@y>;lr;tag=9"), SLICE_LIT("lr"), &t));
    CHECK_INT(t.len, 0);
    CHECK(sip_header_param(SLICE_LIT("<sip:x@y>;+sip.instance=\"<urn:a;b>\";tag=9"),
                           SLICE_LIT("+sip.instance"), &t));
    CHECK_SL(t, "\"<urn:a;b>\"");
    CHECK(sip_header_param(SLICE_LIT("<sip:x@y>;+sip.instance=\"<urn:a;b>\";tag=9"),
                           SLICE_LIT("tag"), &t));
    CHECK_SL(t, "9");
}

TEST(addr_uri_reads_name_addr_and_addr_spec_and_rejects_garbage)
{
    CHECK_SL(sip_addr_uri(SLICE_LIT("sip:a@b;tag=1")), "sip:a@b");
    CHECK_SL(sip_addr_uri(SLICE_LIT("  sip:a@b ;tag=1")), "sip:a@b");
    CHECK_SL(sip_addr_uri(SLICE_LIT("Bob Smith <sip:bob@[2001:db8::1]:5060>")),
             "sip:bob@[2001:db8::1]:5060");
    CHECK_SL(sip_addr_uri(SLICE_LIT("\"x <y>\" <tel:+1555>;tag=1")), "tel:+1555");
    CHECK_SL(sip_addr_uri(SLICE_LIT("*")), "*");
    CHECK_INT(sip_addr_uri(SLICE_LIT("<sip:unterminated")).len, 0);
    CHECK_INT(sip_addr_uri(SLICE_LIT("\"only a name\"")).len, 0);
    CHECK_INT(sip_addr_uri(SLICE_LIT("\"unterminated <sip:a@b>")).len, 0);
    CHECK_INT(sip_addr_uri(SLICE_LIT("Bob sip:bob@x")).len, 0);
    CHECK_INT(sip_addr_uri(SLICE_LIT("")).len, 0);
}

TEST(list_next_skips_empty_elements_and_honours_quotes)
{
    struct slice v = SLICE_LIT(" , \"a, b\" <sip:a,b@x>;p=1 ,, sip:c@d ,");
    size_t pos = 0;
    struct slice it;
    CHECK(sip_list_next(v, &pos, &it));
    CHECK_SL(it, "\"a, b\" <sip:a,b@x>;p=1");
    CHECK(sip_list_next(v, &pos, &it));
    CHECK_SL(it, "sip:c@d");
    CHECK(!sip_list_next(v, &pos, &it));
    CHECK(!sip_list_next(v, &pos, &it));
    pos = 0;
    CHECK(!sip_list_next(SLICE_LIT(" , "), &pos, &it));
}

TEST(header_ids_are_case_insensitive_and_cover_every_name)
{
    for (int id = 1; id < SIP_HDR_COUNT; id++) {
        const char *name = sip_header_name((enum sip_hdr)id);
        char up[64], low[64];
        size_t n = strlen(name);
        for (size_t i = 0; i < n; i++) {
            up[i] = (name[i] >= 'a' && name[i] <= 'z') ? (char)(name[i] - 32) : name[i];
            low[i] = slice_lower_char(name[i]);
        }
        CHECK_INT(sip_header_id(slice_make(name, n)), id);
        CHECK_INT(sip_header_id(slice_make(up, n)), id);
        CHECK_INT(sip_header_id(slice_make(low, n)), id);
    }
    const char compact[] = "imelcfsktvourxb";
    const enum sip_hdr cid[] = {SIP_HDR_CALL_ID,
                                SIP_HDR_CONTACT,
                                SIP_HDR_CONTENT_ENCODING,
                                SIP_HDR_CONTENT_LENGTH,
                                SIP_HDR_CONTENT_TYPE,
                                SIP_HDR_FROM,
                                SIP_HDR_SUBJECT,
                                SIP_HDR_SUPPORTED,
                                SIP_HDR_TO,
                                SIP_HDR_VIA,
                                SIP_HDR_EVENT,
                                SIP_HDR_ALLOW_EVENTS,
                                SIP_HDR_REFER_TO,
                                SIP_HDR_SESSION_EXPIRES,
                                SIP_HDR_REFERRED_BY};
    for (size_t i = 0; i < sizeof(cid) / sizeof(cid[0]); i++) {
        char lo = compact[i], hi = (char)(compact[i] - 32);
        CHECK_INT(sip_header_id(slice_make(&lo, 1)), cid[i]);
        CHECK_INT(sip_header_id(slice_make(&hi, 1)), cid[i]);
    }
    CHECK_INT(sip_header_id(SLICE_LIT("a")), SIP_HDR_OTHER);
    CHECK_INT(sip_header_id(SLICE_LIT("Call-IDs")), SIP_HDR_OTHER);
    CHECK_INT(sip_header_id(SLICE_LIT("Call\rID")), SIP_HDR_OTHER);
    CHECK_INT(sip_header_id(SLICE_LIT("X-Call-ID")), SIP_HDR_OTHER);
    CHECK_INT(sip_header_id(SLICE_LIT("")), SIP_HDR_OTHER);
    CHECK(sip_header_name(SIP_HDR_OTHER) == NULL);
    CHECK_STR(sip_header_name(SIP_HDR_CALL_ID), "Call-ID");
}

TEST(method_ids_are_case_sensitive)
{
    for (int id = 1; id < SIP_METHOD_COUNT; id++) {
        const char *name = sip_method_name((enum sip_method)id);
        CHECK_INT(sip_method_id(slice_make(name, strlen(name))), id);
    }
    CHECK_INT(sip_method_id(SLICE_LIT("invite")), SIP_METHOD_OTHER);
    CHECK_INT(sip_method_id(SLICE_LIT("INVITEX")), SIP_METHOD_OTHER);
    CHECK_STR(sip_method_name(SIP_METHOD_OTHER), "other");
    CHECK_STR(sip_method_name(SIP_METHOD_PRACK), "PRACK");
}

TEST(error_and_anomaly_names_are_snake_case_labels)
{
    CHECK_STR(sip_error_name(SIP_ERR_NONE), "none");
    CHECK_STR(sip_error_name(SIP_ERR_START_LINE), "start_line");
    CHECK_STR(sip_error_name(SIP_ERR_VERSION), "version");
    CHECK_STR(sip_error_name(SIP_ERR_STATUS_CODE), "status_code");
    CHECK_STR(sip_error_name(SIP_ERR_HEADER_SYNTAX), "header_syntax");
    CHECK_STR(sip_error_name(SIP_ERR_TOO_MANY_HEADERS), "too_many_headers");
    CHECK_STR(sip_error_name(SIP_ERR_TOO_LONG), "too_long");
    CHECK_STR(sip_error_name(SIP_ERR_MISSING_HEADER), "missing_header");
    CHECK_STR(sip_error_name(SIP_ERR_CSEQ), "cseq");
    CHECK_STR(sip_error_name(SIP_ERR_CONTENT_LENGTH), "content_length");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_BARE_LF), "bare_lf");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_FOLDED), "folded");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_BODY_TRUNCATED), "body_truncated");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_TRAILING_DATA), "trailing_data");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_NO_CONTENT_LENGTH), "no_content_length");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_BAD_CONTENT_LENGTH), "bad_content_length");
    CHECK_STR(sip_anomaly_name(SIP_ANOM_LEADING_CRLF), "leading_crlf");
}

/* A minimal valid message, and the lines to build variants from. */
#define L_VIA "Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
#define L_FROM "From: <sip:a@h>;tag=1\r\n"
#define L_TO "To: <sip:b@h>\r\n"
#define L_CID "Call-ID: c1\r\n"
#define L_CSEQ "CSeq: 1 OPTIONS\r\n"
#define L_CL0 "Content-Length: 0\r\n"
#define REQ "OPTIONS sip:b@h SIP/2.0\r\n"
#define HDRS L_VIA L_FROM L_TO L_CID L_CSEQ L_CL0

struct bad_case {
    const char *what;
    const char *in;
    size_t len;
    enum sip_parse_mode mode;
    int rc;
    enum sip_error err;
};

#define BAD(what, lit, mode, rc, err)                                                              \
    {                                                                                              \
        what, lit, sizeof(lit) - 1, mode, rc, err                                                  \
    }
#define D SIP_PARSE_DATAGRAM
#define S SIP_PARSE_STREAM

static const struct bad_case bad_cases[] = {
    BAD("no version", "OPTIONS sip:b@h\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("request SIP/3.0", "OPTIONS sip:b@h SIP/3.0\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_VERSION),
    BAD("request HTTP", "GET / HTTP/1.1\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("response HTTP", "HTTP/1.1 200 OK\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("response SIP/3.0", "SIP/3.0 200 OK\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_VERSION),
    BAD("response SIP/2.00", "SIP/2.00 200 OK\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_VERSION),
    BAD("status 99", "SIP/2.0 99 Low\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("status 099", "SIP/2.0 099 Low\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("status 700", "SIP/2.0 700 High\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("status 2x0", "SIP/2.0 2x0 OK\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("status 2000", "SIP/2.0 2000 OK\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("status missing", "SIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_STATUS_CODE),
    BAD("method not a token", "OPT<IONS sip:b@h SIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_START_LINE),
    BAD("empty request-uri", "OPTIONS  SIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("space in request-uri", "OPTIONS sip:b @h SIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_START_LINE),
    BAD("start line is whitespace", " \r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("header without colon", REQ "Max-Forwards 70\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("header name not a token", REQ "Max Forwards: 70\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("empty header name", REQ ": 70\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_HEADER_SYNTAX),
    BAD("first header folded", REQ " x: 70\r\n" HDRS "\r\n", D, -EBADMSG, SIP_ERR_HEADER_SYNTAX),
    BAD("missing Via", REQ L_FROM L_TO L_CID L_CSEQ L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("missing From", REQ L_VIA L_TO L_CID L_CSEQ L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("missing To", REQ L_VIA L_FROM L_CID L_CSEQ L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("missing Call-ID", REQ L_VIA L_FROM L_TO L_CSEQ L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("empty Call-ID", REQ L_VIA L_FROM L_TO "Call-ID:  \r\n" L_CSEQ L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("missing CSeq", REQ L_VIA L_FROM L_TO L_CID L_CL0 "\r\n", S, -EBADMSG,
        SIP_ERR_MISSING_HEADER),
    BAD("CSeq letters", REQ L_VIA L_FROM L_TO L_CID "CSeq: abc OPTIONS\r\n" L_CL0 "\r\n", D,
        -EBADMSG, SIP_ERR_CSEQ),
    BAD("CSeq no method", REQ L_VIA L_FROM L_TO L_CID "CSeq: 12\r\n" L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_CSEQ),
    BAD("CSeq trailing junk", REQ L_VIA L_FROM L_TO L_CID "CSeq: 12 BYE x\r\n" L_CL0 "\r\n", D,
        -EBADMSG, SIP_ERR_CSEQ),
    BAD("CSeq no space", REQ L_VIA L_FROM L_TO L_CID "CSeq: 12BYE\r\n" L_CL0 "\r\n", D, -EBADMSG,
        SIP_ERR_CSEQ),
    BAD("CSeq over 32 bits", REQ L_VIA L_FROM L_TO L_CID "CSeq: 4294967296 BYE\r\n" L_CL0 "\r\n", D,
        -EBADMSG, SIP_ERR_CSEQ),
    BAD("Content-Length letters, stream",
        REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: ten\r\n\r\n", S, -EBADMSG,
        SIP_ERR_CONTENT_LENGTH),
    BAD("Content-Length negative, stream",
        REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: -1\r\n\r\n", S, -EBADMSG,
        SIP_ERR_CONTENT_LENGTH),
    BAD("Content-Length missing, stream", REQ L_VIA L_FROM L_TO L_CID L_CSEQ "\r\n", S, -EBADMSG,
        SIP_ERR_CONTENT_LENGTH),
    BAD("Content-Length past 64 KiB, stream",
        REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 70000\r\n\r\n", S, -E2BIG,
        SIP_ERR_TOO_LONG),
    BAD("NUL in start line", "OPTIONS sip:b@h\0 SIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_START_LINE),
    BAD("NUL in header value", REQ "Subject: a\0b\r\n" HDRS "\r\n", S, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("NUL in header name", REQ "Sub\0ject: ab\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("NUL as a line", REQ HDRS "\0\r\n\r\n", D, -EBADMSG, SIP_ERR_HEADER_SYNTAX),
    BAD("lone CR in start line", "OPTIONS sip:b@h\rSIP/2.0\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_START_LINE),
    BAD("lone CR in header value", REQ "Subject: a\rb\r\n" HDRS "\r\n", S, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("lone CR as a line end", REQ HDRS "Subject: a\r\r\n\r\n", D, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
    BAD("lone CR as the empty line", REQ HDRS "\rX", D, -EBADMSG, SIP_ERR_HEADER_SYNTAX),
    BAD("lone CR before the start line", "\r\r\n" REQ HDRS "\r\n", D, -EBADMSG, SIP_ERR_START_LINE),
    BAD("other control byte", REQ "Subject: a\033b\r\n" HDRS "\r\n", D, -EBADMSG,
        SIP_ERR_HEADER_SYNTAX),
};

TEST(malformed_variants_are_rejected_with_their_reason)
{
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct sip_msg m;
        int rc = parse(bc->in, bc->len, bc->mode, &m);
        if (rc != bc->rc || m.error != bc->err)
            TEST_FAIL_AT("%s: rc %d error %s, expected rc %d error %s", bc->what, rc,
                         sip_error_name((enum sip_error)m.error), bc->rc, sip_error_name(bc->err));
        /* In stream mode no prefix can be an error the whole message is not. */
        for (size_t k = 0; k < bc->len; k++) {
            rc = parse(bc->in, k, SIP_PARSE_STREAM, &m);
            if (rc != -EAGAIN && !(rc == bc->rc && m.error == bc->err))
                TEST_FAIL_AT("%s: prefix %zu: rc %d error %s", bc->what, k, rc,
                             sip_error_name((enum sip_error)m.error));
        }
    }
}

TEST(minimal_message_parses_in_both_modes)
{
    static const char in[] = REQ HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);
    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    CHECK_INT(m.n_headers, 6);
    CHECK_SL(m.via_sent_by, "h");
    CHECK_SL(m.to_uri, "sip:b@h");
}

/* CSeq numbers: up to nine digits take the loop without overflow tests, longer ones (leading
 * zeros included) the tested one; 2^32 - 1 is the largest (RFC 3261 §8.1.1.5). */
TEST(cseq_numbers_up_to_32_bits_with_any_leading_zeros)
{
    static const char nine[] = REQ L_VIA L_FROM L_TO L_CID "CSeq: 999999999 BYE\r\n" L_CL0 "\r\n";
    static const char max[] = REQ L_VIA L_FROM L_TO L_CID "CSeq: 4294967295 BYE\r\n" L_CL0 "\r\n";
    static const char zeros[] =
        REQ L_VIA L_FROM L_TO L_CID "CSeq: 000000000000004294967295 BYE\r\n" L_CL0 "\r\n";
    static const char zero[] = REQ L_VIA L_FROM L_TO L_CID "CSeq: 0 BYE\r\n" L_CL0 "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(nine, D, &m), sizeof(nine) - 1);
    CHECK_INT(m.cseq, 999999999u);
    CHECK_INT(PARSE_LIT(max, D, &m), sizeof(max) - 1);
    CHECK_INT(m.cseq, 4294967295u);
    CHECK_INT(PARSE_LIT(zeros, D, &m), sizeof(zeros) - 1);
    CHECK_INT(m.cseq, 4294967295u);
    CHECK_INT(m.cseq_method, SIP_METHOD_BYE);
    CHECK_INT(PARSE_LIT(zero, D, &m), sizeof(zero) - 1);
    CHECK_INT(m.cseq, 0);
}

TEST(unknown_method_token_is_other_but_valid)
{
    static const char in[] = "FOO-BAR.x sip:b@h SIP/2.0\r\n" L_VIA L_FROM L_TO L_CID
                             "CSeq: 9 FOO-BAR.x\r\n" L_CL0 "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);
    CHECK_INT(m.is_request, 1);
    CHECK_INT(m.method, SIP_METHOD_OTHER);
    CHECK_SL(m.method_name, "FOO-BAR.x");
    CHECK_INT(m.cseq_method, SIP_METHOD_OTHER);
    CHECK_SL(m.cseq_method_name, "FOO-BAR.x");
    static const char lower[] = "invite sip:b@h SIP/2.0\r\n" HDRS "\r\n";
    CHECK_INT(PARSE_LIT(lower, S, &m), sizeof(lower) - 1);
    CHECK_INT(m.method, SIP_METHOD_OTHER);
}

TEST(version_is_case_insensitive_and_trailing_space_is_tolerated)
{
    static const char req[] = "OPTIONS sip:b@h sip/2.0 \r\n" HDRS "\r\n";
    static const char resp[] = "sip/2.0 603 \r\n" HDRS "\r\n";
    static const char bare[] = "SIP/2.0 200\r\n" HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(req, S, &m), sizeof(req) - 1);
    CHECK_SL(m.ruri, "sip:b@h");
    CHECK_INT(PARSE_LIT(resp, S, &m), sizeof(resp) - 1);
    CHECK_INT(m.status, 603);
    CHECK_SL(m.reason, "");
    CHECK_INT(PARSE_LIT(bare, S, &m), sizeof(bare) - 1);
    CHECK_INT(m.status, 200);
    CHECK_INT(m.is_request, 0);
}

TEST(leading_empty_lines_are_skipped_and_counted_in_the_length)
{
    static const char in[] = "\r\n\r\n\n" REQ HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);
    CHECK_INT(m.anomalies, SIP_ANOM_LEADING_CRLF | SIP_ANOM_BARE_LF);
    CHECK_INT(m.raw.len, sizeof(in) - 1 - 5);
    CHECK(m.raw.p[0] == 'O');
    CHECK_INT(PARSE_LIT("\r\n\r\n", S, &m), -EAGAIN);
    CHECK_INT(PARSE_LIT("\r\n\r\n", D, &m), -EAGAIN);
    CHECK_INT(PARSE_LIT("", D, &m), -EAGAIN);
    CHECK_INT(sip_parse(NULL, 0, S, &m, hdrs, SIP_MAX_HEADERS), -EAGAIN);
}

TEST(whitespace_around_the_colon_is_allowed)
{
    static const char in[] = REQ "Via  :  SIP / 2.0 / TCP  h : 5070 ;branch=z9hG4bKw\r\n"
                                 "From\t:<sip:a@h>;tag=1\r\n" L_TO "Call-ID:c1 \t\r\n" L_CSEQ
                                 "Content-Length :0\r\n\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);
    CHECK_SL(hdrs[0].name, "Via");
    CHECK_SL(m.via_transport, "TCP");
    CHECK_SL(m.via_sent_by, "h : 5070");
    CHECK_SL(m.via_branch, "z9hG4bKw");
    CHECK_SL(m.from_tag, "1");
    CHECK_SL(m.call_id, "c1");
    CHECK_INT(m.content_length, 0);
}

TEST(via_without_branch_or_readable_sent_by_leaves_slices_empty)
{
    static const char nobranch[] =
        REQ "Via: SIP/2.0/UDP [::1]\r\n" L_FROM L_TO L_CID L_CSEQ L_CL0 "\r\n";
    static const char junk[] = REQ "Via: junk\r\n" L_FROM L_TO L_CID L_CSEQ L_CL0 "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(nobranch, S, &m), sizeof(nobranch) - 1);
    CHECK_SL(m.via_sent_by, "[::1]");
    CHECK_SL(m.via_transport, "UDP");
    CHECK_INT(m.via_branch.len, 0);
    CHECK_INT(PARSE_LIT(junk, S, &m), sizeof(junk) - 1);
    CHECK_INT(m.via_sent_by.len, 0);
    CHECK_INT(m.via_transport.len, 0);
    CHECK_INT(m.via_branch.len, 0);
}

TEST(repeated_headers_keep_the_first_for_extracted_values)
{
    static const char in[] = REQ L_VIA "Via: SIP/2.0/TCP other;branch=z9hG4bK2\r\n" L_FROM
                                       "From: <sip:z@z>;tag=2\r\n" L_TO L_CID L_CSEQ L_CL0 "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);
    CHECK_INT(m.n_headers, 8);
    CHECK_INT(m.first[SIP_HDR_VIA], 1);
    CHECK_INT(m.first[SIP_HDR_FROM], 3);
    CHECK_SL(m.via_branch, "z9hG4bK1");
    CHECK_SL(m.from_tag, "1");
}

TEST(datagram_body_is_clamped_and_trailing_bytes_ignored)
{
    static const char longer[] = REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 3\r\n\r\n"
                                                                    "abcdef";
    static const char shorter[] = REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 9\r\n\r\n"
                                                                     "abc";
    static const char bad[] = REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 3x\r\n\r\n"
                                                                 "abcd";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(longer, D, &m), sizeof(longer) - 1);
    CHECK_SL(m.body, "abc");
    CHECK_INT(m.raw.len, sizeof(longer) - 1 - 3);
    CHECK_INT(m.anomalies, SIP_ANOM_TRAILING_DATA);
    CHECK_INT(PARSE_LIT(shorter, D, &m), sizeof(shorter) - 1);
    CHECK_SL(m.body, "abc");
    CHECK_INT(m.content_length, 9);
    CHECK_INT(m.anomalies, SIP_ANOM_BODY_TRUNCATED);
    CHECK_INT(PARSE_LIT(bad, D, &m), sizeof(bad) - 1);
    CHECK_SL(m.body, "abcd");
    CHECK_INT(m.content_length, -1);
    CHECK_INT(m.anomalies, SIP_ANOM_BAD_CONTENT_LENGTH);
}

TEST(stream_returns_one_message_and_waits_for_its_body)
{
    static const char two[] = REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 3\r\n\r\n"
                                                                 "abc\r\n\r\n" REQ HDRS "\r\n";
    static const size_t first_len =
        sizeof(REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 3\r\n\r\nabc") - 1;
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(two, S, &m), first_len);
    CHECK_SL(m.body, "abc");
    CHECK_INT(m.anomalies, 0);
    /* The keep-alive CRLFs before the second message belong to it. */
    CHECK_INT(parse(two + first_len, sizeof(two) - 1 - first_len, S, &m),
              sizeof(two) - 1 - first_len);
    CHECK_INT(m.anomalies, SIP_ANOM_LEADING_CRLF);
    CHECK_INT(m.body.len, 0);
    CHECK_INT(parse(two, first_len - 1, S, &m), -EAGAIN);
}

TEST(too_many_headers_is_e2big)
{
    static const char in[] = REQ HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(sip_parse(in, sizeof(in) - 1, S, &m, hdrs, 5), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_MANY_HEADERS);
    CHECK_INT(sip_parse(in, sizeof(in) - 1, S, &m, hdrs, 6), sizeof(in) - 1);

    /* SIP_MAX_HEADERS + 1 headers against an array of SIP_MAX_HEADERS. */
    static char big[16384];
    size_t n = 0;
    n += (size_t)snprintf(big + n, sizeof(big) - n, "%s", REQ HDRS);
    for (int i = 0; i < SIP_MAX_HEADERS + 1 - 6; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "X-H%d: %d\r\n", i, i);
    n += (size_t)snprintf(big + n, sizeof(big) - n, "\r\n");
    CHECK_INT(parse(big, n, S, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_MANY_HEADERS);
    /* Exactly SIP_MAX_HEADERS fits: drop the last header line. */
    char *last = big + n - 3;
    while (last[-1] != '\n')
        last--;
    size_t cut = (size_t)(big + n - 2 - last);
    memmove(last, big + n - 2, 2);
    n -= cut;
    CHECK_INT(parse(big, n, S, &m), (int)n);
    CHECK_INT(m.n_headers, SIP_MAX_HEADERS);
}

static char huge[2 * SIP_MAX_MSG];

/* A message of exactly `total` bytes: the minimal headers, then a Subject padded to size. */
static size_t make_sized(size_t total)
{
    static const char head[] = REQ HDRS "Subject: ";
    memcpy(huge, head, sizeof(head) - 1);
    size_t pad = total - (sizeof(head) - 1) - 4;
    memset(huge + sizeof(head) - 1, 'x', pad);
    memcpy(huge + sizeof(head) - 1 + pad, "\r\n\r\n", 4);
    return total;
}

TEST(messages_up_to_64k_parse_and_longer_ones_are_e2big)
{
    struct sip_msg m;
    size_t n = make_sized(SIP_MAX_MSG);
    CHECK_INT(parse(huge, n, S, &m), SIP_MAX_MSG);
    CHECK_INT(parse(huge, n, D, &m), SIP_MAX_MSG);
    CHECK_INT(m.raw.len, SIP_MAX_MSG);
    CHECK_INT(parse(huge, n - 1, S, &m), -EAGAIN);
    n = make_sized(SIP_MAX_MSG + 1);
    CHECK_INT(parse(huge, n, S, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_LONG);
    CHECK_INT(parse(huge, n, D, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_LONG);
    /* Cut before its end, it is known to be too long once SIP_MAX_MSG bytes hold no end. */
    CHECK_INT(parse(huge, SIP_MAX_MSG - 1, S, &m), -EAGAIN);
    CHECK_INT(parse(huge, SIP_MAX_MSG, S, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_LONG);
    /* Headers that fit but a body that does not. */
    static const char head[] = REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: 65500\r\n\r\n";
    memcpy(huge, head, sizeof(head) - 1);
    memset(huge + sizeof(head) - 1, 'b', 65500);
    CHECK_INT(parse(huge, sizeof(head) - 1 + 65500, S, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_LONG);
    CHECK_INT(parse(huge, sizeof(head) - 1 + 65500, D, &m), -E2BIG);
    CHECK_INT(m.error, SIP_ERR_TOO_LONG);
}

TEST(a_failed_parse_leaves_the_message_fully_written)
{
    struct sip_msg m;
    memset(&m, 0xa5, sizeof(m));
    CHECK_INT(PARSE_LIT("SIP/2.0 99 x\r\n", D, &m), -EBADMSG);
    CHECK_INT(m.n_headers, 0);
    CHECK_INT(m.call_id.len, 0);
    CHECK_INT(m.content_length, -1);
    CHECK_INT(m.anomalies, 0);
    memset(&m, 0xa5, sizeof(m));
    CHECK_INT(PARSE_LIT("OPTIONS sip:x SIP/2.0\r\nVia: x\r\n", D, &m), -EAGAIN);
    CHECK_INT(m.error, SIP_ERR_NONE);
    CHECK_INT(m.call_id.len, 0);
}

/* Line ends and stray bytes at every offset of the 64-byte chunks the parser reads: a Subject of
 * growing length moves every later line by one byte per step. */
TEST(line_ends_and_stray_bytes_are_found_at_every_chunk_offset)
{
    static char in[1024];
    struct sip_msg m;
    for (size_t pad = 0; pad < 140; pad++) {
        size_t n = 0;
        memcpy(in, REQ, sizeof(REQ) - 1);
        n += sizeof(REQ) - 1;
        memcpy(in + n, "Subject: ", 9);
        n += 9;
        size_t subj = n;
        memset(in + n, 's', pad + 1);
        n += pad + 1;
        memcpy(in + n, "\r\n" HDRS "\r\n", sizeof("\r\n" HDRS "\r\n") - 1);
        n += sizeof("\r\n" HDRS "\r\n") - 1;
        int rc = parse(in, n, S, &m);
        if (rc != (int)n || m.n_headers != 7 || hdrs[0].value.len != pad + 1 ||
            m.via_branch.len != 8 || m.anomalies != 0)
            TEST_FAIL_AT("pad %zu: rc %d n_headers %u", pad, rc, m.n_headers);
        /* A stray byte anywhere in the Subject value, or a CR where its LF should be. */
        static const char stray[] = {'\0', '\r', '\033', '\n'};
        for (size_t k = 0; k < sizeof(stray); k++) {
            size_t at = subj + pad / 2;
            char keep = in[at];
            in[at] = stray[k];
            rc = parse(in, n, D, &m);
            in[at] = keep;
            /* An LF in the middle only splits the line: the rest "sss" has no colon. With a
             * one-byte Subject nothing is left but the CRLF, which then ends the headers. */
            enum sip_error want =
                (stray[k] == '\n' && pad == 0) ? SIP_ERR_MISSING_HEADER : SIP_ERR_HEADER_SYNTAX;
            if (rc != -EBADMSG || m.error != want)
                TEST_FAIL_AT("pad %zu stray %d: rc %d error %u", pad, stray[k], rc, m.error);
        }
        char keep = in[subj + pad + 2];
        in[subj + pad + 2] = 'x'; /* the LF after the Subject: CR then 'x' is a lone CR */
        rc = parse(in, n, D, &m);
        in[subj + pad + 2] = keep;
        if (rc != -EBADMSG || m.error != SIP_ERR_HEADER_SYNTAX)
            TEST_FAIL_AT("pad %zu lone CR: rc %d error %u", pad, rc, m.error);
    }
}

/* Every pair of byte values side by side, at several offsets in an 8-byte word: the scanners'
 * masks must be exact per byte (the portable path's SWAR arithmetic must not let a borrow or a
 * carry mark a neighbour), and bytes from 0x80 up are no control bytes. First in a Subject value
 * (the line scan: a control byte but HT is an error, unless a backslash before it makes it a
 * quoted-pair, which a CR cannot be), then in a parameter value (the value scan: it ends at
 * whitespace, a control byte, ';' or ','). LF is left out: it ends the line. */
TEST(every_pair_of_byte_values_is_classified_exactly)
{
    static char in[256];
    static const char head[] = REQ "Subject: ";
    static const char tail[] = "zzzzzzzzzzzzzzzz\r\n" HDRS "\r\n";
    struct sip_msg m;
    for (unsigned shift = 1; shift <= 8; shift += 3) {
        for (unsigned a = 0; a < 256; a++) {
            for (unsigned b = 0; b < 256; b++) {
                if (a == '\n' || b == '\n')
                    continue;
                size_t n = sizeof(head) - 1, vs = n;
                memcpy(in, head, n);
                memset(in + n, 'x', shift);
                n += shift;
                in[n++] = (char)a;
                in[n++] = (char)b;
                memcpy(in + n, tail, sizeof(tail) - 1);
                n += sizeof(tail) - 1;
                bool ctl =
                    (a < 0x20 && a != '\t') || (b < 0x20 && b != '\t' && (a != '\\' || b == '\r'));
                int rc = parse(in, n, D, &m);
                if (ctl ? rc != -EBADMSG || m.error != SIP_ERR_HEADER_SYNTAX
                        : rc != (int)n || hdrs[0].value.len != shift + 2 + 16 ||
                              memcmp(hdrs[0].value.p, in + vs, shift + 2 + 16) != 0)
                    TEST_FAIL_AT("Subject, bytes 0x%02x 0x%02x after %u: rc %d", a, b, shift, rc);

                static const char pre[] = ";p=";
                n = sizeof(pre) - 1;
                memcpy(in, pre, n);
                memset(in + n, 'x', shift);
                n += shift;
                in[n++] = (char)a;
                in[n++] = (char)b;
                memset(in + n, 'z', 16);
                n += 16;
                size_t want = shift;
                if (a > 0x20 && a != ';' && a != ',') {
                    want++;
                    if (b > 0x20 && b != ';' && b != ',')
                        want += 1 + 16;
                }
                struct slice val;
                if (!sip_header_param(slice_make(in, n), slice_make("p", 1), &val) ||
                    val.p != in + 3 || val.len != want)
                    TEST_FAIL_AT("parameter, bytes 0x%02x 0x%02x after %u: length %zu, want %zu",
                                 a, b, shift, val.len, want);
            }
        }
    }
}

TEST(tabs_are_whitespace_in_values_and_around_the_colon)
{
    static const char in[] = REQ "Subject\t:\tone\ttwo\t\r\n" HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    CHECK_SL(hdrs[0].name, "Subject");
    CHECK_SL(hdrs[0].value, "one\ttwo");
    CHECK_INT(m.anomalies, 0);
}

TEST(unknown_header_names_are_kept_and_must_be_tokens)
{
    static const char in[] =
        REQ "X-Custom.Header_1!: v\r\nP-Very-Long-Private-Header-Name: w\r\n" HDRS "\r\n";
    static const char bad[] = REQ "X-Cust@m: v\r\n" HDRS "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    CHECK_SL(hdrs[0].name, "X-Custom.Header_1!");
    CHECK_INT(hdrs[0].id, SIP_HDR_OTHER);
    CHECK_SL(hdrs[1].name, "P-Very-Long-Private-Header-Name");
    CHECK_SL(hdrs[1].value, "w");
    CHECK_INT(PARSE_LIT(bad, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_HEADER_SYNTAX);
}

/* RFC 3261 §25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F), so a quoted string may hold
 * any control byte but CR and LF after a backslash. RFC 4475 §3.1.1.2 (intmeth), a message every
 * parser must accept, has "BEL:\<07> NUL:\<00> DEL:\<7F>" in its To display name. Such a byte is
 * accepted in a header line only: not in the start line, not after an escaped backslash ("\\"),
 * and a CR never (it would end the line). */
TEST(control_bytes_escaped_as_quoted_pairs_are_accepted_in_header_lines)
{
    static const char in[] = REQ L_VIA L_FROM
        "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:b@h>\r\n" L_CID L_CSEQ L_CL0 "\r\n";
    static const char to_value[] = "\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:b@h>";
    static const char in_ruri[] = "OPTIONS sip:b\\\x01@h SIP/2.0\r\n" HDRS "\r\n";
    static const char in_reason[] = "SIP/2.0 200 O\\\x01K\r\n" HDRS "\r\n";
    static const char no_lf[] = "OPTIONS sip:b\\\x01@h";
    static const char two_bs[] = REQ "Subject: a\\\\\x01"
                                     "b\r\n" HDRS "\r\n";
    static const char three_bs[] = REQ "Subject: a\\\\\\\x01"
                                       "b\r\n" HDRS "\r\n";
    static const char lone_cr[] = REQ "Subject: a\\\rb\r\n" HDRS "\r\n";
    struct sip_msg m;

    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    CHECK_INT(hdrs[2].id, SIP_HDR_TO);
    CHECK_INT(hdrs[2].value.len, sizeof(to_value) - 1);
    CHECK(memcmp(hdrs[2].value.p, to_value, sizeof(to_value) - 1) == 0);
    CHECK_SL(m.to_uri, "sip:b@h");
    CHECK_SL(m.to_tag, "");
    CHECK_SL(m.call_id, "c1");
    CHECK_INT(PARSE_LIT(in, S, &m), sizeof(in) - 1);

    CHECK_INT(PARSE_LIT(in_ruri, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_START_LINE);
    CHECK_INT(PARSE_LIT(in_reason, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_START_LINE);
    CHECK_INT(PARSE_LIT(no_lf, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_START_LINE);
    CHECK_INT(PARSE_LIT(two_bs, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_HEADER_SYNTAX);
    CHECK_INT(PARSE_LIT(three_bs, D, &m), (int)sizeof(three_bs) - 1);
    CHECK_SL(hdrs[0].value, "a\\\\\\\x01"
                            "b");
    CHECK_INT(PARSE_LIT(lone_cr, D, &m), -EBADMSG);
    CHECK_INT(m.error, SIP_ERR_HEADER_SYNTAX);

    /* The backslash and its byte on either side of every 64-byte chunk boundary. */
    for (size_t pad = 0; pad < 80; pad++) {
        char buf[256];
        size_t n = 0;
        memcpy(buf, REQ "Subject: ", sizeof(REQ "Subject: ") - 1);
        n += sizeof(REQ "Subject: ") - 1;
        memset(buf + n, 'x', pad);
        n += pad;
        buf[n++] = '\\';
        buf[n++] = '\x1b';
        buf[n++] = 'y';
        size_t vlen = pad + 3;
        memcpy(buf + n, "\r\n" HDRS "\r\n", sizeof("\r\n" HDRS "\r\n") - 1);
        n += sizeof("\r\n" HDRS "\r\n") - 1;
        int rc = parse(buf, n, D, &m);
        if (rc != (int)n || hdrs[0].value.len != vlen)
            TEST_FAIL_AT("pad %zu: rc %d, value length %zu", pad, rc, hdrs[0].value.len);
    }
}

TEST(from_uri_is_the_angle_bracket_uri_even_after_a_broken_display_name)
{
    static const char in[] = REQ L_VIA "From: \"unclosed <sip:a@h>;tag=9\r\n"
                                       "To: sip:b@h ; tag = t2 ;x\r\n" L_CID L_CSEQ L_CL0 "\r\n";
    struct sip_msg m;
    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    CHECK_SL(m.from_uri, "sip:a@h");
    CHECK_SL(m.from_tag, "9");
    CHECK_SL(m.to_uri, "sip:b@h");
    CHECK_SL(m.to_tag, "t2");
    /* The strict helper calls the same value garbage. */
    CHECK_INT(sip_addr_uri(hdrs[1].value).len, 0);
}

/* From and To: the URI is the addr-spec inside the first '<' outside a quoted string (RFC 3261
 * §25.1 name-addr), the tag a header parameter after its '>'. Display names and gen-values may be
 * quoted strings holding '<' and '>'; brackets after the URI are outside the grammar and must
 * neither replace the URI nor hide the tag (the call tracker keys calls on the From tag). Each
 * value goes into From and To of one message; the expected slices are read off the input. */
TEST(addr_uri_is_in_the_first_angle_brackets_and_the_tag_follows_them)
{
    static const struct {
        const char *value, *uri, *tag;
    } cases[] = {
        {"\"a <b> c\" <sip:x@y>;tag=1", "sip:x@y", "1"},
        {"<sip:x@y>;tag=1;p=\"<q>\"", "sip:x@y", "1"},
        {"<sip:x@y>;p=\"<q>\";tag=1", "sip:x@y", "1"},
        {"\"a \\\"<b>\\\"\" <sip:x@y>", "sip:x@y", ""},
        {"\"a \\\"<b>\\\"\" <sip:x@y>;tag=2", "sip:x@y", "2"},
        {"sip:x@y;tag=1", "sip:x@y", "1"},
        {"<sip:x@y;transport=tcp>;tag=1", "sip:x@y;transport=tcp", "1"},
        {"<sip:x@y;tag=no>;tag=1", "sip:x@y;tag=no", "1"},
        /* Outside the grammar: brackets unquoted among the parameters, an unclosed quote
         * there, a second value. The first <...> and the tag after it still hold. */
        {"<sip:x@y>;tag=1;p=<sip:evil@z>", "sip:x@y", "1"},
        {"<sip:x@y>;tag=1;p=\"<sip:evil@z>", "sip:x@y", "1"},
        {"<sip:x@y>;tag=1, <sip:evil@z>;tag=2", "sip:x@y", "1"},
        {"A <sip:x@y>;tag=1 <sip:evil@z>", "sip:x@y", "1"},
        {"\"a\" <sip:x@y>;tag=1;p=<q>", "sip:x@y", "1"},
        {"sip:x@y;tag=1;p=<sip:evil@z>", "sip:x@y", "1"},
        /* The lenient reading kept: an unterminated display name's URI is its <...>. */
        {"\"unclosed <sip:x@y>;tag=1", "sip:x@y", "1"},
    };
    char in[512];
    struct sip_msg m;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int n =
            snprintf(in, sizeof(in), REQ L_VIA "From: %s\r\nTo: %s\r\n" L_CID L_CSEQ L_CL0 "\r\n",
                     cases[i].value, cases[i].value);
        int rc = parse(in, (size_t)n, D, &m);
        if (rc != n || !slice_eq(m.from_uri, slice_make(cases[i].uri, strlen(cases[i].uri))) ||
            !slice_eq(m.from_tag, slice_make(cases[i].tag, strlen(cases[i].tag))) ||
            !slice_eq(m.to_uri, m.from_uri) || !slice_eq(m.to_tag, m.from_tag))
            TEST_FAIL_AT("%s: rc %d, uri \"%.*s\" tag \"%.*s\" (To: \"%.*s\" \"%.*s\")",
                         cases[i].value, rc, (int)m.from_uri.len, m.from_uri.p, (int)m.from_tag.len,
                         m.from_tag.p, (int)m.to_uri.len, m.to_uri.p, (int)m.to_tag.len,
                         m.to_tag.p);
    }
}

/* The CSeq number, the Content-Length and the Via's port are read eight bytes at a time where
 * eight are readable, byte by byte near the end of the buffer: every length of digits, followed
 * (or, in a Content-Length, interrupted) by each of the bytes that border the digits, and by
 * those that carry when 6 is added to them, against plain arithmetic. The header is the last one,
 * so that the digits end 4 to 20 bytes before a guard page. */
TEST(numbers_are_read_the_same_in_words_and_bytes)
{
    static const unsigned char after[] = {' ', '\t', '/', ':', 'a', 0x7f, 0xf9, 0xfa, 0xff};
    char in[256], digits[16], sent_by[32];

    for (int nd = 0; nd <= 12; nd++) {
        uint64_t want = 0;
        for (int i = 0; i < nd; i++) {
            digits[i] = (char)('0' + (i * 7 + nd) % 10);
            want = want * 10 + (uint64_t)(digits[i] - '0');
        }
        snprintf(sent_by, sizeof(sent_by), nd ? "h:%.*s" : "h", nd, digits);
        for (size_t a = 0; a < sizeof(after); a++) {
            struct sip_msg m;
            char x = (char)after[a];
            bool lws = x == ' ' || x == '\t';
            int n = snprintf(in, sizeof(in),
                             REQ L_VIA L_FROM L_TO L_CID L_CL0 "CSeq: %.*s%cBYE\r\n\r\n", nd,
                             digits, x);
            int rc = parse(in, (size_t)n, D, &m);
            if (nd > 0 && nd <= 10 && want <= UINT32_MAX && lws
                    ? rc != n || m.cseq != (uint32_t)want
                    : rc != -EBADMSG || m.error != SIP_ERR_CSEQ)
                TEST_FAIL_AT("CSeq of %d digits then 0x%02x: rc %d cseq %u", nd, after[a], rc,
                             (unsigned)m.cseq);

            /* Whitespace would be trimmed off the value's end: the other bytes go between the
             * digits, whitespace nowhere. */
            char value[16];
            int vl = snprintf(value, sizeof(value), "%.*s", nd / 2, digits);
            if (!lws)
                value[vl++] = x;
            memcpy(value + vl, digits + nd / 2, (size_t)(nd - nd / 2));
            vl += nd - nd / 2;
            value[vl] = 0;
            n = snprintf(in, sizeof(in),
                         REQ L_VIA L_FROM L_TO L_CID L_CSEQ "Content-Length: %s\r\n\r\n", value);
            rc = parse(in, (size_t)n, D, &m);
            int32_t cl = lws && nd > 0 && want <= INT32_MAX ? (int32_t)want : -1;
            if (rc != n || m.content_length != cl)
                TEST_FAIL_AT("Content-Length of %d digits, 0x%02x: rc %d length %d, expected %d",
                             nd, after[a], rc, m.content_length, cl);

            n = snprintf(in, sizeof(in),
                         REQ L_FROM L_TO L_CID L_CSEQ L_CL0
                         "Via: SIP/2.0/UDP h:%.*s%c;branch=z9hG4bK1\r\n\r\n",
                         nd, digits, x);
            rc = parse(in, (size_t)n, D, &m);
            if (rc != n)
                TEST_FAIL_AT("Via port of %d digits then 0x%02x: rc %d", nd, after[a], rc);
            CHECK_SL(m.via_sent_by, sent_by);
        }
        int n = snprintf(in, sizeof(in),
                         REQ L_FROM L_TO L_CID L_CSEQ L_CL0 "Via: SIP/2.0/UDP h:%.*s\r\n\r\n", nd,
                         digits);
        struct sip_msg m;
        CHECK_INT(parse(in, (size_t)n, D, &m), n);
        CHECK_SL(m.via_sent_by, sent_by);
    }
}

TEST(helpers_accept_the_empty_slice_of_an_absent_header)
{
    struct sip_msg m;
    static const char in[] = REQ HDRS "\r\n";
    CHECK_INT(PARSE_LIT(in, D, &m), sizeof(in) - 1);
    struct slice none = sip_msg_header(&m, SIP_HDR_CONTACT), it;
    size_t pos = 0;
    CHECK(none.p == NULL);
    CHECK_INT(none.len, 0);
    CHECK(!sip_list_next(none, &pos, &it));
    CHECK_INT(pos, 0);
    CHECK(!sip_header_param(none, SLICE_LIT("expires"), &it));
    CHECK_INT(sip_addr_uri(none).len, 0);
    CHECK(!sip_header_param(SLICE_LIT("<sip:a>;;x"), SLICE_LIT(""), &it));
    CHECK_SL(sip_msg_header(&m, SIP_HDR_CSEQ), "1 OPTIONS");
    CHECK_INT(sip_msg_header(&m, SIP_HDR_OTHER).len, 0);
    CHECK_INT(sip_msg_header(&m, SIP_HDR_COUNT).len, 0);
}

/* RFC 4475 torture messages (tests/fixtures/sip/rfc4475, README.md there). Every value below is
 * read by hand from the message files. */

/* How a message fares in stream mode. */
enum torture_stream {
    TS_SAME = 0, /* parses, the whole file, with the same values */
    TS_FIRST,    /* parses, the message its Content-Length delimits (raw of the datagram parse) */
    TS_MORE,     /* -EAGAIN: the body its Content-Length announces is not there */
    TS_CL,       /* -EBADMSG, content_length: a stream needs a numeric Content-Length */
};

struct torture_case {
    const char *section;  /* of RFC 4475 */
    enum sip_error error; /* a rejected message: its reason in both modes; else SIP_ERR_NONE */
    enum torture_stream stream;
    struct fixture_case v; /* a parsed message's values in datagram mode; v.file names it */
};

#define RFC4475(f) .file = "rfc4475/" f
#define TORTURE_REQ(m) .is_request = true, .method = SIP_METHOD_##m, .method_name = #m

/* RFC 4475 §3.1.1.1 wsinv to §3.1.1.13 noreason: valid, every parser must accept them. */
static const struct torture_case torture_valid[] = {
    {"3.1.1.1 wsinv",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("wsinv.sip"), TORTURE_REQ(INVITE),
      .ruri = "sip:vivekg@chair-dnrc.example.com;unknownparam",
      .call_id = "wsinv.ndaksdj@192.0.2.1", .from_uri = "sip:jdrosen@example.com",
      .from_tag = "98asjd8", .to_uri = "sip:vivekg@chair-dnrc.example.com", .to_tag = "1918181833n",
      .cseq = 9, .cseq_method = SIP_METHOD_INVITE, .via_branch = "390skdjuw",
      .via_sent_by = "192.0.2.2", .via_transport = "UDP", .content_length = 150, .body_len = 150,
      .n_headers = 14, .anomalies = SIP_ANOM_FOLDED}},
    {"3.1.1.2 intmeth",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("intmeth.sip"), .is_request = true, .method = SIP_METHOD_OTHER,
      .method_name = "!interesting-Method0123456789_*+`.%indeed'~",
      .ruri = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_"
              "too.(doesn't-it)@example.com",
      .call_id = "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{",
      .from_uri = "sip:mundane@example.com", .from_tag = "_token~1'+`*%!-.",
      .to_uri = "sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com", .to_tag = "",
      .cseq = 139122385, .cseq_method = SIP_METHOD_OTHER, .via_branch = "z9hG4bK-.!%66*_+`'~",
      .via_sent_by = "host1.example.com", .via_transport = "TCP", .content_length = 0,
      .body_len = 0, .n_headers = 8}},
    {"3.1.1.3 esc01",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("esc01.sip"), TORTURE_REQ(INVITE),
      .ruri = "sip:sips%3Auser%40example.com@example.net",
      .call_id = "esc01.239409asdfakjkn23onasd0-3234",
      .from_uri = "sip:I%20have%20spaces@example.net", .from_tag = "938",
      .to_uri = "sip:%75se%72@example.com", .to_tag = "", .cseq = 234234,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "host5.example.net", .via_transport = "UDP", .content_length = 150,
      .body_len = 150, .n_headers = 9, .anomalies = SIP_ANOM_FOLDED}},
    {"3.1.1.4 escnull",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("escnull.sip"), TORTURE_REQ(REGISTER), .ruri = "sip:example.com",
      .call_id = "escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd",
      .from_uri = "sip:null-%00-null@example.com", .from_tag = "839923423",
      .to_uri = "sip:null-%00-null@example.com", .to_tag = "", .cseq = 14398234,
      .cseq_method = SIP_METHOD_REGISTER, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "host5.example.com", .via_transport = "UDP", .content_length = 0,
      .body_len = 0, .n_headers = 9}},
    {"3.1.1.5 esc02",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("esc02.sip"), .is_request = true, .method = SIP_METHOD_OTHER,
      .method_name = "RE%47IST%45R", .ruri = "sip:registrar.example.com",
      .call_id = "esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf",
      .from_uri = "sip:resource@example.com", .from_tag = "f232jadfj23",
      .to_uri = "sip:resource@example.com", .to_tag = "", .cseq = 29344,
      .cseq_method = SIP_METHOD_OTHER, .via_branch = "z9hG4bK209%fzsnel234",
      .via_sent_by = "host.example.com", .via_transport = "TCP", .content_length = 0, .body_len = 0,
      .n_headers = 10}},
    {"3.1.1.6 lwsdisp",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("lwsdisp.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:user@example.com",
      .call_id = "lwsdisp.1234abcd@funky.example.com", .from_uri = "sip:caller@example.com",
      .from_tag = "323", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 60,
      .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "funky.example.com", .via_transport = "UDP", .content_length = 0,
      .body_len = 0, .n_headers = 7}},
    /* 3.1.1.7 longreq: its own test below. */
    {"3.1.1.8 dblreq",
     SIP_ERR_NONE,
     TS_FIRST,
     {RFC4475("dblreq.sip"), TORTURE_REQ(REGISTER), .ruri = "sip:example.com",
      .call_id = "dblreq.0ha0isndaksdj99sdfafnl3lk233412", .from_uri = "sip:j.user@example.com",
      .from_tag = "43251j3j324", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8,
      .cseq_method = SIP_METHOD_REGISTER, .via_branch = "z9hG4bKkdjuw23492",
      .via_sent_by = "192.0.2.125", .via_transport = "UDP", .content_length = 0, .body_len = 0,
      .n_headers = 8, .anomalies = SIP_ANOM_TRAILING_DATA}},
    {"3.1.1.9 semiuri",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("semiuri.sip"), TORTURE_REQ(OPTIONS),
      .ruri = "sip:user;par=u%40example.net@example.com", .call_id = "semiuri.0ha0isndaksdj",
      .from_uri = "sip:caller@example.org", .from_tag = "33242", .to_uri = "sip:j_user@example.com",
      .to_tag = "", .cseq = 8, .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "192.0.2.1", .via_transport = "UDP", .content_length = 0, .body_len = 0,
      .n_headers = 8, .anomalies = SIP_ANOM_FOLDED}},
    {"3.1.1.10 transports",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("transports.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:user@example.com",
      .call_id = "transports.kijh4akdnaqjkwendsasfdj", .from_uri = "sip:caller@example.com",
      .from_tag = "323", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 60,
      .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "t1.example.com", .via_transport = "UDP", .content_length = 0, .body_len = 0,
      .n_headers = 12}},
    {"3.1.1.11 mpart01",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("mpart01.sip"), TORTURE_REQ(MESSAGE), .ruri = "sip:kumiko@example.org",
      .call_id = "3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..",
      .from_uri = "sip:fluffy@example.com", .from_tag = "2fb0dcc9",
      .to_uri = "sip:kumiko@example.org", .to_tag = "", .cseq = 1,
      .cseq_method = SIP_METHOD_MESSAGE, .via_branch = "z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-",
      .via_sent_by = "127.0.0.1:5070", .via_transport = "UDP", .content_length = 553,
      .body_len = 553, .n_headers = 14}},
    {"3.1.1.12 unreason",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("unreason.sip"), .status = 200,
      .reason = "= 2**3 * 5**2 \xd0\xbd\xd0\xbe \xd1\x81\xd1\x82\xd0\xbe "
                "\xd0\xb4\xd0\xb5\xd0\xb2\xd1\x8f\xd0\xbd\xd0\xbe\xd1\x81\xd1\x82\xd0\xbe "
                "\xd0\xb4\xd0\xb5\xd0\xb2\xd1\x8f\xd1\x82\xd1\x8c - "
                "\xd0\xbf\xd1\x80\xd0\xbe\xd1\x81\xd1\x82\xd0\xbe\xd0\xb5",
      .call_id = "unreason.1234ksdfak3j2erwedfsASdf", .from_uri = "sip:user@example.com",
      .from_tag = "11141343", .to_uri = "sip:user@example.edu", .to_tag = "2229", .cseq = 35,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bK1324923",
      .via_sent_by = "192.0.2.198", .via_transport = "UDP", .content_length = 154, .body_len = 154,
      .n_headers = 8}},
    {"3.1.1.13 noreason",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("noreason.sip"), .status = 100, .reason = "",
      .call_id = "noreason.asndj203insdf99223ndf", .from_uri = "sip:user@example.com",
      .from_tag = "39ansfi3", .to_uri = "sip:user@example.edu", .to_tag = "902jndnke3", .cseq = 35,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bK2398ndaoe",
      .via_sent_by = "192.0.2.105", .via_transport = "UDP", .content_length = 0, .body_len = 0,
      .n_headers = 7}},
};

/* RFC 4475 §3.1.2 and §3.3 messages that are not valid: a parser may reject them. sipscope
 * rejects those it cannot read its values from (a start line, a CSeq number over 32 bits, a
 * header missing) and accepts the others with the values below (sip_parse.h says which way it
 * goes for each kind). */
static const struct torture_case torture_invalid[] = {
    {"3.1.2.1 badinv01",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("badinv01.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@example.com",
      .call_id = "badinv01.0ha0isndaksdjasdf3234nas", .from_uri = "sip:caller@example.net",
      .from_tag = "134161461246", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "", .via_sent_by = "192.0.2.15",
      .via_transport = "UDP", .content_length = 152, .body_len = 152, .n_headers = 9}},
    {"3.1.2.2 clerr",
     SIP_ERR_NONE,
     TS_MORE,
     {RFC4475("clerr.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@example.com",
      .call_id = "clerr.0ha0isndaksdjweiafasdk3", .from_uri = "sip:caller@example.net",
      .from_tag = "93942939o2", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bK-39234-23523",
      .via_sent_by = "host5.example.com", .via_transport = "UDP", .content_length = 9999,
      .body_len = 154, .n_headers = 9, .anomalies = SIP_ANOM_BODY_TRUNCATED}},
    {"3.1.2.3 ncl",
     SIP_ERR_NONE,
     TS_CL,
     {RFC4475("ncl.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@example.com",
      .call_id = "ncl.0ha0isndaksdj2193423r542w35", .from_uri = "sip:caller@example.net",
      .from_tag = "32394234", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 0,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw", .via_sent_by = "192.0.2.53",
      .via_transport = "UDP", .content_length = -1, .body_len = 152, .n_headers = 9,
      .anomalies = SIP_ANOM_BAD_CONTENT_LENGTH}},
    {"3.1.2.4 scalar02", SIP_ERR_CSEQ, TS_SAME, {RFC4475("scalar02.sip")}},
    {"3.1.2.5 scalarlg", SIP_ERR_CSEQ, TS_SAME, {RFC4475("scalarlg.sip")}},
    {"3.1.2.6 quotbal",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("quotbal.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@example.com",
      .call_id = "quotbal.aksdj", .from_uri = "sip:caller@example.net", .from_tag = "93334",
      .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8, .cseq_method = SIP_METHOD_INVITE,
      .via_branch = "z9hG4bKkdjuw39234", .via_sent_by = "192.0.2.59:5050", .via_transport = "UDP",
      .content_length = 152, .body_len = 152, .n_headers = 9}},
    {"3.1.2.7 ltgtruri",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("ltgtruri.sip"), TORTURE_REQ(INVITE), .ruri = "<sip:user@example.com>",
      .call_id = "ltgtruri.1@192.0.2.5", .from_uri = "sip:caller@example.net", .from_tag = "39291",
      .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 1, .cseq_method = SIP_METHOD_INVITE,
      .via_branch = "", .via_sent_by = "192.0.2.5", .via_transport = "UDP", .content_length = 159,
      .body_len = 159, .n_headers = 9}},
    {"3.1.2.8 lwsruri", SIP_ERR_START_LINE, TS_SAME, {RFC4475("lwsruri.sip")}},
    {"3.1.2.9 lwsstart", SIP_ERR_START_LINE, TS_SAME, {RFC4475("lwsstart.sip")}},
    {"3.1.2.10 trws",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("trws.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:remote-target@example.com",
      .call_id = "trws.oicu34958239neffasdhr2345r", .from_uri = "sip:local-resource@example.com",
      .from_tag = "329429089", .to_uri = "sip:remote-target@example.com", .to_tag = "",
      .cseq = 238923, .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bK299342093",
      .via_sent_by = "host1.examle.com", .via_transport = "TCP", .content_length = 0, .body_len = 0,
      .n_headers = 8}},
    {"3.1.2.11 escruri",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("escruri.sip"), TORTURE_REQ(INVITE),
      .ruri = "sip:user@example.com?Route=%3Csip:example.com%3E",
      .call_id = "escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5",
      .from_uri = "sip:caller@example.net", .from_tag = "341518", .to_uri = "sip:user@example.com",
      .to_tag = "", .cseq = 149209342, .cseq_method = SIP_METHOD_INVITE,
      .via_branch = "z9hG4bKkdjuw", .via_sent_by = "host-of-the-hour.example.com",
      .via_transport = "UDP", .content_length = 150, .body_len = 150, .n_headers = 9}},
    {"3.1.2.12 baddate",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("baddate.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@example.com",
      .call_id = "baddate.239423mnsadf3j23lj42--sedfnm234", .from_uri = "sip:caller@example.net",
      .from_tag = "2234923", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 1392934,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "host.example.com", .via_transport = "UDP", .content_length = 150,
      .body_len = 150, .n_headers = 10}},
    {"3.1.2.13 regbadct",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("regbadct.sip"), TORTURE_REQ(REGISTER), .ruri = "sip:example.com",
      .call_id = "regbadct.k345asrl3fdbv@10.0.0.1", .from_uri = "sip:user@example.com",
      .from_tag = "998332", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 1,
      .cseq_method = SIP_METHOD_REGISTER, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "135.180.130.133:5060", .via_transport = "UDP", .content_length = 0,
      .body_len = 0, .n_headers = 8}},
    {"3.1.2.14 badaspec",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("badaspec.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:user@example.org",
      .call_id = "badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3",
      .from_uri = "sip:a.g.bell@example.com", .from_tag = "433423",
      .to_uri = "sip:t.watson@example.org", .to_tag = "", .cseq = 3923239,
      .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bKkdju43234",
      .via_sent_by = "host4.example.com:5060", .via_transport = "UDP", .content_length = 0,
      .body_len = 0, .n_headers = 8}},
    {"3.1.2.15 baddn",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("baddn.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:t.watson@example.org",
      .call_id = "baddn.31415@c.example.com", .from_uri = "sip:a.g.bell@example.com",
      .from_tag = "43", .to_uri = "sip:t.watson@example.org", .to_tag = "", .cseq = 3923239,
      .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "c.example.com:5060", .via_transport = "UDP", .content_length = 0,
      .body_len = 0, .n_headers = 8}},
    {"3.1.2.16 badvers", SIP_ERR_VERSION, TS_SAME, {RFC4475("badvers.sip")}},
    {"3.1.2.17 mismatch01",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("mismatch01.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:user@example.com",
      .call_id = "mismatch01.dj0234sxdfl3", .from_uri = "sip:caller@example.net",
      .from_tag = "34525", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "host.example.com", .via_transport = "UDP", .content_length = 0, .body_len = 0,
      .n_headers = 7}},
    {"3.1.2.18 mismatch02",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("mismatch02.sip"), .is_request = true, .method = SIP_METHOD_OTHER,
      .method_name = "NEWMETHOD", .ruri = "sip:user@example.com",
      .call_id = "mismatch02.dj0234sxdfl3", .from_uri = "sip:caller@example.net",
      .from_tag = "34525", .to_uri = "sip:j.user@example.com", .to_tag = "", .cseq = 8,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw",
      .via_sent_by = "host.example.net", .via_transport = "UDP", .content_length = 138,
      .body_len = 138, .n_headers = 9}},
    {"3.1.2.19 bigcode", SIP_ERR_STATUS_CODE, TS_SAME, {RFC4475("bigcode.sip")}},
    {"3.3.1 insuf", SIP_ERR_MISSING_HEADER, TS_SAME, {RFC4475("insuf.sip")}},
    {"3.3.8 multi01",
     SIP_ERR_NONE,
     TS_SAME,
     {RFC4475("multi01.sip"), TORTURE_REQ(INVITE), .ruri = "sip:user@company.com",
      .call_id = "multi01.98asdh@192.0.2.1", .from_uri = "sip:caller@example.com",
      .from_tag = "3413415", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 5,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "z9hG4bKkdjuw", .via_sent_by = "192.0.2.25",
      .via_transport = "UDP", .content_length = 154, .body_len = 154, .n_headers = 15}},
    {"3.3.9 mcl01",
     SIP_ERR_NONE,
     TS_FIRST,
     {RFC4475("mcl01.sip"), TORTURE_REQ(OPTIONS), .ruri = "sip:user@example.com",
      .call_id = "mcl01.fhn2323orihawfdoa3o4r52o3irsdf", .from_uri = "sip:other@example.net",
      .from_tag = "3923942", .to_uri = "sip:user@example.com", .to_tag = "", .cseq = 15932,
      .cseq_method = SIP_METHOD_OPTIONS, .via_branch = "z9hG4bK293423",
      .via_sent_by = "host5.example.net", .via_transport = "UDP", .content_length = 13,
      .body_len = 13, .n_headers = 9, .anomalies = SIP_ANOM_TRAILING_DATA}},
    {"3.4.1 inv2543",
     SIP_ERR_NONE,
     TS_CL,
     {RFC4475("inv2543.sip"), TORTURE_REQ(INVITE), .ruri = "sip:UserB@example.com",
      .call_id = "inv2543.1717@ift.client.example.com",
      .from_uri = "sip:+13035551111@ift.client.example.net;user=phone", .from_tag = "",
      .to_uri = "sip:+16505552222@ss1.example.net", .to_tag = "", .cseq = 56,
      .cseq_method = SIP_METHOD_INVITE, .via_branch = "", .via_sent_by = "iftgw.example.com",
      .via_transport = "UDP", .content_length = -1, .body_len = 105, .n_headers = 7,
      .anomalies = SIP_ANOM_NO_CONTENT_LENGTH}},
};

static void check_torture(const struct torture_case *tc)
{
    const struct fixture_case *fc = &tc->v;
    size_t n = load_fixture(fc->file);
    struct sip_msg m;
    int failed_before = test_failed_checks;

    int rc = parse(fixture_buf, n, D, &m);
    if (tc->error != SIP_ERR_NONE) {
        CHECK_INT(rc, -EBADMSG);
        CHECK_INT(m.error, tc->error);
        CHECK_INT(parse(fixture_buf, n, S, &m), -EBADMSG);
        CHECK_INT(m.error, tc->error);
    } else {
        CHECK_INT(rc, n);
        check_fixture_values(fc, &m);
        CHECK_INT(m.anomalies, fc->anomalies);
        size_t first = m.raw.len; /* start line to the end of the Content-Length's body */
        rc = parse(fixture_buf, n, S, &m);
        switch (tc->stream) {
        case TS_SAME:
        case TS_FIRST:
            CHECK_INT(rc, tc->stream == TS_SAME ? n : first);
            check_fixture_values(fc, &m);
            CHECK_INT(m.anomalies, fc->anomalies & SIP_ANOM_FOLDED);
            break;
        case TS_MORE:
            CHECK_INT(rc, -EAGAIN);
            break;
        case TS_CL:
            CHECK_INT(rc, -EBADMSG);
            CHECK_INT(m.error, SIP_ERR_CONTENT_LENGTH);
            break;
        }
    }
    if (test_failed_checks != failed_before)
        fprintf(stderr, "  (the checks above are for RFC 4475 §%s)\n", tc->section);
}

TEST(rfc4475_valid_messages_yield_their_values)
{
    for (size_t i = 0; i < sizeof(torture_valid) / sizeof(torture_valid[0]); i++)
        check_torture(&torture_valid[i]);
}

TEST(rfc4475_invalid_messages_are_rejected_with_their_reason_or_read_as_described)
{
    for (size_t i = 0; i < sizeof(torture_invalid) / sizeof(torture_invalid[0]); i++)
        check_torture(&torture_invalid[i]);
}

/* RFC 4475 §3.1.1.7 longreq: long values, 34 Via headers in every case of "Via" and "v", the top
 * one without a branch. The expected values are built from the RFC's repeat counts. */
TEST(rfc4475_longreq_yields_its_long_values)
{
    static char to_uri[512], from_uri[256], from_tag[256], call_id[256];
    char *p;
    struct sip_msg m;
    size_t n = load_fixture("rfc4475/longreq.sip");

#define REPEAT(s, k)                                                                               \
    for (int r_ = 0; r_ < (k); r_++)                                                               \
    p = stpcpy(p, s)
    p = stpcpy(to_uri, "sip:user@example.com:6000;unknownparam1=very");
    REPEAT("long", 20);
    p = stpcpy(p, "value;longparam");
    REPEAT("name", 25);
    p = stpcpy(p, "=shortvalue;very");
    REPEAT("long", 25);
    stpcpy(p, "ParameterNameWithNoValue");
    p = stpcpy(from_uri, "sip:");
    REPEAT("amazinglylongcallername", 5);
    stpcpy(p, "@example.net");
    p = stpcpy(from_tag, "12");
    REPEAT("982", 50);
    stpcpy(p, "424");
    p = stpcpy(call_id, "longreq.one");
    REPEAT("really", 20);
    stpcpy(p, "longcallid");
#undef REPEAT
    const struct fixture_case fc = {.file = "rfc4475/longreq.sip",
                                    TORTURE_REQ(INVITE),
                                    .ruri = "sip:user@example.com",
                                    .call_id = call_id,
                                    .from_uri = from_uri,
                                    .from_tag = from_tag,
                                    .to_uri = to_uri,
                                    .to_tag = "",
                                    .cseq = 3882340,
                                    .cseq_method = SIP_METHOD_INVITE,
                                    .via_branch = "",
                                    .via_sent_by = "sip33.example.com",
                                    .via_transport = "TCP",
                                    .content_length = 150,
                                    .body_len = 150,
                                    .n_headers = 43};
    for (int mode = D; mode <= S; mode++) {
        CHECK_INT(parse(fixture_buf, n, (enum sip_parse_mode)mode, &m), n);
        check_fixture_values(&fc, &m);
        CHECK_INT(m.anomalies, 0);
    }
    /* Every Via is found under its id, the 34th (host.example.com) with its long branch. */
    unsigned vias = 0;
    for (uint32_t i = 0; i < m.n_headers; i++)
        vias += hdrs[i].id == SIP_HDR_VIA;
    CHECK_INT(vias, 34);
    struct slice branch;
    CHECK(sip_header_param(hdrs[38].value, SLICE_LIT("branch"), &branch));
    CHECK_INT(branch.len, strlen("very") + 50 * 4 + strlen("branchvalue"));
}

/* Every prefix of every RFC 4475 message, in both modes, against the guard pages at either end:
 * no read outside the input, and the parse never claims more bytes than it was given. */
TEST(rfc4475_prefixes_parse_or_fail_inside_their_bounds)
{
    static const char *const files[] = {
        "wsinv",      "intmeth",  "esc01",    "escnull",    "esc02",    "lwsdisp",
        "longreq",    "dblreq",   "semiuri",  "transports", "mpart01",  "unreason",
        "noreason",   "badinv01", "clerr",    "ncl",        "scalar02", "scalarlg",
        "quotbal",    "ltgtruri", "lwsruri",  "lwsstart",   "trws",     "escruri",
        "baddate",    "regbadct", "badaspec", "baddn",      "badvers",  "mismatch01",
        "mismatch02", "bigcode",  "insuf",    "multi01",    "mcl01",    "inv2543",
    };
    for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
        char name[64];
        snprintf(name, sizeof(name), "rfc4475/%s.sip", files[f]);
        size_t n = load_fixture(name);
        for (size_t k = 0; k <= n; k++) {
            for (int at_end = 0; at_end < 2; at_end++) {
                for (int mode = D; mode <= S; mode++) {
                    struct sip_msg m;
                    const char *in = guarded(fixture_buf, k, at_end);
                    int rc = sip_parse(in, k, (enum sip_parse_mode)mode, &m, hdrs, SIP_MAX_HEADERS);
                    if (rc > (int)k || (rc < 0 && rc != -EAGAIN && rc != -EBADMSG))
                        TEST_FAIL_AT("%s: prefix %zu, mode %d: rc %d", name, k, mode, rc);
                }
            }
        }
    }
}

TEST_MAIN()
