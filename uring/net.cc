#include "uring/net.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace zcplan {

absl::StatusOr<UniqueFd> ConnectTcp(const std::string& host,
                                    const std::string& port) {
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
    if (fd.get() >= 0 && connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      freeaddrinfo(list);
      return fd;
    }
    error = errno;
  }
  freeaddrinfo(list);
  const bool v6 = host.find(':') != std::string::npos;
  return absl::UnavailableError(
      absl::StrCat("cannot connect to ", v6 ? "[" : "", host, v6 ? "]" : "",
                   ":", port, ": ", std::strerror(error)));
}

absl::StatusOr<std::pair<std::string, std::string>> SplitHostPort(
    const std::string& text) {
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
      !absl::SimpleAtoi(port, &number) || number < 1 || number > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address '", text,
                     "': expected HOST:PORT, e.g. 127.0.0.1:9000 or "
                     "[::1]:9000"));
  }
  return std::make_pair(host, port);
}

}  // namespace zcplan
