-- The rule API through the real parser and tracker: handles and their fields, labels, rule
-- metrics, vars and CDR fields. Rules report what they saw through a counter
-- seen_total{field, value}, so every assertion is an exact value read back from the registry.
local t = require "sipscope.testing"

local report = dofile("tests/lua/report.lua")
local engine, seen = report.engine, report.seen

local INVITE = [[
    INVITE sip:+15551234@gw.example;user=phone SIP/2.0
    Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1
    v: SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKfirst
    f: "Alice" <sip:alice@a.example>;tag=from1
    t: <sip:+15551234@gw.example>
    i: call-1@a.example
    CSeq: 7 INVITE
    User-Agent: PhoneCo/2.1
    X-Carrier: blue
    X-Carrier: green
    Content-Type: application/sdp

    v=0
    o=alice 2890844526 2890844527 IN IP4 192.0.2.10
    s=-
    c=IN IP4 192.0.2.10
    t=0 0
    m=audio 49170 RTP/AVP 0 8 101
    a=rtpmap:101 telephone-event/8000
    a=fmtp:101 0-16
    a=ptime:20
    a=sendonly
    m=video 0 RTP/AVP 31
]]

describe("message handles", function()
    it("expose the request's fields", function()
        local e = engine [[
return {on_request = function(m)
  see("method", m.method); see("status", m.status); see("reason", m.reason)
  see("call_id", m.call_id); see("from_tag", m.from_tag); see("to_tag", m.to_tag)
  see("cseq", m.cseq); see("cseq_method", m.cseq_method); see("ruri", m.ruri)
  see("from", m.from); see("to", m.to); see("branch", m.branch)
  see("src_ip", m.src_ip); see("src_port", m.src_port)
  see("dst_ip", m.dst_ip); see("dst_port", m.dst_port); see("transport", m.transport)
  see("time", m.time); see("retransmission", m.retransmission); see("initial", m.initial)
  see("is_request", m.is_request); see("orphan", m.orphan)
end}]]
        e:sip(INVITE, {time = 1.5, src = "192.0.2.10:5062", dst = "198.51.100.7:5060"})
        local want = {
            method = "INVITE", status = "nil", reason = "nil", call_id = "call-1@a.example",
            from_tag = "from1", to_tag = "nil", cseq = "7", cseq_method = "INVITE",
            ruri = "sip:+15551234@gw.example;user=phone", from = "sip:alice@a.example",
            to = "sip:+15551234@gw.example", branch = "z9hG4bKinv1", src_ip = "192.0.2.10",
            src_port = "5062", dst_ip = "198.51.100.7", dst_port = "5060", transport = "udp",
            time = tostring(t.EPOCH + 1.5), retransmission = "false", initial = "true",
            is_request = "true", orphan = "false",
        }
        for field, value in pairs(want) do
            assert.are.equal(1, seen(e, field, value), field)
        end
        e:close()
    end)

    it("expose a response's status, reason and CSeq method, over TCP and IPv6", function()
        local e = engine [[
return {on_response = function(m)
  see("status", m.status); see("reason", m.reason); see("method", m.method)
  see("cseq_method", m.cseq_method); see("src_ip", m.src_ip); see("transport", m.transport)
  see("orphan", m.orphan)
end}]]
        e:sip(t.response(486, {method = "OPTIONS", to_tag = "x"}),
            {src = "[2001:db8::5]:5060", dst = "[2001:db8::1]:5080", tcp = true})
        assert.are.equal(1, seen(e, "status", 486))
        assert.are.equal(1, seen(e, "reason", "Busy Here"))
        assert.are.equal(1, seen(e, "method", "nil"))
        assert.are.equal(1, seen(e, "cseq_method", "OPTIONS"))
        assert.are.equal(1, seen(e, "src_ip", "2001:db8::5"))
        assert.are.equal(1, seen(e, "transport", "tcp"))
        assert.are.equal(1, seen(e, "orphan", "true"))
        e:close()
    end)

    it("find headers by name, compact forms folded, all values in order", function()
        local e = engine [[
return {on_request = function(m)
  see("call-id", m:header("Call-ID")); see("i", m:header("i"))
  see("via", m:header("via")); see("vias", #m:headers("Via"))
  see("via2", m:headers("v")[2]); see("ua", m:header("user-agent"))
  see("carrier", m:header("X-CARRIER")); see("carriers", table.concat(m:headers("x-carrier"), ","))
  see("missing", m:header("X-Nothing")); see("none", #m:headers("X-Nothing"))
end}]]
        e:sip(INVITE)
        assert.are.equal(1, seen(e, "call-id", "call-1@a.example"))
        assert.are.equal(1, seen(e, "i", "call-1@a.example"))
        assert.are.equal(1, seen(e, "via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKinv1"))
        assert.are.equal(1, seen(e, "vias", 2))
        assert.are.equal(1, seen(e, "via2", "SIP/2.0/UDP 192.0.2.5:5060;branch=z9hG4bKfirst"))
        assert.are.equal(1, seen(e, "ua", "PhoneCo/2.1"))
        assert.are.equal(1, seen(e, "carrier", "blue"))
        assert.are.equal(1, seen(e, "carriers", "blue,green"))
        assert.are.equal(1, seen(e, "missing", "nil"))
        assert.are.equal(1, seen(e, "none", 0))
        e:close()
    end)

    it("fold the compact forms of headers sipscope has no id for (Identity is y)", function()
        -- RFC 8224's Identity (y), RFC 3841's Accept-Contact (a), Reject-Contact (j) and
        -- Request-Disposition (d), RFC 4474's Identity-Info (n): IANA's compact forms. Asked
        -- by one name, a header written in the other form was not found (m:header("Identity")
        -- was nil on "y: ...", as was a STIR/SHAKEN check on it).
        local e = engine [[
local ua = sip.classifier{{"prefix", "eyJ", "jwt"}}
return {on_request = function(m)
  see("identity", m:header("Identity")); see("y", m:header("Y"))
  see("identities", table.concat(m:headers("identity"), ","))
  see("accept", m:header("Accept-Contact")); see("a", m:header("a"))
  see("reject", m:header("reject-contact")); see("disp", m:header("Request-Disposition"))
  see("info", m:header("Identity-Info")); see("j", m:header("j"))
  see("class", (ua:classify_header(m, "Identity")))
  see("other", m:header("X-Y")); see("ya", m:header("ya"))
end}]]
        e:sip(t.request("INVITE", {call_id = "id1", headers = {
            "y: eyJhbGciOiJFUzI1NiJ9.a.b;info=<https://cert.example/x.pem>",
            "Identity: eyJsecond.c.d",
            "Accept-Contact: *;audio",
            "j: *;video",
            "d: proxy",
            "N: <https://cert.example/i>",
            "X-Y: z",
        }}))
        assert.are.equal(1, seen(e, "identity", "eyJhbGciOiJFUzI1NiJ9.a.b;info=<https://cert.example/x.pem>"))
        assert.are.equal(1, seen(e, "y", "eyJhbGciOiJFUzI1NiJ9.a.b;info=<https://cert.example/x.pem>"))
        assert.are.equal(1, seen(e, "identities",
            "eyJhbGciOiJFUzI1NiJ9.a.b;info=<https://cert.example/x.pem>,eyJsecond.c.d"))
        assert.are.equal(1, seen(e, "accept", "*;audio"))
        assert.are.equal(1, seen(e, "a", "*;audio"))
        assert.are.equal(1, seen(e, "reject", "*;video"))
        assert.are.equal(1, seen(e, "j", "*;video"))
        assert.are.equal(1, seen(e, "disp", "proxy"))
        assert.are.equal(1, seen(e, "info", "<https://cert.example/i>"))
        assert.are.equal(1, seen(e, "class", "jwt"))
        assert.are.equal(1, seen(e, "other", "z"))
        assert.are.equal(1, seen(e, "ya", "nil"))
        e:close()
    end)

    it("read a folded header's value with each line break and its indent as one space", function()
        -- RFC 3261 7.3.1: a header may continue on lines that start with whitespace, which is
        -- equivalent to one SP. The parser's value spans the lines, and rules got "first\r\n
        -- second": a label or counter value with a line break, an exact or suffix pattern that
        -- did not match, a CDR field with the CRLF in it.
        local e = engine([[
local cl = sip.classifier{{"exact", "Phone/1.0 (build 7)", "phone"}}
local copier = sip.field_copier{ua2 = {header = "User-Agent"}}
return {on_request = function(m)
  see("fold", m:header("X-Fold")); see("folds", table.concat(m:headers("x-fold"), "|"))
  see("ua", m:header("User-Agent")); see("class", (cl:classify_header(m, "User-Agent")))
  see("tabs", m:header("X-Tabs")); see("plain", m:header("X-Plain"))
  if m.dialog then
    m:copy_header_to(m.dialog.cdr, "ua", "User-Agent"); copier:copy(m, m.dialog.cdr)
    m:copy_header_to(m.dialog.cdr, "cut", "X-Fold", 9)
  end
end}]], {events = true})
        e:sip("INVITE sip:b@y SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKf1\r\n" ..
            "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: fold1\r\nCSeq: 1 INVITE\r\n" ..
            "X-Fold: first\r\n  second \r\n\tthird\r\n" ..
            "User-Agent: Phone/1.0\r\n (build 7)\r\n" ..
            "X-Fold: again\r\n" ..
            "X-Tabs: a \t\r\n \t b\r\n" ..
            "X-Plain: one two\r\n" ..
            "Content-Length: 0\r\n\r\n", {raw = true, src = "10.0.0.1:5060", dst = "10.0.0.2:5060"})
        e:sip(t.response(486, {call_id = "fold1", from_tag = "1", from = "sip:a@x", to = "sip:b@y",
            to_tag = "x", branch = "z9hG4bKf1"}), {src = "10.0.0.2:5060", dst = "10.0.0.1:5060"})
        assert.are.equal(1, seen(e, "fold", "first second third"))
        assert.are.equal(1, seen(e, "folds", "first second third|again"))
        assert.are.equal(1, seen(e, "ua", "Phone/1.0 (build 7)"))
        assert.are.equal(1, seen(e, "class", "phone"))
        assert.are.equal(1, seen(e, "tabs", "a b"))
        assert.are.equal(1, seen(e, "plain", "one two"))
        local ev = e:events()[1]
        assert.are.equal("Phone/1.0 (build 7)", ev.ua)
        assert.are.equal("Phone/1.0 (build 7)", ev.ua2)
        assert.are.equal("first sec", ev.cut)
        e:close()
    end)

    it("read a Request-URI parameter's value, user part or host part", function()
        local e = engine [[
return {on_message = function(m)
  local id = m.call_id
  see(id .. "_tgrp", m:ruri_param("tgrp")); see(id .. "_ctx", m:ruri_param("trunk-context"))
  see(id .. "_user", m:ruri_param("user")); see(id .. "_lr", m:ruri_param("lr"))
  see(id .. "_t", m:ruri_param("t"))
  local ok, err = pcall(m.ruri_param, m, nil)
  see("bad_name", err)
end}]]
        local uris = {
            tel = "sip:+4930123;TGRP=tg7;trunk-context=example.com@gw.example;user=phone",
            host = "sip:bob@b.example;lr;user=ip;tgrp=host1",
            hdr = "sip:bob@b.example?tgrp=no;user=no",
            empty = "sip:bob@b.example;tgrp=;t=x",
            none = "sip:bob@b.example",
        }
        for id, uri in pairs(uris) do
            e:sip(t.request("OPTIONS", {call_id = id, ruri = uri}))
        end
        e:sip(t.response(200, {call_id = "resp", method = "OPTIONS"}))
        assert.are.equal(1, seen(e, "tel_tgrp", "tg7")) -- names without case, value up to ';'
        assert.are.equal(1, seen(e, "tel_ctx", "example.com")) -- up to '@'
        assert.are.equal(1, seen(e, "tel_user", "phone"))
        assert.are.equal(1, seen(e, "host_lr", "nil")) -- a flag has no value
        assert.are.equal(1, seen(e, "host_user", "ip"))
        assert.are.equal(1, seen(e, "host_tgrp", "host1"))
        assert.are.equal(1, seen(e, "hdr_tgrp", "nil")) -- after '?' are headers
        assert.are.equal(1, seen(e, "hdr_user", "nil"))
        assert.are.equal(1, seen(e, "empty_tgrp", ""))
        assert.are.equal(1, seen(e, "empty_t", "x")) -- "t" is not a prefix match of "tgrp"
        assert.are.equal(1, seen(e, "none_tgrp", "nil"))
        assert.are.equal(1, seen(e, "resp_tgrp", "nil")) -- a response has no Request-URI
        assert.are.equal(6, seen(e, "bad_name", "sipscope: m:ruri_param(name) takes a parameter name"))
        e:close()
    end)

    it("read the body and parse SDP on demand", function()
        local e = engine [[
return {on_request = function(m)
  local body = m:body()
  see("body_len", #body); see("body_start", body:sub(1, 5))
  local s = m:sdp()
  see("version", s.version); see("origin", s.origin.username .. "/" .. s.origin.session_version)
  see("session_name", s.session_name); see("c", s.connection.address)
  see("media", #s.media); see("m1", s.media[1].media .. ":" .. s.media[1].port)
  see("formats", table.concat(s.media[1].formats, ","))
  local names = {}
  for _, c in ipairs(s.media[1].codecs) do names[#names + 1] = c.name .. "/" .. c.rate end
  see("codecs", table.concat(names, ","))
  see("fmtp", s.media[1].codecs[3].fmtp); see("ptime", s.media[1].ptime)
  see("direction", s.media[1].direction); see("m2", s.media[2].media .. ":" .. s.media[2].port)
  see("m2_direction", s.media[2].direction); see("m2_c", s.media[2].connection.address)
end}]]
        e:sip(INVITE)
        -- 11 SDP lines of the fixture, each with CRLF: 5+49+5+21+7+31+35+17+12+12+22 = 216
        assert.are.equal(1, seen(e, "body_len", 216))
        assert.are.equal(1, seen(e, "body_start", "v=0\r\n"))
        assert.are.equal(1, seen(e, "version", 0))
        assert.are.equal(1, seen(e, "origin", "alice/2890844527"))
        assert.are.equal(1, seen(e, "session_name", "-"))
        assert.are.equal(1, seen(e, "c", "192.0.2.10"))
        assert.are.equal(1, seen(e, "media", 2))
        assert.are.equal(1, seen(e, "m1", "audio:49170"))
        assert.are.equal(1, seen(e, "formats", "0,8,101"))
        assert.are.equal(1, seen(e, "codecs", "PCMU/8000,PCMA/8000,telephone-event/8000"))
        assert.are.equal(1, seen(e, "fmtp", "0-16"))
        assert.are.equal(1, seen(e, "ptime", 20))
        assert.are.equal(1, seen(e, "direction", "sendonly"))
        assert.are.equal(1, seen(e, "m2", "video:0"))
        assert.are.equal(1, seen(e, "m2_direction", "sendrecv"))
        assert.are.equal(1, seen(e, "m2_c", "192.0.2.10"))
        e:close()
    end)

    it("parse the SDP part of a multipart body (SIP-I: SDP and ISUP)", function()
        -- RFC 3204 / ITU-T Q.1912.5: a carrier's INVITE carries its SDP beside the ISUP IAM in
        -- a multipart/mixed body. m:sdp() was nil for them: the body's Content-Type is not
        -- application/sdp.
        local e = engine [[
return {on_request = function(m)
  local s = m:sdp()
  if s == nil then see(m.call_id, "nil") return end
  local c = s.media[1].codecs[1]
  see(m.call_id, s.connection.address .. " " .. s.media[1].port .. " " .. c.name .. "/" .. c.rate
    .. " " .. #s.media)
end}]]
        local sdp = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\n" ..
            "t=0 0\r\nm=audio 49170 RTP/AVP 8\r\n"
        local function invite(id, ct, body)
            return "INVITE sip:+15551234@gw.example SIP/2.0\r\n" ..
                "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK" .. id .. "\r\n" ..
                "From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>\r\nCall-ID: " .. id .. "\r\n" ..
                "CSeq: 1 INVITE\r\nContent-Type: " .. ct .. "\r\n" ..
                "Content-Length: " .. #body .. "\r\n\r\n" .. body
        end
        local isup = "Content-Type: application/ISUP;version=itu-t92+\r\n" ..
            "Content-Disposition: signal;handling=optional\r\n\r\n\1\2\3\r\n"
        local bodies = {
            -- quoted boundary of mixed case, a preamble, SDP first
            mixed = {'multipart/mixed;boundary="Unique-Bnd"',
                "preamble\r\n--Unique-Bnd\r\nContent-Type: application/sdp\r\n\r\n" .. sdp ..
                "\r\n--Unique-Bnd\r\n" .. isup .. "--Unique-Bnd--\r\n"},
            -- unquoted boundary, SDP second, header names in another case, a parameter
            second = {"Multipart/Mixed; charset=x; BOUNDARY=b1",
                "--b1\r\n" .. isup .. "--b1\r\ncontent-type:Application/SDP\r\n\r\n" .. sdp ..
                "\r\n--b1--"},
            -- no SDP part, and a part without headers (text/plain)
            nosdp = {"multipart/mixed;boundary=b2",
                "--b2\r\n" .. isup .. "--b2\r\n\r\n" .. sdp .. "\r\n--b2--\r\n"},
            -- the SDP in a multipart/alternative part of the multipart/mixed body
            nested = {"multipart/mixed;boundary=outer",
                "--outer\r\nContent-Type: multipart/alternative; boundary=\"In\"\r\n\r\n" ..
                "--In\r\nContent-Type: application/sdp\r\n\r\n" .. sdp .. "\r\n--In--\r\n" ..
                "\r\n--outer\r\n" .. isup .. "--outer--\r\n"},
            -- no boundary parameter
            noboundary = {"multipart/mixed", "--b3\r\nContent-Type: application/sdp\r\n\r\n" ..
                sdp .. "\r\n--b3--\r\n"},
        }
        for id, b in pairs(bodies) do
            e:sip(invite(id, b[1], b[2]), {raw = true, src = "192.0.2.10:5060", dst = "192.0.2.1:5060"})
        end
        assert.are.equal(1, seen(e, "mixed", "192.0.2.10 49170 PCMA/8000 1"))
        assert.are.equal(1, seen(e, "second", "192.0.2.10 49170 PCMA/8000 1"))
        assert.are.equal(1, seen(e, "nested", "192.0.2.10 49170 PCMA/8000 1"))
        assert.are.equal(1, seen(e, "nosdp", "nil"))
        assert.are.equal(1, seen(e, "noboundary", "nil"))
        e:close()
    end)

    it("have no body and no SDP without a body", function()
        local e = engine [[
return {on_request = function(m) see("body", m:body()); see("sdp", m:sdp()) end}]]
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, seen(e, "body", "nil"))
        assert.are.equal(1, seen(e, "sdp", "nil"))
        e:close()
    end)

    it("mark retransmissions and run on_message before on_request", function()
        local e = engine [[
local order = 0
return {
  on_message = function(m) order = order + 1; see("message", order .. ":" .. tostring(m.retransmission)) end,
  on_request = function(m) order = order + 1; see("request", order) end,
}]]
        e:sip(t.request("OPTIONS", {}), {time = 0})
        e:sip(t.request("OPTIONS", {}), {time = 0.5})
        assert.are.equal(1, seen(e, "message", "1:false"))
        assert.are.equal(1, seen(e, "request", 2))
        assert.are.equal(1, seen(e, "message", "3:true"))
        assert.are.equal(1, seen(e, "request", 4))
        e:close()
    end)

    it("raise a clear, counted error when used after the hook returned", function()
        local e = engine [[
local kept
return {on_request = function(m)
  if kept then see("stale", kept.call_id) end
  kept = m
end}]]
        e:sip(t.request("OPTIONS", {call_id = "a"}))
        e:sip(t.request("OPTIONS", {call_id = "b"}))
        assert.is_nil(seen(e, "stale", "a"))
        assert.is_nil(seen(e, "stale", "b"))
        assert.are.equal(1, e:metric("sipscope_rule_errors_total",
            {rule = "r", hook = "on_request", kind = "api"}))
        e:close()
    end)

    it("are read-only and reject unknown fields", function()
        local e = engine [[
return {on_request = function(m)
  if m.call_id == "w" then m.method = "BYE" else local x = m.methd end
end}]]
        e:sip(t.request("OPTIONS", {call_id = "w"}))
        e:sip(t.request("OPTIONS", {call_id = "u"}))
        assert.are.equal(2, e:metric("sipscope_rule_errors_total",
            {rule = "r", hook = "on_request", kind = "api"}))
        e:close()
    end)
end)

describe("dialog handles", function()
    it("follow a call from start to end with exact times", function()
        local e = engine([[
return {
  on_dialog_start = function(d, m)
    see("start_state", d.state); see("start_call_id", d.call_id); see("start_m", m.method)
    see("start_answer", d.answer_time); see("start_from", d.from); see("start_to", d.to)
  end,
  on_dialog_answer = function(d, m)
    see("answer_state", d.state); see("answer_status", m.status)
    see("answer_setup", d.setup_delay); see("answer_code", d.final_code)
  end,
  on_dialog_end = function(d, m)
    see("end_reason", d.end_reason); see("end_m", m and m.method)
    see("duration", d.duration); see("setup", d.setup_delay); see("final", d.final_code)
    see("start", d.start_time - ]] .. t.EPOCH .. [[); see("end", d.end_time - ]] .. t.EPOCH .. [[)
  end,
}]])
        t.call(e, {call_id = "d1", time = 10, setup = 2, duration = 30})
        assert.are.equal(1, seen(e, "start_state", "trying"))
        assert.are.equal(1, seen(e, "start_call_id", "d1"))
        assert.are.equal(1, seen(e, "start_m", "INVITE"))
        assert.are.equal(1, seen(e, "start_answer", "nil"))
        assert.are.equal(1, seen(e, "start_from", "sip:alice@a.example"))
        assert.are.equal(1, seen(e, "start_to", "sip:bob@b.example"))
        -- 180 with a To-tag made the call early before the 2xx
        assert.are.equal(1, seen(e, "answer_state", "early"))
        assert.are.equal(1, seen(e, "answer_status", 200))
        assert.are.equal(1, seen(e, "answer_setup", 2))
        assert.are.equal(1, seen(e, "answer_code", 200))
        assert.are.equal(1, seen(e, "end_reason", "bye"))
        assert.are.equal(1, seen(e, "end_m", "BYE"))
        assert.are.equal(1, seen(e, "duration", 30))
        assert.are.equal(1, seen(e, "setup", 2))
        assert.are.equal(1, seen(e, "final", 200))
        assert.are.equal(1, seen(e, "start", 10))
        assert.are.equal(1, seen(e, "end", 42))
        e:close()
    end)

    it("reach the call from its messages, and keep vars per call until it ends", function()
        local e = engine [[
return {
  on_request = function(m)
    local d = m.dialog
    if d then
      d.vars.n = (d.vars.n or 0) + 1
      see(m.method .. "_n", d.vars.n)
    end
  end,
  on_dialog_end = function(d) see("end_n", d.vars.n) end,
}]]
        t.call(e, {call_id = "v1", time = 0})
        t.call(e, {call_id = "v2", time = 100})
        -- INVITE, ACK and BYE of each call reach it: 1, 2, 3; the second call starts over. The
        -- BYE ends the call before its own on_request runs: on_dialog_end sees 2, and the BYE
        -- still finds the vars.
        assert.are.equal(2, seen(e, "INVITE_n", 1))
        assert.are.equal(2, seen(e, "ACK_n", 2))
        assert.are.equal(2, seen(e, "BYE_n", 3))
        assert.are.equal(2, seen(e, "end_n", 2))
        e:close()
    end)

    it("give an ended call's late messages one read-only vars table, which refuses writes", function()
        -- The BYE ends the call: its vars are still there for it. The 200 to the BYE comes
        -- after: they were dropped, and d.vars is an empty table that refuses writes (it was a
        -- new writable table at each read: writes were lost).
        local e = engine [[
return {
  on_message = function(m)
    local d = m.dialog
    if d == nil then return end
    if d.state ~= "ended" then d.vars.x = "live"; return end
    local k = m.method or tostring(m.status)
    local a, b = d.vars, d.vars
    see(k .. "_same", rawequal(a, b))
    see(k .. "_x", a.x)
    local ok, err = pcall(function() a.x = 1 end)
    see(k .. "_write", ok and "ok" or err:sub((err:find("sipscope: ", 1, true))))
    see(k .. "_x_after", d.vars.x)
  end,
}]]
        t.call(e, {call_id = "v1", time = 0})
        assert.are.equal(1, seen(e, "BYE_same", true))
        assert.are.equal(1, seen(e, "BYE_x", "live"))
        assert.are.equal(1, seen(e, "BYE_write", "ok"))
        assert.are.equal(1, seen(e, "BYE_x_after", 1))
        assert.are.equal(1, seen(e, "200_same", true))
        assert.are.equal(1, seen(e, "200_x", nil))
        assert.are.equal(1, seen(e, "200_write", "sipscope: d.vars is read-only once the " ..
            "call has ended (tried to set 'x'): a call's vars live until the message that ends it"))
        assert.are.equal(1, seen(e, "200_x_after", nil))
        e:close()
    end)

    it("report a rejected call and a timeout", function()
        local e = engine([[
return {on_dialog_end = function(d) see(d.call_id, d.end_reason .. "/" .. tostring(d.final_code)) end}]],
            {config = {t1 = "100ms"}})
        e:sip(t.request("INVITE", {call_id = "busy"}), {time = 0})
        e:sip(t.response(486, {call_id = "busy", to_tag = "x"}), {time = 0.5})
        e:sip(t.request("INVITE", {call_id = "silent"}), {time = 1})
        e:advance(10) -- Timer B = 64 * 100 ms = 6.4 s
        assert.are.equal(1, seen(e, "busy", "rejected/486"))
        assert.are.equal(1, seen(e, "silent", "timeout/0"))
        e:close()
    end)
end)

describe("transaction and registration handles", function()
    it("report each transaction's end, timeouts included", function()
        local e = engine([[
return {on_transaction_end = function(tx, m)
  see(tx.method, tx.code .. "/" .. tostring(tx.timeout) .. "/" .. tx.response_time)
  see(tx.method .. "_msg", m and m.status)
end}]], {config = {t1 = "100ms"}})
        e:sip(t.request("OPTIONS", {call_id = "o1"}), {time = 0})
        e:sip(t.response(200, {call_id = "o1", method = "OPTIONS", to_tag = "x"}), {time = 0.25})
        e:sip(t.request("MESSAGE", {call_id = "m1"}), {time = 1})
        e:advance(10) -- Timer F = 6.4 s
        assert.are.equal(1, seen(e, "OPTIONS", "200/false/0.25"))
        assert.are.equal(1, seen(e, "OPTIONS_msg", 200))
        assert.are.equal(1, seen(e, "MESSAGE", "0/true/6.4"))
        assert.are.equal(1, seen(e, "MESSAGE_msg", "nil"))
        e:close()
    end)

    it("route on_transaction_end by method when it is a table", function()
        local e = engine([[
return {on_transaction_end = {
  REGISTER = function(tx, m) see("REGISTER", tx.method .. " " .. tx.code) end,
  MESSAGE = function(tx, m) see("MESSAGE", tx.method .. " " .. tx.code .. " " .. tostring(m)) end,
}}]], {config = {t1 = "100ms"}})
        local reg = {call_id = "r1", from = "sip:alice@a.example", to = "sip:alice@a.example",
                     ruri = "sip:a.example"}
        e:sip(t.request("OPTIONS", {call_id = "o1"}), {time = 0})
        e:sip(t.response(200, {call_id = "o1", method = "OPTIONS", to_tag = "x"}), {time = 0.1})
        e:sip(t.request("REGISTER", reg), {time = 0.2})
        reg.method, reg.to_tag = "REGISTER", "y"
        e:sip(t.response(401, reg), {time = 0.3})
        e:sip(t.request("INVITE", {call_id = "i1"}), {time = 0.4})
        e:sip(t.response(486, {call_id = "i1", method = "INVITE", to_tag = "z"}), {time = 0.5})
        e:sip(t.request("MESSAGE", {call_id = "m1"}), {time = 1})
        e:advance(10) -- Timer F = 6.4 s: the MESSAGE times out
        assert.are.equal(1, seen(e, "REGISTER", "REGISTER 401"))
        assert.are.equal(1, seen(e, "MESSAGE", "MESSAGE 0 nil"))
        -- Nothing else reached the rule: the OPTIONS, the INVITE.
        local lines = 0
        for _ in e:exposition():gmatch("\nseen_total{") do
            lines = lines + 1
        end
        assert.are.equal(2, lines)
        e:close()
    end)

    it("report binding changes", function()
        local e = engine [[
return {on_register = function(r) see(r.change, r.aor .. " " .. r.contact .. " " .. r.expires) end}]]
        local reg = {call_id = "r1", from = "sip:alice@a.example", to = "sip:alice@a.example",
                     ruri = "sip:a.example", headers = {"Contact: <sip:alice@192.0.2.10:5060>",
                                                        "Expires: 600"}}
        e:sip(t.request("REGISTER", reg), {time = 0})
        reg.method, reg.to_tag = "REGISTER", "x"
        e:sip(t.response(200, reg), {time = 0.1})
        assert.are.equal(1, seen(e, "added", "sip:alice@a.example sip:alice@192.0.2.10:5060 600"))
        e:close()
    end)
end)

describe("operator labels", function()
    it("are computed once per call and carried by every built-in family", function()
        local e = engine [[
local calls = 0
sip.label{name = "carrier", default = "other", max_values = 4, from = function(m)
  calls = calls + 1
  see("from_calls", calls)
  return m:header("X-Carrier")
end}
return {on_dialog_end = function(d) see("label", d:label("carrier")) end}]]
        t.call(e, {call_id = "c1", headers = {"X-Carrier: blue"}})
        t.call(e, {call_id = "c2", time = 60, headers = {}})
        -- from() ran for the two INVITEs only (not for ACK, BYE or responses)
        assert.are.equal(1, seen(e, "from_calls", 2))
        assert.is_nil(seen(e, "from_calls", 3))
        assert.are.equal(1, seen(e, "label", "blue"))
        assert.are.equal(1, seen(e, "label", "other"))
        assert.are.equal(3, e:metric("sip_requests_total", {method = "INVITE", carrier = "blue"})
            + e:metric("sip_requests_total", {method = "ACK", carrier = "blue"})
            + e:metric("sip_requests_total", {method = "BYE", carrier = "blue"}))
        assert.are.equal(1, e:metric("sip_responses_total",
            {method = "BYE", code = "200", carrier = "blue"}))
        assert.are.equal(1, e:metric("sip_dialogs_ended_total", {reason = "bye", carrier = "other"}))
        assert.are.equal(1, e:metric("sip_session_establishment_ratio", {carrier = "blue"}))
        e:close()
    end)

    it("fall back to the default past max_values, counting the overflow", function()
        local e = engine [[
sip.label{name = "ua", default = "unknown", max_values = 2, from = function(m) return m.call_id end}
return {}]]
        for i = 1, 5 do
            e:sip(t.request("OPTIONS", {call_id = "u" .. i}), {time = i})
        end
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS", ua = "u1"}))
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS", ua = "u2"}))
        assert.is_nil(e:metric("sip_requests_total", {method = "OPTIONS", ua = "u3"}))
        assert.are.equal(3, e:metric("sip_requests_total", {method = "OPTIONS", ua = "unknown"}))
        assert.are.equal(3, e:metric("sipscope_label_overflow_total", {label = "ua"}))
        e:close()
    end)

    it("give the default for a value past 1,024 bytes, counted as such, not as max_values", function()
        -- A from() value longer than the longest label value fell back to the default and was
        -- counted in sipscope_label_overflow_total, whose help said "because the label
        -- reached max_values" (and _symbols_ "refused by the full symbol table"): with 1 value
        -- of 4 held, an operator raised max_values to no effect.
        local e = engine [[
sip.label{name = "lab", default = "d", max_values = 4, from = function(m) return m:header("X-L") end}
local c = sip.counter{name = "r_c_total", labels = {"v"}}
return {on_request = function(m) c:inc(m:header("X-L")) end}]]
        e:sip(t.request("OPTIONS", {call_id = "a", headers = {"X-L: " .. ("y"):rep(1024)}}))
        e:sip(t.request("OPTIONS", {call_id = "b", headers = {"X-L: " .. ("z"):rep(1025)}}))
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS", lab = ("y"):rep(1024)}))
        assert.are.equal(1, e:metric("sip_requests_total", {method = "OPTIONS", lab = "d"}))
        assert.are.equal(1, e:metric("sipscope_label_overflow_total", {label = "lab"}))
        assert.are.equal(1, e:metric("r_c_total", {v = ("y"):rep(1024)}))
        assert.are.equal(1, e:metric("r_c_total", {v = "_overflow_"}))
        local x = e:exposition()
        assert.truthy(x:find("\n# HELP sipscope_label_overflow_total Rule label values that fell " ..
            "back to the default: the label reached max_values, or the value was longer than " ..
            "1,024 bytes.\n", 1, true))
        assert.truthy(x:find("(_symbols_: label values refused by the full symbol table or " ..
            "longer than 1,024 bytes).\n", 1, true))
        e:close()
    end)

    it("carry a NUL in a value as U+FFFD, so that values differing after it stay apart", function()
        -- The ratio collectors pass values as C strings: "a\0c1" and "a\0c2" were both "a"
        -- there, two series with the same labels in one exposition.
        local e = engine [[
sip.label{name = "carrier", default = "other", from = function(m) return "a\0" .. m.call_id end}
return {}]]
        t.call(e, {call_id = "c1"})
        t.call(e, {call_id = "c2", time = 60})
        for _, id in ipairs {"c1", "c2"} do
            local v = "a\239\191\189" .. id
            assert.are.equal(1, e:metric("sip_session_establishment_ratio", {carrier = v}))
            assert.are.equal(1, e:metric("sip_dialogs_ended_total", {reason = "bye", carrier = v}))
        end
        local expo = e:exposition()
        assert.is_nil(expo:find("\0", 1, true))
        local _, ratios = expo:gsub("\nsip_session_establishment_ratio{", "")
        assert.are.equal(2, ratios)
        e:close()
    end)

    it("reject built-in label names and duplicates at load time, naming the file", function()
        local path = t.write_rule("dup.lua", [[
local sip = require "sipscope"
sip.label{name = "method", default = "x", from = function() end}
return {}]])
        local ok, err = pcall(t.engine, {rules = {path}})
        assert.is_false(ok)
        assert.truthy(err:find("dup.lua:2: sip.label: 'method' is a built-in label name",
            1, true), err)
        local p1, dir = t.write_rule("a.lua", [[
require("sipscope").label{name = "carrier", default = "x", from = function() end}
return {}]])
        t.write_rule("b.lua", [[
require("sipscope").label{name = "carrier", default = "y", from = function() end}
return {}]], dir)
        ok, err = pcall(t.engine, {rules_dir = dir})
        assert.is_false(ok)
        assert.truthy(err:find("b.lua:1: sip.label: label 'carrier' is declared twice",
            1, true), err)
        assert.truthy(p1)
    end)

    it("refuse a name past 100 bytes and a default past 1,024, cut in the message", function()
        -- The name is printed on every sample of every sip_ family: 1 MB made 238 MB a scrape.
        local cases = {
            {'("x" .. ("a"):rep(1048576))', '"d"',
             "long.lua:2: sip.label: label 'x" .. ("a"):rep(39) .. "...': the name " ..
             "is 1048577 bytes, more than 100"},
            {'("a"):rep(101)', '"d"', "long.lua:2: sip.label: label '" ..
             ("a"):rep(40) .. "...': the name is 101 bytes, more than 100"},
            {'"carrier"', '("d"):rep(1025)', "long.lua:2: sip.label: label " ..
             "'carrier': the default is 1025 bytes, more than 1024"},
        }
        for _, c in ipairs(cases) do
            local path = t.write_rule("long.lua", [[
local sip = require "sipscope"
sip.label{name = ]] .. c[1] .. [[, default = ]] .. c[2] .. [[, from = function() end}
return {}]])
            local ok, err = pcall(t.engine, {rules = {path}})
            assert.is_false(ok)
            assert.are.equal(1, select(2, err:gsub(c[3]:gsub("[%p]", "%%%0"), "")), err)
            assert.is_true(#err < 400, #err)
        end
        local path = t.write_rule("ok.lua", [[
local sip = require "sipscope"
sip.label{name = ("a"):rep(100), default = ("d"):rep(1024), from = function() end}
return {}]])
        local e = t.engine{rules = {path}}
        e:close()
    end)
end)

describe("rule metrics", function()
    it("count, set and observe with exact values", function()
        local e = engine [[
local c = sip.counter{name = "r_calls_total", help = "calls", labels = {"method"}}
local c0 = sip.counter{name = "r_all_total"}
local c2 = sip.counter{name = "r_pairs_total", labels = {"a", "b"}}
local c3 = sip.counter{name = "r_three_total", labels = {"a", "b", "c"}}
local g = sip.gauge{name = "r_level", labels = {"k"}}
local h = sip.histogram{name = "r_delay_seconds", labels = {"k"}, buckets = {0.1, 1}}
return {on_request = function(m)
  c:inc(m.method); c:inc(m.method, 2); c:inc({method = "X"}, 0.5)
  c0:inc(); c2:inc("x", "y"); c2:inc("x", "y", 3); c3:inc("p", "q", "r"); c3:inc("p", "q", "r", 4)
  g:set("a", 7); g:inc("a"); g:dec("a", 3); g:set({k = "b"}, -1)
  h:observe("a", 0.05); h:observe("a", 0.5); h:observe("a", 5)
end}]]
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(3, e:metric("r_calls_total", {method = "OPTIONS"}))
        assert.are.equal(0.5, e:metric("r_calls_total", {method = "X"}))
        assert.are.equal(1, e:metric("r_all_total"))
        assert.are.equal(4, e:metric("r_pairs_total", {a = "x", b = "y"}))
        assert.are.equal(5, e:metric("r_three_total", {a = "p", b = "q", c = "r"}))
        assert.are.equal(5, e:metric("r_level", {k = "a"}))
        assert.are.equal(-1, e:metric("r_level", {k = "b"}))
        assert.are.equal(3, e:metric("r_delay_seconds_count", {k = "a"}))
        assert.are.equal(5.55, e:metric("r_delay_seconds_sum", {k = "a"}))
        assert.are.equal(1, e:metric("r_delay_seconds_bucket", {k = "a", le = "0.1"}))
        assert.are.equal(2, e:metric("r_delay_seconds_bucket", {k = "a", le = "1"}))
        assert.are.equal(3, e:metric("r_delay_seconds_bucket", {k = "a", le = "+Inf"}))
        e:close()
    end)

    it("cap the series of a family and count the overflow", function()
        local e = engine([[
local c = sip.counter{name = "r_ids_total", labels = {"id"}, max_series = 3}
return {on_request = function(m) c:inc(m.call_id) end}]])
        for i = 1, 10 do
            e:sip(t.request("OPTIONS", {call_id = "id" .. i}), {time = i})
        end
        assert.are.equal(1, e:metric("r_ids_total", {id = "id3"}))
        assert.is_nil(e:metric("r_ids_total", {id = "id4"}))
        assert.are.equal(7, e:metric("r_ids_total", {id = "_overflow_"}))
        assert.are.equal(7, e:metric("sipscope_series_overflow_total", {family = "r_ids_total"}))
        e:close()
    end)

    it("are counted as api errors when misused in a hook", function()
        local e = engine [[
local c = sip.counter{name = "r_x_total", labels = {"a"}}
return {on_request = function(m)
  local n = m.cseq
  if n == 1 then c:inc() elseif n == 2 then c:inc("a", -1)
  elseif n == 3 then c:inc({}) elseif n == 4 then c.inc("a") else c:inc(nil) end
end}]]
        for i = 1, 5 do
            e:sip(t.request("OPTIONS", {call_id = "x" .. i, cseq = i}), {time = i})
        end
        assert.are.equal(5, e:metric("sipscope_rule_errors_total",
            {rule = "r", hook = "on_request", kind = "api"}))
        e:close()
    end)

    it("refuse a name that collides with a built-in family or is reserved", function()
        for _, name in ipairs {"sip_requests_total", "sipscope_mine", "sip_session_setup_seconds_count"} do
            local path = t.write_rule("m.lua", ([[
local c = require("sipscope").counter{name = "%s"}
return {}]]):format(name))
            local ok, err = pcall(t.engine, {rules = {path}})
            assert.is_false(ok, name)
            assert.truthy(err:find("m.lua", 1, true), err)
        end
    end)

    it("refuse a name whose samples another rule family already prints", function()
        -- A histogram x prints x_count: a counter x_count beside it made the exposition print
        -- that sample twice, under two TYPE lines, and promtool (and Prometheus) refuse it.
        local _, dir = t.write_rule("a.lua", [[
local h = require("sipscope").histogram{name = "call_setup_seconds", buckets = {1}}
return {}]])
        t.write_rule("b.lua", [[
local c = require("sipscope").counter{name = "call_setup_seconds_count"}
return {}]], dir)
        local ok, err = pcall(t.engine, {rules_dir = dir})
        assert.is_false(ok)
        assert.truthy(err:find("b.lua", 1, true), err)
        assert.truthy(err:find("metric 'call_setup_seconds_count' collides with " ..
            "'call_setup_seconds' of ", 1, true), err)
        assert.truthy(err:find("(their samples would share the name call_setup_seconds_count)",
            1, true), err)
    end)

    it("refuse a name whose samples a rule family of an earlier load prints", function()
        -- Families stay until restart: a reload must not add a sample name they print.
        local path, dir = t.write_rule("a.lua", [[
local h = require("sipscope").histogram{name = "call_setup_seconds", buckets = {1}}
return {}]])
        local e = t.engine{rules_dir = dir}
        os.remove(path)
        t.write_rule("b.lua", [[
local c = require("sipscope").counter{name = "call_setup_seconds_count"}
return {}]], dir)
        local ok, err = e:reload()
        assert.is_false(ok)
        assert.truthy(err:find("metric 'call_setup_seconds_count' collides with the rule " ..
            "family call_setup_seconds", 1, true), err)
        e:close()
    end)

    it("may only be declared at load time", function()
        local e = engine [[
return {on_request = function(m) sip.counter{name = "late_total"} end}]]
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, e:metric("sipscope_rule_errors_total",
            {rule = "r", hook = "on_request", kind = "api"}))
        e:close()
    end)
end)

describe("rule metric names and help", function()
    it("are refused past their caps at the declaration, cut in the message", function()
        -- 250 families with 4 MiB of help were 2 GB at peak and 1 GB a scrape.
        local cases = {
            {'name = ("a"):rep(201)', "big.lua:2: sip.counter: the name '" ..
             ("a"):rep(40) .. "...' is 201 bytes, more than 200"},
            {'name = "b_total", labels = {("l"):rep(1048576)}', "big.lua:2: metric " ..
             "'b_total': the label name '" .. ("l"):rep(40) .. "...' is 1048576 bytes, more " ..
             "than 100"},
            {'name = "b_total", help = ("h"):rep(4 * 1048576)', "big.lua:2: metric " ..
             "'b_total': the help is 4194304 bytes, more than 1024"},
        }
        for _, c in ipairs(cases) do
            local path = t.write_rule("big.lua", [[
local sip = require "sipscope"
sip.counter{]] .. c[1] .. [[}
return {}]])
            local ok, err = pcall(t.engine, {rules = {path}})
            assert.is_false(ok)
            assert.are.equal(1, select(2, err:gsub(c[2]:gsub("[%p]", "%%%0"), "")), err)
            assert.is_true(#err < 400, #err)
        end
        local path = t.write_rule("ok.lua", [[
local sip = require "sipscope"
local c = sip.histogram{name = ("a"):rep(200), help = ("h"):rep(1024), labels = {("l"):rep(100)}}
return {on_request = function(m) c:observe("x", 1) end}]])
        local e = t.engine{rules = {path}}
        e:sip(t.request("OPTIONS", {}))
        assert.are.equal(1, e:metric(("a"):rep(200) .. "_count", {[("l"):rep(100)] = "x"}))
        e:close()
    end)
end)

describe("rule timing", function()
    it("samples one dispatch in 64 into sipscope_rule_seconds", function()
        local e = engine [[
return {on_request = function(m) end}]]
        for i = 1, 130 do
            e:sip(t.request("OPTIONS", {call_id = "s" .. i}), {time = i})
        end
        assert.are.equal(2, e:metric("sipscope_rule_seconds_count",
            {rule = "r", hook = "on_request"}))
        e:close()
    end)
end)

describe("on_tick", function()
    it("runs once per second of engine clock", function()
        local e = engine([[
return {on_tick = function(now) see("tick", now - ]] .. t.EPOCH .. [[) end}]])
        e:sip(t.request("OPTIONS", {call_id = "a"}), {time = 0.5})
        e:sip(t.request("OPTIONS", {call_id = "b"}), {time = 0.75})
        e:sip(t.request("OPTIONS", {call_id = "c"}), {time = 1.25})
        e:advance(5) -- 6.25: one tick, not one per second skipped
        assert.are.equal(1, seen(e, "tick", 0.5))
        assert.are.equal(1, seen(e, "tick", 1.25))
        assert.are.equal(1, seen(e, "tick", 6.25))
        assert.is_nil(seen(e, "tick", 0.75))
        e:close()
    end)

    it("waits for a message to set the clock (a first datagram that is not SIP does not)", function()
        local e = engine([[
return {on_tick = function(now) see("tick", now - ]] .. t.EPOCH .. [[) end}]])
        e:sip("not SIP at all\r\n", {time = 0.25, raw = true})
        e:sip(t.request("OPTIONS", {call_id = "a"}), {time = 0.5})
        assert.are.equal(1, seen(e, "tick", 0.5))
        assert.is_nil(seen(e, "tick", -t.EPOCH)) -- no tick at time 0 (1970)
        e:close()
    end)
end)

describe("the sipscope module", function()
    it("logs a rule's line as one escaped line of at most 1 KiB of its text", function()
        -- 1 MB with a newline and an escape sequence was 105 MB of standard error per load,
        -- and a fake engine line after a cleared screen.
        local rule = [[
sip.log("%s", "x\n\27[2Jfake: sipscope: error: engine down" .. ("y"):rep(1048576))
sip.log("%s", "fine\tline")
local ok, err = pcall(error, "bad\nline")
sip.log("caught: %s", err)
return {on_request = function(m) error("hook\r\27]0;title\7" .. ("z"):rep(2000)) end}]]
        local text = t.stderr(function()
            local e = engine(rule)
            e:sip(t.request("OPTIONS", {call_id = "a"}))
            e:close()
        end)
        local lines = {}
        for line in text:gmatch("[^\n]*\n") do
            lines[#lines + 1] = line
        end
        assert.are.equal(4, #lines, text:sub(1, 2000))
        -- 40 bytes before the y's; 1,024 of the text, then its length
        assert.are.equal("sipscope: info: lua: rule r: x\\n\\x1b[2Jfake: sipscope: error: " ..
            "engine down" .. ("y"):rep(1024 - 40) .. "... [cut, 1048616 bytes]\n", lines[1])
        assert.are.equal("sipscope: info: lua: rule r: fine\\tline\n", lines[2])
        assert.are.equal("sipscope: info: lua: rule r: caught: bad\\nline\n", lines[3])
        -- An error's message is cut the same way: where (line 8, after the report prelude), 15
        -- bytes, then the z's.
        local where = lines[4]:match("^sipscope: warn: lua: rule r, on_request: (/[^ ]*/r%.lua:8: )")
        assert.truthy(where, lines[4])
        assert.are.equal("sipscope: warn: lua: rule r, on_request: " .. where .. "hook\\r" ..
            "\\x1b]0;title\\x07" .. ("z"):rep(1024 - #where - 15) .. "... [cut, " ..
            (#where + 2015) .. " bytes] [runtime; more errors of this kind are only counted]\n",
            lines[4])
    end)

    it("tells whether an events file is written", function()
        local rule = [[return {on_request = function(m) see("events", sip.events) end}]]
        for _, on in ipairs{false, true} do
            local e = engine(rule, {events = on})
            e:sip(t.request("OPTIONS", {call_id = "a"}), {time = 0.5})
            assert.are.equal(1, seen(e, "events", on))
            assert.is_nil(seen(e, "events", not on))
            e:close()
        end
    end)
end)
