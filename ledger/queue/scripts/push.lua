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
--
-- A handful of commands per call, not per job (ZMSCORE, one ZADD per set, one
-- LPUSH): most of a per-job loop of redis.call() was the calls' own overhead.
-- (call_in_slices and wake come from prelude.lua, loaded in front of every script)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cap = tonumber(ARGV[1])
local ids = {}
for i = 2, #ARGV, 2 do
    ids[#ids + 1] = ARGV[i]
end
if #ids == 0 then
    return 0
end
-- ARGV holds at most a chunk of the caller's ids (hotqueue.CHUNK), well inside the stack
local in_ready = redis.call('ZMSCORE', KEYS[1], unpack(ids))
local in_delayed = redis.call('ZMSCORE', KEYS[2], unpack(ids))
local in_flight = redis.call('ZMSCORE', KEYS[3], unpack(ids))
local ready, delayed, seen = {}, {}, {}
for j, id in ipairs(ids) do
    if not (in_ready[j] or in_delayed[j] or in_flight[j] or seen[id]) then
        seen[id] = true
        local due = tonumber(ARGV[2 * j + 1])
        if due > now then
            delayed[#delayed + 1] = due
            delayed[#delayed + 1] = id
        else
            -- a job due in the past keeps its due time as its place in line
            ready[#ready + 1] = due > 0 and due or now
            ready[#ready + 1] = id
        end
    end
end
call_in_slices('ZADD', KEYS[1], ready)
call_in_slices('ZADD', KEYS[2], delayed)
-- each table holds a score and an id per job
wake(KEYS[4], #ready / 2, cap)
return (#ready + #delayed) / 2
