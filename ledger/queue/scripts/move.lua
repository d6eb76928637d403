-- move: put jobs where the log now says they belong (ready or delayed), wherever
-- Redis held them before. Called only after the log committed the transition
-- (a retry with backoff, a requeue from the dead-letter queue, a repair).
--
-- KEYS[1]  ready     sorted set (score: ms the job became claimable)
-- KEYS[2]  delayed   sorted set (score: due time, ms)
-- KEYS[3]  inflight  sorted set (score: lease deadline, ms)
-- KEYS[4]  notify    list of wake-up tokens for blocked claimers
-- ARGV[1]  most wake-up tokens kept in notify
-- ARGV[2…] pairs: job id, due time in ms (0 = due now)
-- Returns the number of jobs made claimable now.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local woken = 0
for i = 2, #ARGV, 2 do
    local id, due = ARGV[i], tonumber(ARGV[i + 1])
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    if due > now then
        redis.call('ZADD', KEYS[2], due, id)
    else
        redis.call('ZADD', KEYS[1], now, id)
        woken = woken + 1
    end
end
for _ = 1, math.min(woken, cap) do
    redis.call('LPUSH', KEYS[4], '1')
end
if woken > 0 then
    redis.call('LTRIM', KEYS[4], 0, cap - 1)
end
return woken
