// The Redis broker: a thin adapter from the server's Broker interface to redis::Client.
// Rule: names follow section 7 of the contract: channel <prefix>room:R, stream <prefix>room:R:log.
#pragma once
#include <uv.h>

#include <memory>

#include "server/broker.h"
#include "server/config.h"

namespace roomcast::server {

// Returns the Redis broker for config.redis_url, or nullptr (after logging) when the URL is bad.
std::unique_ptr<Broker> make_redis_broker(uv_loop_t* loop, const Config& config, BrokerEvents* events);

}  // namespace roomcast::server
