// node_http.js: the Node.js peer for the HTTP case of make bench: answers
// every request with 200 and a short body, keep-alive.
// Usage: node node_http.js [host [port]]; prints "port N" once listening.
'use strict';
const http = require('http');
const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 0);
const body = 'hello world\n';  // what scripts/http_server.lua says
const server = http.createServer((req, res) => {
  res.writeHead(200, {'Content-Type': 'text/plain',
                      'Content-Length': Buffer.byteLength(body)});
  res.end(body);
});
server.keepAliveTimeout = 60000;
server.listen({host, port, backlog: 1024}, () => {
  console.log('port ' + server.address().port);
});
