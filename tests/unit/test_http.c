/* Tests for the HTTP endpoints: a server on 127.0.0.1:0 with a small registry, spoken to with
 * plain sockets; listen address parsing; the reload handoff; scrapes while a writer works. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "expo.h"
#include "slice.h"
#include "test.h"

/* --- A small registry and what it renders to ------------------------------------------------ */

static const char *const code_label[] = {"code"};
static const double latency_buckets[] = {0.1, 1};

struct fixture {
    struct metrics *reg;
    struct metric_series *ok, *busy, *active, *latency;
};

static uint32_t sym(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

static void fixture_init(struct fixture *f)
{
    struct metric_family *req, *act, *lat;
    uint32_t s;

    f->reg = metrics_new(1000);
    req = metrics_family(f->reg, "test_responses_total", "Responses by code.", METRIC_COUNTER,
                         code_label, 1, NULL, 0, 100, 0);
    act = metrics_family(f->reg, "test_active", "Active things.", METRIC_GAUGE, NULL, 0, NULL, 0, 1,
                         0);
    lat = metrics_family(f->reg, "test_latency_seconds", "Latency.", METRIC_HISTOGRAM, NULL, 0,
                         latency_buckets, 2, 1, 0);
    s = sym(f->reg, "200");
    f->ok = metrics_series(req, &s);
    s = sym(f->reg, "486");
    f->busy = metrics_series(req, &s);
    f->active = metrics_series(act, NULL);
    f->latency = metrics_series(lat, NULL);
    metric_counter_add(f->ok, 3);
    metric_counter_add(f->busy, 1);
    metric_gauge_set(f->active, 2);
    metric_histogram_observe(f->latency, 0.05);
    metric_histogram_observe(f->latency, 0.5);
    metric_histogram_observe(f->latency, 2);
}

/* Derived by hand from fixture_init: families by name, series by label value, histogram buckets
 * cumulative. */
static const char fixture_text[] = "# HELP test_active Active things.\n"
                                   "# TYPE test_active gauge\n"
                                   "test_active 2\n"
                                   "# HELP test_latency_seconds Latency.\n"
                                   "# TYPE test_latency_seconds histogram\n"
                                   "test_latency_seconds_bucket{le=\"0.1\"} 1\n"
                                   "test_latency_seconds_bucket{le=\"1\"} 2\n"
                                   "test_latency_seconds_bucket{le=\"+Inf\"} 3\n"
                                   "test_latency_seconds_sum 2.55\n"
                                   "test_latency_seconds_count 3\n"
                                   "# HELP test_responses_total Responses by code.\n"
                                   "# TYPE test_responses_total counter\n"
                                   "test_responses_total{code=\"200\"} 3\n"
                                   "test_responses_total{code=\"486\"} 1\n";

static void render(struct metrics *reg, struct expo_buf *b)
{
    expo_buf_init(b);
    CHECK_INT(expo_render(reg, 0, b), 0);
}

/* --- A plain-socket HTTP client --------------------------------------------------------------- */

struct resp {
    int status;
    char head[4096]; /* status line and headers */
    char *body;
    size_t len;
};

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

static int connect_to(int family, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct timeval tv = {5, 0};
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a->sin_port = htons(port);
        len = sizeof(*a);
    }
    /* A hung server fails the test instead of hanging it. */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The value of header name in r->head, copied to out; NULL when absent. */
static const char *header(const struct resp *r, const char *name, char *out, size_t outlen)
{
    size_t n = strlen(name);
    const char *line = strstr(r->head, "\r\n");

    while (line && line[2]) {
        line += 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1, *end;
            while (*v == ' ')
                v++;
            end = strstr(v, "\r\n");
            snprintf(out, outlen, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
            return out;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

/* Reads one response: headers, then Content-Length bytes of body (none for HEAD). */
static int read_resp(int fd, bool head_request, struct resp *r)
{
    char buf[8192], cl[32];
    size_t have = 0, hlen, want;
    char *end = NULL;

    memset(r, 0, sizeof(*r));
    while (!end) {
        ssize_t n;
        if (have == sizeof(buf) - 1)
            return -1;
        n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
        if (n <= 0)
            return -1;
        have += (size_t)n;
        buf[have] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    hlen = (size_t)(end - buf) + 2;
    if (hlen >= sizeof(r->head))
        return -1;
    memcpy(r->head, buf, hlen);
    r->head[hlen] = '\0';
    if (sscanf(r->head, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    want = header(r, "Content-Length", cl, sizeof(cl)) ? strtoul(cl, NULL, 10) : 0;
    if (head_request)
        want = 0;
    r->body = malloc(want + 1);
    r->len = have - hlen - 2;
    if (r->len > want)
        r->len = want; /* a pipelined reply would start here; the tests send one at a time */
    memcpy(r->body, end + 4, r->len);
    while (r->len < want) {
        ssize_t n = recv(fd, r->body + r->len, want - r->len, 0);
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
    r->body[r->len] = '\0';
    return 0;
}

/* One request on a fresh connection. extra holds whole header lines ("Name: v\r\n"). */
static int request(uint16_t port, const char *method, const char *path, const char *extra,
                   const char *body, struct resp *r)
{
    char req[2048];
    int fd, rc;

    snprintf(req, sizeof(req),
             "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n%sContent-Length: "
             "%zu\r\n\r\n%s",
             method, path, extra ? extra : "", body ? strlen(body) : 0, body ? body : "");
    fd = connect_to(AF_INET, port);
    if (fd < 0)
        return -1;
    rc = send_all(fd, req, strlen(req));
    if (rc == 0)
        rc = read_resp(fd, strcmp(method, "HEAD") == 0, r);
    close(fd);
    return rc;
}

#define CHECK_HEADER(r, name, expected)                                                            \
    do {                                                                                           \
        char hv_[256];                                                                             \
        const char *got_ = header((r), (name), hv_, sizeof(hv_));                                  \
        if ((expected) == NULL)                                                                    \
            CHECK(got_ == NULL);                                                                   \
        else                                                                                       \
            CHECK_STR(got_, (const char *)(expected));                                             \
    } while (0)

#define CHECK_BODY(r, text)                                                                        \
    do {                                                                                           \
        struct slice b_ = {(r).body, (r).len};                                                     \
        CHECK_SLICE(b_, text);                                                                     \
    } while (0)

/* --- Servers -----------------------------------------------------------------------------------
 */

struct hook_state {
    atomic_bool ready;
    atomic_int reloads;
    int reload_rc;
    const char *reload_msg;
    struct http_reload *mailbox; /* when set, reload goes through the handoff */
    unsigned timeout_ms;
};

static bool hook_ready(void *ctx)
{
    return atomic_load(&((struct hook_state *)ctx)->ready);
}

static int hook_reload(void *ctx, char *msg, size_t msglen)
{
    struct hook_state *h = ctx;
    atomic_fetch_add(&h->reloads, 1);
    if (h->mailbox)
        return http_reload_request(h->mailbox, h->timeout_ms, msg, msglen);
    snprintf(msg, msglen, "%s", h->reload_msg ? h->reload_msg : "");
    return h->reload_rc;
}

static struct http_server *start(struct metrics *reg, bool lifecycle, struct hook_state *h)
{
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .enable_lifecycle = lifecycle, .version = "1.2.3"};
    struct http_hooks hooks = {.ctx = h, .ready = hook_ready, .reload = hook_reload};
    char err[256] = "";
    struct http_server *srv = http_start(&cfg, reg, h ? &hooks : NULL, err, sizeof(err));

    if (!srv)
        TEST_FAIL_AT("http_start: %s", err);
    return srv;
}

/* --- Listen addresses --------------------------------------------------------------------------
 */

TEST(listen_addresses_parse_to_family_port_and_stack)
{
    static const struct {
        const char *in;
        int family;
        bool dual;
        unsigned port;
        const char *formatted;
    } good[] = {
        {":9632", AF_INET6, true, 9632, "[::]:9632"},
        {":0", AF_INET6, true, 0, "[::]:0"},
        {"0.0.0.0:9632", AF_INET, false, 9632, "0.0.0.0:9632"},
        {"127.0.0.1:0", AF_INET, false, 0, "127.0.0.1:0"},
        {"192.168.1.20:65535", AF_INET, false, 65535, "192.168.1.20:65535"},
        {"[::1]:9469", AF_INET6, false, 9469, "[::1]:9469"},
        {"[::]:9469", AF_INET6, true, 9469, "[::]:9469"},
        {"[2001:db8::5]:80", AF_INET6, false, 80, "[2001:db8::5]:80"},
        /* an IPv4-mapped address is bound as IPv4: an IPv6-only socket refuses it */
        {"[::ffff:10.0.0.1]:8080", AF_INET, false, 8080, "10.0.0.1:8080"},
        {"127.0.0.1:009632", AF_INET, false, 9632, "127.0.0.1:9632"},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct http_addr a;
        char err[256] = "", out[64];
        int rc = http_addr_parse(good[i].in, &a, err, sizeof(err));
        if (rc != 0) {
            TEST_FAIL_AT("\"%s\": %s", good[i].in, err);
            continue;
        }
        CHECK_INT(a.sa.ss_family, good[i].family);
        CHECK_INT(a.dual_stack, good[i].dual);
        CHECK_INT(a.port, good[i].port);
        CHECK_INT(a.sa_len, good[i].family == AF_INET ? sizeof(struct sockaddr_in)
                                                      : sizeof(struct sockaddr_in6));
        CHECK_STR(http_addr_format(&a, out, sizeof(out)), good[i].formatted);
    }
}

TEST(an_ipv4_mapped_listen_address_serves)
{
    struct fixture f;
    struct http_config cfg = {.listen_address = "[::ffff:127.0.0.1]:0"};
    char err[256] = "";
    struct resp r = {0};
    fixture_init(&f);
    struct http_server *srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        metrics_free(f.reg);
        return;
    }
    CHECK_INT(request(http_port(srv), "GET", "/-/healthy", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

TEST(bad_listen_addresses_say_what_is_wrong)
{
    static const struct {
        const char *in, *err;
    } bad[] = {
        {"", "invalid --web.listen-address \"\": missing \":PORT\" (e.g. \":9632\" for every "
             "address)"},
        {"9632", "invalid --web.listen-address \"9632\": missing \":PORT\" (e.g. \":9632\" for "
                 "every address)"},
        {"localhost:9632", "invalid --web.listen-address \"localhost:9632\": \"localhost\" is not "
                           "an IPv4 address (host names are not resolved; IPv6 goes in "
                           "brackets)"},
        {"1.2.3:80", "invalid --web.listen-address \"1.2.3:80\": \"1.2.3\" is not an IPv4 "
                     "address (host names are not resolved; IPv6 goes in brackets)"},
        {"127.0.0.1:", "invalid --web.listen-address \"127.0.0.1:\": the port must be a number "
                       "from 0 to 65535"},
        {"127.0.0.1:65536", "invalid --web.listen-address \"127.0.0.1:65536\": the port must be "
                            "a number from 0 to 65535"},
        {"127.0.0.1:-1", "invalid --web.listen-address \"127.0.0.1:-1\": the port must be a "
                         "number from 0 to 65535"},
        {"127.0.0.1:96x", "invalid --web.listen-address \"127.0.0.1:96x\": the port must be a "
                          "number from 0 to 65535"},
        {"127.0.0.1: 80", "invalid --web.listen-address \"127.0.0.1: 80\": the port must be a "
                          "number from 0 to 65535"},
        {"127.0.0.1:99999999999999999999", "invalid --web.listen-address "
                                           "\"127.0.0.1:99999999999999999999\": the port must "
                                           "be a number from 0 to 65535"},
        {"::1:9632", "invalid --web.listen-address \"::1:9632\": write an IPv6 address in "
                     "brackets, e.g. \"[::1]:9632\""},
        {"[::1]", "invalid --web.listen-address \"[::1]\": missing \":PORT\" after \"]\""},
        {"[::1]9632", "invalid --web.listen-address \"[::1]9632\": missing \":PORT\" after "
                      "\"]\""},
        {"[::1:9632", "invalid --web.listen-address \"[::1:9632\": missing \"]\" after the IPv6 "
                      "address"},
        {"[]:80", "invalid --web.listen-address \"[]:80\": \"\" is not an IPv6 address"},
        {"[zz::1]:80", "invalid --web.listen-address \"[zz::1]:80\": \"zz::1\" is not an IPv6 "
                       "address"},
        {"[127.0.0.1]:80", "invalid --web.listen-address \"[127.0.0.1]:80\": \"127.0.0.1\" is not "
                           "an IPv6 address"},
        {"[::1]:80000", "invalid --web.listen-address \"[::1]:80000\": the port must be a number "
                        "from 0 to 65535"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct http_addr a;
        char err[256] = "";
        int rc = http_addr_parse(bad[i].in, &a, err, sizeof(err));
        CHECK_INT(rc, -EINVAL);
        CHECK_STR(err, bad[i].err);
        CHECK_INT(a.port, 0);
        CHECK_INT(a.sa_len, 0);
    }
}

TEST(start_refuses_an_invalid_address)
{
    struct metrics *reg = metrics_new(10);
    struct http_config cfg = {.listen_address = "example.org:80"};
    char err[256] = "";

    CHECK(http_start(&cfg, reg, NULL, err, sizeof(err)) == NULL);
    CHECK_STR(err, "invalid --web.listen-address \"example.org:80\": \"example.org\" is not an "
                   "IPv4 address (host names are not resolved; IPv6 goes in brackets)");
    metrics_free(reg);
}

TEST(a_busy_port_is_reported_and_a_stopped_server_frees_its_port)
{
    struct metrics *reg = metrics_new(10);
    struct http_server *a = start(reg, false, NULL), *b;
    struct http_config cfg = {0};
    char addr[64], err[256] = "", expected[256];
    struct resp r;

    if (!a)
        return;
    snprintf(addr, sizeof(addr), "127.0.0.1:%u", (unsigned)http_port(a));
    cfg.listen_address = addr;
    CHECK(http_start(&cfg, reg, NULL, err, sizeof(err)) == NULL);
    snprintf(expected, sizeof(expected), "cannot listen on %s: Address already in use", addr);
    CHECK_STR(err, expected);

    http_stop(a);
    CHECK(connect_to(AF_INET, (uint16_t)atoi(addr + 10)) < 0);
    b = http_start(&cfg, reg, NULL, err, sizeof(err));
    CHECK(b != NULL);
    if (b) {
        CHECK_INT(http_port(b), atoi(addr + 10));
        CHECK_INT(request(http_port(b), "GET", "/-/healthy", NULL, NULL, &r), 0);
        CHECK_INT(r.status, 200);
        resp_free(&r);
    }
    http_stop(b);
    metrics_free(reg);
}

TEST(every_address_accepts_ipv4_and_ipv6)
{
    struct metrics *reg = metrics_new(10);
    struct http_config cfg = {.listen_address = ":0"};
    struct http_server *srv;
    char err[256] = "";
    int fd;

    fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) {
        metrics_free(reg);
        TEST_SKIP("no IPv6 on this host");
    }
    close(fd);
    srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    CHECK(srv != NULL);
    if (srv) {
        fd = connect_to(AF_INET, http_port(srv));
        CHECK(fd >= 0);
        if (fd >= 0)
            close(fd);
        fd = connect_to(AF_INET6, http_port(srv));
        CHECK(fd >= 0);
        if (fd >= 0)
            close(fd);
    }
    http_stop(srv);

    /* [::1] is IPv6 only. */
    cfg.listen_address = "[::1]:0";
    srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    if (!srv) {
        metrics_free(reg);
        TEST_SKIP("no IPv6 loopback: %s", err);
    }
    fd = connect_to(AF_INET6, http_port(srv));
    CHECK(fd >= 0);
    if (fd >= 0)
        close(fd);
    CHECK(connect_to(AF_INET, http_port(srv)) < 0);
    http_stop(srv);
    metrics_free(reg);
}

/* --- /metrics ----------------------------------------------------------------------------------
 */

TEST(metrics_is_the_exposition_of_the_registry)
{
    struct fixture f;
    struct http_server *srv;
    struct expo_buf b;
    struct resp r;
    char cl[32];

    fixture_init(&f);
    srv = start(f.reg, false, NULL);
    if (!srv)
        return;
    render(f.reg, &b);
    CHECK_INT(b.len, strlen(fixture_text));
    CHECK(memcmp(b.data, fixture_text, b.len) == 0);

    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_HEADER(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    CHECK_HEADER(&r, "Vary", "Accept-Encoding");
    CHECK_HEADER(&r, "Content-Encoding", NULL);
    snprintf(cl, sizeof(cl), "%zu", strlen(fixture_text));
    CHECK_HEADER(&r, "Content-Length", cl);
    CHECK_BODY(r, fixture_text);
    resp_free(&r);
    expo_buf_fini(&b);
    http_stop(srv);
    metrics_free(f.reg);
}

/* Inflates a gzip body (RFC 1952); returns the length or -1. */
static long gunzip(const char *in, size_t inlen, char *out, size_t outlen)
{
    z_stream zs = {0};
    long n = -1;

    if (inflateInit2(&zs, 15 + 16) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)inlen;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)outlen;
    if (inflate(&zs, Z_FINISH) == Z_STREAM_END && zs.avail_in == 0)
        n = (long)zs.total_out;
    inflateEnd(&zs);
    return n;
}

TEST(metrics_is_gzipped_at_level_1_when_the_client_accepts_it)
{
    struct fixture f;
    struct http_server *srv;
    struct resp r;
    char plain[4096];
    long n;

    fixture_init(&f);
    srv = start(f.reg, false, NULL);
    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/metrics", "Accept-Encoding: gzip\r\n", NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_HEADER(&r, "Content-Encoding", "gzip");
    CHECK_HEADER(&r, "Vary", "Accept-Encoding");
    CHECK_HEADER(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    /* RFC 1952: magic 1f 8b, method 8 (deflate); XFL (byte 8) is 4, "fastest", for level 1. */
    CHECK(r.len > 18);
    if (r.len > 18) {
        CHECK_INT((unsigned char)r.body[0], 0x1f);
        CHECK_INT((unsigned char)r.body[1], 0x8b);
        CHECK_INT((unsigned char)r.body[2], 8);
        CHECK_INT((unsigned char)r.body[8], 4);
    }
    n = gunzip(r.body, r.len, plain, sizeof(plain));
    CHECK_INT(n, strlen(fixture_text));
    if (n >= 0) {
        struct slice s = {plain, (size_t)n};
        CHECK_SLICE(s, fixture_text);
    }
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

TEST(accept_encoding_is_read_token_by_token_with_q_values)
{
    static const struct {
        const char *value;
        bool gzip;
    } cases[] = {
        {"gzip", true},
        {"GZip", true},
        {"x-gzip", true},
        {"deflate, gzip", true},
        {"deflate,gzip;q=0.5", true},
        {"gzip ; q=1", true},
        {"br;q=1.0, gzip;q=0.001", true},
        {"gzip;q=0", false},
        {"gzip;q=0.000", false},
        {"gzip; Q=0.0, deflate", false},
        {"x-gzip;q=0, gzip", true},
        {"identity", false},
        {"br", false},
        {"*", false},
        {"gzipped", false},
        {"xgzip", false},
        {"", false},
        /* A list split over two lines (RFC 9110 §5.3): both are read. */
        {"deflate\r\nAccept-Encoding: gzip", true},
        {"gzip;q=0\r\naccept-encoding: br", false},
        {"br\r\nX-Other: 1\r\nACCEPT-ENCODING: x-gzip", true},
    };
    struct fixture f;
    struct http_server *srv;

    fixture_init(&f);
    srv = start(f.reg, false, NULL);
    if (!srv)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[160];
        struct resp r;
        snprintf(extra, sizeof(extra), "Accept-Encoding: %s\r\n", cases[i].value);
        CHECK_INT(request(http_port(srv), "GET", "/metrics", extra, NULL, &r), 0);
        char hv[64];
        bool gz = header(&r, "Content-Encoding", hv, sizeof(hv)) != NULL;
        if (gz != cases[i].gzip)
            TEST_FAIL_AT("Accept-Encoding \"%s\": gzip %d, expected %d", cases[i].value, gz,
                         cases[i].gzip);
        if (!gz)
            CHECK_BODY(r, fixture_text);
        resp_free(&r);
    }
    http_stop(srv);
    metrics_free(f.reg);
}

TEST(head_metrics_sends_the_headers_of_get_without_a_body)
{
    struct fixture f;
    struct http_server *srv;
    struct resp r;
    char cl[32];

    fixture_init(&f);
    srv = start(f.reg, false, NULL);
    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "HEAD", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    snprintf(cl, sizeof(cl), "%zu", strlen(fixture_text));
    CHECK_HEADER(&r, "Content-Length", cl);
    CHECK_HEADER(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    CHECK_INT(r.len, 0);
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

TEST(one_connection_serves_several_scrapes)
{
    struct fixture f;
    struct http_server *srv;
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n";
    const char *req2 = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd;

    fixture_init(&f);
    srv = start(f.reg, false, NULL);
    if (!srv)
        return;
    fd = connect_to(AF_INET, http_port(srv));
    CHECK(fd >= 0);
    for (int i = 0; fd >= 0 && i < 6; i++) {
        struct resp r;
        const char *q = (i % 2) ? req2 : req;
        char plain[4096];
        metric_counter_add(f.ok, 1);
        CHECK_INT(send_all(fd, q, strlen(q)), 0);
        CHECK_INT(read_resp(fd, false, &r), 0);
        CHECK_INT(r.status, 200);
        /* test_responses_total{code="200"} went 3 -> 4 + i */
        char line[64];
        snprintf(line, sizeof(line), "test_responses_total{code=\"200\"} %d\n", 4 + i);
        if (i % 2 == 0) {
            long n = gunzip(r.body, r.len, plain, sizeof(plain) - 1);
            CHECK(n > 0);
            plain[n > 0 ? n : 0] = '\0';
            CHECK(strstr(plain, line) != NULL);
        } else {
            CHECK(strstr(r.body, line) != NULL);
        }
        resp_free(&r);
    }
    if (fd >= 0)
        close(fd);
    http_stop(srv);
    metrics_free(f.reg);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Sends piece to fd every 200 ms until the server closes the connection or 4 s from t0 pass,
 * then closes fd. Returns the seconds from t0 to the close (-1: still open after 4 s), and says
 * so on standard error when it is not within the timeout tests' 2.5 s. */
static double trickle_until_closed(int fd, double t0, const char *piece)
{
    double closed_after = -1;

    while (closed_after < 0 && now_s() - t0 < 4) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        usleep(200000);
        if (poll(&p, 1, 0) == 1 || send_all(fd, piece, strlen(piece)) != 0)
            closed_after = now_s() - t0;
    }
    close(fd);
    if (closed_after < 0 || closed_after > 2.5)
        fprintf(stderr, "  closed after %.2f s (-1: still open after 4 s)\n", closed_after);
    return closed_after;
}

/* libmicrohttpd's timeout counts idle time, which a header line every 200 ms never lets pass.
 * The headers of a request are due within the timeout (1 s here) of the connection's start and
 * of the previous request's end (keep-alive): the server ends a connection still sending them,
 * and serves the next one. */
TEST(request_headers_sent_a_line_at_a_time_are_cut_at_the_timeout)
{
    struct fixture f;
    struct http_config cfg = {.listen_address = "127.0.0.1:0", .timeout_s = 1};
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    char err[256] = "";
    struct http_server *srv;
    double t0, closed_after;
    struct resp r;
    int fd;

    fixture_init(&f);
    srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        return;
    }
    fd = connect_to(AF_INET, http_port(srv));
    CHECK(fd >= 0);
    CHECK_INT(send_all(fd, req, strlen(req)), 0); /* answered at once: the clock starts again */
    CHECK_INT(read_resp(fd, false, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    t0 = now_s();
    send_all(fd, "GET /metrics HTTP/1.1\r\n", 23);
    closed_after = trickle_until_closed(fd, t0, "X-Slow: 1\r\n");
    CHECK(closed_after >= 0.9 && closed_after <= 2.5);
    CHECK_INT(request(http_port(srv), "GET", "/-/healthy", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

/* The exposition of a registry holding only HTTP_CUTS_FAMILY (http_cuts_declare), with the
 * counts given: label values in byte order, slow_answer first. */
#define CUTS_TEXT(slow_request, slow_answer)                                                       \
    "# HELP sipscope_http_connections_cut_total HTTP connections the server closed because "       \
    "their request (headers and body) did not all come, or their answer was not all taken, "       \
    "within the timeout.\n"                                                                        \
    "# TYPE sipscope_http_connections_cut_total counter\n"                                         \
    "sipscope_http_connections_cut_total{reason=\"slow_answer\"} " slow_answer "\n"                \
    "sipscope_http_connections_cut_total{reason=\"slow_request\"} " slow_request "\n"

/* A connection cut for its slow headers was counted nowhere: the operator could not see that
 * clients were being cut. Both reasons are exported at 0 from the start; one connection whose
 * headers trickle past the timeout (1 s) makes slow_request 1, and the scrapes around it, quick,
 * are not cut. */
TEST(a_connection_cut_for_slow_request_headers_is_counted)
{
    struct http_config cfg = {.listen_address = "127.0.0.1:0", .timeout_s = 1};
    struct metrics *reg = metrics_new(10);
    char err[256] = "";
    struct http_server *srv;
    double t0, closed_after;
    struct resp r;
    int fd;

    CHECK_INT(http_cuts_declare(reg, cfg.cuts), 0);
    srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        metrics_free(reg);
        return;
    }
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, CUTS_TEXT("0", "0"));
    resp_free(&r);
    fd = connect_to(AF_INET, http_port(srv));
    CHECK(fd >= 0);
    t0 = now_s();
    send_all(fd, "GET /metrics HTTP/1.1\r\n", 23);
    closed_after = trickle_until_closed(fd, t0, "X-Slow: 1\r\n");
    CHECK(closed_after >= 0.9 && closed_after <= 2.5);
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, CUTS_TEXT("1", "0"));
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

/* A registry whose exposition is some 30 MB, more than the socket buffers of both ends hold
 * (4 MB at most for the server's, 64 KB asked for the client's): 30,000 series of 1000-byte
 * label values. */
#define BIG_SERIES 30000
static struct metrics *big_registry(void)
{
    static const char *const key[] = {"key"};
    struct metrics *reg = metrics_new(BIG_SERIES + HTTP_CUT_COUNT); /* and the cut reasons */
    struct metric_family *fam = metrics_family(reg, "test_big_total", "Big.", METRIC_COUNTER, key,
                                               1, NULL, 0, BIG_SERIES, 0);
    char v[1000];

    memset(v, 'v', sizeof(v));
    for (int i = 0; i < BIG_SERIES; i++) {
        int n = snprintf(v, sizeof(v), "%d", i);
        v[n] = 'v';
        uint32_t k = metrics_intern(reg, v, sizeof(v));
        metric_counter_add(metrics_series(fam, &k), 1);
    }
    return reg;
}

/* When, after *t0 (0 until set), a request from 127.0.0.1 first got a 200 from /-/healthy
 * (polled every 100 ms until limit s after it, or 10 s in all); -1 if none did. */
static double first_answer_after(uint16_t port, _Atomic double *t0, double limit)
{
    double start = now_s();

    while (now_s() - start < 10 && (atomic_load(t0) == 0 || now_s() - atomic_load(t0) < limit)) {
        struct resp r = {0};
        int rc = request(port, "GET", "/-/healthy", NULL, NULL, &r);
        int status = r.status;
        resp_free(&r);
        if (rc == 0 && status == 200)
            return atomic_load(t0) ? now_s() - atomic_load(t0) : 0;
        usleep(100000);
    }
    return -1;
}

/* A client that takes its answer at about 2 MB/s (16 KB every 8 ms) for up to 6 s: fast enough
 * that the server's socket always has room again within the timeout, slow enough that 30 MB
 * take 15 s. */
struct slow_reader {
    int fd;
    atomic_bool stop;
    size_t got;
    _Atomic double first; /* when the first bytes came (now_s), 0 before */
};

static void *slow_reader_run(void *arg)
{
    struct slow_reader *sr = arg;
    char buf[16384];
    double t0 = now_s();

    while (!atomic_load(&sr->stop) && now_s() - t0 < 6) {
        ssize_t n = recv(sr->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            break;
        if (n > 0 && sr->got == 0)
            atomic_store(&sr->first, now_s());
        if (n > 0)
            sr->got += (size_t)n;
        usleep(8000);
    }
    return NULL;
}

/* libmicrohttpd's timeout counts idle time, which a client taking a little of the answer at a
 * time never lets pass: it held its connection (and the render buffer, as large as the
 * exposition) for as long as it went on reading, the whole exposition at its pace. An answer
 * must be taken within the timeout (1 s here) of being ready (here, of its first bytes: the
 * render before takes time of its own); the one connection that the address may hold
 * (max_per_address 1) is then free for its next request. */
TEST(an_answer_read_a_little_at_a_time_is_cut_at_the_timeout)
{
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .timeout_s = 1, .max_per_address = 1};
    const char *req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    struct metrics *reg = big_registry();
    struct slow_reader sr = {.fd = -1};
    char err[256] = "";
    struct http_server *srv;
    double served_after;
    int rcvbuf = 65536;
    pthread_t t;

    CHECK_INT(http_cuts_declare(reg, cfg.cuts), 0);
    srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        metrics_free(reg);
        return;
    }
    sr.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(sr.fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* before connect */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(http_port(srv))};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK_INT(connect(sr.fd, (struct sockaddr *)&to, sizeof(to)), 0);
    CHECK_INT(send_all(sr.fd, req, strlen(req)), 0);
    pthread_create(&t, NULL, slow_reader_run, &sr);
    served_after = first_answer_after(http_port(srv), &sr.first, 4);
    if (served_after < 0 || served_after > 2.5)
        fprintf(stderr, "  the next request was served after %.2f s (-1: not within 4 s)\n",
                served_after);
    CHECK(served_after >= 0.8 && served_after <= 2.5);
    atomic_store(&sr.stop, true);
    pthread_join(t, NULL);
    CHECK(sr.got > 0 && sr.got < 20000000); /* it was reading, and was cut long before the end */
    close(sr.fd);
    http_stop(srv);
    /* Cut once, for its answer; the health checks around it were refused or quick, not cut. */
    CHECK(metric_value(cfg.cuts[HTTP_CUT_SLOW_ANSWER]) == 1);
    CHECK(metric_value(cfg.cuts[HTTP_CUT_SLOW_REQUEST]) == 0);
    metrics_free(reg);
}

/* The same for a request's body, which none of the endpoints reads: a byte every 200 ms of a
 * POST's megabyte held the connection for days. The request, headers and body, must come whole
 * within the timeout. */
TEST(a_request_body_sent_a_byte_at_a_time_is_cut_at_the_timeout)
{
    struct fixture f;
    struct http_config cfg = {.listen_address = "127.0.0.1:0", .timeout_s = 1};
    const char *req = "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
    char err[256] = "";
    struct http_server *srv;
    double t0, closed_after;
    int fd;

    fixture_init(&f);
    srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        return;
    }
    fd = connect_to(AF_INET, http_port(srv));
    CHECK(fd >= 0);
    t0 = now_s();
    CHECK_INT(send_all(fd, req, strlen(req)), 0);
    closed_after = trickle_until_closed(fd, t0, "x");
    CHECK(closed_after >= 0.9 && closed_after <= 2.5);
    http_stop(srv);
    metrics_free(f.reg);
}

/* While the answer is being made, there is no deadline: a reload that waits on the engine
 * for longer than the timeout (1.5 s against 1 s) still gets its answer. */
static int hook_slow_reload(void *ctx, char *msg, size_t msglen)
{
    (void)ctx;
    usleep(1500000);
    snprintf(msg, msglen, "reloaded slowly");
    return 0;
}

TEST(a_reload_that_takes_longer_than_the_timeout_is_answered)
{
    struct fixture f;
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .timeout_s = 1, .enable_lifecycle = true};
    struct http_hooks hooks = {.reload = hook_slow_reload};
    char err[256] = "";
    struct http_server *srv;
    struct resp r;

    fixture_init(&f);
    srv = http_start(&cfg, f.reg, &hooks, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        return;
    }
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, "reloaded slowly\n");
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

/* --- Health, readiness, index, errors ----------------------------------------------------------
 */

/* A TCP connection between two addresses of one family; an IPv6 source may be any address
 * (IPV6_FREEBIND: an AnyIP route makes it local). -1 on failure. */
static int connect_pair(const struct sockaddr *from, const struct sockaddr *to, socklen_t len)
{
    struct timeval tv = {5, 0};
    int one = 1, fd = socket(to->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (to->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_FREEBIND, &one, sizeof(one));
    if (bind(fd, from, len) != 0 || connect(fd, to, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A connection from src (an IPv4 loopback address) to 127.0.0.1:port. */
static int connect_from(const char *src, uint16_t port)
{
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};

    inet_pton(AF_INET, src, &from.sin_addr);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(port);
    return connect_pair((struct sockaddr *)&from, (struct sockaddr *)&to, sizeof(from));
}

/* A connection from src to dst:port over IPv6. */
static int connect_from6(const char *src, const char *dst, uint16_t port)
{
    struct sockaddr_in6 from = {.sin6_family = AF_INET6}, to = {.sin6_family = AF_INET6};

    inet_pton(AF_INET6, src, &from.sin6_addr);
    inet_pton(AF_INET6, dst, &to.sin6_addr);
    to.sin6_port = htons(port);
    return connect_pair((struct sockaddr *)&from, (struct sockaddr *)&to, sizeof(from));
}

/* A scrape over connection fd, which it closes: 1 when it got 200, 0 when the server closed
 * it, -1 when there was no connection. */
static int scrape_on(int fd)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct resp r = {0};
    int ok;

    if (fd < 0)
        return -1;
    ok = send_all(fd, req, sizeof(req) - 1) == 0 && read_resp(fd, false, &r) == 0 &&
         r.status == 200;
    resp_free(&r);
    close(fd);
    return ok;
}

static int scrape_from(const char *src, uint16_t port)
{
    return scrape_on(connect_from(src, port));
}

static int scrape_from6(const char *src, const char *dst, uint16_t port)
{
    return scrape_on(connect_from6(src, dst, port));
}

/* Opens a connection from each of from[n] and sends half a request on it, as a slow client
 * holding connections does; held[i] is its socket, or -1. */
static void hold_connections(uint16_t port, const char *const *from, int n, int *held)
{
    for (int i = 0; i < n; i++) {
        held[i] = connect_from(from[i], port);
        CHECK(held[i] >= 0);
        if (held[i] >= 0)
            send_all(held[i], "GET /metrics HTTP/1.1\r\n", 24);
    }
}

static void close_held(const int *held, int n)
{
    for (int i = 0; i < n; i++)
        if (held[i] >= 0)
            close(held[i]);
}

/* One address holding connections open takes at most max_per_address of them: other
 * addresses, Prometheus and the health probes, still get in. */
TEST(one_address_cannot_take_every_connection)
{
    struct fixture f;
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .max_connections = 8, .max_per_address = 4};
    const char *from[6] = {"127.0.0.3", "127.0.0.3", "127.0.0.3",
                           "127.0.0.3", "127.0.0.3", "127.0.0.3"};
    char err[256] = "";
    int held[6];
    fixture_init(&f);
    struct http_server *srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    CHECK(srv != NULL);
    if (!srv)
        return;
    hold_connections(http_port(srv), from, 6, held);
    CHECK_INT(scrape_from("127.0.0.3", http_port(srv)), 0); /* its fifth and later: closed */
    CHECK_INT(scrape_from("127.0.0.1", http_port(srv)), 1);
    CHECK_INT(scrape_from("127.0.0.2", http_port(srv)), 1);
    close_held(held, 6);
    http_stop(srv);
    metrics_free(f.reg);
}

/* Two addresses holding all they may (4 each of 8) no longer take every connection: the last
 * quarter is kept for addresses that hold none, so Prometheus still gets in. */
TEST(several_addresses_cannot_take_every_connection)
{
    struct fixture f;
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .max_connections = 8, .max_per_address = 4};
    const char *from[8] = {"127.0.0.3", "127.0.0.3", "127.0.0.3", "127.0.0.3",
                           "127.0.0.4", "127.0.0.4", "127.0.0.4", "127.0.0.4"};
    char err[256] = "";
    int held[8];
    fixture_init(&f);
    struct http_server *srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    CHECK(srv != NULL);
    if (!srv)
        return;
    hold_connections(http_port(srv), from, 8, held);
    /* .4's third and fourth were refused (6 held, the 2 left kept for newcomers). */
    CHECK_INT(scrape_from("127.0.0.4", http_port(srv)), 0);
    CHECK_INT(scrape_from("127.0.0.1", http_port(srv)), 1);
    CHECK_INT(scrape_from("127.0.0.2", http_port(srv)), 1);
    close_held(held, 8);
    http_stop(srv);
    metrics_free(f.reg);
}

/* The exposition of a registry holding only HTTP_REFUSED_FAMILY (http_refused_declare), with
 * the counts given: label values in byte order. */
#define REFUSED_TEXT(per_address, per_network, reserve, total)                                     \
    "# HELP sipscope_http_connections_refused_total HTTP connections the server refused as they "  \
    "came: every connection taken, the address's or its IPv6 /64's share taken, or the last "      \
    "quarter, kept for addresses holding none.\n"                                                  \
    "# TYPE sipscope_http_connections_refused_total counter\n"                                     \
    "sipscope_http_connections_refused_total{reason=\"per_address\"} " per_address "\n"            \
    "sipscope_http_connections_refused_total{reason=\"per_network\"} " per_network "\n"            \
    "sipscope_http_connections_refused_total{reason=\"reserve\"} " reserve "\n"                    \
    "sipscope_http_connections_refused_total{reason=\"total\"} " total "\n"

/* A connection refused at a limit was counted nowhere: an operator whose Prometheus was refused
 * could not see why. Every reason is exported at 0 from the start; then, of 8 connections with
 * 4 per address (the last 2 kept for newcomers): .3's fifth is refused for its address, .4's
 * third for the reserve (6 held), and once newcomers .5 and .6 hold the last 2, .7 for the
 * total. */
TEST(connections_refused_at_the_limits_are_counted_by_reason)
{
    struct http_config cfg = {
        .listen_address = "127.0.0.1:0", .max_connections = 8, .max_per_address = 4};
    const char *from[8] = {"127.0.0.3", "127.0.0.3", "127.0.0.3", "127.0.0.3",
                           "127.0.0.4", "127.0.0.4", "127.0.0.5", "127.0.0.6"};
    struct metrics *reg = metrics_new(10);
    char err[256] = "";
    struct http_server *srv;
    struct resp r;
    int held[8];

    CHECK_INT(http_refused_declare(reg, cfg.refused), 0);
    srv = http_start(&cfg, reg, NULL, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        metrics_free(reg);
        return;
    }
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, REFUSED_TEXT("0", "0", "0", "0"));
    resp_free(&r);
    hold_connections(http_port(srv), from, 4, held);
    CHECK_INT(scrape_from("127.0.0.3", http_port(srv)), 0);
    hold_connections(http_port(srv), from + 4, 2, held + 4);
    CHECK_INT(scrape_from("127.0.0.4", http_port(srv)), 0);
    hold_connections(http_port(srv), from + 6, 2, held + 6);
    CHECK_INT(scrape_from("127.0.0.7", http_port(srv)), 0);
    CHECK(metric_value(cfg.refused[HTTP_REFUSED_PER_ADDRESS]) == 1);
    CHECK(metric_value(cfg.refused[HTTP_REFUSED_PER_NETWORK]) == 0);
    CHECK(metric_value(cfg.refused[HTTP_REFUSED_RESERVE]) == 1);
    CHECK(metric_value(cfg.refused[HTTP_REFUSED_TOTAL]) == 1);
    close_held(held, 8);
    http_stop(srv);
    metrics_free(reg);
}

/* The child of ipv6_host_is_limited_by_its_slash_64: in a network namespace of its own, with
 * 2001:db8::/48 local on its loopback (any address of it can be bound), one host holds
 * connections from two addresses of its /64. Returns a bit per wrong outcome (0: all right). */
static int slash_64_child(void)
{
    struct fixture f;
    struct http_config cfg = {.listen_address = "[::]:0",
                              .max_connections = 16,
                              .max_per_address = 2,
                              .max_per_network = 4};
    char err[256] = "";
    const char *from[4] = {"2001:db8::10", "2001:db8::10", "2001:db8::11", "2001:db8::11"};
    int held[4], wrong = 0;

    if (system("ip link set lo up && ip -6 route add local 2001:db8::/48 dev lo") != 0)
        return 1 << 0;
    fixture_init(&f);
    if (http_refused_declare(f.reg, cfg.refused) != 0)
        return 1 << 1;
    struct http_server *srv = http_start(&cfg, f.reg, NULL, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "  http_start: %s\n", err);
        return 1 << 1;
    }
    for (int i = 0; i < 4; i++) {
        held[i] = connect_from6(from[i], "2001:db8::1", http_port(srv));
        if (held[i] < 0 || send_all(held[i], "GET /metrics HTTP/1.1\r\n", 24) != 0)
            wrong |= 1 << 2;
    }
    /* A third address of the same /64: the network is full. */
    if (scrape_from6("2001:db8::ffff:1", "2001:db8::1", http_port(srv)) != 0)
        wrong |= 1 << 3;
    /* Another /64, and IPv4 through the dual-stack socket, still get in. */
    if (scrape_from6("2001:db8:0:1::10", "2001:db8::1", http_port(srv)) != 1)
        wrong |= 1 << 4;
    if (scrape_from("127.0.0.1", http_port(srv)) != 1)
        wrong |= 1 << 5;
    /* The one refusal so far, counted for the network. */
    if (metric_value(cfg.refused[HTTP_REFUSED_PER_NETWORK]) != 1 ||
        metric_value(cfg.refused[HTTP_REFUSED_PER_ADDRESS]) != 0 ||
        metric_value(cfg.refused[HTTP_REFUSED_RESERVE]) != 0 ||
        metric_value(cfg.refused[HTTP_REFUSED_TOTAL]) != 0)
        wrong |= 1 << 7;
    /* One connection fewer in the /64 lets a new address of it in, once libmicrohttpd has
     * cleaned the closed one up (its thread ends first): within 3 s. */
    close(held[3]);
    held[3] = -1;
    int in = 0;
    for (int i = 0; i < 30 && in != 1; i++) {
        usleep(100000);
        in = scrape_from6("2001:db8::ffff:2", "2001:db8::1", http_port(srv));
    }
    if (in != 1)
        wrong |= 1 << 6;
    for (int i = 0; i < 4; i++)
        if (held[i] >= 0)
            close(held[i]);
    http_stop(srv);
    metrics_free(f.reg);
    return wrong;
}

/* An IPv6 host has a /64 to pick addresses from: counted by address alone, it took every
 * connection. Needs root (a network namespace); skipped otherwise. */
TEST(ipv6_host_is_limited_by_its_slash_64)
{
    int status = 0;
    pid_t pid;

    if (geteuid() != 0)
        TEST_SKIP("needs root for a network namespace");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        alarm(30);
        if (unshare(CLONE_NEWNET) != 0)
            _exit(77);
        _exit(slash_64_child());
    }
    CHECK(pid > 0);
    if (pid <= 0 || waitpid(pid, &status, 0) != pid)
        return;
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        TEST_SKIP("no network namespace: %s", "unshare failed");
    CHECK_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
}

TEST(healthy_answers_200_with_a_fixed_text)
{
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, false, NULL);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/-/healthy", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_HEADER(&r, "Content-Type", "text/plain; charset=utf-8");
    CHECK_BODY(r, "sipscope is Healthy.\n");
    resp_free(&r);
    CHECK_INT(request(http_port(srv), "HEAD", "/-/healthy", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_HEADER(&r, "Content-Length", "21");
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

TEST(ready_follows_the_ready_hook)
{
    struct metrics *reg = metrics_new(10);
    struct hook_state h = {0};
    struct http_server *srv = start(reg, false, &h);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/-/ready", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    CHECK_BODY(r, "sipscope is not ready.\n");
    resp_free(&r);
    atomic_store(&h.ready, true);
    CHECK_INT(request(http_port(srv), "GET", "/-/ready", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, "sipscope is Ready.\n");
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

TEST(without_hooks_the_server_is_ready)
{
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, false, NULL);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/-/ready", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

/* An offline read that serves: the metrics are final only once the file is read, so /metrics
 * answers like /-/ready until then (a partial scrape would be stored as the file's values). */
TEST(metrics_wait_for_ready_when_configured)
{
    struct fixture f;
    struct hook_state h = {0};
    struct http_config cfg = {.listen_address = "127.0.0.1:0", .metrics_when_ready = true};
    struct http_hooks hooks = {.ctx = &h, .ready = hook_ready, .reload = hook_reload};
    char err[256] = "";
    struct http_server *srv;
    struct resp r;

    fixture_init(&f);
    srv = http_start(&cfg, f.reg, &hooks, err, sizeof(err));
    if (!srv) {
        TEST_FAIL_AT("http_start: %s", err);
        metrics_free(f.reg);
        return;
    }
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    CHECK_HEADER(&r, "Content-Type", "text/plain; charset=utf-8");
    CHECK_BODY(r, "sipscope is not ready: the metrics are not final yet.\n");
    resp_free(&r);
    CHECK_INT(request(http_port(srv), "HEAD", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    resp_free(&r);
    atomic_store(&h.ready, true);
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, fixture_text);
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

/* Live, the metrics are served whatever /-/ready says (the default). */
TEST(metrics_do_not_wait_for_ready_by_default)
{
    struct fixture f;
    struct hook_state h = {0};
    struct http_server *srv;
    struct resp r;

    fixture_init(&f);
    srv = start(f.reg, false, &h);
    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, fixture_text);
    resp_free(&r);
    http_stop(srv);
    metrics_free(f.reg);
}

TEST(index_page_links_metrics_and_shows_the_version)
{
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, false, NULL);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "GET", "/", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_HEADER(&r, "Content-Type", "text/html; charset=utf-8");
    CHECK(strstr(r.body, "<h1>sipscope 1.2.3</h1>") != NULL);
    CHECK(strstr(r.body, "<a href=\"metrics\">/metrics</a>") != NULL);
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

/* libmicrohttpd decodes the path before the handler compares it, into a NUL-terminated string:
 * "/metrics%00x" read as "/metrics" and was served. A path holding an encoded NUL names no page.
 * What Prometheus and common tools send is served as before: a query, and an escape of an
 * ordinary character (RFC 3986 §6.2.2.2: "/metric%73" is "/metrics"); paths are exact and
 * case-sensitive, as in Prometheus' own server. */
TEST(a_path_holding_an_encoded_nul_is_404)
{
    static const struct {
        const char *method, *path;
        int status;
    } cases[] = {
        {"GET", "/metrics%00x", 404},   {"GET", "/metrics%00", 404},
        {"GET", "/metrics%00/x", 404},  {"GET", "/-/healthy%00zz", 404},
        {"GET", "/%00/metrics", 404},   {"POST", "/-/reload%00", 404},
        {"GET", "/metrics", 200},       {"GET", "/metrics?x=1", 200},
        {"GET", "/metrics?x=%00", 200}, {"GET", "/metric%73", 200},
        {"GET", "/metrics/", 404},      {"GET", "//metrics", 404},
        {"GET", "/METRICS", 404},       {"GET", "/metrics%2f", 404},
    };
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, true, NULL);

    if (!srv)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resp r;
        CHECK_INT(request(http_port(srv), cases[i].method, cases[i].path, NULL, NULL, &r), 0);
        if (r.status != cases[i].status)
            TEST_FAIL_AT("%s %s: %d, expected %d", cases[i].method, cases[i].path, r.status,
                         cases[i].status);
        if (cases[i].status == 404)
            CHECK_BODY(r, "404 page not found\n");
        resp_free(&r);
    }
    http_stop(srv);
    metrics_free(reg);
}

TEST(unknown_paths_are_404_and_wrong_methods_405)
{
    static const struct {
        const char *method, *path;
        int status;
        const char *allow, *body;
    } cases[] = {
        {"GET", "/nope", 404, NULL, "404 page not found\n"},
        {"GET", "/metrics/", 404, NULL, "404 page not found\n"},
        {"GET", "/metricsx", 404, NULL, "404 page not found\n"},
        {"GET", "/-/", 404, NULL, "404 page not found\n"},
        {"POST", "/nope", 404, NULL, "404 page not found\n"},
        {"POST", "/metrics", 405, "GET, HEAD", "Method Not Allowed\n"},
        {"PUT", "/-/healthy", 405, "GET, HEAD", "Method Not Allowed\n"},
        {"DELETE", "/", 405, "GET, HEAD", "Method Not Allowed\n"},
        {"OPTIONS", "/-/ready", 405, "GET, HEAD", "Method Not Allowed\n"},
        {"GET", "/-/reload", 405, "POST, PUT", "Method Not Allowed\n"},
        {"DELETE", "/-/reload", 405, "POST, PUT", "Method Not Allowed\n"},
    };
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, true, NULL);

    if (!srv)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct resp r;
        /* A body on a refused request is read and dropped, not left in the connection. */
        CHECK_INT(request(http_port(srv), cases[i].method, cases[i].path, NULL,
                          strcmp(cases[i].method, "POST") == 0 ? "x=1" : NULL, &r),
                  0);
        if (r.status != cases[i].status)
            TEST_FAIL_AT("%s %s: %d, expected %d", cases[i].method, cases[i].path, r.status,
                         cases[i].status);
        CHECK_HEADER(&r, "Allow", cases[i].allow);
        CHECK_BODY(r, cases[i].body);
        resp_free(&r);
    }
    http_stop(srv);
    metrics_free(reg);
}

/* --- /-/reload ---------------------------------------------------------------------------------
 */

TEST(reload_without_lifecycle_is_forbidden_and_never_calls_the_hook)
{
    struct metrics *reg = metrics_new(10);
    struct hook_state h = {0};
    struct http_server *srv = start(reg, false, &h);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 403);
    CHECK_BODY(r, "Lifecycle API is not enabled.\n");
    resp_free(&r);
    CHECK_INT(request(http_port(srv), "GET", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 405);
    resp_free(&r);
    CHECK_INT(atomic_load(&h.reloads), 0);
    http_stop(srv);
    metrics_free(reg);
}

TEST(reload_with_lifecycle_calls_the_hook_on_post_and_put)
{
    struct metrics *reg = metrics_new(10);
    struct hook_state h = {0};
    struct http_server *srv = start(reg, true, &h);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, "Reload succeeded.\n");
    resp_free(&r);
    h.reload_msg = "3 rules loaded";
    CHECK_INT(request(http_port(srv), "PUT", "/-/reload", NULL, "ignored body", &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, "3 rules loaded\n");
    resp_free(&r);
    h.reload_rc = -EINVAL;
    h.reload_msg = "rules/carrier.lua:3: unexpected symbol";
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 500);
    CHECK_BODY(r, "Reload failed: rules/carrier.lua:3: unexpected symbol\n");
    resp_free(&r);
    h.reload_msg = NULL;
    h.reload_rc = -ENOENT;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 500);
    CHECK_BODY(r, "Reload failed: No such file or directory\n");
    resp_free(&r);
    CHECK_INT(request(http_port(srv), "GET", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 405);
    resp_free(&r);
    CHECK_INT(atomic_load(&h.reloads), 4);
    http_stop(srv);
    metrics_free(reg);
}

TEST(reload_without_a_hook_is_an_error)
{
    struct metrics *reg = metrics_new(10);
    struct http_server *srv = start(reg, true, NULL);
    struct resp r;

    if (!srv)
        return;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 500);
    CHECK_BODY(r, "Reload is not supported.\n");
    resp_free(&r);
    http_stop(srv);
    metrics_free(reg);
}

/* A stand-in engine thread: serves reload requests from the mailbox until told to stop. */
struct engine_sim {
    struct http_reload *mb;
    atomic_bool stop;
    atomic_int reloads;
    int rc;
    const char *msg;
};

static void *engine_sim_run(void *arg)
{
    struct engine_sim *e = arg;
    struct pollfd p = {.fd = http_reload_fd(e->mb), .events = POLLIN};

    while (!atomic_load(&e->stop)) {
        if (poll(&p, 1, 20) > 0 && http_reload_take(e->mb)) {
            atomic_fetch_add(&e->reloads, 1);
            http_reload_done(e->mb, e->rc, e->msg);
        }
    }
    return NULL;
}

TEST(reload_through_the_handoff_returns_the_engine_result)
{
    struct metrics *reg = metrics_new(10);
    struct engine_sim e = {.mb = http_reload_new(), .msg = "rules reloaded"};
    struct hook_state h = {.mailbox = e.mb, .timeout_ms = 5000};
    struct http_server *srv = start(reg, true, &h);
    pthread_t t;
    struct resp r;

    if (!srv)
        return;
    pthread_create(&t, NULL, engine_sim_run, &e);
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, "rules reloaded\n");
    resp_free(&r);
    e.rc = -EINVAL;
    e.msg = "labels changed: restart needed";
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 500);
    CHECK_BODY(r, "Reload failed: labels changed: restart needed\n");
    resp_free(&r);
    atomic_store(&e.stop, true);
    pthread_join(t, NULL);
    CHECK_INT(atomic_load(&e.reloads), 2);

    /* No engine any more: the wait ends at the timeout, with 503. */
    h.timeout_ms = 100;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    CHECK_BODY(r, "Reload failed: the reload did not finish within 100 ms; it goes on\n");
    resp_free(&r);
    /* After cancel (shutdown), requests fail at once. */
    http_reload_cancel(e.mb);
    h.timeout_ms = 60000;
    CHECK_INT(request(http_port(srv), "POST", "/-/reload", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 503);
    CHECK_BODY(r, "sipscope is shutting down.\n");
    resp_free(&r);
    http_stop(srv);
    http_reload_free(e.mb);
    metrics_free(reg);
}

struct waiter {
    struct http_reload *mb;
    int rc;
    char msg[64];
};

static void *waiter_run(void *arg)
{
    struct waiter *w = arg;
    w->rc = http_reload_request(w->mb, 10000, w->msg, sizeof(w->msg));
    return NULL;
}

/* Waits until n more requests have been announced on the fd (each adds 1 to the eventfd
 * counter); reading it drains the fd, which http_reload_take does not depend on. */
static bool wait_requests(struct http_reload *mb, uint64_t n)
{
    struct pollfd p = {.fd = http_reload_fd(mb), .events = POLLIN};
    uint64_t seen = 0, v;

    while (seen < n) {
        if (poll(&p, 1, 5000) != 1)
            return false;
        if (read(p.fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
            seen += v;
    }
    return seen == n;
}

TEST(requests_waiting_together_share_one_reload_and_later_ones_get_the_next)
{
    struct http_reload *mb = http_reload_new();
    struct waiter w[3] = {{.mb = mb}, {.mb = mb}, {.mb = mb}};
    pthread_t t[3];
    char msg[64];

    CHECK(mb != NULL);
    if (!mb)
        return;
    CHECK_INT(http_reload_take(mb), false); /* nothing asked yet */
    pthread_create(&t[0], NULL, waiter_run, &w[0]);
    pthread_create(&t[1], NULL, waiter_run, &w[1]);
    CHECK(wait_requests(mb, 2)); /* both asked before the take */
    CHECK_INT(http_reload_take(mb), true);
    /* A request after the take is not served by this reload. */
    pthread_create(&t[2], NULL, waiter_run, &w[2]);
    CHECK(wait_requests(mb, 1));
    http_reload_done(mb, -EINVAL, "first");
    pthread_join(t[0], NULL);
    pthread_join(t[1], NULL);
    CHECK_INT(w[0].rc, -EINVAL);
    CHECK_STR(w[0].msg, "first");
    CHECK_INT(w[1].rc, -EINVAL);
    CHECK_STR(w[1].msg, "first");
    CHECK_INT(http_reload_take(mb), true);
    http_reload_done(mb, 0, "second");
    pthread_join(t[2], NULL);
    CHECK_INT(w[2].rc, 0);
    CHECK_STR(w[2].msg, "second");
    CHECK_INT(http_reload_take(mb), false);

    http_reload_cancel(mb);
    CHECK_INT(http_reload_request(mb, 1000, msg, sizeof(msg)), -ECANCELED);
    CHECK_STR(msg, "shutting down");
    http_reload_free(mb);
}

/* --- Slow and blocked connections ------------------------------------------------------------ */

struct slow_reload {
    uint16_t port;
    struct resp r;
    int rc;
};

static void *slow_reload_run(void *arg)
{
    struct slow_reload *sr = arg;
    sr->rc = request(sr->port, "POST", "/-/reload", NULL, NULL, &sr->r);
    return NULL;
}

TEST(a_stalled_client_or_a_waiting_reload_holds_up_no_other_request)
{
    struct fixture f;
    struct http_reload *mb = http_reload_new();
    struct hook_state h = {.mailbox = mb, .timeout_ms = 1500};
    struct slow_reload sr;
    struct http_server *srv;
    pthread_t t;
    struct resp r;
    double t0;
    int stalled;

    fixture_init(&f);
    srv = start(f.reg, true, &h);
    if (!srv)
        return;
    /* Half a request, never finished. */
    stalled = connect_to(AF_INET, http_port(srv));
    CHECK(stalled >= 0);
    CHECK_INT(send_all(stalled, "GET /metr", 9), 0);
    /* A reload that nobody serves: its connection waits for the timeout. */
    sr.port = http_port(srv);
    pthread_create(&t, NULL, slow_reload_run, &sr);
    while (atomic_load(&h.reloads) == 0)
        usleep(1000);

    t0 = now_s();
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    CHECK_BODY(r, fixture_text);
    resp_free(&r);
    CHECK_INT(request(http_port(srv), "GET", "/-/healthy", NULL, NULL, &r), 0);
    CHECK_INT(r.status, 200);
    resp_free(&r);
    CHECK(now_s() - t0 < 1.0); /* well before the reload's 1.5 s timeout */

    pthread_join(t, NULL);
    CHECK_INT(sr.rc, 0);
    CHECK_INT(sr.r.status, 503);
    resp_free(&sr.r);
    close(stalled);
    http_stop(srv);
    http_reload_free(mb);
    metrics_free(f.reg);
}

/* --- Concurrency -------------------------------------------------------------------------------
 */

#define WRITER_ADDS 200000
#define READERS 4
#define SCRAPES 40

struct writer {
    struct metrics *reg;
    struct metric_family *fam;
    atomic_bool done;
};

/* The engine's part: counts, and creates a new series now and then (which takes the lock the
 * scrapes hold). */
static void *writer_run(void *arg)
{
    struct writer *w = arg;
    uint32_t a = sym(w->reg, "a");
    struct metric_series *s = metrics_series(w->fam, &a);

    for (int i = 0; i < WRITER_ADDS; i++) {
        metric_counter_add(s, 1);
        if (i % 2000 == 0) {
            char name[16];
            snprintf(name, sizeof(name), "k%d", i / 2000);
            uint32_t k = metrics_intern(w->reg, name, strlen(name));
            metric_counter_add(metrics_series(w->fam, &k), 1);
        }
    }
    atomic_store(&w->done, true);
    return NULL;
}

struct reader {
    uint16_t port;
    int failures;
    int regressions;
};

static void *reader_run(void *arg)
{
    struct reader *rd = arg;
    double last = -1;

    for (int i = 0; i < SCRAPES; i++) {
        struct resp r;
        const char *p;
        double v;
        if (request(rd->port, "GET", "/metrics", (i % 2) ? "Accept-Encoding: gzip\r\n" : NULL, NULL,
                    &r) != 0 ||
            r.status != 200) {
            rd->failures++;
            resp_free(&r);
            continue;
        }
        if (i % 2) {
            char *plain = malloc(1 << 20);
            long n = gunzip(r.body, r.len, plain, (1 << 20) - 1);
            if (n < 0) {
                rd->failures++;
                free(plain);
                resp_free(&r);
                continue;
            }
            plain[n] = '\0';
            free(r.body);
            r.body = plain;
            r.len = (size_t)n;
        }
        /* The text is whole (ends with a newline) and the counter never goes back. */
        p = strstr(r.body, "test_events_total{kind=\"a\"} ");
        if (!p || r.len == 0 || r.body[r.len - 1] != '\n' ||
            sscanf(p + strlen("test_events_total{kind=\"a\"} "), "%lf", &v) != 1)
            rd->failures++;
        else if (v < last)
            rd->regressions++;
        else
            last = v;
        resp_free(&r);
    }
    return NULL;
}

TEST(concurrent_scrapes_while_the_writer_counts_are_whole_and_monotonic)
{
    static const char *const kind[] = {"kind"};
    struct writer w = {.reg = metrics_new(1000)};
    struct reader rd[READERS];
    pthread_t wt, rt[READERS];
    struct http_server *srv;
    struct expo_buf b;
    struct resp r;

    w.fam = metrics_family(w.reg, "test_events_total", "Events.", METRIC_COUNTER, kind, 1, NULL, 0,
                           1000, 0);
    srv = start(w.reg, false, NULL);
    if (!srv)
        return;
    /* The series exists before the readers look for it. */
    uint32_t a = sym(w.reg, "a");
    metrics_series(w.fam, &a);
    pthread_create(&wt, NULL, writer_run, &w);
    for (int i = 0; i < READERS; i++) {
        rd[i] = (struct reader){.port = http_port(srv)};
        pthread_create(&rt[i], NULL, reader_run, &rd[i]);
    }
    for (int i = 0; i < READERS; i++) {
        pthread_join(rt[i], NULL);
        CHECK_INT(rd[i].failures, 0);
        CHECK_INT(rd[i].regressions, 0);
    }
    pthread_join(wt, NULL);

    /* At rest, the scrape is the render, and the count is exact. */
    render(w.reg, &b);
    CHECK_INT(request(http_port(srv), "GET", "/metrics", NULL, NULL, &r), 0);
    CHECK_INT(r.len, b.len);
    CHECK(r.len == b.len && memcmp(r.body, b.data, b.len) == 0);
    CHECK(strstr(r.body, "test_events_total{kind=\"a\"} 200000\n") != NULL);
    CHECK(strstr(r.body, "test_events_total{kind=\"k99\"} 1\n") != NULL);
    resp_free(&r);
    expo_buf_fini(&b);
    http_stop(srv);
    metrics_free(w.reg);
}

TEST_MAIN()
