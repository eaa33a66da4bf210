-- wrk script for bench/submit.sh: POST /v1/messages with a 1 KB message (one recipient),
-- recipients spread over 1,000 domains. The API key comes from PETREL_KEY.
local counter = 0
local thread_id = 0
local body_text = string.rep("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 15)

function setup(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("PETREL_KEY")
end

function request()
  counter = counter + 1
  local domain = "d" .. ((counter * 7 + thread_id) % 1000) .. ".bench.example"
  local body = '{"from":"Bench <bench@example.com>","to":["user' .. counter .. '@' .. domain ..
      '"],"subject":"Benchmark message ' .. counter .. '","text":"' .. body_text .. '"}'
  return wrk.format(nil, nil, nil, body)
end
