/* service: the serve loop (signals, reloads, capture polling, idle ticks) and privilege drop. */
#include "service.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "capture_bpf.h"
#include "engine.h"
#include "health.h"
#include "http.h"
#include "log.h"

#define RELOAD_TIMEOUT_MS 30000
#define NS_PER_SECOND 1000000000LL
#define CLOCK_STEP_MIN_NS 1000000LL /* a step smaller than a millisecond is sampling noise */
#define STEP_LOG_MS 60000           /* a step is logged at most once a minute */

struct service {
    struct engine *engine;
    struct capture_bpf *capture;
    struct http_server *http;
    struct http_reload *mailbox;
    atomic_bool ready;
    int sfd;
    int iface_state[CAPTURE_BPF_MAX_IFACES]; /* enum capture_iface_state; -1 before the first */
    bool follow_refused[CAPTURE_BPF_MAX_IFACES]; /* logged why a new one of the name is not
                                                  * captured; cleared once one is */
    int64_t clock_step;                      /* the wall clock's step the events file follows */
    uint64_t step_logged_ms;                 /* when a step was last logged (monotonic) */
};

static bool is_ready(void *ctx)
{
    return atomic_load(&((struct service *)ctx)->ready);
}

/* HTTP thread: hands the reload to the engine thread and waits (http.h). */
static int request_reload(void *ctx, char *msg, size_t msglen)
{
    return http_reload_request(((struct service *)ctx)->mailbox, RELOAD_TIMEOUT_MS, msg, msglen);
}

static void deliver_frame(void *ctx, const struct capture_frame *frame)
{
    engine_frame(ctx, frame);
}

static void flush_frames(void *ctx)
{
    engine_flush(ctx);
}

struct service *service_new(struct engine *e, const struct service_config *cfg, char *err,
                            size_t errlen)
{
    struct service *s = calloc(1, sizeof(*s));
    sigset_t set;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->engine = e;
    s->capture = cfg->capture;
    s->sfd = -1;
    for (int i = 0; i < CAPTURE_BPF_MAX_IFACES; i++)
        s->iface_state[i] = -1;
    /* Live, as offline, messages are tracked a few frames after they are parsed: their bytes
     * stay in the ring buffer meanwhile (engine.h, capture_bpf_hold). */
    _Static_assert(ENGINE_LOOKAHEAD <= CAPTURE_BPF_MAX_HOLD, "the lookahead's frames are held");
    if (s->capture) {
        if (engine_lookahead_start(e) != 0) {
            snprintf(err, errlen, "out of memory");
            service_free(s);
            return NULL;
        }
        capture_bpf_hold(s->capture, ENGINE_LOOKAHEAD, flush_frames);
    }
    /* A service outlives its readers: a reader of the events file (a pipe, a FIFO a log shipper
     * reads) or of standard error that goes away makes the write fail with EPIPE, which is
     * counted and logged (events_flush), instead of ending the process. (systemd ignores
     * SIGPIPE for its services already; a container or a shell pipeline does not.) */
    signal(SIGPIPE, SIG_IGN);
    /* Blocked before the HTTP threads exist, so that they inherit the mask and the signals
     * reach only the signalfd read by this thread. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
        (s->sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        snprintf(err, errlen, "cannot watch signals: %s", strerror(errno));
        service_free(s);
        return NULL;
    }
    if (cfg->listen_address) {
        struct http_config hc = {.listen_address = cfg->listen_address,
                                 .enable_lifecycle = cfg->enable_lifecycle,
                                 .metrics_when_ready = cfg->metrics_when_ready,
                                 .version = SIPSCOPE_VERSION};
        struct http_hooks hooks = {.ctx = s, .ready = is_ready, .reload = request_reload};
        s->mailbox = http_reload_new();
        if (!s->mailbox) {
            snprintf(err, errlen, "cannot create the reload mailbox: %s", strerror(errno));
            service_free(s);
            return NULL;
        }
        int rc = http_cuts_declare(engine_metrics(e), hc.cuts);
        if (rc != 0) {
            snprintf(err, errlen, "cannot declare %s: %s", HTTP_CUTS_FAMILY, strerror(-rc));
            service_free(s);
            return NULL;
        }
        rc = http_refused_declare(engine_metrics(e), hc.refused);
        if (rc != 0) {
            snprintf(err, errlen, "cannot declare %s: %s", HTTP_REFUSED_FAMILY, strerror(-rc));
            service_free(s);
            return NULL;
        }
        s->http = http_start(&hc, engine_metrics(e), &hooks, err, errlen);
        if (!s->http) {
            service_free(s);
            return NULL;
        }
    }
    return s;
}

void service_set_ready(struct service *s)
{
    atomic_store(&s->ready, true);
}

/* A reload (SIGHUP, POST /-/reload): the events file is opened again, for a rotation, and the
 * rules are reloaded. The rules' result is the reload's. */
static void reload(struct service *s, const char *why, bool from_http)
{
    char msg[512] = "";
    int rc = engine_reopen_events(s->engine, msg, sizeof(msg));

    if (rc != 0)
        log_error("service", "%s: %s", why, msg);
    msg[0] = 0;
    rc = engine_reload_rules(s->engine, msg, sizeof(msg));

    if (rc == 0)
        log_info("service", "reload (%s): %s", why, msg[0] ? msg : "done");
    else
        log_error("service", "reload (%s) failed: %s", why, msg[0] ? msg : strerror(-rc));
    if (from_http)
        http_reload_done(s->mailbox, rc, msg);
}

/* The signal that came while interruptible (service_interruptible), 0 before; whether it is on,
 * and the handlers it replaced (one job, one thread: the process's signal handlers are global
 * anyway). */
static volatile sig_atomic_t stop_signal;
static bool interruptible;
static struct sigaction old_term, old_int, old_alrm;

/* A stop signal that lands just before a blocking call (a read of a pipe whose writer is
 * silent, the open of a pipe that has no writer yet) interrupts nothing, and the flag is read
 * only once that call returns. So the handler also sets an alarm, and the alarm's handler sets
 * another for as long as the read goes on: a call that blocked after the stop is interrupted
 * within a second. */
static void on_stop_signal(int sig)
{
    stop_signal = sig;
    alarm(1);
}

static void on_stop_alarm(int sig)
{
    (void)sig;
    if (stop_signal)
        alarm(1);
}

int service_interruptible(struct service *s, bool on)
{
    /* No SA_RESTART: a read that waits returns (EINTR) when one of these comes. */
    struct sigaction stop = {.sa_handler = on_stop_signal}, wake = {.sa_handler = on_stop_alarm};
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (on) {
        sigemptyset(&stop.sa_mask);
        sigemptyset(&wake.sa_mask);
        if (sigaction(SIGALRM, &wake, &old_alrm) != 0 ||
            sigaction(SIGTERM, &stop, &old_term) != 0 || sigaction(SIGINT, &stop, &old_int) != 0)
            return -errno;
        interruptible = true;
        return -pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    }
    if (!interruptible)
        return 0;
    interruptible = false;
    if (s) /* for service_run's signalfd */
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    alarm(0);
    if (sigaction(SIGTERM, &old_term, NULL) != 0 || sigaction(SIGINT, &old_int, NULL) != 0 ||
        sigaction(SIGALRM, &old_alrm, NULL) != 0)
        return -errno;
    return 0;
}

int service_stop_pending(const struct service *s)
{
    (void)s;
    return stop_signal;
}

/* Returns true when the service must stop. */
static bool handle_signals(struct service *s)
{
    struct signalfd_siginfo si;

    while (read(s->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(s, "SIGHUP", false);
            continue;
        }
        log_info("service", "%s: shutting down", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
        return true;
    }
    return false;
}

/* A removed interface whose name is on another interface now: the capture follows it
 * (capture_bpf_follow). Returns true when it does, with st[] read again. A refusal is logged
 * once, until the name is gone or followed. */
static bool follow_interface(struct service *s, int i, const char *name,
                             enum capture_iface_state st[CAPTURE_BPF_MAX_IFACES])
{
    char why[256];
    int rc = capture_bpf_follow(s->capture, (size_t)i, why, sizeof(why));

    if (rc < 0 && !s->follow_refused[i])
        log_error("service", "interface %s is back, but it is not captured: %s", name, why);
    s->follow_refused[i] = rc < 0;
    if (rc != 1)
        return false;
    log_info("service", "interface %s was created again: capturing it", name);
    if (capture_bpf_iface_states(s->capture, st, CAPTURE_BPF_MAX_IFACES) <= i)
        st[i] = CAPTURE_IFACE_DOWN; /* unreadable now; the next reading tells */
    return true;
}

/* Follows the captured interfaces' states: the gauge, and a log line at each change (the
 * first reading logs only an interface that is not up). */
static void watch_interfaces(struct service *s)
{
    enum capture_iface_state st[CAPTURE_BPF_MAX_IFACES];
    int n = capture_bpf_iface_states(s->capture, st, CAPTURE_BPF_MAX_IFACES);
    char name[64];

    for (int i = 0; i < n && i < CAPTURE_BPF_MAX_IFACES; i++) {
        int was = s->iface_state[i];
        bool back = false;
        if (capture_bpf_iface_name(s->capture, (uint32_t)i, name, sizeof(name)) != 0)
            snprintf(name, sizeof(name), "%d", i);
        /* Deleted and created again since the last reading, or later: followed at once. */
        if (st[i] == CAPTURE_IFACE_REMOVED)
            back = follow_interface(s, i, name, st);
        if (was == (int)st[i])
            continue;
        s->iface_state[i] = (int)st[i];
        engine_iface_up(s->engine, (uint32_t)i, st[i] == CAPTURE_IFACE_UP);
        if (back && st[i] == CAPTURE_IFACE_UP)
            continue; /* follow_interface said it */
        if (st[i] == CAPTURE_IFACE_UP && was >= 0)
            log_info("service", "interface %s is up: capturing again", name);
        else if (st[i] == CAPTURE_IFACE_DOWN)
            log_warn("service",
                     "interface %s is down or has no carrier: nothing to capture "
                     "until it is up again",
                     name);
        else if (st[i] == CAPTURE_IFACE_REMOVED)
            log_error("service",
                      "interface %s was removed: nothing to capture until an interface of that "
                      "name is created again",
                      name);
    }
}

/* The capture's id of what it cannot place ("other": frames of an interface it does not know,
 * counts past the counters map's room) is health's "other". */
_Static_assert(CAPTURE_BPF_IFACE_UNKNOWN == HEALTH_IFACE_OTHER, "one \"other\" interface");

static void publish_kernel_counters(struct service *s)
{
    size_t n;
    const struct capture_bpf_iface_stats *st = capture_bpf_counter_deltas(s->capture, &n);

    for (size_t i = 0; i < n; i++)
        engine_kernel_counts(s->engine, st[i].iface, st[i].seen, st[i].matched, st[i].ringbuf_full,
                             st[i].truncated);
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A step of the wall clock (capture_bpf_clock_step) moves the times of the events file's lines.
 * One of a second or more is logged, at most once a minute (two time daemons that fight would
 * step it every second). Sampling noise (a microsecond or so) is not a step. */
static void follow_clock_step(struct service *s)
{
    int64_t step = capture_bpf_clock_step(s->capture), by = step - s->clock_step;
    uint64_t now;

    if (by > -CLOCK_STEP_MIN_NS && by < CLOCK_STEP_MIN_NS)
        return;
    now = monotonic_ms();
    if ((by <= -NS_PER_SECOND || by >= NS_PER_SECOND) &&
        (!s->step_logged_ms || now - s->step_logged_ms >= STEP_LOG_MS)) {
        s->step_logged_ms = now;
        log_warn("service",
                 "the system clock was stepped by %+.3f s: the events file's times follow it; "
                 "timers and durations keep to the packets' own clock",
                 (double)by / 1e9);
    }
    s->clock_step = step;
    engine_set_clock_step(s->engine, step);
}

int service_run(struct service *s)
{
    struct pollfd fds[4];
    uint64_t last_tick = monotonic_ms();

    fds[0] = (struct pollfd){.fd = s->sfd, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = s->mailbox ? http_reload_fd(s->mailbox) : -1, .events = POLLIN};
    fds[2] = (struct pollfd){.fd = s->capture ? capture_bpf_fd(s->capture) : -1, .events = POLLIN};
    /* An interface created again is followed as soon as the kernel says so: until its socket is
     * bound, what crosses it is lost without a count (a VPN's first REGISTER after it
     * reconnects), and the tick may be a second away. */
    fds[3] =
        (struct pollfd){.fd = s->capture ? capture_bpf_link_fd(s->capture) : -1, .events = POLLIN};
    if (s->capture)
        watch_interfaces(s); /* the gauge from the first scrape on */
    /* The last drain that delivered frames; 0: none yet. */
    uint64_t last_frames = 0;
    bool quiet = true; /* the last drain delivered none, CAPTURE_BPF_POLL_MS after one that did */

    for (;;) {
        /* The capture descriptor wakes us past a backlog and for the first frame after a quiet
         * spell, not for every frame (capture_bpf.h): while frames come, look at the ring every
         * CAPTURE_BPF_POLL_MS; once they stopped, sleep until it wakes us or the tick is due (an
         * idle sipscope wakes once a second, not twenty times). */
        uint64_t now = monotonic_ms(), since_tick = now - last_tick;
        int timeout = since_tick >= SERVICE_TICK_MS ? 0 : (int)(SERVICE_TICK_MS - since_tick);
        bool backlog = false;

        if (s->capture && !quiet && timeout > CAPTURE_BPF_POLL_MS)
            timeout = CAPTURE_BPF_POLL_MS;
        if (poll(fds, 4, timeout) < 0 && errno != EINTR)
            return -errno;
        if (s->capture && (fds[3].revents & POLLIN) && capture_bpf_link_drain(s->capture))
            watch_interfaces(s);
        if (s->capture) {
            /* Drain the ring while it has a full budget's worth, but never for longer than
             * a tick: under an endless overload (traffic faster than the engine) the ring is
             * never empty, and the kernel's drop counters, signals and reloads below must
             * still run. */
            uint64_t drain_start = monotonic_ms();
            int n, total = 0;
            do {
                n = capture_bpf_poll(s->capture, 0, deliver_frame, s->engine);
                total += n > 0 ? n : 0;
            } while (n > 0 && n == CAPTURE_BPF_DEFAULT_BUDGET &&
                     monotonic_ms() - drain_start < SERVICE_TICK_MS);
            backlog = n == CAPTURE_BPF_DEFAULT_BUDGET;
            if (total > 0)
                last_frames = monotonic_ms();
            quiet = total == 0 && monotonic_ms() - last_frames >= CAPTURE_BPF_POLL_MS;
            if (n < 0 && n != -EINTR) {
                log_error("service", "capture failed: %s", strerror(-n));
                return n;
            }
        }
        now = monotonic_ms();
        if (now - last_tick >= SERVICE_TICK_MS) {
            last_tick = now;
            if (s->capture) {
                /* Not while frames wait in the ring: the tick would move the clock past them
                 * and fire their transactions' timers before their responses are read. The
                 * frames themselves move the clock meanwhile. */
                if (!backlog)
                    engine_tick(s->engine, capture_bpf_now_ns(s->capture));
                publish_kernel_counters(s);
                watch_interfaces(s);
                follow_clock_step(s);
            }
        }
        if (handle_signals(s))
            return 0;
        if (s->mailbox && http_reload_take(s->mailbox))
            reload(s, "/-/reload", true);
    }
}

int service_drop_privileges(void)
{
    cap_t none = cap_init();
    int rc = 0;

    if (!none)
        return -errno;
    /* Ambient capabilities (systemd's AmbientCapabilities=) would survive an exec otherwise. */
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (cap_set_proc(none) != 0)
        rc = -errno;
    cap_free(none);
    if (rc == 0)
        log_info("service", "capture attached: all capabilities dropped");
    return rc;
}

void service_free(struct service *s)
{
    if (!s)
        return;
    service_interruptible(s, false);
    if (s->mailbox)
        http_reload_cancel(s->mailbox); /* a waiting /-/reload returns before http_stop */
    http_stop(s->http);
    http_reload_free(s->mailbox);
    if (s->sfd >= 0)
        close(s->sfd);
    free(s);
}
