/* http_watch: a deadline for each request, and for each answer, on the web endpoints.
 *
 * libmicrohttpd's connection timeout counts idle time, which a client that sends a header line
 * every few seconds, a request body a byte at a time, or takes its answer a little at a time,
 * never reaches: such a client holds a connection (an answer's, with its render buffer), and
 * with a few addresses all of them (http.h's limits), for as long as it likes. This watches
 * each connection from its start, and from the end of each request (keep-alive), until the
 * next request has come whole (headers and body), and from the moment its answer is ready
 * until the client has taken it; a connection past the deadline in either has its socket shut
 * down (shutdown(2), both ways), which libmicrohttpd takes as the client's end and cleans up
 * as usual. While the answer is being made (a render, a reload that waits on the engine) there
 * is no deadline here.
 *
 * Threads: calls come from libmicrohttpd's threads (its notifications and the handler); one
 * thread of the watch's own shuts connections down, sleeping while no connection waits. The
 * socket is only ever shut down between http_watch_open and http_watch_close, under the watch's
 * lock, and libmicrohttpd (0.9.75) notifies a close before it closes the socket: the descriptor
 * cannot be another's by then. */
#ifndef SIPSCOPE_HTTP_WATCH_H
#define SIPSCOPE_HTTP_WATCH_H

#include <stdint.h>

#include "metrics.h"

struct http_watch;

/* Watches up to max_conns connections, each request due within deadline_ms and each answer
 * taken within deadline_ms. Each connection cut adds 1 to slow_request (its request was late)
 * or slow_answer (its answer was not taken in time), counters that may be NULL (not counted);
 * the watch's thread is their one writer (metrics.h), so nothing else may write them. Starts
 * the watch's thread with every signal blocked. NULL when out of memory or threads. */
struct http_watch *http_watch_new(unsigned max_conns, unsigned deadline_ms,
                                  struct metric_series *slow_request,
                                  struct metric_series *slow_answer);

/* Stops the thread and frees the watch. Every connection must be closed (http_watch_close)
 * or no longer served. */
void http_watch_free(struct http_watch *w);

/* A connection on socket fd started: its first request is due. Returns a handle for the calls
 * below, 0 when max_conns are watched already (the connection is not). */
uint32_t http_watch_open(struct http_watch *w, int fd);

/* The request came whole, headers and body: no deadline while its answer is made. */
void http_watch_busy(struct http_watch *w, uint32_t handle);

/* The answer is ready (queued): the client must take it within the deadline. */
void http_watch_sending(struct http_watch *w, uint32_t handle);

/* The answer went out: the next request is due (keep-alive). */
void http_watch_idle(struct http_watch *w, uint32_t handle);

/* The connection closed; it must come before its socket is closed. Handle 0: nothing. */
void http_watch_close(struct http_watch *w, uint32_t handle);

#endif
