#!/usr/bin/env node
// circuit-relay-v2 server (js-libp2p v3) for rust-libp2p interop tests.
// Usage: node relay.mjs [PORT]      (PORT defaults to 0 = ephemeral)
// Prints exactly one stdout line: "listening on /ip4/127.0.0.1/tcp/<port>/p2p/<peerid>"
// Env (all optional):
//   RELAY_HOST                 listen IP (default 127.0.0.1)
//   RELAY_MAX_RESERVATIONS     reservations.maxReservations       (pkg default 15)
//   RELAY_RESERVATION_TTL_MS   reservations.reservationTtl, ms    (pkg default 7200000)
//   RELAY_DATA_LIMIT_BYTES     reservations.defaultDataLimit      (pkg default 131072)
//   RELAY_DURATION_LIMIT_MS    reservations.defaultDurationLimit  (pkg default 120000)
//   RELAY_APPLY_DEFAULT_LIMIT  reservations.applyDefaultLimit, 0/1 (pkg default 1)
//   RELAY_HOP_TIMEOUT_MS       hopTimeout                         (pkg default 30000)
//   RELAY_ABORT_ON_PING_FAILURE  1 = let libp2p's connection monitor kill connections
//                              whose ping times out (libp2p default); default here 0
//   RELAY_VERBOSE=1            log reservation / connection events to stderr
import './polyfill.mjs' // must be first: Promise.withResolvers for Node 20
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { circuitRelayServer } from '@libp2p/circuit-relay-v2'

function die (msg) {
  process.stderr.write(`relay: error: ${msg}\n`)
  process.exit(1)
}

function intEnv (name) {
  const v = process.env[name]
  if (v == null || v === '') return undefined
  if (!/^\d+$/.test(v)) die(`${name} must be a non-negative integer, got "${v}"`)
  return Number(v)
}

function boolEnv (name, dflt) {
  const v = process.env[name]
  if (v == null || v === '') return dflt
  if (/^(1|true|yes)$/i.test(v)) return true
  if (/^(0|false|no)$/i.test(v)) return false
  die(`${name} must be 0/1, got "${v}"`)
}

process.on('unhandledRejection', (err) => die(`unhandled rejection: ${err?.stack ?? err}`))
process.on('uncaughtException', (err) => die(`uncaught exception: ${err?.stack ?? err}`))

const portArg = process.argv[2] ?? '0'
if (!/^\d+$/.test(portArg) || Number(portArg) > 65535) die(`invalid port "${portArg}"`)
const host = process.env.RELAY_HOST ?? '127.0.0.1'
const verbose = boolEnv('RELAY_VERBOSE', false)

// Only pass options that were actually set so the package defaults apply otherwise.
const reservations = {}
const maxRes = intEnv('RELAY_MAX_RESERVATIONS')
if (maxRes !== undefined) reservations.maxReservations = maxRes
const ttl = intEnv('RELAY_RESERVATION_TTL_MS')
if (ttl !== undefined) reservations.reservationTtl = ttl
const dataLimit = process.env.RELAY_DATA_LIMIT_BYTES
if (dataLimit != null && dataLimit !== '') {
  if (!/^\d+$/.test(dataLimit)) die(`RELAY_DATA_LIMIT_BYTES must be an integer, got "${dataLimit}"`)
  reservations.defaultDataLimit = BigInt(dataLimit) // must be a bigint
}
const durLimit = intEnv('RELAY_DURATION_LIMIT_MS')
if (durLimit !== undefined) reservations.defaultDurationLimit = durLimit
const applyDefault = boolEnv('RELAY_APPLY_DEFAULT_LIMIT', undefined)
if (applyDefault !== undefined) reservations.applyDefaultLimit = applyDefault
const hopTimeout = intEnv('RELAY_HOP_TIMEOUT_MS')

let node
try {
  node = await createLibp2p({
    addresses: { listen: [`/ip4/${host}/tcp/${portArg}`] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    connectionManager: {
      // all test peers come from 127.0.0.1: exempt loopback from the
      // per-IP inbound rate limit (5 conn/s) and from connection pruning
      allow: ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128']
    },
    connectionMonitor: {
      abortConnectionOnPingFailure: boolEnv('RELAY_ABORT_ON_PING_FAILURE', false)
    },
    services: {
      identify: identify(), // gives rust clients observed addrs (DCUtR candidates)
      ping: ping(),
      relay: circuitRelayServer({
        ...(hopTimeout !== undefined ? { hopTimeout } : {}),
        reservations
      })
    }
  })
} catch (err) {
  die(`failed to start libp2p: ${err?.stack ?? err}`)
}

const addrs = node.getMultiaddrs().map(String)
const addr = addrs.find(a => a.includes('/tcp/')) // includes /p2p/<peerid>
if (addr == null) die(`not listening on any TCP address (got ${JSON.stringify(addrs)})`)
process.stdout.write(`listening on ${addr}\n`)

if (verbose) {
  const log = (s) => process.stderr.write(`relay: ${s}\n`)
  log(`config reservations=${JSON.stringify(reservations, (k, v) => typeof v === 'bigint' ? v.toString() : v)} hopTimeout=${hopTimeout ?? 'default'}`)
  log(`protocols: ${node.getProtocols().join(' ')}`)
  // (the server declares but never dispatches 'relay:reservation'; poll the map instead)
  let last = -1
  setInterval(() => {
    const n = node.services.relay.reservations.size
    if (n !== last) { last = n; log(`active reservations: ${n}`) }
  }, 500).unref()
  node.addEventListener('connection:open', (e) => log(`connection open ${e.detail.remotePeer} ${e.detail.remoteAddr}`))
  node.addEventListener('connection:close', (e) => log(`connection close ${e.detail.remotePeer}`))
}

let stopping = false
async function shutdown (sig) {
  if (stopping) return
  stopping = true
  const t = setTimeout(() => die(`timeout stopping after ${sig}`), 5000)
  t.unref()
  try {
    await node.stop()
  } catch (err) {
    die(`error while stopping: ${err?.stack ?? err}`)
  }
  process.exit(0)
}
process.on('SIGTERM', () => { shutdown('SIGTERM') })
process.on('SIGINT', () => { shutdown('SIGINT') })
