// Twin of policy_stateless_duplex.cpp: each need alone selects a transport.
#include <herald/policy.hpp>

#include <type_traits>

static_assert(std::is_same_v<herald::select_t<herald::Needs{.stateless = true}>, herald::Polling>);
static_assert(std::is_same_v<herald::select_t<herald::Needs{.client_to_server = true}>, herald::WebSocket>);

int main() {}
