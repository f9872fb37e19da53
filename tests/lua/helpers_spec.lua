-- The C helpers as rules see them: sip.cidr_set, sip.classifier, sip.window.
local t = require "sipscope.testing"

local report = dofile("tests/lua/report.lua")
local engine, seen = report.engine, report.seen

describe("sip.cidr_set", function()
    it("finds the longest prefix of text and of a message's addresses", function()
        local e = engine [[
local carriers = sip.cidr_set{
  ["10.0.0.0/8"] = "wide", ["10.1.0.0/16"] = "narrow", ["2001:db8::/32"] = "six",
}
local trusted = sip.cidr_set{"192.0.2.0/24", "198.51.100.7"}
return {on_request = function(m)
  see("text_wide", carriers:lookup("10.2.3.4")); see("text_narrow", carriers:lookup("10.1.9.9"))
  see("text_none", carriers:lookup("172.16.0.1")); see("text_nil", carriers:lookup(nil))
  see("src", carriers:src(m)); see("dst", carriers:dst(m))
  see("trusted", trusted:lookup("198.51.100.7")); see("untrusted", trusted:lookup("198.51.100.8"))
  see("size", carriers:size())
end}]]
        e:sip(t.request("OPTIONS", {}), {src = "10.1.2.3:5060", dst = "10.200.0.1:5060"})
        e:sip(t.request("OPTIONS", {call_id = "six"}),
            {src = "[2001:db8::1]:5060", dst = "[2001:db9::1]:5060"})
        assert.are.equal(2, seen(e, "text_wide", "wide"))
        assert.are.equal(2, seen(e, "text_narrow", "narrow"))
        assert.are.equal(2, seen(e, "text_none", "nil"))
        assert.are.equal(2, seen(e, "text_nil", "nil"))
        assert.are.equal(1, seen(e, "src", "narrow"))
        assert.are.equal(1, seen(e, "dst", "wide"))
        assert.are.equal(1, seen(e, "src", "six"))
        assert.are.equal(1, seen(e, "dst", "nil"))
        assert.are.equal(2, seen(e, "trusted", "true"))
        assert.are.equal(2, seen(e, "untrusted", "nil"))
        assert.are.equal(2, seen(e, "size", 3))
        e:close()
    end)

    it("refuses a bad prefix at load time, naming the file", function()
        local path = t.write_rule("bad.lua", [[
local set = require("sipscope").cidr_set{["10.1.2.3/8"] = "x"}
return {}]])
        local ok, err = pcall(t.engine, {rules = {path}})
        assert.is_false(ok)
        assert.truthy(err:find("bad.lua:1: sip.cidr_set: ", 1, true), err)
    end)
end)

describe("sip.classifier", function()
    it("returns the class of the first rule that matches", function()
        local e = engine [[
local ua = sip.classifier{
  {"exact", "Asterisk PBX 18", "asterisk18"},
  {"prefix", "Asterisk", "asterisk"},
  {"contains", "yealink", "yealink", nocase = true},
  {kind = "glob", pattern = "Cisco-*/1?.*", class = "cisco"},
}
return {on_request = function(m) see(m.call_id, ua:classify(m:header("User-Agent"))) end}]]
        local agents = {a = "Asterisk PBX 18", b = "Asterisk PBX 20", c = "SIP-T46 YeaLink",
                        d = "Cisco-CP/12.0", e = "Cisco-CP/2.0", f = nil}
        for id, agent in pairs(agents) do
            e:sip(t.request("OPTIONS", {call_id = id, headers = {agent and ("User-Agent: " .. agent)}}))
        end
        e:sip(t.request("OPTIONS", {call_id = "f"}))
        assert.are.equal(1, seen(e, "a", "asterisk18"))
        assert.are.equal(1, seen(e, "b", "asterisk"))
        assert.are.equal(1, seen(e, "c", "yealink"))
        assert.are.equal(1, seen(e, "d", "cisco"))
        assert.are.equal(1, seen(e, "e", "nil"))
        assert.are.equal(1, seen(e, "f", "nil"))
        e:close()
    end)

    it("refuses a rule with a field it does not know, or a nocase that is not a boolean", function()
        -- {"contains", "yealink", "yealink", no_case = true} loaded and matched with case:
        -- the misspelt field was ignored, and so the rule never matched "Yealink".
        local cases = {
            {'{"contains", "yealink", "y", no_case = true}',
             "sip.classifier: rule 1: unknown field 'no_case' (kind, pattern, class, nocase)"},
            {'{"prefix", "a", "x"}, {kind = "exact", pattern = "b", class = "y", Nocase = true}',
             "sip.classifier: rule 2: unknown field 'Nocase' (kind, pattern, class, nocase)"},
            {'{"prefix", "a", "x", "extra"}',
             "sip.classifier: rule 1: unknown field '4' (kind, pattern, class, nocase)"},
            {'{"prefix", "a", "x", nocase = "yes"}',
             "sip.classifier: rule 1: nocase is true or false, got string"},
        }
        for _, c in ipairs(cases) do
            local path = t.write_rule("bad.lua", 'local cl = require("sipscope").classifier{' ..
                c[1] .. '}\nreturn {}')
            local ok, err = pcall(t.engine, {rules = {path}})
            assert.is_false(ok, c[1])
            assert.truthy(err:find("bad.lua:1: " .. c[2], 1, true), err)
        end
        local e = engine [[
local ua = sip.classifier{{"contains", "yealink", "y", nocase = true}, {"prefix", "A", "a", nocase = false}}
return {on_request = function(m) see(m.call_id, ua:classify(m:header("User-Agent"))) end}]]
        e:sip(t.request("OPTIONS", {call_id = "y", headers = {"User-Agent: SIP-T46 YeaLink"}}))
        e:sip(t.request("OPTIONS", {call_id = "a", headers = {"User-Agent: asterisk"}}))
        assert.are.equal(1, seen(e, "y", "y"))
        assert.are.equal(1, seen(e, "a", "nil"))
        e:close()
    end)

    it("classifies a header where it lies, with a fallback header, and tells an absent one", function()
        local e = engine [[
local ua = sip.classifier{
  {"prefix", "Asterisk", "asterisk"},
  {"contains", "yealink", "yealink", nocase = true},
  {"exact", "", "empty"},
}
return {on_request = function(m)
  local class, present = ua:classify_header(m, "User-Agent", "Server")
  see(m.call_id, tostring(class) .. "/" .. tostring(present))
  class, present = ua:classify_header(m, "X-Device") -- not a header sipscope knows
  see(m.call_id .. "_x", tostring(class) .. "/" .. tostring(present))
  local ok, err = pcall(ua.classify_header, ua, "not a message", "User-Agent")
  see("not_message", err)
  ok, err = pcall(ua.classify_header, ua, m, 42)
  see("not_name", err)
end}]]
        local cases = {
            ua = {"User-Agent: Asterisk PBX 20", "Server: SIP-T46 Yealink"},
            server = {"Server: SIP-T46 YeaLink"},
            other = {"User-Agent: Linphone", "X-Device: Asterisk 1"},
            empty = {"User-Agent: ", "x-device: YEALINK phone"},
            none = {},
        }
        for id, headers in pairs(cases) do
            e:sip(t.request("OPTIONS", {call_id = id, headers = headers}))
        end
        assert.are.equal(1, seen(e, "ua", "asterisk/true")) -- User-Agent first
        assert.are.equal(1, seen(e, "server", "yealink/true")) -- no User-Agent: Server
        assert.are.equal(1, seen(e, "other", "nil/true")) -- present, no pattern matches
        assert.are.equal(1, seen(e, "empty", "empty/true"))
        assert.are.equal(1, seen(e, "none", "nil/false"))
        assert.are.equal(1, seen(e, "ua_x", "nil/false"))
        assert.are.equal(1, seen(e, "other_x", "asterisk/true")) -- found by name
        assert.are.equal(1, seen(e, "empty_x", "yealink/true")) -- names fold case
        assert.are.equal(1, seen(e, "none_x", "nil/false"))
        assert.are.equal(5, seen(e, "not_message",
            "sipscope: classifier:classify_header(m, name[, fallback]) takes the message of " ..
            "the running hook"))
        assert.are.equal(5, seen(e, "not_name",
            "sipscope: classifier:classify_header(m, name[, fallback]): header names are strings"))
        e:close()
    end)
end)

describe("sip.classifier's bounds", function()
    it("looks at the first 1,024 bytes of a value, also of a header", function()
        local e = engine [[
local c = sip.classifier{{"contains", "needle", "n"}, {"suffix", "tail", "t"}}
return {on_request = function(m)
  see("near", c:classify(("x"):rep(1018) .. "needle" .. ("x"):rep(3000)))
  see("far", c:classify(("x"):rep(1019) .. "needle" .. ("x"):rep(3000)))
  see("cut_tail", c:classify(("x"):rep(1020) .. "tail" .. ("x"):rep(3000)))
  see("long_tail", c:classify(("x"):rep(3000) .. "tail"))
  local class, present = c:classify_header(m, "X-Long")
  see(m.call_id, tostring(class) .. "/" .. tostring(present))
end}]]
        e:sip(t.request("OPTIONS", {call_id = "early",
            headers = {"X-Long: " .. ("x"):rep(100) .. "needle" .. ("x"):rep(3000)}}))
        e:sip(t.request("OPTIONS", {call_id = "late",
            headers = {"X-Long: " .. ("x"):rep(2000) .. "needle" .. ("x"):rep(3000) .. "tail"}}))
        assert.are.equal(2, seen(e, "near", "n"))
        assert.are.equal(2, seen(e, "far", "nil"))
        assert.are.equal(2, seen(e, "cut_tail", "t"))
        assert.are.equal(2, seen(e, "long_tail", "nil"))
        assert.are.equal(1, seen(e, "early", "n/true"))
        assert.are.equal(1, seen(e, "late", "nil/true"))
        e:close()
    end)

    it("refuses at load a list whose worst case would pass the work bound", function()
        -- 64 globs like this one froze the engine for 45 s on a 4 MiB value: each is a contains
        -- pattern of 121 bytes, all in one index chain, tried at every byte.
        local path = t.write_rule("slow.lua", [[
local rules = {}
for i = 1, 64 do rules[i] = {"glob", "*" .. ("a"):rep(120) .. "b*", "c" .. i} end
local c = require("sipscope").classifier(rules)
return {}]])
        local ok, err = pcall(t.engine, {rules = {path}})
        assert.is_false(ok)
        assert.truthy(err:find("slow.lua:3: sip.classifier: rule 5: pattern \"*" ..
            ("a"):rep(39) .. "...\": with it a lookup's worst case would be 643072 steps, " ..
            "more than 524288 (use fewer contains patterns that start with the same two " ..
            "bytes, or shorter runs between a glob's stars)", 1, true), err)
    end)
end)

describe("sip.window", function()
    it("refuses a fraction of a bucket or of a key, naming the file", function()
        -- buckets = 2.5 loaded as a window of 2 buckets, max_keys = 100.5 as 100.
        for _, spec in ipairs{"seconds = 10, buckets = 2.5", "seconds = 10, max_keys = 100.5"} do
            local path = t.write_rule("bad.lua", 'local w = require("sipscope").window{' .. spec ..
                '}\nreturn {}')
            local ok, err = pcall(t.engine, {rules = {path}})
            assert.is_false(ok, spec)
            assert.truthy(err:find("bad.lua:1: sip.window: buckets and max_keys are whole " ..
                "numbers, got ", 1, true), err)
        end
    end)

    it("counts a window's memory at its full size against --lua-memory, at load", function()
        -- 1,024 buckets make an entry of some 4.2 KB: 200,000 keys are 800 MiB, which an 8 MiB
        -- state cannot give; 1,000 keys (4 MiB) fit, and the heap reports them at once.
        local big = t.write_rule("big.lua",
            "local w = require('sipscope').window{seconds = 1024, buckets = 1024, " ..
            "max_keys = 200000}\nreturn {}")
        local ok, err = pcall(t.engine, {rules = {big}, config = {lua_memory = "8MiB"}})
        assert.is_false(ok)
        assert.truthy(err:find("a window of 200000 keys and 1024 buckets holds up to 8", 1, true),
            err)
        assert.truthy(err:find("more than --lua-memory leaves", 1, true), err)
        local none = t.engine{rules = {(t.write_rule("none.lua", "return {}"))},
                              config = {lua_memory = "8MiB"}}
        local base = none:metric("sipscope_lua_memory_bytes")
        none:close()
        local small = t.engine{rules = {(t.write_rule("small.lua",
            "local w = require('sipscope').window{seconds = 1024, buckets = 1024, " ..
            "max_keys = 1000}\nreturn {}"))}, config = {lua_memory = "8MiB"}}
        local grown = small:metric("sipscope_lua_memory_bytes") - base
        assert.is_true(grown > 4 * 1024 * 1024 and grown < 5 * 1024 * 1024, grown)
        small:close()
    end)

    it("counts events per key over the last seconds of packet time", function()
        local e = engine [[
local w = sip.window{seconds = 10, buckets = 10, max_keys = 100}
return {on_request = function(m) see(m.call_id, w:add(m.src_ip) .. "/" .. w:count("10.9.9.9")) end}]]
        e:sip(t.request("OPTIONS", {call_id = "t0"}), {time = 0, src = "10.0.0.1:5060"})
        e:sip(t.request("OPTIONS", {call_id = "t1"}), {time = 1, src = "10.0.0.1:5060"})
        e:sip(t.request("OPTIONS", {call_id = "t2"}), {time = 2, src = "10.9.9.9:5060"})
        e:sip(t.request("OPTIONS", {call_id = "t9"}), {time = 9.5, src = "10.0.0.1:5060"})
        -- at 10.5 the event of t = 0 has left the window (1 s buckets), the one of t = 1 not
        e:sip(t.request("OPTIONS", {call_id = "t10"}), {time = 10.5, src = "10.0.0.1:5060"})
        -- whole buckets (lua/README.md): the event of 10.6 counts at 19.99, not at 20.0, 9.4 s
        -- after it
        e:sip(t.request("OPTIONS", {call_id = "u10"}), {time = 10.6, src = "10.8.8.8:5060"})
        e:sip(t.request("OPTIONS", {call_id = "u19"}), {time = 19.99, src = "10.8.8.8:5060"})
        e:sip(t.request("OPTIONS", {call_id = "u20"}), {time = 20.0, src = "10.8.8.8:5060"})
        assert.are.equal(1, seen(e, "t0", "1/0"))
        assert.are.equal(1, seen(e, "t1", "2/0"))
        assert.are.equal(1, seen(e, "t2", "1/1"))
        assert.are.equal(1, seen(e, "t9", "3/1"))
        assert.are.equal(1, seen(e, "t10", "3/1"))
        assert.are.equal(1, seen(e, "u10", "1/1"))
        assert.are.equal(1, seen(e, "u19", "2/0"))
        assert.are.equal(1, seen(e, "u20", "2/0"))
        e:close()
    end)

    it("keys by a message's address, and a field after it, as the same text would", function()
        local e = engine [[
local w = sip.window{seconds = 10, buckets = 10, max_keys = 100}
return {on_request = function(m)
  local id = m.call_id
  -- the pair key made in C, then read back through the string key it stands for
  see(id .. "_pair", w:dst(m, 1, "to") .. "/" .. w:count(m.dst_ip .. " " .. m.to))
  see(id .. "_src", w:src(m, 2) .. "/" .. w:count_src(m) .. "/" .. w:count(m.src_ip))
  see(id .. "_zero", w:dst(m, 0, "to") .. "/" .. w:count_dst(m, "to"))
  -- a field the message lacks (a request's To tag) leaves the key ending in the space
  see(id .. "_notag", w:dst(m, 1, "to_tag") .. "/" .. w:count(m.dst_ip .. " "))
  see(id .. "_other", w:count_dst(m, "from") .. "/" .. w:count_dst(m))
  see("bad_with", select(2, pcall(w.dst, w, m, 1, "body")))
  see("bad_n", select(2, pcall(w.src, w, m, -1)))
  see("bad_add_n", select(2, pcall(w.add, w, "k", 1.5)))
  see("not_message", select(2, pcall(w.count_src, w, "10.0.0.1")))
end}]]
        local v4 = {src = "10.0.0.1:5060", dst = "10.0.0.2:5060"}
        e:sip(t.request("OPTIONS", {call_id = "a", to = "sip:bob@b.example"}), v4)
        e:sip(t.request("OPTIONS", {call_id = "b", to = "sip:bob@b.example"}), v4)
        e:sip(t.request("OPTIONS", {call_id = "c", to = "sip:carol@b.example"}), v4)
        e:sip(t.request("OPTIONS", {call_id = "d", to = "sip:carol@b.example"}),
            {src = "[2001:db8::1]:5060", dst = "[2001:db8::2]:5060"})
        assert.are.equal(1, seen(e, "a_pair", "1/1"))
        assert.are.equal(1, seen(e, "b_pair", "2/2"))
        assert.are.equal(1, seen(e, "c_pair", "1/1")) -- another AoR, another pair
        assert.are.equal(1, seen(e, "d_pair", "1/1"))
        assert.are.equal(1, seen(e, "a_src", "2/2/2"))
        assert.are.equal(1, seen(e, "b_src", "4/4/4"))
        assert.are.equal(1, seen(e, "c_src", "6/6/6"))
        assert.are.equal(1, seen(e, "d_src", "2/2/2")) -- IPv6 text, its own key
        assert.are.equal(1, seen(e, "a_zero", "1/1"))
        assert.are.equal(1, seen(e, "b_zero", "2/2"))
        assert.are.equal(1, seen(e, "a_notag", "1/1"))
        assert.are.equal(1, seen(e, "c_notag", "3/3"))
        assert.are.equal(1, seen(e, "d_notag", "1/1"))
        assert.are.equal(1, seen(e, "a_other", "0/0")) -- nothing was added under these keys
        assert.are.equal(4, seen(e, "bad_with",
            "sipscope: window:dst: the key can carry call_id, from, from_tag, to, to_tag or " ..
            "branch after the address, not body"))
        assert.are.equal(4, seen(e, "bad_n", "sipscope: window:src(m, n): n is a whole number >= 0"))
        assert.are.equal(4, seen(e, "bad_add_n",
            "sipscope: window:add(key, n): n is a whole number >= 0"))
        assert.are.equal(4, seen(e, "not_message",
            "sipscope: window:count_src(m) takes the message of the running hook"))
        e:close()
    end)
end)
