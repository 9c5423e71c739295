local function held(token)
  if ARGV[1] == 'list' then return redis.call('HEXISTS', ARGV[2], token) == 1 end
  local p = redis.call('XPENDING', ARGV[2], ARGV[3], token, token, 1)[1]
  return p ~= nil and p[2] == ARGV[4]
end
