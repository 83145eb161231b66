#pragma once

#include <herald/detail/endpoint.hpp>
#include <herald/detail/response.hpp>
#include <herald/error.hpp>
#include <herald/hooks.hpp>
#include <herald/options.hpp>

#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace herald::inline v0::detail {

/** CORS, once for every transport: who may read an answer (cors_grant), the headers that say
    so (cors_headers, add_cors), and the preflight (preflight). The rules:
      - an Origin must pass ChannelOptions::allowed_origins, else 403 before anything else;
      - credentials go only to origins the application named (CWE-942: "*" never means
        "every site may read every user's stream");
      - every answer says Vary: Origin, since it depends on it. */

/** What a CORS answer to an allowed `origin` says: the Access-Control-Allow-Origin value, and
    whether Access-Control-Allow-Credentials: true may go with it. */
struct CorsGrant {
  std::string allow;  ///< empty: no CORS headers (no Origin, or one not allowed)
  bool credentials = false;
};

/** Credentials go only to an origin the application trusts by name (listed, or the same origin
    when the list is empty). An origin let in by "*" alone gets "*", which browsers never pair
    with cookies or HTTP auth: "*" makes a stream public, it cannot hand a user's
    cookie-authenticated stream to every web site (CWE-942). */
inline CorsGrant cors_grant(std::string_view origin, std::string_view host,
                            std::vector<std::string> const& allowed) {
  if (origin.empty()) return {};
  bool any = false;
  for (auto const& a : allowed) {
    if (a == "*")
      any = true;
    else if (beast::iequals(a, origin))
      return {std::string(origin), true};
  }
  if (any) return {"*", false};
  if (!allowed.empty()) return {};
  auto const scheme = origin.find("://");
  if (scheme == std::string_view::npos || host.empty() || !beast::iequals(origin.substr(scheme + 3), host))
    return {};
  return {std::string(origin), true};
}

/** Split an authority ("host", "host:port", "[v6]", "[v6]:port") into host and port (empty:
    none given). False when it is not one: a Host header is client input. */
inline bool split_authority(std::string_view a, std::string_view& host, std::string_view& port) {
  std::size_t end = 0;
  if (a.starts_with('[')) {
    end = a.find(']');
    if (end == std::string_view::npos) return false;
    ++end;
  } else {
    end = a.find(':');
    if (end == std::string_view::npos) end = a.size();
  }
  host = a.substr(0, end);
  port = a.substr(end);
  if (!port.empty()) {
    if (port.size() < 2 || port.front() != ':') return false;
    port.remove_prefix(1);
    for (char c : port)
      if (c < '0' || c > '9') return false;
  }
  return !host.empty();
}

/** Whether a request's `host` (its Host header) names this server, by ChannelOptions::
    allowed_hosts: "name" allows that name on any port, "name:port" on that port, and
    "*.name" any subdomain of name (not name itself), on any port. Names compare without case.
    An empty list allows every Host. With a list, a request without Host is refused: it cannot
    show which name it was sent to. This is what closes DNS rebinding: the rebinding page's
    requests name the attacker's host, which is on no list, though its Origin equals its Host. */
inline bool host_allowed(std::string_view host, std::vector<std::string> const& allowed) {
  if (allowed.empty()) return true;
  std::string_view name, port;
  if (!split_authority(host, name, port)) return false;
  if (name.ends_with('.')) name.remove_suffix(1);  // "example.com." is example.com
  for (std::string_view entry : allowed) {
    std::string_view ename, eport;
    if (!split_authority(entry, ename, eport)) continue;
    if (!eport.empty() && eport != port) continue;
    if (ename.starts_with("*.")) {
      auto const suffix = ename.substr(1);  // ".example.com"
      if (name.size() > suffix.size() && beast::iequals(name.substr(name.size() - suffix.size()), suffix))
        return true;
    } else if (beast::iequals(name, ename)) {
      return true;
    }
  }
  return false;
}

/** Whether a browser request from `origin` may proceed.

    An empty allowlist means same-origin only: the Origin's authority must equal the Host header.
    "*" in the list allows any origin. Requests without an Origin (non-browser clients) pass:
    the Origin check defends browsers against cross-site use, authentication is the hook's job.
*/
inline bool origin_allowed(std::string_view origin, std::string_view host,
                           std::vector<std::string> const& allowed) {
  return origin.empty() || !cors_grant(origin, host, allowed).allow.empty();
}

/** Calls f(name, value) for each CORS header of an answer to `grant` (Vary first, always).
    `expose` is the Access-Control-Expose-Headers value, if the answer has headers a page
    should read (polling's ETag). */
template <class F>
void cors_headers(CorsGrant const& grant, CorsOptions const& o, std::string_view expose, F&& f) {
  f(http::field::vary, "Origin");
  if (grant.allow.empty()) return;
  f(http::field::access_control_allow_origin, std::string_view(grant.allow));
  if (grant.credentials && o.credentials) f(http::field::access_control_allow_credentials, "true");
  if (!expose.empty()) f(http::field::access_control_expose_headers, expose);
}

/// Set the CORS headers of an answer to `grant` on `res`.
inline void add_cors(Response& res, CorsGrant const& grant, CorsOptions const& o, std::string_view expose = {}) {
  cors_headers(grant, o, expose, [&](http::field name, std::string_view value) { res.set(name, value); });
}

/// "a, b, c": an HTTP list from items.
inline std::string join_list(std::initializer_list<std::vector<std::string> const*> lists) {
  std::string out;
  for (auto const* items : lists)
    for (auto const& item : *items) {
      if (!out.empty()) out += ", ";
      out += item;
    }
  return out;
}

/** The answer to OPTIONS on a channel's path. With an allowed Origin it is a CORS preflight:
    204 allowing `methods` (what the path serves) and the request headers the transport reads
    (`headers`) plus the application's (CorsOptions::headers). An Origin that is not allowed
    gets 403; without an Origin it is a plain OPTIONS: 204 with Allow. */
inline Response preflight(Request const& req, CorsGrant const& grant, CorsOptions const& o,
                          std::vector<std::string> const& methods, std::vector<std::string> const& headers) {
  auto const allow = join_list({&methods});
  if (!req[http::field::origin].empty() && grant.allow.empty()) {
    auto res = error_response(error::origin_not_allowed, {}, req.version(), req.keep_alive());
    add_cors(res, grant, o);
    return res;
  }
  Response res{http::status::no_content, req.version()};
  res.set(http::field::allow, allow);
  add_cors(res, grant, o);
  if (!grant.allow.empty()) {
    res.set(http::field::access_control_allow_methods, allow);
    if (auto const h = join_list({&headers, &o.headers}); !h.empty())
      res.set(http::field::access_control_allow_headers, h);
    res.set(http::field::access_control_max_age, std::to_string(o.max_age.count()));
  }
  res.keep_alive(req.keep_alive());
  return res;  // 204: no Content-Length
}

}  // namespace herald::detail
