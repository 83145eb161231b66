#pragma once

/// The umbrella header: every core public header (not client/, not integrations/).

#include <herald/channel.hpp>
#include <herald/config.hpp>
#include <herald/error.hpp>
#include <herald/event.hpp>
#include <herald/fwd.hpp>
#include <herald/hooks.hpp>
#include <herald/hub.hpp>
#include <herald/log.hpp>
#include <herald/options.hpp>
#include <herald/policy.hpp>
#include <herald/server.hpp>
#include <herald/session.hpp>
#include <herald/transport.hpp>
#include <herald/transports/polling.hpp>
#include <herald/transports/sse.hpp>
#include <herald/transports/websocket.hpp>
#include <herald/version.hpp>
