/* http: the web endpoints on libmicrohttpd, and the reload handoff between HTTP threads and the
 * engine thread. It renders and compresses; it does not know rules, captures or the engine. */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <zlib.h>

#include "expo.h"
#include "http_clients.h"
#include "http_watch.h"
#include "log.h"

#define HTTP_POOL_IDLE 4    /* render buffers kept between scrapes */
#define HTTP_BACKLOG 64     /* listen() backlog */
#define HTTP_GZIP_LEVEL 1   /* scrapes repeat every few seconds: speed over ratio */
#define HTTP_RELOAD_MSG 256 /* reload message room, NUL included */
/* libmicrohttpd's own connection limit is this far past admit_client's: a backstop
 * (http_start). */
#define HTTP_LIMIT_BACKSTOP 4

/* --- Listen addresses ------------------------------------------------------------------------ */

/* Parses the decimal port after the last ':'; s is the whole input, for messages. */
static int parse_port(const char *p, const char *s, uint16_t *port, char *err, size_t errlen)
{
    unsigned long v = 0;
    size_t n = 0;

    for (; p[n] >= '0' && p[n] <= '9'; n++) {
        v = v * 10 + (unsigned long)(p[n] - '0');
        if (v > 65535)
            break;
    }
    if (n == 0 || p[n] != '\0' || v > 65535) {
        snprintf(err, errlen,
                 "invalid --web.listen-address \"%s\": the port must be a number from 0 to 65535",
                 s);
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int http_addr_parse(const char *s, struct http_addr *out, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *colon;
    size_t hlen;
    uint16_t port;

    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close) {
            snprintf(err, errlen,
                     "invalid --web.listen-address \"%s\": missing \"]\" after the "
                     "IPv6 address",
                     s);
            goto bad;
        }
        if (close[1] != ':') {
            snprintf(err, errlen,
                     "invalid --web.listen-address \"%s\": missing \":PORT\" after "
                     "\"]\"",
                     s);
            goto bad;
        }
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host)) {
            snprintf(err, errlen,
                     "invalid --web.listen-address \"%s\": \"%.*s\" is not an IPv6 "
                     "address",
                     s, (int)hlen, s + 1);
            goto bad;
        }
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (parse_port(close + 2, s, &port, err, errlen) != 0)
            goto bad;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->sa;
        if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1) {
            snprintf(err, errlen,
                     "invalid --web.listen-address \"%s\": \"%s\" is not an IPv6 "
                     "address",
                     s, host);
            goto bad;
        }
        if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
            /* [::ffff:a.b.c.d] is an IPv4 address: Linux refuses to bind it on an IPv6-only
             * socket, so it is bound as what it is. */
            struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons(port)};
            memcpy(&a4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
            memset(&out->sa, 0, sizeof(out->sa));
            memcpy(&out->sa, &a4, sizeof(a4));
            out->sa_len = sizeof(a4);
            out->dual_stack = false;
            out->port = port;
            return 0;
        }
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(port);
        out->sa_len = sizeof(*a6);
        out->dual_stack = IN6_IS_ADDR_UNSPECIFIED(&a6->sin6_addr);
        out->port = port;
        return 0;
    }
    colon = strrchr(s, ':');
    if (!colon) {
        snprintf(err, errlen,
                 "invalid --web.listen-address \"%s\": missing \":PORT\" (e.g. "
                 "\"%s\" for every address)",
                 s, HTTP_DEFAULT_LISTEN);
        goto bad;
    }
    hlen = (size_t)(colon - s);
    if (memchr(s, ':', hlen)) {
        snprintf(err, errlen,
                 "invalid --web.listen-address \"%s\": write an IPv6 address in "
                 "brackets, e.g. \"[::1]:%d\"",
                 s, HTTP_DEFAULT_PORT);
        goto bad;
    }
    if (parse_port(colon + 1, s, &port, err, errlen) != 0)
        goto bad;
    out->port = port;
    if (hlen == 0) {
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out->sa;
        a6->sin6_family = AF_INET6;
        a6->sin6_addr = in6addr_any;
        a6->sin6_port = htons(port);
        out->sa_len = sizeof(*a6);
        out->dual_stack = true;
        return 0;
    }
    struct sockaddr_in *a4 = (struct sockaddr_in *)&out->sa;
    if (hlen < sizeof(host)) {
        memcpy(host, s, hlen);
        host[hlen] = '\0';
    }
    /* inet_pton takes only the dotted quad, so "1.2.3", octal or hex forms are refused. */
    if (hlen >= sizeof(host) || inet_pton(AF_INET, host, &a4->sin_addr) != 1) {
        snprintf(err, errlen,
                 "invalid --web.listen-address \"%s\": \"%.*s\" is not an IPv4 "
                 "address (host names are not resolved; IPv6 goes in brackets)",
                 s, (int)hlen, s);
        goto bad;
    }
    a4->sin_family = AF_INET;
    a4->sin_port = htons(port);
    out->sa_len = sizeof(*a4);
    return 0;
bad:
    memset(out, 0, sizeof(*out));
    return -EINVAL;
}

const char *http_addr_format(const struct http_addr *a, char *out, size_t outlen)
{
    char host[INET6_ADDRSTRLEN];

    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&a->sa;
        inet_ntop(AF_INET6, &a6->sin6_addr, host, sizeof(host));
        snprintf(out, outlen, "[%s]:%u", host, (unsigned)ntohs(a6->sin6_port));
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)&a->sa;
        inet_ntop(AF_INET, &a4->sin_addr, host, sizeof(host));
        snprintf(out, outlen, "%s:%u", host, (unsigned)ntohs(a4->sin_port));
    }
    return out;
}

/* Opens, binds and listens; *bound gets the address with the port the kernel chose. The socket
 * is ours rather than libmicrohttpd's so that IPV6_V6ONLY, the IPv4 fallback and the error
 * messages are exactly as documented. */
static int open_listener(const struct http_addr *want, struct http_addr *bound, char *err,
                         size_t errlen)
{
    struct http_addr a = *want;
    char name[64];
    int fd, one = 1;

    fd = socket(a.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 && a.dual_stack && errno == EAFNOSUPPORT) {
        /* A host without IPv6: every address is then every IPv4 address. */
        struct sockaddr_in *a4 = (struct sockaddr_in *)&a.sa;
        memset(&a.sa, 0, sizeof(a.sa));
        a4->sin_family = AF_INET;
        a4->sin_addr.s_addr = htonl(INADDR_ANY);
        a4->sin_port = htons(a.port);
        a.sa_len = sizeof(*a4);
        a.dual_stack = false;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", http_addr_format(&a, name, sizeof(name)),
                 strerror(errno));
        return -errno;
    }
    /* A restarted exporter must rebind while old connections sit in TIME_WAIT. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (a.sa.ss_family == AF_INET6) {
        int v6only = a.dual_stack ? 0 : 1; /* the sysctl default varies: set it */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    }
    if (bind(fd, (const struct sockaddr *)&a.sa, a.sa_len) != 0 || listen(fd, HTTP_BACKLOG) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on %s: %s", http_addr_format(&a, name, sizeof(name)),
                 strerror(e));
        close(fd);
        return -e;
    }
    *bound = a;
    socklen_t len = sizeof(bound->sa);
    if (getsockname(fd, (struct sockaddr *)&bound->sa, &len) == 0) {
        bound->sa_len = len;
        bound->port =
            ntohs(bound->sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound->sa)->sin6_port
                                                  : ((struct sockaddr_in *)&bound->sa)->sin_port);
    }
    return fd;
}

/* --- Render buffers -------------------------------------------------------------------------- */

/* What one /metrics response needs: the text, its gzip form and a deflate state. A response
 * points into it until the request completes; then it goes back to the pool, keeping its
 * capacity, so steady scraping allocates nothing. */
struct scratch {
    struct scratch *next;
    struct expo_buf text;
    unsigned char *gz;
    size_t gz_cap, gz_len;
    z_stream zs;
    bool zs_ready;
};

struct http_server {
    struct MHD_Daemon *mhd;
    int listen_fd;
    struct http_addr bound;
    struct metrics *reg;
    struct http_hooks hooks;
    bool enable_lifecycle;
    bool metrics_when_ready;
    unsigned expo_flags;
    char *index_html;
    size_t index_len;

    pthread_mutex_t pool_mu;
    struct scratch *pool; /* idle buffers, at most HTTP_POOL_IDLE */
    unsigned pool_idle;

    struct http_clients *clients; /* connections by address (admit_client, count_client) */
    struct metric_series *refused[HTTP_REFUSED_COUNT]; /* or NULL; admit_client writes them */
    struct http_watch *watch;     /* the deadlines of requests and answers (http_watch.h) */
};

static void scratch_free(struct scratch *sc)
{
    if (!sc)
        return;
    expo_buf_fini(&sc->text);
    if (sc->zs_ready)
        deflateEnd(&sc->zs);
    free(sc->gz);
    free(sc);
}

static struct scratch *scratch_get(struct http_server *srv)
{
    struct scratch *sc;

    pthread_mutex_lock(&srv->pool_mu);
    sc = srv->pool;
    if (sc) {
        srv->pool = sc->next;
        srv->pool_idle--;
    }
    pthread_mutex_unlock(&srv->pool_mu);
    if (!sc) {
        sc = calloc(1, sizeof(*sc));
        if (sc)
            expo_buf_init(&sc->text);
    }
    return sc;
}

/* Keeps a few buffers for the next scrapes; more only exist while that many requests run at
 * once (bounded by the connection limit) and are freed here. */
static void scratch_put(struct http_server *srv, struct scratch *sc)
{
    pthread_mutex_lock(&srv->pool_mu);
    if (srv->pool_idle < HTTP_POOL_IDLE) {
        sc->next = srv->pool;
        srv->pool = sc;
        srv->pool_idle++;
        sc = NULL;
    }
    pthread_mutex_unlock(&srv->pool_mu);
    scratch_free(sc);
}

/* gzip (RFC 1952) of sc->text into sc->gz. Returns 0, -ENOMEM or -EIO. */
static int scratch_gzip(struct scratch *sc)
{
    size_t bound;

    if (sc->text.len > UINT_MAX) /* zlib counts in uInt */
        return -E2BIG;
    if (!sc->zs_ready) {
        memset(&sc->zs, 0, sizeof(sc->zs));
        /* windowBits 15 + 16: a gzip header and trailer instead of zlib's. */
        if (deflateInit2(&sc->zs, HTTP_GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK)
            return -ENOMEM;
        sc->zs_ready = true;
    } else if (deflateReset(&sc->zs) != Z_OK) {
        return -EIO;
    }
    bound = deflateBound(&sc->zs, (uLong)sc->text.len);
    if (bound > sc->gz_cap) {
        unsigned char *p = realloc(sc->gz, bound);
        if (!p)
            return -ENOMEM;
        sc->gz = p;
        sc->gz_cap = bound;
    }
    sc->zs.next_in = (Bytef *)sc->text.data;
    sc->zs.avail_in = (uInt)sc->text.len;
    sc->zs.next_out = sc->gz;
    sc->zs.avail_out = (uInt)(bound > UINT_MAX ? UINT_MAX : bound);
    /* The output room is deflateBound, so one Z_FINISH call completes the stream. */
    if (deflate(&sc->zs, Z_FINISH) != Z_STREAM_END)
        return -EIO;
    sc->gz_len = sc->zs.total_out;
    return 0;
}

/* --- Request handling ------------------------------------------------------------------------ */

/* The request-context value of a request that holds no render buffer. */
static char http_no_scratch;

static bool ascii_ieq(const char *a, size_t alen, const char *b)
{
    size_t i;
    for (i = 0; i < alen && b[i]; i++) {
        char ca = a[i], cb = b[i];
        if (ca >= 'A' && ca <= 'Z')
            ca = (char)(ca - 'A' + 'a');
        if (ca != cb)
            return false;
    }
    return i == alen && b[i] == '\0';
}

/* True when an Accept-Encoding value (RFC 9110 §12.5.3) lists gzip or x-gzip with a non-zero
 * q. "*" is not taken as gzip: scrapers that want gzip name it (Prometheus sends "gzip"). */
static bool accepts_gzip(const char *h)
{
    const char *p = h;

    if (!h)
        return false;
    while (*p) {
        const char *tok;
        size_t tlen;
        bool zero_q = false;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        tok = p;
        while (*p && *p != ',' && *p != ';' && *p != ' ' && *p != '\t')
            p++;
        tlen = (size_t)(p - tok);
        /* Parameters: only q matters; q=0, 0., 0.0, 0.00, 0.000 mean "not acceptable". */
        while (*p && *p != ',') {
            if (*p == ';') {
                p++;
                while (*p == ' ' || *p == '\t')
                    p++;
                if ((p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                    const char *v = p + 2;
                    if (*v == '0') {
                        v++;
                        if (*v == '.')
                            for (v++; *v == '0'; v++)
                                ;
                        zero_q = (*v == '\0' || *v == ',' || *v == ';' || *v == ' ' || *v == '\t');
                    }
                }
            } else {
                p++;
            }
        }
        /* "x-gzip;q=0, gzip": a refused spelling does not hide the other. */
        if (tlen && (ascii_ieq(tok, tlen, "gzip") || ascii_ieq(tok, tlen, "x-gzip")) && !zero_q)
            return true;
    }
    return false;
}

/* Queues a response with a body that lives at least as long as the response (static text, or a
 * render buffer released when the request completes). */
static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body,
                             size_t len, enum MHD_ResponseMemoryMode mode, const char *ctype,
                             const char *allow)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    resp = MHD_create_response_from_buffer(len, (void *)body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

#define TEXT_PLAIN "text/plain; charset=utf-8"

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *text,
                                  const char *allow)
{
    return reply(conn, status, text, strlen(text), MHD_RESPMEM_PERSISTENT, TEXT_PLAIN, allow);
}

/* MHD_get_connection_values callback: sets *(bool *)cls when an Accept-Encoding line accepts
 * gzip. A list may come split over several lines (RFC 9110 §5.3): each is read. */
static enum MHD_Result gzip_in_line(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    (void)kind;
    if (key && strcasecmp(key, MHD_HTTP_HEADER_ACCEPT_ENCODING) == 0 && accepts_gzip(value)) {
        *(bool *)cls = true;
        return MHD_NO; /* found: stop */
    }
    return MHD_YES;
}

static enum MHD_Result serve_metrics(struct http_server *srv, struct MHD_Connection *conn,
                                     void **req_cls)
{
    struct MHD_Response *resp;
    struct scratch *sc;
    enum MHD_Result ret;
    const char *body;
    size_t len;
    bool gz;

    sc = scratch_get(srv);
    if (!sc)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
    *req_cls = sc; /* released by request_completed, after the body went out */
    if (expo_render(srv->reg, srv->expo_flags, &sc->text) != 0)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
    body = sc->text.data;
    len = sc->text.len;
    gz = false;
    MHD_get_connection_values(conn, MHD_HEADER_KIND, gzip_in_line, &gz);
    if (gz) {
        if (scratch_gzip(sc) == 0) {
            body = (const char *)sc->gz;
            len = sc->gz_len;
        } else {
            gz = false; /* identity is always acceptable (RFC 9110 §12.5.3) */
        }
    }
    resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, HTTP_METRICS_CONTENT_TYPE);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    if (gz)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "gzip");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result serve_reload(struct http_server *srv, struct MHD_Connection *conn)
{
    char msg[HTTP_RELOAD_MSG] = "";
    char body[HTTP_RELOAD_MSG + 32];
    unsigned status;
    int rc;

    /* As Prometheus: without the flag the endpoint exists but refuses. */
    if (!srv->enable_lifecycle)
        return reply_text(conn, MHD_HTTP_FORBIDDEN, "Lifecycle API is not enabled.\n", NULL);
    if (!srv->hooks.reload)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "Reload is not supported.\n", NULL);
    rc = srv->hooks.reload(srv->hooks.ctx, msg, sizeof(msg));
    msg[sizeof(msg) - 1] = '\0';
    if (rc == 0) {
        status = MHD_HTTP_OK;
        snprintf(body, sizeof(body), "%s\n", msg[0] ? msg : "Reload succeeded.");
    } else if (rc == -ECANCELED) {
        status = MHD_HTTP_SERVICE_UNAVAILABLE;
        snprintf(body, sizeof(body), "sipscope is shutting down.\n");
    } else {
        status = rc == -ETIMEDOUT ? MHD_HTTP_SERVICE_UNAVAILABLE : MHD_HTTP_INTERNAL_SERVER_ERROR;
        snprintf(body, sizeof(body), "Reload failed: %s\n", msg[0] ? msg : strerror(-rc));
    }
    return reply(conn, status, body, strlen(body), MHD_RESPMEM_MUST_COPY, TEXT_PLAIN, NULL);
}

/* A connection's socket context: its http_clients handle in the low 32 bits, its http_watch
 * handle in the high ones. */
_Static_assert(sizeof(uintptr_t) >= 8, "two 32-bit handles in a pointer");

static uint32_t client_of(void *socket_context)
{
    return (uint32_t)(uintptr_t)socket_context;
}

static uint32_t watch_in(void *socket_context)
{
    return (uint32_t)((uintptr_t)socket_context >> 32);
}

/* The connection's http_watch handle, from the handler and the completion callback. */
static uint32_t watch_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? watch_in(ci->socket_context) : 0;
}

enum page { PAGE_INDEX, PAGE_METRICS, PAGE_HEALTHY, PAGE_READY, PAGE_RELOAD, PAGE_COUNT };

static const char *const page_paths[PAGE_COUNT] = {
    [PAGE_INDEX] = "/",        [PAGE_METRICS] = "/metrics", [PAGE_HEALTHY] = "/-/healthy",
    [PAGE_READY] = "/-/ready", [PAGE_RELOAD] = "/-/reload",
};

/* The answer to a whole request: a response queued, or MHD_NO to close the connection. */
static enum MHD_Result answer(struct http_server *srv, struct MHD_Connection *conn, const char *url,
                              const char *method, void **req_cls)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
               strcmp(method, MHD_HTTP_METHOD_HEAD) == 0; /* MHD sends HEAD without the body */
    int page;

    for (page = 0; page < PAGE_COUNT; page++)
        if (strcmp(url, page_paths[page]) == 0)
            break;
    if (page == PAGE_COUNT)
        return reply_text(conn, MHD_HTTP_NOT_FOUND, "404 page not found\n", NULL);
    if (page == PAGE_RELOAD) {
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0 && strcmp(method, MHD_HTTP_METHOD_PUT) != 0)
            return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n",
                              "POST, PUT");
        return serve_reload(srv, conn);
    }
    if (!get)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed\n", "GET, HEAD");
    switch (page) {
    case PAGE_METRICS:
        if (srv->metrics_when_ready && srv->hooks.ready && !srv->hooks.ready(srv->hooks.ctx))
            return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                              "sipscope is not ready: the metrics are not final yet.\n", NULL);
        return serve_metrics(srv, conn, req_cls);
    case PAGE_HEALTHY:
        return reply_text(conn, MHD_HTTP_OK, "sipscope is Healthy.\n", NULL);
    case PAGE_READY:
        if (!srv->hooks.ready || srv->hooks.ready(srv->hooks.ctx))
            return reply_text(conn, MHD_HTTP_OK, "sipscope is Ready.\n", NULL);
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "sipscope is not ready.\n", NULL);
    default:
        return reply(conn, MHD_HTTP_OK, srv->index_html, srv->index_len, MHD_RESPMEM_PERSISTENT,
                     "text/html; charset=utf-8", NULL);
    }
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    struct http_server *srv = cls;
    enum MHD_Result ret;
    uint32_t watch;

    (void)version;
    (void)upload_data;
    /* First call: headers only. Answer once the request is complete, after discarding any
     * body, so that the connection stays usable for the next request; the body is part of the
     * request, due with its headers (http_watch.h). */
    if (*req_cls == NULL) {
        *req_cls = &http_no_scratch;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    watch = watch_of(conn);
    http_watch_busy(srv->watch, watch); /* the request came in time */
    ret = answer(srv, conn, url, method, req_cls);
    http_watch_sending(srv->watch, watch); /* the client must now take it in time */
    return ret;
}

static void request_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct http_server *srv = cls;
    (void)toe;
    if (*req_cls && *req_cls != &http_no_scratch)
        scratch_put(srv, *req_cls);
    *req_cls = NULL;
    http_watch_idle(srv->watch, watch_of(conn)); /* the next request is due */
}

/* libmicrohttpd decodes %HH in the path, and in query arguments, before the handler sees them,
 * into a NUL-terminated string: "/metrics%00x" decoded to "/metrics", NUL, "x", which the handler
 * read as "/metrics" and served. %00 is the only way to a NUL byte, so a string holding it is
 * left as it came: a path then names no page (404), and no page reads arguments. Every other
 * escape is decoded as before: "/metric%73" is "/metrics" (RFC 3986 §6.2.2.2). */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    if (strstr(s, "%00"))
        return strlen(s);
    return MHD_http_unescape(s);
}

static const enum http_refusal refusal_of[] = {
    [HTTP_CLIENTS_FULL] = HTTP_REFUSED_TOTAL,
    [HTTP_CLIENTS_PER_ADDRESS] = HTTP_REFUSED_PER_ADDRESS,
    [HTTP_CLIENTS_PER_NETWORK] = HTTP_REFUSED_PER_NETWORK,
    [HTTP_CLIENTS_RESERVE] = HTTP_REFUSED_RESERVE,
};

/* Accept policy: a connection past the limit, or from an address or an IPv6 /64 already holding
 * its share of the connections, is refused (closed at once) and counted by reason. Runs on the
 * accepting thread, like count_client's start notification that follows, so the count it reads
 * holds every connection admitted before. */
static enum MHD_Result admit_client(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_server *srv = cls;
    enum http_clients_verdict v = http_clients_admit(srv->clients, addr, addrlen);

    if (v == HTTP_CLIENTS_ADMITTED)
        return MHD_YES;
    if (srv->refused[refusal_of[v]])
        metric_counter_add(srv->refused[refusal_of[v]], 1);
    return MHD_NO;
}

/* Connection notifications: a connection is counted for its address and network, and watched
 * for slow request headers, from its start to its close (which libmicrohttpd notifies before it
 * closes the socket); *socket_context keeps both handles meanwhile. */
static void count_client(void *cls, struct MHD_Connection *conn, void **socket_context,
                         enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *srv = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        const struct sockaddr *sa = ci ? ci->client_addr : NULL;
        socklen_t len = !sa                         ? 0
                        : sa->sa_family == AF_INET6 ? (socklen_t)sizeof(struct sockaddr_in6)
                                                    : (socklen_t)sizeof(struct sockaddr_in);
        const union MHD_ConnectionInfo *fi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        uint32_t client = http_clients_add(srv->clients, sa, len);
        uint32_t watch = fi ? http_watch_open(srv->watch, fi->connect_fd) : 0;
        *socket_context = (void *)((uintptr_t)watch << 32 | client);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        http_watch_close(srv->watch, watch_in(*socket_context));
        http_clients_remove(srv->clients, client_of(*socket_context));
        *socket_context = NULL;
    }
}

/* libmicrohttpd's own messages are about single connections (a client that went away...):
 * debug level, so that a misbehaving client cannot flood the log. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[256];
    size_t n;

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    log_debug("http", "%s", buf);
}

static const char index_fmt[] =
    "<!DOCTYPE html>\n"
    "<html><head><meta charset=\"utf-8\"><title>sipscope</title></head>\n"
    "<body>\n"
    "<h1>sipscope%s%s</h1>\n"
    "<p>Passive SIP monitoring: transactions, calls and registrations as Prometheus "
    "metrics.</p>\n"
    "<ul>\n"
    "<li><a href=\"metrics\">/metrics</a>: the metrics, in Prometheus text format</li>\n"
    "<li><a href=\"-/healthy\">/-/healthy</a> and <a href=\"-/ready\">/-/ready</a>: health "
    "and readiness</li>\n"
    "<li>/-/reload (POST, with --web.enable-lifecycle): reload the rules</li>\n"
    "</ul>\n"
    "<p>Documentation: <code>sipscope --help</code>, and README.md with the metric "
    "catalogue, or <a href=\"https://prometheus.io/docs/instrumenting/exposition_formats/\">"
    "the exposition format</a>.</p>\n"
    "</body></html>\n";

static int build_index(struct http_server *srv, const char *version)
{
    char ver[64] = "";
    int n;

    /* The version is our own build string; keep only characters that need no escaping. */
    if (version) {
        size_t j = 0;
        for (size_t i = 0; version[i] && j + 1 < sizeof(ver); i++) {
            char c = version[i];
            if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                c == '.' || c == '-' || c == '+' || c == '_')
                ver[j++] = c;
        }
        ver[j] = '\0';
    }
    n = snprintf(NULL, 0, index_fmt, ver[0] ? " " : "", ver);
    srv->index_html = malloc((size_t)n + 1);
    if (!srv->index_html)
        return -ENOMEM;
    snprintf(srv->index_html, (size_t)n + 1, index_fmt, ver[0] ? " " : "", ver);
    srv->index_len = (size_t)n;
    return 0;
}

static void server_free(struct http_server *srv)
{
    struct scratch *sc, *next;

    for (sc = srv->pool; sc; sc = next) {
        next = sc->next;
        scratch_free(sc);
    }
    pthread_mutex_destroy(&srv->pool_mu);
    free(srv->index_html);
    http_clients_free(srv->clients);
    http_watch_free(srv->watch);
    free(srv);
}

/* Declares a counter family labelled by reason, and its series for each of reasons[n] at 0
 * (docs/METRICS.md, "Exported from the start") into out[n]; METRIC_TIMING: left out of --print,
 * whose output is the capture's alone. Returns 0 or -errno (out all NULL then). */
static int declare_reasons(struct metrics *reg, const char *name, const char *help,
                           const char *const *reasons, int n, struct metric_series **out)
{
    static const char *const label[] = {"reason"};
    struct metric_family *fam;

    for (int i = 0; i < n; i++)
        out[i] = NULL;
    fam = metrics_family(reg, name, help, METRIC_COUNTER, label, 1, NULL, 0, (size_t)n,
                         METRIC_TIMING);
    if (!fam)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t sym = metrics_intern(reg, reasons[i], strlen(reasons[i]));
        out[i] = metrics_series(fam, &sym);
    }
    return 0;
}

int http_cuts_declare(struct metrics *reg, struct metric_series *cuts[HTTP_CUT_COUNT])
{
    static const char *const reasons[HTTP_CUT_COUNT] = {
        [HTTP_CUT_SLOW_REQUEST] = "slow_request",
        [HTTP_CUT_SLOW_ANSWER] = "slow_answer",
    };

    return declare_reasons(reg, HTTP_CUTS_FAMILY,
                           "HTTP connections the server closed because their request (headers "
                           "and body) did not all come, or their answer was not all taken, within "
                           "the timeout.",
                           reasons, HTTP_CUT_COUNT, cuts);
}

int http_refused_declare(struct metrics *reg, struct metric_series *refused[HTTP_REFUSED_COUNT])
{
    static const char *const reasons[HTTP_REFUSED_COUNT] = {
        [HTTP_REFUSED_TOTAL] = "total",
        [HTTP_REFUSED_PER_ADDRESS] = "per_address",
        [HTTP_REFUSED_PER_NETWORK] = "per_network",
        [HTTP_REFUSED_RESERVE] = "reserve",
    };

    return declare_reasons(reg, HTTP_REFUSED_FAMILY,
                           "HTTP connections the server refused as they came: every connection "
                           "taken, the address's or its IPv6 /64's share taken, or the last "
                           "quarter, kept for addresses holding none.",
                           reasons, HTTP_REFUSED_COUNT, refused);
}

struct http_server *http_start(const struct http_config *cfg, struct metrics *reg,
                               const struct http_hooks *hooks, char *err, size_t errlen)
{
    struct http_server *srv;
    struct http_addr want;
    sigset_t all, old;
    char name[64];
    int fd;
    unsigned max_conns = cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONNECTIONS;
    unsigned timeout_s = cfg->timeout_s ? cfg->timeout_s : HTTP_DEFAULT_TIMEOUT_S;

    if (http_addr_parse(cfg->listen_address ? cfg->listen_address : HTTP_DEFAULT_LISTEN, &want, err,
                        errlen) != 0)
        return NULL;
    srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&srv->pool_mu, NULL);
    srv->listen_fd = -1;
    srv->reg = reg;
    if (hooks)
        srv->hooks = *hooks;
    srv->enable_lifecycle = cfg->enable_lifecycle;
    srv->metrics_when_ready = cfg->metrics_when_ready;
    srv->expo_flags = cfg->expo_flags;
    srv->clients = http_clients_new(
        max_conns, cfg->max_per_address ? cfg->max_per_address : HTTP_DEFAULT_MAX_PER_ADDRESS,
        cfg->max_per_network ? cfg->max_per_network : HTTP_DEFAULT_MAX_PER_NETWORK);
    memcpy(srv->refused, cfg->refused, sizeof(srv->refused));
    srv->watch = http_watch_new(max_conns, timeout_s * 1000, cfg->cuts[HTTP_CUT_SLOW_REQUEST],
                                cfg->cuts[HTTP_CUT_SLOW_ANSWER]);
    if (!srv->clients || !srv->watch || build_index(srv, cfg->version) != 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    fd = open_listener(&want, &srv->bound, err, errlen);
    if (fd < 0)
        goto fail;
    srv->listen_fd = fd;

    /* Threads inherit the signal mask of their creator: start libmicrohttpd with every signal
     * blocked, so that no signal is ever delivered to one of its threads.
     * The connection limit is admit_client's, so that a refusal there is counted: libmicrohttpd
     * checks its own before it asks the policy and closes what it refuses unseen (a debug log
     * line at most). Both count the same connections (libmicrohttpd notifies a close as it
     * uncounts the connection, in its cleanup on the accepting thread), so its limit, set
     * HTTP_LIMIT_BACKSTOP above, is reached only if a connection ever went uncounted. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    srv->mhd = MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
            MHD_USE_ITC | MHD_USE_ERROR_LOG,
        0, admit_client, srv, handle, srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
        max_conns + HTTP_LIMIT_BACKSTOP, MHD_OPTION_NOTIFY_CONNECTION, count_client, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_NOTIFY_COMPLETED, request_completed,
        srv, MHD_OPTION_UNESCAPE_CALLBACK, unescape, srv, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!srv->mhd) {
        snprintf(err, errlen, "cannot start the HTTP server on %s",
                 http_addr_format(&srv->bound, name, sizeof(name)));
        goto fail;
    }
    log_info("http", "listening on %s", http_addr_format(&srv->bound, name, sizeof(name)));
    return srv;
fail:
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    server_free(srv);
    return NULL;
}

uint16_t http_port(const struct http_server *srv)
{
    return srv->bound.port;
}

void http_stop(struct http_server *srv)
{
    MHD_socket fd;

    if (!srv)
        return;
    /* Quiescing hands the listen socket back, so that it is closed exactly once, by us. */
    fd = MHD_quiesce_daemon(srv->mhd);
    MHD_stop_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    server_free(srv);
}

/* --- Reload handoff -------------------------------------------------------------------------- */

/* Requests are numbered; a waiter is served when a reload taken at or after its number is
 * done. */
struct http_reload {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC: a wall clock step must not stretch a wait */
    int efd;
    uint64_t requested; /* number of the latest request */
    uint64_t taken;     /* latest request the running (or last) reload serves */
    uint64_t done;      /* latest request served */
    int rc;
    char msg[HTTP_RELOAD_MSG];
    bool cancelled;
};

struct http_reload *http_reload_new(void)
{
    struct http_reload *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    if (!r)
        return NULL;
    r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (r->efd < 0) {
        int e = errno;
        free(r);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

void http_reload_free(struct http_reload *r)
{
    if (!r)
        return;
    close(r->efd);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int http_reload_fd(const struct http_reload *r)
{
    return r->efd;
}

static void copy_msg(char *dst, size_t dstlen, const char *src)
{
    if (dstlen)
        snprintf(dst, dstlen, "%s", src);
}

int http_reload_request(struct http_reload *r, unsigned timeout_ms, char *msg, size_t msglen)
{
    struct timespec deadline;
    uint64_t one = 1, me;
    int rc = 0;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&r->mu);
    if (r->cancelled) {
        pthread_mutex_unlock(&r->mu);
        copy_msg(msg, msglen, "shutting down");
        return -ECANCELED;
    }
    me = ++r->requested;
    /* An eventfd write only fails when the counter would overflow: it is readable then. */
    if (write(r->efd, &one, sizeof(one)) < 0) {
        /* nothing to do: the engine sees the fd readable */
    }
    while (r->done < me && !r->cancelled && rc == 0)
        rc = pthread_cond_timedwait(&r->cv, &r->mu, &deadline);
    if (r->done >= me) {
        rc = r->rc;
        copy_msg(msg, msglen, r->msg);
    } else if (r->cancelled) {
        rc = -ECANCELED;
        copy_msg(msg, msglen, "shutting down");
    } else {
        rc = -ETIMEDOUT;
        snprintf(msg, msglen, "the reload did not finish within %u ms; it goes on", timeout_ms);
    }
    pthread_mutex_unlock(&r->mu);
    return rc;
}

bool http_reload_take(struct http_reload *r)
{
    uint64_t n;
    bool pending;

    while (read(r->efd, &n, sizeof(n)) == (ssize_t)sizeof(n))
        ;
    pthread_mutex_lock(&r->mu);
    pending = r->requested > r->taken;
    if (pending)
        r->taken = r->requested;
    pthread_mutex_unlock(&r->mu);
    return pending;
}

void http_reload_done(struct http_reload *r, int rc, const char *msg)
{
    pthread_mutex_lock(&r->mu);
    r->done = r->taken;
    r->rc = rc;
    copy_msg(r->msg, sizeof(r->msg), msg ? msg : "");
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void http_reload_cancel(struct http_reload *r)
{
    pthread_mutex_lock(&r->mu);
    r->cancelled = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}
