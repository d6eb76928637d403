-- depths: one consistent snapshot of the queue for health and stats.
--
-- KEYS[1]  ready     sorted set (score: ms the job became claimable)
-- KEYS[2]  delayed   sorted set (score: due time, ms)
-- KEYS[3]  inflight  sorted set (score: lease deadline, ms)
-- Returns {now ms, ready, delayed (not yet due), due (delayed but due), in flight,
--          expired leases, oldest ready score or -1}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local delayed = redis.call('ZCARD', KEYS[2])
local due = redis.call('ZCOUNT', KEYS[2], '-inf', now)
return {
    now,
    redis.call('ZCARD', KEYS[1]),
    delayed - due,
    due,
    redis.call('ZCARD', KEYS[3]),
    redis.call('ZCOUNT', KEYS[3], '-inf', now - 1),
    #oldest > 0 and tonumber(oldest[2]) or -1,
}
