#pragma once

#include <herald/config.hpp>
#include <herald/detail/channel_core.hpp>
#include <herald/hooks.hpp>
#include <herald/transport.hpp>

#include <boost/beast/websocket/rfc6455.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0 {

/** permessage-deflate (RFC 7692) settings of the WebSocket transport. Off by default: each
    compressing connection costs CPU per message and per-connection zlib state, and events can
    no longer share their encoded bytes on the wire. Memory stays bounded when it is on: the
    windows and memory level below cap zlib's state, and `read_message_max` caps the inflated
    size of every message (a compression bomb is cut off with 1009). */
struct WebSocketDeflate {
  /// Offer the extension to clients that ask for it.
  bool enable = false;
  /// LZ77 window of both directions, 9..15 bits (2^bits bytes of history per direction).
  int max_window_bits = 12;
  /// zlib memory level of the server's compressor, 1..9.
  int mem_level = 4;
  /// zlib compression level, 0..9.
  int level = 6;
  /// Start every message from an empty window: less compression, no state between messages.
  bool no_context_takeover = false;
  /// Messages smaller than this are sent uncompressed.
  std::size_t threshold = 256;
};

/** How fast one WebSocket client may send (OWASP's per-connection rate limit): two token
    buckets, one counting messages (control messages included) and one counting their bytes.
    Each starts full, so a client may send a burst after a quiet spell, then the rate. A client
    over either budget gets an error frame `{"error":"rate limited",…}` and is closed with 1008
    (herald::error::rate_limited); other connections are not touched. The defaults leave a chat
    or collaborative app (a person types a few messages a second; cursors and typing indicators
    send tens) far below the limit while a flood is cut within a fraction of a second. */
struct WebSocketInboundRate {
  /// Messages a second, on average; 0: no message limit.
  std::size_t messages_per_second = 100;
  /// Messages a client may send at once after a quiet spell.
  std::size_t message_burst = 200;
  /// Bytes a second (payload, after decompression), on average; 0: no byte limit.
  std::size_t bytes_per_second = 256 * 1024;
  /// Bytes a client may send at once; at least read_message_max, so any message can pass.
  std::size_t byte_burst = 1024 * 1024;
};

/// Options of the WebSocket transport. Every default is safe for a public server.
struct WebSocketOptions {
  /** Subprotocols the server speaks, for `Sec-WebSocket-Protocol`. The first one the client
      offers that is listed here is chosen; with none in common the handshake succeeds without
      one (the client decides whether to continue). Empty: no subprotocol. */
  std::vector<std::string> subprotocols;
  /// Time allowed for the opening handshake: writing the 101 (the closing one: close_timeout).
  std::chrono::milliseconds handshake_timeout = std::chrono::seconds(10);
  /** A connection on which nothing arrives for this long is closed (error::idle_timeout).
      With keepalive_pings, a ping goes out after half of it, so a live client's pong keeps the
      connection open. Zero: no idle timeout. */
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  /// Send a ping after idle_timeout / 2 of silence.
  bool keepalive_pings = true;
  /** For a client that asks for it (`?heartbeat` on the upgrade request): a text frame
      `{"heartbeat":<ms>}` right after the upgrade and after this much silence from the server,
      advertised as `Herald-Heartbeat: <ms>` on the 101. Browser scripts never see pings; this
      is how they tell a quiet connection from one a proxy holds back. Zero: never. */
  std::chrono::milliseconds heartbeat = std::chrono::seconds(15);
  /// Largest message a client may send (after decompression); larger ones close with 1009.
  std::size_t read_message_max = 64 * 1024;
  WebSocketDeflate deflate;
  /// Close code for a client that fell behind its bounded queue (default 1013, try again later).
  std::uint16_t overflow_close_code = 1013;
  /** Time the server waits for a close handshake to finish (one it started: shutdown, overflow,
      close(); or, after a client's close frame, for the client to end the connection) before it
      cuts the connection. */
  std::chrono::milliseconds close_timeout = std::chrono::seconds(5);
  /// Budget of every client's messages: over it, an error frame and close 1008.
  WebSocketInboundRate inbound_rate;
};

/** WebSocket (RFC 6455): full duplex, for applications whose clients also send messages in
    real time (chat, collaborative editing, trading).

    Protocol (text frames, JSON):
      client: {"subscribe":"orders"}  {"subscribe":"orders","since":41}  {"unsubscribe":"orders"}
      server: {"subscribed":"orders","cursor":57}  {"unsubscribed":"orders"}
              {"id":58,"topic":"orders","data":{…}}          (an event; "event" when typed)
              {"error":"forbidden","topic":"orders","message":"…"}   (the connection stays up)
    Every other client message goes to Channel::on_message. Binary events are a text frame
    {"id":…,"topic":…,"binary":true,"size":n} followed at once by a binary frame. Close codes:
    1001 shutdown, 1008 policy (also over inbound_rate), 1009 too big, 1007 invalid UTF-8,
    1011 handler failure, 1013 slow consumer; a client's close frame with a code RFC 6455 does
    not allow (5000 and above) fails the connection: it is cut without an echo. `?topic=` on the upgrade request subscribes at once, `?since=` resumes those
    topics, `?heartbeat` asks for heartbeat frames {"heartbeat":<ms>} (WebSocketOptions::heartbeat).
    See docs/websocket.md.
*/
struct WebSocket {
  static constexpr std::string_view name = "websocket";
  static constexpr Capabilities capabilities{
      .client_to_server = true, .binary = true, .server_push = true, .resumable = true,
      .plain_http = false};
  using options = WebSocketOptions;

  /// A WebSocket upgrade request (GET with Connection: upgrade and Upgrade: websocket).
  static bool matches(Request const& req) { return beast::websocket::is_upgrade(req); }

  /// Throws std::invalid_argument naming the option that is out of range.
  static void validate(WebSocketOptions const& o);

  /** Take over a connection; `already_read` holds the bytes read past the upgrade request
      (frames a client sent in the same packet), which are the connection's first. */
  template <class Stream>
  static void start(std::shared_ptr<ChannelContext<WebSocket>> channel, Stream&& stream, Request&& req,
                    std::string already_read = {});
};

}  // namespace herald

#include <herald/transports/impl/websocket.hpp>
