-- renew: extend the leases of jobs whose handlers are still running.
-- A job no longer in flight (reaped, or Redis was flushed) is not re-added:
-- its lease is lost and the caller is told so.
--
-- KEYS[1]  inflight  sorted set (score: lease deadline, ms)
-- ARGV[1]  lease in ms (from now, Redis TIME)
-- ARGV[2…] job ids
-- Returns the job ids whose lease was lost.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = now + tonumber(ARGV[1])
local lost = {}
for i = 2, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
        redis.call('ZADD', KEYS[1], deadline, ARGV[i])
    else
        lost[#lost + 1] = ARGV[i]
    end
end
return lost
