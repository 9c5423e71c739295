local lost = {}
for i = 5, #ARGV do
  local token = ARGV[i]
  if not held(token) then lost[#lost + 1] = token
  elseif ARGV[1] == 'stream' then redis.call('XCLAIM', ARGV[2], ARGV[3], ARGV[4], 0, token, 'JUSTID') end
end
return lost
