package proxy

// SocketBatch is how many sockets one namespace entry makes.
const SocketBatch = socketBatch
