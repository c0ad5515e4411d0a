// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/socket_check.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace zcplan {

absl::StatusOr<SendSocket> CheckSendSocket(int fd, bool allow_non_tcp) {
  if (fd < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd, " is not a valid file descriptor"));
  }
  int type = 0, domain = 0, protocol = 0;
  socklen_t len = sizeof(type);
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd, " is not a socket (", std::strerror(errno), ")"));
  }
  len = sizeof(domain);
  getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len);
  len = sizeof(protocol);
  getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len);
  if (type != SOCK_STREAM) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd, " is a socket of type ", type,
        ", not a stream socket (SOCK_STREAM); zcplan sends on TCP"));
  }
  SendSocket socket;
  socket.tcp =
      (domain == AF_INET || domain == AF_INET6) && protocol == IPPROTO_TCP;
  if (!socket.tcp && !allow_non_tcp) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd, " is a stream socket of family ", domain, " and protocol ",
        protocol,
        ", not TCP; set ConnectionOptions::allow_non_tcp to send on it by "
        "copy"));
  }
  sockaddr_storage peer;
  len = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fd ", fd, " is not connected (", std::strerror(errno), ")"));
  }
  uint64_t cookie = 0;
  len = sizeof(cookie);
  if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0) {
    socket.key = {~uint64_t{0}, cookie};
    return socket;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("fd ", fd, ": fstat failed (", std::strerror(errno), ")"));
  }
  socket.key = {st.st_dev, st.st_ino};
  return socket;
}

}  // namespace zcplan
