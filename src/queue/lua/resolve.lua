local mine = 'claim:' .. ARGV[1]
local out = {}
for i, key in ipairs(KEYS) do
  local v = redis.call('GET', key)
  if not v or v == ARGV[3] then
    redis.call('SET', key, mine, 'PX', ARGV[2])
    out[i] = 0
  elseif string.sub(v, 1, 5) == 'done:' then
    out[i] = 1
  elseif v == mine then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 0
  else
    out[i] = 2
  end
end
return out
