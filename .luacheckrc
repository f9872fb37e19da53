-- luacheck configuration (STYLE.md, Lua): LuaJIT, no globals in modules and rules.
std = "luajit"
codes = true
max_line_length = 100

-- busted specs and their runner
files["tests/lua"] = {std = "+busted", max_line_length = 120}
-- busted reads its command line from the global arg
files["tests/lua/busted_runner.lua"] = {globals = {"arg"}}
