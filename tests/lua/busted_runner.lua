-- busted_runner: runs busted inside `sipscope --lua-script`, so that specs exercise the LuaJIT
-- linked into sipscope (and its harness) rather than a system Lua.
--   sipscope --lua-script tests/lua/busted_runner.lua [busted options] tests/lua
-- The closing line is "N passed, N failed, N skipped" (tests/lua/sipscope_output.lua).
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local args = {"-o", here .. "/sipscope_output.lua"}
for i = 1, #arg do
    args[#args + 1] = arg[i]
end
args[0] = arg[0]
arg = args -- busted reads its command line from the global arg
require "busted.runner" {standalone = false}
