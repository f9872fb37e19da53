-- The rule sandbox (DESIGN.md §6): what a rule may not reach fails with a clear message and is
-- counted as kind=api; what it may change is its own copy.
local t = require "sipscope.testing"

local report = dofile("tests/lua/report.lua")
local REPORT, seen = report.PRELUDE, report.seen

describe("the sandbox", function()
    it("refuses each forbidden thing with a clear message", function()
        local path = t.write_rule("r.lua", REPORT .. [[
local tries = {
  require_ffi = function() return require "ffi" end,
  require_io = function() return require "io" end,
  io_open = function() return io.open("/etc/passwd") end,
  os_exit = function() return os.exit(1) end,
  os_execute = function() return os.execute("true") end,
  load = function() return load("return 1") end,
  loadstring = function() return loadstring("return 1") end,
  dofile = function() return dofile("/etc/passwd") end,
  debug = function() return debug.getinfo(1) end,
  jit = function() return jit.off() end,
  package = function() return package.loadlib("x", "y") end,
  setfenv = function() return setfenv(1, {}) end,
  string_dump = function() return string.dump(function() end) end,
  collectgarbage = function() return collectgarbage("collect") end,
  print = function() return print("x") end,
}
return {on_request = function(m)
  for name, f in pairs(tries) do
    local ok, err = pcall(f)
    see(name, ok and "allowed" or err:match("sipscope: .*$") or err)
  end
  see("getmetatable_string", getmetatable(""))
  see("collectgarbage_count", type(collectgarbage("count")))
  see("os_time", type(os.time()))
end}]])
        local e = t.engine{rules = {path}}
        e:sip(t.request("OPTIONS", {}))
        local want = {
            require_ffi = 'sipscope: require "ffi" is not allowed in rules (only "sipscope" and "cjson")',
            require_io = 'sipscope: require "io" is not allowed in rules (only "sipscope" and "cjson")',
            io_open = "sipscope: io is not available to rules",
            os_exit = "sipscope: os.exit is not available to rules (only os.time and os.clock)",
            os_execute = "sipscope: os.execute is not available to rules (only os.time and os.clock)",
            load = "sipscope: load is not available to rules",
            loadstring = "sipscope: loadstring is not available to rules",
            dofile = "sipscope: dofile is not available to rules",
            debug = "sipscope: debug is not available to rules",
            jit = "sipscope: jit is not available to rules",
            package = "sipscope: package is not available to rules",
            setfenv = "sipscope: setfenv is not available to rules",
            string_dump = "sipscope: string.dump is not available to rules",
            collectgarbage = 'sipscope: collectgarbage(collect) is not available to rules (only "count")',
            print = "sipscope: print is not available to rules",
            getmetatable_string = "nil",
            collectgarbage_count = "number",
            os_time = "number",
        }
        for name, text in pairs(want) do
            assert.are.equal(1, seen(e, name, text), name)
        end
        e:close()
    end)

    it("counts each forbidden call a hook does not catch as an api error", function()
        local bad = {
            ffi = 'local ffi = require "ffi"',
            io = 'io.open("/etc/passwd")',
            exit = "os.exit(1)",
            load = 'load("return 1")',
        }
        local dir
        for name, code in pairs(bad) do
            local _
            _, dir = t.write_rule(name .. ".lua",
                "return {on_request = function(m) " .. code .. " end}", dir)
        end
        local e = t.engine{rules_dir = dir, config = {breaker_errors = 0}}
        for i = 1, 5 do
            e:sip(t.request("OPTIONS", {call_id = "s" .. i}), {time = i})
        end
        for name in pairs(bad) do
            assert.are.equal(5, e:metric("sipscope_rule_errors_total",
                {rule = name, hook = "on_request", kind = "api"}), name)
            assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = name}), name)
        end
        -- The engine's own counting went on untouched.
        assert.are.equal(5, e:metric("sip_requests_total", {method = "OPTIONS"}))
        e:close()
    end)

    it("gives each rule its own copies of the libraries", function()
        local p1, dir = t.write_rule("a.lua", REPORT .. [[
string.rep = nil
string.upper = function() return "hijacked" end
math.floor = nil
return {on_request = function(m) see("a_method_rep", ("ab"):rep(2)) end}]])
        t.write_rule("b.lua", [[
local sip = require "sipscope"
local seen = sip.counter{name = "b_seen_total", labels = {"field", "value"}}
return {on_request = function(m)
  seen:inc("rep", string.rep("x", 3))
  seen:inc("upper", string.upper("x"))
  seen:inc("floor", tostring(math.floor(2.5)))
end}]], dir)
        assert.truthy(p1)
        local e = t.engine{rules_dir = dir}
        e:sip(t.request("OPTIONS", {}))
        -- a's own string methods still go through the shared string metatable
        assert.are.equal(1, seen(e, "a_method_rep", "abab"))
        assert.are.equal(1, e:metric("b_seen_total", {field = "rep", value = "xxx"}))
        assert.are.equal(1, e:metric("b_seen_total", {field = "upper", value = "X"}))
        assert.are.equal(1, e:metric("b_seen_total", {field = "floor", value = "2"}))
        e:close()
    end)

    it("makes the sipscope module read-only and private to each rule", function()
        local p1, dir = t.write_rule("a.lua", [[
local sip = require "sipscope"
rawset(sip, "counter", nil)
local ok, err = pcall(function() sip.gauge = nil end)
assert(not ok and err:find("sipscope: the sipscope module is read-only", 1, true))
return {}]])
        t.write_rule("b.lua", REPORT .. [[
return {on_request = function(m) see("b_counter", type(sip.counter)) end}]], dir)
        assert.truthy(p1)
        local e = t.engine{rules_dir = dir}
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, seen(e, "b_counter", "function"))
        e:close()
    end)

    it("provides cjson, one instance per rule", function()
        local path = t.write_rule("j.lua", REPORT .. [[
local cjson = require "cjson"
cjson.encode_sparse_array(true)
return {on_request = function(m)
  see("encode", cjson.encode({a = 1}))
  see("decode", cjson.decode('{"x":[1,2,3]}').x[3])
end}]])
        local e = t.engine{rules = {path}}
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, seen(e, "encode", '{"a":1}'))
        assert.are.equal(1, seen(e, "decode", 3))
        e:close()
    end)

    it("keeps cjson's buffers within --lua-memory", function()
        -- cjson builds its text in malloc'd buffers that the heap's cap does not see: 2,200
        -- references to one 1 MB string made 2.2 GB there (the heap held 1 MB), and ratio 0
        -- turned one sparse key into 2^31 nulls. A new instance per call kept a buffer each.
        local path = t.write_rule("big.lua", REPORT .. [[
local cjson = require "cjson"
local s, refs = string.rep("x", 1000000), {}
for i = 1, 2200 do refs[i] = s end
local function try(name, f, ...)
  local ok, err = pcall(f, ...)
  see(name, ok and "allowed" or err:match("sipscope: .*$") or err)
end
return {on_request = function(m)
  try("encode_big", cjson.encode, refs)
  try("new", function() return cjson.new end)
  try("keep_buffer", function() return cjson.encode_keep_buffer end)
  try("max_depth", function() return cjson.encode_max_depth end)
  try("sparse_ratio_0", cjson.encode_sparse_array, false, 0)
  try("sparse_safe_huge", cjson.encode_sparse_array, false, 2, 2^31)
  try("sparse_key", cjson.encode, {[2^31 - 1] = 1})
  local deep, cur = {s}, {}
  deep[2] = cur
  for i = 1, 1001 do cur[1] = {} cur = cur[1] end
  try("deep", cjson.encode, deep)
  local holes, hole = {}, {[10000] = true}
  for i = 1, 2000 do holes[i] = hole end
  try("holes_ok", cjson.encode_sparse_array, false, 1, 10000)
  try("holes", cjson.encode, holes)
  try("ratio_huge", cjson.encode_sparse_array, false, 2^31 - 1)
  try("ratio_huge_key", cjson.encode, {[2^31 - 1] = 1})
  see("small", cjson.encode({"\1", 2}))
end}]])
        local e = t.engine{rules = {path}, config = {lua_memory = "64MiB"}}
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, seen(e, "encode_big", "sipscope: cjson.encode: the text could take " ..
            "13200079202 bytes, more than --lua-memory (67108864)"))
        -- 2 + 2200 * (6 * 1000000 + 2 + 34): six bytes a character at most, 34 an index
        assert.are.equal(1, seen(e, "new", "sipscope: cjson.new is not available to rules"))
        assert.are.equal(1, seen(e, "keep_buffer",
            "sipscope: cjson.encode_keep_buffer is not available to rules"))
        assert.are.equal(1, seen(e, "max_depth",
            "sipscope: cjson.encode_max_depth is not available to rules"))
        for _, name in ipairs({"sparse_ratio_0", "sparse_safe_huge"}) do
            assert.are.equal(1, seen(e, name, "sipscope: cjson.encode_sparse_array: a ratio " ..
                "below 1 or a safe index above 10000 is not available to rules (it lets one " ..
                "sparse key make billions of nulls)"), name)
        end
        assert.are.equal(1, seen(e, "sparse_key", "Cannot serialise table: excessively sparse array"))
        -- Deeper than cjson goes: refused before cjson writes the 1 MB string before it.
        assert.are.equal(1, seen(e, "deep", "sipscope: cjson.encode: nested deeper than 1000"))
        -- 2,000 arrays of 9,999 holes and one true: the nulls count (5 bytes each).
        assert.are.equal(1, seen(e, "holes_ok", "allowed"))
        assert.are.equal(1, seen(e, "holes", "sipscope: cjson.encode: the text could take " ..
            "100194002 bytes, more than --lua-memory (67108864)"))
        -- 2 + 2000 * (34 + 2 + 34 + 32 + 5 * 9999): an index, the inner table's braces, its
        -- index and value, and its holes
        assert.are.equal(1, seen(e, "ratio_huge", "allowed"))
        assert.are.equal(1, seen(e, "ratio_huge_key", "sipscope: cjson.encode: the text could " ..
            "take 10737418298 bytes, more than --lua-memory (67108864)"))
        -- 2 + 34 + 32 + 5 * (2^31 - 2)
        assert.are.equal(1, seen(e, "small", '["\\u0001",2]'))
        e:close()
    end)

    it("refuses a cjson text that may not fit in the heap's room, so cjson leaks no buffer", function()
        -- 10 MiB of \1 may take 60 MiB as JSON, under the 64 MiB cap but not beside the
        -- 10 MiB string: cjson built the text in a malloc'd buffer, its push to the heap
        -- failed, and the buffer (64 MiB) leaked, every time (LeakSanitizer: 67,043,328 bytes).
        local ffi = require "ffi"
        pcall(ffi.cdef, [[
        struct sipscope_mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks,
                                    fsmblks, uordblks, fordblks, keepcost; };
        struct sipscope_mallinfo2 mallinfo2(void);]])
        local function malloc_bytes()
            local mi = ffi.C.mallinfo2()
            return tonumber(mi.uordblks) + tonumber(mi.hblkhd)
        end
        local path = t.write_rule("big.lua", REPORT .. [[
local cjson = require "cjson"
local s = string.rep("\1", 10 * 1048576)
return {on_request = function(m)
  local ok, err = pcall(cjson.encode, s)
  local room = not ok and tonumber(err:match("leaves %((%d+) bytes%)$"))
  see("big", ok and "allowed" or (err:match("sipscope: .*$"):gsub("%(%d+ bytes%)$", "(N bytes)")))
  see("room", room and room > 0 and room < 54 * 1048576)
  see("small", cjson.encode({"\1", 2}))
end}]])
        local before = malloc_bytes()
        -- A long budget: making 10 MiB (and 60 MiB of text, before) takes milliseconds.
        local e = t.engine{rules = {path}, config = {lua_memory = "64MiB", rule_budget = "1s"}}
        for i = 1, 3 do
            e:sip(t.request("OPTIONS", {call_id = "c" .. i}))
        end
        -- 6 * 10 MiB + 2 for the string; the room is what the heap has beside the 10 MiB
        assert.are.equal(3, seen(e, "big", "sipscope: cjson.encode: the text could take " ..
            "62914562 bytes, more than --lua-memory leaves (N bytes)"))
        assert.are.equal(3, seen(e, "room", true))
        assert.are.equal(3, seen(e, "small", '["\\u0001",2]'))
        assert.is_nil(e:metric("sipscope_rule_errors_total",
            {rule = "big", hook = "on_request", kind = "memory"}))
        assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = "big"}))
        e:close()
        collectgarbage()
        local leaked = malloc_bytes() - before
        assert.is_true(leaked < 4 * 1048576, ("%d bytes still allocated"):format(leaked))
    end)

    it("keeps string.dump, math.randomseed and deep gsub callbacks from rules", function()
        local path = t.write_rule("libs.lua", [[
local function deep(s)
  return (string.gsub(s, ".", deep))
end
local mt = {}
local function deep_table(s)
  return (string.gsub(s, ".", setmetatable({}, mt)))
end
mt.__index = function(_, k) return deep_table(k) end
return {on_dialog_start = function(d)
  local c = d.cdr
  c.dump = select(2, pcall(function() return ("x").dump(deep) end))
  c.seed = select(2, pcall(function() math.randomseed(1) end))
  c.deep = select(2, pcall(deep, "ab"))
  c.deep_table = select(2, pcall(deep_table, "ab"))
  c.shallow = (string.gsub("ab", ".", function(x) return (string.gsub(x, ".", string.upper)) end))
  -- key and gen were the proxy's own members (a write repointed it to another call's fields,
  -- then it raised); the proxy now has no members: a field like any other, the proxy unmoved.
  c.key_write = select(2, pcall(function() c.key = 5 end))
  c.after_key = c.key
end}]])
        local e = t.engine{rules = {path}, events = true}
        t.call(e, {call_id = "s1"})
        local ev = e:events()[1]
        assert.truthy(ev.dump:find("attempt to call field 'dump' (a nil value)", 1, true), ev.dump)
        assert.truthy(ev.seed:find("sipscope: math.randomseed is not available to rules", 1, true),
            ev.seed)
        assert.truthy(ev.deep:find("sipscope: string.gsub nested more than 32 deep in its " ..
            "replacement functions", 1, true), ev.deep)
        assert.truthy(ev.deep_table:find("sipscope: string.gsub nested more than 32 deep", 1, true),
            ev.deep_table)
        assert.are.equal("AB", ev.shallow)
        assert.is_nil(ev.key_write)
        assert.are.equal(5, ev.key)
        assert.are.equal(5, ev.after_key)
        e:close()
    end)

    it("rejects a file that does not return a table of known hooks", function()
        for text, msg in pairs {
            ["return 42"] = "a rule file must return a table of hooks (it returned number)",
            ["return {on_mesage = function() end}"] = "'on_mesage' is not a hook",
            ["return {on_message = 1}"] = "hook on_message must be a function",
            ["return {on_transaction_end = 1}"] =
                "hook on_transaction_end must be a function or a table of functions",
            ["return {on_transaction_end = {FOO = function() end}}"] =
                "on_transaction_end table keys are the methods sipscope tracks",
            ["return {on_transaction_end = {ACK = function() end}}"] =
                "on_transaction_end table keys are the methods sipscope tracks",
            ["return {on_transaction_end = {REGISTER = 1}}"] =
                "on_transaction_end[REGISTER] must be a function",
            ["return {on_response = {[700] = function() end}}"] =
                "on_response table keys are status codes 100..699, got 700",
            ["error('top')"] = "top",
            ["while true do end"] = "its top-level code ran past the rule budget",
            -- a stop that hits an xpcall handler is not swallowed into "error in error
            -- handling", after which the file loaded as if it had kept its budget
            ["xpcall(error, function() while true do end end) return {}"] =
                "its top-level code ran past the rule budget",
            -- a key whose __tostring never returns: named by its type, never called
            ["return {[setmetatable({}, {__tostring = function() while true do end end})] = 1}"] =
                "'a table' is not a hook",
            ["return {on_request = {[setmetatable({}, {__tostring = function() while true do " ..
                "end end})] = function() end}}"] = "on_request table keys are method names, got a table",
            -- bytecode (LuaJIT's signature, then anything): never loaded, text only
            ["\27LJ\2\0\0\0garbage"] = "a rule file must be Lua source, not bytecode",
        } do
            local path = t.write_rule("bad.lua", text)
            local ok, err = pcall(t.engine, {rules = {path}, config = {rule_budget = "20ms"}})
            assert.is_false(ok, text)
            assert.truthy(err:find(msg, 1, true), err)
            assert.truthy(err:find("bad.lua", 1, true), err)
        end
    end)
end)
