// The broker interface's shared parts: the names of its errors.
// Rule: one error domain for every broker, so the rooms never see a Redis or libuv code.
#include "server/broker.h"

namespace roomcast::server {

const char* broker_error_name(int err) {
  switch (err) {
    case kBrokerOk: return "ok";
    case kBrokerDown: return "down";
    case kBrokerFailed: return "failed";
    case kBrokerDisconnected: return "disconnected";
    case kBrokerStopped: return "stopped";
    case kBrokerBusy: return "busy";
    default: return "unknown";
  }
}

}  // namespace roomcast::server
