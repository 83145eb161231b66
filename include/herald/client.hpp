#pragma once

/// The clients' umbrella header: SSE, WebSocket and polling clients with reconnect, backoff,
/// resume and de-duplication, and the NegotiatingClient that picks the best of them that
/// delivers. TLS (https, wss) is opt-in: <herald/client/tls.hpp>, herald::tls.

#include <herald/client/backoff.hpp>
#include <herald/client/connector.hpp>
#include <herald/client/error.hpp>
#include <herald/client/negotiating_client.hpp>
#include <herald/client/options.hpp>
#include <herald/client/polling_client.hpp>
#include <herald/client/sse_client.hpp>
#include <herald/client/websocket_client.hpp>
