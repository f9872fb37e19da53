-- fraud: two toll-fraud signals per source address, counted in sliding windows kept in C
-- (sip.window): an INVITE burst (too many new calls from one address) and a registration scan
-- (REGISTERs for too many distinct AoRs from one address, as SIPVicious-style scanners send).
-- A source over a threshold is "flagged": alerts, flagged requests and flagged sources are
-- counted, each alert is logged with the address, and calls from a flagged source get
-- fraud = "invite_burst" in their CDR. Documentation: rules/README.md. It blocks nothing.
local sip = require "sipscope"

-- Configuration. Edit, then reload (SIGHUP): this rule declares no label.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- More than `threshold` new calls (a call's first INVITE: its retransmissions and its
    -- retry after a 401/407 are the same call) from one source address within `seconds`.
    -- false: off.
    invite_burst = {threshold = 30, seconds = 10},
    -- REGISTERs for more than `threshold` distinct AoRs (To URIs) from one source address
    -- within `seconds`, counted when each REGISTER transaction gets its final response (the
    -- source is the address the response goes to). false: off.
    register_scan = {threshold = 20, seconds = 60},
    -- Sources never counted: your proxies, SBCs and registrars that relay for many users
    -- (prefixes or addresses, e.g. "192.0.2.0/24").
    trusted = {},
    -- Source addresses each window keeps (the register scan also keeps twice as many
    -- (source, AoR) pairs); past it the least recently active are dropped. Memory in C: about
    -- 140 bytes each, allocated at load, which runs under --rule-budget (5 ms): zeroing
    -- reused memory can take 1 ms per 50,000; raise the budget with this number.
    max_sources = 5000,
    -- Flagged sources held at once per signal (for fraud_flagged_sources); alerts past it
    -- count in fraud_flagged_overflow_total.
    max_flagged = 1000,
    -- Add fraud = "invite_burst" to the CDR (--events) of calls from a flagged source.
    mark_calls = true,
    -- Log each alert with the source address (at most 100 lines per rule and reload).
    log = true,
}

if not config.enabled then
    return {}
end

local alerts = sip.counter{name = "fraud_alerts_total", labels = {"signal"},
                           help = "Sources crossing a fraud threshold (each crossing)"}
local flagged_requests = sip.counter{name = "fraud_flagged_requests_total", labels = {"signal"},
                                     help = "Requests from a source while it was over a threshold"}
local flagged_sources = sip.gauge{name = "fraud_flagged_sources", labels = {"signal"},
                                  help = "Sources over a threshold now (checked every second)"}
local overflow = sip.counter{name = "fraud_flagged_overflow_total", labels = {"signal"},
                             help = "Alerts for sources not held because max_flagged were held"}

local max_flagged, log = config.max_flagged, config.log

local function signal(name, spec, what)
    if not spec then
        return nil
    end
    return {name = name, threshold = spec.threshold, seconds = spec.seconds, what = what,
            win = sip.window{seconds = spec.seconds, buckets = 10, max_keys = config.max_sources},
            flagged = {}, n = 0}
end

local burst = signal("invite_burst", config.invite_burst, "new calls")
local scan = signal("register_scan", config.register_scan, "distinct AoRs registered")
local pairs_seen -- (source, AoR) pairs in the scan window
if scan then
    pairs_seen = sip.window{seconds = scan.seconds, buckets = 10,
                            max_keys = 2 * config.max_sources}
end
local trusted
if #config.trusted > 0 then
    trusted = sip.cidr_set(config.trusted)
end

-- n: the source's count in the window, this request included; fresh: this request added to
-- it. Returns true when the source is over the threshold.
local function check(sig, ip, n, fresh)
    local thr = sig.threshold
    if n <= thr then
        return false
    end
    flagged_requests:inc(sig.name)
    -- Counts grow by one per add and only fall otherwise: a crossing always lands on thr + 1.
    if fresh and n == thr + 1 then
        alerts:inc(sig.name)
        if log then
            sip.log("%s: %s sent %d %s in %d s (threshold %d)", sig.name, ip, n, sig.what,
                sig.seconds, thr)
        end
        if sig.flagged[ip] == nil then
            if sig.n < max_flagged then
                sig.flagged[ip] = true
                sig.n = sig.n + 1
                flagged_sources:set(sig.name, sig.n)
            else
                overflow:inc(sig.name)
            end
        end
    end
    return true
end

-- Sources whose count fell back to the threshold are no longer flagged.
local function expire(sig)
    if sig == nil or sig.n == 0 then
        return
    end
    local win, thr, n = sig.win, sig.threshold, sig.n
    for ip in pairs(sig.flagged) do
        if win:count(ip) <= thr then
            sig.flagged[ip] = nil -- clearing a field during pairs() is allowed
            n = n - 1
        end
    end
    if n ~= sig.n then
        sig.n = n
        flagged_sources:set(sig.name, n)
    end
end

local mark = config.mark_calls

-- Hooks that run once per call and once per transaction, not once per request: the
-- dispatch is most of the cost.
return {
    -- A new call: its first INVITE (retransmissions and the retry after a 401/407 belong to it).
    on_dialog_start = function(d, m)
        if burst == nil or (trusted ~= nil and trusted:src(m)) then
            return
        end
        -- The window is keyed by the address text, made here only for a source over the
        -- threshold (check() needs it then).
        local n = burst.win:src(m)
        if n > burst.threshold and check(burst, m.src_ip, n, true) and mark then
            d.cdr.fraud = "invite_burst"
        end
    end,
    -- A REGISTER transaction's first final: the registering source is where the response
    -- goes (RFC 3261 18.2.2, with rport/received); one that times out is not counted. Keyed
    -- by method, so the other transactions never enter this rule (nil without the scan).
    on_transaction_end = scan and {
        REGISTER = function(_, m)
            if not m or (trusted ~= nil and trusted:dst(m)) then
                return
            end
            -- The pair's key is the address text, a space and the To URI, and the source's
            -- the address text: both made in C. The text is made here only for a source over
            -- the threshold (check() needs it then).
            local pair = pairs_seen:dst(m, 1, "to")
            if pair == nil then
                return -- no IP address
            end
            local n, fresh
            if pair == 1 then
                n, fresh = scan.win:dst(m), true
            else
                n, fresh = scan.win:count_dst(m), false
            end
            if n > scan.threshold then
                check(scan, m.dst_ip, n, fresh)
            end
        end,
    },
    on_tick = function()
        expire(burst)
        expire(scan)
    end,
}
