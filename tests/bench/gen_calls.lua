-- gen_calls: writes a pcap of N answered calls (7 messages each, sipscope.testing.calls_pcap)
-- for benchmarks, so that they do not depend on third-party captures.
--   sipscope --lua-script tests/bench/gen_calls.lua OUT.pcap [CALLS=30000]
local t = require "sipscope.testing"
local out = assert(arg[1], "usage: gen_calls.lua OUT.pcap [CALLS]")
io.write(t.calls_pcap(out, tonumber(arg[2] or "30000")), "\n")
