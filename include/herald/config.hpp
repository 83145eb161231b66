#pragma once

#include <herald/version.hpp>

#if __cplusplus < 202002L && !defined(_MSVC_LANG)
#error "herald needs C++20 (-std=c++20)"
#endif

// Declared, not included: hub.hpp and event.hpp must stay free of Beast.
namespace boost::asio {}
namespace boost::beast::http {}

/* Every herald name lives in the inline namespace herald::v0 (herald::Hub is herald::v0::Hub): a
   program that links two libraries built against incompatible herald versions gets two sets of
   symbols instead of one silently mixed. An incompatible release bumps it in every header. */
namespace herald::inline v0 {
namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
}  // namespace herald

/// Events kept per topic when HubOptions does not say otherwise.
#ifndef HERALD_DEFAULT_HISTORY_EVENTS
#define HERALD_DEFAULT_HISTORY_EVENTS 1024
#endif

/// Events a connection may have queued before the overflow policy applies.
#ifndef HERALD_DEFAULT_QUEUE_EVENTS
#define HERALD_DEFAULT_QUEUE_EVENTS 1024
#endif

/// Bytes a connection may have queued before the overflow policy applies.
#ifndef HERALD_DEFAULT_QUEUE_BYTES
#define HERALD_DEFAULT_QUEUE_BYTES (4u * 1024u * 1024u)
#endif
