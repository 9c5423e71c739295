local claim, write, lease, grace = ARGV[5], ARGV[6], ARGV[8], ARGV[9]
local out = {}
for i, key in ipairs(KEYS) do
  local is_held = held(ARGV[9 + i])
  local v = redis.call('GET', key)
  if v == claim or v == write or (not v and is_held) then
    if ARGV[7] == 'write' then redis.call('SET', key, write, 'PX', grace)
    elseif v ~= write then redis.call('SET', key, claim, 'PX', lease) end
    out[i] = 0
  elseif not is_held then out[i] = 1
  elseif string.sub(v, 1, 5) == 'done:' then out[i] = 2
  else out[i] = 3 end
end
return out
