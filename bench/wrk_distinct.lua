-- wrk_distinct.lua: wrk script for the "distinct requests" HTTP case.
-- Every request carries its own X-Request-Id, so no two request heads are
-- alike, as in real traffic: a server that memoizes whole requests or
-- header lines gets no free hits from wrk repeating one request.
-- luacheck: globals request wrk
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", wrk.path, {["X-Request-Id"] = tostring(n)})
end
