-- prelude: put before every script when it is loaded (ledger/queue/hotqueue.py),
-- so the scripts share these helpers instead of each carrying a copy.

-- redis.call(command, key, values…) in slices: unpack() is bounded by Lua's stack
-- (one command per slice of 4,000 values: 2,000 members with their scores). With
-- key = false the values are the command's own keys (DEL). Returns the replies' sum.
local function call_in_slices(command, key, values)
    local total = 0
    for i = 1, #values, 4000 do
        local last = math.min(i + 3999, #values)
        if key then
            total = total + redis.call(command, key, unpack(values, i, last))
        else
            total = total + redis.call(command, unpack(values, i, last))
        end
    end
    return total
end

-- wake up to `woken` blocked claimers: one token each in the `notify` list, which
-- keeps at most `cap` of them
local function wake(notify, woken, cap)
    local count = math.min(woken, cap)
    if count > 0 then
        local tokens = {}
        for k = 1, count do
            tokens[k] = '1'
        end
        redis.call('LPUSH', notify, unpack(tokens))
        redis.call('LTRIM', notify, 0, cap - 1)
    end
end
