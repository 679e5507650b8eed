// node_echo.js: the Node.js peer for make bench, a TCP echo server.
// Usage: node node_echo.js [host [port]]; prints "port N" once listening.
'use strict';
const net = require('net');
const host = process.argv[2] || '127.0.0.1';
const port = Number(process.argv[3] || 0);
const server = net.createServer((sock) => {
  sock.setNoDelay(true);
  sock.on('data', (data) => sock.write(data));
  sock.on('error', () => sock.destroy());
});
server.listen({host, port, backlog: 1024}, () => {
  console.log('port ' + server.address().port);
});
