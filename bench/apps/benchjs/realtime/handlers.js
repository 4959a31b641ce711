// Benchmark app (bench/handlers.mjs): the smallest useful handler, an ack.
module.exports = function (socket) {
  socket.on('rt_echo', (x, cb) => cb(x));
};
