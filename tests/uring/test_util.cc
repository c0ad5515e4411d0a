#include "tests/uring/test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"

namespace zcplan {

std::string KernelRelease() {
  struct utsname u;
  return uname(&u) == 0 ? std::string(u.release) : std::string("?");
}

std::string IoUringSkipReason(const absl::Status& status) {
  std::ifstream in("/proc/sys/kernel/io_uring_disabled");
  std::string sysctl;
  if (!(in >> sysctl)) sysctl = "absent";
  return absl::StrCat("io_uring unavailable on kernel ", KernelRelease(),
                      " (kernel.io_uring_disabled=", sysctl,
                      "): ", status.ToString());
}

TcpPair::TcpPair(TcpPair&& other) noexcept
    : client(std::exchange(other.client, -1)),
      server(std::exchange(other.server, -1)) {}

TcpPair& TcpPair::operator=(TcpPair&& other) noexcept {
  if (this != &other) {
    if (client >= 0) close(client);
    if (server >= 0) close(server);
    client = std::exchange(other.client, -1);
    server = std::exchange(other.server, -1);
  }
  return *this;
}

TcpPair::~TcpPair() {
  if (client >= 0) close(client);
  if (server >= 0) close(server);
}

absl::StatusOr<TcpPair> MakeTcpPair(int sndbuf, int rcvbuf) {
  auto fail = [](const char* what) {
    return absl::ErrnoToStatus(errno, absl::StrCat("MakeTcpPair: ", what));
  };
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener < 0) return fail("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  TcpPair pair;
  if (rcvbuf > 0 && setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
                               sizeof(rcvbuf)) != 0) {
    close(listener);
    return fail("SO_RCVBUF");
  }
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 1) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(listener);
    return fail("bind/listen");
  }
  pair.client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (pair.client < 0) {
    close(listener);
    return fail("socket");
  }
  if (sndbuf > 0 && setsockopt(pair.client, SOL_SOCKET, SO_SNDBUF, &sndbuf,
                               sizeof(sndbuf)) != 0) {
    close(listener);
    return fail("SO_SNDBUF");
  }
  if (connect(pair.client, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    close(listener);
    return fail("connect");
  }
  pair.server = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  close(listener);
  if (pair.server < 0) return fail("accept");
  int one = 1;
  setsockopt(pair.client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return pair;
}

uint64_t TokenLedger::Expect(ConnectionId connection, void* data,
                             size_t length) {
  const uint64_t token = next_token_++;
  Entry& e = entries_[token];
  e.connection = connection;
  e.data = static_cast<unsigned char*>(data);
  e.length = length;
  return token;
}

void TokenLedger::Forget(uint64_t token) { entries_.erase(token); }

ReleaseCallback TokenLedger::callback() {
  return [this](ConnectionId connection, uint64_t token,
                const absl::Status& status) {
    auto it = entries_.find(token);
    if (it == entries_.end()) {
      problems_.push_back(absl::StrCat("unknown token ", token, " released"));
      return;
    }
    Entry& e = it->second;
    ++released_;
    if (!status.ok()) ++failed_;
    if (++e.releases > 1) {
      problems_.push_back(
          absl::StrCat("token ", token, " released ", e.releases, " times"));
    }
    if (connection != e.connection) {
      problems_.push_back(
          absl::StrCat("token ", token, " released on the wrong connection"));
    }
    e.status = status;
    // A caller keeps memory the kernel may still read; everything else it
    // may reuse at once, which the poison stands for.
    if (KernelMayStillRead(status)) {
      ++kernel_may_read_;
    } else if (poison_ && e.data != nullptr) {
      std::memset(e.data, 0xEE, e.length);
    }
  };
}

ReleaseBatchCallback TokenLedger::batch_callback() {
  return [this, one = callback()](ConnectionId connection,
                                  absl::Span<const uint64_t> tokens,
                                  const absl::Status& status) {
    ++batches_;
    if (tokens.empty()) problems_.push_back("empty batch released");
    for (uint64_t token : tokens) one(connection, token, status);
  };
}

absl::Status TokenLedger::CheckAllReleasedOnce() const {
  std::vector<std::string> problems = problems_;
  for (const auto& [token, e] : entries_) {
    if (e.releases == 0) {
      problems.push_back(absl::StrCat("token ", token, " never released"));
    }
  }
  if (problems.empty()) return absl::OkStatus();
  std::string message = absl::StrCat(problems.size(), " ledger problem(s):");
  for (size_t i = 0; i < problems.size() && i < 10; ++i) {
    absl::StrAppend(&message, " ", problems[i], ";");
  }
  return absl::InternalError(message);
}

const TokenLedger::Entry* TokenLedger::Find(uint64_t token) const {
  auto it = entries_.find(token);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace zcplan
