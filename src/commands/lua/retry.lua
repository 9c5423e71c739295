if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'list' then
  redis.call('LPUSH', KEYS[2], ARGV[3])
else
  redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3))
end
return 1
