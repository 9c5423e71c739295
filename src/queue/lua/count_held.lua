local out = {}
for i, key in ipairs(KEYS) do
  local n = 0
  local flat = redis.call('HGETALL', key)
  for j = 1, #flat, 2 do
    local field = flat[j]
    if string.sub(field, 1, 1) == 'b' then
      local mask = redis.call('HGET', key, 's' .. string.sub(field, 2)) or ''
      for t = 1, #cmsgpack.unpack(flat[j + 1]) do
        local byte = string.byte(mask, math.floor((t - 1) / 8) + 1) or 0
        if bit.band(byte, bit.lshift(1, (t - 1) % 8)) == 0 then n = n + 1 end
      end
    end
  end
  out[i] = n
end
return out
