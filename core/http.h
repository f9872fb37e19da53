/* http: the exporter's web endpoints on libmicrohttpd (the only file that includes it):
 * /metrics, /-/healthy, /-/ready, /-/reload and an index page. It renders the registry on
 * request; it owns no metric (but counts the connections it cuts or refuses in counters the
 * caller declares, http_cuts_declare and http_refused_declare), rule or engine state and never
 * calls into the engine: readiness and reloads reach the engine through the hooks below.
 *
 * Threads: one thread per open connection (libmicrohttpd's thread-per-connection mode), at most
 * cfg->max_connections of them, cfg->max_per_address from one address and cfg->max_per_network
 * from one IPv6 /64 (http_clients.h), and one more that ends connections whose request comes,
 * or whose answer is taken, too slowly (http_watch.h). Rendering (milliseconds for a large
 * registry) and a reload (the hook blocks until the engine thread has reloaded) then hold up only
 * their own connection, never a scrape or a health check on another one. Every thread the server
 * starts has all signals blocked, so SIGTERM, SIGINT, SIGHUP and the engine's timer signal reach
 * the engine thread only. */
#ifndef SIPSCOPE_HTTP_H
#define SIPSCOPE_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "metrics.h"

/* The default --web.listen-address: every address, IPv4 and IPv6, port 9632. 9632 is marked
 * "FREE" in the copy of the Prometheus wiki's "Default port allocations" list that was
 * consulted (a snapshot from about 2021; the live list was not reachable); 9469, a first idea,
 * is script_exporter's there. Recheck the live list before registering it. */
#define HTTP_DEFAULT_PORT 9632
#define HTTP_DEFAULT_LISTEN ":9632"

#define HTTP_DEFAULT_MAX_CONNECTIONS 64
/* Connections from one address: a client that holds connections open (each up to the request
 * or answer deadline, HTTP_DEFAULT_TIMEOUT_S, and opens them again) must not take all of them and
 * lock Prometheus and the health probes out. A quarter of them: libmicrohttpd reports a closed
 * connection only once its thread is cleaned up, so that clients opening a connection per request
 * from one address (4 concurrent scrapers in test_http) were refused now and then under a limit
 * of 8. */
#define HTTP_DEFAULT_MAX_PER_ADDRESS 16
/* Connections from one IPv6 /64: an IPv6 host has the whole /64 to take addresses from. Half of
 * them: a /64 is also a LAN segment, whose other hosts share it (http_clients.h). */
#define HTTP_DEFAULT_MAX_PER_NETWORK 32
/* An idle connection is closed after this, and so is one whose request (headers and body) has
 * not all come this long after its start or its previous answer, or whose answer the client
 * has not all taken this long after it was ready (http_watch.h): a header line, a byte of body
 * or a read every few seconds keeps a connection from being idle, not from being closed. */
#define HTTP_DEFAULT_TIMEOUT_S 30

/* The connections the server cut (http_watch.h), by reason: a request (headers and body) not
 * all come within the timeout, or an answer not all taken within it. Wall-clock dependent, so
 * METRIC_TIMING (left out of --print). */
#define HTTP_CUTS_FAMILY "sipscope_http_connections_cut_total"
enum http_cut {
    HTTP_CUT_SLOW_REQUEST, /* reason="slow_request" */
    HTTP_CUT_SLOW_ANSWER,  /* reason="slow_answer" */
    HTTP_CUT_COUNT
};

/* The connections the server refused as they came, by the limit that refused them
 * (http_clients.h): every one of cfg->max_connections taken ("total"), the address's share
 * ("per_address"), its IPv6 /64's ("per_network"), or the last quarter, kept for addresses
 * that hold none ("reserve"). A refused connection is closed before it is read. Depends on the
 * clients, so METRIC_TIMING (left out of --print) like the cuts. */
#define HTTP_REFUSED_FAMILY "sipscope_http_connections_refused_total"
enum http_refusal {
    HTTP_REFUSED_TOTAL,       /* reason="total" */
    HTTP_REFUSED_PER_ADDRESS, /* reason="per_address" */
    HTTP_REFUSED_PER_NETWORK, /* reason="per_network" */
    HTTP_REFUSED_RESERVE,     /* reason="reserve" */
    HTTP_REFUSED_COUNT
};

/* Content-Type of /metrics: text exposition format 0.0.4. */
#define HTTP_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A parsed listen address. */
struct http_addr {
    struct sockaddr_storage sa; /* family, address and port, ready for bind() */
    socklen_t sa_len;
    bool dual_stack; /* [::] or an empty host: IPv6 socket that also accepts IPv4 */
    uint16_t port;   /* host byte order; 0 asks the kernel for a free port */
};

/* Parses a listen address:
 *   ":PORT"          every address, IPv4 and IPv6 (an IPv6 socket with IPV6_V6ONLY off;
 *                    IPv4 only when the host has no IPv6)
 *   "A.B.C.D:PORT"   one IPv4 address ("0.0.0.0:PORT" for every IPv4 address)
 *   "[IPV6]:PORT"    one IPv6 address; "[::]:PORT" is every address, IPv4 included
 * PORT is 0 to 65535 in decimal (0: the kernel picks one; see http_port). Host names are not
 * resolved: only literal addresses. Returns 0, or -EINVAL with a one-line reason in
 * err[errlen] that quotes the input (*out is then zeroed). */
int http_addr_parse(const char *s, struct http_addr *out, char *err, size_t errlen);

/* Formats an address as "A.B.C.D:PORT" or "[IPV6]:PORT" with the port of the address, into
 * out[outlen] (64 bytes are always enough). Returns out. */
const char *http_addr_format(const struct http_addr *a, char *out, size_t outlen);

struct http_config {
    const char *listen_address; /* NULL for HTTP_DEFAULT_LISTEN */
    bool enable_lifecycle;      /* serve /-/reload (otherwise it answers 403) */
    unsigned expo_flags;        /* expo_render flags for /metrics (0: everything) */
    const char *version;        /* shown on the index page; NULL for none */
    unsigned max_connections;   /* 0 for HTTP_DEFAULT_MAX_CONNECTIONS */
    unsigned max_per_address;   /* 0 for HTTP_DEFAULT_MAX_PER_ADDRESS */
    unsigned max_per_network;   /* from one IPv6 /64; 0 for HTTP_DEFAULT_MAX_PER_NETWORK */
    unsigned timeout_s;         /* 0 for HTTP_DEFAULT_TIMEOUT_S */
    /* /metrics answers 503 ("sipscope is not ready: the metrics are not final yet.") while
     * hooks->ready says false, as /-/ready does: for metrics that are final only once ready
     * (an offline read that serves). Off, /metrics is served whatever /-/ready says (live). */
    bool metrics_when_ready;
    /* Counters of the connections cut, by enum http_cut (http_cuts_declare); NULL: not
     * counted. The server's watch thread is their one writer. */
    struct metric_series *cuts[HTTP_CUT_COUNT];
    /* Counters of the connections refused, by enum http_refusal (http_refused_declare); NULL:
     * not counted. The server's accepting thread is their one writer. */
    struct metric_series *refused[HTTP_REFUSED_COUNT];
};

/* Declares HTTP_CUTS_FAMILY in reg with a series per reason, at 0 from the start (the reasons
 * are a closed set), and sets cuts[] to them for http_config.cuts. The registry's writer
 * thread, before http_start. Returns 0, or -errno from metrics_family (cuts[] then NULL). */
int http_cuts_declare(struct metrics *reg, struct metric_series *cuts[HTTP_CUT_COUNT]);

/* The same for HTTP_REFUSED_FAMILY and http_config.refused. */
int http_refused_declare(struct metrics *reg, struct metric_series *refused[HTTP_REFUSED_COUNT]);

/* Callbacks into the program. They run on connection threads, several at once: they must be
 * thread-safe and must not touch engine or Lua state themselves.
 *   ready:  true when the exporter is ready to be scraped (/-/ready answers 200, else 503).
 *           NULL reads as always ready. Keep it cheap: read a flag.
 *   reload: asks the engine thread to reload and waits for the result. Returns 0, or -errno
 *           with a one-line reason in msg[msglen] (NUL-terminated). It must not reload on the
 *           calling thread: hand the request over with http_reload_request (below), which
 *           blocks at most a bounded time. NULL answers every reload with 500.
 * ctx is passed to both. */
struct http_hooks {
    void *ctx;
    bool (*ready)(void *ctx);
    int (*reload)(void *ctx, char *msg, size_t msglen);
};

struct http_server;

/* Binds the listen address and starts serving reg. reg and hooks (copied) must outlive the
 * server; hooks may be NULL. Logs "listening on ADDR:PORT" at info level (module "http"), with
 * the port the kernel chose when the address asked for 0. Returns NULL with a one-line reason
 * in err[errlen] when the address is invalid, cannot be bound or the server cannot start. */
struct http_server *http_start(const struct http_config *cfg, struct metrics *reg,
                               const struct http_hooks *hooks, char *err, size_t errlen);

/* The bound TCP port (the kernel's choice for port 0). */
uint16_t http_port(const struct http_server *srv);

/* Stops accepting, closes every connection, joins the server's threads and frees it. A
 * connection thread inside hooks->reload is waited for: make waiting reloads return first
 * (http_reload_cancel). NULL is accepted. */
void http_stop(struct http_server *srv);

/* --- Reload handoff --------------------------------------------------------------------------
 * A mailbox between HTTP threads (which ask for a reload and wait) and the engine thread (which
 * reloads). The engine thread polls http_reload_fd, then takes and completes the request:
 *
 *     if (http_reload_take(r)) { rc = reload_rules(...); http_reload_done(r, rc, msg); }
 *
 * Requests that arrive while a reload runs are served by the next one, so each waiter gets the
 * result of a reload that started after it asked; requests waiting together share one reload. */
struct http_reload;

/* Returns a mailbox, or NULL with errno set. */
struct http_reload *http_reload_new(void);

/* Frees the mailbox; no thread may be inside it. NULL is accepted. */
void http_reload_free(struct http_reload *r);

/* A file descriptor (an eventfd) that polls readable while a request waits. Owned by r. */
int http_reload_fd(const struct http_reload *r);

/* Any thread: asks for a reload and waits for its result, at most timeout_ms milliseconds.
 * Returns the engine's result (0 or -errno, its message copied to msg[msglen]), -ETIMEDOUT
 * when the engine did not finish in time (the reload still happens), or -ECANCELED after
 * http_reload_cancel. */
int http_reload_request(struct http_reload *r, unsigned timeout_ms, char *msg, size_t msglen);

/* Engine thread: drains the fd and returns true when a request waits; the requests made up
 * to now are then served by the next http_reload_done. */
bool http_reload_take(struct http_reload *r);

/* Engine thread: reports the result of the reload begun after http_reload_take returned true
 * (msg may be NULL) and wakes its waiters. */
void http_reload_done(struct http_reload *r, int rc, const char *msg);

/* Shutdown: wakes every waiter with -ECANCELED, and refuses later requests the same way. */
void http_reload_cancel(struct http_reload *r);

#endif
