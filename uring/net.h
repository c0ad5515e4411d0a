// SPDX-License-Identifier: Apache-2.0
// Small socket helpers shared by the executor's tools and sweeps: an owning
// file descriptor, a TCP connect by name and socket addresses as text.
//
// Thread safety: `UniqueFd` is a plain value type; the functions are
// reentrant.

#ifndef ZCPLAN_URING_NET_H_
#define ZCPLAN_URING_NET_H_

#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace zcplan {

// Owns a file descriptor (-1: none) and closes it.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  // Closes the descriptor held, if any, and holds `fd` instead.
  void Reset(int fd = -1) {
    if (fd_ >= 0) close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// Connects a TCP socket to `host` (a name, an IPv4 or an IPv6 address) and
// `port`, trying each address the name resolves to. Errors: Unavailable
// with "cannot resolve 'HOST': ..." or "cannot connect to HOST:PORT: ...".
[[nodiscard]] absl::StatusOr<UniqueFd> ConnectTcp(const std::string& host,
                                                  const std::string& port);

// `ConnectTcp` bounded in time: each address gets at most what is left of
// `timeout` (a non-blocking connect and a poll; InfiniteDuration waits as
// long as the kernel does), and `stop` (when given) is asked about every
// 100 ms and on EINTR, so a signal handler that sets a flag ends the wait.
// The socket returned is blocking again. Errors as `ConnectTcp`, plus
// DeadlineExceeded "cannot connect to HOST:PORT: no answer within DUR" and
// Cancelled "connecting to HOST:PORT: stopped".
[[nodiscard]] absl::StatusOr<UniqueFd> ConnectTcp(
    const std::string& host, const std::string& port, absl::Duration timeout,
    const std::function<bool()>& stop = nullptr);

// Whether `host` can be a host name or address: 1..253 printable ASCII
// characters, no blank. (Whether it resolves is for getaddrinfo to say.)
bool PlausibleHost(absl::string_view host);

// Splits "HOST:PORT" or "[IPV6]:PORT" (port
// `min_port`..65535: 1 for a peer, 0 for a listening address, where 0 picks a
// free port). Errors: InvalidArgument quoting the text.
[[nodiscard]] absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(
    const std::string& text, uint32_t min_port = 1);

// "HOST:PORT" for an IPv4 address, "[HOST]:PORT" for IPv6, "?" otherwise.
std::string FormatAddress(const struct sockaddr_storage& addr);

}  // namespace zcplan

#endif  // ZCPLAN_URING_NET_H_
