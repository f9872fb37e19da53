/* lua_bridge: the operators' Lua rules (DESIGN.md §6). One LuaJIT state per engine runs the rule
 * files of a directory: their hooks see tracker events through short-lived handles, their
 * sip.label{} declarations add dimensions to the built-in families (values computed here, interned
 * by oplabel), and their sip.counter/gauge/histogram families live in the engine's registry.
 * Every entry into Lua is protected, timed against a budget and memory-capped; a failing rule is
 * counted and, past a breaker, disabled until the next reload. This is the only C file that
 * includes LuaJIT headers; the Lua half of the API is lua/sipscope/ (compiled into the
 * binary). It does not parse, track or write events: the engine hands it what to run.
 *
 * Threads: everything here runs on the engine thread, except the budget watchdog, a helper
 * thread that never touches the Lua state: when one rule call has used its budget of CPU time it
 * signals the engine thread, whose handler arms a Lua hook that stops the call (after one to two
 * budgets of CPU time: the watchdog looks every half budget). */
#ifndef SIPSCOPE_LUA_BRIDGE_H
#define SIPSCOPE_LUA_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "metrics.h"
#include "oplabel.h"
#include "track_event.h"

struct packet;
struct sip_msg;

#define LUA_BRIDGE_DEFAULT_MEMORY (64ULL << 20) /* --lua-memory */
#define LUA_BRIDGE_DEFAULT_BUDGET_NS 5000000ULL /* --rule-budget: 5 ms per call */
/* --rule-budget's bounds. Below 100 us the watchdog's looks (every half budget) cost more than
 * the rules. The watchdog's sums would wrap only near 584 years: the upper bound is the stall.
 * A call that loops holds the engine thread, which also drains the capture ring (what arrives
 * meanwhile waits there, or is lost when it fills) and runs reloads, for one to two budgets,
 * three times before the breaker disables the rule. At 5 s a reload that waits behind one
 * such call and is itself stopped once still answers within the 30 s an HTTP reload waits
 * (service.c), and 5 s is what a profile under valgrind needs, where Lua runs some fifty
 * times slower (tests/bench/bench.py); more is a typo (5m for 5ms). The harness may go past
 * it (slow specs). */
#define LUA_BRIDGE_MIN_BUDGET_NS 100000ULL
#define LUA_BRIDGE_MAX_BUDGET_NS 5000000000ULL
#define LUA_BRIDGE_DEFAULT_MAX_SERIES 1000      /* per rule family (METRICS.md) */
#define LUA_BRIDGE_DEFAULT_BREAKER_ERRORS 100   /* consecutive failed calls */
#define LUA_BRIDGE_DEFAULT_BREAKER_TIMEOUTS 3   /* calls stopped by the budget, in total */
#define LUA_BRIDGE_TICK_NS 1000000000ULL        /* on_tick period, on the engine clock */

struct lua_bridge_config {
    /* Rule files: every "*.lua" of rules_dir except "*_spec.lua", in bytewise name order; or,
     * when rules_dir is NULL, the n_rule_files paths of rule_files in that order (harness). */
    const char *rules_dir;
    const char *const *rule_files;
    size_t n_rule_files;
    uint64_t memory_limit;     /* bytes of Lua heap; allocations past it fail */
    uint64_t budget_ns;        /* longest one call into a rule may run */
    uint32_t max_series;       /* series cap of each rule family without its own max_series */
    uint32_t breaker_errors;   /* disable a rule after this many failed calls in a row; 0 never */
    uint32_t breaker_timeouts; /* disable a rule after this many budget stops; 0 never */
    bool event_fields;         /* an events file is written: collect d.cdr / r.event fields */
    uint32_t engine_fields;    /* the call_cdr fields (mask) the engine writes on call lines:
                                * rules may not set fields of those names */
    bool jit_log;              /* record trace events for lua_bridge_jit_log (tests, tuning) */
};

/* Fills cfg with the defaults above and no rules. */
void lua_bridge_config_defaults(struct lua_bridge_config *cfg);

struct lua_bridge;

/* Creates the Lua state and loads the rules: their top-level code runs, labels are declared in
 * ops (so call this before the built-in families are declared), and rule metric families are
 * validated but not yet created (see lua_bridge_commit). Returns NULL with a reason naming the
 * rule file in err[errlen] when a file cannot be read or loaded, a declaration is invalid, or
 * memory runs out. reg and ops must outlive the bridge. The calling thread is the one the budget
 * watches and signals: every later call into the bridge must come from it. */
struct lua_bridge *lua_bridge_new(const struct lua_bridge_config *cfg, struct metrics *reg,
                                  struct oplabel_set *ops, char *err, size_t errlen);

/* Creates the rule families in the registry, once every built-in family exists, so that a rule
 * metric that collides with one (same name, or one of its _bucket/_sum/_count samples) is
 * refused with a reason. Also declares the sipscope_rule* families. Returns 0 or a negative
 * errno with err[errlen] set. Call it once, after lua_bridge_new. */
int lua_bridge_commit(struct lua_bridge *b, char *err, size_t errlen);

/* Stops the watchdog and closes the state. NULL is accepted. */
void lua_bridge_free(struct lua_bridge *b);

/* routes[type] is nonzero when some enabled rule hooks track event type (enum
 * track_event_type); routes[TRACK_EVENT_COUNT] when some rule has on_tick. The array lives as
 * long as the bridge and changes in place on reload and when a breaker disables a rule, so the
 * engine can test it per event without calling in. */
const uint8_t *lua_bridge_routes(const struct lua_bridge *b);

/* Runs the declared labels' from(m) for an out-of-dialog request that creates a call, a
 * REGISTER attempt or a transaction; writes each label's value id into labels[] (entries of
 * labels whose rule failed or returned nil stay 0, the default). A track_sink label function. */
void lua_bridge_label(struct lua_bridge *b, const struct sip_msg *msg, const struct packet *pkt,
                      uint16_t *labels);

/* Runs the hooks for one track event (only call it when routes[ev->type] is set):
 * TRACK_MESSAGE: on_message, then on_request or on_response; TRACK_CALL_START:
 * on_dialog_start; TRACK_CALL_ANSWER: on_dialog_answer; TRACK_CALL_END: on_dialog_end;
 * TRACK_TXN_END: on_transaction_end; TRACK_REG_BINDING: on_register. */
void lua_bridge_event(struct lua_bridge *b, const struct track_event *ev);

/* The JSON members ("\"k\":v,\"k2\":v2", no braces) rules added to the CDR (d.cdr) or the
 * registration event (r.event) of the TRACK_CALL_END or TRACK_REG_BINDING event last passed to
 * lua_bridge_event; "" when none; NULL (*len 0) when rules added some but they were lost, out of
 * memory while listing or encoding them. *len is set. Valid until the next call into the
 * bridge. */
const char *lua_bridge_event_fields(struct lua_bridge *b, size_t *len);

/* Starts loading which call owns d's rules slot, for an event of d a message or two ahead: the
 * hooks' d.vars and d.cdr look it up first. */
void lua_bridge_prefetch_call(const struct lua_bridge *b, const struct sip_dialog *d);

/* Advances the rule clock: runs on_tick(now) once whenever now crosses into a new
 * LUA_BRIDGE_TICK_NS period (once, not once per period skipped). */
void lua_bridge_clock(struct lua_bridge *b, uint64_t now_ns);

/* Loads the rules again into a fresh state; swaps it in only when every file loads, every
 * declaration is valid and the labels are exactly the running ones (name, default, max_values,
 * order). Rule families with the same schema are the same families, so their values go on.
 * Returns 0 with a summary in err[errlen] ("3 rule files loaded"); -EINVAL when the new rules
 * fail (the old ones keep running), -EBUSY when they change the labels (refused: that needs a
 * restart); err[errlen] then says why. Failures are logged. Counted in
 * sipscope_rules_reloads_total{result="success"|"failure"|"refused"}. */
int lua_bridge_reload(struct lua_bridge *b, char *err, size_t errlen);

/* Updates sipscope_lua_memory_bytes. */
void lua_bridge_publish(struct lua_bridge *b);

/* Prints one line per rule (name, hooks, labels, metrics) to out. Returns the number of rules. */
int lua_bridge_describe(struct lua_bridge *b, FILE *out);

/* With cfg.jit_log: what the JIT compiler did, one line per trace event in rule files, oldest
 * first (the last 256): "jit on" first, then "stop FILE:LINE", or "abort FILE:LINE REASON".
 * Copies at most len - 1 bytes and a NUL into buf; returns the full length. */
size_t lua_bridge_jit_log(struct lua_bridge *b, char *buf, size_t len);

/* Bytes the Lua heap uses now. */
uint64_t lua_bridge_memory(const struct lua_bridge *b);

/* How many times the engine has entered Lua (events, labels, ticks, loads): what the routes
 * keep out of Lua shows as entries not made (tests). */
uint64_t lua_bridge_entries(const struct lua_bridge *b);

/* "LuaJIT 2.1.0-beta3": the version linked in, for sipscope_build_info. Static string. */
const char *lua_bridge_luajit_version(void);

/* Test mode (sipscope --lua-script FILE ARGS...): runs a trusted Lua script with the standard
 * libraries, ffi and jit, in a separate state of this binary. arg[0] is the script, arg[1..]
 * argv[0..argc). package.path gets lua_dir's modules and Debian's Lua 5.1 directories so that
 * busted runs; sipscope's own modules are also preloaded from the binary. Returns the process
 * exit status: 0 when the script ran to its end, 1 on an error (printed to stderr). */
int lua_bridge_run_script(const char *path, int argc, char **argv, const char *lua_dir);

#endif
