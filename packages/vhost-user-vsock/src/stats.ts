/** What one device has done and dropped; `dropped.*` each come with a 'log' line (rate-limited). */
export interface VsockDeviceStats {
  /** A QEMU is connected on the vhost-user socket. */
  qemuAttached: boolean;
  /** The guest driver has the rx and tx rings running. */
  driverReady: boolean;
  activeConnections: number;
  /** Host clients that connected but have not sent their `CONNECT <port>` line yet. */
  pendingHandshakes: number;
  /** Guest bytes waiting for a host socket to take them (bounded by bufAlloc per connection). */
  bufferedBytes: number;
  /** Guest memory mapped from QEMU's memory table. */
  mappedBytes: number;
  memoryRegions: number;
  vhostUserMessages: number;
  /** vhost-user requests refused (unknown, malformed, out of range). */
  vhostUserErrors: number;
  qemuConnections: number;
  driverStarts: number;
  driverResets: number;
  packetsFromGuest: number;
  packetsToGuest: number;
  bytesFromGuest: number;
  bytesToGuest: number;
  kicks: number;
  interrupts: number;
  /** Kicks (guest -> device notifications) per queue. */
  kicksByQueue: { rx: number; tx: number; event: number };
  /** Interrupts (device -> guest notifications, after EVENT_IDX suppression) per queue. */
  interruptsByQueue: { rx: number; tx: number; event: number };
  /** CREDIT_UPDATE packets sent to the guest (each costs it an rx packet). */
  creditUpdatesSent: number;
  /** CREDIT_UPDATE packets the guest sent (its reader freed space). */
  creditUpdatesReceived: number;
  /** readv/recv calls on host sockets for guest-bound data, and send calls for host-bound data. */
  hostReads: number;
  hostWrites: number;
  /** Guest bytes the host sockets took, and the writes that found a host socket full (the rest waits, copied, within bufAlloc). */
  hostWriteBytes: number;
  hostWritesBlocked: number;
  /** Device passes over the tx ring that took packets, and those the kick-deferral timer started (no kick came). */
  txPasses: number;
  txTimerPasses: number;
  /** Times a streaming connection made the tx ring ask for a kick only every few packets (txKickBatch). */
  txStreamDeferrals: number;
  /** Packets from the guest by op (`rwEmpty`: RW with no payload, also counted in `rw`). */
  packetsFromGuestByOp: {
    request: number;
    response: number;
    rst: number;
    shutdown: number;
    rw: number;
    rwEmpty: number;
    creditUpdate: number;
    creditRequest: number;
    other: number;
  };
  connectionsOpened: number;
  connectionsClosed: number;
  /** Guest connects to `${udsPath}_<port>` that found no listener (the guest got RST). */
  hostConnectFailed: number;
  hostAccepts: number;
  /** Host clients closed for a bad `CONNECT <port>` line. */
  connectLinesBad: number;
  refusedNotReady: number;
  refusedTooMany: number;
  transportResetsSent: number;
  /** Rings found corrupt (avail index or head out of range) and stopped until the driver resets them. */
  queuesBroken: number;
  logLinesSuppressed: number;
  dropped: {
    /** Descriptor chains that loop, are too long, point outside guest memory or are misordered. */
    badChain: number;
    shortPacket: number;
    /** Header `len` larger than the buffers the guest gave. */
    badLen: number;
    oversize: number;
    badSrcCid: number;
    badDstCid: number;
    badType: number;
    badOp: number;
    creditViolation: number;
    unknownConnection: number;
    /** `fwd_cnt` claiming more than we ever sent. */
    badCredit: number;
    rxChain: number;
    rstOverflow: number;
    afterShutdown: number;
  };
}

type Raw = Readonly<Record<string, number | boolean>>;

function num(raw: Raw, key: string): number {
  const value = raw[key];
  return typeof value === 'number' ? value : 0;
}

/** The addon's snake_case counters as the public shape. */
export function statsFromNative(raw: Raw): VsockDeviceStats {
  return {
    qemuAttached: raw.qemu_attached === true,
    driverReady: raw.driver_ready === true,
    activeConnections: num(raw, 'active_connections'),
    pendingHandshakes: num(raw, 'pending_handshakes'),
    bufferedBytes: num(raw, 'buffered_bytes'),
    mappedBytes: num(raw, 'mapped_bytes'),
    memoryRegions: num(raw, 'memory_regions'),
    vhostUserMessages: num(raw, 'vhost_user_messages'),
    vhostUserErrors: num(raw, 'vhost_user_errors'),
    qemuConnections: num(raw, 'qemu_connections'),
    driverStarts: num(raw, 'driver_starts'),
    driverResets: num(raw, 'driver_resets'),
    packetsFromGuest: num(raw, 'tx_packets'),
    packetsToGuest: num(raw, 'rx_packets'),
    bytesFromGuest: num(raw, 'tx_bytes'),
    bytesToGuest: num(raw, 'rx_bytes'),
    kicks: num(raw, 'kicks'),
    interrupts: num(raw, 'interrupts'),
    kicksByQueue: { rx: num(raw, 'kicks_rx'), tx: num(raw, 'kicks_tx'), event: num(raw, 'kicks_event') },
    interruptsByQueue: { rx: num(raw, 'interrupts_rx'), tx: num(raw, 'interrupts_tx'), event: num(raw, 'interrupts_event') },
    creditUpdatesSent: num(raw, 'credit_updates_sent'),
    creditUpdatesReceived: num(raw, 'credit_updates_received'),
    hostReads: num(raw, 'host_reads'),
    hostWrites: num(raw, 'host_writes'),
    hostWriteBytes: num(raw, 'host_write_bytes'),
    hostWritesBlocked: num(raw, 'host_writes_blocked'),
    txPasses: num(raw, 'tx_passes'),
    txTimerPasses: num(raw, 'tx_timer_passes'),
    txStreamDeferrals: num(raw, 'tx_stream_deferrals'),
    packetsFromGuestByOp: {
      request: num(raw, 'tx_op_request'),
      response: num(raw, 'tx_op_response'),
      rst: num(raw, 'tx_op_rst'),
      shutdown: num(raw, 'tx_op_shutdown'),
      rw: num(raw, 'tx_op_rw'),
      rwEmpty: num(raw, 'tx_op_rw_empty'),
      creditUpdate: num(raw, 'tx_op_credit_update'),
      creditRequest: num(raw, 'tx_op_credit_request'),
      other: num(raw, 'tx_op_other'),
    },
    connectionsOpened: num(raw, 'connections_opened'),
    connectionsClosed: num(raw, 'connections_closed'),
    hostConnectFailed: num(raw, 'host_connect_failed'),
    hostAccepts: num(raw, 'host_accepts'),
    connectLinesBad: num(raw, 'connect_lines_bad'),
    refusedNotReady: num(raw, 'refused_not_ready'),
    refusedTooMany: num(raw, 'refused_too_many'),
    transportResetsSent: num(raw, 'transport_resets_sent'),
    queuesBroken: num(raw, 'queues_broken'),
    logLinesSuppressed: num(raw, 'log_lines_suppressed'),
    dropped: {
      badChain: num(raw, 'dropped_bad_chain'),
      shortPacket: num(raw, 'dropped_short_packet'),
      badLen: num(raw, 'dropped_bad_len'),
      oversize: num(raw, 'dropped_oversize'),
      badSrcCid: num(raw, 'dropped_bad_src_cid'),
      badDstCid: num(raw, 'dropped_bad_dst_cid'),
      badType: num(raw, 'dropped_bad_type'),
      badOp: num(raw, 'dropped_bad_op'),
      creditViolation: num(raw, 'dropped_credit_violation'),
      unknownConnection: num(raw, 'dropped_unknown_connection'),
      badCredit: num(raw, 'dropped_bad_credit'),
      rxChain: num(raw, 'dropped_rx_chain'),
      rstOverflow: num(raw, 'dropped_rst_overflow'),
      afterShutdown: num(raw, 'dropped_after_shutdown'),
    },
  };
}

/** Sum of every drop counter (a hostile guest's footprint). */
export function totalDropped(stats: VsockDeviceStats): number {
  return Object.values(stats.dropped).reduce((a, b) => a + b, 0);
}
