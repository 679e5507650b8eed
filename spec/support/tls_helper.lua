--[[
spec/support/tls_helper.lua: certificates made at run time, and openssl peers.

No key is ever committed: the first call makes a throwaway CA and the
certificates the TLS specs need with the openssl CLI, in a temporary
directory removed when the suite's state closes.

  local T = require "tls_helper"
  local c = T.certs()    paths: c.dir, c.ca (CA cert), and for each of
      server  EC P-256, localhost + 127.0.0.1 + ::1, signed by the CA
      rsa     RSA 2048, same names, signed by the CA
      other   EC, other.test (a second name for SNI), signed by the CA
      wrong   EC, wrong.invalid only (a wrong-host certificate)
      expired EC, localhost, signed by the CA, expired
      self    EC, localhost, self-signed
      unknown EC, localhost, signed by another CA the specs never trust
      client  EC, CN=client, clientAuth, signed by the CA
    c.<name> is the certificate file, c.<name>_key its key.
  T.start(cmd)           run a shell command in the background (its own
                         pid, not a shell's): p.pid, p:out(), p:err(),
                         p:wait_for(pattern[, secs]), p:stop() (by PID)
  T.s_server(args)       openssl s_server on 127.0.0.1 port 0; returns the
                         process and its port
  T.run(cmd[, input, secs])  run cmd to its end while the loop runs (so an
                         in-process server serves it): out, err, status
  T.sh(cmd)              run a command, return its stdout and exit code
]]
local proc = require "process_helper"

local M = {}

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.sh(cmd)
  local f = assert(io.popen(cmd .. " 2>&1", "r"))
  local out = f:read("a")
  local _, _, code = f:close()
  return out, code
end

local function run(cmd)
  local out, code = M.sh(cmd)
  if code ~= 0 then
    error(("tls_helper: command failed (%s): %s\n%s"):format(
      tostring(code), cmd, out), 2)
  end
  return out
end

local certs

-- A leaf: key (ec or rsa), CSR, signed by ca (or self-signed).
local function leaf(dir, name, o)
  local key, csr = dir .. "/" .. name .. ".key", dir .. "/" .. name .. ".csr"
  local crt, ext = dir .. "/" .. name .. ".pem", dir .. "/" .. name .. ".ext"
  local newkey = o.rsa and "rsa:2048"
    or "ec -pkeyopt ec_paramgen_curve:P-256"
  local f = assert(io.open(ext, "w"))
  f:write("[v3]\nbasicConstraints=critical,CA:FALSE\n")
  f:write("keyUsage=critical,digitalSignature,keyEncipherment\n")
  f:write("extendedKeyUsage=", o.client and "clientAuth" or "serverAuth",
    "\n")
  if o.san then f:write("subjectAltName=", o.san, "\n") end
  f:close()
  if o.self then
    run(("openssl req -x509 -newkey %s -nodes -keyout %s -out %s " ..
      "-subj %s -days 30 -addext %s"):format(newkey, q(key), q(crt), q("/CN=" .. o.cn),
      q("subjectAltName=" .. o.san)))
  else
    run(("openssl req -newkey %s -nodes -keyout %s -out %s -subj %s"):format(
      newkey, q(key), q(csr), q("/CN=" .. o.cn)))
    run(("openssl x509 -req -in %s -CA %s -CAkey %s -CAcreateserial " ..
      "-out %s -days %d -extfile %s -extensions v3"):format(q(csr),
      q(o.ca .. ".pem"), q(o.ca .. ".key"), q(crt), o.days or 30, q(ext)))
  end
  certs[name], certs[name .. "_key"] = crt, key
end

local function ca(dir, name, cn)
  run(("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 " ..
    "-nodes -keyout %s -out %s -subj %s -days 30"):format(
    q(dir .. "/" .. name .. ".key"), q(dir .. "/" .. name .. ".pem"),
    q("/CN=" .. cn)))
  return dir .. "/" .. name
end

function M.certs()
  if certs then return certs end
  local dir = os.tmpname()
  os.remove(dir)
  run("mkdir -m 700 " .. q(dir))
  certs = {dir = dir}
  -- removed with the state (tmpname's files are, too)
  certs.cleanup = setmetatable({}, {__gc = function()
    os.execute("rm -rf " .. q(dir))
  end})
  local local_names = "DNS:localhost,IP:127.0.0.1,IP:::1"
  local main = ca(dir, "ca", "luahost test CA")
  local other = ca(dir, "ca2", "untrusted test CA")
  certs.ca = main .. ".pem"
  leaf(dir, "server", {ca = main, cn = "localhost", san = local_names})
  leaf(dir, "rsa", {ca = main, cn = "localhost", san = local_names,
    rsa = true})
  leaf(dir, "other", {ca = main, cn = "other.test", san = "DNS:other.test"})
  leaf(dir, "wrong", {ca = main, cn = "wrong.invalid",
    san = "DNS:wrong.invalid"})
  -- -days -1: notAfter a day before notBefore, in the past
  leaf(dir, "expired", {ca = main, cn = "localhost", san = local_names,
    days = -1})
  leaf(dir, "self", {self = true, cn = "localhost", san = local_names})
  leaf(dir, "unknown", {ca = other, cn = "localhost", san = local_names})
  leaf(dir, "client", {ca = main, cn = "client", client = true})
  return certs
end

function M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- {{{ background processes (any command), stopped by PID

local Proc = {}
Proc.__index = Proc

function Proc:out() return proc.slurp(self.outf) end
function Proc:err() return proc.slurp(self.errf) end
function Proc:alive() return proc.alive(self.pid) end

function Proc:wait_for(pattern, secs)
  proc.wait(function()
    return self:out():match(pattern) ~= nil or
      self:err():match(pattern) ~= nil
  end, secs or TEST_TIMEOUT, ("%q in the output of %s (so far: %q / %q)")
    :format(pattern, self.cmd, self:out(), self:err()))
  return self:out():match(pattern) or self:err():match(pattern)
end

function Proc:code()
  local s = proc.slurp(self.codef)
  return s:match("%d+") and tonumber(s:match("%d+"))
end

-- Drive the loop until the process ended; its exit status.
function Proc:wait_exit(secs)
  proc.wait(function() return self:code() ~= nil end, secs or TEST_TIMEOUT,
    self.cmd .. " to exit")
  return self:code()
end

function Proc:stop()
  if self.stopped then return end
  self.stopped = true
  if proc.alive(self.pid) then proc.kill(self.pid, "KILL") end
  proc.wait(function() return not proc.alive(self.pid) end, 5,
    "process " .. self.pid .. " to end")
  self:close_input()
  for _, f in ipairs{self.pidf, self.outf, self.errf, self.codef,
    self.inf} do
    if f then os.remove(f) end
  end
end

-- cmd is a shell command (exec'd: its pid is p.pid); stdin is opts.input
-- (text), or a FIFO kept open (p:send(text) writes to it) when opts.fifo.
function M.start(cmd, opts)
  opts = opts or {}
  local p = setmetatable({cmd = cmd, pidf = os.tmpname(),
    outf = os.tmpname(), errf = os.tmpname(), codef = os.tmpname()}, Proc)
  os.remove(p.pidf)
  os.remove(p.codef)
  local stdin = "/dev/null"
  if opts.input then
    p.inf = os.tmpname()
    local f = assert(io.open(p.inf, "wb"))
    f:write(opts.input)
    f:close()
    stdin = p.inf
  end
  if opts.fifo then
    stdin = os.tmpname()
    os.remove(stdin)
    run("mkfifo " .. q(stdin))
    p.fifo = stdin
  end
  -- (the subshell's own output goes to the files too: an inherited pipe
  -- of the caller would stay open as long as the process lives)
  assert(os.execute(("(sh -c 'echo $$ >%s; exec %s' <%s; " ..
    "echo $? >%s) >%s 2>%s &"):format(q(p.pidf), cmd:gsub("'", "'\\''"),
    q(stdin), q(p.codef), q(p.outf), q(p.errf))))
  if opts.fifo then
    -- opening the write end waits for the reader: the process is up
    p.fifow = assert(io.open(stdin, "w"))
    p.fifow:setvbuf("no")
  end
  proc.wait(function() return proc.slurp(p.pidf):match("%d+") ~= nil end,
    3 * TEST_TIMEOUT, "process to start")
  p.pid = tonumber(proc.slurp(p.pidf):match("%d+"))
  return p
end

function Proc:send(text)
  self.fifow:write(text)
end

function Proc:close_input()
  if self.fifow then
    self.fifow:close()
    self.fifow = nil
    os.remove(self.fifo)
  end
end

-- openssl s_server on an ephemeral loopback port: returns proc, port.
function M.s_server(args, opts)
  local p = M.start("openssl s_server -accept 127.0.0.1:0 " .. args, opts)
  local port = p:wait_for("ACCEPT 127%.0%.0%.1:(%d+)")
  return p, tonumber(port)
end

-- Run cmd to its end (bounded) while the loop runs: out, err, status.
function M.run(cmd, input, secs)
  local p = M.start(cmd, {input = input})
  local ok, err = pcall(p.wait_exit, p, secs)
  local out, errout, code = p:out(), p:err(), p:code()
  p:stop()
  if not ok then error(err .. "\n" .. out .. errout, 2) end
  return out, errout, code
end

-- }}}

return M
