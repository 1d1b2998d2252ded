-- wrk script of the PATHS=1 suite of l7-peers.sh: sends the request paths listed in
-- $WRK_PATHS_FILE (one per line) in turn, each connection of a thread taking the next one,
-- and prints run-peers' RESULT line at the end (report.lua, found at $WRK_REPORT_LUA).
-- The Host header comes from wrk's -H.
dofile(os.getenv("WRK_REPORT_LUA"))

local paths = {}
for line in io.lines(os.getenv("WRK_PATHS_FILE")) do
  if line ~= "" then paths[#paths + 1] = line end
end
local reqs, i = {}, 0

function init(args)
  for k, p in ipairs(paths) do reqs[k] = wrk.format("GET", p) end
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end
