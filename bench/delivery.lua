-- wrk script for bench/delivery.sh and bench/submit.sh: POST /v1/messages, one recipient per
-- message, recipients spread evenly over 1,000 domains d0..d999.<DOMAIN_SUFFIX> (bench.test:
-- the ones the delivery benchmark's DNS serves).
-- Environment: PETREL_KEY (API key), MESSAGE_BYTES (size of the text body, default 1024),
-- DOMAIN_SUFFIX (default bench.test).
local counter = 0
local thread_id = 0
local domains = 1000
local suffix = os.getenv("DOMAIN_SUFFIX") or "bench.test"

-- JSON-safe filler text of exactly `bytes` octets.
local function body_text(bytes)
  local line = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod. "
  local text = string.rep(line, math.ceil(bytes / #line))
  return string.sub(text, 1, bytes)
end

local text = body_text(tonumber(os.getenv("MESSAGE_BYTES") or "1024"))

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("PETREL_KEY")
end

-- RATE (requests/s over all CONNECTIONS): each connection waits its share between requests,
-- so the load is offered at a fixed rate rather than as fast as answers come back.
local rate = tonumber(os.getenv("RATE") or "0")
local connections = tonumber(os.getenv("CONNECTIONS") or "32")
if rate > 0 then
  function delay()
    return math.floor(connections * 1000 / rate)
  end
end

function request()
  counter = counter + 1
  -- Consecutive requests go to different domains (and so to all four sinks in turn).
  local domain = "d" .. ((counter + thread_id * 500) % domains) .. "." .. suffix
  local body = '{"from":"Bench <bench@bench.test>","to":["user' .. thread_id .. '.' .. counter ..
      '@' .. domain .. '"],"subject":"Delivery benchmark ' .. counter .. '","text":"' .. text .. '"}'
  return wrk.format(nil, nil, nil, body)
end
