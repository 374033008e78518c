-- bench/ingest.lua: wrk script posting events with ids unique per thread
-- and request.  BATCH (environment) events per request; 1 posts a single
-- object.  KEY is the API key.
local counter = 0
local prefix = ""
local batch = tonumber(os.getenv("BATCH") or "1")
local key = os.getenv("KEY")
local models = {
  {"openai", "gpt-4o-mini"}, {"openai", "gpt-4o"}, {"anthropic", "claude-sonnet-4-5"},
  {"anthropic", "claude-haiku-4-5"}, {"gcp.gemini", "gemini-2.5-flash"},
  {"mistral_ai", "mistral-small-latest"},
}
local threads = {}

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  prefix = string.format("b%d-%d-%d", os.time(), tid, math.random(1, 1e9))
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
end

local function event()
  counter = counter + 1
  local m = models[counter % #models + 1]
  return string.format(
    '{"id":"%s-%d","provider":"%s","model":"%s","input_tokens":%d,' ..
    '"output_tokens":%d,"latency_ms":%d.5,"ttft_ms":%d,"status":200,' ..
    '"user":"user-%d","agent":"bench","session":"s-%d","round":%d}',
    prefix, counter, m[1], m[2], 200 + counter % 800, 50 + counter % 300,
    300 + counter % 3000, 80 + counter % 200, counter % 100, counter % 50,
    counter % 8)
end

function request()
  local body
  if batch == 1 then
    body = event()
  else
    local parts = {}
    for i = 1, batch do parts[i] = event() end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/api/v1/events", nil, body)
end
