// SPDX-License-Identifier: Apache-2.0
// What the executor checks of a socket before it sends on it, and how it
// tells sockets apart whatever descriptor reaches them.
//
// Thread safety: plain functions of their arguments (and the socket).

#ifndef ZCPLAN_URING_SOCKET_CHECK_H_
#define ZCPLAN_URING_SOCKET_CHECK_H_

#include <cstdint>
#include <utility>

#include "absl/status/statusor.h"

namespace zcplan {

// A socket's identity: the same for every descriptor of one socket (a dup,
// one passed over SCM_RIGHTS), different for different sockets. It is the
// socket's cookie (SO_COOKIE, 64 bits, never reused; Linux 4.12+), else its
// device and inode (which a busy host can reuse after the socket closes).
using SocketKey = std::pair<uint64_t, uint64_t>;

struct SendSocket {
  bool tcp = false;  // AF_INET or AF_INET6 with IPPROTO_TCP
  SocketKey key;
};

// Checks that `fd` is a connected stream socket the executor can send on:
// TCP, or with `allow_non_tcp` any connected stream socket (AF_UNIX, ...).
// Errors (InvalidArgument, naming the fd and what it is): a negative fd, not
// a socket, not SOCK_STREAM, a stream socket that is not TCP without
// `allow_non_tcp`, not connected.
[[nodiscard]] absl::StatusOr<SendSocket> CheckSendSocket(int fd,
                                                         bool allow_non_tcp);

}  // namespace zcplan

#endif  // ZCPLAN_URING_SOCKET_CHECK_H_
