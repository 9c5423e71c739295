local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
if not items then return {0, {}} end
local n = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[2], 'b' .. n, cmsgpack.pack(items))
return {n, items}
