/* lua_bridge: the Lua states, rule loading, protected entries, the budget watchdog and the C side
 * of the FFI mailbox that handles read. The Lua half is lua/sipscope/core.lua. */
#include "lua_bridge.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <luajit.h>

#include "call_cdr.h"
#include "call_fields.h"
#include "cidr.h"
#include "classify.h"
#include "decode.h"
#include "events.h"
#include "expo.h"
#include "log.h"
#include "lua_embedded.h"
#include "lua_heap.h"
#include "sip_dialog.h"
#include "sip_parse.h"
#include "sip_reg.h"
#include "sip_txn.h"
#include "window.h"

#ifndef SIPSCOPE_CJSON_PATH
#define SIPSCOPE_CJSON_PATH "/usr/lib/x86_64-linux-gnu/lua/5.1/cjson.so"
#endif
#ifndef SIPSCOPE_VERSION
#define SIPSCOPE_VERSION "0.0.0"
#endif

#define MOD "lua"
#define MAX_RULES 256
#define MAX_RULE_FILE (4u << 20) /* a rule file is code, not data */
#define MIN_MEMORY (1u << 20)
#define MAX_HELPERS 256 /* C helper objects (CIDR sets, classifiers, windows) per state */

/* lb_box.l4 of a message that came in a WebSocket frame over TCP (ws_frame.h): no IP protocol
 * has this number. m.transport says "ws" (handles.lua). */
#define LB_L4_WS 256

/* The mailbox: C fills it before each entry, Lua reads it through a pre-cast FFI pointer. The
 * layout is mirrored by the ffi.cdef in lua/sipscope/core.lua, which checks the size at start. */
struct lb_slice {
    const char *p;
    size_t len;
};

/* A call event field read back by api_call_field_get: a string's bytes, a number, a boolean. */
struct lb_field {
    const char *p;
    size_t len;
    double num;
    int32_t boolean;
};

struct lb_box {
    uint32_t seq;      /* bumped at each entry and before each rule call (watchdog) */
    uint32_t in_lua;   /* 1 while the engine thread runs Lua */
    uint32_t in_rule;  /* 1 while rule code runs: the memory cap without the reserve */
    uint32_t mem_fail; /* the allocator refused since the flag was last cleared */
    uint32_t stopped;  /* 1: the rule call just returned was stopped by its budget (abort_hook) */
    double gen;        /* handles made in this dispatch carry it; 0 outside dispatches */
    int32_t type, flags, code, reason, method, status;
    uint64_t time; /* ns since the epoch: Lua turns it into seconds when a rule reads it */
    double delay;
    const uint16_t *labels; /* the event's operator label ids */
    uint16_t *labels_out;   /* label dispatch: where from() results go */
    const void *msg, *pkt;
    int32_t cseq_method;
    int32_t l4; /* the transport: IPPROTO_UDP, IPPROTO_TCP, or LB_L4_WS; 0 without a packet */
    int32_t sport, dport;
    uint32_t cseq;
    int32_t ipv;         /* the packet's IP version */
    uint32_t src4, dst4; /* IPv4 addresses as read from the packet (network order) */
    const void *dialog;
    uint64_t d_start, d_answer, d_end, d_ringing; /* ns, 0 when not yet */
    int32_t d_gen, d_state, d_end_reason, d_final_code, d_has_outcome;
    int32_t d_slot;     /* the call's slot (lb_slots), 0 for none, -1 until looked up */
    int32_t d_ended_by; /* who sent the BYE that ended it: 1 the caller, 2 the callee, 0 none */
    const void *txn;
    int32_t t_method, t_code;
    const void *binding;
    int32_t b_change;
    uint32_t b_expires;
};

/* One field of a field copier (sip.field_copier), built by Lua at load and read by
 * api_call_fields_copy; mirrored in core.lua. */
struct lb_copy {
    const char *name; /* the event field's name, checked by Lua */
    size_t name_len;
    int32_t kind;       /* enum lb_copy_kind */
    int32_t arg;        /* ADDR, PORT: 0 the source, 1 the destination; STR: an enum lb_msg_field;
                         * HEADER: an enum sip_hdr (SIP_HDR_OTHER: by name) */
    const char *header; /* HEADER: its name */
    size_t header_len;
    int64_t max; /* HEADER: bytes kept at most, without splitting a UTF-8 character; -1: all */
};

enum lb_copy_kind { LB_COPY_ADDR, LB_COPY_PORT, LB_COPY_TRANSPORT, LB_COPY_STR, LB_COPY_HEADER };

/* Functions Lua calls through FFI (mirrored in core.lua). None of them can raise a Lua error. */
struct lb_api {
    void *bridge;
    int (*msg_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*msg_header)(const struct lb_box *box, const char *name, size_t len, int nth,
                      struct lb_slice *out);
    int (*msg_addr)(const struct lb_box *box, int dst, char *buf, size_t len);
    int (*dialog_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*binding_str)(const struct lb_box *box, int field, struct lb_slice *out);
    int (*label_text)(void *bridge, int idx, int id, struct lb_slice *out);
    int (*label_value)(void *bridge, int idx, const char *s, size_t len);
    void *(*series)(void *bridge, void *fam, const char **vals, const size_t *lens, int n,
                    int *cacheable);
    /* Rule metric updates: 0, or -EINVAL (v not finite, or a counter's v < 0) or -ERANGE (the
     * value, or a histogram's sum, would not be finite), the series then left as it was. */
    int (*counter_add)(void *series, double v);
    int (*gauge_set)(void *series, double v);
    int (*gauge_add)(void *series, double v);
    int (*observe)(void *series, double v);
    double (*now)(void);
    /* helpers (core/cidr.h, core/classify.h, core/window.h) */
    int32_t (*cidr_lookup_text)(const void *set, const char *p, size_t len);
    int32_t (*cidr_lookup_msg)(const void *set, const struct lb_box *box, int dst);
    int32_t (*classify_lookup)(const void *c, const char *p, size_t len);
    uint64_t (*window_add)(void *w, const char *key, size_t len, uint64_t now_ns, uint32_t n);
    uint64_t (*window_count)(const void *w, const char *key, size_t len, uint64_t now_ns);
    int32_t (*dialog_slot)(void *bridge, const struct lb_box *box, int create);
    void (*dialog_slot_free)(void *bridge, int32_t slot);
    int32_t (*header_id)(const char *name, size_t len);
    int (*msg_header_id)(const struct lb_box *box, int32_t id, int nth, struct lb_slice *out);
    uint64_t (*window_msg)(void *bridge, void *w, int dst, int with, int64_t n);
    int32_t (*classify_header)(void *c, const struct lb_box *box, int32_t id,
                               const char *name, size_t len);
    /* calls' event fields (d.cdr), by slot (core/call_fields.h) */
    int (*call_field_set)(void *bridge, int32_t slot, const char *name, size_t len, int type,
                          const char *str, size_t str_len, double num);
    int (*call_field_get)(void *bridge, int32_t slot, const char *name, size_t len,
                          struct lb_field *out);
    void (*call_fields_take)(void *bridge, int32_t slot);
    int (*msg_ruri_param)(const struct lb_box *box, const char *name, size_t len,
                          struct lb_slice *out);
    int (*call_fields_copy)(void *bridge, int32_t slot, const struct lb_copy *fields, int32_t n);
};

enum lb_msg_field {
    F_CALL_ID = 0,
    F_FROM_TAG,
    F_TO_TAG,
    F_RURI,
    F_REASON,
    F_METHOD,
    F_CSEQ_METHOD,
    F_FROM_URI,
    F_TO_URI,
    F_BODY,
    F_RAW,
    F_VIA_BRANCH,
};

/* Message routes: requests by method (enum sip_method), responses by status 100..699, then
 * one for any other status. */
#define MSG_ROUTE_RESP SIP_METHOD_COUNT
#define MSG_ROUTES (MSG_ROUTE_RESP + 600 + 1)

static int msg_route(const struct sip_msg *m)
{
    if (m->is_request)
        return m->method < SIP_METHOD_COUNT ? m->method : 0;
    if (m->status >= 100 && m->status < 700)
        return MSG_ROUTE_RESP + m->status - 100;
    return MSG_ROUTES - 1;
}

/* What Lua runs for an entry: the dispatch functions of core.lua, by kind. */
enum lb_kind {
    K_LABEL = 0,
    K_MESSAGE,
    K_DIALOG_START,
    K_DIALOG_ANSWER,
    K_DIALOG_END,
    K_TXN_END,
    K_REGISTER,
    K_TICK,
    K_DIALOG_RINGING,
    K_COUNT
};

static const char *const kind_fn[K_COUNT] = {
    "dispatch_label",      "dispatch_message", "dispatch_dialog_start",  "dispatch_dialog_answer",
    "dispatch_dialog_end", "dispatch_txn_end", "dispatch_register",      "dispatch_tick",
    "dispatch_dialog_ringing",
};

/* A rule family: the registry family and the series the bridge created in it, across reloads
 * (the count decides the cap without walking the registry). */
struct lb_family {
    struct metric_family *fam;
    char *name;
    uint32_t cap, n;
    uint32_t rule_set; /* the last rule set that declared it (lua_bridge.rule_set) */
    struct lb_family *next;
};

enum lb_helper_kind {
    H_CIDR,
    H_CLASSIFY,
    H_WINDOW,
};

/* A C helper object a rule made at load time; freed with its state. */
struct lb_helper {
    enum lb_helper_kind kind;
    void *obj;
};

struct lb_label_decl {
    char *name, *def;
    uint32_t max_values;
};

/* The calls a state's Lua side keeps per-call data for (d.vars, d.cdr), numbered densely from
 * 1 so that Lua indexes arrays instead of inserting and deleting a hash key per call (a churning
 * hash costs Lua a rehash of every live key every few hundred calls). A number belongs to a
 * (dialog, slot generation), so that a dialog slot the tracker reuses is a new call. The arrays
 * grow by doubling: a few allocations over a run, none per message once the call count has
 * peaked. Numbers are reused last-freed first. */
struct lb_slot_key {
    const void *dialog; /* NULL: the number is free */
    uint32_t gen;
};

/* The calls that have per-call Lua data. A call keeps its slot number in its entry
 * (sip_dialog.rule_slot), and by_slot[number] says which call (and generation) owns the number:
 * a number left in an entry by another rule state (before a reload) or by a freed slot does not
 * match and counts as none. */
struct lb_slots {
    struct lb_slot_key *by_slot; /* [slot]: its owner; dialog NULL when free */
    int32_t *free;               /* numbers to reuse */
    uint32_t n_free, n_slots, cap_slots;
};

/* One Lua state with its rules. During a reload two exist; only one ever runs at a time. */
struct lb_state {
    struct lua_bridge *b;
    lua_State *L;
    struct lua_heap *heap;
    uint64_t used, limit, reserve, gc_floor;
    /* Bytes past the limit rule code may use: the reserve while a rule's cjson.encode pushes its
     * text (native_json_encode), 0 otherwise. */
    uint64_t grace;
    /* Garbage collection paced by the engine (gc_pace): bytes ever allocated, their count at the
     * last step, and the heap size at which the next cycle starts. */
    uint64_t allocated, gc_mark, gc_resume;
    uint64_t rehash_size; /* the large allocation of the rehash under way */
    int core_ref;
    int fn_ref[K_COUNT];
    int n_rules;
    uint8_t routes[TRACK_EVENT_COUNT + 1];
    uint8_t msg_routes[MSG_ROUTES]; /* which messages a message hook wants (msg_route) */
    uint8_t txn_routes[SIP_METHOD_COUNT]; /* which transactions' ends a hook wants, by method */
    struct lb_label_decl labels[TRACK_MAX_LABELS];
    size_t n_labels;
    struct lb_helper helpers[MAX_HELPERS];
    size_t n_helpers;
    int reloading; /* labels are recorded, not declared */
    struct lb_slots slots;
    /* Calls' d.cdr fields by slot number, counted in `used` against the Lua memory cap. */
    struct call_fields *call_fields;
};

struct lua_bridge {
    struct lua_bridge_config cfg;
    char *rules_dir;
    char **rule_files;
    size_t n_rule_files;
    struct metrics *reg;
    struct oplabel_set *ops;
    struct lb_state *cur;
    struct lb_state *volatile running; /* the state the engine thread is inside, for the hook */
    struct lb_box box;
    double gen; /* the last dispatch generation; box.gen is 0 between dispatches */
    struct lb_api api;
    uint8_t routes[TRACK_EVENT_COUNT + 1];
    uint64_t entries; /* enter() calls (lua_bridge_entries) */
    uint64_t next_tick;
    struct lb_family *families;
    /* The C memory of the series rules have created (metrics_series_bytes, and the symbols
     * they interned), over every load: series live as long as the registry. */
    uint64_t series_bytes;
    uint32_t rule_set; /* the rule set being committed or running: one more at each reload */
    char *fields; /* event fields from the last CALL_END / REG_BINDING dispatch */
    size_t fields_len, fields_cap;
    struct event_field *keys; /* the encoder's scratch list (encode_fields), grown as needed */
    size_t keys_cap;
    char *key_buf; /* api_window_msg's keys with a message field, grown as needed */
    size_t key_cap;
    char *unfold_buf; /* header_value's unfolded values, grown as needed (folding is rare) */
    size_t unfold_cap;
    int fields_failed; /* out of memory while listing or encoding them: they are dropped */

    struct metric_family *f_errors, *f_disabled, *f_seconds, *f_loaded, *f_last_ok, *f_reloads,
        *f_memory, *f_gc_seconds, *f_gc_full;
    struct metric_series *s_loaded, *s_last_ok, *s_memory, *s_gc_step, *s_gc_full_seconds,
        *s_gc_full;

    /* Budget: the watchdog thread samples box.seq every budget/2; when one call has used the
     * budget in CPU time it queues a signal to the engine thread, whose handler arms the abort
     * hook for that sequence number. */
    pthread_t engine_thread, watchdog;
    clockid_t engine_clock;        /* the engine thread's CPU-time clock */
    pthread_mutex_t watchdog_lock; /* guards watchdog_stop; the watchdog sleeps on wake */
    pthread_cond_t watchdog_wake;
    int watchdog_running;
    int watchdog_stop;
    int watchdog_active; /* rules are loaded: without any, the watchdog sleeps */
    int watchdog_asleep; /* no Lua for a whole period: it waits for enter() (watchdog_rouse) */
    /* The box.seq the watchdog armed the hook for: written by the watchdog, read on the
     * engine thread (signal handler, hook), always with __atomic; the watchdog may store it
     * again while the handler reads it. */
    uint32_t armed_seq;
    volatile sig_atomic_t hook_armed;
    /* LuaJIT rehashing a large table or its string table for rule code (rehash_watch): the
     * watchdog does not count that time against the rule. Written by the engine thread, read
     * by the watchdog: the CPU time of finished rehashes, the start of one under way (0:
     * none) and how much of it may be excused. */
    uint64_t rehash_ns, rehash_start, rehash_allow;
    /* What the watchdog measured the armed call from (abort_hook looks again). */
    uint64_t armed_since, armed_credit_since;
};

static const char timeout_token = 0; /* its address is the error value of a budget stop */
static int budget_signal;

/* --- memory ------------------------------------------------------------------------------- */

/* LuaJIT grows a hash table or its string table by allocating the larger array, moving every
 * entry over, then freeing the old array of at least half the size. On a large one that is
 * milliseconds of work the rule did not ask for (the string table of a heap holding a hundred
 * thousand strings, say), once per doubling. The time from such an allocation (REHASH_BYTES or
 * more) to the free that ends it is not counted against the rule call: the watchdog subtracts
 * it, also while it runs. Each such interval is excused for at most REHASH_NS_PER_BYTE per byte
 * of the new array (a 1 MiB string table: 25 ms; it took 6 ms here), so that a large allocation
 * without its free (a long string) excuses little; and every one needs the heap to grow by its
 * size, within --lua-memory. */
#define REHASH_BYTES (64u << 10)
#define REHASH_NS_PER_BYTE 24

static uint64_t cpu_ns(clockid_t clock);

static void rehash_watch(struct lb_state *s, size_t osize, size_t nsize)
{
    struct lua_bridge *b = s->b;
    uint64_t start = b->rehash_start;

    if (!b->box.in_rule)
        return;
    /* A rehash allocates its new array afresh. A realloc (an array part that grows) is no
     * rehash: it does its copying inside the allocator and has no free to end an interval,
     * which then excused up to its whole allowance, 0.4 s for a 16 MB array. */
    if (nsize >= REHASH_BYTES && osize == 0) {
        /* A rehash that starts ends any unfinished interval: only the last one is excused. */
        __atomic_store_n(&b->rehash_allow, (uint64_t)nsize * REHASH_NS_PER_BYTE, __ATOMIC_RELAXED);
        s->rehash_size = nsize;
        __atomic_store_n(&b->rehash_start, cpu_ns(CLOCK_THREAD_CPUTIME_ID), __ATOMIC_RELEASE);
    } else if (nsize == 0 && start && osize * 2 >= s->rehash_size) {
        uint64_t spent = cpu_ns(CLOCK_THREAD_CPUTIME_ID) - start;
        if (spent > b->rehash_allow)
            spent = b->rehash_allow;
        __atomic_store_n(&b->rehash_ns, b->rehash_ns + spent, __ATOMIC_RELAXED);
        __atomic_store_n(&b->rehash_start, 0, __ATOMIC_RELEASE);
    }
}

/* The CPU time to subtract from a rule call's (watchdog): finished rehashes in full, and the
 * one under way up to its allowance but at most one budget: an interval that no free will end
 * (a long string) must not excuse a loop after it for long (a 16 MB string: 0.4 s). A rehash
 * that does end is excused in full after all, when abort_hook looks again. used: the engine
 * thread's CPU time now. */
static uint64_t rehash_credit(struct lua_bridge *b, uint64_t used)
{
    uint64_t done = __atomic_load_n(&b->rehash_ns, __ATOMIC_RELAXED);
    uint64_t start = __atomic_load_n(&b->rehash_start, __ATOMIC_ACQUIRE);
    uint64_t allow = __atomic_load_n(&b->rehash_allow, __ATOMIC_RELAXED);
    if (allow > b->cfg.budget_ns)
        allow = b->cfg.budget_ns;
    if (start && used > start)
        done += used - start < allow ? used - start : allow;
    return done;
}

/* The cap applies to rule code; trusted code (dispatchers, error handling) may use a reserve
 * above it, so that it can still report and quarantine the rule that exhausted the cap. */
static void *lb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lb_state *s = ud;
    void *p;

    if (nsize == 0) {
        if (ptr)
            lua_heap_release(s->heap, ptr, osize);
        s->used -= osize;
        if (osize >= REHASH_BYTES / 2)
            rehash_watch(s, osize, 0);
        return NULL;
    }
    if (nsize >= REHASH_BYTES)
        rehash_watch(s, osize, nsize);
    if (!ptr) { /* most calls: a new object */
        uint64_t limit = s->limit + (s->b->box.in_rule ? s->grace : s->reserve);
        if (s->used + nsize > limit || !(p = lua_heap_alloc(s->heap, nsize))) {
            s->b->box.mem_fail = 1;
            return NULL;
        }
        s->used += nsize;
        s->allocated += nsize;
        return p;
    }
    if (nsize > osize) {
        uint64_t limit = s->limit + (s->b->box.in_rule ? s->grace : s->reserve);
        if (s->used + (nsize - osize) > limit) {
            s->b->box.mem_fail = 1;
            return NULL;
        }
        s->allocated += nsize - osize;
    }
    p = lua_heap_realloc(s->heap, ptr, osize, nsize);
    if (!p) {
        s->b->box.mem_fail = 1;
        return NULL;
    }
    s->used = s->used - osize + nsize;
    return p;
}

/* --- budget ------------------------------------------------------------------------------- */

static struct lb_state *state_of(lua_State *L)
{
    void *ud;
    lua_getallocf(L, &ud);
    return ud;
}

static struct lua_bridge *bridge_of(lua_State *L)
{
    return state_of(L)->b;
}

/* True when the function at the stack level is one of core.lua's generated dispatchers. */
static bool dispatcher_at(lua_State *L, int level)
{
    static const char prefix[] = "=sipscope.dispatch.";
    lua_Debug ar;

    if (!lua_getstack(L, level, &ar) || !lua_getinfo(L, "S", &ar) || !ar.source)
        return false;
    return strncmp(ar.source, prefix, sizeof(prefix) - 1) == 0;
}

/* True when the function running is a dispatcher, or a C function a dispatcher called itself:
 * in the interpreter, the FFI's store into box.in_rule right after the rule's pcall returned
 * is one (a cdata metamethod), and a stop armed as the call ended can land in it. An error
 * raised there would escape the rule's pcall and fail the whole dispatch (seen once in CI: the
 * rules after it missed a message). A C function the rule called has the rule, or the pcall for
 * a tail call, above it: raised there, the error stays the rule's. */
static bool in_dispatcher(lua_State *L)
{
    lua_Debug here;

    if (!lua_getstack(L, 0, &here) || !lua_getinfo(L, "S", &here))
        return false;
    if (here.what && strcmp(here.what, "C") == 0)
        return dispatcher_at(L, 1);
    return dispatcher_at(L, 0);
}

static void abort_hook(lua_State *L, lua_Debug *ar)
{
    struct lua_bridge *b = bridge_of(L);
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    b->hook_armed = 0;
    /* A hook armed for a call that has since returned is stale: the next call runs on. */
    if (!b->box.in_lua || !b->box.in_rule ||
        b->box.seq != __atomic_load_n(&b->armed_seq, __ATOMIC_RELAXED))
        return;
    /* The watchdog excused a rehash under way for one budget at most. One that has ended since
     * (the hook runs at an instruction boundary, after it) is excused in full: the call may be
     * within its budget after all. If it is not, the watchdog arms the hook again. */
    {
        uint64_t used = cpu_ns(b->engine_clock);
        uint64_t since = __atomic_load_n(&b->armed_since, __ATOMIC_RELAXED);
        uint64_t credit_since = __atomic_load_n(&b->armed_credit_since, __ATOMIC_RELAXED);
        if (used - since < b->cfg.budget_ns + (rehash_credit(b, used) - credit_since))
            return;
    }
    /* The dispatcher reads (and clears) stopped right after the call and counts a timeout
     * whatever the call returned: the rule may have swallowed the stop (an xpcall handler that
     * the stop hit, which LuaJIT turns into "error in error handling"; a pcall of ours), and it
     * still counts. in_rule is still 1 up to there, so the flag always belongs to that call. */
    b->box.stopped = 1;
    /* The rule's call ended inside C (a long C function in tail position) and returned
     * straight to its dispatcher, which had not yet marked the rule done: a stop raised here
     * would be blamed on sipscope and skip the other rules. The flag is enough. */
    if (in_dispatcher(L))
        return;
    lua_pushlightuserdata(L, (void *)&timeout_token);
    lua_error(L);
}

/* Runs on the engine thread. lua_sethook is the one LuaJIT call meant for signal handlers. */
static void on_budget_signal(int sig, siginfo_t *si, void *uc)
{
    struct lua_bridge *b = si->si_value.sival_ptr;
    struct lb_state *s;
    int saved_errno = errno; /* the interrupted code may be about to read it */
    (void)sig;
    (void)uc;
    if (si->si_code != SI_QUEUE || !b)
        return;
    s = b->running;
    if (!s || !b->box.in_lua || !b->box.in_rule ||
        b->box.seq != __atomic_load_n(&b->armed_seq, __ATOMIC_RELAXED))
        return;
    b->hook_armed = 1;
    lua_sethook(s->L, abort_hook, LUA_MASKCOUNT | LUA_MASKCALL | LUA_MASKRET, 1);
    errno = saved_errno;
}

static void timespec_add(struct timespec *t, uint64_t ns)
{
    ns += (uint64_t)t->tv_nsec;
    t->tv_sec += (time_t)(ns / 1000000000ULL);
    t->tv_nsec = (long)(ns % 1000000000ULL);
}

static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec t;
    if (clock_gettime(clock, &t) != 0)
        return 0;
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/* A dozing watchdog looks again after WATCHDOG_CONFIRM_NS, then every WATCHDOG_DOZE_NS. The
 * engine reads watchdog_asleep without a fence (one load per entry, no locked instruction), so
 * an entry that began just as the watchdog fell asleep may not have woken it: that entry has
 * bumped box.seq by the confirming look (a store is visible within nanoseconds), and the
 * periodic look bounds even what no hardware does. */
#define WATCHDOG_CONFIRM_NS 1000000ULL
#define WATCHDOG_DOZE_NS 1000000000ULL

/* Called with watchdog_lock held, when two looks in a row found no Lua running and box.seq at
 * seq: the engine waits for traffic. Sleeps until an entry wakes it (watchdog_rouse), a look
 * finds Lua since, or the watchdog is stopped: a host with rules loaded and no traffic is not
 * woken budget/2 apart (400 times a second with the default budget). */
static void watchdog_doze(struct lua_bridge *b, uint32_t seq)
{
    uint64_t wait = WATCHDOG_CONFIRM_NS;

    __atomic_store_n(&b->watchdog_asleep, 1, __ATOMIC_SEQ_CST);
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        timespec_add(&until, wait);
        while (!b->watchdog_stop && __atomic_load_n(&b->watchdog_asleep, __ATOMIC_RELAXED) &&
               pthread_cond_timedwait(&b->watchdog_wake, &b->watchdog_lock, &until) != ETIMEDOUT)
            ;
        if (b->watchdog_stop || !__atomic_load_n(&b->watchdog_asleep, __ATOMIC_RELAXED) ||
            __atomic_load_n(&b->box.seq, __ATOMIC_SEQ_CST) != seq ||
            __atomic_load_n(&b->box.in_lua, __ATOMIC_RELAXED))
            break;
        wait = WATCHDOG_DOZE_NS;
    }
    __atomic_store_n(&b->watchdog_asleep, 0, __ATOMIC_RELAXED);
}

/* The engine thread, entering Lua while the watchdog dozes. */
static void watchdog_rouse(struct lua_bridge *b)
{
    pthread_mutex_lock(&b->watchdog_lock);
    __atomic_store_n(&b->watchdog_asleep, 0, __ATOMIC_RELAXED);
    pthread_cond_signal(&b->watchdog_wake);
    pthread_mutex_unlock(&b->watchdog_lock);
}

/* Every budget/2 of wall time, looks at the engine thread: when the same rule call (the same
 * box.seq) has been running since an earlier look and the thread has used at least the budget
 * of CPU time since then, the call is over budget. CPU time, not wall time, so that a busy
 * machine that preempts the engine never stops a rule that did not use its budget. While the
 * engine runs no Lua at all, it dozes (watchdog_doze). */
static void *watchdog_main(void *arg)
{
    struct lua_bridge *b = arg;
    uint64_t period = b->cfg.budget_ns / 2 ? b->cfg.budget_ns / 2 : 1;
    uint64_t since = 0, credit_since = 0;
    uint32_t last = 0, quiet_seq = 0;
    int watching = 0, quiet = 0;
    struct timespec next;

    clock_gettime(CLOCK_MONOTONIC, &next);
    pthread_mutex_lock(&b->watchdog_lock);
    while (!b->watchdog_stop) {
        uint32_t seq;
        uint64_t used, credit;
        struct timespec now;
        if (!b->watchdog_active) {
            pthread_cond_wait(&b->watchdog_wake, &b->watchdog_lock);
            clock_gettime(CLOCK_MONOTONIC, &next);
            watching = 0;
            continue;
        }
        timespec_add(&next, period);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > next.tv_sec + 1)
            next = now; /* the host slept: no burst of catch-up looks */
        while (!b->watchdog_stop &&
               pthread_cond_timedwait(&b->watchdog_wake, &b->watchdog_lock, &next) != ETIMEDOUT)
            ;
        if (b->watchdog_stop)
            break;
        seq = __atomic_load_n(&b->box.seq, __ATOMIC_RELAXED);
        if (!__atomic_load_n(&b->box.in_lua, __ATOMIC_RELAXED)) {
            watching = 0;
            if (quiet && seq == quiet_seq) { /* no entry since the last look either */
                watchdog_doze(b, seq);
                clock_gettime(CLOCK_MONOTONIC, &next);
                quiet = 0;
                continue;
            }
            quiet = 1;
            quiet_seq = seq;
            continue;
        }
        quiet = 0;
        /* Only rule code has a budget: trusted code (state set-up, dispatchers) is bounded. */
        if (!__atomic_load_n(&b->box.in_rule, __ATOMIC_RELAXED)) {
            watching = 0;
            continue;
        }
        used = cpu_ns(b->engine_clock);
        credit = rehash_credit(b, used);
        if (!watching || seq != last) {
            last = seq;
            since = used;
            credit_since = credit;
            watching = 1;
            continue;
        }
        if (used - since >= b->cfg.budget_ns + (credit - credit_since)) {
            /* Re-sent every period while the call goes on, in case the error was caught. */
            union sigval v = {.sival_ptr = b};
            __atomic_store_n(&b->armed_since, since, __ATOMIC_RELAXED);
            __atomic_store_n(&b->armed_credit_since, credit_since, __ATOMIC_RELAXED);
            __atomic_store_n(&b->armed_seq, seq, __ATOMIC_RELAXED);
            pthread_sigqueue(b->engine_thread, budget_signal, v);
        }
    }
    pthread_mutex_unlock(&b->watchdog_lock);
    return NULL;
}

static int watchdog_start(struct lua_bridge *b)
{
    /* Signal dispositions are process-wide by nature: one handler serves every bridge, each
     * signal carrying its bridge in si_value. */
    static int installed;
    pthread_condattr_t attr;
    sigset_t all, old;
    int rc;

    if (!installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        budget_signal = SIGRTMIN + 1;
        sa.sa_sigaction = on_budget_signal;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(budget_signal, &sa, NULL) != 0)
            return -errno;
        installed = 1;
    }
    b->engine_thread = pthread_self();
    if (pthread_getcpuclockid(b->engine_thread, &b->engine_clock) != 0)
        return -EINVAL;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&b->watchdog_wake, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&b->watchdog_lock, NULL);
    /* The watchdog blocks every signal: they are for the engine thread. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&b->watchdog, NULL, watchdog_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&b->watchdog_wake);
        pthread_mutex_destroy(&b->watchdog_lock);
        return -rc;
    }
    pthread_setname_np(b->watchdog, "rule-watchdog"); /* for top -H; a failure changes nothing */
    b->watchdog_running = 1;
    return 0;
}

/* Wakes the watchdog up while rules are loaded, lets it sleep while none is. */
static void watchdog_activate(struct lua_bridge *b, int active)
{
    if (!b->watchdog_running)
        return;
    pthread_mutex_lock(&b->watchdog_lock);
    b->watchdog_active = active;
    pthread_cond_signal(&b->watchdog_wake);
    pthread_mutex_unlock(&b->watchdog_lock);
}

static void watchdog_stop(struct lua_bridge *b)
{
    if (!b->watchdog_running)
        return;
    pthread_mutex_lock(&b->watchdog_lock);
    b->watchdog_stop = 1;
    pthread_cond_signal(&b->watchdog_wake);
    pthread_mutex_unlock(&b->watchdog_lock);
    pthread_join(b->watchdog, NULL);
    pthread_cond_destroy(&b->watchdog_wake);
    pthread_mutex_destroy(&b->watchdog_lock);
    b->watchdog_running = 0;
}

/* --- FFI functions ------------------------------------------------------------------------ */

static int set_slice(struct lb_slice *out, struct slice s)
{
    out->p = s.p;
    out->len = s.len;
    return s.len != 0;
}

static int api_msg_str(const struct lb_box *box, int field, struct lb_slice *out)
{
    const struct sip_msg *m = box->msg;
    struct slice s = {NULL, 0};

    if (!m)
        return 0;
    switch ((enum lb_msg_field)field) {
    case F_CALL_ID:
        s = m->call_id;
        break;
    case F_FROM_TAG:
        s = m->from_tag;
        break;
    case F_TO_TAG:
        s = m->to_tag;
        break;
    case F_RURI:
        s = m->ruri;
        break;
    case F_REASON:
        s = m->reason;
        break;
    case F_METHOD:
        s = m->method_name;
        break;
    case F_CSEQ_METHOD:
        s = m->cseq_method_name;
        break;
    case F_FROM_URI:
        s = m->from_uri;
        break;
    case F_TO_URI:
        s = m->to_uri;
        break;
    case F_BODY:
        s = m->body;
        break;
    case F_RAW:
        s = m->raw;
        break;
    case F_VIA_BRANCH:
        s = m->via_branch;
        break;
    }
    return set_slice(out, s);
}

/* header_value's slow path: v rewritten without its folds into the bridge's buffer. Returns
 * 1, as the lookups do when they find a header (so that they end in a tail call). */
static __attribute__((noinline)) int unfold_value(const struct lb_box *box, struct slice v,
                                                  struct lb_slice *out)
{
    struct lua_bridge *b =
        (struct lua_bridge *)((char *)(uintptr_t)box - offsetof(struct lua_bridge, box));
    size_t n = 0;

    if (!memchr(v.p, '\n', v.len)) { /* another header of the message is folded */
        set_slice(out, v);
        return 1;
    }
    if (v.len > b->unfold_cap) {
        char *p = realloc(b->unfold_buf, v.len);
        if (!p) { /* the value as it is rather than none */
            set_slice(out, v);
            return 1;
        }
        b->unfold_buf = p;
        b->unfold_cap = v.len;
    }
    for (size_t i = 0; i < v.len; i++) {
        char c = v.p[i];
        if (c != '\r' && c != '\n') {
            b->unfold_buf[n++] = c;
            continue;
        }
        while (n > 0 && (b->unfold_buf[n - 1] == ' ' || b->unfold_buf[n - 1] == '\t'))
            n--;
        while (i + 1 < v.len && (v.p[i + 1] == ' ' || v.p[i + 1] == '\t' || v.p[i + 1] == '\r' ||
                                 v.p[i + 1] == '\n'))
            i++;
        b->unfold_buf[n++] = ' ';
    }
    out->p = b->unfold_buf;
    out->len = n;
    return 1;
}

/* A found header's value as rules read it; returns 1. A folded value (RFC 3261 §7.3.1: a line
 * break and the whitespace around it are one SP) spans its line breaks in the parser's slice;
 * it is rewritten into the bridge's buffer, valid until the next lookup (every caller copies
 * the value or matches it at once). A message without folding costs the test of its bit. */
static inline int header_value(const struct lb_box *box, const struct sip_msg *m, struct slice v,
                               struct lb_slice *out)
{
    if (__builtin_expect(m->anomalies & SIP_ANOM_FOLDED, 0))
        return unfold_value(box, v, out);
    out->p = v.p;
    out->len = v.len;
    return 1;
}

/* The other form of a header name the parser has no id for, by IANA's SIP header registry:
 * by name alone, "y: ..." was not found as Identity (RFC 8224, STIR/SHAKEN), nor "Identity" as
 * "y". Empty when it has none. By length first: most names cost a switch. */
static struct slice other_form(struct slice want)
{
#define FORM(lit) ((struct slice){lit, sizeof(lit) - 1})
    static const struct {
        char compact;
        struct slice name;
    } forms[] = {
        {'a', FORM("Accept-Contact")},      /* RFC 3841 */
        {'d', FORM("Request-Disposition")}, /* RFC 3841 */
        {'j', FORM("Reject-Contact")},      /* RFC 3841 */
        {'n', FORM("Identity-Info")},       /* RFC 4474 */
        {'y', FORM("Identity")},            /* RFC 8224 */
    };
#undef FORM
    switch (want.len) {
    case 1:
    case 8:
    case 13:
    case 14:
    case 19:
        break;
    default:
        return (struct slice){NULL, 0};
    }
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        if (want.len == 1 && slice_lower_char(want.p[0]) == forms[i].compact)
            return forms[i].name;
        if (slice_eq_nocase(want, forms[i].name))
            return (struct slice){&forms[i].compact, 1};
    }
    return (struct slice){NULL, 0};
}

/* The nth (0-based) header called name: known headers by id, so compact forms fold ("i" finds
 * Call-ID); others by case-insensitive name, in either form when it has a compact one. */
static int api_msg_header(const struct lb_box *box, const char *name, size_t len, int nth,
                          struct lb_slice *out)
{
    const struct sip_msg *m = box->msg;
    struct slice want = {name, len}, alt = {NULL, 0};
    enum sip_hdr id;

    if (!m)
        return 0;
    id = sip_header_id(want);
    if (id != SIP_HDR_OTHER) {
        for (uint32_t i = 0; i < m->n_headers; i++)
            if (m->headers[i].id == id && nth-- == 0)
                return header_value(box, m, m->headers[i].value, out);
        return 0;
    }
    alt = other_form(want);
    for (uint32_t i = 0; i < m->n_headers; i++) {
        const struct sip_header *h = &m->headers[i];
        if (h->id == SIP_HDR_OTHER &&
            (slice_eq_nocase(h->name, want) || (alt.len && slice_eq_nocase(h->name, alt))) &&
            nth-- == 0)
            return header_value(box, m, h->value, out);
    }
    return 0;
}

/* m:ruri_param(name): the value of the request's Request-URI parameter `name` (RFC 3261 §19.1.1,
 * or a user-part one such as RFC 4904's tgrp, sip:+1555;tgrp=tg1;trunk-context=x@gw): what
 * follows ";name=" up to the next ';', '@', '?' or '>', names compared without case; the first
 * one counts. Nothing after '?' (the URI's headers) is a parameter. 0 when there is none (or
 * no "=": a flag such as ;lr), 1 with the value (possibly empty) in *out. The rule gets the
 * value alone as a string, not the whole URI. */
static int api_msg_ruri_param(const struct lb_box *box, const char *name, size_t len,
                              struct lb_slice *out)
{
    const struct sip_msg *m = box->msg;
    const char *p, *e;

    if (!m || !m->is_request || len == 0)
        return 0;
    p = m->ruri.p;
    e = p + m->ruri.len;
    /* Parameters end where the headers start ('?'); found by memchr rather than byte by byte:
     * trunk_asr asks this of every INVITE. */
    const char *q = memchr(p, '?', m->ruri.len);
    if (q)
        e = q;
    while (p < e && (p = memchr(p, ';', (size_t)(e - p))) != NULL) {
        const char *v;
        if ((size_t)(e - p - 1) <= len || p[1 + len] != '=' ||
            !slice_eq_nocase(slice_make(p + 1, len), slice_make(name, len))) {
            p++;
            continue;
        }
        v = p + 2 + len;
        for (p = v; p < e && *p != ';' && *p != '@' && *p != '>'; p++)
            ;
        set_slice(out, slice_make(v, (size_t)(p - v)));
        return 1;
    }
    return 0;
}

/* The enum sip_hdr of a header name (SIP_HDR_OTHER when unknown): Lua remembers it per name. */
static int32_t api_header_id(const char *name, size_t len)
{
    return (int32_t)sip_header_id((struct slice){name, len});
}

/* The nth header of a known id: the first straight from the parser's index. */
static int api_msg_header_id(const struct lb_box *box, int32_t id, int nth,
                             struct lb_slice *out)
{
    const struct sip_msg *m = box->msg;

    if (!m || id <= SIP_HDR_OTHER || id >= SIP_HDR_COUNT)
        return 0;
    if (nth == 0) {
        uint16_t i = m->first[id];
        if (!i)
            return 0;
        return header_value(box, m, m->headers[i - 1].value, out);
    }
    for (uint32_t i = 0; i < m->n_headers; i++)
        if (m->headers[i].id == id && nth-- == 0)
            return header_value(box, m, m->headers[i].value, out);
    return 0;
}

static int api_msg_addr(const struct lb_box *box, int dst, char *buf, size_t len)
{
    const struct packet *pkt = box->pkt;
    int n;
    if (!pkt)
        return 0;
    n = decode_addr_format(pkt, dst, buf, len);
    return n < 0 ? 0 : n;
}

static int api_dialog_str(const struct lb_box *box, int field, struct lb_slice *out)
{
    const struct sip_dialog *d = box->dialog;
    if (!d)
        return 0;
    if (field == 0)
        return set_slice(out, sip_dialog_call_id(d));
    if (field == 1)
        return set_slice(out, sip_dialog_from_uri(d));
    return set_slice(out, sip_dialog_to_uri(d));
}

static int api_binding_str(const struct lb_box *box, int field, struct lb_slice *out)
{
    const struct sip_binding *bd = box->binding;
    if (!bd)
        return 0;
    return set_slice(out, field == 0 ? sip_binding_aor(bd) : sip_binding_contact(bd));
}

static int api_label_text(void *bridge, int idx, int id, struct lb_slice *out)
{
    struct lua_bridge *b = bridge;
    size_t len;
    const char *p = oplabel_text(b->ops, (size_t)idx, (uint16_t)id, &len);
    out->p = p;
    out->len = len;
    return 1;
}

static int api_label_value(void *bridge, int idx, const char *s, size_t len)
{
    struct lua_bridge *b = bridge;
    return oplabel_value(b->ops, (size_t)idx, s, len);
}

/* Finds or creates a rule family's series. Values already interned and series that exist are
 * found without interning; past the cap nothing new is interned (a rule making up a value per
 * message must not fill the symbol table) and the overflow series is returned, counted.
 * The series of all rule families together may take at most --lua-memory of C memory (they
 * are outside the Lua heap and never freed, a reload keeps them): a rule that declared
 * families of a million series each, and cached each series in its heap for about a tenth of
 * what C kept for it, made the engine hold gigabytes, more again after each reload. Past that,
 * a new series is the overflow series too. *cacheable is 1 when the series is a real one Lua
 * may remember for these values. */
static void *api_series(void *bridge, void *family, const char **vals, const size_t *lens, int n,
                        int *cacheable)
{
    struct lua_bridge *b = bridge;
    struct lb_family *f = family;
    uint32_t syms[METRICS_MAX_LABELS];
    struct metric_series *s;
    size_t bytes;
    int known = 1;

    *cacheable = 0;
    for (int i = 0; i < n; i++) {
        syms[i] = metrics_symbol_find(b->reg, vals[i], lens[i]);
        known &= syms[i] != METRICS_NO_SYMBOL;
    }
    if (known && (s = metrics_series_find(f->fam, syms)) != NULL) {
        *cacheable = 1;
        return s;
    }
    if (f->n >= f->cap)
        return metrics_series(f->fam, syms); /* the overflow series, counted */
    bytes = metrics_series_bytes(f->fam);
    for (int i = 0; i < n; i++)
        if (syms[i] == METRICS_NO_SYMBOL)
            bytes += metrics_symbol_bytes(lens[i]);
    if (b->series_bytes + bytes > b->cfg.memory_limit) {
        syms[0] = METRICS_NO_SYMBOL; /* makes it the overflow series, counted */
        return metrics_series(f->fam, syms);
    }
    for (int i = 0; i < n; i++)
        if (syms[i] == METRICS_NO_SYMBOL)
            syms[i] = metrics_intern(b->reg, vals[i], lens[i]);
    s = metrics_series(f->fam, syms);
    if (metrics_series_find(f->fam, syms) == s) {
        f->n++;
        b->series_bytes += bytes;
        *cacheable = 1;
    }
    return s;
}

/* A rule's value must stay finite: a counter at +Inf stays there for good (each rate() of it is
 * NaN), and a gauge or a histogram's sum at +Inf and then -Inf becomes NaN. The registry would
 * take such values from the engine's own code, which never makes them; from a rule they are
 * refused here, before any store, and Lua raises the error (sipscope/metric.lua). */
static int api_counter_add(void *s, double v)
{
    if (!isfinite(v) || v < 0)
        return -EINVAL;
    if (!isfinite(metric_value(s) + v))
        return -ERANGE;
    metric_counter_add(s, v);
    return 0;
}

static int api_gauge_set(void *s, double v)
{
    if (!isfinite(v))
        return -EINVAL;
    metric_gauge_set(s, v);
    return 0;
}

static int api_gauge_add(void *s, double v)
{
    if (!isfinite(v))
        return -EINVAL;
    if (!isfinite(metric_value(s) + v))
        return -ERANGE;
    metric_gauge_add(s, v);
    return 0;
}

static int api_observe(void *s, double v)
{
    if (!isfinite(v))
        return -EINVAL;
    if (!isfinite(metric_histogram_sum(s) + v))
        return -ERANGE;
    metric_histogram_observe(s, v);
    return 0;
}

static int32_t api_cidr_lookup_text(const void *set, const char *p, size_t len)
{
    return cidr_lookup_text(set, p, len);
}

/* The CIDR value of a message's source (dst = 0) or destination address, without text. */
static int32_t api_cidr_lookup_msg(const void *set, const struct lb_box *box, int dst)
{
    const struct packet *pkt = box->pkt;
    if (!pkt || (pkt->ip_version != 4 && pkt->ip_version != 6))
        return -1;
    return cidr_lookup(set, pkt->ip_version == 4 ? AF_INET : AF_INET6, dst ? pkt->dst : pkt->src);
}

/* The message's first header of that id, or of name[0..len) when the id is SIP_HDR_OTHER, read
 * where the parser found it. Returns whether the message has it. */
static int first_header(const struct lb_box *box, int32_t id, const char *name, size_t len,
                        struct lb_slice *out)
{
    return id != SIP_HDR_OTHER ? api_msg_header_id(box, id, 0, out)
                               : api_msg_header(box, name, len, 0, out);
}

static int32_t api_classify_lookup(const void *c, const char *p, size_t len)
{
    return classify_lookup(c, p, len);
}

/* The class of the message's first header of that id (name[0..len) when the id is
 * SIP_HDR_OTHER), matched where the parser found it: classifier:classify_header(m, name) makes
 * no Lua string of the value, which was most of what device.lua cost per request. -1 when no
 * rule matches, LB_NO_HEADER when the message has no such header. */
#define LB_NO_HEADER (-2)
static int32_t api_classify_header(void *c, const struct lb_box *box, int32_t id,
                                   const char *name, size_t len)
{
    struct lb_slice v;
    if (!first_header(box, id, name, len, &v))
        return LB_NO_HEADER;
    return classify_lookup_memo(c, v.p, v.len);
}

static uint64_t api_window_add(void *w, const char *key, size_t len, uint64_t now_ns, uint32_t n)
{
    return window_add(w, key, len, now_ns, n);
}

/* The message-keyed window methods (win:src(m, n, with), win:count_dst(m, with)...): the key is
 * the message's source (dst 0) or destination address as text, followed, when with is an enum
 * lb_msg_field (-1: nothing), by a space and that field of the message ("10.0.0.1
 * sip:alice@example.net"; an absent field adds nothing after the space): the bytes the rule
 * would get from m.dst_ip .. " " .. (m.to or ""), without making a Lua string. Adds n events
 * (n >= 0) or only counts (n < 0). UINT64_MAX when the message has no address, UINT64_MAX - 1
 * when out of memory for the key. */
static uint64_t api_window_msg(void *bridge, void *w, int dst, int with, int64_t n)
{
    struct lua_bridge *b = bridge;
    const struct lb_box *box = &b->box;
    char addr[64];
    const char *key = addr;
    struct lb_slice v = {NULL, 0};
    size_t len;
    int alen = api_msg_addr(box, dst, addr, sizeof(addr));

    if (alen <= 0)
        return UINT64_MAX;
    len = (size_t)alen;
    if (with >= 0) {
        api_msg_str(box, with, &v);
        len += 1 + v.len;
        if (len > b->key_cap) { /* grown to the longest key so far (a message is <= 64 KiB) */
            char *p = realloc(b->key_buf, len);
            if (!p)
                return UINT64_MAX - 1;
            b->key_buf = p;
            b->key_cap = len;
        }
        memcpy(b->key_buf, addr, (size_t)alen);
        b->key_buf[alen] = ' ';
        if (v.len)
            memcpy(b->key_buf + alen + 1, v.p, v.len);
        key = b->key_buf;
    }
    if (n < 0)
        return window_count(w, key, len, box->time);
    return window_add(w, key, len, box->time, (uint32_t)n);
}

static uint64_t api_window_count(const void *w, const char *key, size_t len, uint64_t now_ns)
{
    return window_count(w, key, len, now_ns);
}

/* A new slot number, growing the number arrays when all are in use; 0 when out of memory. */
static int32_t slot_number(struct lb_slots *t)
{
    if (t->n_free)
        return t->free[--t->n_free];
    if (t->n_slots + 1 >= t->cap_slots) {
        uint32_t cap = t->cap_slots ? t->cap_slots * 2 : 1024;
        struct lb_slot_key *by = realloc(t->by_slot, cap * sizeof(*by));
        int32_t *fr;
        if (!by)
            return 0;
        t->by_slot = by;
        fr = realloc(t->free, cap * sizeof(*fr));
        if (!fr)
            return 0;
        t->free = fr;
        t->cap_slots = cap;
    }
    return (int32_t)++t->n_slots;
}

/* The slot of the dispatched call, made when create is set and it has none; 0 for none (or
 * out of memory). */
static int32_t api_dialog_slot(void *bridge, const struct lb_box *box, int create)
{
    struct lua_bridge *b = bridge;
    struct lb_slots *t = &b->running->slots;
    /* The bridge's own field of the call (see sip_dialog.rule_slot). */
    struct sip_dialog *d = (struct sip_dialog *)box->dialog;
    uint32_t gen = (uint32_t)box->d_gen, n;
    int32_t slot;

    if (!d)
        return 0;
    n = d->rule_slot;
    if (n && n <= t->n_slots && t->by_slot[n].dialog == d && t->by_slot[n].gen == gen)
        return (int32_t)n;
    if (!create)
        return 0;
    slot = slot_number(t);
    if (!slot)
        return 0;
    t->by_slot[slot] = (struct lb_slot_key){d, gen};
    d->rule_slot = (uint32_t)slot;
    return slot;
}

/* The running state's call fields of slot, emptied; `used` follows what the store gives back. */
static void call_fields_drop(struct lb_state *s, int32_t slot)
{
    uint64_t before = call_fields_bytes(s->call_fields);
    call_fields_clear(s->call_fields, (uint32_t)slot);
    s->used -= before - call_fields_bytes(s->call_fields);
}

/* Frees a slot number of api_dialog_slot (its Lua data is gone). */
static void api_dialog_slot_free(void *bridge, int32_t slot)
{
    struct lua_bridge *b = bridge;
    struct lb_slots *t = &b->running->slots;

    if (slot <= 0 || (uint32_t)slot > t->n_slots || !t->by_slot[slot].dialog)
        return; /* not a slot, or already free */
    call_fields_drop(b->running, slot);
    t->by_slot[slot].dialog = NULL;
    t->free[t->n_free++] = slot;
}

static double api_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --- native functions (lua_CFunction, the bridge as upvalue 1) ---------------------------- */

static struct lua_bridge *up_bridge(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* declare_label(name, default, max_values) -> index | nil, reason */
static int native_declare_label(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    struct lb_state *s = state_of(L);
    size_t name_len, def_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    const char *def = luaL_checklstring(L, 2, &def_len);
    lua_Number max = luaL_checknumber(L, 3);
    char msg[160];
    int rc;

    /* Before any message that names it: it may be megabytes. The label name is printed on
     * every sample of every sip_ family (metrics.h), the default is a label value. */
    if (name_len > METRICS_MAX_LABEL_NAME_LEN || def_len > METRICS_MAX_SYMBOL_LEN) {
        snprintf(msg, sizeof msg, "label '%.40s%s': the %s is %zu bytes, more than %d", name,
                 name_len > 40 ? "..." : "",
                 name_len > METRICS_MAX_LABEL_NAME_LEN ? "name" : "default",
                 name_len > METRICS_MAX_LABEL_NAME_LEN ? name_len : def_len,
                 name_len > METRICS_MAX_LABEL_NAME_LEN ? METRICS_MAX_LABEL_NAME_LEN
                                                       : METRICS_MAX_SYMBOL_LEN);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    if (!(max >= 1 && max <= OPLABEL_MAX_VALUES) || max != floor(max)) {
        lua_pushnil(L);
        lua_pushfstring(L, "max_values must be a whole number from 1 to %d", OPLABEL_MAX_VALUES);
        return 2;
    }
    if (s->n_labels == TRACK_MAX_LABELS) {
        lua_pushnil(L);
        lua_pushfstring(L, "more than %d labels", TRACK_MAX_LABELS);
        return 2;
    }
    for (size_t i = 0; i < s->n_labels; i++) {
        if (strcmp(s->labels[i].name, name) == 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "label '%s' is declared twice", name);
            return 2;
        }
    }
    if (oplabel_is_reserved(name)) {
        lua_pushnil(L);
        lua_pushfstring(L, "'%s' is a built-in label name", name);
        return 2;
    }
    if (!s->reloading) {
        rc = oplabel_declare(b->ops, name, def, (uint32_t)max);
        if (rc < 0) {
            lua_pushnil(L);
            lua_pushfstring(L, "label '%s': %s", name,
                            rc == -EINVAL ? "invalid name (use [a-zA-Z_][a-zA-Z0-9_]*)"
                                          : strerror(-rc));
            return 2;
        }
    }
    s->labels[s->n_labels].name = strdup(name);
    s->labels[s->n_labels].def = strdup(def);
    s->labels[s->n_labels].max_values = (uint32_t)max;
    if (!s->labels[s->n_labels].name || !s->labels[s->n_labels].def)
        return luaL_error(L, "out of memory");
    lua_pushinteger(L, (lua_Integer)s->n_labels++);
    return 1;
}

static const char *type_name(enum metric_type t)
{
    return t == METRIC_COUNTER ? "counter" : t == METRIC_GAUGE ? "gauge" : "histogram";
}

/* Room for a sample name: a family name and "_bucket". */
#define SAMPLE_NAME_LEN (METRICS_MAX_NAME_LEN + 8)

/* The sample names a family prints (the name itself, or a histogram's three series). */
static size_t sample_names(const char *name, enum metric_type t, char out[3][SAMPLE_NAME_LEN])
{
    if (t != METRIC_HISTOGRAM) {
        snprintf(out[0], SAMPLE_NAME_LEN, "%s", name);
        return 1;
    }
    snprintf(out[0], SAMPLE_NAME_LEN, "%s_bucket", name);
    snprintf(out[1], SAMPLE_NAME_LEN, "%s_sum", name);
    snprintf(out[2], SAMPLE_NAME_LEN, "%s_count", name);
    return 3;
}

static struct lb_family *find_family(struct lua_bridge *b, const char *name)
{
    for (struct lb_family *f = b->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

/* A family whose name or samples clash with name's (a histogram x prints x_count, which a
 * counter x_count would print again: promtool, and Prometheus, refuse the whole scrape); NULL if
 * none. A rule family of the same name is no clash: metrics_family compares the schemas. An
 * engine family of the same name is one. *is_rule tells whose the clash is. */
static const char *clash_with(struct lua_bridge *b, const char *name, enum metric_type t,
                              int *is_rule)
{
    static char clash[SAMPLE_NAME_LEN];
    char mine[3][SAMPLE_NAME_LEN], theirs[3][SAMPLE_NAME_LEN];
    size_t n_mine = sample_names(name, t, mine);
    const char *found = NULL;

    metrics_lock(b->reg);
    for (size_t i = 0; i < metrics_family_count(b->reg) && !found; i++) {
        struct metric_family *f = metrics_family_at(b->reg, i);
        const char *fname = metrics_family_name(f);
        int rule = find_family(b, fname) != NULL;
        size_t n_theirs;
        if (strcmp(fname, name) == 0) {
            if (!rule)
                found = fname;
            continue;
        }
        n_theirs = sample_names(fname, metrics_family_type(f), theirs);
        for (size_t x = 0; x < n_mine && !found; x++)
            for (size_t y = 0; y < n_theirs && !found; y++)
                if (strcmp(mine[x], theirs[y]) == 0)
                    found = fname;
        if (found)
            *is_rule = rule;
    }
    if (found)
        snprintf(clash, sizeof(clash), "%s", found);
    metrics_unlock(b->reg);
    return found ? clash : NULL;
}

/* The arguments of family() and family_check(): (name, help, type, {labels}, {buckets},
 * max_series). The label names stay anchored by their table on the Lua stack. */
struct family_args {
    const char *name, *help;
    enum metric_type type;
    const char *labels[METRICS_MAX_LABELS];
    double buckets[METRICS_MAX_BUCKETS];
    size_t n_labels, n_buckets, cap;
};

/* Pushes nil and which of a's names or help the registry found too long, cut (it may be
 * megabytes), and returns 2. */
static int push_too_long(lua_State *L, const struct family_args *a)
{
    char msg[512];
    size_t n = strlen(a->name);

    if (n > METRICS_MAX_NAME_LEN) {
        snprintf(msg, sizeof msg, "metric '%.40s...': the name is %zu bytes, more than %d", a->name,
                 n, METRICS_MAX_NAME_LEN);
    } else {
        snprintf(msg, sizeof msg, "metric '%s': the help is %zu bytes, more than %d", a->name,
                 a->help ? strlen(a->help) : 0, METRICS_MAX_HELP_LEN);
        for (size_t i = 0; i < a->n_labels; i++) {
            if (a->labels[i] && (n = strlen(a->labels[i])) > METRICS_MAX_LABEL_NAME_LEN) {
                snprintf(msg, sizeof msg,
                         "metric '%s': the label name '%.40s...' is %zu bytes, more than %d",
                         a->name, a->labels[i], n, METRICS_MAX_LABEL_NAME_LEN);
                break;
            }
        }
    }
    lua_pushnil(L);
    lua_pushstring(L, msg);
    return 2;
}

/* Reads the arguments and checks them against the registry; 0, or pushes nil and the reason
 * and returns 2. Nothing is created. */
static int family_args(lua_State *L, struct lua_bridge *b, struct family_args *a)
{
    const char *tname;
    const char *clash;
    int clash_is_rule = 0, rc;

    a->name = luaL_checkstring(L, 1);
    a->help = luaL_optstring(L, 2, NULL);
    tname = luaL_checkstring(L, 3);
    a->cap = (size_t)luaL_checknumber(L, 6);
    luaL_checktype(L, 4, LUA_TTABLE);
    luaL_checktype(L, 5, LUA_TTABLE);
    a->type = strcmp(tname, "counter") == 0 ? METRIC_COUNTER
              : strcmp(tname, "gauge") == 0 ? METRIC_GAUGE
                                            : METRIC_HISTOGRAM;
    a->n_labels = lua_objlen(L, 4);
    a->n_buckets = lua_objlen(L, 5);
    if (a->n_labels > METRICS_MAX_LABELS || a->n_buckets > METRICS_MAX_BUCKETS) {
        lua_pushnil(L);
        lua_pushfstring(L, "at most %d labels and %d buckets", METRICS_MAX_LABELS,
                        METRICS_MAX_BUCKETS);
        return 2;
    }
    for (size_t i = 0; i < a->n_labels; i++) {
        lua_rawgeti(L, 4, (int)i + 1);
        a->labels[i] = lua_tostring(L, -1); /* anchored by the table */
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < a->n_buckets; i++) {
        lua_rawgeti(L, 5, (int)i + 1);
        a->buckets[i] = lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    /* The registry checks; its length errors come first, since the messages below print the
     * name. */
    rc = metrics_family_check(b->reg, a->name, a->help, a->type, a->labels, a->n_labels, a->buckets,
                              a->n_buckets, a->cap);
    if (rc == -ENAMETOOLONG || rc == -EMSGSIZE)
        return push_too_long(L, a);
    clash = clash_with(b, a->name, a->type, &clash_is_rule);
    if (clash) {
        lua_pushnil(L);
        if (clash_is_rule)
            lua_pushfstring(L,
                            "metric '%s' collides with the rule family %s (their samples would "
                            "share a name; a family is kept until restart)",
                            a->name, clash);
        else
            lua_pushfstring(L, "metric '%s' collides with the built-in family %s", a->name,
                            clash);
        return 2;
    }
    if (rc == 0)
        return 0;
    lua_pushnil(L);
    if (rc == -EEXIST)
        lua_pushfstring(L,
                        "metric '%s' was declared before with another type, labels or "
                        "buckets; a family keeps its schema until restart",
                        a->name);
    else
        lua_pushfstring(L, "metric '%s' (%s) is invalid: %s", a->name, type_name(a->type),
                        strerror(-rc));
    return 2;
}

/* family_check(name, help, type, {labels}, {buckets}, max_series) -> true | nil, reason.
 * A reload checks every family before it creates any (metric.lua, commit). */
static int native_family_check(lua_State *L)
{
    struct family_args a;
    int n = family_args(L, up_bridge(L), &a);
    if (n)
        return n;
    lua_pushboolean(L, 1);
    return 1;
}

/* family(name, help, type, {labels}, {buckets}, max_series) -> lightuserdata | nil, reason.
 * Only while committing: the registry gets the family now. */
static int native_family(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    struct family_args a;
    struct metric_family *fam;
    struct lb_family *f;
    int n = family_args(L, b, &a);

    if (n)
        return n;
    fam = metrics_family(b->reg, a.name, a.help, a.type, a.labels, a.n_labels, a.buckets,
                         a.n_buckets, a.cap, 0);
    if (!fam) {
        lua_pushnil(L);
        lua_pushfstring(L, "metric '%s': %s", a.name, strerror(errno ? errno : ENOMEM));
        return 2;
    }
    f = find_family(b, a.name);
    if (!f) {
        f = calloc(1, sizeof(*f));
        if (!f || !(f->name = strdup(a.name))) {
            free(f);
            return luaL_error(L, "out of memory");
        }
        f->fam = fam;
        f->cap = (uint32_t)a.cap;
        f->next = b->families;
        b->families = f;
    }
    f->rule_set = b->rule_set;
    lua_pushlightuserdata(L, f);
    return 1;
}

static uint32_t sym(struct lua_bridge *b, const char *s)
{
    return metrics_intern(b->reg, s, strlen(s));
}

/* count_error(rule, hook, kind) */
static int native_count_error(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    uint32_t k[3] = {sym(b, luaL_checkstring(L, 1)), sym(b, luaL_checkstring(L, 2)),
                     sym(b, luaL_checkstring(L, 3))};
    if (b->f_errors)
        metric_counter_add(metrics_series(b->f_errors, k), 1);
    return 0;
}

/* set_disabled(rule, 0|1) */
static int native_set_disabled(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    uint32_t k = sym(b, luaL_checkstring(L, 1));
    if (b->f_disabled)
        metric_gauge_set(metrics_series(b->f_disabled, &k), luaL_checknumber(L, 2));
    return 0;
}

/* rule_seconds(rule, hook) -> lightuserdata of the timing series */
static int native_rule_seconds(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    uint32_t k[2] = {sym(b, luaL_checkstring(L, 1)), sym(b, luaL_checkstring(L, 2))};
    lua_pushlightuserdata(L, metrics_series(b->f_seconds, k));
    return 1;
}

/* routes[field] (routes at index 1) as a want-flag per method id: true for all, a table of
 * the ids wanted, or nil for none. */
static void route_methods(lua_State *L, const char *field, uint8_t want[SIP_METHOD_COUNT])
{
    lua_getfield(L, 1, field);
    for (int i = 0; i < SIP_METHOD_COUNT; i++) {
        int w = lua_toboolean(L, -1);
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, i);
            w = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        want[i] = (uint8_t)w;
    }
    lua_pop(L, 1);
}

/* set_routes({[type] = true...}, tick): the event types some enabled rule hooks. Applies at
 * once for the running state; a state being loaded keeps them until it is swapped in. */
static int native_set_routes(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    struct lb_state *s = state_of(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    for (int t = 0; t <= TRACK_EVENT_COUNT; t++) {
        lua_rawgeti(L, 1, t);
        s->routes[t] = (uint8_t)lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    /* Calls that rules already reached (a slot: d.vars, d.cdr) keep their ends dispatched after
     * the last rule that sees calls is disabled: their fields still go to their lines and their
     * slots are freed. Until the next reload, then. */
    if (s->slots.n_slots > s->slots.n_free)
        s->routes[TRACK_CALL_END] = 1;
    /* requests / responses / transactions: true for all, or a table of the method ids / status
     * codes wanted; responses[0]: statuses outside 100..699. */
    route_methods(L, "requests", s->msg_routes);
    route_methods(L, "transactions", s->txn_routes);
    lua_getfield(L, 1, "responses");
    for (int i = MSG_ROUTE_RESP; i < MSG_ROUTES; i++) {
        int code = i == MSG_ROUTES - 1 ? 0 : i - MSG_ROUTE_RESP + 100;
        int want = lua_toboolean(L, -1);
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, code);
            want = lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
        s->msg_routes[i] = (uint8_t)want;
    }
    lua_pop(L, 1);
    if (b->cur == s)
        memcpy(b->routes, s->routes, sizeof(b->routes));
    return 0;
}

/* Stack slots cjson.encode may take: 3 per level of nesting (sandbox.lua refuses more than
 * 1,000 levels, cjson's own default), and its frame's own. */
#define JSON_STACK (3 * 1000 + 2 * LUA_MINSTACK)
/* A string's header in the heap, over its bytes (GCstr and the NUL: 25 bytes in LuaJIT). */
#define JSON_STRING_HEAD 64

/* json_encode(encode, value, bound) -> text | nil, reason. A rule's cjson.encode(value), bound
 * being at most the bytes of its text (sandbox.lua, json_bound). cjson builds the text in a
 * buffer from malloc and frees it after lua_pushlstring: when that push fails at the memory
 * cap, the error jumps over the free. 64 MiB leaked so, from one pcall(cjson.encode, s) with
 * a 10 MiB s, each time. So, first, a text that may not fit in the room the heap has left is
 * refused; the stack cjson uses is grown here, where a failure costs nothing; and the reserve
 * (used by trusted code) is open while cjson runs, for what the text's push may add beyond its
 * bytes: the string table doubling. A push that still fails leaks one buffer, and the memory
 * error quarantines the rule. cjson runs no Lua code: no budget stop lands inside it. */
static int native_json_encode(lua_State *L)
{
    struct lb_state *s = state_of(L);
    lua_Number bound = luaL_checknumber(L, 3);
    uint64_t room = s->limit > s->used ? s->limit - s->used : 0;
    int rc;

    luaL_checktype(L, 1, LUA_TFUNCTION);
    if (!(bound >= 0) || bound + JSON_STRING_HEAD > (lua_Number)room) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "the text could take %.0f bytes, more than --lua-memory leaves (%llu bytes)",
                 bound, (unsigned long long)room);
        lua_pushnil(L);
        lua_pushstring(L, msg);
        return 2;
    }
    if (!lua_checkstack(L, JSON_STACK))
        return luaL_error(L, "sipscope: cjson.encode: no stack left");
    lua_settop(L, 2);
    s->grace = s->reserve;
    rc = lua_pcall(L, 1, 1, 0);
    s->grace = 0;
    if (rc != 0)
        return lua_error(L);
    return 1;
}

/* log(level, text): level 0 error, 1 warn, 2 info, 3 debug. Callers rate-limit and cut rules'
 * text; log_msg escapes it (a rule's text is one line) and caps the line. */
static int native_log(lua_State *L)
{
    int level = (int)luaL_checkinteger(L, 1);
    size_t len;
    const char *text = luaL_checklstring(L, 2, &len);
    log_msg((enum log_level)(level < 0 ? 0 : level > 3 ? 3 : level), MOD, "%.*s", (int)len, text);
    return 0;
}

/* Makes room for n more bytes in b->fields (and its closing NUL); 0 when out of memory. */
static int fields_reserve(struct lua_bridge *b, size_t n)
{
    size_t need = b->fields_len + n + 1, cap = b->fields_cap ? b->fields_cap : 256;
    char *p;
    if (need <= b->fields_cap)
        return 1;
    while (cap < need)
        cap *= 2;
    if (!(p = realloc(b->fields, cap))) {
        b->fields_failed = 1;
        return 0;
    }
    b->fields = p;
    b->fields_cap = cap;
    return 1;
}

static void fields_put(struct lua_bridge *b, const char *s, size_t n)
{
    if (fields_reserve(b, n)) {
        memcpy(b->fields + b->fields_len, s, n);
        b->fields_len += n;
    }
}

static void fields_put_string(struct lua_bridge *b, const char *s, size_t len)
{
    size_t need = len * 6 + 2; /* every byte escaped as \u00XX at worst */
    if (fields_reserve(b, need))
        b->fields_len += events_json_string(b->fields + b->fields_len, need, s, len);
}

static int key_cmp(const void *a, const void *b)
{
    const struct event_field *x = a, *y = b;
    /* Field names mostly differ in their first byte: decided there without a call. */
    if (x->name_len && y->name_len && x->name[0] != y->name[0])
        return (unsigned char)x->name[0] - (unsigned char)y->name[0];
    int c = memcmp(x->name, y->name, x->name_len < y->name_len ? x->name_len : y->name_len);
    return c ? c : (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/* A name's first eight bytes as a big-endian number (zeros past its end): comparing two of them
 * orders the names as memcmp would, up to eight bytes. */
static uint64_t name_prefix(const struct event_field *f)
{
    uint64_t v = 0;
    memcpy(&v, f->name, f->name_len < 8 ? f->name_len : 8);
    return __builtin_bswap64(v);
}

/* Bytewise order of the names. A dozen fields (a CDR's) are insertion-sorted on their first
 * eight bytes, the full compare only for ties: a call per comparison was a fifth of encoding a
 * line. */
static void sort_keys(struct event_field *k, size_t n)
{
    uint64_t pre[16];

    if (n > 16) {
        qsort(k, n, sizeof(*k), key_cmp);
        return;
    }
    for (size_t i = 0; i < n; i++)
        pre[i] = name_prefix(&k[i]);
    for (size_t i = 1; i < n; i++) {
        struct event_field x = k[i];
        uint64_t px = pre[i];
        size_t j = i;
        for (; j > 0 && (pre[j - 1] > px || (pre[j - 1] == px && key_cmp(&k[j - 1], &x) > 0));
             j--) {
            k[j] = k[j - 1];
            pre[j] = pre[j - 1];
        }
        k[j] = x;
        pre[j] = px;
    }
}

/* A field name as a JSON key with its colon. Names are identifiers (the proxies check them on
 * write), which need no escaping: copied at once; anything else goes through the escaper. */
static void fields_put_name(struct lua_bridge *b, const char *s, size_t len)
{
    if (events_json_plain(s, len) < len) {
        fields_put_string(b, s, len);
        fields_put(b, ":", 1);
        return;
    }
    if (fields_reserve(b, len + 3)) {
        char *o = b->fields + b->fields_len;
        o[0] = '"';
        memcpy(o + 1, s, len);
        o[len + 1] = '"';
        o[len + 2] = ':';
        b->fields_len += len + 3;
    }
}

/* Room for n fields in b->keys; 0 when out of memory (the fields are then dropped). */
static int keys_reserve(struct lua_bridge *b, size_t n)
{
    size_t cap = b->keys_cap ? b->keys_cap : 16;
    struct event_field *k;

    if (n <= b->keys_cap)
        return 1;
    while (cap < n)
        cap *= 2;
    if (!(k = realloc(b->keys, cap * sizeof(*k)))) {
        b->fields_failed = 1;
        return 0;
    }
    b->keys = k;
    b->keys_cap = cap;
    return 1;
}

/* Writes b->keys[0..n) into b->fields as JSON members ("a":1,"b":"x") in bytewise name order,
 * so that lines are stable. Strings are escaped as the events writer escapes its own (invalid
 * UTF-8 replaced by U+FFFD); finite numbers as the exposition writes them (integers plainly,
 * others in the shortest form that reads back exactly); booleans; anything else null. Out of
 * memory, the fields are dropped; the event is still written. */
static void encode_fields(struct lua_bridge *b, size_t n)
{
    b->fields_len = 0;
    b->fields_failed = 0;
    sort_keys(b->keys, n);
    for (size_t i = 0; i < n; i++) {
        const struct event_field *f = &b->keys[i];
        char num[EXPO_NUMBER_MAX];
        if (i)
            fields_put(b, ",", 1);
        fields_put_name(b, f->name, f->name_len);
        switch (f->type) {
        case EVENT_FIELD_STRING:
            fields_put_string(b, f->str, f->str_len);
            break;
        case EVENT_FIELD_NUMBER:
            if (isfinite(f->num))
                fields_put(b, num, expo_number(f->num, num));
            else
                fields_put(b, "null", 4);
            break;
        case EVENT_FIELD_BOOLEAN:
            if (f->boolean)
                fields_put(b, "true", 4);
            else
                fields_put(b, "false", 5);
            break;
        default:
            fields_put(b, "null", 4);
        }
    }
    if (b->fields_failed)
        b->fields_len = 0;
    if (b->fields)
        b->fields[b->fields_len] = 0;
}

/* event_fields(t): the flat table of fields rules added to the registration change being
 * dispatched (r.event), encoded by encode_fields. Keys that are not strings are left out.
 * Each field is read once, in the table walk, into b->keys: the strings point into the table,
 * which keeps them alive while this runs (nothing it calls allocates), and the Lua stack stays
 * as it is. Calls' fields (d.cdr) are kept in C instead (call_fields, api_call_fields_take). */
static int native_event_fields(lua_State *L)
{
    struct lua_bridge *b = up_bridge(L);
    size_t n = 0;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    b->fields_len = 0;
    b->fields_failed = 0;
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING) {
            lua_pop(L, 1);
            continue;
        }
        if (!keys_reserve(b, n + 1))
            return 0; /* out of memory: no fields */
        struct event_field *f = &b->keys[n++];
        f->name = lua_tolstring(L, -2, &f->name_len);
        switch (lua_type(L, -1)) {
        case LUA_TSTRING:
            f->type = EVENT_FIELD_STRING;
            f->str = lua_tolstring(L, -1, &f->str_len);
            break;
        case LUA_TNUMBER:
            f->type = EVENT_FIELD_NUMBER;
            f->num = lua_tonumber(L, -1);
            break;
        case LUA_TBOOLEAN:
            f->type = EVENT_FIELD_BOOLEAN;
            f->boolean = lua_toboolean(L, -1);
            break;
        default:
            f->type = EVENT_FIELD_NULL;
        }
        lua_pop(L, 1);
    }
    encode_fields(b, n);
    return 0;
}

/* d.cdr.name = value for the call in slot (Lua checked the name and the value): type is an
 * enum event_field_type (EVENT_FIELD_NONE removes the field), a boolean's value is num != 0.
 * The store's growth counts against the Lua memory cap. Returns 0, -ENOMEM (the rule gets an
 * error) or -EINVAL. */
static int api_call_field_set(void *bridge, int32_t slot, const char *name, size_t len, int type,
                              const char *str, size_t str_len, double num)
{
    struct lua_bridge *b = bridge;
    struct lb_state *s = b->running;
    struct event_field f = {name, len, (enum event_field_type)type, str, str_len, num, num != 0};
    uint64_t before = call_fields_bytes(s->call_fields);
    int rc;

    if (slot <= 0)
        return -EINVAL;
    rc = call_fields_set(s->call_fields, (uint32_t)slot, &f,
                         s->limit > s->used ? s->limit - s->used : 0);
    s->used += call_fields_bytes(s->call_fields) - before;
    if (rc == -ENOMEM)
        b->box.mem_fail = 1; /* the rule's error counts as kind="memory", as a Lua allocation's */
    return rc;
}

/* d.cdr.name: its type (enum event_field_type, EVENT_FIELD_NONE when unset) and value in *out,
 * pointing into the store until the call's next write. */
static int api_call_field_get(void *bridge, int32_t slot, const char *name, size_t len,
                              struct lb_field *out)
{
    struct lua_bridge *b = bridge;
    struct event_field f;
    enum event_field_type type;

    if (slot <= 0)
        return EVENT_FIELD_NONE;
    *out = (struct lb_field){NULL, 0, 0, 0};
    type = call_fields_get(b->running->call_fields, (uint32_t)slot, name, len, &f);
    if (type != EVENT_FIELD_NONE) /* f is only filled then */
        *out = (struct lb_field){f.str, f.str_len, f.num, f.boolean};
    return type;
}

/* The call in slot ended: its fields become the members lua_bridge_event_fields hands to the
 * events writer (when an events file is written) and leave the store. */
static void api_call_fields_take(void *bridge, int32_t slot)
{
    struct lua_bridge *b = bridge;
    struct lb_state *s = b->running;
    size_t n;

    if (slot <= 0)
        return;
    n = call_fields_count(s->call_fields, (uint32_t)slot);
    if (b->cfg.event_fields && n && keys_reserve(b, n)) {
        call_fields_list(s->call_fields, (uint32_t)slot, b->keys, n);
        encode_fields(b, n);
    }
    call_fields_drop(s, slot);
}

/* copier:copy(m, d.cdr): each of the copier's n fields, from the message being dispatched, into
 * the call's fields in slot, as m:copy_to and m:copy_header_to would write them one by one (an
 * absent value removes the field), in one call from Lua instead of one per field. Returns 0, or
 * api_call_field_set's error at the first field that fails. */
static int api_call_fields_copy(void *bridge, int32_t slot, const struct lb_copy *fields,
                                int32_t n)
{
    struct lua_bridge *b = bridge;
    const struct lb_box *box = &b->box;

    for (int32_t i = 0; i < n; i++) {
        const struct lb_copy *c = &fields[i];
        struct lb_slice v = {NULL, 0};
        char addr[64];
        int type = EVENT_FIELD_STRING, rc;
        double num = 0;

        switch ((enum lb_copy_kind)c->kind) {
        case LB_COPY_ADDR: {
            int len = api_msg_addr(box, c->arg, addr, sizeof(addr));
            v = (struct lb_slice){addr, len > 0 ? (size_t)len : 0};
            if (len <= 0)
                type = EVENT_FIELD_NONE;
            break;
        }
        case LB_COPY_PORT:
            type = EVENT_FIELD_NUMBER;
            num = c->arg ? box->dport : box->sport;
            break;
        case LB_COPY_TRANSPORT:
            if (box->l4 == IPPROTO_UDP)
                v = (struct lb_slice){"udp", 3};
            else if (box->l4 == IPPROTO_TCP)
                v = (struct lb_slice){"tcp", 3};
            else if (box->l4 == LB_L4_WS)
                v = (struct lb_slice){"ws", 2};
            else
                type = EVENT_FIELD_NONE;
            break;
        case LB_COPY_STR:
            if (!api_msg_str(box, c->arg, &v))
                type = EVENT_FIELD_NONE;
            break;
        case LB_COPY_HEADER:
            if (!first_header(box, c->arg, c->header, c->header_len, &v)) {
                type = EVENT_FIELD_NONE;
            } else if (c->max >= 0 && v.len > (size_t)c->max) {
                const unsigned char *u = (const unsigned char *)v.p;
                v.len = (size_t)c->max;
                while (v.len > 0 && (u[v.len] & 0xC0) == 0x80) /* u[len]: the first byte cut */
                    v.len--;
            }
            break;
        default: /* Lua builds no other kind; nothing rather than a guess */
            type = EVENT_FIELD_NONE;
        }
        rc = api_call_field_set(bridge, slot, c->name, c->name_len, type, v.p, v.len, num);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void *keep_helper(lua_State *L, enum lb_helper_kind kind, void *obj)
{
    struct lb_state *s = state_of(L);
    if (!obj)
        return NULL;
    if (s->n_helpers == MAX_HELPERS) {
        if (kind == H_CIDR)
            cidr_free(obj);
        else if (kind == H_CLASSIFY)
            classify_free(obj);
        else
            window_free(obj);
        return NULL;
    }
    s->helpers[s->n_helpers++] = (struct lb_helper){kind, obj};
    return obj;
}

/* cidr_new(max_prefixes) -> lightuserdata | nil, reason */
static int native_cidr_new(lua_State *L)
{
    lua_Number max = luaL_checknumber(L, 1);
    void *set = max >= 1 && max <= CIDR_MAX_PREFIXES ? cidr_new((uint32_t)max) : NULL;
    if (!(set = keep_helper(L, H_CIDR, set))) {
        lua_pushnil(L);
        lua_pushfstring(L,
                        "cannot create a CIDR set of %d prefixes (at most %d sets of at most "
                        "%d prefixes)",
                        (int)max, MAX_HELPERS, (int)CIDR_MAX_PREFIXES);
        return 2;
    }
    lua_pushlightuserdata(L, set);
    return 1;
}

/* cidr_add(set, text, value) -> true | nil, reason */
static int native_cidr_add(lua_State *L)
{
    char err[256];
    void *set = lua_touserdata(L, 1);
    const char *text = luaL_checkstring(L, 2);
    int rc = cidr_add(set, text, (int32_t)luaL_checkinteger(L, 3), err, sizeof(err));
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, rc == -EINVAL ? err : strerror(-rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* classify_new(max_rules) -> lightuserdata | nil, reason */
static int native_classify_new(lua_State *L)
{
    lua_Number max = luaL_checknumber(L, 1);
    void *c = max >= 1 && max <= CLASSIFY_MAX_RULES ? classify_new((uint32_t)max) : NULL;
    if (!(c = keep_helper(L, H_CLASSIFY, c))) {
        lua_pushnil(L);
        lua_pushfstring(L, "cannot create a classifier of %d rules (at most %d)", (int)max,
                        CLASSIFY_MAX_RULES);
        return 2;
    }
    lua_pushlightuserdata(L, c);
    return 1;
}

/* classify_add(c, kind, pattern, nocase, class) -> true | nil, reason */
static int native_classify_add(lua_State *L)
{
    char err[320];
    void *c = lua_touserdata(L, 1);
    size_t klen, plen;
    const char *kind = luaL_checklstring(L, 2, &klen);
    const char *pattern = luaL_checklstring(L, 3, &plen);
    int k = classify_kind_parse(kind, klen);
    int rc;

    if (k < 0) {
        lua_pushnil(L);
        lua_pushfstring(L, "unknown rule kind '%s' (exact, prefix, suffix, contains, glob)", kind);
        return 2;
    }
    rc = classify_add(c, (enum classify_kind)k, pattern, plen,
                      lua_toboolean(L, 4) ? CLASSIFY_NOCASE : 0, (int32_t)luaL_checkinteger(L, 5),
                      err, sizeof(err));
    if (rc != 0) {
        lua_pushnil(L);
        lua_pushstring(L, rc == -EINVAL || rc == -E2BIG ? err : strerror(-rc));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* window_new(seconds, buckets, max_keys) -> lightuserdata | nil, reason */
static int native_window_new(lua_State *L)
{
    lua_Number secs = luaL_checknumber(L, 1);
    lua_Number buckets = luaL_checknumber(L, 2);
    lua_Number keys = luaL_checknumber(L, 3);
    uint64_t ns = secs > 0 && secs <= 86400 * 366 ? (uint64_t)(secs * 1e9) : 0;
    struct lb_state *s = state_of(L);
    void *w = NULL;

    if (ns && buckets >= 1 && buckets <= WINDOW_MAX_BUCKETS && keys >= 1 &&
        keys <= WINDOW_MAX_KEYS) {
        /* Its keys' memory is the rule's too: counted against --lua-memory in full at once,
         * since the window fills as traffic comes, long after the rule loaded. */
        size_t bytes = window_bytes((uint32_t)buckets, (uint32_t)keys);
        uint64_t room = s->limit > s->used ? s->limit - s->used : 0;
        if (bytes > room) {
            lua_pushnil(L);
            lua_pushfstring(L,
                            "a window of %d keys and %d buckets holds up to %d KiB, more than "
                            "--lua-memory leaves (%d KiB)",
                            (int)keys, (int)buckets, (int)(bytes >> 10), (int)(room >> 10));
            return 2;
        }
        ns -= ns % (uint64_t)buckets; /* window_new wants a multiple of the bucket count */
        w = ns ? window_new(ns, (uint32_t)buckets, (uint32_t)keys) : NULL;
        if (w)
            s->used += bytes;
    }
    if (!(w = keep_helper(L, H_WINDOW, w))) {
        lua_pushnil(L);
        lua_pushfstring(L,
                        "cannot create a window of %f s, %d buckets, %d keys (buckets 1..%d, "
                        "keys 1..%d)",
                        secs, (int)buckets, (int)keys, WINDOW_MAX_BUCKETS, (int)WINDOW_MAX_KEYS);
        return 2;
    }
    lua_pushlightuserdata(L, w);
    return 1;
}

/* names() -> {methods = {[0] = "other", "INVITE"...}, states, ends, changes} */
static int native_names(lua_State *L)
{
    lua_createtable(L, 0, 4);
    lua_createtable(L, SIP_METHOD_COUNT, 1);
    for (int m = 0; m < SIP_METHOD_COUNT; m++) {
        lua_pushstring(L, sip_method_name((enum sip_method)m));
        lua_rawseti(L, -2, m);
    }
    lua_setfield(L, -2, "methods");
    lua_createtable(L, SIP_DIALOG_STATE_COUNT, 1);
    for (int i = 0; i < SIP_DIALOG_STATE_COUNT; i++) {
        lua_pushstring(L, sip_dialog_state_name((enum sip_dialog_state)i));
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "states");
    lua_createtable(L, SIP_END_COUNT, 1);
    for (int i = 0; i < SIP_END_COUNT; i++) {
        lua_pushstring(L, sip_dialog_end_name((enum sip_dialog_end)i));
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "ends");
    lua_createtable(L, SIP_BINDING_CHANGE_COUNT, 1);
    for (int i = 0; i < SIP_BINDING_CHANGE_COUNT; i++) {
        lua_pushstring(L, sip_binding_change_name((enum sip_binding_change)i));
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "changes");
    return 1;
}

/* --- states ------------------------------------------------------------------------------- */

/* package.preload[name] = chunk, for each module compiled into the binary. */
static void preload_embedded(lua_State *L)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "preload");
    for (const struct lua_embedded *m = lua_embedded_modules; m->name; m++) {
        if (luaL_loadbuffer(L, (const char *)m->data, m->len, m->name) != 0) {
            lua_pop(L, 1);
            continue;
        }
        lua_setfield(L, -2, m->name);
    }
    lua_pop(L, 2);
}

static void close_state(struct lb_state *s)
{
    if (!s)
        return;
    if (s->L)
        lua_close(s->L);
    lua_heap_free(s->heap);
    call_fields_free(s->call_fields);
    free(s->slots.by_slot);
    free(s->slots.free);
    for (size_t i = 0; i < s->n_helpers; i++) {
        if (s->helpers[i].kind == H_CIDR)
            cidr_free(s->helpers[i].obj);
        else if (s->helpers[i].kind == H_CLASSIFY)
            classify_free(s->helpers[i].obj);
        else
            window_free(s->helpers[i].obj);
    }
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->labels[i].name);
        free(s->labels[i].def);
    }
    free(s);
}

/* The engine, not the rule that happens to be running, pays for garbage collection. LuaJIT's
 * own steps run inside whatever code allocates, and one of them can be the atomic phase, the
 * traversal of a large table or a resize of the string table: milliseconds on a heap of tens
 * of MiB, enough to stop a healthy rule at its budget. So the automatic steps are off
 * (LUA_GCSTOP) and the collector runs here, between entries and outside every budget, at
 * LuaJIT's default pace: a cycle starts once the heap has doubled since the last one ended
 * (pause 200%), and then each step does the work of twice the bytes allocated since the
 * previous one (step multiplier 200) until the cycle ends. Steps are at least GC_STEP_BYTES
 * apart, so that most entries pay one comparison. Within one entry garbage is not collected;
 * enter() still runs a full collection when the heap nears the cap. */
#define GC_STEP_BYTES (64u << 10)
#define GC_MIN_HEAP (1u << 20)

static void gc_restart_pause(struct lb_state *s)
{
    s->gc_mark = s->allocated;
    s->gc_resume = s->used * 2 > GC_MIN_HEAP ? s->used * 2 : GC_MIN_HEAP;
}

/* Collections run between rule calls are charged to no rule's budget: their CPU time is
 * counted in sipscope_lua_gc_seconds_total{kind}, so that a rule that keeps most of the cap
 * live (every collection then walks it) shows there. */
static void gc_charge(struct metric_series *seconds, uint64_t since)
{
    if (seconds)
        metric_counter_add(seconds, (double)(cpu_ns(CLOCK_THREAD_CPUTIME_ID) - since) / 1e9);
}

static void gc_pace(struct lua_bridge *b, struct lb_state *s)
{
    uint64_t debt = s->allocated - s->gc_mark, t0;

    if (debt < GC_STEP_BYTES)
        return;
    if (s->used < s->gc_resume) { /* between cycles */
        s->gc_mark = s->allocated;
        return;
    }
    s->gc_mark = s->allocated;
    t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
    if (lua_gc(s->L, LUA_GCSTEP, (int)(debt >> 10)))
        gc_restart_pause(s); /* the cycle ended */
    lua_gc(s->L, LUA_GCSTOP, 0); /* a step sets the collector's own threshold again */
    gc_charge(b->s_gc_step, t0);
}

/* Runs the function on the stack (below its nargs arguments) as one entry: the watchdog watches
 * it, handles of the dispatch die with it. Returns the lua_pcall status; on failure the error
 * value is left on the stack. */
static int enter(struct lua_bridge *b, struct lb_state *s, int nargs, int nresults)
{
    int rc;

    if (__atomic_load_n(&b->watchdog_asleep, __ATOMIC_RELAXED))
        watchdog_rouse(b);
    b->running = s;
    b->entries++;
    b->box.seq++;
    __atomic_store_n(&b->rehash_start, 0, __ATOMIC_RELAXED); /* a rehash never spans entries */
    __atomic_store_n(&b->box.in_lua, 1, __ATOMIC_RELAXED);
    rc = lua_pcall(s->L, nargs, nresults, 0);
    __atomic_store_n(&b->box.in_lua, 0, __ATOMIC_RELAXED);
    b->box.gen = 0;
    b->box.in_rule = 0;
    b->box.stopped = 0; /* a stop that ended the entry itself (outside any dispatcher) */
    if (b->hook_armed) {
        lua_sethook(s->L, NULL, 0, 0);
        b->hook_armed = 0;
    }
    /* Collect when the heap nears the cap and has grown since the last full collection, so
     * garbage alone never makes a rule fail; the condition keeps full collections amortised.
     * The growth allowed is an eighth of the cap, but at most half the room the live heap
     * leaves: with a rule holding most of the cap (live, under it), an eighth could reach past
     * the cap, garbage was then never collected, and the next rule to allocate failed for it. */
    uint64_t room = s->limit > s->gc_floor ? s->limit - s->gc_floor : 0;
    uint64_t growth = room / 2 < s->limit / 8 ? room / 2 : s->limit / 8;
    if (s->used > s->limit - s->limit / 4 && s->used > s->gc_floor + growth) {
        uint64_t t0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID);
        lua_gc(s->L, LUA_GCCOLLECT, 0);
        lua_gc(s->L, LUA_GCSTOP, 0);
        s->gc_floor = s->used;
        gc_restart_pause(s);
        gc_charge(b->s_gc_full_seconds, t0);
        if (b->s_gc_full)
            metric_counter_add(b->s_gc_full, 1);
    } else {
        gc_pace(b, s);
    }
    return rc;
}

static const char *error_text(lua_State *L, int idx)
{
    if (lua_touserdata(L, idx) == (void *)&timeout_token)
        return "ran past the rule budget";
    if (lua_isstring(L, idx))
        return lua_tostring(L, idx);
    return "(error object is not a string)";
}

/* An entry whose dispatcher itself failed (memory exhausted in trusted code, a budget stop
 * between rules): counted against the pseudo-rule "sipscope". */
static void entry_failed(struct lua_bridge *b, struct lb_state *s, const char *hook)
{
    static bool logged;
    const char *kind = b->box.mem_fail                                      ? "memory"
                       : lua_touserdata(s->L, -1) == (void *)&timeout_token ? "timeout"
                                                                            : "runtime";
    uint32_t k[3] = {sym(b, "sipscope"), sym(b, hook), sym(b, kind)};
    if (b->f_errors)
        metric_counter_add(metrics_series(b->f_errors, k), 1);
    log_once(&logged, LOG_WARN, MOD, "rule dispatcher failed in %s: %s (counted)", hook,
             error_text(s->L, -1));
    lua_pop(s->L, 1);
    b->box.mem_fail = 0;
}

static int push_native(lua_State *L, struct lua_bridge *b)
{
    static const luaL_Reg fns[] = {
        {"declare_label", native_declare_label},
        {"family", native_family},
        {"family_check", native_family_check},
        {"count_error", native_count_error},
        {"set_disabled", native_set_disabled},
        {"rule_seconds", native_rule_seconds},
        {"set_routes", native_set_routes},
        {"log", native_log},
        {"json_encode", native_json_encode},
        {"event_fields", native_event_fields},
        {"names", native_names},
        {"cidr_new", native_cidr_new},
        {"cidr_add", native_cidr_add},
        {"classify_new", native_classify_new},
        {"classify_add", native_classify_add},
        {"window_new", native_window_new},
        {NULL, NULL},
    };
    lua_newtable(L);
    for (const luaL_Reg *f = fns; f->name; f++) {
        lua_pushlightuserdata(L, b);
        lua_pushcclosure(L, f->func, 1);
        lua_setfield(L, -2, f->name);
    }
    return 1;
}

/* Builds the trusted part of a state: libraries, the sipscope modules, core.init(). */
static int state_setup(lua_State *L)
{
    struct lb_state *s = lua_touserdata(L, 1);
    struct lua_bridge *b = s->b;

    luaL_openlibs(L);
    preload_embedded(L);
    /* package.loaded["sipscope.mailbox"]: the mailbox and the FFI table, known before the
     * modules load so that they hold them in constants the JIT compiles in. */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "loaded");
    lua_createtable(L, 0, 2);
    lua_pushlightuserdata(L, &b->box);
    lua_setfield(L, -2, "box");
    lua_pushlightuserdata(L, &b->api);
    lua_setfield(L, -2, "api");
    lua_setfield(L, -2, "sipscope.mailbox");
    lua_pop(L, 2);
    lua_getglobal(L, "require");
    lua_pushstring(L, "sipscope.core");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "init");
    lua_pushlightuserdata(L, &b->box);
    lua_pushlightuserdata(L, &b->api);
    push_native(L, b);
    lua_pushlightuserdata(L, (void *)&timeout_token);
    lua_createtable(L, 0, 12);
    lua_pushinteger(L, (lua_Integer)sizeof(struct lb_box));
    lua_setfield(L, -2, "box_size");
    lua_pushinteger(L, (lua_Integer)sizeof(struct lb_api));
    lua_setfield(L, -2, "api_size");
    lua_pushinteger(L, (lua_Integer)sizeof(struct lb_copy));
    lua_setfield(L, -2, "copy_size");
    lua_pushnumber(L, (lua_Number)b->cfg.max_series);
    lua_setfield(L, -2, "max_series");
    lua_pushinteger(L, METRICS_MAX_NAME_LEN);
    lua_setfield(L, -2, "max_name_len");
    lua_pushinteger(L, METRICS_MAX_LABEL_NAME_LEN);
    lua_setfield(L, -2, "max_label_name_len");
    lua_pushinteger(L, METRICS_MAX_HELP_LEN);
    lua_setfield(L, -2, "max_help_len");
    lua_pushnumber(L, (lua_Number)b->cfg.breaker_errors);
    lua_setfield(L, -2, "breaker_errors");
    lua_pushnumber(L, (lua_Number)b->cfg.breaker_timeouts);
    lua_setfield(L, -2, "breaker_timeouts");
    lua_pushboolean(L, b->cfg.event_fields);
    lua_setfield(L, -2, "event_fields");
    lua_createtable(L, CALL_CDR_FIELD_COUNT, 0);
    for (int f = 0, n = 0; f < CALL_CDR_FIELD_COUNT; f++) {
        if (b->cfg.event_fields && (b->cfg.engine_fields & (1u << f))) {
            lua_pushstring(L, call_cdr_field_name((enum call_cdr_field)f));
            lua_rawseti(L, -2, ++n);
        }
    }
    lua_setfield(L, -2, "engine_fields");
    lua_pushboolean(L, b->cfg.jit_log);
    lua_setfield(L, -2, "jit_log");
    lua_pushstring(L, SIPSCOPE_CJSON_PATH);
    lua_setfield(L, -2, "cjson_path");
    lua_pushnumber(L, (lua_Number)b->cfg.memory_limit);
    lua_setfield(L, -2, "memory_limit");
    lua_pushstring(L, SIPSCOPE_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushinteger(L, TRACK_EVENT_COUNT);
    lua_setfield(L, -2, "tick_route");
    lua_call(L, 5, 0);
    s->core_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static struct lb_state *state_new(struct lua_bridge *b, char *err, size_t errlen)
{
    struct lb_state *s = calloc(1, sizeof(*s));
    int rc;

    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->b = b;
    s->limit = b->cfg.memory_limit;
    /* Room for the dispatchers to report a rule that used the whole cap. */
    s->reserve = s->limit / 16 > (1u << 20) ? s->limit / 16 : (1u << 20);
    s->heap = lua_heap_new();
    s->call_fields = call_fields_new();
    s->L = s->heap && s->call_fields ? lua_newstate(lb_alloc, s) : NULL;
    if (!s->L) {
        lua_heap_free(s->heap);
        call_fields_free(s->call_fields);
        snprintf(err, errlen, "cannot create a Lua state within --lua-memory %llu bytes",
                 (unsigned long long)s->limit);
        free(s);
        return NULL;
    }
    lua_gc(s->L, LUA_GCSTOP, 0); /* paced by gc_pace */
    gc_restart_pause(s);
    lua_pushcfunction(s->L, state_setup);
    lua_pushlightuserdata(s->L, s);
    b->box.in_rule = 0;
    rc = enter(b, s, 1, 0);
    if (rc != 0) {
        snprintf(err, errlen, "cannot set up the Lua state: %s", error_text(s->L, -1));
        close_state(s);
        return NULL;
    }
    for (int k = 0; k < K_COUNT; k++) {
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->core_ref);
        lua_getfield(s->L, -1, kind_fn[k]);
        s->fn_ref[k] = luaL_ref(s->L, LUA_REGISTRYINDEX);
        lua_pop(s->L, 1);
    }
    /* The dispatch functions also stay at the bottom of the stack (index k + 1): an entry
     * pushes one with lua_pushvalue, cheaper than a registry lookup. Everything else keeps
     * the stack balanced above them. */
    if (!lua_checkstack(s->L, K_COUNT + LUA_MINSTACK)) {
        snprintf(err, errlen, "cannot set up the Lua state: out of memory");
        close_state(s);
        return NULL;
    }
    for (int k = 0; k < K_COUNT; k++)
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->fn_ref[k]);
    return s;
}

/* Calls core[fn](args...) as an entry; returns 0, or -EINVAL with the error in err. */
/* The reason of a failed call into the core (a rule's load above all). The API raises its
 * errors as "sipscope: sip.label ...", after the rule's location ("r.lua:2: sipscope:
 * sip.label ..."), and main prints the reason after its own "sipscope: ": the API's prefix,
 * after the location or at the start, is dropped so that it is said once. Errors of hooks
 * do not come through here. */
static void core_error(char *err, size_t errlen, const char *text)
{
    static const char api[] = "sipscope: ";
    const char *p = strstr(text, ": sipscope: ");

    if (strncmp(text, api, sizeof(api) - 1) == 0)
        snprintf(err, errlen, "%s", text + sizeof(api) - 1);
    else if (p)
        snprintf(err, errlen, "%.*s: %s", (int)(p - text), text, p + 2 + sizeof(api) - 1);
    else
        snprintf(err, errlen, "%s", text);
}

static int call_core(struct lua_bridge *b, struct lb_state *s, const char *fn, int nargs,
                     int nresults, char *err, size_t errlen)
{
    int rc;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->core_ref);
    lua_getfield(s->L, -1, fn);
    lua_remove(s->L, -2);
    lua_insert(s->L, -1 - nargs);
    rc = enter(b, s, nargs, nresults);
    if (rc != 0) {
        core_error(err, errlen, error_text(s->L, -1));
        lua_pop(s->L, 1);
        b->box.mem_fail = 0;
        return -EINVAL;
    }
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_list(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static int has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The rule files to load, in order: a sorted directory listing or the configured list. */
static int list_rules(struct lua_bridge *b, char ***out, size_t *n_out, char *err, size_t errlen)
{
    char **list = NULL;
    size_t n = 0;
    DIR *dir;
    struct dirent *de;

    if (!b->rules_dir) {
        list = calloc(b->n_rule_files + 1, sizeof(*list));
        if (!list)
            goto nomem;
        for (; n < b->n_rule_files; n++)
            if (!(list[n] = strdup(b->rule_files[n])))
                goto nomem;
        *out = list;
        *n_out = n;
        return 0;
    }
    dir = opendir(b->rules_dir);
    if (!dir) {
        snprintf(err, errlen, "cannot open the rules directory %s: %s", b->rules_dir,
                 strerror(errno));
        return -errno;
    }
    list = calloc(MAX_RULES, sizeof(*list));
    while (list && (de = readdir(dir)) != NULL) {
        char path[4096];
        if (de->d_name[0] == '.' || !has_suffix(de->d_name, ".lua") ||
            has_suffix(de->d_name, "_spec.lua"))
            continue;
        if (n == MAX_RULES) {
            snprintf(err, errlen, "more than %d rule files in %s", MAX_RULES, b->rules_dir);
            closedir(dir);
            free_list(list, n);
            return -E2BIG;
        }
        snprintf(path, sizeof(path), "%s/%s", b->rules_dir, de->d_name);
        if (!(list[n] = strdup(path))) {
            closedir(dir);
            goto nomem;
        }
        n++;
    }
    if (dir)
        closedir(dir);
    if (!list)
        goto nomem;
    qsort(list, n, sizeof(*list), cmp_names);
    *out = list;
    *n_out = n;
    return 0;
nomem:
    free_list(list, n);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    buf = malloc(MAX_RULE_FILE + 1);
    n = buf ? fread(buf, 1, MAX_RULE_FILE + 1, f) : 0;
    if (!buf || ferror(f) || n > MAX_RULE_FILE) {
        snprintf(err, errlen, "cannot read %s: %s", path,
                 !buf                ? "out of memory"
                 : n > MAX_RULE_FILE ? "larger than 4 MiB"
                                     : "read error");
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The rule's name: its file name without ".lua". */
static void rule_name(const char *path, char *out, size_t outlen)
{
    const char *base = strrchr(path, '/');
    size_t n;
    base = base ? base + 1 : path;
    n = strlen(base) - 4;
    snprintf(out, outlen, "%.*s", (int)n, base);
}

static int load_rules(struct lua_bridge *b, struct lb_state *s, char *err, size_t errlen)
{
    char **files = NULL;
    size_t n = 0;
    int rc = list_rules(b, &files, &n, err, errlen);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        char name[256], chunkname[4200];
        size_t len;
        char *text = read_file(files[i], &len, err, errlen);
        if (!text) {
            rc = -EIO;
            break;
        }
        rule_name(files[i], name, sizeof(name));
        snprintf(chunkname, sizeof(chunkname), "@%s", files[i]);
        lua_pushstring(s->L, name);
        /* Text only: LuaJIT does not verify bytecode, and a crafted dump could read and write
         * any memory of the process, whatever the sandbox. */
        if (luaL_loadbufferx(s->L, text, len, chunkname, "t") != 0) {
            if (len && text[0] == '\033') /* the signature of a binary chunk */
                snprintf(err, errlen, "%s: a rule file must be Lua source, not bytecode",
                         files[i]);
            else
                snprintf(err, errlen, "%s", error_text(s->L, -1));
            lua_pop(s->L, 2);
            free(text);
            rc = -EINVAL;
            break;
        }
        free(text);
        lua_pushstring(s->L, files[i]);
        rc = call_core(b, s, "add_rule", 3, 0, err, errlen);
        s->n_rules++;
    }
    free_list(files, n);
    if (rc == 0)
        rc = call_core(b, s, "finish_load", 0, 0, err, errlen);
    return rc;
}

static int declare_own_families(struct lua_bridge *b)
{
    static const char *const rhk[] = {"rule", "hook", "kind"};
    static const char *const rh[] = {"rule", "hook"};
    static const char *const r[] = {"rule"};
    static const char *const res[] = {"result"};
    static const double secs[] = {1e-6, 5e-6, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2};

    b->f_errors = metrics_family(b->reg, "sipscope_rule_errors_total",
                                 "Failed calls into rules, by rule, hook and kind "
                                 "(runtime, timeout, memory, api).",
                                 METRIC_COUNTER, rhk, 3, NULL, 0, 10000, 0);
    b->f_disabled = metrics_family(b->reg, "sipscope_rule_disabled",
                                   "1 while a rule is disabled by its breaker (until reload).",
                                   METRIC_GAUGE, r, 1, NULL, 0, 1000, 0);
    b->f_seconds = metrics_family(
        b->reg, "sipscope_rule_seconds", "Time spent in rule hooks, sampled one dispatch in 64.",
        METRIC_HISTOGRAM, rh, 2, secs, sizeof(secs) / sizeof(secs[0]), 10000, METRIC_TIMING);
    b->f_loaded = metrics_family(b->reg, "sipscope_rules_loaded", "Rule files loaded.",
                                 METRIC_GAUGE, NULL, 0, NULL, 0, 1, 0);
    b->f_last_ok = metrics_family(b->reg, "sipscope_rules_last_reload_success",
                                  "1 when the last rule (re)load succeeded.", METRIC_GAUGE, NULL, 0,
                                  NULL, 0, 1, 0);
    b->f_reloads = metrics_family(b->reg, "sipscope_rules_reloads_total",
                                  "Rule reloads by result (success, failure, refused: the labels "
                                  "changed).",
                                  METRIC_COUNTER, res, 1, NULL, 0, 3, 0);
    /* METRIC_TIMING: the heap's size varies from run to run of one capture (LuaJIT places
     * strings and tables by address, and addresses move), so --print leaves it out. */
    b->f_memory =
        metrics_family(b->reg, "sipscope_lua_memory_bytes", "Bytes used by the rules' Lua heap.",
                       METRIC_GAUGE, NULL, 0, NULL, 0, 1, METRIC_TIMING);
    /* METRIC_TIMING too: CPU time, and the collections' count follows the heap's size. */
    static const char *const kind[] = {"kind"};
    b->f_gc_seconds = metrics_family(
        b->reg, "sipscope_lua_gc_seconds_total",
        "CPU seconds of the rules' garbage collection, charged to no rule: kind=full (near "
        "--lua-memory) or step (incremental).",
        METRIC_COUNTER, kind, 1, NULL, 0, 2, METRIC_TIMING);
    b->f_gc_full = metrics_family(b->reg, "sipscope_lua_gc_full_collections_total",
                                  "Full collections of the rules' heap, run as it nears "
                                  "--lua-memory.",
                                  METRIC_COUNTER, NULL, 0, NULL, 0, 1, METRIC_TIMING);
    if (!b->f_errors || !b->f_disabled || !b->f_seconds || !b->f_loaded || !b->f_last_ok ||
        !b->f_reloads || !b->f_memory || !b->f_gc_seconds || !b->f_gc_full)
        return -ENOMEM;
    b->s_loaded = metrics_series(b->f_loaded, NULL);
    b->s_last_ok = metrics_series(b->f_last_ok, NULL);
    b->s_memory = metrics_series(b->f_memory, NULL);
    uint32_t full = metrics_intern(b->reg, "full", 4), step = metrics_intern(b->reg, "step", 4);
    b->s_gc_full_seconds = metrics_series(b->f_gc_seconds, &full);
    b->s_gc_step = metrics_series(b->f_gc_seconds, &step);
    b->s_gc_full = metrics_series(b->f_gc_full, NULL);
    /* Every result from the start, at 0 (METRICS.md): a series created by the first failed
     * reload, already at 1, would hide that failure from increase(). */
    static const char *const results[] = {"success", "failure", "refused"};
    for (size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
        uint32_t k = metrics_intern(b->reg, results[i], strlen(results[i]));
        metrics_series(b->f_reloads, &k);
    }
    return 0;
}

/* --- public ------------------------------------------------------------------------------- */

void lua_bridge_config_defaults(struct lua_bridge_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->memory_limit = LUA_BRIDGE_DEFAULT_MEMORY;
    cfg->budget_ns = LUA_BRIDGE_DEFAULT_BUDGET_NS;
    cfg->max_series = LUA_BRIDGE_DEFAULT_MAX_SERIES;
    cfg->breaker_errors = LUA_BRIDGE_DEFAULT_BREAKER_ERRORS;
    cfg->breaker_timeouts = LUA_BRIDGE_DEFAULT_BREAKER_TIMEOUTS;
}

const char *lua_bridge_luajit_version(void)
{
    return LUAJIT_VERSION;
}

struct lua_bridge *lua_bridge_new(const struct lua_bridge_config *cfg, struct metrics *reg,
                                  struct oplabel_set *ops, char *err, size_t errlen)
{
    struct lua_bridge *b = calloc(1, sizeof(*b));
    int rc;

    if (!b) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    b->cfg = *cfg;
    if (b->cfg.memory_limit < MIN_MEMORY)
        b->cfg.memory_limit = MIN_MEMORY;
    if (!b->cfg.budget_ns)
        b->cfg.budget_ns = LUA_BRIDGE_DEFAULT_BUDGET_NS;
    if (!b->cfg.max_series)
        b->cfg.max_series = LUA_BRIDGE_DEFAULT_MAX_SERIES;
    b->reg = reg;
    b->ops = ops;
    b->api = (struct lb_api){b,
                             api_msg_str,
                             api_msg_header,
                             api_msg_addr,
                             api_dialog_str,
                             api_binding_str,
                             api_label_text,
                             api_label_value,
                             api_series,
                             api_counter_add,
                             api_gauge_set,
                             api_gauge_add,
                             api_observe,
                             api_now,
                             api_cidr_lookup_text,
                             api_cidr_lookup_msg,
                             api_classify_lookup,
                             api_window_add,
                             api_window_count,
                             api_dialog_slot,
                             api_dialog_slot_free,
                             api_header_id,
                             api_msg_header_id,
                             api_window_msg,
                             api_classify_header,
                             api_call_field_set,
                             api_call_field_get,
                             api_call_fields_take,
                             api_msg_ruri_param,
                             api_call_fields_copy};
    if (cfg->rules_dir && !(b->rules_dir = strdup(cfg->rules_dir)))
        goto nomem;
    if (!cfg->rules_dir && cfg->n_rule_files) {
        b->rule_files = calloc(cfg->n_rule_files, sizeof(char *));
        if (!b->rule_files)
            goto nomem;
        for (; b->n_rule_files < cfg->n_rule_files; b->n_rule_files++)
            if (!(b->rule_files[b->n_rule_files] = strdup(cfg->rule_files[b->n_rule_files])))
                goto nomem;
    }
    b->cfg.rules_dir = NULL;
    b->cfg.rule_files = NULL;
    rc = watchdog_start(b);
    if (rc < 0) {
        snprintf(err, errlen, "cannot start the rule budget watchdog: %s", strerror(-rc));
        lua_bridge_free(b);
        return NULL;
    }
    watchdog_activate(b, 1); /* top-level code has a budget too */
    b->cur = state_new(b, err, errlen);
    if (!b->cur || load_rules(b, b->cur, err, errlen) != 0) {
        lua_bridge_free(b);
        return NULL;
    }
    watchdog_activate(b, b->cur->n_rules > 0);
    return b;
nomem:
    snprintf(err, errlen, "out of memory");
    lua_bridge_free(b);
    return NULL;
}

int lua_bridge_commit(struct lua_bridge *b, char *err, size_t errlen)
{
    int rc;

    if (declare_own_families(b) != 0) {
        snprintf(err, errlen, "out of memory while declaring the rule families");
        return -ENOMEM;
    }
    rc = call_core(b, b->cur, "commit", 0, 0, err, errlen);
    if (rc != 0)
        return rc;
    memcpy(b->routes, b->cur->routes, sizeof(b->routes));
    metric_gauge_set(b->s_loaded, b->cur->n_rules);
    metric_gauge_set(b->s_last_ok, 1);
    lua_bridge_publish(b);
    return 0;
}

void lua_bridge_free(struct lua_bridge *b)
{
    if (!b)
        return;
    watchdog_stop(b);
    close_state(b->cur);
    while (b->families) {
        struct lb_family *f = b->families;
        b->families = f->next;
        free(f->name);
        free(f);
    }
    free(b->rules_dir);
    free_list(b->rule_files, b->n_rule_files);
    free(b->fields);
    free(b->keys);
    free(b->key_buf);
    free(b->unfold_buf);
    free(b);
}

const uint8_t *lua_bridge_routes(const struct lua_bridge *b)
{
    return b->routes;
}

/* Starts a dispatch: a new generation, and the pointers that say which handles exist cleared
 * (a field behind a NULL pointer is never read, so the rest need not be). */
static void box_reset(struct lua_bridge *b)
{
    struct lb_box *box = &b->box;
    box->gen = ++b->gen;
    box->labels = NULL;
    box->labels_out = NULL;
    box->msg = box->pkt = box->dialog = box->txn = box->binding = NULL;
    box->flags = box->code = box->reason = box->method = box->status = 0;
    box->delay = 0;
}

static void fill_message(struct lb_box *box, const struct sip_msg *msg, const struct packet *pkt)
{
    box->msg = msg;
    box->pkt = pkt;
    if (msg) {
        box->status = msg->is_request ? 0 : msg->status;
        box->method = msg->method;
        box->cseq_method = msg->cseq_method;
        box->cseq = msg->cseq;
    }
    if (pkt) {
        box->l4 = pkt->websocket ? LB_L4_WS : pkt->l4_proto;
        box->sport = pkt->sport;
        box->dport = pkt->dport;
        box->ipv = pkt->ip_version;
        if (pkt->ip_version == 4) {
            memcpy(&box->src4, pkt->src, 4);
            memcpy(&box->dst4, pkt->dst, 4);
        }
    } else { /* no packet: no address, ports or transport, rather than the last packet's */
        box->ipv = 0;
        box->l4 = 0;
        box->sport = 0;
        box->dport = 0;
    }
}

void lua_bridge_label(struct lua_bridge *b, const struct sip_msg *msg, const struct packet *pkt,
                      uint16_t *labels)
{
    struct lb_state *s = b->cur;

    box_reset(b);
    b->box.type = TRACK_MESSAGE;
    b->box.flags = TRACK_F_INITIAL;
    b->box.time = pkt->ts_ns;
    b->box.labels_out = labels;
    b->box.labels = labels;
    fill_message(&b->box, msg, pkt);
    lua_pushvalue(s->L, K_LABEL + 1);
    if (enter(b, s, 0, 0) != 0)
        entry_failed(b, s, "label");
}

void lua_bridge_event(struct lua_bridge *b, const struct track_event *ev)
{
    struct lb_state *s = b->cur;
    struct lb_box *box = &b->box;
    enum lb_kind kind;

    switch ((enum track_event_type)ev->type) {
    case TRACK_MESSAGE:
        /* Hooks filtered by method or status: the messages none wants stay out of Lua. */
        if (ev->msg && !s->msg_routes[msg_route(ev->msg)])
            return;
        kind = K_MESSAGE;
        break;
    case TRACK_CALL_START:
        kind = K_DIALOG_START;
        break;
    case TRACK_CALL_ANSWER:
        kind = K_DIALOG_ANSWER;
        break;
    case TRACK_CALL_RINGING:
        kind = K_DIALOG_RINGING;
        break;
    case TRACK_CALL_END:
        kind = K_DIALOG_END;
        b->fields_len = 0;
        b->fields_failed = 0;
        break;
    case TRACK_TXN_END:
        /* Hooks by method: the other methods' transactions stay out of Lua. */
        if (!s->txn_routes[ev->method < SIP_METHOD_COUNT ? ev->method : 0])
            return;
        kind = K_TXN_END;
        break;
    case TRACK_REG_BINDING:
        kind = K_REGISTER;
        b->fields_len = 0;
        b->fields_failed = 0;
        break;
    default:
        return;
    }
    box_reset(b);
    box->type = ev->type;
    box->flags = (int32_t)ev->flags;
    box->code = ev->code;
    box->reason = ev->reason;
    box->method = ev->method;
    box->time = ev->time_ns;
    box->delay = ev->delay;
    box->labels = ev->labels;
    fill_message(box, ev->msg, ev->pkt);
    if (ev->msg && ev->msg->is_request)
        box->method = ev->msg->method;
    if (ev->dialog) {
        const struct sip_dialog *d = ev->dialog;
        box->dialog = d;
        box->d_gen = d->node.gen;
        box->d_start = d->t_start;
        box->d_answer = d->t_answer;
        box->d_end = d->t_end;
        box->d_ringing = d->t_ringing;
        /* A call is reported as trying while it starts (the tracker moves it into the active
         * states right after emitting its start). */
        box->d_state = ev->type == TRACK_CALL_START ? SIP_DIALOG_TRYING : d->state;
        box->d_end_reason = d->end_reason;
        box->d_final_code = d->final_code;
        box->d_has_outcome = (d->flags & SIP_DIALOG_F_OUTCOME) != 0;
        box->d_slot = -1;
        if (d->rule_slot) /* its d.cdr fields: cold by now, read by the hooks or the line */
            call_fields_prefetch(s->call_fields, d->rule_slot);
        box->d_ended_by = d->end_reason != SIP_END_BYE       ? 0
                          : d->flags & SIP_DIALOG_F_BYE_CALLEE ? 2
                                                               : 1;
    }
    if (ev->txn) {
        box->txn = ev->txn;
        box->t_method = ev->txn->method;
        box->t_code = ev->type == TRACK_TXN_END ? ev->code : ev->txn->final_code;
    }
    if (ev->binding) {
        box->binding = ev->binding;
        box->b_change = ev->reason;
        box->b_expires = ev->binding->expires;
    }
    lua_pushvalue(s->L, (int)kind + 1);
    if (enter(b, s, 0, 0) != 0)
        entry_failed(b, s, kind_fn[kind] + 9);
}

void lua_bridge_prefetch_call(const struct lua_bridge *b, const struct sip_dialog *d)
{
    const struct lb_state *s = b->cur;
    uint32_t n = d->rule_slot;

    if (n && n <= s->slots.n_slots) {
        __builtin_prefetch(&s->slots.by_slot[n]);
        call_fields_prefetch_index(s->call_fields, n);
    }
}

const char *lua_bridge_event_fields(struct lua_bridge *b, size_t *len)
{
    *len = b->fields_len;
    if (b->fields_failed)
        return NULL;
    return b->fields_len ? b->fields : "";
}

void lua_bridge_clock(struct lua_bridge *b, uint64_t now_ns)
{
    struct lb_state *s = b->cur;

    if (now_ns < b->next_tick || now_ns == 0) /* 0: no packet has set the clock yet */
        return;
    b->next_tick = (now_ns / LUA_BRIDGE_TICK_NS + 1) * LUA_BRIDGE_TICK_NS;
    if (!b->routes[TRACK_EVENT_COUNT])
        return;
    box_reset(b);
    b->box.time = now_ns;
    lua_pushvalue(s->L, K_TICK + 1);
    if (enter(b, s, 0, 0) != 0)
        entry_failed(b, s, "tick");
}

static int same_labels(const struct lb_state *a, const struct lb_state *b)
{
    if (a->n_labels != b->n_labels)
        return 0;
    for (size_t i = 0; i < a->n_labels; i++)
        if (strcmp(a->labels[i].name, b->labels[i].name) != 0 ||
            strcmp(a->labels[i].def, b->labels[i].def) != 0 ||
            a->labels[i].max_values != b->labels[i].max_values)
            return 0;
    return 1;
}

static void count_reload(struct lua_bridge *b, const char *result, int ok)
{
    uint32_t k = sym(b, result);
    metric_counter_add(metrics_series(b->f_reloads, &k), 1);
    metric_gauge_set(b->s_last_ok, ok);
}

/* Whether a slot's call is still going on: its dialog entry holds the same call (generation)
 * and has not ended. At a reload (between two frames) an ended call's end has been dispatched:
 * its slot is still taken only when that dispatch failed before freeing it. */
static bool slot_live(const struct lb_slot_key *k)
{
    const struct sip_dialog *d = k->dialog;
    return d && d->node.in_use && d->node.gen == k->gen && d->state != SIP_DIALOG_ENDED;
}

/* Frees the slots (and fields) of state s whose calls are over: what failed dispatches left. */
static void sweep_ended_calls(struct lb_state *s)
{
    struct lb_slots *t = &s->slots;

    for (uint32_t n = 1; n <= t->n_slots; n++) {
        if (t->by_slot[n].dialog && !slot_live(&t->by_slot[n])) {
            call_fields_drop(s, (int32_t)n);
            t->by_slot[n].dialog = NULL;
            t->free[t->n_free++] = (int32_t)n;
        }
    }
}

/* At a reload, the calls going on keep their d.cdr fields: the slot numbers and the fields store
 * are C data, and move from the old state to the new one, which has run no hook yet (its own
 * are empty, and go with the old state). d.vars are Lua values of the old state and go with it.
 * Slots of calls that are over are freed first, so that nothing a failed dispatch left is
 * carried from reload to reload. The store's bytes move from one state's memory count to the
 * other's, unless they would leave the new rules less than an eighth of --lua-memory: the
 * fields are then dropped, as the old state goes, and the log says so. */
static void hand_over_calls(struct lua_bridge *b, struct lb_state *from, struct lb_state *to)
{
    char err[256];
    struct lb_slots slots = to->slots;
    struct call_fields *cf = to->call_fields;
    uint64_t from_bytes, to_bytes;

    /* A failure leaves the pending call's slot to the sweep below. */
    if (call_core(b, from, "release_pending", 0, 0, err, sizeof(err)) != 0)
        log_warn(MOD, "reload: a call's end was not released: %s", err);
    b->running = to; /* release_pending ran in from, which is closed next */
    sweep_ended_calls(from);
    from_bytes = call_fields_bytes(from->call_fields);
    to_bytes = call_fields_bytes(cf);
    if (from->slots.n_slots == from->slots.n_free)
        return; /* no call going on has per-call data */
    if (to->used - to_bytes + from_bytes > to->limit - to->limit / 8) {
        log_warn(MOD,
                 "reload: the event fields of the %u calls going on (%llu bytes) would leave the "
                 "new rules too little of --lua-memory: their lines will not have them",
                 from->slots.n_slots - from->slots.n_free, (unsigned long long)from_bytes);
        return;
    }
    to->slots = from->slots;
    to->call_fields = from->call_fields;
    from->slots = slots;
    from->call_fields = cf;
    to->used = to->used - to_bytes + from_bytes;
    from->used = from->used - from_bytes + to_bytes;
    /* Their ends must reach the new rules' dispatcher, which takes the fields and frees the
     * slots, whether or not a new rule hooks the end of calls (as native_set_routes does). */
    to->routes[TRACK_CALL_END] = 1;
}

/* metrics_series_each callback: a rule's sipscope_rule_disabled back to 0. The engine thread
 * writes values; the series is the registry's own, const only for readers. */
static void enable_series(void *ctx, const struct metric_series *s, const uint32_t *syms)
{
    (void)ctx;
    (void)syms;
    metric_gauge_set((struct metric_series *)s, 0);
}

int lua_bridge_reload(struct lua_bridge *b, char *err, size_t errlen)
{
    struct lb_state *s;
    int rc;

    watchdog_activate(b, 1);
    b->rule_set++;
    s = state_new(b, err, errlen);
    if (s) {
        s->reloading = 1;
        rc = load_rules(b, s, err, errlen);
        if (rc == 0 && !same_labels(s, b->cur)) {
            snprintf(err, errlen,
                     "the rules declare other labels than the running ones (names, defaults, "
                     "max_values or order); labels change every sip_ family, restart to apply");
            close_state(s);
            watchdog_activate(b, b->cur->n_rules > 0);
            count_reload(b, "refused", 0);
            log_warn(MOD, "reload refused: %s", err);
            return -EBUSY;
        }
        if (rc == 0)
            rc = call_core(b, s, "commit", 0, 0, err, errlen);
    } else {
        rc = -ENOMEM;
    }
    if (rc != 0) {
        close_state(s);
        watchdog_activate(b, b->cur->n_rules > 0);
        count_reload(b, "failure", 0);
        log_warn(MOD, "reload failed, the previous rules keep running: %s", err);
        return -EINVAL;
    }
    hand_over_calls(b, b->cur, s);
    close_state(b->cur);
    b->cur = s;
    /* No rule is disabled now: those the new set left out too (removed or renamed files), whose
     * series no commit names any more, would keep their 1 for good. */
    if (b->f_disabled)
        metrics_series_each(b->f_disabled, enable_series, NULL);
    /* The families of the rules left out are not measured any more: a gauge would show its
     * last value for good. Left out of the exposition until a rule declares them again. */
    for (struct lb_family *f = b->families; f; f = f->next)
        metrics_family_set_hidden(f->fam, f->rule_set != b->rule_set);
    watchdog_activate(b, s->n_rules > 0);
    memcpy(b->routes, s->routes, sizeof(b->routes));
    metric_gauge_set(b->s_loaded, s->n_rules);
    count_reload(b, "success", 1);
    lua_bridge_publish(b);
    snprintf(err, errlen, "%d rule file%s loaded", s->n_rules, s->n_rules == 1 ? "" : "s");
    return 0;
}

void lua_bridge_publish(struct lua_bridge *b)
{
    if (b->s_memory)
        metric_gauge_set(b->s_memory, (double)b->cur->used);
}

uint64_t lua_bridge_memory(const struct lua_bridge *b)
{
    return b->cur->used;
}

uint64_t lua_bridge_entries(const struct lua_bridge *b)
{
    return b->entries;
}

int lua_bridge_describe(struct lua_bridge *b, FILE *out)
{
    char err[512];
    size_t len;
    const char *text;
    lua_State *L = b->cur->L;

    if (call_core(b, b->cur, "describe", 0, 1, err, sizeof(err)) != 0) {
        fprintf(out, "%s\n", err);
        return 0;
    }
    text = lua_tolstring(L, -1, &len);
    if (text)
        fwrite(text, 1, len, out);
    lua_pop(L, 1);
    return b->cur->n_rules;
}

size_t lua_bridge_jit_log(struct lua_bridge *b, char *buf, size_t len)
{
    char err[256];
    size_t n = 0;
    const char *text;

    if (len)
        buf[0] = 0;
    if (call_core(b, b->cur, "jit_log", 0, 1, err, sizeof(err)) != 0)
        return 0;
    text = lua_tolstring(b->cur->L, -1, &n);
    if (text && len)
        snprintf(buf, len, "%s", text);
    lua_pop(b->cur->L, 1);
    return n;
}

/* --- test mode ---------------------------------------------------------------------------- */

static int script_setup(lua_State *L)
{
    const char *lua_dir = lua_tostring(L, 1);
    luaL_openlibs(L);
    preload_embedded(L);
    lua_getglobal(L, "package");
    lua_pushfstring(L,
                    "%s/?.lua;%s/?/init.lua;./?.lua;/usr/share/lua/5.1/?.lua;"
                    "/usr/share/lua/5.1/?/init.lua",
                    lua_dir, lua_dir);
    lua_setfield(L, -2, "path");
    lua_pushstring(L, "./?.so;/usr/lib/x86_64-linux-gnu/lua/5.1/?.so;/usr/lib/lua/5.1/?.so");
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    return 0;
}

int lua_bridge_run_script(const char *path, int argc, char **argv, const char *lua_dir)
{
    lua_State *L = luaL_newstate();
    int status = 0;

    if (!L) {
        fprintf(stderr, "sipscope: cannot create a Lua state\n");
        return 1;
    }
    lua_pushcfunction(L, script_setup);
    lua_pushstring(L, lua_dir);
    if (lua_pcall(L, 1, 0, 0) != 0)
        goto fail;
    lua_createtable(L, argc, 1);
    lua_pushstring(L, path);
    lua_rawseti(L, -2, 0);
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setglobal(L, "arg");
    if (luaL_loadfile(L, path) != 0)
        goto fail;
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc, 0, 0) != 0)
        goto fail;
    lua_close(L);
    return status;
fail:
    /* error() without a value is how busted (and others) exit with a failure quietly. */
    if (!lua_isnil(L, -1))
        fprintf(stderr, "sipscope: %s\n", error_text(L, -1));
    lua_close(L);
    return 1;
}
