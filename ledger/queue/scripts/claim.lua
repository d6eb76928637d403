-- claim: promote due delayed jobs, then take up to N ready jobs (oldest first)
-- and lease them. The lease deadline comes from Redis TIME, the one clock every
-- worker shares. The caller then records `attempted` in the log; a claim whose
-- append is refused is repaired from the log.
--
-- KEYS[1]  ready     sorted set (score: ms the job became claimable)
-- KEYS[2]  delayed   sorted set (score: due time, ms)
-- KEYS[3]  inflight  sorted set (score: lease deadline, ms)
-- KEYS[4]  notify    list of wake-up tokens (emptied when nothing is ready)
-- KEYS[5]  control   hash of the queue's controls (paused = '1': claim nothing; rate =
--                    most attempts started per second, '0' or none: no limit)
-- KEYS[6]  bucket    hash {tokens, at}: the rate limit's token bucket (one second's worth)
-- ARGV[1]  most jobs to claim
-- ARGV[2]  lease in ms
-- ARGV[3]  most delayed jobs to promote in this call
-- Returns {now ms, next due time in ms or -1, paused (1 or 0), job id…}.
-- (call_in_slices comes from prelude.lua, loaded in front of every script)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('HGET', KEYS[5], 'paused') == '1' then
    return {now, -1, 1}
end
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0,
    tonumber(ARGV[3]))
local promoted, places = {}, {}
for i = 1, #due, 2 do
    promoted[#promoted + 1] = due[i]
    places[#places + 1] = due[i + 1]
    places[#places + 1] = due[i]
end
call_in_slices('ZREM', KEYS[2], promoted)
call_in_slices('ZADD', KEYS[1], places)
local result = {now, -1, 0}
local limit = tonumber(ARGV[1])
local rate = tonumber(redis.call('HGET', KEYS[5], 'rate') or '0') or 0
local tokens = 0
if rate > 0 then
    local bucket = redis.call('HMGET', KEYS[6], 'tokens', 'at')
    tokens = tonumber(bucket[1]) or rate
    local at = tonumber(bucket[2]) or now
    tokens = math.min(rate, tokens + math.max(now - at, 0) * rate / 1000)
    limit = math.min(limit, math.floor(tokens))
end
local popped = {}
if limit > 0 then
    popped = redis.call('ZPOPMIN', KEYS[1], limit)
end
local deadline = now + tonumber(ARGV[2])
local leased = {}
for i = 1, #popped, 2 do
    leased[#leased + 1] = deadline
    leased[#leased + 1] = popped[i]
    result[#result + 1] = popped[i]
end
call_in_slices('ZADD', KEYS[3], leased)
if redis.call('ZCARD', KEYS[1]) == 0 then
    redis.call('DEL', KEYS[4])
end
local nxt = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if #nxt > 0 then
    result[2] = tonumber(nxt[2])
end
if rate > 0 then
    tokens = tokens - #popped / 2
    redis.call('HSET', KEYS[6], 'tokens', tostring(tokens), 'at', now)
    if tokens < 1 and redis.call('ZCARD', KEYS[1]) > 0 then
        -- jobs are ready but the rate allows none now: say when it will
        local refill = now + math.ceil((1 - tokens) * 1000 / rate)
        if result[2] < 0 or refill < result[2] then
            result[2] = refill
        end
    end
end
return result
