// The CommonJS view (require conditions, .d.cts declarations) under NodeNext.
import native = require('@vmlink/native');
import aio = require('@vmlink/aio');
import threadpool = require('@vmlink/aio-threadpool');
import transport = require('@vmlink/transport');
import rpc = require('@vmlink/rpc');
import compliance = require('@vmlink/compliance/transport');

const binding: native.NativeBinding = native.loadBinding();
const backend: Promise<aio.AioBackend> = aio.createBackend('fs');
export = { binding, backend, threadpool, transport: transport.createTransports([]), rpc: rpc.RpcPeer, compliance };
