--[[
spec/support/deploy_doc.lua: the configuration blocks of docs/deploy.md
that specs run as written, so that the documentation and the tests cannot
drift apart. A block is marked by a line "<!-- spec: NAME ... -->" just
before its fence.

  local doc = require "deploy_doc"
  doc.block("haproxy-http")          the block's text
  doc.subst(text, {{from, to}, ...}) each plain `from` replaced by `to`;
                                     each must occur exactly once
]]
local M = {}

local function read_doc()
  local f = assert(io.open("docs/deploy.md", "rb"))
  local text = f:read("a")
  f:close()
  return text
end

function M.block(name)
  local text = read_doc()
  local marker = "<!-- spec: " .. name .. " "
  local at = text:find(marker, 1, true)
  assert(at, "docs/deploy.md: no block marked 'spec: " .. name .. "'")
  assert(not text:find(marker, at + 1, true),
    "docs/deploy.md: two blocks marked 'spec: " .. name .. "'")
  local body = text:match("^[^\n]*\n```[%w]*\n(.-\n)```", at)
  assert(body, "docs/deploy.md: 'spec: " .. name ..
    "' is not followed by a fenced block")
  return body
end

function M.subst(text, list)
  for _, p in ipairs(list) do
    local from, to = p[1], p[2]
    local i, j = text:find(from, 1, true)
    assert(i, "docs/deploy.md: the block no longer has " .. ("%q"):format(from))
    assert(not text:find(from, j + 1, true),
      "docs/deploy.md: the block has " .. ("%q"):format(from) .. " twice")
    text = text:sub(1, i - 1) .. to .. text:sub(j + 1)
  end
  return text
end

return M
