/* http_watch: the request and answer deadlines (http_watch.h). A slot per watched connection,
 * one lock, and a thread that sleeps until the earliest deadline of the connections waiting. */
#include "http_watch.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"

struct slot {
    int fd;
    bool used;
    bool waiting;    /* for a request, or for the client to take an answer: the deadline runs */
    bool answer;     /* while waiting: for the client to take an answer */
    bool cut;        /* shut down already */
    uint64_t due_ms; /* while waiting */
};

struct http_watch {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* on CLOCK_MONOTONIC; signalled when a deadline may be earlier */
    pthread_t thread;
    bool stop;
    unsigned deadline_ms;
    struct metric_series *slow_request, *slow_answer; /* cuts, counted by the thread; or NULL */
    unsigned n;
    struct slot slots[];
};

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Shuts down the connections past their deadline; returns the earliest deadline still to come
 * (UINT64_MAX: none). Called with the lock held. */
static uint64_t sweep(struct http_watch *w, uint64_t now)
{
    uint64_t next = UINT64_MAX;

    for (unsigned i = 0; i < w->n; i++) {
        struct slot *s = &w->slots[i];
        if (!s->used || !s->waiting || s->cut)
            continue;
        if (s->due_ms > now) {
            next = s->due_ms < next ? s->due_ms : next;
            continue;
        }
        /* Counted first: a client that sees its connection end may scrape the count at once. */
        struct metric_series *count = s->answer ? w->slow_answer : w->slow_request;
        if (count)
            metric_counter_add(count, 1);
        shutdown(s->fd, SHUT_RDWR);
        s->cut = true;
        log_debug("http", "%s took longer than %u ms: connection closed",
                  s->answer ? "a client taking its answer" : "a request", w->deadline_ms);
    }
    return next;
}

static void *watch_main(void *arg)
{
    struct http_watch *w = arg;

    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        uint64_t next = sweep(w, now_ms());
        if (next == UINT64_MAX) {
            pthread_cond_wait(&w->cv, &w->mu);
        } else {
            struct timespec until = {.tv_sec = (time_t)(next / 1000),
                                     .tv_nsec = (long)(next % 1000) * 1000000L};
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

struct http_watch *http_watch_new(unsigned max_conns, unsigned deadline_ms,
                                  struct metric_series *slow_request,
                                  struct metric_series *slow_answer)
{
    struct http_watch *w = calloc(1, sizeof(*w) + (size_t)max_conns * sizeof(struct slot));
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    if (!w)
        return NULL;
    w->n = max_conns;
    w->deadline_ms = deadline_ms;
    w->slow_request = slow_request;
    w->slow_answer = slow_answer;
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
    /* Signals are the engine thread's (http.h). */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&w->thread, NULL, watch_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        errno = rc;
        return NULL;
    }
    pthread_setname_np(w->thread, "http-watch"); /* for top -H; a failure changes nothing */
    return w;
}

void http_watch_free(struct http_watch *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

/* Starts the slot's deadline, for a request or for an answer; the thread looks again (it may
 * be the earliest). Lock held. */
static void start_deadline(struct http_watch *w, struct slot *s, bool answer)
{
    s->waiting = true;
    s->answer = answer;
    s->due_ms = now_ms() + w->deadline_ms;
    pthread_cond_signal(&w->cv);
}

uint32_t http_watch_open(struct http_watch *w, int fd)
{
    uint32_t handle = 0;

    pthread_mutex_lock(&w->mu);
    for (unsigned i = 0; i < w->n; i++) {
        struct slot *s = &w->slots[i];
        if (s->used)
            continue;
        *s = (struct slot){.fd = fd, .used = true};
        start_deadline(w, s, false);
        handle = i + 1;
        break;
    }
    pthread_mutex_unlock(&w->mu);
    return handle;
}

void http_watch_busy(struct http_watch *w, uint32_t handle)
{
    if (handle == 0 || handle > w->n)
        return;
    pthread_mutex_lock(&w->mu);
    w->slots[handle - 1].waiting = false;
    pthread_mutex_unlock(&w->mu);
}

void http_watch_sending(struct http_watch *w, uint32_t handle)
{
    if (handle == 0 || handle > w->n)
        return;
    pthread_mutex_lock(&w->mu);
    start_deadline(w, &w->slots[handle - 1], true);
    pthread_mutex_unlock(&w->mu);
}

void http_watch_idle(struct http_watch *w, uint32_t handle)
{
    if (handle == 0 || handle > w->n)
        return;
    pthread_mutex_lock(&w->mu);
    start_deadline(w, &w->slots[handle - 1], false);
    pthread_mutex_unlock(&w->mu);
}

void http_watch_close(struct http_watch *w, uint32_t handle)
{
    if (handle == 0 || handle > w->n)
        return;
    pthread_mutex_lock(&w->mu);
    w->slots[handle - 1].used = false;
    pthread_mutex_unlock(&w->mu);
}
