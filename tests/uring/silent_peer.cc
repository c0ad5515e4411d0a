// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/uring/silent_peer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"

namespace zcplan {

SilentPeer::SilentPeer(bool accept_in_background) {
  listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // Inherited by accepted sockets: the window stays small.
  const int rcvbuf = 64 << 10;
  setsockopt(listener_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener_ < 0 ||
      bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener_, 4) != 0 ||
      getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return;
  }
  address_ = absl::StrCat("127.0.0.1:", ntohs(addr.sin_port));
  if (accept_in_background) {
    // shutdown() of the listener in the destructor ends the accept.
    thread_ = std::thread([this] {
      for (;;) {
        const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0 && errno == EINTR) continue;
        if (fd < 0) return;
        accepted_.push_back(fd);
      }
    });
  }
}

SilentPeer::~SilentPeer() {
  if (thread_.joinable()) {
    shutdown(listener_, SHUT_RDWR);
    thread_.join();
  }
  for (int fd : accepted_) close(fd);
  if (listener_ >= 0) close(listener_);
}

int SilentPeer::AcceptNow() {
  const int fd =
      accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd >= 0) accepted_.push_back(fd);
  return fd;
}

int SilentPeer::DrainAccepted() {
  if (accepted_.empty()) return EBADF;
  const int fd = accepted_.back();
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return errno;
    pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) return ETIMEDOUT;
  }
}

}  // namespace zcplan
