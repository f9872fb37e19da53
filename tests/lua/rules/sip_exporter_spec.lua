-- rules/sip_exporter.lua: sip-exporter's SIP metric names and meanings, on a scenario mix whose
-- values are derived by hand below. Times are multiples of 1/256 s so that every delay is
-- exact in binary floating point (and so the sums too).
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local A, B = "192.0.2.10:5060", "192.0.2.20:5060"
local U = "unknown"

local function rule(name, cfg)
    local path = t.write_rule(name .. ".lua", configure.text("rules/" .. name .. ".lua", cfg))
    return path
end

local function engine(extra_rules)
    local files = {}
    for _, r in ipairs(extra_rules or {}) do
        files[#files + 1] = r
    end
    files[#files + 1] = rule("sip_exporter", {enabled = true})
    return t.engine{rules = files, config = {t1 = "100ms"}}
end

-- Messages of call `id` (From-tag ft, To-tag tt once answered); `o` overrides fields.
local function req(e, method, id, time, o, src, dst)
    o = o or {}
    o.call_id = id
    e:sip(t.request(method, o), {time = time, src = src or A, dst = dst or B})
end

local function resp(e, code, id, time, o, src, dst)
    o = o or {}
    o.call_id = id
    e:sip(t.response(code, o), {time = time, src = src or B, dst = dst or A})
end

local function base(labels, extra)
    local l = {carrier = U, ua_type = U, source_country = U, direction = U}
    for k, v in pairs(labels or {}) do
        l[k] = v
    end
    for k, v in pairs(extra or {}) do
        l[k] = v
    end
    return l
end

local EXTRA = {destination_country = U, caller_host = U, called_host = U, iface = U}

-- The scenario (times in seconds after t.EPOCH):
--   A  answered: INVITE 0, 100 +1/128, 180 +0.125, 200 at 1, ACK, BYE at 11, 200 at 11+1/64
--   B  challenged: INVITE 20, 407, ACK, INVITE (CSeq 2) 20.125, 100 +1/128, 180 at 20.375,
--      200 at 21, ACK; re-INVITE (CSeq 3) at 40, 200, ACK; BYE at 61, 200 at 61+1/32
--   C  busy: INVITE 70, 100 +1/128, 486 at 70.25, ACK
--   D  INVITE 71, 503, ACK          E  INVITE 72, 302, ACK
--   F  INVITE 73, retransmitted at 73.5, never answered: Timer B (6.4 s) at 79.4
--   H  answered at 100.5 and still up at the end
--   registrations: alice 401 then 200 (62.5 ms), bob 403, dave 407, carol 302 (15.625 ms)
--   OPTIONS answered in 1/256 s
local function scenario(e)
    req(e, "INVITE", "A", 0, {branch = "z9hG4bKa1"})
    resp(e, 100, "A", 1 / 128, {branch = "z9hG4bKa1"})
    resp(e, 180, "A", 0.125, {branch = "z9hG4bKa1", to_tag = "tt"})
    resp(e, 200, "A", 1, {branch = "z9hG4bKa1", to_tag = "tt"})
    req(e, "ACK", "A", 1 + 1 / 128, {branch = "z9hG4bKa2", to_tag = "tt"})
    req(e, "BYE", "A", 11, {branch = "z9hG4bKa3", to_tag = "tt", cseq = 2})
    resp(e, 200, "A", 11 + 1 / 64, {branch = "z9hG4bKa3", to_tag = "tt", cseq = 2, method = "BYE"})

    req(e, "INVITE", "B", 20, {branch = "z9hG4bKb1"})
    resp(e, 407, "B", 20.0625, {branch = "z9hG4bKb1", to_tag = "ch"})
    req(e, "ACK", "B", 20.078125, {branch = "z9hG4bKb1", to_tag = "ch"})
    req(e, "INVITE", "B", 20.125, {branch = "z9hG4bKb2", cseq = 2})
    resp(e, 100, "B", 20.125 + 1 / 128, {branch = "z9hG4bKb2", cseq = 2})
    resp(e, 180, "B", 20.375, {branch = "z9hG4bKb2", cseq = 2, to_tag = "tt"})
    resp(e, 200, "B", 21, {branch = "z9hG4bKb2", cseq = 2, to_tag = "tt"})
    req(e, "ACK", "B", 21 + 1 / 128, {branch = "z9hG4bKb3", cseq = 2, to_tag = "tt"})
    req(e, "INVITE", "B", 40, {branch = "z9hG4bKb4", cseq = 3, to_tag = "tt"})
    resp(e, 200, "B", 40.0625, {branch = "z9hG4bKb4", cseq = 3, to_tag = "tt"})
    req(e, "ACK", "B", 40.078125, {branch = "z9hG4bKb5", cseq = 3, to_tag = "tt"})
    req(e, "BYE", "B", 61, {branch = "z9hG4bKb6", cseq = 4, to_tag = "tt"})
    resp(e, 200, "B", 61 + 1 / 32, {branch = "z9hG4bKb6", cseq = 4, to_tag = "tt", method = "BYE"})

    req(e, "INVITE", "C", 70, {branch = "z9hG4bKc1"})
    resp(e, 100, "C", 70 + 1 / 128, {branch = "z9hG4bKc1"})
    resp(e, 486, "C", 70.25, {branch = "z9hG4bKc1", to_tag = "tt"})
    req(e, "ACK", "C", 70.265625, {branch = "z9hG4bKc1", to_tag = "tt"})

    req(e, "INVITE", "D", 71, {branch = "z9hG4bKd1"})
    resp(e, 503, "D", 71.125, {branch = "z9hG4bKd1", to_tag = "tt"})
    req(e, "ACK", "D", 71.140625, {branch = "z9hG4bKd1", to_tag = "tt"})

    req(e, "INVITE", "E", 72, {branch = "z9hG4bKe1"})
    resp(e, 302, "E", 72.0625, {branch = "z9hG4bKe1", to_tag = "tt"})
    req(e, "ACK", "E", 72.078125, {branch = "z9hG4bKe1", to_tag = "tt"})

    req(e, "INVITE", "F", 73, {branch = "z9hG4bKf1"})
    req(e, "INVITE", "F", 73.5, {branch = "z9hG4bKf1"})
    e:advance(80 - 73.5) -- Timer B of F at 79.4

    local function register(id, user, cseq, time, branch)
        local aor = "sip:" .. user .. "@b.example"
        req(e, "REGISTER", id, time, {branch = branch, cseq = cseq, ruri = "sip:b.example", to = aor,
                                       from = aor, headers = {"Contact: <sip:" .. user .. "@192.0.2.10>"}})
    end
    local function registered(id, user, cseq, code, time, branch, contact)
        local aor = "sip:" .. user .. "@b.example"
        resp(e, code, id, time, {branch = branch, cseq = cseq, method = "REGISTER", to = aor,
                                 from = aor, to_tag = "r",
                                 headers = {contact and ("Contact: <sip:" .. user ..
                                     "@192.0.2.10>;expires=3600") or nil}})
    end
    register("R1", "alice", 1, 90, "z9hG4bKr1")
    registered("R1", "alice", 1, 401, 90.03125, "z9hG4bKr1")
    register("R1", "alice", 2, 90.0625, "z9hG4bKr2")
    registered("R1", "alice", 2, 200, 90.125, "z9hG4bKr2", true)
    register("R2", "bob", 1, 91, "z9hG4bKr3")
    registered("R2", "bob", 1, 403, 91.0625, "z9hG4bKr3")
    register("R4", "dave", 1, 91.5, "z9hG4bKr5")
    registered("R4", "dave", 1, 407, 91.5625, "z9hG4bKr5")
    register("R3", "carol", 1, 92, "z9hG4bKr4")
    registered("R3", "carol", 1, 302, 92.015625, "z9hG4bKr4")

    req(e, "OPTIONS", "O", 93, {branch = "z9hG4bKo1"})
    resp(e, 200, "O", 93 + 1 / 256, {branch = "z9hG4bKo1", method = "OPTIONS", to_tag = "o"})

    req(e, "INVITE", "H", 100, {branch = "z9hG4bKh1"})
    resp(e, 200, "H", 100.5, {branch = "z9hG4bKh1", to_tag = "tt"})
    req(e, "ACK", "H", 100.5078125, {branch = "z9hG4bKh2", to_tag = "tt"})
end

local function m(e, name, labels)
    return e:metric("sip_exporter_" .. name, labels or base())
end

local function hist(e, name, counts, sum)
    local les = {"1", "5", "10", "25", "50", "100", "250", "500", "1000", "5000", "+Inf"}
    if name == "spd" then
        les = {"1", "5", "10", "30", "60", "300", "600", "1800", "3600", "+Inf"}
    end
    for i, le in ipairs(les) do
        assert.are.equal(counts[i], m(e, name .. "_bucket", base(nil, {le = le})), name .. " le=" .. le)
    end
    assert.are.equal(counts[#counts], m(e, name .. "_count"), name .. " count")
    assert.are.equal(sum, m(e, name .. "_sum"), name .. " sum")
end

describe("rules/sip_exporter.lua", function()
    it("ships disabled", function()
        local e = t.engine{rules = {"rules/sip_exporter.lua"}}
        assert.is_false(pcall(e.metric, e, "sip_exporter_packets_total", base()))
        e:close()
    end)

    describe("on the scenario mix", function()
        local e
        setup(function()
            e = engine()
            scenario(e)
            e:advance(1) -- ratios are set once per second (on_tick)
        end)
        teardown(function()
            e:close()
        end)

        it("counts messages, INVITEs and retransmissions", function()
            -- 47 messages: A 7, B 13, C 4, D 3, E 3, F 2, registrations 10, OPTIONS 2, H 3;
            -- less F's INVITE retransmission
            assert.are.equal(46, m(e, "packets_total"))
            assert.are.equal(1, m(e, "sip_retransmission_total", base(nil, {method = "INVITE"})))
            -- initial INVITEs: A, B twice (challenged), C, D, E, F, H
            assert.are.equal(8, m(e, "invite_total", base(nil, EXTRA)))
            assert.are.equal(1, m(e, "reinvite_total"))
            assert.are.equal(3, m(e, "invite_200_total", base(nil, EXTRA))) -- A, B, H
            assert.are.equal(1, m(e, "invite_3xx_total")) -- E
        end)

        it("counts requests per method and responses per code, every copy", function()
            -- ACK: A 1, B 3, C, D, E, H 1 each
            for name, n in pairs {ack_total = 8, bye_total = 2, register_total = 5,
                                  options_total = 1} do
                assert.are.equal(n, m(e, name), name)
            end
            for _, name in ipairs {"cancel_total", "update_total", "info_total", "refer_total",
                                   "subscribe_total", "notify_total", "prack_total",
                                   "publish_total", "message_total", "181_total", "404_total"} do
                assert.is_nil(m(e, name), name)
            end
            -- 200: A INVITE and BYE, B INVITE, re-INVITE and BYE, REGISTER, OPTIONS, H
            for name, n in pairs {["100_total"] = 3, ["180_total"] = 2, ["200_total"] = 8,
                                  ["302_total"] = 2, ["401_total"] = 1, ["403_total"] = 1,
                                  ["486_total"] = 1, ["503_total"] = 1,
                                  proxy_authentication_required_total = 2} do
                assert.are.equal(n, m(e, name), name)
            end
        end)

        it("computes the ratios in percent over INVITE transactions, once per second", function()
            -- outcomes of the 8 initial INVITEs: 200 (A, B's retry, H), 407 (B's first),
            -- 486, 503, 302, timeout (F). SER = 3 / (8 - 1); SEER = (3 + 486) / 7;
            -- ISA = (503 + timeout) / 8; ASR = 3 / 8; SCR = completed (A, B) / 8
            assert.are.equal(100 * 3 / 7, m(e, "ser"))
            assert.are.equal(100 * 4 / 7, m(e, "seer"))
            assert.are.equal(25, m(e, "isa"))
            assert.are.equal(75, m(e, "ner"))
            assert.are.equal(37.5, m(e, "asr"))
            assert.are.equal(25, m(e, "scr"))
            assert.are.equal(1, m(e, "iss_total")) -- the 503; a timeout is no final
        end)

        it("counts completed sessions, short calls and their durations", function()
            -- A lasted 10 + 1/64 s (answer to BYE 200), B 40 + 1/32 s
            assert.are.equal(2, m(e, "sdc_total"))
            assert.are.equal(1, m(e, "short_calls_total", base(nil, {threshold = "20"})))
            assert.are.equal(2, m(e, "short_calls_total", base(nil, {threshold = "60"})))
            assert.are.equal(2, m(e, "short_calls_total", base(nil, {threshold = "180"})))
            hist(e, "spd", {0, 0, 0, 1, 2, 2, 2, 2, 2, 2}, 50.046875)
            assert.are.equal(1, m(e, "sessions")) -- H
        end)

        it("observes the delays in milliseconds", function()
            -- first 1xx of A, B's retry and C: 7.8125 ms each
            hist(e, "ttr", {0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3}, 23.4375)
            -- 180: A after 125 ms, B's retry after 250 ms
            hist(e, "pdd", {0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2}, 375)
            -- BYE to 200: 15.625 and 31.25 ms
            hist(e, "pbd", {0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2}, 46.875)
            -- alice's second REGISTER to its 200: 62.5 ms; carol's to 302: 15.625 ms
            hist(e, "rrd", {0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1}, 62.5)
            hist(e, "lrd", {0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, 15.625)
            hist(e, "ord", {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 3.90625)
        end)

        it("counts registrations as sip-exporter does", function()
            assert.are.equal(1, m(e, "register_success_total"))
            assert.are.equal(1, m(e, "register_failure_total", base(nil, {code = "401"})))
            assert.are.equal(1, m(e, "register_failure_total", base(nil, {code = "403"})))
            assert.are.equal(1, m(e, "register_failure_total", base(nil, {code = "407"})))
            assert.are.equal(1, m(e, "register_failure_total", base(nil, {code = "302"})))
            -- 200 / (200 + 403): 401, 407 and 3xx are not failures here
            assert.are.equal(50, m(e, "register_success_ratio"))
            assert.are.equal(1, m(e, "active_registrations"))
            assert.are.equal(1, e:metric("sip_exporter_build_info", {version = "0.1.0"}))
        end)

        it("reports no rule error", function()
            assert.is_nil(e:metric("sipscope_rule_errors_total",
                {rule = "sip_exporter", hook = "on_message", kind = "runtime"}))
            assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = "sip_exporter"}))
        end)
    end)

    it("takes carrier, ua_type and direction from the rules that declare them", function()
        local e = engine {
            rule("carrier", {enabled = true, carriers = {["192.0.2.0/28"] = "red"}, direction = true}),
            rule("device", {enabled = true}),
        }
        local ua = {"User-Agent: Asterisk PBX 20"}
        req(e, "INVITE", "A", 0, {branch = "z9hG4bKa1", headers = ua})
        resp(e, 486, "A", 0.25, {branch = "z9hG4bKa1", to_tag = "tt"})
        req(e, "ACK", "A", 0.5, {branch = "z9hG4bKa1", to_tag = "tt"})
        req(e, "INVITE", "X", 1, {branch = "z9hG4bKx1"}, "192.0.2.99:5060", "192.0.2.98:5060")
        e:advance(1) -- ratios are set once per second (on_tick)
        local red = {carrier = "red", ua_type = "asterisk", direction = "inbound"}
        assert.are.equal(1, m(e, "invite_total", base(red, EXTRA)))
        assert.are.equal(3, m(e, "packets_total", base(red)))
        assert.are.equal(1, m(e, "486_total", base(red)))
        assert.are.equal(100, m(e, "seer", base(red)))
        assert.are.equal(0, m(e, "ser", base(red)))
        local other = {carrier = "other", ua_type = "unknown", direction = "unknown"}
        assert.are.equal(1, m(e, "invite_total", base(other, EXTRA)))
        -- no outcome yet, but an attempt: the ratios have their denominators
        assert.are.equal(0, m(e, "ser", base(other)))
        assert.are.equal(0, m(e, "isa", base(other)))
        assert.is_nil(m(e, "register_success_ratio", base(other))) -- 0 / 0: not exported
        e:close()
    end)

    it("counts an expired session as completed", function()
        local e = engine()
        req(e, "INVITE", "S", 0, {branch = "z9hG4bKs1"})
        resp(e, 200, "S", 0.5, {branch = "z9hG4bKs1", to_tag = "tt",
                                headers = {"Session-Expires: 90;refresher=uac"}})
        req(e, "ACK", "S", 0.5078125, {branch = "z9hG4bKs2", to_tag = "tt"})
        assert.are.equal(1, m(e, "sessions"))
        e:advance(200) -- no refresh: declared expired 90 + 32 s after the answer
        e:advance(1) -- ratios are set once per second (on_tick)
        assert.are.equal(0, m(e, "sessions"))
        assert.are.equal(1, m(e, "sdc_total"))
        -- it lasted 90 s, to its expiry (RFC 4028 §10), not to the end of sipscope's 32 s
        -- wait for a late refresh: shorter than 180 s only
        assert.are.equal(1, m(e, "short_calls_total", base(nil, {threshold = "180"})))
        assert.is_nil(m(e, "short_calls_total", base(nil, {threshold = "60"})))
        assert.are.equal(90, m(e, "spd_sum"))
        assert.are.equal(100, m(e, "scr"))
        e:close()
    end)

    it("counts AoRs, not bindings, in active_registrations", function()
        local e = engine()
        local aor = "sip:alice@b.example"
        local function register(id, contact, expires, time, cseq)
            req(e, "REGISTER", id, time, {branch = "z9hG4bK" .. id .. cseq, cseq = cseq,
                                          ruri = "sip:b.example", to = aor, from = aor,
                                          headers = {"Contact: <" .. contact .. ">;expires=" ..
                                              expires}})
            resp(e, 200, id, time + 0.125, {branch = "z9hG4bK" .. id .. cseq, cseq = cseq,
                                            method = "REGISTER", to = aor, from = aor,
                                            to_tag = "r", headers = {"Contact: <" .. contact ..
                                                ">;expires=" .. expires}})
        end
        register("p1", "sip:alice@192.0.2.10", 3600, 0, 1)
        register("p2", "sip:alice@192.0.2.11", 3600, 1, 1) -- a second phone: still one AoR
        assert.are.equal(1, m(e, "active_registrations"))
        assert.are.equal(2, e:metric("sip_registrations_active", {}))
        register("p1", "sip:alice@192.0.2.10", 0, 2, 2) -- one phone leaves
        assert.are.equal(1, m(e, "active_registrations"))
        register("p2", "sip:alice@192.0.2.11", 0, 3, 2) -- the other too
        assert.are.equal(0, m(e, "active_registrations"))
        e:close()
    end)
end)
