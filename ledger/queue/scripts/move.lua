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
--
-- A handful of commands per call, not per job (see push.lua).
-- (call_in_slices and wake come from prelude.lua, loaded in front of every script)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
-- the last due time given for an id wins, as if the pairs were applied in turn
local due_of, ids = {}, {}
for i = 2, #ARGV, 2 do
    local id = ARGV[i]
    if due_of[id] == nil then
        ids[#ids + 1] = id
    end
    due_of[id] = tonumber(ARGV[i + 1])
end
local ready, delayed = {}, {}
for _, id in ipairs(ids) do
    local due = due_of[id]
    if due > now then
        delayed[#delayed + 1] = due
        delayed[#delayed + 1] = id
    else
        ready[#ready + 1] = now
        ready[#ready + 1] = id
    end
end
for k = 1, 3 do
    call_in_slices('ZREM', KEYS[k], ids)
end
call_in_slices('ZADD', KEYS[1], ready)
call_in_slices('ZADD', KEYS[2], delayed)
local woken = #ready / 2
wake(KEYS[4], woken, cap)
return woken
