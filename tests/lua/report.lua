-- report: how the API specs read back what a rule saw. A rule made with report.engine(rule)
-- starts with a counter seen_total{field, value} and a function see(field, value) that counts
-- one observation; report.seen(e, field, value) reads the count back (nil when never seen), so
-- every assertion is an exact value from the registry.
--
--   local report = dofile("tests/lua/report.lua")
--   local e = report.engine([[return {on_request = function(m) see("method", m.method) end}]])
local t = require "sipscope.testing"

local M = {}

-- Prepended to the rule's text.
M.PRELUDE = [[
local sip = require "sipscope"
local seen = sip.counter{name = "seen_total", help = "what the rule saw", labels = {"field", "value"}}
local function see(field, value) seen:inc(field, tostring(value)) end
]]

-- An engine running PRELUDE .. rule as its only rule; opts as sipscope.testing's engine().
function M.engine(rule, opts)
    opts = opts or {}
    opts.rules = {(t.write_rule("r.lua", M.PRELUDE .. rule))}
    return t.engine(opts)
end

function M.seen(e, field, value)
    return e:metric("seen_total", {field = field, value = tostring(value)})
end

return M
