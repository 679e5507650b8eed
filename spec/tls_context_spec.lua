-- tls.context: options checked strictly, certificates from files or PEM
-- text, failures named. Certificates are made at run time (tls_helper).
local tls = require "tls"
local T = require "tls_helper"

describe("tls.context", function()
  local c
  setup(function() c = T.certs() end)

  it("loads a certificate chain and key from files or from PEM text", function()
    local a = assert(tls.context{cert = c.server, key = c.server_key})
    assert.matches("^tls.context %(certificate%): ", tostring(a))
    local b = assert(tls.context{cert = T.read(c.server),
      key = T.read(c.server_key), ca = T.read(c.ca)})
    assert.is_true(tls.is_context(b))
    assert.is_false(tls.is_context({}))
    local r = assert(tls.context{cert = c.rsa, key = c.rsa_key, ca = c.ca})
    assert.matches("certificate", tostring(r))
    -- a CA directory (may hold no hashed names: loading is lazy)
    assert(tls.context{ca = c.dir})
  end)

  it("a client context needs no option (the system store)", function()
    local d = assert(tls.context{})
    assert.matches("no certificate", tostring(d))
  end)

  it("returns nil, err for files it cannot load, naming them", function()
    local ok, err = tls.context{cert = c.dir .. "/missing.pem",
      key = c.server_key}
    assert.is_nil(ok)
    assert.matches("tls: cannot load cert '.*missing.pem': No such file",
      err)
    ok, err = tls.context{cert = c.server, key = c.rsa_key}
    assert.is_nil(ok)
    assert.equals("tls: key does not match cert", err)
    ok, err = tls.context{ca = c.dir .. "/nope.pem"}
    assert.is_nil(ok)
    assert.matches("tls: cannot load ca", err)
    ok, err = tls.context{cert = "-----BEGIN CERTIFICATE-----\nxx\n" ..
      "-----END CERTIFICATE-----\n", key = c.server_key}
    assert.is_nil(ok)
    assert.matches("^tls: cannot load cert: ", err)
  end)

  it("raises on unknown options and wrong types, naming them", function()
    local function raises(opts, pat)
      local ok, err = pcall(tls.context, opts)
      assert.is_false(ok)
      assert.matches(pat, err)
    end
    raises({verfy = false}, "unknown option 'verfy'")
    raises({[1] = "x"}, "unknown option '1'")
    raises({cert = 1, key = "k"}, "cert: string expected")
    raises({cert = c.server}, "cert: given without key")
    raises({key = c.server_key}, "key: given without cert")
    raises({verify = "maybe"}, "verify: true, false")
    raises({verify = 1}, "verify: boolean or string expected")
    raises({alpn = "h2"}, "alpn: list of strings expected")
    raises({alpn = {}}, "alpn: 1 to 32 names")
    raises({alpn = {("x"):rep(256)}}, "alpn: names of 1 to 255")
    raises({min_version = "1.1"}, "TLS 1.0 and 1.1 are refused")
    raises({min_version = 1.0}, "TLS 1.0 and 1.1 are refused")
    raises({max_version = "TLSv1.1"}, "TLS 1.0 and 1.1 are refused")
    raises({min_version = "1.4"}, "\"1.2\" or \"1.3\" expected")
    raises({min_version = "1.3", max_version = "1.2"}, "below min_version")
    raises({handshake_timeout = 0}, "handshake_timeout: positive")
    raises({handshake_timeout = 0 / 0}, "handshake_timeout: positive")
    raises({session_cache = "yes"}, "session_cache: boolean or positive")
    raises({tickets = 1}, "tickets: boolean expected")
    raises({sni = 1}, "sni: table or function expected")
    raises({sni = {["a.test"] = "ctx"}}, "sni: {%[name%] = tls.context}")
    raises({ciphers = "NOTACIPHER"}, "ciphers: no cipher matches")
    raises({ciphersuites = "NOPE"}, "ciphersuites: no cipher suite")
    raises({servername = ""}, "servername: host name expected")
    raises({servername = "a\0b"}, "servername: contains a NUL byte")
    assert.has_error(function() tls.context() end)
    assert.has_error(function() tls.context({}, 2) end)
  end)

  it("accepts every documented option", function()
    local other = assert(tls.context{cert = c.other, key = c.other_key})
    assert(tls.context{cert = c.server, key = c.server_key, ca = c.ca,
      verify = "peer", alpn = {"h2", "http/1.1"}, min_version = "1.3",
      max_version = 1.3, ciphers = "ECDHE+AESGCM",
      ciphersuites = "TLS_AES_128_GCM_SHA256", handshake_timeout = 2.5,
      session_cache = 100, tickets = false,
      sni = {["other.test"] = other}})
    assert(tls.context{sni = function() return nil end, verify = false,
      servername = "localhost", session_cache = false})
  end)
end)
