-- bench/poll.lua - wrk script for the poll row of bench/run.
--
-- wrk -s bench/poll.lua URL -- FILE: FILE has one "TOKEN ETAG" line per
-- target (the ETag quoted as the server sends it).  Every request is
-- GET /agent/v1/desired with that target's token and If-None-Match: its
-- current ETag, the targets taken in turn (each wrk thread starting at a
-- different one), so that the server answers 304 for 1,000 distinct
-- targets.  The requests are formatted once, in init: the per-request
-- cost in wrk is the same for Tender and for nginx, which gets the same
-- requests (its own ETag in them).
local requests = {}
local n, i = 0, 0
local thread_index = 0

function setup(thread)
   thread:set("index", thread_index)
   thread_index = thread_index + 1
end

function init(args)
   local path = args[1]
   if not path then error("usage: wrk -s poll.lua URL -- TOKENS_FILE") end
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      local token, etag = line:match("^(%S+)%s+(%S+)$")
      if token then
         n = n + 1
         requests[n] = wrk.format("GET", "/agent/v1/desired",
            { ["Authorization"] = "Bearer " .. token, ["If-None-Match"] = etag })
      end
   end
   f:close()
   if n == 0 then error(path .. ": no \"TOKEN ETAG\" lines") end
   i = ((index or 0) * 487) % n
end

function request()
   i = i % n + 1
   return requests[i]
end
