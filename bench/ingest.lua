-- bench/ingest.lua: wrk script posting events whose ids are unique per
-- thread and request.  BATCH (environment) events per request; 1 posts a
-- single object.  KEY is the API key.  Each thread builds one template
-- body at start and fills in only the ids per request, so the load
-- generator spends little of the CPU it shares with the stack.
local counter = 0
local batch = tonumber(os.getenv("BATCH") or "1")
local key = os.getenv("KEY")
local models = {
  {"openai", "gpt-4o-mini"}, {"openai", "gpt-4o"}, {"anthropic", "claude-sonnet-4-5"},
  {"anthropic", "claude-haiku-4-5"}, {"gcp.gemini", "gemini-2.5-flash"},
  {"mistral_ai", "mistral-small-latest"},
}
local threads = {}
local template

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

-- One event with its id left as %d, with realistic, varied numbers.
-- SHAPE=minimal sends what basic instrumentation sends (7 fields);
-- the default is a rich event (13 fields: user, agent, session, ...).
local shape = os.getenv("SHAPE") or "rich"
local function event(prefix, i)
  local m = models[i % #models + 1]
  if shape == "minimal" then
    return string.format(
      '{"id":"%s-%%d","provider":"%s","model":"%s","input_tokens":%d,' ..
      '"output_tokens":%d,"latency_ms":%d,"status":200}',
      prefix, m[1], m[2], 200 + (i * 37) % 800, 50 + (i * 13) % 300,
      300 + (i * 101) % 3000)
  end
  return string.format(
    '{"id":"%s-%%d","provider":"%s","model":"%s","input_tokens":%d,' ..
    '"output_tokens":%d,"latency_ms":%d.5,"ttft_ms":%d,"status":200,' ..
    '"user":"user-%d","agent":"bench","session":"s-%d","round":%d}',
    prefix, m[1], m[2], 200 + (i * 37) % 800, 50 + (i * 13) % 300,
    300 + (i * 101) % 3000, 80 + (i * 7) % 200, i % 100, i % 50, i % 8)
end

function init(args)
  math.randomseed(os.time() + tid)
  local prefix = string.format("b%d-%d-%d", os.time(), tid, math.random(1, 1e9))
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. key
  local parts = {}
  for i = 1, batch do parts[i] = event(prefix, i) end
  template = table.concat(parts, ",")
  if batch > 1 then template = "[" .. template .. "]" end
end

function request()
  local ids = {}
  for i = 1, batch do ids[i] = counter + i end
  counter = counter + batch
  return wrk.format("POST", "/api/v1/events", nil,
                    string.format(template, (table.unpack or unpack)(ids)))
end
