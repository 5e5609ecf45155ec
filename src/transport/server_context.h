// What every connection needs from the server: its options, the store (reads), the hub
// (rooms, fan-out), the commit pipeline (writes), the back-pressure gate and the authenticator
// (with --auth mixed, the legacy devices too).
// Owned by Server; outlives every session.
#pragma once

#include <atomic>
#include <string>

#include "auth/authenticator.h"
#include "auth/secret_hasher.h"
#include "common/metrics.h"
#include "protocol/codec.h"
#include "store/store.h"
#include "sync/backpressure.h"
#include "sync/commit_pipeline.h"
#include "sync/hub.h"
#include "transport/admission.h"
#include "transport/tls.h"
#include "transport/transport_options.h"

namespace possync {

class CommitIntake;
class IoLoops;
class LegacyDevices;

struct ServerContext {
  const TransportOptions& config;  // filled by the program (app/config.h)
  IoLoops& loops;
  CommitIntake& intake;  // where sessions submit changes (batched per loop turn)
  Store& store;
  Hub& hub;
  CommitPipeline& pipeline;
  Metrics& metrics;
  const Authenticator& auth;
  SecretHasher& hasher;
  Admission& admission;
  Backpressure& backpressure;
  ProtocolLimits limits;
  TlsContext* tls = nullptr;        // set: the port speaks only TLS (HTTPS, WSS)
  LegacyDevices* legacy = nullptr;  // set with --auth mixed (transport/legacy_devices.h)
  // This process in a cluster's admin views: `<host name>:<port>`; set before the listener starts.
  std::string node;
  std::atomic<bool> stopping{false};
};

}  // namespace possync
