// Misuse: real-time client->server messages need a held connection; asking for that and for
// no stateful infrastructure at once must not compile, and the message says what to drop.
#include <herald/policy.hpp>

using Live = herald::select_t<herald::Needs{.client_to_server = true, .stateless = true}>;
Live* unused = nullptr;

int main() {}
