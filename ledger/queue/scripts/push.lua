-- push: put jobs on the hot queue unless Redis already holds them (idempotent).
-- The repair path re-pushes whatever the log says is waiting, so a job already
-- ready, delayed or in flight is left exactly where it is.
--
-- KEYS[1]  ready     sorted set (score: ms the job became claimable)
-- KEYS[2]  delayed   sorted set (score: due time, ms)
-- KEYS[3]  inflight  sorted set (score: lease deadline, ms)
-- KEYS[4]  notify    list of wake-up tokens for blocked claimers
-- ARGV[1]  most wake-up tokens kept in notify
-- ARGV[2…] pairs: job id, due time in ms (0 = due now)
-- Returns the number of jobs pushed.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local pushed, woken = 0, 0
for i = 2, #ARGV, 2 do
    local id, due = ARGV[i], tonumber(ARGV[i + 1])
    if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id)
        and not redis.call('ZSCORE', KEYS[3], id) then
        if due > now then
            redis.call('ZADD', KEYS[2], due, id)
        else
            -- a job due in the past keeps its due time as its place in line
            redis.call('ZADD', KEYS[1], due > 0 and due or now, id)
            woken = woken + 1
        end
        pushed = pushed + 1
    end
end
for _ = 1, math.min(woken, cap) do
    redis.call('LPUSH', KEYS[4], '1')
end
if woken > 0 then
    redis.call('LTRIM', KEYS[4], 0, cap - 1)
end
return pushed
