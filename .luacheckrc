-- luacheck settings for lib/, scripts/ and spec/.
std = "lua54"
max_line_length = 80
files["spec"] = {
  std = "+busted",
  globals = {"TEST_TIMEOUT", "LUAHOST", "PRIVATE_NET", "run_loop", "expect",
             "assert_clean", "run_host", "sanitizer_lines", "tmpname", "tmpfile", "shell_quote",
             "run_task", "_"},
  -- specs assign results they do not check (ok, err, code = ...) on
  -- purpose, and callbacks take arguments they ignore
  ignore = {"311", "212", "231"},
  max_line_length = 90,
}
