-- finish: drop jobs the log says are finished (completed or dead-lettered) from
-- every queue set, and drop their payload cache entries.
--
-- KEYS[1]  ready     sorted set
-- KEYS[2]  delayed   sorted set
-- KEYS[3]  inflight  sorted set
-- KEYS[4…] payload cache key of each job, in the order of ARGV
-- ARGV[…]  job ids
-- Returns the number of jobs that were still in a queue set.
-- (call_in_slices comes from prelude.lua, loaded in front of every script)
local payloads = {}
for i = 4, #KEYS do
    payloads[#payloads + 1] = KEYS[i]
end
local removed = 0
for k = 1, 3 do
    removed = removed + call_in_slices('ZREM', KEYS[k], ARGV)
end
call_in_slices('DEL', false, payloads)
return removed
