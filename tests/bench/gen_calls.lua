-- gen_calls: writes a pcap (LINKTYPE_RAW, IPv4/UDP) of N answered calls, 7 messages each
-- (INVITE, 100, 180, 200, ACK, BYE, 200), spread over many caller addresses, for benchmarks
-- and containment tests that must not depend on third-party captures.
--   sipscope --lua-script tests/bench/gen_calls.lua OUT.pcap [CALLS=20000]
local t = require "sipscope.testing"

local out_path = assert(arg[1], "usage: gen_calls.lua OUT.pcap [CALLS]")
local calls = tonumber(arg[2] or "20000")

local function le32(n)
    return string.char(n % 256, math.floor(n / 256) % 256, math.floor(n / 65536) % 256,
        math.floor(n / 16777216) % 256)
end
local function be16(n)
    return string.char(math.floor(n / 256) % 256, n % 256)
end
local function ip(a, b, c, d)
    return string.char(a, b, c, d)
end

local f = assert(io.open(out_path, "wb"))
-- pcap global header: magic, v2.4, zone 0, sigfigs 0, snaplen 65535, LINKTYPE_RAW
f:write(le32(0xa1b2c3d4), string.char(2, 0, 4, 0), le32(0), le32(0), le32(65535), le32(101))

local function packet(ts, src, sport, dst, dport, payload)
    local udp = be16(sport) .. be16(dport) .. be16(8 + #payload) .. be16(0)
    local total = 20 + 8 + #payload
    local iph = string.char(0x45, 0) .. be16(total) .. be16(0) .. be16(0x4000) ..
        string.char(64, 17) .. be16(0) .. src .. dst
    local frame = iph .. udp .. payload
    local sec = math.floor(ts)
    local usec = math.floor((ts - sec) * 1e6 + 0.5)
    f:write(le32(sec), le32(usec), le32(#frame), le32(#frame), frame)
end

local n = 0
for i = 1, calls do
    local a = ip(10, 1, math.floor(i / 250) % 250, i % 250 + 1)
    local b = ip(10, 2, 0, 1)
    local t0 = t.EPOCH + i * 0.01
    local id = {call_id = "call-" .. i .. "@bench", from_tag = "f" .. i,
                from = "sip:user" .. (i % 1000) .. "@a.example",
                to = "sip:+4930" .. (1000000 + i) .. "@b.example",
                headers = {"User-Agent: bench/1.0", "Max-Forwards: 70"}}
    local function with(extra)
        local c = {}
        for k, v in pairs(id) do c[k] = v end
        for k, v in pairs(extra) do c[k] = v end
        return c
    end
    local msgs = {
        {0, true, t.request("INVITE", id)},
        {0.01, false, t.response(100, with {headers = {}})},
        {0.1, false, t.response(180, with {to_tag = "t" .. i, headers = {}})},
        {1, false, t.response(200, with {to_tag = "t" .. i, headers = {}})},
        {1.01, true, t.request("ACK", with {to_tag = "t" .. i, branch = "z9hG4bKa" .. i})},
        {31, true, t.request("BYE", with {to_tag = "t" .. i, cseq = 2, branch = "z9hG4bKb" .. i})},
        {31.02, false, t.response(200, with {to_tag = "t" .. i, cseq = 2, method = "BYE",
                                             branch = "z9hG4bKb" .. i, headers = {}})},
    }
    for _, m in ipairs(msgs) do
        local text = t.normalize(m[3])
        if m[2] then
            packet(t0 + m[1], a, 5060, b, 5060, text)
        else
            packet(t0 + m[1], b, 5060, a, 5060, text)
        end
        n = n + 1
    end
end
f:close()
io.write(n, "\n")
