-- cache: write jobs' folded states to the payload cache, each with the TTL.
-- One call instead of one SET per job: the batch is one command on the wire.
--
-- KEYS[1…]  payload cache entries, one per job
-- ARGV[1]   TTL in seconds
-- ARGV[2]   '1' to write only entries that are missing (SET NX), '0' to overwrite
-- ARGV[3…]  the entries' values, in the order of KEYS
-- Returns the number of entries written.
local ttl = ARGV[1]
local only_missing = ARGV[2] == '1'
local written = 0
for i, key in ipairs(KEYS) do
    local ok
    if only_missing then
        ok = redis.call('SET', key, ARGV[i + 2], 'EX', ttl, 'NX')
    else
        ok = redis.call('SET', key, ARGV[i + 2], 'EX', ttl)
    end
    if ok then
        written = written + 1
    end
end
return written
