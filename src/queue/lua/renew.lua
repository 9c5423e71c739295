local mine = 'claim:' .. ARGV[1]
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == mine then redis.call('PEXPIRE', key, ARGV[2]) end
end
return 0
