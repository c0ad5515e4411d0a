// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace zcplan {

namespace {

std::string HostPort(const std::string& host, const std::string& port) {
  const bool v6 = host.find(':') != std::string::npos;
  return absl::StrCat(v6 ? "[" : "", host, v6 ? "]" : "", ":", port);
}

// Connects `fd` to `ai` without blocking past `deadline`. Returns 0 or an
// errno value; ETIMEDOUT for the deadline, ECANCELED for `stop`.
int ConnectOne(int fd, const addrinfo& ai, absl::Time deadline,
               const std::function<bool()>& stop) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return errno;
  if (connect(fd, ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS && errno != EINTR) return errno;
    for (;;) {
      if (stop != nullptr && stop()) return ECANCELED;
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return ETIMEDOUT;
      // Wake at least every 100 ms to ask `stop`.
      absl::Duration wait = left;
      if (stop != nullptr) wait = std::min(wait, absl::Milliseconds(100));
      const int wait_ms = wait == absl::InfiniteDuration()
                              ? -1
                              : static_cast<int>(absl::ToInt64Milliseconds(
                                    absl::Ceil(wait, absl::Milliseconds(1))));
      pollfd p = {fd, POLLOUT, 0};
      const int n = poll(&p, 1, wait_ms);
      if (n < 0 && errno != EINTR) return errno;
      if (n > 0) break;
    }
    int error = 0;
    socklen_t length = sizeof(error);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0) {
      return errno;
    }
    if (error != 0) return error;
  }
  if (fcntl(fd, F_SETFL, flags) != 0) return errno;
  return 0;
}

}  // namespace

absl::StatusOr<UniqueFd> ConnectTcp(const std::string& host,
                                    const std::string& port) {
  return ConnectTcp(host, port, absl::InfiniteDuration());
}

absl::StatusOr<UniqueFd> ConnectTcp(const std::string& host,
                                    const std::string& port,
                                    absl::Duration timeout,
                                    const std::function<bool()>& stop) {
  const absl::Time deadline = absl::Now() + timeout;
  addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &list);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  int error = 0;
  for (addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    error = fd.get() < 0 ? errno : ConnectOne(fd.get(), *ai, deadline, stop);
    if (error == 0) {
      freeaddrinfo(list);
      return fd;
    }
    if (error == ETIMEDOUT || error == ECANCELED) break;
  }
  freeaddrinfo(list);
  if (error == ECANCELED) {
    return absl::CancelledError(
        absl::StrCat("connecting to ", HostPort(host, port), ": stopped"));
  }
  if (error == ETIMEDOUT && timeout != absl::InfiniteDuration()) {
    return absl::DeadlineExceededError(
        absl::StrCat("cannot connect to ", HostPort(host, port),
                     ": no answer within ", absl::FormatDuration(timeout)));
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot connect to ", HostPort(host, port), ": ", std::strerror(error)));
}

bool PlausibleHost(absl::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  for (const char ch : host) {
    if (ch <= ' ' || ch > '~') return false;
  }
  return true;
}

absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(
    const std::string& text, uint32_t min_port) {
  std::string host;
  std::string port;
  if (!text.empty() && text[0] == '[') {
    const size_t close = text.find(']');
    if (close != std::string::npos && close + 1 < text.size() &&
        text[close + 1] == ':') {
      host = text.substr(1, close - 1);
      port = text.substr(close + 2);
    }
  } else if (const size_t colon = text.rfind(':');
             colon != std::string::npos && text.find(':') == colon) {
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  uint32_t number = 0;
  if (host.empty() || port.empty() ||
      port.find_first_not_of("0123456789") != std::string::npos ||
      !absl::SimpleAtoi(port, &number) || number < min_port || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", text, "': expected HOST:PORT (port ",
                     min_port, "..65535), e.g. 127.0.0.1:9000 or [::1]:9000"));
  }
  return std::make_pair(host, port);
}

std::string FormatAddress(const struct sockaddr_storage& addr) {
  char host[INET6_ADDRSTRLEN] = "?";
  if (addr.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const struct sockaddr_in&>(addr);
    inet_ntop(AF_INET, &a.sin_addr, host, sizeof(host));
    return absl::StrCat(host, ":", ntohs(a.sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const struct sockaddr_in6&>(addr);
    inet_ntop(AF_INET6, &a.sin6_addr, host, sizeof(host));
    return absl::StrCat("[", host, "]:", ntohs(a.sin6_port));
  }
  return "?";
}

}  // namespace zcplan
