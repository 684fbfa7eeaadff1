#!/usr/bin/env node
// Smoke test: reserve a slot on the relay and print our /p2p-circuit address.
// Usage: node client.mjs <relay multiaddr incl. /p2p/PEERID> [--dial]
//   --dial: additionally start a 2nd js node that dials the 1st through the
//           relay and pings it over the relayed (limited) connection.
import './polyfill.mjs'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { multiaddr } from '@multiformats/multiaddr'

const relay = process.argv[2]
if (relay == null) { console.error('usage: node client.mjs <relay-multiaddr> [--dial]'); process.exit(2) }
const doDial = process.argv.includes('--dial')
const timer = setTimeout(() => { console.error('client: timeout'); process.exit(1) }, 20000)

const mk = (listen) => createLibp2p({
  addresses: { listen },
  transports: [tcp(), circuitRelayTransport()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping() }
})

try {
  const t0 = Date.now()
  // listening on "<relay>/p2p-circuit" makes the transport dial the relay and RESERVE
  const a = await mk([`${relay}/p2p-circuit`])
  const circ = a.getMultiaddrs().map(String).filter(s => s.includes('/p2p-circuit'))
  if (circ.length === 0) throw new Error('no circuit address after start')
  console.log(`reserved in ${Date.now() - t0} ms; circuit address: ${circ[0]}`)
  if (doDial) {
    const b = await mk([])
    const rtt = await b.services.ping.ping(multiaddr(circ[0]))
    const c = b.getConnections(a.peerId)[0]
    console.log(`dialed via relay: remoteAddr=${c.remoteAddr} limits=${JSON.stringify(c.limits, (k, v) => typeof v === 'bigint' ? v.toString() : v)} ping rtt=${rtt} ms`)
    await b.stop()
  }
  await a.stop()
  clearTimeout(timer)
  process.exit(0)
} catch (err) {
  console.error(`client: error: ${err?.stack ?? err}`)
  process.exit(1)
}
