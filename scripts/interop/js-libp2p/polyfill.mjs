// js-libp2p v3 (@libp2p/utils, @chainsafe/libp2p-yamux, it-queue, ...) calls
// Promise.withResolvers(), which only exists natively from Node 22.
// Node 20 lacks it, so install a spec-equivalent shim before libp2p loads.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers () {
      let resolve, reject
      const promise = new this((res, rej) => { resolve = res; reject = rej })
      return { promise, resolve, reject }
    }
  })
}
