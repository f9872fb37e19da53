/* events: JSON escaping, RFC 3339 times, and whole lines built from hand-made tracker events. */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "expo.h"
#include "sip_dialog.h"
#include "sip_reg.h"
#include "test.h"

#define S 1000000000ULL
#define EPOCH 1700000000ULL /* 2023-11-14T22:13:20Z */

static const char *json(const char *s, size_t len)
{
    static char buf[256];
    size_t n = events_json_string(buf, sizeof(buf) - 1, s, len);
    buf[n < sizeof(buf) - 1 ? n : sizeof(buf) - 1] = 0;
    return buf;
}

TEST(json_strings_escape_quotes_backslashes_and_controls)
{
    CHECK_STR(json("plain", 5), "\"plain\"");
    CHECK_STR(json("a\"b\\c", 5), "\"a\\\"b\\\\c\"");
    CHECK_STR(json("\x01\n\x7f", 3), "\"\\u0001\\u000a\\u007f\"");
    CHECK_STR(json("", 0), "\"\"");
}

TEST(json_strings_replace_invalid_utf8_and_keep_valid_utf8)
{
    CHECK_STR(json("a\xff"
                   "b",
                   3),
              "\"a\xef\xbf\xbd"
              "b\"");
    CHECK_STR(json("\xc3\xa9", 2), "\"\xc3\xa9\"");
    CHECK_STR(json("\xe2\x82", 2), "\"\xef\xbf\xbd\""); /* a cut sequence is one replacement */
}

TEST(json_string_returns_the_length_it_needs_when_cut)
{
    char buf[4];
    CHECK_INT(events_json_string(buf, sizeof(buf), "abcdef", 6), 8);
}

/* The plain prefix is copied 16 bytes at a time: a byte to escape at every position of a long
 * string (in the first block, across blocks, in the scalar tail) is still escaped, and a cut
 * output is exactly the start of the whole one. */
TEST(json_strings_escape_at_any_position_of_a_long_string)
{
    static const struct {
        const char *in, *out;
    } special[] = {
        {"\"", "\\\""},     {"\\", "\\\\"},          {"\x01", "\\u0001"},
        {"\x7f", "\\u007f"}, {"\xff", "\xef\xbf\xbd"}, {"\xc3\xa9", "\xc3\xa9"},
    };
    for (size_t k = 0; k < sizeof(special) / sizeof(special[0]); k++) {
        for (size_t at = 0; at < 40; at++) {
            char in[64], want[96], got[96];
            size_t n = strlen(special[k].in), w = 0;
            memset(in, 'a', 40);
            memcpy(in + at, special[k].in, n);
            size_t len = at + n + (40 - at - 1); /* 'a' * at, the special bytes, 'a' * the rest */
            memset(in + at + n, 'a', 40 - at - 1);
            want[w++] = '"';
            memset(want + w, 'a', at);
            w += at;
            memcpy(want + w, special[k].out, strlen(special[k].out));
            w += strlen(special[k].out);
            memset(want + w, 'a', 40 - at - 1);
            w += 40 - at - 1;
            want[w++] = '"';
            CHECK_INT(events_json_string(got, sizeof(got), in, len), w);
            CHECK(memcmp(got, want, w) == 0);
            /* cut at every length */
            for (size_t cap = 0; cap < w; cap++) {
                char cut[96];
                memset(cut, '#', sizeof(cut));
                CHECK_INT(events_json_string(cut, cap, in, len), w);
                CHECK(memcmp(cut, want, cap) == 0 && cut[cap] == '#');
            }
        }
    }
}

/* The vector scan against the byte-by-byte definition: every length to 48, every position of
 * each kind of byte that needs escaping, each string in a buffer of exactly its length (so that
 * AddressSanitizer would report a load past its end). */
TEST(plain_prefix_matches_the_byte_definition_at_every_length_and_position)
{
    static const unsigned char bad[] = {'"', '\\', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
    int wrong = 0;
    for (size_t len = 0; len <= 48; len++) {
        for (size_t pos = 0; pos <= len; pos++) { /* pos == len: all plain */
            for (size_t k = 0; k < sizeof(bad); k++) {
                char *s = malloc(len ? len : 1);
                for (size_t i = 0; i < len; i++)
                    s[i] = (char)('a' + i % 26);
                if (pos < len) {
                    s[pos] = (char)bad[k];
                    if (pos + 3 < len) /* a second one after it changes nothing */
                        s[pos + 3] = '"';
                }
                size_t want = pos;
                if (events_json_plain(s, len) != want && wrong++ < 5)
                    TEST_FAIL_AT("len %zu, byte 0x%02x at %zu: %zu, expected %zu", len, bad[k],
                                 pos, events_json_plain(s, len), want);
                free(s);
                if (pos == len)
                    break;
            }
        }
    }
    CHECK_INT(wrong, 0);
}

TEST(times_are_rfc3339_utc_with_milliseconds)
{
    char t[32];
    events_time(EPOCH * S, t);
    CHECK_STR(t, "2023-11-14T22:13:20.000Z");
    events_time(EPOCH * S + 1999999999ULL, t);
    CHECK_STR(t, "2023-11-14T22:13:21.999Z");
    events_time(0, t);
    CHECK_STR(t, "1970-01-01T00:00:00.000Z");
}

/* The formatter computes the civil date itself: checked against gmtime_r and strftime on the
 * days around every leap rule (2000, 2100, 2400) and on 100,000 times spread over the whole
 * range of the nanosecond clock (to 2554). */
static void reference_time(uint64_t ns, char out[32])
{
    time_t secs = (time_t)(ns / S);
    struct tm tm;
    size_t n;
    gmtime_r(&secs, &tm);
    n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ns % S / 1000000));
}

TEST(times_match_gmtime_over_the_whole_clock)
{
    static const char *const days[] = {"2000-02-28", "2000-02-29", "2000-03-01", "2000-12-31",
                                       "2100-02-28", "2100-03-01", "2400-02-29", "2400-12-31",
                                       "1972-02-29", "2023-12-31", "2024-02-29", "2099-12-31"};
    char t[32], want[32];
    int bad = 0;
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
        struct tm tm = {0};
        CHECK(strptime(days[i], "%Y-%m-%d", &tm) != NULL);
        uint64_t ns = (uint64_t)timegm(&tm) * S + 86399 * S + 999000000;
        events_time(ns, t);
        reference_time(ns, want);
        bad += strcmp(t, want) != 0;
    }
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        events_time(x, t);
        reference_time(x, want);
        if (strcmp(t, want) != 0 && bad++ == 0)
            printf("  %llu: %s, gmtime says %s\n", (unsigned long long)x, t, want);
    }
    CHECK_INT(bad, 0);
}

struct fixture {
    struct metrics *reg;
    struct oplabel_set *ops;
    char path[64];
    struct events *w;
};

static void setup(struct fixture *f, int with_label)
{
    char err[256];
    int fd;
    f->reg = metrics_new(1000);
    f->ops = oplabel_new(f->reg);
    if (with_label)
        oplabel_declare(f->ops, "carrier", "other", 4);
    snprintf(f->path, sizeof(f->path), "/tmp/test_events_XXXXXX");
    fd = mkstemp(f->path);
    close(fd);
    f->w = events_open(f->path, f->reg, f->ops, 0, false, err, sizeof(err));
    CHECK(f->w != NULL);
}

static const char *finish(struct fixture *f)
{
    static char text[2048];
    FILE *in;
    size_t n;
    events_close(f->w);
    in = fopen(f->path, "r");
    n = in ? fread(text, 1, sizeof(text) - 1, in) : 0;
    text[n] = 0;
    if (in)
        fclose(in);
    unlink(f->path);
    oplabel_free(f->ops);
    metrics_free(f->reg);
    return text;
}

static void put_text(struct sip_dialog *d, const char *call_id, const char *from, const char *to)
{
    memcpy(d->text, call_id, strlen(call_id));
    d->call_id_len = (uint8_t)strlen(call_id);
    memcpy(d->text + SIP_DIALOG_CALL_ID_MAX, from, strlen(from));
    d->from_len = (uint8_t)strlen(from);
    memcpy(d->text + SIP_DIALOG_CALL_ID_MAX + SIP_DIALOG_URI_MAX, to, strlen(to));
    d->to_len = (uint8_t)strlen(to);
}

static void put_binding(struct sip_binding *b, const char *aor, const char *contact,
                        uint32_t expires)
{
    memset(b, 0, sizeof(*b));
    memcpy(b->text, aor, strlen(aor));
    b->aor_len = (uint8_t)strlen(aor);
    memcpy(b->text + SIP_BINDING_AOR_MAX, contact, strlen(contact));
    b->contact_len = (uint8_t)strlen(contact);
    b->expires = expires;
}

TEST(an_answered_call_ended_by_bye_is_one_cdr_line)
{
    struct fixture f;
    struct sip_dialog d;
    uint16_t labels[TRACK_MAX_LABELS] = {0};
    struct track_event ev = {.type = TRACK_CALL_END, .reason = SIP_END_BYE};

    setup(&f, 1);
    memset(&d, 0, sizeof(d));
    put_text(&d, "c1@x", "sip:a@x", "sip:b@y");
    d.t_start = (EPOCH + 10) * S;
    d.t_answer = (EPOCH + 12) * S + 500000000ULL;
    d.flags = SIP_DIALOG_F_OUTCOME;
    d.final_code = 200;
    labels[0] = oplabel_value(f.ops, 0, "blue", 4);
    ev.dialog = &d;
    ev.labels = labels;
    ev.time_ns = (EPOCH + 42) * S;
    events_on_event(f.w, &ev, "\"x\":1", 5);
    CHECK_STR(finish(&f),
              "{\"type\":\"call\",\"call_id\":\"c1@x\",\"from\":\"sip:a@x\",\"to\":\"sip:b@y\","
              "\"start\":\"2023-11-14T22:13:30.000Z\",\"answer\":\"2023-11-14T22:13:32.500Z\","
              "\"end\":\"2023-11-14T22:14:02.000Z\",\"setup_delay\":2.5,\"duration\":29.5,"
              "\"outcome\":200,\"end_reason\":\"bye\",\"labels\":{\"carrier\":\"blue\"},"
              "\"x\":1}\n");
}

TEST(a_call_without_answer_or_outcome_has_nulls)
{
    struct fixture f;
    struct sip_dialog d;
    struct track_event ev = {.type = TRACK_CALL_END, .reason = SIP_END_EVICTED};

    setup(&f, 0);
    memset(&d, 0, sizeof(d));
    put_text(&d, "c2", "sip:a@x", "sip:b@y");
    d.t_start = EPOCH * S;
    ev.dialog = &d;
    ev.time_ns = EPOCH * S;
    events_on_event(f.w, &ev, "", 0);
    CHECK_STR(finish(&f),
              "{\"type\":\"call\",\"call_id\":\"c2\",\"from\":\"sip:a@x\",\"to\":\"sip:b@y\","
              "\"start\":\"2023-11-14T22:13:20.000Z\",\"answer\":null,"
              "\"end\":\"2023-11-14T22:13:20.000Z\",\"setup_delay\":null,\"duration\":null,"
              "\"outcome\":null,\"end_reason\":\"evicted\",\"labels\":{}}\n");
}

TEST(a_binding_change_is_one_registration_line_and_other_events_none)
{
    struct fixture f;
    struct sip_binding b;
    struct track_event ev = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_EXPIRED};
    struct track_event other = {.type = TRACK_MESSAGE};

    setup(&f, 0);
    put_binding(&b, "sip:a@x", "sip:a@10.0.0.1", 3600);
    ev.binding = &b;
    ev.time_ns = (EPOCH + 1) * S + 1000000ULL;
    events_on_event(f.w, &other, "", 0);
    events_on_event(f.w, &ev, "", 0);
    CHECK_STR(finish(&f),
              "{\"type\":\"registration\",\"aor\":\"sip:a@x\",\"contact\":\"sip:a@10.0.0.1\","
              "\"change\":\"expired\",\"expires\":3600,\"time\":\"2023-11-14T22:13:21.001Z\","
              "\"labels\":{}}\n");
}

/* Fields that rules added but the bridge lost (out of memory) come as NULL: the line is still
 * written, without them, and counted as an error; a line with fields, or without any, is not. */
TEST(a_line_whose_rule_fields_were_lost_is_written_without_them_and_counted)
{
    struct fixture f;
    struct sip_binding b;
    struct track_event ev = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_EXPIRED};
    struct expo_buf out = {0};

    setup(&f, 0);
    put_binding(&b, "sip:a@x", "sip:a@10.0.0.1", 60);
    ev.binding = &b;
    ev.time_ns = (EPOCH + 1) * S;
    events_on_event(f.w, &ev, NULL, 0);
    events_on_event(f.w, &ev, "\"n\":1", 5);
    events_on_event(f.w, &ev, "", 0);
    CHECK_INT(expo_render(f.reg, EXPO_DETERMINISTIC, &out), 0);
    CHECK(strstr(out.data, "\nsipscope_events_errors_total 1\n") != NULL);
    expo_buf_fini(&out);
    CHECK_STR(finish(&f),
              "{\"type\":\"registration\",\"aor\":\"sip:a@x\",\"contact\":\"sip:a@10.0.0.1\","
              "\"change\":\"expired\",\"expires\":60,\"time\":\"2023-11-14T22:13:21.000Z\","
              "\"labels\":{}}\n"
              "{\"type\":\"registration\",\"aor\":\"sip:a@x\",\"contact\":\"sip:a@10.0.0.1\","
              "\"change\":\"expired\",\"expires\":60,\"time\":\"2023-11-14T22:13:21.000Z\","
              "\"labels\":{},\"n\":1}\n"
              "{\"type\":\"registration\",\"aor\":\"sip:a@x\",\"contact\":\"sip:a@10.0.0.1\","
              "\"change\":\"expired\",\"expires\":60,\"time\":\"2023-11-14T22:13:21.000Z\","
              "\"labels\":{}}\n");
}

/* The date is formatted once per day and reused: a line whose times cross midnight (and a year)
 * and a line back on the day before both get their own dates. */
TEST(times_in_lines_across_midnight_keep_their_own_dates)
{
    const uint64_t new_year = 1704067200ULL; /* 2024-01-01T00:00:00Z */
    struct fixture f;
    struct sip_dialog d;
    struct sip_binding b;
    struct track_event call = {.type = TRACK_CALL_END, .reason = SIP_END_BYE};
    struct track_event reg = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_ADDED};

    setup(&f, 0);
    memset(&d, 0, sizeof(d));
    put_text(&d, "c3", "sip:a@x", "sip:b@y");
    d.t_start = (new_year - 1) * S + 250000000ULL;
    d.t_answer = new_year * S + 750000000ULL;
    d.flags = SIP_DIALOG_F_OUTCOME;
    d.final_code = 200;
    call.dialog = &d;
    call.time_ns = (new_year + 3723) * S + 4000000ULL;
    put_binding(&b, "sip:a@x", "sip:a@h", 60);
    reg.binding = &b;
    reg.time_ns = new_year * S - 1;
    events_on_event(f.w, &call, "", 0);
    events_on_event(f.w, &reg, "", 0);
    CHECK_STR(finish(&f),
              "{\"type\":\"call\",\"call_id\":\"c3\",\"from\":\"sip:a@x\",\"to\":\"sip:b@y\","
              "\"start\":\"2023-12-31T23:59:59.250Z\",\"answer\":\"2024-01-01T00:00:00.750Z\","
              "\"end\":\"2024-01-01T01:02:03.004Z\",\"setup_delay\":1.5,\"duration\":3722.254,"
              "\"outcome\":200,\"end_reason\":\"bye\",\"labels\":{}}\n"
              "{\"type\":\"registration\",\"aor\":\"sip:a@x\",\"contact\":\"sip:a@h\","
              "\"change\":\"added\",\"expires\":60,\"time\":\"2023-12-31T23:59:59.999Z\","
              "\"labels\":{}}\n");
}

/* A registration line (alice's binding added) at second t. */
static void binding_line(struct fixture *f, uint64_t t)
{
    struct sip_binding b;
    struct track_event ev = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_ADDED};
    put_binding(&b, "sip:alice@x", "sip:alice@192.0.2.1", 600);
    ev.binding = &b;
    ev.time_ns = (EPOCH + t) * S;
    events_on_event(f->w, &ev, "", 0);
}

/* A step of the wall clock moves the times of the lines after it (a day on, so that the date
 * written once per day changes too), not the durations; a step back past the epoch writes the
 * epoch. */
TEST(a_clock_step_moves_the_times_of_later_lines_not_their_durations)
{
    struct fixture f;
    struct sip_dialog d;
    struct track_event call = {.type = TRACK_CALL_END, .reason = SIP_END_BYE};

    setup(&f, 0);
    binding_line(&f, 1);
    events_set_clock_step(f.w, 86400 * (int64_t)S + 250000000);
    binding_line(&f, 2);
    memset(&d, 0, sizeof(d));
    put_text(&d, "c4", "sip:a@x", "sip:b@y");
    d.t_start = (EPOCH + 10) * S;
    d.t_answer = (EPOCH + 12) * S;
    d.flags = SIP_DIALOG_F_OUTCOME;
    d.final_code = 200;
    call.dialog = &d;
    call.time_ns = (EPOCH + 20) * S;
    events_on_event(f.w, &call, "", 0);
    events_set_clock_step(f.w, -(int64_t)(EPOCH + 5) * (int64_t)S);
    binding_line(&f, 3);
    CHECK_STR(finish(&f),
              "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":"
              "\"sip:alice@192.0.2.1\",\"change\":\"added\",\"expires\":600,"
              "\"time\":\"2023-11-14T22:13:21.000Z\",\"labels\":{}}\n"
              "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":"
              "\"sip:alice@192.0.2.1\",\"change\":\"added\",\"expires\":600,"
              "\"time\":\"2023-11-15T22:13:22.250Z\",\"labels\":{}}\n"
              "{\"type\":\"call\",\"call_id\":\"c4\",\"from\":\"sip:a@x\",\"to\":\"sip:b@y\","
              "\"start\":\"2023-11-15T22:13:30.250Z\",\"answer\":\"2023-11-15T22:13:32.250Z\","
              "\"end\":\"2023-11-15T22:13:40.250Z\",\"setup_delay\":2,\"duration\":8,"
              "\"outcome\":200,\"end_reason\":\"bye\",\"labels\":{}}\n"
              "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":"
              "\"sip:alice@192.0.2.1\",\"change\":\"added\",\"expires\":600,"
              "\"time\":\"1970-01-01T00:00:00.000Z\",\"labels\":{}}\n");
}

static size_t file_text(const char *path, char *text, size_t cap)
{
    FILE *in = fopen(path, "r");
    size_t n = in ? fread(text, 1, cap - 1, in) : 0;
    text[n] = 0;
    if (in)
        fclose(in);
    return n;
}

TEST(a_reopen_after_a_rename_writes_on_in_a_new_file_the_old_one_complete)
{
    struct fixture f;
    char old_path[80], text[2048], err[256];

    setup(&f, 0);
    binding_line(&f, 1); /* waiting in the batch at the rename: it belongs to the old file */
    snprintf(old_path, sizeof(old_path), "%s.1", f.path);
    CHECK_INT(rename(f.path, old_path), 0);
    CHECK_INT(events_reopen(f.w, err, sizeof(err)), 0);
    binding_line(&f, 2);
    file_text(old_path, text, sizeof(text));
    CHECK(strstr(text, "22:13:21.000Z") != NULL);
    CHECK(strchr(text, '\n') == text + strlen(text) - 1); /* one line */
    CHECK(strstr(finish(&f), "22:13:22.000Z") != NULL);   /* the new file: the line after */
    unlink(old_path);
}

TEST(a_reopen_that_cannot_open_keeps_writing_the_old_file)
{
    struct fixture f;
    char dir[64], path[96], err[256];

    setup(&f, 0);
    events_close(f.w);
    unlink(f.path);
    snprintf(dir, sizeof(dir), "/tmp/test_events_dir_XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/events.json", dir);
    f.w = events_open(path, f.reg, f.ops, 0, false, err, sizeof(err));
    CHECK(f.w != NULL);
    binding_line(&f, 1);
    CHECK_INT(unlink(path), 0);
    CHECK_INT(rmdir(dir), 0); /* the path cannot be made again */
    CHECK_INT(events_reopen(f.w, err, sizeof(err)), -ENOENT);
    CHECK(strstr(err, "still writing to the old one") != NULL);
    binding_line(&f, 2);
    CHECK_INT(events_flush(f.w), 0); /* to the old, unlinked file: no error */
    events_close(f.w);
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

/* What sipscope logs between log_capture and log_captured: standard error goes to a
 * temporary file meanwhile. */
struct log_capture {
    char path[32];
    int fd, saved;
};

static void log_capture(struct log_capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/test_events_log_XXXXXX");
    c->fd = mkstemp(c->path);
    c->saved = dup(STDERR_FILENO);
    CHECK(c->fd >= 0 && c->saved >= 0);
    fflush(stderr);
    dup2(c->fd, STDERR_FILENO);
}

static void log_captured(struct log_capture *c, char *text, size_t cap)
{
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    file_text(c->path, text, cap);
    close(c->fd);
    unlink(c->path);
}

/* Writes that fail (the file may not grow: RLIMIT_FSIZE, as a full disk) lose their lines,
 * counted, and the episode is logged once with its reason; when writes succeed again that is
 * logged with the count. The start of a line that fitted is taken back: the file holds whole
 * lines only. */
TEST(lines_lost_to_failed_writes_are_counted_and_logged_once_per_episode)
{
    struct fixture f;
    struct rlimit old, small;
    struct expo_buf out;
    struct log_capture log;
    char text[4096], want[1024];
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    const char *nl;

    setup(&f, 0);
    binding_line(&f, 1); /* a registration line: 153 bytes */
    CHECK_INT(events_flush(f.w), 0);
    CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 250;
    log_capture(&log);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    binding_line(&f, 2); /* 97 bytes of it fit: taken back */
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK_INT(file_text(f.path, text, sizeof(text)), 153);
    binding_line(&f, 3);
    binding_line(&f, 4);
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
    binding_line(&f, 5);
    CHECK_INT(events_flush(f.w), 0);
    CHECK(events_lost(f.w) == 3);
    /* It flaps: failing again within the minute is counted, not logged again. */
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    binding_line(&f, 6);
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
    binding_line(&f, 7);
    CHECK_INT(events_flush(f.w), 0);
    CHECK(events_lost(f.w) == 4);
    log_captured(&log, text, sizeof(text));
    signal(SIGXFSZ, old_xfsz);
    snprintf(want, sizeof(want),
             "sipscope: error: events: cannot write the events file %s: File too large; its "
             "lines are lost until it can be written again (counted in "
             "sipscope_events_errors_total)\n"
             "sipscope: info: events: the events file %s is written again; 3 lines were lost\n",
             f.path, f.path);
    CHECK_STR(text, want);
    expo_buf_init(&out);
    CHECK_INT(expo_render(f.reg, EXPO_DETERMINISTIC, &out), 0);
    CHECK(strstr(out.data, "\nsipscope_events_errors_total 4\n") != NULL);
    CHECK(strstr(out.data, "\nsipscope_events_total{type=\"registration\"} 3\n") != NULL);
    expo_buf_fini(&out);
    /* Lines 1, 5 and 7, whole, one after the other. */
    file_text(f.path, text, sizeof(text));
    nl = strchr(text, '\n');
    CHECK(nl != NULL && nl - text == 152);
    CHECK(strlen(text) == 3 * 153);
    CHECK(text[305] == '\n' && text[458] == '\n');
    CHECK(strstr(text + 153, "\"time\":\"2023-11-14T22:13:25.000Z\"") == text + 153 + 106);
    CHECK(strstr(text + 306, "\"time\":\"2023-11-14T22:13:27.000Z\"") == text + 306 + 106);
    CHECK_INT(events_close(f.w), 0);
    f.w = NULL;
    finish(&f);
}

/* --events - with standard output redirected to a file by `>` (no O_APPEND): the start of a line
 * whose write failed cannot be taken back, since the next write would go on at the old offset
 * and leave NUL bytes in the gap. The cut line stays, alone on its line, as on a pipe. */
TEST(a_failed_write_to_standard_output_redirected_to_a_file_leaves_no_gap)
{
    struct fixture f = {0};
    struct rlimit old, small;
    char err[256], text[4096], path[] = "/tmp/test_events_stdout_XXXXXX";
    void (*old_xfsz)(int) = signal(SIGXFSZ, SIG_IGN);
    int fd = mkstemp(path), saved;
    struct log_capture log;

    CHECK(fd >= 0);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0 && dup2(fd, STDOUT_FILENO) == STDOUT_FILENO);
    close(fd);
    f.reg = metrics_new(1000);
    f.ops = oplabel_new(f.reg);
    f.w = events_open("-", f.reg, f.ops, 0, false, err, sizeof(err));
    CHECK(f.w != NULL);
    log_capture(&log);
    binding_line(&f, 1); /* 153 bytes */
    CHECK_INT(events_flush(f.w), 0);
    CHECK_INT(getrlimit(RLIMIT_FSIZE, &old), 0);
    small = old;
    small.rlim_cur = 250;
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &small), 0);
    binding_line(&f, 2); /* 97 bytes of it fit, and stay */
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK_INT(setrlimit(RLIMIT_FSIZE, &old), 0);
    binding_line(&f, 3);
    CHECK_INT(events_flush(f.w), 0);
    CHECK_INT(events_close(f.w), 0);
    log_captured(&log, text, sizeof(text));
    dup2(saved, STDOUT_FILENO);
    close(saved);
    signal(SIGXFSZ, old_xfsz);
    /* Line 1, the 97 bytes of line 2 and a line break, line 3: 153 + 97 + 1 + 153, no NUL. */
    CHECK_INT(file_text(path, text, sizeof(text)), 404);
    CHECK(memchr(text, 0, 404) == NULL);
    CHECK(text[152] == '\n' && text[250] == '\n' && text[403] == '\n');
    CHECK(strstr(text + 251, "\"time\":\"2023-11-14T22:13:23.000Z\"") == text + 251 + 106);
    unlink(path);
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

/* A line longer than the limit (rule fields of over a megabyte) is dropped whole, counted as
 * lost and logged once; the lines around it are written. */
TEST(a_line_past_the_limit_is_dropped_counted_and_logged_once)
{
    struct fixture f;
    struct sip_binding b;
    struct track_event ev = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_ADDED};
    size_t big = (1u << 20) + 1;
    char *fields = malloc(big + 1);
    struct log_capture log;
    char text[1024];

    CHECK(fields != NULL);
    memset(fields, 'x', big);
    memcpy(fields, "\"x\":\"", 5);
    fields[big - 1] = '"';
    setup(&f, 0);
    put_binding(&b, "sip:alice@x", "sip:alice@192.0.2.1", 600);
    ev.binding = &b;
    ev.time_ns = (EPOCH + 1) * S;
    log_capture(&log);
    events_on_event(f.w, &ev, "", 0);
    events_on_event(f.w, &ev, fields, big); /* dropped */
    events_on_event(f.w, &ev, fields, big); /* dropped, not logged again */
    events_on_event(f.w, &ev, "\"n\":2", 5);
    CHECK_INT(events_flush(f.w), 0);
    log_captured(&log, text, sizeof(text));
    CHECK(events_lost(f.w) == 2);
    free(fields);
    CHECK_STR(text, "sipscope: error: events: a line of the events file was dropped: longer than "
                    "1048576 bytes (the fields rules add?) or out of memory; such lines are "
                    "counted in sipscope_events_errors_total\n");
    CHECK_STR(finish(&f), "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":"
                          "\"sip:alice@192.0.2.1\",\"change\":\"added\",\"expires\":600,"
                          "\"time\":\"2023-11-14T22:13:21.000Z\",\"labels\":{}}\n"
                          "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":"
                          "\"sip:alice@192.0.2.1\",\"change\":\"added\",\"expires\":600,"
                          "\"time\":\"2023-11-14T22:13:21.000Z\",\"labels\":{},\"n\":2}\n");
}

/* Writes before into f's file, opens it to append (f's writer closed first), writes a
 * registration line and closes: whether the file then starts with want. */
static bool appended(struct fixture *f, const char *before, const char *want)
{
    char err[256], text[2048];
    FILE *out;

    events_close(f->w);
    out = fopen(f->path, "w");
    fputs(before, out);
    fclose(out);
    f->w = events_open(f->path, f->reg, f->ops, 0, true, err, sizeof(err));
    CHECK(f->w != NULL);
    binding_line(f, 1);
    events_close(f->w);
    f->w = NULL;
    file_text(f->path, text, sizeof(text));
    return strncmp(text, want, strlen(want)) == 0;
}

TEST(a_file_opened_to_append_keeps_its_lines_and_one_opened_to_truncate_does_not)
{
    struct fixture f;
    char err[256];

    setup(&f, 0);
    CHECK(appended(&f, "{\"type\":\"before\"}\n",
                   "{\"type\":\"before\"}\n{\"type\":\"registration\""));
    /* a run killed inside a line: the cut line stays alone on its line */
    CHECK(appended(&f, "{\"type\":\"cu", "{\"type\":\"cu\n{\"type\":\"registration\""));
    f.w = events_open(f.path, f.reg, f.ops, 0, false, err, sizeof(err));
    CHECK(f.w != NULL);
    CHECK_STR(finish(&f), "");
}

TEST(a_file_truncated_in_place_is_written_from_its_new_end_without_a_hole)
{
    struct fixture f;
    char text[2048];

    setup(&f, 0);
    binding_line(&f, 1);
    CHECK_INT(events_flush(f.w), 0);
    CHECK_INT(truncate(f.path, 0), 0); /* logrotate's copytruncate */
    binding_line(&f, 2);
    CHECK_INT(events_flush(f.w), 0);
    file_text(f.path, text, sizeof(text));
    CHECK(text[0] == '{'); /* not NUL bytes up to the old length */
    CHECK(strstr(text, "22:13:22.000Z") != NULL);
    CHECK(strstr(text, "22:13:21.000Z") == NULL);
    finish(&f);
}

static void blocked(int sig)
{
    static const char msg[] = "FAIL: the events writer blocked on the pipe\n";
    (void)sig;
    (void)!write(STDERR_FILENO, msg, sizeof(msg) - 1); /* a file or a terminal: no wait */
    _exit(1);
}

/* A fixture whose events file is a named pipe of one page (4,096 bytes) written live, and the
 * pipe's reader, which reads nothing until the test does (returned); a 10 s alarm guards the
 * test against a write that blocks. */
static int setup_pipe(struct fixture *f)
{
    char err[256];
    int rfd;

    setup(f, 0);
    events_close(f->w);
    unlink(f->path);
    CHECK_INT(mkfifo(f->path, 0600), 0);
    rfd = open(f->path, O_RDONLY | O_NONBLOCK);
    CHECK(rfd >= 0);
    CHECK_INT(fcntl(rfd, F_SETPIPE_SZ, 4096), 4096);
    alarm(10);
    f->w = events_open(f->path, f->reg, f->ops, 0, true, err, sizeof(err));
    CHECK(f->w != NULL);
    return rfd;
}

/* Live, the events file is a named pipe whose reader stops reading without closing it (a log
 * shipper that hangs): a flush gives up after a short wait instead of blocking the engine for
 * as long as the reader sleeps, the reader is left whole lines only, the lines that did not fit
 * are counted as lost, and lines get through again once it reads. A reopen (SIGHUP) while the
 * pipe has no reader returns instead of waiting for one. */
TEST(a_live_pipe_whose_reader_stops_loses_whole_lines_without_blocking)
{
    struct fixture f;
    struct log_capture log;
    struct expo_buf out;
    struct timespec t0, t1;
    char err[256], text[8192], want[1024];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    ssize_t n;
    int rfd;

    rfd = setup_pipe(&f);
    log_capture(&log);
    for (uint64_t t = 1; t <= 40; t++)
        binding_line(&f, t); /* 153 bytes each */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK_INT(events_flush(f.w), -EIO);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(t1.tv_sec - t0.tv_sec < 2);
    /* The pipe's 4,096 bytes take 26 whole lines (3,978 bytes); the 27th and after are lost. */
    n = read(rfd, text, sizeof(text));
    CHECK_INT(n, 26 * 153);
    CHECK(n > 0 && text[n - 1] == '\n');
    CHECK(events_lost(f.w) == 14);
    binding_line(&f, 41);
    binding_line(&f, 42);
    CHECK_INT(events_flush(f.w), 0);
    n = read(rfd, text, sizeof(text));
    CHECK_INT(n, 2 * 153);
    CHECK(strncmp(text, "{\"type\":\"registration\"", 22) == 0 && text[152] == '\n');
    close(rfd);
    CHECK_INT(events_reopen(f.w, err, sizeof(err)), -ENXIO);
    alarm(0);
    signal(SIGALRM, old_alrm);
    log_captured(&log, text, sizeof(text));
    snprintf(want, sizeof(want),
             "sipscope: error: events: cannot write the events file %s: the pipe is full, its "
             "reader does not read; its lines are lost until it can be written again (counted "
             "in sipscope_events_errors_total)\n"
             "sipscope: info: events: the events file %s is written again; 14 lines were lost\n",
             f.path, f.path);
    CHECK_STR(text, want);
    expo_buf_init(&out);
    CHECK_INT(expo_render(f.reg, EXPO_DETERMINISTIC, &out), 0);
    CHECK(strstr(out.data, "\nsipscope_events_errors_total 14\n") != NULL);
    CHECK(strstr(out.data, "\nsipscope_events_total{type=\"registration\"} 28\n") != NULL);
    expo_buf_fini(&out);
    CHECK_INT(events_close(f.w), 0);
    unlink(f.path); /* not finish(): reading a pipe would wait for a writer */
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

/* The same live with --events - when standard output is a pipe (a container's log driver that
 * hangs): whole lines, the rest lost and counted, no blocking; and standard output's own file
 * description is left blocking (it is shared with whoever else writes to it). */
TEST(a_live_standard_output_pipe_whose_reader_stops_does_not_block)
{
    struct metrics *reg = metrics_new(1000);
    struct oplabel_set *ops = oplabel_new(reg);
    struct fixture f = {.reg = reg, .ops = ops};
    struct log_capture log;
    char err[256], text[8192];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    int p[2], saved;
    ssize_t n;

    CHECK_INT(pipe(p), 0);
    CHECK_INT(fcntl(p[0], F_SETPIPE_SZ, 4096), 4096);
    CHECK_INT(fcntl(p[0], F_SETFL, O_NONBLOCK), 0); /* the test's reads */
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0 && dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);
    close(p[1]);
    alarm(10);
    f.w = events_open("-", reg, ops, 0, true, err, sizeof(err));
    log_capture(&log);
    for (uint64_t t = 1; t <= 40 && f.w; t++)
        binding_line(&f, t);
    n = f.w ? events_flush(f.w) : 0;
    alarm(0);
    log_captured(&log, text, sizeof(text));
    CHECK((fcntl(STDOUT_FILENO, F_GETFL) & O_NONBLOCK) == 0);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    signal(SIGALRM, old_alrm);
    CHECK(f.w != NULL);
    CHECK_INT(n, -EIO);
    CHECK(strstr(text, "cannot write the events file (standard output): the pipe is full") ==
          text + strlen("sipscope: error: events: "));
    n = read(p[0], text, sizeof(text));
    CHECK_INT(n, 26 * 153);
    CHECK(f.w && events_lost(f.w) == 14);
    CHECK_INT(events_close(f.w), 0);
    close(p[0]);
    oplabel_free(ops);
    metrics_free(reg);
}

/* The same with standard output a stream socket (journald's, StandardOutput=journal; a
 * socketpair) whose reader stops: a socket cannot be opened again through /proc, and was written
 * blocking, so the flush waited for as long as the reader slept. Now whole lines, the rest lost
 * and counted, no blocking. The socket takes 52 lines: SO_SNDBUF 4096 is 8,192 bytes of send
 * buffer (the kernel doubles it); the writer sends runs of 26 lines (3,978 bytes, at most
 * PIPE_BUF), each one buffer of 3,978 bytes plus the kernel's overhead (a few hundred bytes): a
 * send is refused once what is buffered reaches 8,192, which is after the second run. */
TEST(a_live_standard_output_socket_whose_reader_stops_does_not_block)
{
    struct metrics *reg = metrics_new(1000);
    struct oplabel_set *ops = oplabel_new(reg);
    struct fixture f = {.reg = reg, .ops = ops};
    struct log_capture log;
    struct expo_buf out;
    char err[256], text[65536], want[128];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    int p[2], saved, size = 4096, whole = 0;
    ssize_t n;

    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, p), 0);
    CHECK_INT(setsockopt(p[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)), 0);
    CHECK_INT(fcntl(p[0], F_SETFL, O_NONBLOCK), 0); /* the test's reads */
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    CHECK(saved >= 0 && dup2(p[1], STDOUT_FILENO) == STDOUT_FILENO);
    close(p[1]);
    alarm(10);
    f.w = events_open("-", reg, ops, 0, true, err, sizeof(err));
    log_capture(&log);
    for (uint64_t t = 1; t <= 400 && f.w; t++) /* 61,200 bytes: more than the socket holds */
        binding_line(&f, t % 40 + 1);          /* 153 bytes each */
    n = f.w ? events_flush(f.w) : 0;
    alarm(0);
    log_captured(&log, text, sizeof(text));
    CHECK((fcntl(STDOUT_FILENO, F_GETFL) & O_NONBLOCK) == 0);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    signal(SIGALRM, old_alrm);
    CHECK(f.w != NULL);
    CHECK_INT(n, -EIO);
    CHECK(strstr(text, "cannot write the events file (standard output): the pipe is full") ==
          text + strlen("sipscope: error: events: "));
    n = read(p[0], text, sizeof(text));
    CHECK_INT(n, 52 * 153);
    whole = (int)(n / 153);
    for (int i = 0; i < whole; i++)
        CHECK(strncmp(text + i * 153, "{\"type\":\"registration\"", 22) == 0 &&
              text[i * 153 + 152] == '\n');
    CHECK_INT(events_close(f.w), 0);
    expo_buf_init(&out);
    CHECK_INT(expo_render(reg, EXPO_DETERMINISTIC, &out), 0);
    snprintf(want, sizeof(want), "\nsipscope_events_total{type=\"registration\"} %d\n", whole);
    CHECK(strstr(out.data, want) != NULL);
    snprintf(want, sizeof(want), "\nsipscope_events_errors_total %d\n", 400 - whole);
    CHECK(strstr(out.data, want) != NULL);
    expo_buf_fini(&out);
    close(p[0]);
    oplabel_free(ops);
    metrics_free(reg);
}

/* A registration line at second t carrying a rule field "x" of k bytes: 160 + k bytes. */
static void long_binding_line(struct fixture *f, uint64_t t, size_t k, char *line)
{
    struct sip_binding b;
    struct track_event ev = {.type = TRACK_REG_BINDING, .reason = SIP_BINDING_ADDED};
    static char fields[8192];
    int n = snprintf(fields, sizeof(fields), "\"x\":\"%*s\"", (int)k, "");
    memset(fields + 5, 'a', k);
    put_binding(&b, "sip:alice@x", "sip:alice@192.0.2.1", 600);
    ev.binding = &b;
    ev.time_ns = (EPOCH + t) * S;
    events_on_event(f->w, &ev, fields, (size_t)n);
    sprintf(
        line,
        "{\"type\":\"registration\",\"aor\":\"sip:alice@x\",\"contact\":\"sip:alice@192.0.2.1\","
        "\"change\":\"added\",\"expires\":600,\"time\":\"2023-11-14T22:13:2%u.000Z\","
        "\"labels\":{},%s}\n",
        (unsigned)t, fields);
}

/* A line longer than PIPE_BUF goes to a full pipe in parts: a one-page pipe takes the first
 * 4,096 bytes of a line of 6,000. Its rest was dropped, and the next flush wrote a line break
 * and the next line: the reader read the start of a JSON object, then another line. The rest
 * now goes first, whole, before any other line; the line after the started one in the same
 * batch is lost and counted. */
TEST(a_line_a_full_pipe_took_part_of_is_finished_before_the_next_line)
{
    struct fixture f;
    struct log_capture log;
    struct expo_buf out;
    static char text[16384], got[16384], want[16384], first[8192], next[256];
    char ignored[8192];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    size_t len = 0;
    ssize_t n;
    int rfd;

    rfd = setup_pipe(&f);
    log_capture(&log);
    long_binding_line(&f, 1, 5840, first); /* 6,000 bytes */
    CHECK_INT((int)strlen(first), 6000);
    long_binding_line(&f, 2, 10, ignored); /* lost: the pipe has the start of the first */
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK(events_lost(f.w) == 1);
    n = read(rfd, got, sizeof(got));
    CHECK_INT(n, 4096);
    len = n > 0 ? (size_t)n : 0;
    long_binding_line(&f, 3, 10, next); /* 170 bytes */
    CHECK_INT(events_flush(f.w), 0);
    n = read(rfd, got + len, sizeof(got) - len);
    CHECK_INT(n, 6000 - 4096 + 170);
    len += n > 0 ? (size_t)n : 0;
    got[len] = 0;
    snprintf(want, sizeof(want), "%s%s", first, next);
    CHECK_STR(got, want);
    CHECK(events_lost(f.w) == 1);
    alarm(0);
    signal(SIGALRM, old_alrm);
    log_captured(&log, text, sizeof(text));
    snprintf(want, sizeof(want),
             "sipscope: error: events: cannot write the events file %s: the pipe is full, its "
             "reader does not read; its lines are lost until it can be written again (counted "
             "in sipscope_events_errors_total)\n"
             "sipscope: info: events: the events file %s is written again; 1 lines were lost\n",
             f.path, f.path);
    CHECK_STR(text, want);
    expo_buf_init(&out);
    CHECK_INT(expo_render(f.reg, EXPO_DETERMINISTIC, &out), 0);
    CHECK(strstr(out.data, "\nsipscope_events_errors_total 1\n") != NULL);
    CHECK(strstr(out.data, "\nsipscope_events_total{type=\"registration\"} 2\n") != NULL);
    expo_buf_fini(&out);
    CHECK_INT(events_close(f.w), 0);
    close(rfd);
    unlink(f.path);
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

/* The same, with a flush in between while the reader still reads nothing: that flush writes
 * no byte, and the started line's rest must stay first (only the new line is lost). It was
 * counted lost with the others there, with nothing to end the half line in the pipe: the
 * reader then got the first 4,096 bytes of one line joined to the next. */
TEST(a_started_line_stays_first_through_a_flush_that_writes_nothing)
{
    struct fixture f;
    static char got[16384], want[16384], first[8192], next[256];
    char ignored[8192];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    size_t len = 0;
    ssize_t n;
    int rfd;

    rfd = setup_pipe(&f);
    long_binding_line(&f, 1, 5840, first); /* 6,000 bytes: 4,096 of them taken */
    CHECK_INT(events_flush(f.w), 0);
    long_binding_line(&f, 2, 10, ignored); /* the pipe still full: lost */
    CHECK_INT(events_flush(f.w), -EIO);
    CHECK(events_lost(f.w) == 1);
    n = read(rfd, got, sizeof(got));
    CHECK_INT(n, 4096);
    len = n > 0 ? (size_t)n : 0;
    long_binding_line(&f, 3, 10, next); /* 170 bytes */
    CHECK_INT(events_flush(f.w), 0);
    n = read(rfd, got + len, sizeof(got) - len);
    CHECK_INT(n, 6000 - 4096 + 170);
    len += n > 0 ? (size_t)n : 0;
    got[len] = 0;
    snprintf(want, sizeof(want), "%s%s", first, next);
    CHECK_STR(got, want);
    CHECK(events_lost(f.w) == 1);
    alarm(0);
    signal(SIGALRM, old_alrm);
    CHECK_INT(events_close(f.w), 0);
    close(rfd);
    unlink(f.path);
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

/* A started line whose reader never takes the rest is lost at the close, and counted: it is
 * not a line written. */
TEST(a_started_line_the_reader_never_finishes_is_lost_at_the_close)
{
    struct fixture f;
    struct log_capture log;
    struct expo_buf out;
    static char got[16384], first[8192];
    char text[4096];
    void (*old_alrm)(int) = signal(SIGALRM, blocked);
    int rfd;

    rfd = setup_pipe(&f);
    log_capture(&log);
    long_binding_line(&f, 1, 5840, first);
    CHECK_INT(events_flush(f.w), 0); /* started, not lost yet */
    CHECK(events_lost(f.w) == 0);
    CHECK_INT(events_close(f.w), -EIO);
    alarm(0);
    signal(SIGALRM, old_alrm);
    log_captured(&log, text, sizeof(text));
    CHECK(strstr(text, "the pipe is full, its reader does not read") != NULL);
    CHECK_INT((int)read(rfd, got, sizeof(got)), 4096);
    expo_buf_init(&out);
    CHECK_INT(expo_render(f.reg, EXPO_DETERMINISTIC, &out), 0);
    CHECK(strstr(out.data, "\nsipscope_events_errors_total 1\n") != NULL);
    CHECK(strstr(out.data, "\nsipscope_events_total{type=\"registration\"} 0\n") != NULL);
    expo_buf_fini(&out);
    close(rfd);
    unlink(f.path);
    oplabel_free(f.ops);
    metrics_free(f.reg);
}

TEST_MAIN()
