// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tests/uring/test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/types/span.h"

namespace zcplan {

std::string StreamDifference(uint64_t connection, const std::string& got,
                             const std::string& want) {
  if (got.size() != want.size()) {
    return absl::StrCat("connection ", connection, ": received ", got.size(),
                        " bytes, enqueued ", want.size());
  }
  const auto wrong = std::mismatch(got.begin(), got.end(), want.begin());
  if (wrong.first == got.end()) return "";
  return absl::StrCat("connection ", connection, ": first wrong byte at ",
                      wrong.first - got.begin());
}

std::string StreamPrefixDifference(uint64_t connection, const std::string& got,
                                   const std::string& want) {
  if (got.size() > want.size()) {
    return absl::StrCat("connection ", connection, ": received ", got.size(),
                        " bytes, more than the ", want.size(), " enqueued");
  }
  return StreamDifference(connection, got, want.substr(0, got.size()));
}

bool ConnectionsIdle(const Executor& executor,
                     const std::map<uint64_t, int>& connections) {
  for (const auto& [id, fd] : connections) {
    if (!executor.Idle(ConnectionId{id})) return false;
  }
  return true;
}

absl::Status PollUntilIdle(Executor& executor,
                           const std::map<uint64_t, int>& connections,
                           int rounds) {
  for (int i = 0; i < rounds; ++i) {
    absl::StatusOr<size_t> n = executor.Poll(absl::ZeroDuration());
    if (!n.ok()) return n.status();
    if (ConnectionsIdle(executor, connections)) return absl::OkStatus();
  }
  return absl::OkStatus();
}

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

absl::StatusOr<int> ListenLoopback(int backlog, sockaddr_in* addr) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "ListenLoopback: socket");
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(*addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(addr), len) != 0 ||
      listen(fd, backlog) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    const int error = errno;
    close(fd);
    return absl::ErrnoToStatus(error, "ListenLoopback: bind/listen");
  }
  return fd;
}

absl::StatusOr<uint16_t> ClosedLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::ErrnoToStatus(errno, "ClosedLoopbackPort: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  const bool ok =
      bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  const int error = errno;
  close(fd);
  if (!ok) return absl::ErrnoToStatus(error, "ClosedLoopbackPort: bind");
  return ntohs(addr.sin_port);
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

Stream::Stream(uint64_t id, std::vector<size_t> sizes)
    : id_(id), sizes_(std::move(sizes)) {
  offsets_.reserve(sizes_.size());
  for (size_t s : sizes_) {
    offsets_.push_back(total_);
    total_ += s;
  }
  tokens_.assign(sizes_.size(), 0);
  mapped_ = std::max<size_t>(total_, 1);
  void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    std::perror("mmap");
    std::abort();
  }
  data_ = static_cast<unsigned char*>(p);
  Pattern(id_).Fill(0, absl::MakeSpan(data_, total_));
}

absl::Status Stream::EnqueueNext(Executor& executor, TokenLedger& ledger,
                                 ConnectionId connection) {
  unsigned char* p = data_ + offsets_[next_];
  const uint64_t token = ledger.Expect(connection, p, sizes_[next_]);
  absl::Status s = executor.Enqueue(connection, p, sizes_[next_], token);
  if (!s.ok()) {
    ledger.Forget(token);
    return s;
  }
  tokens_[next_++] = token;
  return absl::OkStatus();
}

void StreamCheck::Feed(const unsigned char* p, size_t n) {
  if (first_mismatch < 0) {
    const size_t at =
        Pattern(stream).FindMismatch(received, absl::MakeConstSpan(p, n));
    if (at < n) first_mismatch = static_cast<int64_t>(received + at);
  }
  received += n;
}

std::string StreamCheck::Describe() const {
  return absl::StrCat(
      "stream ", stream, ": received ", received, " of ", expected,
      " bytes, first mismatch at ", first_mismatch, eof ? ", EOF" : "",
      error != 0 ? absl::StrCat(", ", std::strerror(error)) : std::string());
}

StreamCheck CheckFor(const Stream& s) {
  StreamCheck c;
  c.stream = s.id();
  c.expected = s.total();
  return c;
}

}  // namespace zcplan
