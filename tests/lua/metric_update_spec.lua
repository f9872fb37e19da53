-- Rule metric updates through the generated fixed-arity methods (lua/sipscope/metric.lua) for
-- wide families, and event field names checked without Lua patterns (handles.lua): the fast
-- paths give the same values, and misuse still raises an api error.
local t = require "sipscope.testing"

local function engine(rule)
    local path = t.write_rule("m.lua", "local sip = require 'sipscope'\n" .. rule)
    return t.engine{rules = {path}, events = true}
end

local function api_errors(e, hook)
    return e:metric("sipscope_rule_errors_total", {rule = "m", hook = hook, kind = "api"})
end

describe("rule metrics with many labels", function()
    it("update by position and by name alike", function()
        local e = engine [[
local c4 = sip.counter{name = "w4_total", labels = {"a", "b", "c", "d"}}
local c8 = sip.counter{name = "w8_total", labels = {"a", "b", "c", "d", "e", "f", "g", "h"}}
local g4 = sip.gauge{name = "w4_level", labels = {"a", "b", "c", "d"}}
local h4 = sip.histogram{name = "w4_ms", labels = {"a", "b", "c", "d"}, buckets = {1, 10}}
local g0 = sip.gauge{name = "w0_level"}
return {on_request = function(m)
  c4:inc("p", "q", "r", "s")
  c4:inc("p", "q", "r", "s", 2)
  c4:inc({a = "p", b = "q", c = "r", d = "s"})
  c4:inc("p", "q", "r", 7)           -- a number as a label value
  c8:inc(1, 2, 3, 4, 5, 6, 7, 8)
  g4:set("p", "q", "r", "s", 10)
  g4:inc("p", "q", "r", "s")
  g4:dec("p", "q", "r", "s", 4)
  h4:observe("p", "q", "r", "s", 0.5)
  h4:observe("p", "q", "r", "s", 5)
  g0:set(3); g0:inc(); g0:dec(0.5)
end}]]
        e:sip(t.request("OPTIONS", {call_id = "o1"}), {time = 0})
        e:sip(t.request("OPTIONS", {call_id = "o2"}), {time = 1})
        local l = {a = "p", b = "q", c = "r", d = "s"}
        assert.are.equal(8, e:metric("w4_total", l)) -- (1 + 2 + 1) x 2
        assert.are.equal(2, e:metric("w4_total", {a = "p", b = "q", c = "r", d = "7"}))
        assert.are.equal(2, e:metric("w8_total", {a = "1", b = "2", c = "3", d = "4", e = "5",
                                                 f = "6", g = "7", h = "8"}))
        assert.are.equal(7, e:metric("w4_level", l)) -- 10 + 1 - 4, set again each time
        l.le = "1"
        assert.are.equal(2, e:metric("w4_ms_bucket", l))
        l.le = "10"
        assert.are.equal(4, e:metric("w4_ms_bucket", l))
        assert.are.equal(3.5, e:metric("w0_level", {}))
        assert.is_nil(api_errors(e, "on_request"))
        e:close()
    end)

    it("still raise api errors for misuse", function()
        local e = engine [[
local c4 = sip.counter{name = "w4_total", labels = {"a", "b", "c", "d"}}
local g4 = sip.gauge{name = "w4_level", labels = {"a", "b", "c", "d"}}
local h4 = sip.histogram{name = "w4_ms", labels = {"a", "b", "c", "d"}}
local cases = {
  function() c4:inc("p", "q", "r") end,               -- a label missing
  function() c4:inc("p", "q", "r", "s", 1, 2) end,    -- one argument too many
  function() c4:inc("p", "q", "r", "s", -1) end,      -- a negative amount
  function() c4:inc("p", "q", "r", "s", 0 / 0) end,   -- NaN
  function() c4.inc("p", "q", "r", "s") end,          -- '.' for ':'
  function() g4:set("p", "q", "r", "s") end,          -- no value
  function() g4:set("p", "q", "r", "s", "x") end,     -- not a number
  function() h4:observe("p", "q", "r", "s", {}) end,  -- not a number
  function() c4:inc(nil, "q", "r", "s") end,          -- a nil label value
}
local i = 0
return {on_request = function(m) i = i + 1; cases[i]() end}]]
        for i = 1, 9 do
            e:sip(t.request("OPTIONS", {call_id = "o" .. i}), {time = i})
        end
        assert.are.equal(9, api_errors(e, "on_request"))
        -- the series exists (the general path resolves it before checking the amount), unchanged
        assert.are.equal(0, e:metric("w4_total", {a = "p", b = "q", c = "r", d = "s"}))
        e:close()
    end)
end)

describe("rule metric values", function()
    it("stay finite: an infinite amount or result is an api error, the series as it was", function()
        local rule = [[
local c = sip.counter{name = "v_total", labels = {"k"}}
local c0 = sip.counter{name = "v0_total"}
local g = sip.gauge{name = "v_level", labels = {"k"}}
local h = sip.histogram{name = "v_ms", labels = {"k"}, buckets = {1}}
local cases = {
  function() c:inc("a", 2) end,
  function() c:inc("a", math.huge) end,              -- refused
  function() c:inc({k = "a"}, math.huge) end,        -- refused (by name)
  function() c:inc("a", -math.huge) end,             -- refused
  function() c:inc("b", 1e308) end,
  function() c:inc("b", 1e308) end,                  -- refused: 2e308 is past 1.8e308
  function() c:inc("b") end,                         -- 1e308 + 1 rounds to 1e308
  function() c0:inc(1e308) end,
  function() c0:inc(1e308) end,                      -- refused
  function() g:set("a", 5) end,
  function() g:set("a", math.huge) end,              -- refused
  function() g:set("a", -math.huge) end,             -- refused
  function() g:inc("a", math.huge) end,              -- refused
  function() g:dec("a", math.huge) end,              -- refused
  function() g:set("a", 0 / 0) end,                  -- refused
  function() g:inc("a", -2.5) end,                   -- a gauge goes down: 2.5
  function() g:set("b", -1e308) end,
  function() g:dec("b", 1e308) end,                  -- refused
  function() h:observe("a", math.huge) end,          -- refused
  function() h:observe("a", -math.huge) end,         -- refused
  function() h:observe("a", 1e308) end,
  function() h:observe("a", 1e308) end,              -- refused: the sum
  function() h:observe("b", -0.5) end,
}
local i = 0
return {on_request = function(m)
  i = i + 1
  local ok, err = pcall(cases[i])
  if not ok then
    sip.log("case %d: %s", i, err)
    error(err, 0)
  end
end}]]
        local e
        local log = t.stderr(function()
            e = engine(rule)
            for i = 1, 23 do
                e:sip(t.request("OPTIONS", {call_id = "o" .. i}), {time = i})
            end
        end)
        assert.are.equal(14, api_errors(e, "on_request"))
        assert.are.equal(2, e:metric("v_total", {k = "a"}))
        assert.are.equal(1e308, e:metric("v_total", {k = "b"}))
        assert.are.equal(1e308, e:metric("v0_total", {}))
        assert.are.equal(2.5, e:metric("v_level", {k = "a"}))
        assert.are.equal(-1e308, e:metric("v_level", {k = "b"}))
        assert.are.equal(1, e:metric("v_ms_count", {k = "a"}))
        assert.are.equal(1e308, e:metric("v_ms_sum", {k = "a"}))
        assert.are.equal(0, e:metric("v_ms_bucket", {k = "a", le = "1"}))
        assert.are.equal(1, e:metric("v_ms_bucket", {k = "a", le = "+Inf"}))
        assert.are.equal(-0.5, e:metric("v_ms_sum", {k = "b"}))
        assert.are.equal(1, e:metric("v_ms_bucket", {k = "b", le = "1"}))
        assert.truthy(log:find("case 2: [^\n]*sipscope: counter 'v_total': the amount must be " ..
                               "a finite number >= 0, got inf\n"), log)
        assert.truthy(log:find("case 6: [^\n]*sipscope: counter 'v_total': the amount 1e%+308 " ..
                               "would make its value infinite; left as it was\n"), log)
        assert.truthy(log:find("case 22: [^\n]*sipscope: histogram 'v_ms': the observation " ..
                               "1e%+308 would make its sum infinite; left as it was\n"), log)
        e:close()
    end)
end)

describe("event field names", function()
    it("are identifiers, checked on every write", function()
        local e = engine [[
local names = {"ok_1", "_x", "A9", "1x", "a-b", "", "ok_1", "a b"}
return {on_dialog_end = function(d)
  for _, n in ipairs(names) do
    pcall(function() d.cdr[n] = n end)
  end
  d.cdr.count = #names
end}]]
        t.call(e, {call_id = "c1"})
        local ev = e:events()[1]
        assert.are.equal("ok_1", ev.ok_1)
        assert.are.equal("_x", ev._x)
        assert.are.equal("A9", ev.A9)
        assert.are.equal(8, ev.count)
        for _, bad in ipairs {"1x", "a-b", "", "a b"} do
            assert.is_nil(ev[bad], bad)
        end
        e:close()
    end)
end)
