-- http.request through a forward proxy: tinyproxy (Debian's), started here
-- with its own configuration and stopped by PID. http:// in absolute form,
-- https:// through a CONNECT tunnel with TLS verified end to end, the
-- environment's http_proxy / https_proxy / no_proxy, and proxy
-- authentication.
local http = require "http"
local net = require "net"
local uv = require "uv"
local client = require "http.client"
local proc = require "process_helper"
local T = require "tls_helper"

local function q(s) return shell_quote(s) end

local function free_port()
  local s = assert(net.listen{host = "127.0.0.1", port = 0})
  local _, port = s:sockname()
  s:close()
  return port
end

-- tinyproxy on 127.0.0.1:port; extra: more configuration lines.
local function start_proxy(extra)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. q(dir)))
  local port = free_port()
  proc.write(dir .. "/tinyproxy.conf", ([[
Port %d
Listen 127.0.0.1
Timeout 30
MaxClients 32
LogFile "%s/tinyproxy.log"
LogLevel Connect
PidFile "%s/tinyproxy.pid"
%s
]]):format(port, dir, dir, extra or ""))
  local p = T.start("tinyproxy -d -c " .. q(dir .. "/tinyproxy.conf"))
  finally(function()
    p:stop()
    os.execute("rm -rf " .. q(dir))
  end)
  -- ready once it accepts
  proc.wait(function()
    return select(2, T.sh("nc -z 127.0.0.1 " .. port)) == 0
  end, TEST_TIMEOUT, "tinyproxy to listen")
  return "http://127.0.0.1:" .. port, port, dir .. "/tinyproxy.log"
end

-- An origin server in this process: its base URL.
local function origin(opts)
  opts.port = 0
  opts.host = "127.0.0.1"
  local srv = assert(http.listen(opts))
  finally(function() srv:close() end)
  local _, port = srv:sockname()
  return port
end

local saved = {}
local ENV = {"http_proxy", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY",
  "no_proxy", "NO_PROXY"}

describe("http client through a proxy", function()
  before_each(function()
    for _, k in ipairs(ENV) do
      saved[k] = os.getenv(k)
      uv.os_unsetenv(k)
    end
  end)
  after_each(function()
    for _, k in ipairs(ENV) do
      if saved[k] then uv.os_setenv(k, saved[k]) else uv.os_unsetenv(k) end
    end
    client.close_idle()
  end)

  it("sends http:// requests to the proxy in absolute form", function()
    local purl, _, log = start_proxy()
    local seen = {}
    local port = origin{handler = function(req, res)
      seen[#seen + 1] = {target = req.target, via = req.headers.via,
        host = req.headers.host}
      res:send(req.method .. " " .. req.target .. " " .. (req:body() or ""))
    end}
    run_task(function()
      local base = "http://127.0.0.1:" .. port
      local res = assert(http.request{url = base .. "/a?x=1", proxy = purl})
      assert.are.equal(200, res.status)
      assert.are.equal("GET /a?x=1 ", res:body())
      res = assert(http.request{method = "POST", url = base .. "/p",
        body = "data", proxy = purl})
      assert.are.equal("POST /p data", res:body())
    end, 30)
    assert.are.equal(2, #seen)
    for _, s in ipairs(seen) do
      assert.matches("tinyproxy", s.via) -- it went through the proxy
      assert.are.equal("127.0.0.1:" .. port, s.host)
    end
    -- the proxy was asked for the absolute URL
    proc.wait(function()
      return proc.slurp(log):find("GET http://127.0.0.1:" .. port .. "/a",
        1, true) ~= nil
    end, 10, "tinyproxy's log of the absolute-form request")
  end)

  it("tunnels https:// with CONNECT, verifying the origin", function()
    local c = T.certs()
    local purl, _, log = start_proxy()
    local port = origin{tls = {cert = c.server, key = c.server_key},
      handler = function(req, res)
        res:send("secret " .. req.target .. " " ..
          tostring(req.headers.via))
      end}
    local wrong = origin{tls = {cert = c.wrong, key = c.wrong_key},
      handler = function(_, res) res:send("must not be read") end}
    run_task(function()
      local res = assert(http.request{url = "https://localhost:" .. port ..
        "/s", proxy = purl, tls = {ca = c.ca}})
      assert.are.equal(200, res.status)
      -- end to end: the proxy cannot see or mark the request
      assert.are.equal("secret /s nil", res:body())
      print("POOL", client.pool_size())
      -- a second request reuses the tunnel (the pool is per origin and
      -- tls setting: equal options written anew are the same setting)
      res = assert(http.request{url = "https://localhost:" .. port .. "/t",
        proxy = purl, tls = {ca = c.ca}})
      assert.are.equal("secret /t nil", res:body())
      -- the origin's certificate is checked through the tunnel
      local bad, err = http.request{url = "https://localhost:" .. wrong ..
        "/", proxy = purl, tls = {ca = c.ca}}
      assert.is_nil(bad)
      assert.matches("certificate", tostring(err))
    end, 30)
    local function connects()
      return select(2, proc.slurp(log):gsub("CONNECT localhost:" .. port ..
        " ", ""))
    end
    proc.wait(function() return connects() >= 1 end, 10,
      "a CONNECT in tinyproxy's log")
    assert.are.equal(1, connects(), proc.slurp(log)) -- one tunnel for both
  end)

  it("takes http_proxy / https_proxy from the environment, and no_proxy",
    function()
    local purl = start_proxy()
    local via
    local port = origin{handler = function(req, res)
      via = req.headers.via
      res:send("ok")
    end}
    local dead = free_port() -- nothing listens there
    run_task(function()
      local url = "http://127.0.0.1:" .. port .. "/"
      uv.os_setenv("http_proxy", purl)
      assert.are.equal("ok", assert(http.get(url)):body())
      assert.matches("tinyproxy", via)
      via = nil
      -- proxy = false: direct
      assert.are.equal("ok", assert(http.get(url, {proxy = false})):body())
      assert.is_nil(via)
      -- no_proxy names the host: direct
      uv.os_setenv("no_proxy", "example.invalid, 127.0.0.1")
      assert.are.equal("ok", assert(http.get(url)):body())
      assert.is_nil(via)
      uv.os_unsetenv("no_proxy")
      -- HTTP_PROXY in capitals is not believed (httpoxy)
      uv.os_unsetenv("http_proxy")
      uv.os_setenv("HTTP_PROXY", "http://127.0.0.1:" .. dead)
      assert.are.equal("ok", assert(http.get(url)):body())
      assert.is_nil(via)
      -- a proxy that is not there fails the request, naming it
      uv.os_setenv("http_proxy", "127.0.0.1:" .. dead)
      client.close_idle()
      local res, err = http.get(url)
      assert.is_nil(res)
      assert.matches("ECONNREFUSED", tostring(err))
      -- https_proxy is for https:// URLs only
      uv.os_unsetenv("http_proxy")
      uv.os_setenv("https_proxy", "http://127.0.0.1:" .. dead)
      assert.are.equal("ok", assert(http.get(url)):body())
    end, 30)
  end)

  it("authenticates to the proxy from the URL's user:password", function()
    local c = T.certs()
    local purl = start_proxy("BasicAuth luser s3cret")
    local authed = purl:gsub("^http://", "http://luser:s3cret@")
    local port = origin{handler = function(req, res)
      res:send("ok " .. tostring(req.headers["proxy-authorization"]))
    end}
    local sport = origin{tls = {cert = c.server, key = c.server_key},
      handler = function(_, res) res:send("tls ok") end}
    run_task(function()
      local url = "http://127.0.0.1:" .. port .. "/"
      local res = assert(http.get(url, {proxy = purl}))
      assert.are.equal(407, res.status)
      res = assert(http.get(url, {proxy = authed}))
      assert.are.equal(200, res.status)
      assert.are.equal("ok nil", res:body()) -- the proxy kept it
      local surl = "https://localhost:" .. sport .. "/"
      local bad, err = http.get(surl, {proxy = purl, tls = {ca = c.ca}})
      assert.is_nil(bad)
      assert.matches("CONNECT .*407", err)
      res = assert(http.get(surl, {proxy = authed, tls = {ca = c.ca}}))
      assert.are.equal("tls ok", res:body())
    end, 30)
  end)

  it("refuses a bad proxy option", function()
    assert.has_error(function() http.request{url = "http://h/", proxy = 1} end,
      "bad argument #1 to 'request' (proxy: URL string or false expected)")
    run_task(function()
      local res, err = http.request{url = "http://127.0.0.1:1/",
        proxy = "socks5://127.0.0.1:1080"}
      assert.is_nil(res)
      assert.matches("only http:// proxies", err)
    end)
  end)

  it("matches no_proxy entries like curl", function()
    local ex = client.no_proxy_exempts
    assert.is_true(ex("*", "anything", 80))
    assert.is_true(ex("example.com", "example.com", 80))
    assert.is_true(ex("example.com", "www.Example.com", 80))
    assert.is_true(ex(".example.com", "www.example.com", 80))
    assert.is_false(ex("example.com", "badexample.com", 80))
    assert.is_true(ex("a.test, example.com:8080", "example.com", 8080))
    assert.is_false(ex("example.com:8080", "example.com", 80))
    assert.is_true(ex("[::1]:443 10.0.0.1", "::1", 443))
    assert.is_true(ex("::1", "::1", 80))
    assert.is_false(ex("", "example.com", 80))
  end)
end)
