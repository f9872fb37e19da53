-- Reloading rules (SIGHUP, POST /-/reload): the new rules are swapped in only when they all
-- load with the same labels; counters survive; failures are visible in metrics.
local t = require "sipscope.testing"

local COUNTER = [[
local sip = require "sipscope"
local c = sip.counter{name = "r_requests_total", labels = {"method"}}
return {on_request = function(m) c:inc(m.method, %d) end}]]

local function options(e, i)
    e:sip(t.request("OPTIONS", {call_id = "o" .. i}), {time = i})
end

local function reloads(e, result)
    return e:metric("sipscope_rules_reloads_total", {result = result})
end

describe("reload", function()
    it("keeps counter values and runs the new code", function()
        local path, dir = t.write_rule("count.lua", COUNTER:format(1))
        local e = t.engine{rules_dir = dir}
        options(e, 1)
        options(e, 2)
        t.write_rule("count.lua", COUNTER:format(10), dir)
        local ok, msg = e:reload()
        assert.is_true(ok)
        assert.are.equal("1 rule file loaded", msg)
        options(e, 3)
        assert.are.equal(12, e:metric("r_requests_total", {method = "OPTIONS"}))
        assert.are.equal(1, reloads(e, "success"))
        assert.are.equal(1, e:metric("sipscope_rules_last_reload_success"))
        assert.are.equal(1, e:metric("sipscope_rules_loaded"))
        assert.truthy(path)
        e:close()
    end)

    it("rejects a broken rule file and keeps the old rules running", function()
        local _, dir = t.write_rule("count.lua", COUNTER:format(1))
        local e = t.engine{rules_dir = dir}
        options(e, 1)
        t.write_rule("count.lua", "return {on_request = function(m) oops( end}", dir)
        local ok, err = e:reload()
        assert.is_false(ok)
        assert.truthy(err:find("count.lua:1:", 1, true), err)
        options(e, 2)
        assert.are.equal(2, e:metric("r_requests_total", {method = "OPTIONS"}))
        assert.are.equal(1, reloads(e, "failure"))
        assert.are.equal(0, reloads(e, "success")) -- exported at 0 from the start
        assert.are.equal(0, e:metric("sipscope_rules_last_reload_success"))
        -- a later good reload clears it
        t.write_rule("count.lua", COUNTER:format(5), dir)
        assert.is_true(e:reload())
        options(e, 3)
        assert.are.equal(7, e:metric("r_requests_total", {method = "OPTIONS"}))
        assert.are.equal(1, e:metric("sipscope_rules_last_reload_success"))
        e:close()
    end)

    it("refuses rules that change the labels, and counts it", function()
        local label = [[
require("sipscope").label{name = "carrier", default = "%s", from = function(m) return nil end}
return {}]]
        local _, dir = t.write_rule("a_label.lua", label:format("other"))
        t.write_rule("count.lua", COUNTER:format(1), dir)
        local e = t.engine{rules_dir = dir}
        options(e, 1)
        t.write_rule("a_label.lua", label:format("unknown"), dir)
        t.write_rule("count.lua", COUNTER:format(100), dir)
        local ok, err = e:reload()
        assert.is_false(ok)
        assert.truthy(err:find("labels", 1, true), err)
        options(e, 2)
        assert.are.equal(2, e:metric("r_requests_total", {method = "OPTIONS"}))
        assert.are.equal(1, reloads(e, "refused"))
        assert.are.equal(0, e:metric("sipscope_rules_last_reload_success"))
        assert.are.equal(2, e:metric("sip_requests_total", {method = "OPTIONS", carrier = "other"}))
        e:close()
    end)

    it("refuses a metric whose schema changed", function()
        local _, dir = t.write_rule("count.lua", COUNTER:format(1))
        local e = t.engine{rules_dir = dir}
        t.write_rule("count.lua", [[
local c = require("sipscope").counter{name = "r_requests_total", labels = {"method", "extra"}}
return {}]], dir)
        local ok, err = e:reload()
        assert.is_false(ok)
        assert.truthy(err:find("r_requests_total", 1, true), err)
        assert.are.equal(1, reloads(e, "failure"))
        e:close()
    end)

    it("blames a file whose top level ends in a long C call, and no other rule", function()
        -- The stop came just after string.rep returned, in the loader: the load failed
        -- without naming the file, and the flag stayed set for the next rule's call, whose
        -- breaker then disabled it.
        local _, dir = t.write_rule("a_slow.lua", "return {}")
        t.write_rule("b_count.lua", [[
local c = require("sipscope").counter{name = "b_messages_total"}
return {on_request = function(m) c:inc() end}]], dir)
        local e = t.engine{rules_dir = dir, config = {rule_budget = "1ms", lua_memory = "256MiB"}}
        t.write_rule("a_slow.lua", "return string.rep('x', 30000000)", dir)
        for i = 1, 4 do
            local ok, err = e:reload()
            assert.is_false(ok)
            assert.truthy(err:find("a_slow.lua: its top-level code ran past the rule budget", 1,
                true), err)
            options(e, i)
        end
        assert.are.equal(4, e:metric("b_messages_total"))
        assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = "b_count"}))
        e:close()
    end)

    it("leaves no family of a reload that failed", function()
        -- The new file declares new_total, then a family whose schema changed: the reload
        -- fails, and new_total must not be left in the registry (exported, and holding its
        -- name and type until restart, so that the corrected file below was refused).
        local _, dir = t.write_rule("count.lua", COUNTER:format(1))
        local e = t.engine{rules_dir = dir}
        options(e, 1)
        t.write_rule("count.lua", [[
local sip = require "sipscope"
local n = sip.counter{name = "new_total"}
local c = sip.counter{name = "r_requests_total", labels = {"other"}}
return {}]], dir)
        local ok, err = e:reload()
        assert.is_false(ok)
        assert.truthy(err:find("metric 'r_requests_total' was declared before", 1, true), err)
        assert.is_false(pcall(e.metric, e, "new_total")) -- no such family
        assert.falsy(e:exposition():find("new_total", 1, true))
        t.write_rule("count.lua", [[
local sip = require "sipscope"
local n = sip.gauge{name = "new_total"}
local c = sip.counter{name = "r_requests_total", labels = {"method"}}
return {on_request = function(m) n:set(7) end}]], dir)
        assert.is_true(e:reload())
        options(e, 2)
        assert.are.equal(7, e:metric("new_total"))
        assert.are.equal(1, e:metric("r_requests_total", {method = "OPTIONS"}))
        e:close()
    end)

    it("re-enables a rule its breaker disabled, and loads new files", function()
        local _, dir = t.write_rule("boom.lua", "return {on_request = function(m) error('x') end}")
        local e = t.engine{rules_dir = dir, config = {breaker_errors = 2}}
        for i = 1, 3 do
            options(e, i)
        end
        assert.are.equal(1, e:metric("sipscope_rule_disabled", {rule = "boom"}))
        assert.are.equal(2, e:metric("sipscope_rule_errors_total",
            {rule = "boom", hook = "on_request", kind = "runtime"}))
        t.write_rule("count.lua", COUNTER:format(1), dir)
        assert.is_true(e:reload())
        assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = "boom"}))
        assert.are.equal(2, e:metric("sipscope_rules_loaded"))
        options(e, 4)
        assert.are.equal(3, e:metric("sipscope_rule_errors_total",
            {rule = "boom", hook = "on_request", kind = "runtime"}))
        assert.are.equal(1, e:metric("r_requests_total", {method = "OPTIONS"}))
        e:close()
    end)

    it("has nothing to do without rules", function()
        local e = t.engine{}
        local ok, msg = e:reload()
        assert.is_true(ok)
        assert.are.equal("no rules loaded: nothing to reload", msg)
        e:close()
    end)
end)
