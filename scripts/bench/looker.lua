-- wrk script for Looker API calls: logs in once, then sends the same request over and over
-- with `Authorization: token <access_token>`, and prints one JSON line of results.
--
--   BENCH_CLIENT_ID=... BENCH_CLIENT_SECRET=... \
--     wrk -t1 -c1 -d5s -s scripts/bench/looker.lua http://127.0.0.1:PORT/api/4.0/user
--
-- The same script serves every variant of scripts/bench-gateway.sh, because each of them
-- logs in the way Looker does (POST /api/4.0/login, form body client_id & client_secret):
-- - direct: the emulator (or a Looker) with a real API key: a real token;
-- - the agent's gateway: a gateway credential (`lookerctl gateway credential P --json`):
--   a gateway session token;
-- - a token-injecting proxy (nginx): leave BENCH_CLIENT_ID unset; no login, no header, the
--   proxy adds its own.
--
-- Environment:
--   BENCH_TOKEN      a token to send as it is (no login); else
--   BENCH_CLIENT_ID, BENCH_CLIENT_SECRET  the credential to log in with (neither: no header)
--   BENCH_LOGIN_URL  where to log in (default: the target's scheme://host:port/api/4.0/login)
--   BENCH_TAG        a label copied into the JSON line (default "wrk")
--
-- The login runs once, in setup() (wrk's main Lua state, before any thread starts), so
-- every connection of every thread shares one token and no login is timed. The secret
-- never reaches a command line: the form body goes to curl through a private temp file
-- (os.tmpname() creates it with mode 0600). The request is formatted once per thread in
-- init (no request() or response() function: wrk then neither builds requests nor parses
-- answers in Lua, which would cost more than the servers under test).
--
-- Output (done()): one line `BENCH_JSON {...}` with requests, duration_us, bytes, rps,
-- latency percentiles in microseconds and the error counts; a non-2xx/3xx answer counts in
-- errors.status, so a caller must check it (a proxy answering 401 fast is not a fast proxy).

local function urlencode(s)
    return (s:gsub("[^%w%-%._~]", function(c)
        return string.format("%%%02X", string.byte(c))
    end))
end

local function login()
    local given = os.getenv("BENCH_TOKEN")
    if given ~= nil and given ~= "" then
        return given
    end
    local id = os.getenv("BENCH_CLIENT_ID")
    if id == nil or id == "" then
        return nil
    end
    local secret = os.getenv("BENCH_CLIENT_SECRET") or ""
    local url = os.getenv("BENCH_LOGIN_URL")
    if url == nil or url == "" then
        local port = wrk.port and (":" .. wrk.port) or ""
        url = wrk.scheme .. "://" .. wrk.host .. port .. "/api/4.0/login"
    end
    local form = os.tmpname()
    local f = assert(io.open(form, "w"))
    f:write("client_id=" .. urlencode(id) .. "&client_secret=" .. urlencode(secret))
    f:close()
    -- The URL is ours (no quote in it), the temp file's name too.
    local p = assert(io.popen("curl -sS --fail --noproxy '*' --data-binary @'" .. form .. "' '" .. url .. "'"))
    local answer = p:read("*a")
    p:close()
    os.remove(form)
    local token = answer:match('"access_token"%s*:%s*"([^"]+)"')
    if token == nil then
        io.stderr:write("looker.lua: login at " .. url .. " failed (no access_token in the answer)\n")
        os.exit(1)
    end
    return token
end

local token_once = nil
local logged_in = false

function setup(thread)
    if not logged_in then
        token_once = login()
        logged_in = true
    end
    if token_once then
        thread:set("bench_token", token_once)
    end
end

function init(args)
    if bench_token then
        wrk.headers["Authorization"] = "token " .. bench_token
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local secs = summary.duration / 1e6
    local rps = 0
    if secs > 0 then
        rps = summary.requests / secs
    end
    io.write(string.format(
        'BENCH_JSON {"tag":"%s","requests":%d,"duration_us":%d,"bytes":%d,"rps":%.1f,' ..
        '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
        os.getenv("BENCH_TAG") or "wrk", summary.requests, summary.duration, summary.bytes, rps,
        latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
        e.connect, e.read, e.write, e.status, e.timeout))
end
