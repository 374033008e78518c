-- bench/get.lua: wrk script adding the API key to every GET.
function init(args)
  local key = os.getenv("KEY")
  if key then wrk.headers["Authorization"] = "Bearer " .. key end
end
