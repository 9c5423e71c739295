local entries = {}
local function add(field)
  if string.sub(field, 1, 1) ~= 'b' then return end
  local v = redis.call('HGET', KEYS[2], field)
  if not v then return end
  local n = string.sub(field, 2)
  local mask = redis.call('HGET', KEYS[2], 's' .. n) or ''
  local open = {}
  for i, item in ipairs(cmsgpack.unpack(v)) do
    local byte = string.byte(mask, math.floor((i - 1) / 8) + 1) or 0
    if bit.band(byte, bit.lshift(1, (i - 1) % 8)) == 0 then open[#open + 1] = item end
  end
  entries[#entries + 1] = {tonumber(n), open, {field, 's' .. n}}
end
if #ARGV >= from then
  for i = from, #ARGV do add(ARGV[i]) end
else
  for _, field in ipairs(redis.call('HKEYS', KEYS[2])) do add(field) end
end
table.sort(entries, function(a, b) return a[1] > b[1] end)
local moved = 0
for _, e in ipairs(entries) do
  for i = #e[2], 1, -1 do redis.call('RPUSH', KEYS[1], e[2][i]) end
  moved = moved + #e[2]
  redis.call('HDEL', KEYS[2], unpack(e[3]))
end
return moved
