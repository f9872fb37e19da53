/* fuzz_http: libFuzzer target for the exporter's web endpoints (core/http.c) as a scraper, a
 * health probe or an attacker reaches them: each input is sent as it is over a TCP connection
 * to a real server (libmicrohttpd, started once, on 127.0.0.1 and a port the kernel picks),
 * which answers with the handlers the program uses (request methods, paths, Accept-Encoding
 * lists, POST /-/reload, pipelined requests, bodies, whatever the bytes say).
 *
 * What aborts an input, beyond the sanitizers:
 * - an answer that does not start with a status line (an empty one is allowed: libmicrohttpd
 *   closes without one on some malformed requests);
 * - a 200 from /metrics whose body is not the registry's exposition, byte for byte: taken as it
 *   is, or unpacked when the answer says Content-Encoding: gzip. The registry does not change
 *   while fuzzing, so every render must be the same (render buffers are pooled between
 *   requests: one left dirty, or a gzip buffer handed to the wrong answer, shows here);
 * - a server that neither answers nor closes within 10 s of the client's end of input.
 * The first answer of an input is checked; pipelined ones after it only reach the sanitizers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "expo.h"
#include "http.h"
#include "metrics.h"

#define ANSWER_MAX (1u << 20)
#define WAIT_MS 10000

static struct metrics *reg;
static struct http_server *srv;
static uint16_t port;
static struct expo_buf expected; /* the registry's exposition */
static unsigned char answer[ANSWER_MAX];
static unsigned char unpacked[ANSWER_MAX];

static bool always_ready(void *ctx)
{
    (void)ctx;
    return true;
}

/* No engine behind it: a reload says so at once (a real one hands over to the engine). */
static int reload_nothing(void *ctx, char *msg, size_t msglen)
{
    (void)ctx;
    snprintf(msg, msglen, "nothing to reload");
    return 0;
}

/* A registry with what the exposition escapes: label values with quotes, backslashes, new lines
 * and UTF-8, help with a backslash, a histogram. */
static void registry_init(void)
{
    static const char *const labels[] = {"code", "peer"};
    static const double buckets[] = {0.1, 1};
    static const char *const values[][2] = {{"200", "plain"},
                                            {"486", "quote\"d"},
                                            {"503", "back\\slash"},
                                            {"180", "two\nlines"},
                                            {"302", "caf\xc3\xa9"}};
    struct metric_family *c, *g, *h;

    reg = metrics_new(1000);
    if (!reg)
        abort();
    c = metrics_family(reg, "fuzz_responses_total", "Responses \\ by code.", METRIC_COUNTER, labels,
                       2, NULL, 0, 100, 0);
    g = metrics_family(reg, "fuzz_active", "Active things.", METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    h = metrics_family(reg, "fuzz_latency_seconds", "Latency.", METRIC_HISTOGRAM, NULL, 0, buckets,
                       2, 1, 0);
    if (!c || !g || !h)
        abort();
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint32_t s[2] = {metrics_intern(reg, values[i][0], strlen(values[i][0])),
                         metrics_intern(reg, values[i][1], strlen(values[i][1]))};
        metric_counter_add(metrics_series(c, s), (double)(i + 1) * 1.5);
    }
    metric_gauge_set(metrics_series(g, NULL), -2);
    metric_histogram_observe(metrics_series(h, NULL), 0.05);
    metric_histogram_observe(metrics_series(h, NULL), 7);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct http_config cfg = {.listen_address = "127.0.0.1:0",
                              .enable_lifecycle = true,
                              .version = "fuzz",
                              /* one client: only the total bounds it */
                              .max_per_address = HTTP_DEFAULT_MAX_CONNECTIONS,
                              .max_per_network = HTTP_DEFAULT_MAX_CONNECTIONS,
                              .timeout_s = 5};
    struct http_hooks hooks = {.ready = always_ready, .reload = reload_nothing};
    char err[256];

    (void)argc;
    (void)argv;
    registry_init();
    expo_buf_init(&expected);
    if (expo_render(reg, 0, &expected) != 0)
        abort();
    srv = http_start(&cfg, reg, &hooks, err, sizeof(err));
    if (!srv) {
        fprintf(stderr, "fuzz_http: %s\n", err);
        abort();
    }
    port = http_port(srv);
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Sends the input and reads the answer until the server closes. Returns the answer's length,
 * or -1 when the server could not be reached. */
static ssize_t exchange(const uint8_t *data, size_t size)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    size_t sent = 0, got = 0;
    bool closed_write = false;
    int64_t deadline = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0)
        return -1;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | (closed_write ? 0 : POLLOUT)};
        int wait = closed_write ? (int)(deadline - now_ms()) : WAIT_MS;
        if (wait <= 0 || poll(&p, 1, wait) == 0) {
            fprintf(stderr, "fuzz_http: no answer and no close within %d ms\n", WAIT_MS);
            abort();
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, answer + got, got < ANSWER_MAX ? ANSWER_MAX - got : 0, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                break; /* closed (or reset: a request it refused while we still sent) */
            if (n > 0)
                got += (size_t)n;
            if (got == ANSWER_MAX)
                break; /* more than any answer here: checked as it is */
        }
        if (!closed_write && (p.revents & POLLOUT)) {
            ssize_t n = sent < size ? send(fd, data + sent, size - sent, MSG_NOSIGNAL) : 0;
            if (n > 0)
                sent += (size_t)n;
            if (sent == size || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                shutdown(fd, SHUT_WR);
                closed_write = true;
                deadline = now_ms() + WAIT_MS;
            }
        }
    }
    close(fd);
    return (ssize_t)got;
}

/* The value of header name in the head [head, head_end), or NULL; *len its length. */
static const char *header(const char *head, const char *head_end, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    for (const char *l = head; l < head_end;) {
        const char *e = memmem(l, (size_t)(head_end - l), "\r\n", 2);
        if (!e)
            e = head_end;
        if ((size_t)(e - l) > nlen && l[nlen] == ':' && strncasecmp(l, name, nlen) == 0) {
            const char *v = l + nlen + 1;
            while (v < e && *v == ' ')
                v++;
            *len = (size_t)(e - v);
            return v;
        }
        l = e + 2;
    }
    return NULL;
}

static size_t gunzip(const unsigned char *in, size_t len)
{
    z_stream z = {0};
    size_t out;
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        abort();
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)len;
    z.next_out = unpacked;
    z.avail_out = sizeof(unpacked);
    if (inflate(&z, Z_FINISH) != Z_STREAM_END) {
        fprintf(stderr, "fuzz_http: a gzip answer does not unpack\n");
        abort();
    }
    out = z.total_out;
    inflateEnd(&z);
    return out;
}

/* Checks the first answer (see the file's comment). */
static void check_answer(size_t got)
{
    const char *a = (const char *)answer, *head_end, *v;
    size_t vlen, body_len, clen;
    const unsigned char *body;

    if (got == 0)
        return;
    if (got < 12 || (memcmp(a, "HTTP/1.1 ", 9) != 0 && memcmp(a, "HTTP/1.0 ", 9) != 0) ||
        a[9] < '1' || a[9] > '5' || a[10] < '0' || a[10] > '9' || a[11] < '0' || a[11] > '9') {
        fprintf(stderr, "fuzz_http: the answer does not start with a status line\n");
        abort();
    }
    head_end = memmem(a, got, "\r\n\r\n", 4);
    if (!head_end || memcmp(a + 9, "200", 3) != 0)
        return;
    v = header(a, head_end, "Content-Type", &vlen);
    if (!v || vlen != strlen(HTTP_METRICS_CONTENT_TYPE) ||
        memcmp(v, HTTP_METRICS_CONTENT_TYPE, vlen) != 0)
        return; /* not /metrics */
    v = header(a, head_end, "Content-Length", &vlen);
    if (!v)
        return; /* a HEAD's answer may leave it out */
    clen = strtoul(v, NULL, 10);
    body = answer + (head_end + 4 - a);
    body_len = got - (size_t)(head_end + 4 - a);
    if (body_len == 0 || (body_len >= 7 && memcmp(body, "HTTP/1.", 7) == 0))
        return; /* HEAD: no body (the next answer may follow) */
    if (body_len < clen) {
        fprintf(stderr, "fuzz_http: /metrics cut short: %zu bytes of %zu\n", body_len, clen);
        abort();
    }
    body_len = clen; /* pipelined answers may follow */
    if (header(a, head_end, "Content-Encoding", &vlen)) {
        body_len = gunzip(body, body_len);
        body = unpacked;
    }
    if (body_len != expected.len || memcmp(body, expected.data, body_len) != 0) {
        fprintf(stderr, "fuzz_http: /metrics is not the registry's exposition\n");
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ssize_t got = exchange(data, size);
    if (got < 0)
        abort(); /* the server is gone */
    check_answer((size_t)got);
    return 0;
}
