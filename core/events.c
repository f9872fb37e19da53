/* events: CDR and registration lines of the --events file. */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "call_cdr.h"
#include "decode.h"
#include "expo.h"
#include "log.h"
#include "sip_dialog.h"
#include "sip_reg.h"

#define NS_PER_S 1000000000ULL
#define MAX_LINE (1u << 20) /* a line longer than this (huge rule fields) is dropped, counted */
/* Lines are written in batches of up to BATCH_BYTES (or BATCH_LINES lines): stdio's page-sized
 * buffer made a write(2) per eight lines or so. The engine flushes at every publish (every
 * 4,096 packets and once a second), so batching delays no line past that. */
#define BATCH_BYTES (256u << 10)
#define BATCH_LINES 2048u
#define DATE_LEN 11 /* "2023-11-14T": what events_time writes before the time of day */
#define S_PER_DAY 86400u
#define EPISODE_LOG_S 60 /* a new episode of failed writes is logged at most this often */
/* Live, to a named pipe: how long a flush waits for the reader to make room before the lines
 * that do not fit are lost (none while they are being lost already). A reader that stops
 * reading without closing the pipe would otherwise stop the engine in write(2): no capture, no
 * signals, metrics frozen. */
#define PIPE_WAIT_MS 100

struct events {
    int fd;
    int owns;       /* fd is ours to close (not standard output itself) */
    bool live;      /* opened to append: a live capture, which must not wait on the file */
    bool to_stdout; /* standard output, through fd (itself, or a pipe's own description) */
    /* fd is a pipe or a socket written live (a named pipe, or standard output): never waited on
     * longer than PIPE_WAIT_MS a flush (pipe_write). A pipe is O_NONBLOCK and written in runs of
     * whole lines of at most PIPE_BUF bytes (atomic: a full pipe takes all of one or none of
     * it). A socket (standard output to journald's stream) is standard output's own file
     * description, shared: it is written with send(MSG_DONTWAIT) instead (sock), and a stream
     * socket may take part of any write. */
    bool nowait, sock;
    /* buf's first waiting line was started: its start is in the pipe already (a write that took
     * part of it, see nowait), so the rest goes before any other line, or the reader would read
     * half a JSON object joined to the next. It is neither written nor lost until then. */
    bool started;
    bool (*stop)(void *ctx); /* events_set_stop's */
    void *stop_ctx;
    char *path; /* what events_reopen opens again; NULL for standard output */
    const struct oplabel_set *ops;
    uint32_t fields; /* the call_cdr fields call lines carry (a mask) */
    /* The labels' names as JSON keys ("\"carrier\":", a comma before all but the first), one
     * after the other in label_keys; label_key_end[i] ends label i's. Rendered for the first
     * line with n_label_keys labels: labels are declared before lines are written, and never
     * change after (a reload cannot change them). */
    char *label_keys;
    uint32_t label_key_end[TRACK_MAX_LABELS];
    size_t n_label_keys;
    /* buf[0, line) holds whole lines not yet written, buf[line, len) the line being built.
     * room = min(cap, line + MAX_LINE): the line grows up to there with one compare per append,
     * and only an append past it takes the slow path (set_room after line or cap moves). */
    char *buf;
    size_t len, cap, line, room;
    int too_long;
    /* Where each waiting line ends in buf, and whether it is a call's: a write that fails
     * part-way counts exactly the lines it did not write. */
    uint32_t ends[BATCH_LINES];
    uint8_t is_call[BATCH_LINES];
    uint32_t n_lines;
    int cut; /* the file ends inside a line (a write failed part-way, not taken back) */
    /* Lines lost to failed writes: in all (events_lost), and since the last "written again"
     * (failing: the errno of the episode under way, 0 while writes succeed), so that an episode
     * is logged once when it starts and once when it ends, not at every flush; and a file that
     * flaps (a disk freed and filled again) at most once a minute (fail_logged_s: when, on the
     * monotonic clock; episode_logged: this episode's start was). */
    uint64_t lost, lost_now;
    int failing;
    bool episode_logged;
    uint64_t fail_logged_s;
    bool drop_logged;   /* a line too long to keep was logged (once) */
    /* events_follow_path: the file fd writes (a regular file written live), and since when
     * (monotonic ms, 0: not) the path has named another file or none; a failed open of the path
     * was logged. */
    bool follow;
    dev_t dev;
    ino_t ino;
    uint64_t moved_since_ms;
    bool follow_failed_logged;
    int64_t clock_step; /* events_set_clock_step */
    /* put_time's last day (since the epoch) and its date ("2023-11-14T"); empty at first. */
    uint64_t date_day;
    char date_text[32];
    struct metric_series *errors, *calls, *registrations;
};

static void set_room(struct events *w)
{
    w->room = w->cap < w->line + MAX_LINE ? w->cap : w->line + MAX_LINE;
}

static uint32_t intern(struct metrics *reg, const char *s)
{
    return metrics_intern(reg, s, strlen(s));
}

/* Whether the regular file at path that fd appends to ends inside a line (a run before was
 * killed while writing): the first write then starts with a line break, so that the cut line
 * stays alone. Read through a descriptor of its own: fd is write-only. */
static int ends_inside_a_line(int fd, const char *path)
{
    struct stat st;
    char last;
    int rfd, cut;

    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0)
        return 0;
    rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0)
        return 0;
    cut = pread(rfd, &last, 1, st.st_size - 1) == 1 && last != '\n';
    close(rfd);
    return cut;
}

/* Makes fd, just opened for w, a pipe that is never waited on (struct events' nowait) when it
 * is a named pipe written live; clears O_NONBLOCK (set by events_reopen's open) otherwise. */
static void set_nowait(struct events *w, int fd)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);

    w->nowait = w->live && fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && fl >= 0 &&
                fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
    if (!w->nowait && fl >= 0 && (fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
}

/* Standard output, written live, for w: a pipe through a file description of its own,
 * O_NONBLOCK (set on standard output's own, it would be its siblings' too: a shell's, another
 * process's); a socket, which cannot be opened again, through its own descriptor with
 * send(MSG_DONTWAIT), which waits for nothing without changing it; anything else (a file, a
 * terminal, a pipe when /proc cannot be opened), as it is, blocking. */
static void stdout_nowait(struct events *w)
{
    struct stat st;

    w->fd = STDOUT_FILENO;
    if (fstat(STDOUT_FILENO, &st) != 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        w->nowait = w->sock = true;
    } else if (S_ISFIFO(st.st_mode)) {
        int fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0)
            w->fd = fd, w->owns = 1, w->nowait = true;
    }
}

/* Records which file fd is, for events_follow_path: only a regular file written live is
 * followed (a pipe has no rotation; a --read writes its file once). */
static void remember_file(struct events *w)
{
    struct stat st;

    w->follow = w->live && w->path && fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode);
    w->moved_since_ms = 0;
    if (w->follow) {
        w->dev = st.st_dev;
        w->ino = st.st_ino;
    }
}

struct events *events_open(const char *path, struct metrics *reg, const struct oplabel_set *ops,
                           uint32_t fields, bool append, char *err, size_t errlen)
{
    static const char *const type_label[] = {"type"};
    struct events *w = calloc(1, sizeof(*w));
    struct metric_family *fe, *ft;
    uint32_t k;

    if (!w) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    w->ops = ops;
    w->fields = fields;
    fe = metrics_family(reg, "sipscope_events_errors_total",
                        "Lines of the --events file that could not be written, or were "
                        "written without the fields rules added (out of memory).",
                        METRIC_COUNTER,
                        NULL, 0, NULL, 0, 1, 0);
    ft = metrics_family(reg, "sipscope_events_total",
                        "Lines written to the --events file, by type (call, registration).",
                        METRIC_COUNTER, type_label, 1, NULL, 0, 2, 0);
    if (!fe || !ft) {
        snprintf(err, errlen, "out of memory while declaring the events families");
        free(w);
        return NULL;
    }
    w->errors = metrics_series(fe, NULL);
    k = intern(reg, "call");
    w->calls = metrics_series(ft, &k);
    k = intern(reg, "registration");
    w->registrations = metrics_series(ft, &k);
    if (strcmp(path, "-") == 0) {
        w->to_stdout = true;
        w->fd = STDOUT_FILENO;
        if (append)
            stdout_nowait(w);
    } else {
        /* O_APPEND: after a rotation that truncates the file in place (logrotate's
         * copytruncate), the next write lands at its new end, not past a hole of zeros. */
        w->fd =
            open(path, O_WRONLY | O_CREAT | (append ? 0 : O_TRUNC) | O_APPEND | O_CLOEXEC, 0666);
        w->owns = 1;
        w->path = strdup(path);
    }
    if (w->fd < 0 || (!w->to_stdout && !w->path)) {
        snprintf(err, errlen, "cannot open the events file %s: %s", path,
                 w->fd < 0 ? strerror(errno) : "out of memory");
        if (w->fd >= 0)
            close(w->fd);
        free(w);
        return NULL;
    }
    w->live = append;
    if (w->path)
        set_nowait(w, w->fd);
    if (append && w->path)
        w->cut = ends_inside_a_line(w->fd, path);
    remember_file(w);
    return w;
}

/* The file's name in messages. */
static const char *shown(const struct events *w)
{
    return w->path ? w->path : "(standard output)";
}

static uint64_t monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec;
}

/* lost lines of the batch could not be written, for the reason err. */
static void writes_fail(struct events *w, uint64_t lost, int err)
{
    if (!w->failing) {
        uint64_t now = monotonic_s();
        w->episode_logged = !w->fail_logged_s || now - w->fail_logged_s >= EPISODE_LOG_S;
        if (w->episode_logged) {
            w->fail_logged_s = now;
            log_error("events",
                      "cannot write the events file %s: %s; its lines are lost until it can be "
                      "written again (counted in sipscope_events_errors_total)",
                      shown(w),
                      err == EAGAIN ? "the pipe is full, its reader does not read" : strerror(err));
        }
    }
    w->failing = err;
    w->lost += lost;
    w->lost_now += lost;
}

static void writes_succeed(struct events *w)
{
    if (!w->failing)
        return;
    w->failing = 0;
    if (!w->episode_logged)
        return; /* its count goes with the next episode that is logged */
    log_info("events", "the events file %s is written again; %llu lines were lost", shown(w),
             (unsigned long long)w->lost_now);
    w->lost_now = 0;
}

/* A close that fails tells of a write the kernel had deferred (NFS): the lines it held are lost,
 * how many is not known. Counted as one. */
static int close_file(struct events *w, int fd)
{
    int e;

    if (close(fd) == 0)
        return 0;
    e = errno;
    metric_counter_add(w->errors, 1);
    w->lost++;
    log_error("events", "closing the events file %s failed: %s; its last lines may be lost",
              shown(w), strerror(e));
    return -e;
}

static void drop_started(struct events *w);

/* Opens the path again, appending, and writes there from now on; the old file is closed.
 * Returns 0, or -errno (the old file is then kept). */
static int open_path_again(struct events *w)
{
    /* O_NONBLOCK: a named pipe whose reader has gone would block the open until one comes
     * (ENXIO instead: the old one is kept). Cleared again unless it is a pipe written live. */
    int fd = open(w->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NONBLOCK, 0666);

    if (fd < 0)
        return -errno;
    if (w->started) /* its start went to the old file: its rest would begin a line of the new */
        drop_started(w);
    close_file(w, w->fd);
    w->fd = fd;
    set_nowait(w, fd);
    w->cut = ends_inside_a_line(fd, w->path); /* a line cut before does not spoil the next */
    remember_file(w);
    return 0;
}

int events_reopen(struct events *w, char *err, size_t errlen)
{
    int rc;

    if (!w->path)
        return 0;
    events_flush(w); /* the lines so far belong to the file they were written for */
    rc = open_path_again(w);
    if (rc)
        snprintf(err, errlen, "cannot reopen the events file %s: %s (still writing to the old one)",
                 w->path, strerror(-rc));
    return rc;
}

uint64_t events_lost(const struct events *w)
{
    return w->lost;
}

void events_set_clock_step(struct events *w, int64_t ns)
{
    w->clock_step = ns;
}

int events_close(struct events *w)
{
    int rc, closed = 0;

    if (!w)
        return 0;
    rc = events_flush(w);
    if (w->started) { /* the reader never took the rest of a line it has the start of */
        drop_started(w);
        rc = -EIO;
    }
    if (w->owns)
        closed = close_file(w, w->fd);
    free(w->buf);
    free(w->label_keys);
    free(w->path);
    free(w);
    return rc ? rc : closed;
}

/* Writes buf[len] to w's file, blocking; returns how much was written, and sets *err to the
 * errno of a failure (EIO for a write that wrote nothing and said nothing). A signal that
 * interrupts it ends it (EINTR) when w's stop test says so (an offline read stopped while its
 * reader stalled, events_set_stop), and is otherwise resumed. */
static size_t write_all(const struct events *w, const char *buf, size_t len, int *err)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = write(w->fd, buf + done, len - done);
        if (n < 0 && errno == EINTR && !(w->stop && w->stop(w->stop_ctx)))
            continue;
        if (n <= 0) {
            *err = n < 0 ? errno : EIO;
            break;
        }
        done += (size_t)n;
    }
    return done;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void events_set_stop(struct events *w, bool (*stop)(void *ctx), void *ctx)
{
    w->stop = stop;
    w->stop_ctx = ctx;
}

int events_follow_path(struct events *w)
{
    struct stat ours, named;
    bool removed, same;
    uint64_t now;
    int rc;

    if (!w->follow || fstat(w->fd, &ours) != 0)
        return 0;
    removed = ours.st_nlink == 0;
    same = stat(w->path, &named) == 0 && named.st_dev == w->dev && named.st_ino == w->ino;
    if (same) {
        w->moved_since_ms = 0;
        return 0;
    }
    now = monotonic_ms();
    if (!removed && !w->moved_since_ms) {
        w->moved_since_ms = now ? now : 1;
        return 0;
    }
    if (!removed && now - w->moved_since_ms < EVENTS_MOVED_GRACE_MS)
        return 0;
    rc = open_path_again(w);
    if (rc) {
        if (!w->follow_failed_logged)
            log_error("events",
                      "the events file %s was %s without a SIGHUP, and opening the path "
                      "again failed: %s (trying again each second)",
                      w->path, removed ? "removed" : "renamed", strerror(-rc));
        w->follow_failed_logged = true;
        return 0;
    }
    w->follow_failed_logged = false;
    log_warn("events",
             "the events file %s was %s without a SIGHUP: writing to the path again "
             "(rotate with a SIGHUP after the rename, or copytruncate)",
             w->path, removed ? "removed" : "renamed");
    return 1;
}

/* Waits until fd can take more, or until deadline (monotonic ms) passes: false then. */
static bool wait_room(int fd, uint64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        uint64_t now = monotonic_ms();
        int n;

        if (now >= deadline)
            return false;
        n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return true; /* POLLERR too: the write says why */
        if (n == 0 || errno != EINTR)
            return false;
    }
}

/* One write to a pipe or socket written live (nowait), which does not wait. */
static ssize_t write_nowait(const struct events *w, const char *p, size_t n)
{
    /* MSG_NOSIGNAL: a socket whose reader went away is an error of this write (EPIPE), as a
     * pipe's is once SIGPIPE is ignored (service_new), whoever calls. */
    return w->sock ? send(w->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(w->fd, p, n);
}

/* The waiting lines to a pipe or socket written live (nowait): in runs of whole lines of at
 * most PIPE_BUF bytes, which a full pipe takes whole or not at all, so that a reader that
 * stopped is left whole lines. A flush waits PIPE_WAIT_MS in all for room (not at all while
 * lines are being lost: a stopped reader costs one failed write a flush); a line longer than
 * PIPE_BUF goes alone and in parts (and a stream socket may take part of any run), and once
 * started gets PIPE_WAIT_MS of its own to end. Returns the bytes written, with *err set as
 * write_all sets it; a line left part-written is events_flush's to finish (struct events'
 * started). */
static size_t pipe_write(struct events *w, int *err)
{
    uint64_t deadline = monotonic_ms() + (w->failing ? 0 : PIPE_WAIT_MS);
    size_t done = 0;
    uint32_t i = 0;

    while (i < w->n_lines) {
        uint32_t j = i + 1;
        size_t start = done, end;
        bool extended = false;

        while (j < w->n_lines && w->ends[j] - start <= PIPE_BUF)
            j++;
        end = w->ends[j - 1];
        while (done < end) {
            ssize_t n = write_nowait(w, w->buf + done, end - done);
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno == EAGAIN) {
                if (done > start && !extended) {
                    extended = true;
                    deadline = monotonic_ms() + PIPE_WAIT_MS;
                }
                if (wait_room(w->fd, deadline))
                    continue;
            }
            *err = n < 0 ? errno : EIO;
            return done;
        }
        i = j;
    }
    return done;
}

/* Takes the last n bytes written back out of a regular file: the start of a line whose write
 * failed part-way (a full disk), which a reader of JSON lines could not parse. False when it
 * cannot: not a regular file, or not opened to append (standard output redirected with `>`),
 * where the next write would go on at the old offset and leave NUL bytes in the gap. The cut
 * line then stays, alone on its line (struct events' cut). With O_APPEND the file's end is the
 * end of that write (one writer). */
static bool unwrite(int fd, size_t n)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);

    return fl >= 0 && (fl & O_APPEND) && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
           (uint64_t)st.st_size >= n && ftruncate(fd, st.st_size - (off_t)n) == 0;
}

/* Takes the first waiting line (a started one: struct events' started) out of buf, lost (for
 * the reason of the episode under way, or the full pipe that left it started). */
static void drop_started(struct events *w)
{
    uint32_t first = w->ends[0];

    metric_counter_add(w->errors, 1);
    writes_fail(w, 1, w->failing ? w->failing : EAGAIN);
    memmove(w->buf, w->buf + first, w->len - first);
    w->len -= first;
    w->line -= first;
    for (uint32_t i = 1; i < w->n_lines; i++) {
        w->ends[i - 1] = w->ends[i] - first;
        w->is_call[i - 1] = w->is_call[i];
    }
    w->n_lines--;
    w->started = false;
    set_room(w);
}

int events_flush(struct events *w)
{
    size_t done, from;
    uint32_t i, calls = 0, lost;
    int failed, err = 0;
    bool keep;

    if (!w->n_lines)
        return 0;
    if (w->to_stdout)
        fflush(stdout); /* what was printed through stdio goes first */
    /* After a write that failed inside a line and could not be taken back (unwrite: a pipe),
     * or a run before that was killed inside one, a line break first: the cut line stays alone
     * and unreadable instead of spoiling the next. */
    if (w->cut && write_all(w, "\n", 1, &err) == 1)
        w->cut = 0;
    done = w->cut ? 0 : w->nowait ? pipe_write(w, &err) : write_all(w, w->buf, w->line, &err);
    for (i = 0; i < w->n_lines && w->ends[i] <= done; i++)
        calls += w->is_call[i];
    metric_counter_add(w->calls, calls);
    metric_counter_add(w->registrations, i - calls);
    /* Line i, the first not written whole, starts at from. Written in part to a pipe or socket
     * live, it is kept: its rest goes first next time (whatever follows it now is lost), so that
     * the reader never reads half a line and then another. So is the rest of a line started
     * before (started), also when this flush wrote nothing of it (the reader still stalled). */
    from = i ? w->ends[i - 1] : 0;
    keep = w->nowait && i < w->n_lines && (done > from || (i == 0 && w->started));
    lost = w->n_lines - i - keep;
    failed = lost > 0;
    if (failed) {
        metric_counter_add(w->errors, lost);
        writes_fail(w, lost, err ? err : EIO);
        if (!keep && done > from && !unwrite(w->fd, done - from))
            w->cut = 1;
    } else if (!keep) {
        writes_succeed(w);
    }
    /* Called between lines: the buffer holds whole lines only, and the rest of a started one. */
    w->len = w->line = 0;
    w->n_lines = 0;
    w->started = keep;
    if (keep) {
        w->len = w->line = w->ends[i] - done;
        memmove(w->buf, w->buf + done, w->len);
        w->ends[0] = (uint32_t)w->len;
        w->is_call[0] = w->is_call[i];
        w->n_lines = 1;
    }
    set_room(w);
    return failed ? -EIO : 0;
}

/* reserve past room: the line would pass MAX_LINE (too long), or the buffer must grow. The
 * buffer only grows (to a batch and the longest line), so steady state allocates nothing.
 * MAX_LINE counts from the line's start, whatever room there is: after one long line the buffer
 * could hold a longer one, and a line's fate must not depend on the lines before it. */
__attribute__((noinline)) static int grow(struct events *w, size_t n)
{
    size_t cap = w->cap ? w->cap : 1024;
    char *p;

    if (w->len - w->line + n > MAX_LINE) {
        w->too_long = 1;
        return 0;
    }
    while (cap < w->len + n)
        cap *= 2;
    p = realloc(w->buf, cap);
    if (!p) {
        w->too_long = 1;
        return 0;
    }
    w->buf = p;
    w->cap = cap;
    set_room(w);
    return 1;
}

/* Makes room for n more bytes of the line being built. A line makes some forty appends: one
 * compare each, inlined, where a call that checked both limits cost a fifth of the line. */
static inline __attribute__((always_inline)) int reserve(struct events *w, size_t n)
{
    return w->len + n <= w->room || grow(w, n);
}

/* Inlined, so that a literal's copy (put_lit) is a few moves, not a call of memcpy. */
static inline __attribute__((always_inline)) void put(struct events *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_str(struct events *w, const char *s)
{
    put(w, s, strlen(s));
}

/* A string literal: its length is known at compile time (no strlen per line). */
#define put_lit(w, s) put((w), (s), sizeof(s) - 1)

/* Bytes that JSON strings take as they are: printable ASCII but '"' and '\\'. */
static const uint8_t json_plain[256] = {
    [0x20 ... 0x21] = 1, /* '"' is 0x22 */
    [0x23 ... 0x5b] = 1, /* '\\' is 0x5c */
    [0x5d ... 0x7e] = 1,
};

/* How many bytes at the start of s[len] need no escaping. Sixteen at a time where SSE2 is
 * there, and the rest too without a loop over bytes: a line has some thirty strings (ids, URIs,
 * label values, rule fields) of a few to tens of bytes, and a byte loop over their tails was a
 * third of the time spent writing lines. Loads never reach past s[len): the tail is one load
 * that overlaps bytes already checked, and a string under 16 bytes is two loads of 8 (or 4)
 * that overlap each other. */
#ifdef __SSE2__
/* The bytes of v that need escaping, as a bit mask (bit i: byte i). */
static inline unsigned json_bad_mask(__m128i v)
{
    const __m128i space = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7f),
                  quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
    /* Signed: below 0x20 catches 0x80-0xff (negative) as well as the controls. */
    __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)),
                               _mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                            _mm_cmpeq_epi8(v, backslash)));
    return (unsigned)_mm_movemask_epi8(bad);
}

/* s[len] with 4 <= len < 16 as two loads of w bytes (8 or 4), the second ending at s + len. */
static size_t json_plain_short(const char *s, size_t len, size_t w)
{
    uint64_t lo = 0, hi = 0;
    unsigned m;

    memcpy(&lo, s, w);
    memcpy(&hi, s + len - w, w);
    /* Bytes past w in each half are zero, which counts as needing escaping: masked off. */
    m = json_bad_mask(_mm_set_epi64x((long long)hi, (long long)lo));
    m &= ((1u << w) - 1) | (((1u << w) - 1) << 8);
    if (m & 0xff)
        return (size_t)__builtin_ctz(m);
    if (m)
        return len - w + (size_t)__builtin_ctz(m >> 8);
    return len;
}
#endif

size_t events_json_plain(const char *s, size_t len)
{
    size_t i = 0;
#ifdef __SSE2__
    if (len < 16) {
        if (len >= 8)
            return json_plain_short(s, len, 8);
        if (len >= 4)
            return json_plain_short(s, len, 4);
    } else {
        unsigned m;
        for (; i + 16 <= len; i += 16) {
            m = json_bad_mask(_mm_loadu_si128((const __m128i *)(const void *)(s + i)));
            if (m)
                return i + (unsigned)__builtin_ctz(m);
        }
        if (i == len)
            return len;
        /* The last 16 bytes: those before i were found plain, so the first bad one is past. */
        m = json_bad_mask(_mm_loadu_si128((const __m128i *)(const void *)(s + len - 16)));
        return m ? len - 16 + (unsigned)__builtin_ctz(m) : len;
    }
#endif
    while (i < len && json_plain[(unsigned char)s[i]])
        i++;
    return i;
}

size_t events_json_string(char *buf, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0;

#define EMIT(c)                                                                                    \
    do {                                                                                           \
        if (o < cap)                                                                               \
            buf[o] = (c);                                                                          \
        o++;                                                                                       \
    } while (0)
    EMIT('"');
    /* Most values are printable ASCII without quotes or backslashes: copied at once up to the
     * first byte that is not. */
    i = events_json_plain(s, len);
    if (o < cap)
        memcpy(buf + o, s, i < cap - o ? i : cap - o);
    o += i;
    while (i < len) {
        size_t bad, ok = metrics_utf8_prefix(s + i, len - i, &bad);
        for (size_t j = 0; j < ok; j++) {
            unsigned char c = (unsigned char)s[i + j];
            if (c == '"' || c == '\\') {
                EMIT('\\');
                EMIT((char)c);
            } else if (c < 0x20 || c == 0x7f) {
                EMIT('\\');
                EMIT('u');
                EMIT('0');
                EMIT('0');
                EMIT(hex[c >> 4]);
                EMIT(hex[c & 15]);
            } else {
                EMIT((char)c);
            }
        }
        i += ok;
        if (bad) {
            EMIT('\xef'); /* U+FFFD */
            EMIT('\xbf');
            EMIT('\xbd');
            i += bad;
        }
    }
    EMIT('"');
#undef EMIT
    return o;
}

static void put_json(struct events *w, const char *s, size_t len)
{
    size_t need = len * 6 + 2; /* every byte escaped as \u00XX at worst */
    if (!reserve(w, need))
        return;
    w->len += events_json_string(w->buf + w->len, need, s, len);
}

/* ,"key": for a literal key, in one copy. */
#define put_key(w, key) put_lit((w), ",\"" key "\":")

/* n in decimal (ports, codes, causes, expiries: a few digits each, several per line, where
 * expo_number's double formatting cost more than the rest of the number's line). */
static void put_uint(struct events *w, unsigned n)
{
    _Static_assert(sizeof(unsigned) == 4, "10 digits hold any unsigned");
    char num[10], *p = num + sizeof(num);
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    put(w, p, (size_t)(num + sizeof(num) - p));
}

/* n as `width` decimal digits, zero-padded, at p. */
static char *put_digits(char *p, unsigned n, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + n % 10);
        n /= 10;
    }
    return p + width;
}

void events_time(uint64_t ns, char out[32])
{
    uint64_t secs = ns / NS_PER_S;
    unsigned ms = (unsigned)(ns % NS_PER_S / 1000000);
    unsigned sod = (unsigned)(secs % 86400);
    /* The proleptic Gregorian date of a day count from 1970-01-01, by 400-year eras of 146,097
     * days counted from 0000-03-01 (so that the leap day ends a year): gmtime and strftime cost
     * several times more, three times per CDR line. */
    uint64_t z = secs / 86400 + 719468;
    uint64_t era = z / 146097;
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* March = 0 */
    unsigned day = doy - (153 * mp + 2) / 5 + 1;
    unsigned month = mp < 10 ? mp + 3 : mp - 9;
    uint64_t year = era * 400 + yoe + (month <= 2);
    char *p = out;

    p = put_digits(p, (unsigned)year, 4);
    *p++ = '-';
    p = put_digits(p, month, 2);
    *p++ = '-';
    p = put_digits(p, day, 2);
    *p++ = 'T';
    p = put_digits(p, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, ms, 3);
    *p++ = 'Z';
    *p = 0;
}

/* "2023-11-14T22:13:20.009Z" (quotes included), or null for 0, after its key. Each line has up
 * to three times, seconds or hours apart, and lines follow each other in time: the date is
 * formatted once per day (events_time), the time of day per time. */
static void put_time(struct events *w, uint64_t ns)
{
    uint64_t secs, day;
    unsigned sod, ms;
    char t[DATE_LEN + 16], *p;

    if (!ns) {
        put_lit(w, "null");
        return;
    }
    if (w->clock_step) /* a step back past the epoch is no time at all: the epoch */
        ns = w->clock_step < 0 && (uint64_t)-w->clock_step >= ns ? 1 : ns + (uint64_t)w->clock_step;
    secs = ns / NS_PER_S;
    day = secs / S_PER_DAY;
    sod = (unsigned)(secs - day * S_PER_DAY);
    ms = (unsigned)(ns % NS_PER_S / 1000000);
    if (day != w->date_day || !w->date_text[0]) {
        events_time(day * S_PER_DAY * NS_PER_S, w->date_text); /* "2023-11-14T00:00:00.000Z" */
        w->date_day = day;
    }
    t[0] = '"';
    memcpy(t + 1, w->date_text, DATE_LEN);
    p = put_digits(t + 1 + DATE_LEN, sod / 3600, 2);
    *p++ = ':';
    p = put_digits(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = put_digits(p, sod % 60, 2);
    *p++ = '.';
    p = put_digits(p, ms, 3);
    *p++ = 'Z';
    *p++ = '"';
    put(w, t, (size_t)(p - t));
}

/* The seconds from from to to, after its key; null unless valid. */
static void put_seconds(struct events *w, uint64_t from, uint64_t to, int valid)
{
    char num[EXPO_NUMBER_MAX];
    if (!valid) {
        put_lit(w, "null");
        return;
    }
    put(w, num, expo_ns_seconds(to > from ? to - from : 0, num));
}

/* Renders the label keys (struct events' label_keys) for n labels; false when out of memory. */
static bool render_label_keys(struct events *w, size_t n)
{
    size_t cap = 0, len = 0;
    char *keys;

    /* events_json_string takes at most 6 bytes a byte and 2 quotes; a comma and a colon: the
     * writes below need no check of their own */
    for (size_t i = 0; i < n; i++)
        cap += strlen(oplabel_name(w->ops, i)) * 6 + 4;
    keys = malloc(cap ? cap : 1);
    if (!keys)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char *name = oplabel_name(w->ops, i);
        if (i)
            keys[len++] = ',';
        len += events_json_string(keys + len, cap - len, name, strlen(name));
        keys[len++] = ':';
        w->label_key_end[i] = (uint32_t)len;
    }
    free(w->label_keys);
    w->label_keys = keys;
    w->n_label_keys = n;
    return true;
}

static void put_labels(struct events *w, const uint16_t *ids)
{
    size_t n = oplabel_count(w->ops);
    put_lit(w, ",\"labels\":{");
    if (n > TRACK_MAX_LABELS || (n != w->n_label_keys && !render_label_keys(w, n))) {
        w->too_long = 1; /* the line is dropped and counted, as one that does not fit */
        return;
    }
    for (size_t i = 0, start = 0; i < n; start = w->label_key_end[i++]) {
        size_t len;
        const char *v = oplabel_text(w->ops, i, ids ? ids[i] : 0, &len);
        put(w, w->label_keys + start, w->label_key_end[i] - start);
        put_json(w, v, len);
    }
    put(w, "}", 1);
}

#define WANTS(w, field) ((w)->fields & (1u << (field)))

static void put_addr(struct events *w, const struct call_cdr *c, int which_dst)
{
    char text[64];
    int n =
        decode_addr_text(c->ip_version, which_dst ? c->dst : c->src, text + 1, sizeof(text) - 2);
    if (n <= 0) {
        put_lit(w, "null");
        return;
    }
    text[0] = '"';
    text[n + 1] = '"';
    put(w, text, (size_t)n + 2);
}

/* The call_cdr fields asked for, in call_cdr.h's order; one the call never had is left out. */
static void put_cdr(struct events *w, const struct sip_dialog *d)
{
    static const char *const transports[] = {"", "\"udp\"", "\"tcp\"", "\"ws\""};
    const struct call_cdr *c = &d->cdr;

    if (c->ip_version) {
        if (WANTS(w, CALL_CDR_SRC_IP)) {
            put_key(w, "src_ip");
            put_addr(w, c, 0);
        }
        if (WANTS(w, CALL_CDR_SRC_PORT)) {
            put_key(w, "src_port");
            put_uint(w, c->sport);
        }
        if (WANTS(w, CALL_CDR_DST_IP)) {
            put_key(w, "dst_ip");
            put_addr(w, c, 1);
        }
        if (WANTS(w, CALL_CDR_DST_PORT)) {
            put_key(w, "dst_port");
            put_uint(w, c->dport);
        }
    }
    if (c->transport && c->transport <= CALL_CDR_TRANSPORT_WS && WANTS(w, CALL_CDR_TRANSPORT)) {
        put_key(w, "transport");
        put_str(w, transports[c->transport]);
    }
    if (c->user_agent_len && WANTS(w, CALL_CDR_USER_AGENT)) {
        put_key(w, "user_agent");
        put_json(w, c->user_agent, c->user_agent_len);
    }
    if (c->server_len && WANTS(w, CALL_CDR_SERVER)) {
        put_key(w, "server");
        put_json(w, c->server, c->server_len);
    }
    if (d->t_ringing && WANTS(w, CALL_CDR_PDD)) {
        /* Rounded to the millisecond: a capture's clock says no more. */
        uint64_t ns = d->t_ringing > d->t_start ? d->t_ringing - d->t_start : 0;
        char num[EXPO_NUMBER_MAX];
        put_key(w, "pdd");
        put(w, num, expo_ns_seconds((ns + 500000) / 1000000 * 1000000, num));
    }
    if (c->codec_len && WANTS(w, CALL_CDR_CODEC)) {
        put_key(w, "codec");
        put_json(w, c->codec, c->codec_len);
    }
    if (d->end_reason == SIP_END_BYE && WANTS(w, CALL_CDR_HANGUP)) {
        put_key(w, "hangup");
        put_str(w, (d->flags & SIP_DIALOG_F_BYE_CALLEE) ? "\"callee\"" : "\"caller\"");
    }
    if (c->q850 && WANTS(w, CALL_CDR_Q850)) {
        put_key(w, "q850");
        put_uint(w, c->q850 - 1u);
    }
}

static void call_line(struct events *w, const struct track_event *ev)
{
    const struct sip_dialog *d = ev->dialog;
    struct slice s;

    put_lit(w, "{\"type\":\"call\"");
    s = sip_dialog_call_id(d);
    put_key(w, "call_id");
    put_json(w, s.p, s.len);
    s = sip_dialog_from_uri(d);
    put_key(w, "from");
    put_json(w, s.p, s.len);
    s = sip_dialog_to_uri(d);
    put_key(w, "to");
    put_json(w, s.p, s.len);
    put_key(w, "start");
    put_time(w, d->t_start);
    put_key(w, "answer");
    put_time(w, d->t_answer);
    put_key(w, "end");
    put_time(w, ev->time_ns);
    put_key(w, "setup_delay");
    put_seconds(w, d->t_start, d->t_answer, d->t_answer != 0);
    put_key(w, "duration");
    put_seconds(w, d->t_answer, ev->time_ns, d->t_answer != 0);
    put_key(w, "outcome");
    if (!(d->flags & SIP_DIALOG_F_OUTCOME))
        put_lit(w, "null");
    else if (d->final_code == 0)
        put_lit(w, "\"timeout\"");
    else
        put_uint(w, d->final_code);
    put_key(w, "end_reason");
    put_lit(w, "\"");
    put_str(w, sip_dialog_end_name((enum sip_dialog_end)ev->reason));
    put_lit(w, "\"");
    put_labels(w, ev->labels);
    if (w->fields)
        put_cdr(w, d);
}

static void registration_line(struct events *w, const struct track_event *ev)
{
    const struct sip_binding *b = ev->binding;
    struct slice s;

    put_lit(w, "{\"type\":\"registration\"");
    s = sip_binding_aor(b);
    put_key(w, "aor");
    put_json(w, s.p, s.len);
    s = sip_binding_contact(b);
    put_key(w, "contact");
    put_json(w, s.p, s.len);
    put_key(w, "change");
    put_lit(w, "\"");
    put_str(w, sip_binding_change_name((enum sip_binding_change)ev->reason));
    put_lit(w, "\"");
    put_key(w, "expires");
    put_uint(w, b->expires);
    put_key(w, "time");
    put_time(w, ev->time_ns);
    put_labels(w, ev->labels);
}

void events_on_event(struct events *w, const struct track_event *ev, const char *fields,
                     size_t fields_len)
{

    w->too_long = 0;
    if (ev->type == TRACK_CALL_END && ev->dialog)
        call_line(w, ev);
    else if (ev->type == TRACK_REG_BINDING && ev->binding)
        registration_line(w, ev);
    else
        return;
    if (!fields) /* the rules' fields were lost: the line goes without them, and counts */
        metric_counter_add(w->errors, 1);
    if (fields_len) {
        put(w, ",", 1);
        put(w, fields, fields_len);
    }
    put(w, "}\n", 2);
    if (w->too_long) { /* longer than MAX_LINE (rule fields of a megabyte), or no memory */
        metric_counter_add(w->errors, 1);
        w->lost++;
        log_once(&w->drop_logged, LOG_ERROR, "events",
                 "a line of the events file was dropped: longer than %u bytes (the fields rules "
                 "add?) or out of memory; such lines are counted in "
                 "sipscope_events_errors_total",
                 MAX_LINE);
        w->len = w->line; /* dropped */
        return;
    }
    w->ends[w->n_lines] = (uint32_t)w->len;
    w->is_call[w->n_lines] = ev->type == TRACK_CALL_END;
    w->n_lines++;
    w->line = w->len;
    set_room(w);
    if (w->line >= BATCH_BYTES || w->n_lines == BATCH_LINES)
        events_flush(w);
}
