-- The rules' garbage collection that the engine runs between rule calls is charged to no rule's
-- budget: its CPU time is counted in sipscope_lua_gc_seconds_total{kind}, and the full
-- collections near --lua-memory in sipscope_lua_gc_full_collections_total. Before, a rule that
-- kept most of the cap live made every collection walk it, and nothing showed where the time
-- went.
local t = require "sipscope.testing"

local CALLS = 100
local MESSAGES = 7 * CALLS
local pcap

setup(function()
    pcap = os.tmpname()
    assert.are.equal(MESSAGES, t.calls_pcap(pcap, CALLS))
end)

teardown(function()
    os.remove(pcap)
end)

-- Each message makes about 5.5 MB of garbage (60,000 small tables and their array).
local GARBAGE = "local g = {} for i = 1, 60000 do g[i] = {i} end"

describe("garbage collection between rule calls", function()
    it("is counted: a full collection per message when a rule keeps most of the cap", function()
        -- 20 MB live of a 32 MiB cap: each message's garbage takes the heap past three quarters
        -- of the cap (24 MB), by more than the growth allowed before the next full collection
        -- (an eighth of the cap, 4 MB): one after every message's dispatch, with 6 MB to spare
        -- below the cap.
        local _, dir = t.write_rule("hold.lua", [[
local keep = {}
for i = 1, 20 do keep[i] = string.rep(string.char(64 + i), 1048576) end
return {on_message = function(m) local n = #keep ]] .. GARBAGE .. [[ end}]])
        local e = t.engine{rules_dir = dir, config = {lua_memory = "32MiB", rule_budget = "1s"}}
        e:pcap(pcap)
        assert.are.equal(MESSAGES, e:metric("sipscope_lua_gc_full_collections_total"))
        assert.is_true(e:metric("sipscope_lua_gc_seconds_total", {kind = "full"}) > 0)
        assert.are.equal(0, e:metric("sipscope_lua_gc_seconds_total", {kind = "step"}))
        assert.is_nil(e:exposition():find("sipscope_rule_errors_total{", 1, true))
        e:close()
    end)

    it("is counted as steps when the heap is far from the cap", function()
        local _, dir = t.write_rule("churn.lua",
            "return {on_message = function(m) " .. GARBAGE .. " end}")
        local e = t.engine{rules_dir = dir, config = {lua_memory = "64MiB"}}
        e:pcap(pcap)
        assert.are.equal(0, e:metric("sipscope_lua_gc_full_collections_total"))
        assert.are.equal(0, e:metric("sipscope_lua_gc_seconds_total", {kind = "full"}))
        assert.is_true(e:metric("sipscope_lua_gc_seconds_total", {kind = "step"}) > 0)
        e:close()
    end)
end)
