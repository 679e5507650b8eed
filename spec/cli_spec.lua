-- The luahost command line: lua(1)'s options, exit codes, errors with
-- tracebacks, the main task, os.exit, module loading and the REPL.
-- Each case runs build/luahost as a separate process (run_host).

describe("luahost CLI", function()
  it("runs -e and exits 0", function()
    local out, err, code = run_host({"-e", "print('hi')"})
    assert.equal("hi\n", out)
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("runs several -e in order, sharing globals", function()
    local out, _, code = run_host({"-e", "x = 1", "-e", "x = x + 1",
                                   "-e", "print(x)"})
    assert.equal("2\n", out)
    assert.equal(0, code)
  end)

  it("passes script arguments as ... and in arg, with negative indices",
     function()
    local script = tmpfile("print(select('#', ...), ...)\n" ..
      "print(arg[0] == SCRIPT, arg[1], arg[2], arg[-1], arg[-2] ~= nil)\n")
    local out, err, code = run_host({"-e", "SCRIPT=" .. ("%q"):format(script),
                                     script, "a", "b c"})
    assert.equal("", err)
    assert.equal(0, code)
    assert.equal("2\ta\tb c\ntrue\ta\tb c\tSCRIPT=" ..
      ("%q"):format(script) .. "\ttrue\n", out)
  end)

  it("-- stops option handling", function()
    local script = tmpfile("print(arg[1])")
    local out, _, code = run_host({"--", script, "-v"})
    assert.equal("-v\n", out)
    assert.equal(0, code)
  end)

  it("runs the script from stdin with -", function()
    local out, _, code = run_host({"-", "x", "y"}, "print('stdin', ...)")
    assert.equal("stdin\tx\ty\n", out)
    assert.equal(0, code)
  end)

  it("runs stdin when there is no script and stdin is not a terminal",
     function()
    local out, _, code = run_host({}, "print(6 * 7)")
    assert.equal("42\n", out)
    assert.equal(0, code)
  end)

  it("-v prints the version with Lua and libuv versions", function()
    local out, _, code = run_host({"-v"})
    assert.matches("^luahost %d+%.%d+%.%d+", out)
    assert.matches("Lua 5%.4", out)
    assert.matches("libuv 1%.", out)
    assert.equal(0, code)
  end)

  it("--version prints the version and exits 0 without running", function()
    local out, err, code = run_host({"--version", "-e", "print('ran')"})
    assert.matches("^luahost %d+%.%d+%.%d+ +%(Lua 5%.4", out)
    assert.falsy(out:find("ran", 1, true))
    assert.equal("", err)
    assert.equal(0, code)
  end)

  it("-h is --help", function()
    local out, _, code = run_host({"-h"})
    local out2 = run_host({"--help"})
    assert.equal(0, code)
    assert.equal(out2, out)
    assert.truthy(out:find("--version", 1, true))
  end)

  it("--help lists the options and exits 0", function()
    local out, _, code = run_host({"--help"})
    for _, opt in ipairs({"-e stat", "-l mod", "-i", "-v", "-E", "-W",
                          "--help"}) do
      assert.truthy(out:find(opt, 1, true), "missing " .. opt)
    end
    assert.equal(0, code)
  end)

  it("rejects an unknown option with usage and exit 1", function()
    local out, err, code = run_host({"-x"})
    assert.equal("", out)
    assert.matches("unrecognized option '%-x'", err)
    assert.matches("usage:", err)
    assert.equal(1, code)
    _, err, code = run_host({"--no-such-option"})
    assert.matches("unrecognized option '%-%-no%-such%-option'", err)
    assert.equal(1, code)
  end)

  it("rejects -e without its argument", function()
    local _, err, code = run_host({"-e"})
    assert.matches("'%-e' needs argument", err)
    assert.equal(1, code)
  end)

  it("-l loads a Debian C module into a global, -l g=mod renames",
     function()
    local out, err, code = run_host({"-l", "cjson", "-e",
      "print(cjson.encode({1, 2}))"})
    assert.equal("", err)
    assert.equal("[1,2]\n", out)
    assert.equal(0, code)
    out, _, code = run_host({"-l", "L=lpeg", "-e",
      "print(L.match(L.P'ab', 'abc'))"})
    assert.equal("3\n", out)
    assert.equal(0, code)
  end)

  it("honours LUA_PATH and LUA_INIT; -E ignores them", function()
    local dir = tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. shell_quote(dir)))
    local mod = assert(io.open(dir .. "/specmod.lua", "w"))
    mod:write("return {answer = 42}")
    mod:close()
    local env = "LUA_PATH=" .. shell_quote(dir .. "/?.lua") ..
      " LUA_INIT='print(\"init\")'"
    local out, _, code = run_host({"-e", "print(require('specmod').answer)"},
                                  nil, env)
    assert.equal("init\n42\n", out)
    assert.equal(0, code)
    local err
    out, err, code = run_host({"-E", "-e", "require('specmod')"}, nil, env)
    assert.equal("", out)
    assert.matches("module 'specmod' not found", err)
    assert.equal(1, code)
    os.remove(dir .. "/specmod.lua")
    os.remove(dir)
  end)

  it("LUA_INIT=@file runs the file first", function()
    local init = tmpfile("print('from init file')")
    local out, _, code = run_host({"-e", "print('after')"}, nil,
                                  "LUA_INIT=@" .. shell_quote(init))
    assert.equal("from init file\nafter\n", out)
    assert.equal(0, code)
  end)

  it("-W turns warnings on", function()
    local _, err = run_host({"-e", "warn('quiet')"})
    assert.equal("", err)
    _, err = run_host({"-W", "-e", "warn('loud')"})
    assert.matches("Lua warning: loud", err)
  end)

  it("reports a missing script and a syntax error with exit 1", function()
    local _, err, code = run_host({"/nonexistent/script.lua"})
    assert.matches("cannot open /nonexistent/script.lua", err)
    assert.equal(1, code)
    _, err, code = run_host({"-e", "x ="})
    assert.matches("%(command line%):1:", err)
    assert.equal(1, code)
  end)

  it("runs the chunks before one that does not compile, as lua does",
    function()
    -- (lua compiles each chunk when its turn comes: what comes before a
    -- syntax error runs, nothing after it does)
    local out, err, code = run_host({"-e", "print('a')", "-e", "x =",
      "-e", "print('b')"})
    assert.equal("a\n", out)
    assert.equal("luahost: (command line):1: unexpected symbol near <eof>\n",
      err)
    assert.equal(1, code)
    local bad = tmpfile("x =\n")
    out, err, code = run_host({"-e", "print('a')", bad, "arg"})
    assert.equal("a\n", out)
    assert.matches("^luahost: [^\n]*:2: unexpected symbol near <eof>\n$",
      err)
    assert.equal(1, code)
    -- -l first: its failure is the one reported
    out, err, code = run_host({"-l", "nosuchmod", "-e", "x ="})
    assert.equal("", out)
    assert.matches("module 'nosuchmod' not found", err)
    assert.not_matches("unexpected symbol", err)
    assert.equal(1, code)
    os.remove(bad)
  end)

  it("reports an error in the main chunk with script:line and traceback",
     function()
    local script = tmpfile("local function inner()\n" ..
      "  error('deep failure')\nend\nlocal function outer() inner() end\n" ..
      "outer()\n")
    local out, err, code = run_host({script})
    assert.equal("", out)
    assert.matches(":2: deep failure", err, 1, true)
    assert.matches("stack traceback:", err)
    assert.matches("in upvalue 'inner'", err)
    assert.matches("in local 'outer'", err)
    assert.matches("in main chunk", err)
    assert.equal(1, code)
  end)

  it("reports a non-string error object", function()
    local _, err, code = run_host({"-e", "error({})"})
    assert.matches("error object is a table value", err)
    assert.equal(1, code)
    _, err, code = run_host({"-e",
      "error(setmetatable({}, {__tostring = function() return 'custom' end}))"})
    assert.matches("luahost: custom", err)
    assert.equal(1, code)
  end)

  it("runs a uv timer to completion", function()
    local out, _, code = run_host({"-e", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(10, 0, function() print("tick") t:close() end)]]})
    assert.equal("tick\n", out)
    assert.equal(0, code)
  end)

  it("reports an error in a timer callback with a traceback, exit 1",
     function()
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      uv.new_timer():start(1, 0, function() error("boom") end)
      uv.new_timer():start(60000, 0, function() end)]]})
    assert.equal("", out)
    assert.matches("%(command line%):2: boom", err)
    assert.matches("stack traceback:", err)
    assert.equal(1, code)
  end)

  it("reports a nested callback error (callback in a callback)", function()
    local _, err, code = run_host({"-e", [[
      local uv = require "uv"
      local function fail() error("nested boom") end
      uv.new_timer():start(1, 0, function()
        uv.new_timer():start(1, 0, function() fail() end)
      end)]]})
    assert.matches("%(command line%):2: nested boom", err)
    assert.matches("in upvalue 'fail'", err)
    assert.equal(1, code)
  end)

  it("os.exit(code, true) from a callback exits with code, in order",
     function()
    local out, err, code = run_host({"-e", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(5, 0, function() os.exit(7, true) end)
      uv.new_timer():start(60000, 0, function() end)
      print("started")]]})
    assert.equal("started\n", out)
    assert.equal("", err)
    assert.equal(7, code)
  end)

  it("os.exit(code) from a callback exits at once with code", function()
    local out, _, code = run_host({"-e", [[
      local uv = require "uv"
      uv.new_timer():start(5, 0, function() io.write("bye") os.exit(3) end)
      uv.new_timer():start(60000, 0, function() end)]]})
    assert.equal("bye", out)
    assert.equal(3, code)
  end)

  it("os.exit(true/false) maps to success/failure", function()
    local _, _, code = run_host({"-e", "os.exit(false)"})
    assert.equal(1, code)
    _, _, code = run_host({"-e", "os.exit(true, true)"})
    assert.equal(0, code)
  end)

  it("closes <close> variables and runs close callbacks at exit", function()
    local out, _, code = run_host({"-e", [[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(60000, 0, function() end)
      t:unref()
      uv.new_timer():start(1, 0, function(self) end)
      local h = uv.new_timer()
      h:start(5, 0, function() h:close(function() print("closed cb") end) end)
    ]]})
    assert.equal("closed cb\n", out)
    assert.equal(0, code)
  end)

  it("stops on SIGINT with 'interrupted!' and status 130", function()
    local _, err, code = run_host({"-e", [[
      local uv = require "uv"
      local pid = io.open("/proc/self/stat"):read("n")
      uv.new_timer():start(60000, 0, function() end)
      uv.new_timer():start(10, 0, function()
        -- io.popen, not os.execute: system() ignores SIGINT meanwhile
        io.popen("kill -INT " .. pid):close()
      end)]]})
    assert.matches("interrupted!", err)
    assert.equal(130, code)
  end)

  it("the main chunk is a task: task.sleep works at top level", function()
    local out, _, code = run_host({"-e", [[
      local task = require "task"
      local t0 = task.now()
      task.sleep(0.02)
      print(task.now() - t0 >= 0.015)]]})
    assert.equal("true\n", out)
    assert.equal(0, code)
  end)

  it("require 'luv' and require 'uv' are the same module", function()
    local out = run_host({"-e", "print(require 'luv' == require 'uv')"})
    assert.equal("true\n", out)
  end)
end)

describe("luahost REPL", function()
  it("evaluates expressions, continues statements, survives errors",
     function()
    local out, err, code = run_host({"-i"}, table.concat({
      "x = 20",
      "=x + 1",
      "x * 2",
      "for i = 1, 2 do",
      "  print('line', i)",
      "end",
      "error('oops')",
      "print('still here')",
    }, "\n") .. "\n")
    assert.equal(0, code)
    assert.matches("^luahost %d", out)
    assert.truthy(out:find("21\n", 1, true))
    assert.truthy(out:find("40\n", 1, true))
    assert.truthy(out:find(">> ", 1, true), "continuation prompt")
    assert.truthy(out:find("line\t1\n", 1, true))
    assert.truthy(out:find("line\t2\n", 1, true))
    assert.truthy(out:find("still here\n", 1, true))
    assert.matches("stdin:1: oops", err)
  end)

  it("runs each statement as a task: blocking calls work, in order",
     function()
    local out, err, code = run_host({"-i"}, table.concat({
      "task = require 'task'",
      "task.sleep(0.05) print('slept')",
      "print('next')",
      "os.exit(5, true)",
      "print('never')",
    }, "\n") .. "\n")
    assert.equal("", err)
    assert.equal(5, code)
    local slept = out:find("slept\n", 1, true)
    local nxt = out:find("next\n", 1, true)
    assert.truthy(slept and nxt and slept < nxt, out)
    assert.falsy(out:find("never", 1, true))
  end)

  it("reads through the loop: a timer fires while it waits for input",
     function()
    -- stdin is a pipe that stays open until the timer has fired: the
    -- shell writes the last line only after seeing the timer's output.
    local script = tmpfile([[
      local uv = require "uv"
      local t = uv.new_timer()
      t:start(20, 0, function() print("timer fired") t:close() end)
    ]])
    local cmd = ("(sleep 0.5; echo 'print(\"input done\")') | " ..
      "timeout -s KILL 30 %s -i %s"):format(shell_quote(LUAHOST),
                                            shell_quote(script))
    local p = assert(io.popen(cmd))
    local out = p:read("a")
    p:close()
    local fired = out:find("timer fired", 1, true)
    local done = out:find("input done", 1, true)
    assert.truthy(fired, out)
    assert.truthy(done, out)
    assert.is_true(fired < done)
  end)
end)
