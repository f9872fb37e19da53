-- carrier: names the carrier of each call, transaction and registration from the addresses of
-- the request that starts it: its source (traffic from the carrier), else its destination
-- (traffic to it), by longest-prefix match in a CIDR set. Adds the operator label `carrier`
-- to every built-in sip_ family, so SER, ASR, delays... split per carrier. Documentation:
-- rules/README.md. It does not look at headers: a carrier is where the packets come from.
local sip = require "sipscope"

-- Configuration. Edit, then restart sipscope: a reload cannot add, remove or change labels.
local config = {
    -- false: this file declares nothing and costs nothing.
    enabled = false,
    -- Address prefix (IPv4 or IPv6, "a.b.c.d/n", or a bare address) -> carrier name.
    -- The longest matching prefix wins; several prefixes may name the same carrier.
    carriers = {
        -- ["192.0.2.0/24"] = "acme",
        -- ["2001:db8:1::/48"] = "acme",
        -- ["198.51.100.0/25"] = "blue",
    },
    -- Label value when neither address matches.
    default = "other",
    -- Distinct carrier values the label may take besides the default; past it, new values
    -- map to the default and count in sipscope_label_overflow_total{label="carrier"}.
    max_values = 64,
    -- Also declare the label `direction`: "inbound" when the source matched a carrier,
    -- "outbound" when only the destination did, else "unknown". Doubles the built-in series.
    direction = false,
}

if not config.enabled then
    return {}
end

local carriers = sip.cidr_set(config.carriers)

-- Source first: a call from carrier A to carrier B (transit) belongs to A.
sip.label{name = "carrier", default = config.default, max_values = config.max_values,
          from = function(m)
              local c = carriers:src(m)
              if c == nil then
                  c = carriers:dst(m)
              end
              return c
          end}

if config.direction then
    sip.label{name = "direction", default = "unknown", max_values = 3, from = function(m)
        if carriers:src(m) ~= nil then
            return "inbound"
        elseif carriers:dst(m) ~= nil then
            return "outbound"
        end
        return nil
    end}
end

return {}
