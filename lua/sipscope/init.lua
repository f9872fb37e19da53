-- sipscope: what `require "sipscope"` returns outside a rule, i.e. in a test script run by
-- `sipscope --lua-script` (busted specs). Rules get their own API table from the rules state
-- (sip.label, sip.counter...); a spec drives rules through an engine made by `testing`.
local M = {}

M.testing = require "sipscope.testing"
M.sdp = require "sipscope.sdp" -- sdp.parse(body), the reader behind m:sdp()

return M
