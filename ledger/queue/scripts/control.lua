-- control: store the queue's controls as the log's operator stream says (ledger.control),
-- unless Redis holds a later version of them already: two reflections of two operators'
-- changes may arrive out of order, and the later one stands.
--
-- KEYS[1]  control   hash {version, paused, rate}
-- ARGV[1]  the operator stream's version the controls stand at (0: no operator event yet)
-- ARGV[2]  paused: 1 or 0
-- ARGV[3]  rate: most attempts started per second (0: no limit)
-- Returns 1 if stored, 0 if a later version stood.
local stored = tonumber(redis.call('HGET', KEYS[1], 'version') or '-1')
if stored > tonumber(ARGV[1]) then
    return 0
end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'paused', ARGV[2], 'rate', ARGV[3])
return 1
