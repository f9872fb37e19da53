/* service: runs an engine as a long-lived process until SIGTERM or SIGINT. It serves the
 * engine's registry over HTTP, feeds live capture frames to the engine, ticks the engine clock
 * when no packet comes, publishes the kernel's capture counters, and performs rule reloads asked
 * for by SIGHUP or POST /-/reload on the engine thread. Offline (no capture) it only serves and
 * reloads. It does not parse flags or open the capture. */
#ifndef SIPSCOPE_SERVICE_H
#define SIPSCOPE_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

struct engine;
struct capture_bpf;

#define SERVICE_TICK_MS 1000 /* idle clock advance and kernel counter refresh */

struct service_config {
    const char *listen_address; /* NULL: no HTTP server */
    bool enable_lifecycle;      /* POST /-/reload */
    bool metrics_when_ready;    /* /metrics answers 503 until service_set_ready (offline) */
    struct capture_bpf *capture; /* NULL offline; borrowed */
};

struct service;

/* Blocks SIGTERM, SIGINT and SIGHUP (they are read from a signalfd from now on, so call this
 * before starting other threads) and starts the HTTP server, not ready yet. Returns NULL with a
 * reason in err[errlen] (address taken, bad address...). */
struct service *service_new(struct engine *e, const struct service_config *cfg, char *err,
                            size_t errlen);

/* Marks the exporter ready (/-/ready answers 200): the capture is attached and rules are loaded,
 * or offline, the file is processed. */
void service_set_ready(struct service *s);

/* For a long job on the calling thread before service_run (the offline read): on, SIGTERM and
 * SIGINT are taken by a handler that records them for service_stop_pending, installed without
 * SA_RESTART so that a read waiting on a pipe returns (EINTR); one that came since service_new
 * is taken at once. After one, SIGALRM comes every second until off, so that a call that blocks
 * after the job last looked at the flag returns too (the job must not use alarm() itself). Off,
 * they are blocked again for service_run's signalfd and the previous handlers are back. SIGHUP
 * stays blocked throughout: a reload waits for service_run. s may be NULL, for a job that does
 * not serve: off then leaves the signals unblocked. Returns 0 or -errno. */
int service_interruptible(struct service *s, bool on);

/* SIGTERM or SIGINT when one came while interruptible, else 0. */
int service_stop_pending(const struct service *s);

/* Runs until SIGTERM or SIGINT. Returns 0, or -errno when the capture or the signal descriptor
 * fails. */
int service_run(struct service *s);

/* Drops every capability of the process (effective, permitted, inheritable, ambient): called
 * once the capture is attached and the HTTP port bound, after which none is needed. Returns 0 or
 * -errno; logs what it dropped. */
int service_drop_privileges(void);

/* Stops the HTTP server (waiting reloads are cancelled first) and frees the service. The engine
 * and the capture are the caller's. NULL is accepted. */
void service_free(struct service *s);

#endif
