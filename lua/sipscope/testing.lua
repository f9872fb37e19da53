-- sipscope.testing: drives a real engine (the parser, the trackers, the rules in their own Lua
-- state) from a busted spec run by `sipscope --lua-script`, and reads metric values back.
--
--   local t = require "sipscope.testing"
--   local e = t.engine{rules = {"rules/carrier.lua"}, config = {t1 = "100ms"}, events = true}
--   e:sip([[INVITE sip:bob@example.com SIP/2.0 ...]], {time = 0, src = "10.0.0.1:5060"})
--   e:advance(40)                                      -- the engine clock moves 40 s on
--   e:metric("sip_requests_total", {method = "INVITE"}) --> 1 (nil when the series is absent)
--   e:events()                                         --> decoded lines of the events file
--   e:close()
--
-- Times are seconds after t.EPOCH (2023-11-14T22:13:20Z). SIP text may be indented and use
-- bare LF: each line is trimmed on the left, lines end in CRLF and Content-Length is added when
-- missing (pass raw = true to send the bytes as they are). It reaches the engine through the
-- harness_* functions the sipscope binary exports (core/harness.h).
local ffi = require "ffi"

local M = {}

M.EPOCH = 1700000000
local EPOCH_NS = ffi.new("uint64_t", M.EPOCH) * 1000000000ULL

if not pcall(ffi.typeof, "struct sipscope_testing_defined") then
    ffi.cdef [[
    struct sipscope_testing_defined { int unused; };
    struct engine;
    struct engine *harness_engine_new(const char *rules_dir, const char *rule_files,
                                      const char *events_path, const char *options, char *err,
                                      size_t errlen);
    int harness_feed(struct engine *e, const char *text, size_t len, uint64_t t_ns,
                     const char *src, const char *dst, int tcp, char *err, size_t errlen);
    int harness_metric(struct engine *e, const char *name, const char *const *label_names,
                       const char *const *label_values, size_t n, double *out, char *err,
                       size_t errlen);
    char *harness_exposition(struct engine *e, int deterministic, size_t *len);
    void harness_free(void *p);
    char *harness_jit_log(struct engine *e, size_t *len);
    void engine_free(struct engine *e);
    void engine_tick(struct engine *e, uint64_t now_ns);
    void engine_publish(struct engine *e);
    int engine_read_file(struct engine *e, const char *path, char *err, size_t errlen);
    int engine_reload_rules(struct engine *e, char *err, size_t errlen);
    struct sipscope_timespec { long tv_sec; long tv_nsec; };
    int clock_gettime(int clk, struct sipscope_timespec *ts);
    int mkstemp(char *template);
    int dup(int fd);
    int dup2(int fd, int to);
    int close(int fd);
    ]]
end

local C = ffi.C
local errbuf = ffi.new("char[1024]")

local function err_text()
    return ffi.string(errbuf)
end

-- Monotonic wall time in seconds, for throughput checks in specs.
function M.clock()
    local ts = ffi.new("struct sipscope_timespec")
    C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

-- CPU time of the calling thread in seconds: benchmarks on a shared host.
function M.cpu_clock()
    local ts = ffi.new("struct sipscope_timespec")
    C.clock_gettime(3, ts) -- CLOCK_THREAD_CPUTIME_ID
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) / 1e9
end

local function to_ns(t)
    return EPOCH_NS + math.floor(t * 1e9 + 0.5)
end

-- SIP text as a test writes it, to the bytes a peer would send.
function M.normalize(text)
    text = text:gsub("\r\n", "\n")
    local lines = {}
    for line in (text .. "\n"):gmatch("(.-)\n") do
        lines[#lines + 1] = line:gsub("^[ \t]+", "")
    end
    while #lines > 0 and lines[1] == "" do
        table.remove(lines, 1)
    end
    local head, body, in_body = {}, {}, false
    for _, line in ipairs(lines) do
        if in_body then
            body[#body + 1] = line
        elseif line == "" then
            in_body = true
        else
            head[#head + 1] = line
        end
    end
    while #body > 0 and body[#body] == "" do
        body[#body] = nil
    end
    local b = #body > 0 and (table.concat(body, "\r\n") .. "\r\n") or ""
    local has_length = false
    for _, h in ipairs(head) do
        local name = h:match("^([^:]+)")
        name = name and name:lower():gsub("%s+$", "")
        if name == "content-length" or name == "l" then
            has_length = true
        end
    end
    if not has_length then
        head[#head + 1] = "Content-Length: " .. #b
    end
    return table.concat(head, "\r\n") .. "\r\n\r\n" .. b
end

local Engine = {}
Engine.__index = Engine

local function options_text(config)
    local keys = {}
    for k in pairs(config or {}) do
        keys[#keys + 1] = k
    end
    table.sort(keys)
    local out = {}
    for _, k in ipairs(keys) do
        out[#out + 1] = k .. "=" .. tostring(config[k])
    end
    return table.concat(out, "\n")
end

-- Temporary events files of engines that were never closed (a failing spec), removed when
-- the script's Lua state closes (the sweeper below).
local temp_files = {}

-- opts: rules (list of files) or rules_dir; config (harness options, core/harness.h);
-- events = true (a temporary file) or a path.
function M.engine(opts)
    opts = opts or {}
    local events = opts.events
    if events == true then
        events = os.tmpname()
        temp_files[#temp_files + 1] = events
    elseif events == false then
        events = nil
    end
    local files = opts.rules and table.concat(opts.rules, "\n") or nil
    local e = C.harness_engine_new(opts.rules_dir, files, events, options_text(opts.config),
        errbuf, 1024)
    if e == nil then
        error("sipscope.testing: " .. err_text(), 2)
    end
    local self = setmetatable({e = e, now = 0, events_path = events,
                               temp_events = opts.events == true}, Engine)
    return self
end

local function check(self)
    if self.e == nil then
        error("sipscope.testing: the engine is closed", 3)
    end
end

-- Feeds one message. o: time (seconds, default: the current time), src, dst ("ip:port"),
-- tcp = true, raw = true (no normalisation).
function Engine:sip(text, o)
    check(self)
    o = o or {}
    if o.time then
        self.now = o.time
    end
    local bytes = o.raw and text or M.normalize(text)
    local rc = C.harness_feed(self.e, bytes, #bytes, to_ns(self.now), o.src or "10.0.0.1:5060",
        o.dst or "10.0.0.2:5060", o.tcp and 1 or 0, errbuf, 1024)
    if rc ~= 0 then
        error("sipscope.testing: " .. err_text(), 2)
    end
    return self
end

-- Reads a pcap or pcapng file through the engine.
function Engine:pcap(path)
    check(self)
    local rc = C.engine_read_file(self.e, path, errbuf, 1024)
    if rc ~= 0 then
        error("sipscope.testing: " .. path .. ": " .. err_text(), 2)
    end
    return self
end

-- Moves the engine clock dt seconds on (running due timers and on_tick).
function Engine:advance(dt)
    check(self)
    self.now = self.now + dt
    C.engine_tick(self.e, to_ns(self.now))
    return self
end

-- The value of one series, or nil when it does not exist.
function Engine:metric(name, labels)
    check(self)
    local names, values = {}, {}
    for k, v in pairs(labels or {}) do
        names[#names + 1] = tostring(k)
        values[#values + 1] = tostring(v)
    end
    local n = #names
    local cn = ffi.new("const char *[?]", n + 1)
    local cv = ffi.new("const char *[?]", n + 1)
    for i = 1, n do
        cn[i - 1] = names[i] -- names and values anchor the strings during the call
        cv[i - 1] = values[i]
    end
    local out = ffi.new("double[1]")
    local rc = C.harness_metric(self.e, name, cn, cv, n, out, errbuf, 1024)
    if rc == 0 then
        return out[0]
    elseif rc == -2 then -- ENOENT
        return nil
    end
    error("sipscope.testing: metric " .. name .. ": " .. err_text(), 2)
end

-- The exposition text; deterministic (no timing families) unless all = true.
function Engine:exposition(all)
    check(self)
    local len = ffi.new("size_t[1]")
    local p = C.harness_exposition(self.e, all and 0 or 1, len)
    if p == nil then
        error("sipscope.testing: out of memory", 2)
    end
    local s = ffi.string(p, len[0])
    C.harness_free(p)
    return s
end

-- The rules' JIT trace log (engine made with config = {jit_log = 1}): one event per line.
function Engine:jit_log()
    check(self)
    local len = ffi.new("size_t[1]")
    local p = C.harness_jit_log(self.e, len)
    if p == nil then
        return ""
    end
    local s = ffi.string(p, len[0])
    C.harness_free(p)
    return s
end

-- Publishes table sizes and flushes the events file (as the engine does every 4096 frames).
function Engine:flush()
    check(self)
    C.engine_publish(self.e)
    return self
end

-- Every line of the events file so far, decoded.
function Engine:events()
    check(self)
    if not self.events_path then
        error("sipscope.testing: the engine has no events file (engine{events = true})", 2)
    end
    C.engine_publish(self.e) -- flushes
    local cjson = require "cjson"
    local list = {}
    local f = assert(io.open(self.events_path, "rb"))
    for line in f:lines() do
        list[#list + 1] = cjson.decode(line)
    end
    f:close()
    return list
end

-- Reloads the rules as SIGHUP does: true and a summary, or false and the reason.
function Engine:reload()
    check(self)
    local rc = C.engine_reload_rules(self.e, errbuf, 1024)
    return rc == 0, err_text()
end

function Engine:close()
    if self.e ~= nil then
        C.engine_free(self.e)
        self.e = nil
        if self.temp_events then
            os.remove(self.events_path)
        end
    end
end

-- SIP text builders for specs: a request or a response of a simple call between
-- alice@a.example and bob@b.example. o: call_id, from_tag, to_tag, cseq, branch, ruri, from,
-- to, headers (extra lines), body, method (of a response's CSeq), reason.
local function common(o, method)
    local lines = {
        "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=" .. (o.branch or "z9hG4bK" .. (o.call_id or "c1") ..
            method .. (o.cseq or 1)),
        "From: <" .. (o.from or "sip:alice@a.example") .. ">;tag=" .. (o.from_tag or "ft"),
        "To: <" .. (o.to or "sip:bob@b.example") .. ">" ..
            (o.to_tag and (";tag=" .. o.to_tag) or ""),
        "Call-ID: " .. (o.call_id or "c1"),
        "CSeq: " .. (o.cseq or 1) .. " " .. method,
    }
    for _, h in ipairs(o.headers or {}) do
        lines[#lines + 1] = h
    end
    return lines
end

function M.request(method, o)
    o = o or {}
    local lines = common(o, method)
    table.insert(lines, 1, method .. " " .. (o.ruri or o.to or "sip:bob@b.example") .. " SIP/2.0")
    return table.concat(lines, "\n") .. "\n\n" .. (o.body or "")
end

local REASONS = {[100] = "Trying", [180] = "Ringing", [183] = "Session Progress", [200] = "OK",
                 [401] = "Unauthorized", [404] = "Not Found",
                 [407] = "Proxy Authentication Required",
                 [408] = "Request Timeout", [486] = "Busy Here", [487] = "Request Terminated",
                 [503] = "Service Unavailable"}

function M.response(code, o)
    o = o or {}
    local lines = common(o, o.method or "INVITE")
    table.insert(lines, 1, "SIP/2.0 " .. code .. " " .. (o.reason or REASONS[code] or "Other"))
    return table.concat(lines, "\n") .. "\n\n" .. (o.body or "")
end

-- A whole answered call, fed into engine e from time o.time (default e.now): INVITE, 100, 180
-- at +0.1 s, 200 at +o.setup (1 s), ACK, BYE at +o.duration (10 s) after the answer, its 200.
-- The caller is o.src (10.0.0.1:5060), the callee o.dst (10.0.0.2:5060).
function M.call(e, o)
    o = o or {}
    local t0 = o.time or e.now
    local setup, duration = o.setup or 1, o.duration or 10
    local a, b = o.src or "10.0.0.1:5060", o.dst or "10.0.0.2:5060"
    local id = {call_id = o.call_id, from_tag = o.from_tag, from = o.from, to = o.to,
                headers = o.headers, body = o.body}
    local function with(extra)
        local t = {}
        for k, v in pairs(id) do
            t[k] = v
        end
        for k, v in pairs(extra) do
            t[k] = v
        end
        return t
    end
    e:sip(M.request("INVITE", id), {time = t0, src = a, dst = b})
    e:sip(M.response(100, with {headers = {}, body = ""}), {time = t0 + 0.01, src = b, dst = a})
    e:sip(M.response(180, with {to_tag = "tt", headers = {}, body = ""}),
        {time = t0 + 0.1, src = b, dst = a})
    e:sip(M.response(200, with {to_tag = "tt", headers = {}, body = ""}),
        {time = t0 + setup, src = b, dst = a})
    e:sip(M.request("ACK", with {to_tag = "tt", branch = "z9hG4bKack" .. (o.call_id or "c1"),
                                 headers = {}, body = ""}),
        {time = t0 + setup + 0.01, src = a, dst = b})
    local tb = t0 + setup + duration
    local bye = with {to_tag = "tt", cseq = 2, branch = "z9hG4bKbye" .. (o.call_id or "c1"),
                      headers = {}, body = ""}
    e:sip(M.request("BYE", bye), {time = tb, src = a, dst = b})
    bye.method = "BYE"
    e:sip(M.response(200, bye), {time = tb + 0.02, src = b, dst = a})
    return e
end

-- Writes a pcap (LINKTYPE_RAW, IPv4/UDP) of n answered calls, 7 messages each (INVITE, 100,
-- 180, 200, ACK, BYE, 200), call i from 10.1.x.y starting at EPOCH + i/100 s, answered after 1 s
-- and hung up 30 s later. Returns the number of messages (7 n).
function M.calls_pcap(path, n)
    local function le32(v)
        return string.char(v % 256, math.floor(v / 256) % 256, math.floor(v / 65536) % 256,
            math.floor(v / 16777216) % 256)
    end
    local function be16(v)
        return string.char(math.floor(v / 256) % 256, v % 256)
    end
    local f = assert(io.open(path, "wb"))
    -- magic, version 2.4, zone, sigfigs, snaplen 65535, LINKTYPE_RAW
    f:write(le32(0xa1b2c3d4), string.char(2, 0, 4, 0), le32(0), le32(0), le32(65535), le32(101))
    local function packet(ts, src, dst, payload)
        local total = 28 + #payload
        local frame = string.char(0x45, 0) .. be16(total) .. be16(0) .. be16(0x4000) ..
            string.char(64, 17) .. be16(0) .. src .. dst .. be16(5060) .. be16(5060) ..
            be16(8 + #payload) .. be16(0) .. payload
        local sec = math.floor(ts)
        f:write(le32(sec), le32(math.floor((ts - sec) * 1e6 + 0.5)), le32(#frame), le32(#frame),
            frame)
    end
    local b = string.char(10, 2, 0, 1)
    for i = 1, n do
        local a = string.char(10, 1, math.floor(i / 250) % 250, i % 250 + 1)
        local t0 = M.EPOCH + i * 0.01
        local tag = "t" .. i
        local id = {call_id = "call-" .. i .. "@bench", from_tag = "f" .. i,
                    from = "sip:user" .. (i % 1000) .. "@a.example",
                    to = "sip:+4930" .. (1000000 + i) .. "@b.example",
                    headers = {"User-Agent: bench/1.0", "Max-Forwards: 70"}}
        local function with(extra)
            local c = {}
            for k, v in pairs(id) do
                c[k] = v
            end
            for k, v in pairs(extra) do
                c[k] = v
            end
            return c
        end
        local bye = {to_tag = tag, cseq = 2, branch = "z9hG4bKb" .. i}
        packet(t0, a, b, M.normalize(M.request("INVITE", id)))
        packet(t0 + 0.01, b, a, M.normalize(M.response(100, with {headers = {}})))
        packet(t0 + 0.1, b, a, M.normalize(M.response(180, with {to_tag = tag, headers = {}})))
        packet(t0 + 1, b, a, M.normalize(M.response(200, with {to_tag = tag, headers = {}})))
        packet(t0 + 1.01, a, b, M.normalize(M.request("ACK", with {to_tag = tag,
                                                                   branch = "z9hG4bKa" .. i})))
        packet(t0 + 31, a, b, M.normalize(M.request("BYE", with(bye))))
        bye.method, bye.headers = "BYE", {}
        packet(t0 + 31.02, b, a, M.normalize(M.response(200, with(bye))))
    end
    f:close()
    return 7 * n
end

-- Temporary directories made by write_rule, removed when the script's Lua state closes.
local temp_dirs = {}
local sweeper = newproxy(true)
getmetatable(sweeper).__gc = function()
    for _, dir in ipairs(temp_dirs) do
        os.execute("rm -rf '" .. dir .. "'")
    end
    for _, file in ipairs(temp_files) do
        os.remove(file) -- already gone when its engine was closed
    end
end
M._sweeper = sweeper -- kept alive by the module until the state closes

-- Runs f() with standard error going to a temporary file and returns what was written there
-- (the engine's log: sip.log lines, rule errors), then f's results; f's error is raised once
-- standard error is back.
function M.stderr(f)
    local path = ffi.new("char[?]", 32, "/tmp/sipscope_stderr_XXXXXX")
    local fd = C.mkstemp(path)
    local saved = C.dup(2)
    assert(fd >= 0 and saved >= 0, "cannot redirect standard error")
    io.stderr:flush()
    C.dup2(fd, 2)
    C.close(fd)
    local res = {pcall(f)}
    io.stderr:flush()
    C.dup2(saved, 2)
    C.close(saved)
    local name = ffi.string(path)
    local file = assert(io.open(name, "rb"))
    local text = file:read("*a")
    file:close()
    os.remove(name)
    if not res[1] then
        error(res[2], 0)
    end
    return text, unpack(res, 2)
end

-- Writes text to a new file in a fresh temporary directory (removed at exit), or in dir;
-- returns the file's path and the directory (for rules_dir).
function M.write_rule(name, text, dir)
    if not dir then
        dir = os.tmpname()
        os.remove(dir)
        assert(os.execute("mkdir -p '" .. dir .. "'") == 0, "cannot create " .. dir)
        temp_dirs[#temp_dirs + 1] = dir
    end
    local path = dir .. "/" .. name
    local f = assert(io.open(path, "wb"))
    f:write(text)
    f:close()
    return path, dir
end

return M
