-- device: the type of SIP device behind each call, transaction and registration, from the
-- User-Agent header of the request that starts it (Server when it has none), by an ordered
-- list of patterns matched in C (sip.classifier). Adds the operator label `ua_type` to every
-- built-in sip_ family, and counts transactions' final responses by the answering side's
-- Server header.
-- Documentation: rules/README.md. It does not parse versions or guess from other headers.
local sip = require "sipscope"

-- Configuration. Edit, then restart sipscope: a reload cannot add, remove or change labels.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- The label's name (the sip-exporter migration rule reads `ua_type`).
    label = "ua_type",
    -- Value when the request has neither User-Agent nor Server.
    default = "unknown",
    -- Value when it has one but no pattern matches.
    unmatched = "other",
    -- Distinct values besides the default; past it, new values map to the default and count
    -- in sipscope_label_overflow_total.
    max_values = 32,
    -- Count final responses (a transaction's first: no retransmission, no fork's late final)
    -- by the class of their Server header (User-Agent when absent) in
    -- device_final_responses_total{server, class}: who answers, and how.
    responses = true,
    -- {kind, pattern, class}: the first pattern that matches wins. Kinds: exact, prefix,
    -- suffix, contains, glob (* and ?); nocase = true ignores ASCII case. Class names are label
    -- values: keep them few.
    patterns = {
        {"prefix", "friendly-scanner", "scanner"},
        {"prefix", "sipvicious", "scanner", nocase = true},
        {"prefix", "sipcli", "scanner", nocase = true},
        {"prefix", "sundayddr", "scanner"},
        {"contains", "VaxSIPUserAgent", "scanner"},
        {"prefix", "SIPp", "sipp"},
        {"prefix", "Asterisk", "asterisk"},
        {"prefix", "FPBX", "asterisk"},
        {"contains", "FreeSWITCH", "freeswitch"},
        {"prefix", "Kamailio", "kamailio"},
        {"prefix", "OpenSIPS", "opensips"},
        {"prefix", "3CX", "3cx"},
        {"contains", "Yealink", "yealink", nocase = true},
        {"prefix", "Grandstream", "grandstream"},
        {"prefix", "Polycom", "polycom"},
        {"prefix", "Poly", "polycom"},
        {"prefix", "snom", "snom", nocase = true},
        {"prefix", "Fanvil", "fanvil"},
        {"prefix", "Cisco", "cisco"},
        {"prefix", "Avaya", "avaya"},
        {"prefix", "AudioCodes", "audiocodes"},
        {"prefix", "Ribbon", "ribbon"},
        {"prefix", "Sonus", "ribbon"},
        {"prefix", "Linphone", "softphone", nocase = true},
        {"prefix", "MicroSIP", "softphone"},
        {"prefix", "Zoiper", "softphone"},
        {"contains", "Bria", "softphone"},
        {"prefix", "Obihai", "ata"},
        {"prefix", "Linksys", "ata"},
    },
}

if not config.enabled then
    return {}
end

local classes = sip.classifier(config.patterns)
local unmatched = config.unmatched

sip.label{name = config.label, default = config.default, max_values = config.max_values,
          from = function(m)
              local class, present = classes:classify_header(m, "User-Agent", "Server")
              if not present then
                  return nil
              end
              return class or unmatched
          end}

if not config.responses then
    return {}
end

local finals = sip.counter{name = "device_final_responses_total",
                           help = "First final responses of transactions by the class of their " ..
                               "Server header (User-Agent when absent) and status class",
                           labels = {"server", "class"}}

local CLASS = {[2] = "2xx", [3] = "3xx", [4] = "4xx", [5] = "5xx", [6] = "6xx"}
local default = config.default

-- The first final of each client transaction (one dispatch per transaction, not one per
-- response: retransmissions and forks' late finals are left out by the tracker).
return {
    on_transaction_end = function(t, m)
        if not m then
            return -- timed out: nobody answered
        end
        local s = t.code
        local class, present = classes:classify_header(m, "Server", "User-Agent")
        if not present then
            class = default
        elseif class == nil then
            class = unmatched
        end
        finals:inc(class, CLASS[(s - s % 100) / 100])
    end,
}
