-- reap: find jobs whose lease expired and hold them for a short grace period, so
-- that two reapers do not both act on one job. The caller then records
-- `failed(lease expired)` in the log (which refuses it if the worker's outcome
-- got there first) and moves the job.
--
-- KEYS[1]  inflight  sorted set (score: lease deadline, ms)
-- ARGV[1]  most jobs to reap in this call
-- ARGV[2]  grace in ms given to the reaper
-- Returns the job ids whose lease expired.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - 1, 'LIMIT', 0,
    tonumber(ARGV[1]))
for i = 1, #expired do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), expired[i])
end
return expired
