/* events: the --events file, one JSON object per line: a CDR for each finished call and a line
 * for each registration binding change, with the operator labels and the fields rules added.
 * Lines are built in one reused buffer and written in batches: when a batch fills and at every
 * events_flush. sipscope_events_total{type} counts the lines written; a line that could not be
 * written (a write error, or longer than 1 MiB) is counted in sipscope_events_errors_total,
 * never fatal. It does not decide anything about calls: it formats what the trackers report.
 *
 * Call line (TRACK_CALL_END), keys in this order:
 *   {"type":"call","call_id":..,"from":..,"to":..,"start":T,"answer":T|null,"end":T,
 *    "setup_delay":s|null,"duration":s|null,"outcome":code|"timeout"|null,"end_reason":..,
 *    "labels":{name:value...}, signalling fields..., rule fields...}
 * The signalling fields are the call_cdr fields the writer was opened with, in call_cdr.h's
 * order ("src_ip":"192.0.2.1","src_port":5060,...,"q850":16), each left out when the call
 * never had it.
 * call_id, from and to are the tracker's copies: cut to 128, 60 and 60 bytes (aor and contact to
 * 96), never inside a UTF-8 character.
 * T is RFC 3339 UTC with milliseconds ("2023-11-14T22:13:20.500Z"); s are seconds. The line is
 * written when the call ends, with the outcome known then: a call ended before its INVITE got a
 * final response (a BYE or CANCEL of an early call, max_age, eviction) has "outcome":null even
 * if a final arrives later; sip_session_outcomes_total still counts that late outcome.
 * Registration line (TRACK_REG_BINDING):
 *   {"type":"registration","aor":..,"contact":..,"change":"added"|"refreshed"|"removed"|
 *    "expired"|"evicted","expires":n,"time":T,"labels":{...}, rule fields...} */
#ifndef SIPSCOPE_EVENTS_H
#define SIPSCOPE_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "metrics.h"
#include "oplabel.h"
#include "track_event.h"

struct events;

/* Opens path for writing, "-" for standard output: appending to what it holds with append,
 * truncated first without. With append (live), a pipe (named, or standard output through a
 * file description of its own) or a socket (standard output to journald's stream, written with
 * send(MSG_DONTWAIT)) is written without blocking: a flush waits at most 100 ms for its reader,
 * then loses (and counts) the lines that do not fit, writing only whole lines. reg and ops must
 * outlive the writer. fields: the call_cdr fields (a mask of 1u << enum call_cdr_field) call lines
 * carry; the calls must then be tracked with their record (SIP_DIALOG_KEEP_CDR). Returns NULL with
 * a reason in err[errlen]. */
struct events *events_open(const char *path, struct metrics *reg, const struct oplabel_set *ops,
                           uint32_t fields, bool append, char *err, size_t errlen);

/* Writes the line for ev when it is a TRACK_CALL_END or a TRACK_REG_BINDING (other events are
 * ignored). fields[fields_len] are extra JSON members from rules ("\"k\":v,...", no braces), or
 * empty; NULL when rules added fields that were lost: the line is written without them and
 * counted in sipscope_events_errors_total. */
void events_on_event(struct events *w, const struct track_event *ev, const char *fields,
                     size_t fields_len);

/* Writes the lines waiting in the batch. Returns 0, or -EIO when some could not be written
 * (each counted in sipscope_events_errors_total; the start of one that a regular file took
 * only part of is truncated away, so that the file holds whole lines; the rest of one that a
 * pipe or socket written live took part of goes before any other line, at this flush or the
 * next ones: it is then written, or lost at events_close or events_reopen, and neither until
 * then). The first failure after
 * writes that succeeded is logged with its reason, and the first success after failures with the
 * lines lost (a new episode within a minute of the last one logged is not: a file that flaps). */
int events_flush(struct events *w);

/* Lines lost so far: to failed writes (a line started in a pipe counts once it is given up),
 * dropped as longer than the limit (1 MiB) or for want of
 * memory, and a failed close counted as one (lines written without their rules' fields are
 * not). */
uint64_t events_lost(const struct events *w);

/* After a rotation (SIGHUP): writes the waiting lines to the file as it is, then opens the path
 * again, appending (logrotate's "create" renames the file first; the new one is made here when
 * it does not exist). Standard output is left alone. The file is opened with O_APPEND from the
 * start too, so that a rotation by truncation in place (copytruncate) needs no reopen. A named
 * pipe without a reader is not waited for (-ENXIO). Returns 0, or -errno with a reason in
 * err[errlen]: the old file is then still written. */
int events_reopen(struct events *w, char *err, size_t errlen);

/* Live, to a regular file: opens the path again when the file was renamed or removed without a
 * SIGHUP (a logrotate "create" without its postrotate, an operator's rm), before the waiting
 * lines are written. Removed (no name left), at once: nothing would ever read what is written to
 * it. Renamed, once the path has named another file or none for EVENTS_MOVED_GRACE_MS: a
 * rotation that does signal makes the new file, with its mode and owner, and signals within
 * that time; until then the lines go to the renamed file, where they are not lost. Costs a stat
 * a call: the engine calls it at each publish (at least once a second). Returns 1 when it opened
 * the path again; 0 otherwise, also when that failed (logged once, tried again next time). */
#define EVENTS_MOVED_GRACE_MS 2000
int events_follow_path(struct events *w);

/* Adds ns to every time the lines carry from now on (not to durations): the wall clock's step
 * since the times of the events began (capture_bpf_clock_step), so that call and registration
 * lines keep to the corrected clock. 0 at first. */
void events_set_clock_step(struct events *w, int64_t ns);

/* An offline read's stop test (engine_read_file_until): a write that waits on its reader (a
 * pipe, socket or terminal that stopped reading, written blocking offline) and is interrupted by
 * a signal gives up when stop(ctx) is true, its lines lost and counted; else it goes on
 * waiting. Without it (NULL, the default) an interrupted write is simply resumed. ctx must live
 * until events_close. */
void events_set_stop(struct events *w, bool (*stop)(void *ctx), void *ctx);

/* Flushes and closes; frees w. Returns 0, or -EIO when lines could not be written, or the
 * -errno of a close that failed (logged, and counted as one line lost: a write the kernel had
 * deferred, NFS). NULL is accepted. */
int events_close(struct events *w);

/* Appends s[len] to buf as a JSON string (quotes included): '"', '\\' and control characters
 * escaped, invalid UTF-8 replaced by U+FFFD. Writes at most cap bytes; returns the length the
 * whole string needs (a larger return than cap means it was cut). */
size_t events_json_string(char *buf, size_t cap, const char *s, size_t len);

/* How many bytes at the start of s[len] a JSON string takes as they are (printable ASCII but
 * '"' and '\\'); len when all of them. */
size_t events_json_plain(const char *s, size_t len);

/* Formats ns since the epoch as RFC 3339 UTC with milliseconds into out[32]. */
void events_time(uint64_t ns, char out[32]);

#endif
