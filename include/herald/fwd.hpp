#pragma once

/// Forward declarations of herald's main types: cheap to include, no Boost, no Beast.

namespace herald::inline v0 {

struct Event;
struct HubOptions;
class Hub;
class Server;
class TlsServer;
class Session;

struct Sse;
struct WebSocket;
struct Polling;

struct Needs;

}  // namespace herald
