-- sipscope_output: a busted output handler that prints failures and errors in full and closes
-- with the line every sipscope test runner prints: "N passed, N failed, N skipped" (errors count
-- as failures, pending tests as skipped).
return function(options)
    local busted = require "busted"
    local handler = require "busted.outputHandlers.base"()

    local function show(kind, t)
        local trace = t.element and t.element.trace or {}
        io.write(("%s: %s\n  %s:%s\n  %s\n"):format(kind, t.name or "?", trace.short_src or "?",
            trace.currentline or "?", tostring(t.message)))
        if options.verbose and t.trace and t.trace.traceback then
            io.write(t.trace.traceback, "\n")
        end
    end

    handler.suiteEnd = function()
        for _, t in ipairs(handler.failures) do
            show("FAILED", t)
        end
        for _, t in ipairs(handler.errors) do
            show("ERROR", t)
        end
        io.write(("%d passed, %d failed, %d skipped\n"):format(handler.successesCount,
            handler.failuresCount + handler.errorsCount, handler.pendingsCount))
        io.flush()
        return nil, true
    end

    busted.subscribe({"suite", "end"}, handler.suiteEnd)
    return handler
end
