-- All bundled rules enabled together on one capture (tests/fixtures/pcap/mix-udp4.pcap, SIPp on
-- 127.0.0.1): they load side by side, none fails, and their values agree with the capture's
-- manifest (tests/fixtures/pcap/MANIFEST.md, mix.expect): calls per scenario answered 4, busy
-- 2, rejected-503 2, redirected-302 1, cancelled 2, invite-auth 3, reinvite 2 (16 calls, 19
-- initial INVITEs, 2 re-INVITEs); register-auth 3, deregister 1, options 5; 135 messages.
local t = require "sipscope.testing"
local configure = dofile("tests/lua/rules/configure.lua")

local CAPTURE = "tests/fixtures/pcap/mix-udp4.pcap"

local RULES = {
    carrier = {enabled = true, carriers = {["127.0.0.0/8"] = "loop"}},
    device = {enabled = true},
    fraud = {enabled = true},
    trunk_asr = {enabled = true, trunks = {["127.0.0.1"] = "lo"}},
    sip_exporter = {enabled = true},
}

local function all_rules()
    local dir
    for name, cfg in pairs(RULES) do
        local _, d = t.write_rule(name .. ".lua", configure.text("rules/" .. name .. ".lua", cfg), dir)
        dir = d
    end
    return dir
end

-- The time of a classic pcap's last packet, in seconds since the epoch (little-endian files,
-- as tcpdump writes them on x86).
local function last_packet_time(path)
    local f = assert(io.open(path, "rb"))
    local data = f:read("*a")
    f:close()
    local function u32(i)
        local a, b, c, d = data:byte(i, i + 3)
        return a + b * 256 + c * 65536 + d * 16777216
    end
    assert(u32(1) == 0xa1b2c3d4, "not a little-endian microsecond pcap")
    local pos, last = 25, nil
    while pos + 15 <= #data do
        last = u32(pos) + u32(pos + 4) / 1e6
        pos = pos + 16 + u32(pos + 8)
    end
    return last
end

describe("the bundled rules together", function()
    local e
    setup(function()
        e = t.engine{rules_dir = all_rules(), events = true}
        e:pcap(CAPTURE)
        -- a last on_tick, one second after the capture: sip_exporter sets its ratios then
        e:advance(math.floor(last_packet_time(CAPTURE)) + 1 - t.EPOCH)
    end)
    teardown(function()
        e:close()
    end)

    local L = {carrier = "loop", ua_type = "unknown"}
    local function with(extra)
        local l = {carrier = "loop", ua_type = "unknown"}
        for k, v in pairs(extra or {}) do
            l[k] = v
        end
        return l
    end

    it("load side by side and never fail", function()
        assert.are.equal(5, e:metric("sipscope_rules_loaded", {}))
        for name in pairs(RULES) do
            assert.are.equal(0, e:metric("sipscope_rule_disabled", {rule = name}), name)
        end
        for _, hook in ipairs {"on_message", "on_request", "on_response", "on_dialog_start",
                               "on_dialog_answer", "on_dialog_end", "on_transaction_end",
                               "on_register", "on_tick", "label"} do
            for name in pairs(RULES) do
                for _, kind in ipairs {"runtime", "api", "timeout", "memory"} do
                    assert.is_nil(e:metric("sipscope_rule_errors_total",
                        {rule = name, hook = hook, kind = kind}), name .. " " .. hook)
                end
            end
        end
    end)

    it("label every call with carrier and device", function()
        assert.are.equal(16, e:metric("sip_session_attempts_total", L))
        assert.are.equal(5, e:metric("sip_requests_total", with {method = "OPTIONS"}))
    end)

    it("count device responses", function()
        -- finals: 2xx INVITE 11, BYE 9, CANCEL 2, REGISTER 4, OPTIONS 5; 3xx 1;
        -- 4xx INVITE 401 3, 486 2, 487 2, REGISTER 401 3; 5xx 2. SIPp sends no Server.
        for class, n in pairs {["2xx"] = 31, ["3xx"] = 1, ["4xx"] = 10, ["5xx"] = 2} do
            assert.are.equal(n, e:metric("device_final_responses_total",
                {server = "unknown", class = class}), class)
        end
    end)

    it("give the trunk its answer-seizure view", function()
        local lo = {trunk = "lo", direction = "inbound"}
        assert.are.equal(16, e:metric("trunk_seizures_total", lo))
        assert.are.equal(9, e:metric("trunk_answers_total", lo)) -- answered, auth, reinvite
        assert.are.equal(9 / 16, e:metric("trunk_answer_seizure_ratio", lo))
        assert.are.equal(1 - 2 / 16, e:metric("trunk_network_effectiveness_ratio", lo))
        for outcome, n in pairs {answered = 9, busy = 2, failed = 2, redirected = 1,
                                 cancelled = 2} do
            lo.outcome = outcome
            assert.are.equal(n, e:metric("trunk_call_outcomes_total", lo), outcome)
        end
    end)

    it("raise no fraud alert on ordinary traffic", function()
        assert.is_nil(e:metric("fraud_alerts_total", {signal = "invite_burst"}))
        assert.is_nil(e:metric("fraud_alerts_total", {signal = "register_scan"}))
    end)

    it("leave the 16 CDRs their labels and the engine's signalling fields", function()
        local calls, caller_hangups = 0, 0
        for _, ev in ipairs(e:events()) do
            if ev.type == "call" then
                calls = calls + 1
                assert.are.equal("127.0.0.1", ev.src_ip)
                assert.are.equal("udp", ev.transport)
                assert.are.equal("loop", ev.labels.carrier)
                if ev.hangup == "caller" then
                    caller_hangups = caller_hangups + 1
                end
            end
        end
        assert.are.equal(16, calls)
        assert.are.equal(9, caller_hangups) -- SIPp's UACs send every BYE
    end)

    it("export sip-exporter's names with the rules' labels", function()
        local b = with {source_country = "unknown", direction = "unknown"}
        local function x(name, extra)
            local l = {}
            for k, v in pairs(b) do
                l[k] = v
            end
            for k, v in pairs(extra or {}) do
                l[k] = v
            end
            return e:metric("sip_exporter_" .. name, l)
        end
        local EXTRA = {destination_country = "unknown", caller_host = "unknown",
                       called_host = "unknown", iface = "unknown"}
        assert.are.equal(135, x("packets_total"))
        assert.are.equal(19, x("invite_total", EXTRA))
        assert.are.equal(2, x("reinvite_total"))
        assert.are.equal(9, x("invite_200_total", EXTRA))
        assert.are.equal(1, x("invite_3xx_total"))
        -- SER 9 / (19 - 1); SEER (9 + 486 x2) / 18; ISA 503 x2 / 19
        assert.are.equal(50, x("ser"))
        assert.are.equal(100 * 11 / 18, x("seer"))
        assert.are.equal(100 * 2 / 19, x("isa"))
        assert.are.equal(100 * 9 / 19, x("asr"))
        assert.are.equal(100 * 9 / 19, x("scr"))
        assert.are.equal(9, x("sdc_total"))
        assert.are.equal(15, x("ttr_count")) -- every 100 answers an initial INVITE
        assert.are.equal(11, x("pdd_count"))
        assert.are.equal(9, x("pbd_count"))
        assert.are.equal(4, x("register_success_total"))
        assert.are.equal(3, x("register_failure_total", {code = "401"}))
        assert.are.equal(100, x("register_success_ratio"))
        assert.are.equal(3, x("active_registrations"))
        assert.are.equal(0, x("sessions"))
    end)
end)
