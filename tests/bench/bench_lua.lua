-- bench_lua: per-message cost of rule configurations on one capture, in one process (see
-- bench_lua.sh). Each configuration reads the capture REPS times into a fresh engine; the best
-- run (thread CPU time, file reading included) counts, as ns per SIP message, with its
-- difference to the first configuration. Every configuration writes an events file (one line per
-- call, with the engine's signalling fields), as an operator keeping call records runs it.
--   sipscope --lua-script tests/bench/bench_lua.lua CAPTURE REPS NAME=DIR|- ...
local t = require "sipscope.testing"

local capture, reps = assert(arg[1]), tonumber(arg[2] or "7")
local configs = {}
for i = 3, #arg do
    local name, dir = arg[i]:match("^([^=]+)=(.+)$")
    configs[#configs + 1] = {name = name, dir = dir ~= "-" and dir or nil, best = math.huge}
end

local messages
for _ = 1, reps do
    for _, c in ipairs(configs) do -- interleaved, so that load changes hit every configuration
        local e = t.engine{rules_dir = c.dir, events = true,
                           config = {max_calls = 200000, max_transactions = 400000}}
        local t0 = t.cpu_clock() -- CPU time: preemption on a busy host does not count
        e:pcap(capture)
        local dt = t.cpu_clock() - t0
        messages = (e:metric("sipscope_sip_messages_total", {transport = "udp", ip = "4"}) or 0) +
            (e:metric("sipscope_sip_messages_total", {transport = "tcp", ip = "4"}) or 0) +
            (e:metric("sipscope_sip_messages_total", {transport = "udp", ip = "6"}) or 0) +
            (e:metric("sipscope_sip_messages_total", {transport = "tcp", ip = "6"}) or 0)
        c.best = math.min(c.best, dt)
        e:close()
    end
end

io.write(("%d SIP messages, best of %d runs\n"):format(messages, reps))
local base = configs[1].best / messages * 1e9
for _, c in ipairs(configs) do
    local ns = c.best / messages * 1e9
    io.write(("%-20s %8.1f ns/message  %+7.1f\n"):format(c.name, ns, ns - base))
end
