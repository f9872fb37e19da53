-- Errors thrown through C frames find the right handler (scripts/luajit-unwind-search.patch:
-- the search for an error's handler resumes where the walk for the C frame above stopped).
-- Random nestings of pcall, xpcall and C re-entries into Lua (gsub callbacks, sort comparators,
-- __tostring through string.format and tostring, coroutine.wrap), an error at the bottom: the
-- innermost pcall or xpcall must catch it, with its value intact, and every level above goes
-- on. Each nesting runs twice, so that the second error starts from the very stack shape the
-- first one's search walked.
local KINDS = {"pcall", "xpcall", "gsub", "sort", "fmt", "tostr", "co"}

-- Runs level i of plan (then the levels below it); records in state.caught the first level
-- whose pcall caught the error.
local function level(plan, i, state)
    if i > #plan then
        error({marker = #plan})
    end
    local k, below = plan[i], function() return level(plan, i + 1, state) end
    if k == "pcall" or k == "xpcall" then
        local ok, e
        if k == "pcall" then
            ok, e = pcall(below)
        else
            ok, e = xpcall(below, function(err) return err end)
        end
        if not ok then
            assert(type(e) == "table" and e.marker == #plan, "the error's value changed")
            state.caught = state.caught or i
            return "caught"
        end
        return e
    end
    local r
    if k == "gsub" then
        string.gsub("a", "a", function() r = below() end)
    elseif k == "sort" then
        table.sort({2, 1}, function(a, b) r = below() return a < b end)
    elseif k == "fmt" then
        string.format("%s", setmetatable({}, {__tostring = function() r = below() return "o" end}))
    elseif k == "tostr" then
        tostring(setmetatable({}, {__tostring = function() r = below() return "o" end}))
    else
        r = coroutine.wrap(below)()
    end
    return r
end

describe("an error thrown through C frames", function()
    it("is caught by the innermost pcall in 1,000 random nestings", function()
        local seed = 12345
        local function rand(n) -- a fixed sequence, whatever else uses math.random
            seed = (seed * 1103515245 + 12345) % 2147483648
            return seed % n + 1
        end
        for run = 1, 1000 do
            local plan = {}
            for i = 1, rand(80) do
                plan[i] = KINDS[rand(#KINDS)]
            end
            local want
            for i = #plan, 1, -1 do
                if plan[i] == "pcall" or plan[i] == "xpcall" then
                    want = i
                    break
                end
            end
            for _ = 1, 2 do
                local state = {}
                local ok, e = pcall(level, plan, 1, state)
                if want then
                    assert.is_true(ok, "run " .. run)
                    assert.are.equal(want, state.caught, "run " .. run)
                else
                    assert.is_false(ok, "run " .. run)
                    assert.are.equal(#plan, e.marker, "run " .. run)
                end
            end
        end
    end)
end)
