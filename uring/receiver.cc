// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "zcplan/uring/pattern.h"

namespace zcplan {
namespace {

absl::Status Errno(absl::string_view what, int error = errno) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(error)));
}

constexpr uint64_t kNoLimit = std::numeric_limits<uint64_t>::max();

}  // namespace

Receiver::Receiver(UniqueFd listener, std::vector<int> sockets,
                   ReceiverOptions options)
    : options_(std::move(options)),
      listener_(std::move(listener)),
      given_(std::move(sockets)) {}

absl::StatusOr<std::unique_ptr<Receiver>> Receiver::Listen(
    ReceiverOptions options) {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listener.get() < 0 ||
      bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 ||
      listen(listener.get(), static_cast<int>(std::max<uint32_t>(
                                 options.connections, 16))) != 0) {
    return Errno("cannot listen on 127.0.0.1");
  }
  return OnListener(std::move(listener), std::move(options));
}

absl::StatusOr<std::unique_ptr<Receiver>> Receiver::OnListener(
    UniqueFd listener, ReceiverOptions options) {
  std::unique_ptr<Receiver> r(
      new Receiver(std::move(listener), {}, std::move(options)));
  sockaddr_storage local = {};
  socklen_t length = sizeof(local);
  if (getsockname(r->listener_.get(), reinterpret_cast<sockaddr*>(&local),
                  &length) != 0) {
    return Errno("getsockname");
  }
  r->address_ = FormatAddress(local);
  r->port_ = r->address_.substr(r->address_.rfind(':') + 1);
  if (absl::Status s = r->Start(); !s.ok()) return s;
  return r;
}

absl::StatusOr<std::unique_ptr<Receiver>> Receiver::OnSockets(
    std::vector<int> sockets, ReceiverOptions options) {
  options.connections = static_cast<uint32_t>(sockets.size());
  std::unique_ptr<Receiver> r(
      new Receiver(UniqueFd(), std::move(sockets), std::move(options)));
  if (absl::Status s = r->Start(); !s.ok()) return s;
  return r;
}

absl::Status Receiver::Start() {
  wake_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake_.get() < 0) return Errno("eventfd");
  thread_ = std::thread([this] { Run(); });
  return absl::OkStatus();
}

Receiver::~Receiver() { Stop().IgnoreError(); }

absl::Status Receiver::Join() {
  if (thread_.joinable()) thread_.join();
  return status_;
}

absl::Status Receiver::Stop() {
  if (thread_.joinable()) {
    stop_.store(true);
    const uint64_t one = 1;
    // Cannot fail: the counter holds far more than one.
    const ssize_t written = write(wake_.get(), &one, sizeof(one));
    (void)written;
  }
  return Join();
}

uint64_t Receiver::total_bytes() const {
  uint64_t total = 0;
  for (const ReceivedConnection& c : connections_) total += c.bytes;
  return total;
}

void Receiver::Run() {
  if (options_.on_start) options_.on_start();
  status_ = Loop();
  elapsed_ = connections_.empty() ? absl::ZeroDuration() : last_end_ - start_;
  // A receiver that gave up closes what it holds, so that the senders see it.
  listener_.Reset();
  owned_.clear();
  finished_.Notify();
}

uint64_t Receiver::Limit(size_t i) const {
  return i < options_.byte_limits.size() ? options_.byte_limits[i] : kNoLimit;
}

void Receiver::Add(int fd, std::string peer) {
  if (connections_.empty()) start_ = last_end_ = absl::Now();
  fds_.push_back(fd);
  readable_.push_back(false);
  connections_.emplace_back();
  connections_.back().peer = std::move(peer);
  ++open_;
  if (Limit(connections_.size() - 1) == 0) End(connections_.size() - 1);
}

void Receiver::End(size_t i) {
  ReceivedConnection& c = connections_[i];
  c.ended = true;
  readable_[i] = false;
  --open_;
  last_end_ = absl::Now();
  if (options_.on_end) options_.on_end(i, c);
}

absl::Status Receiver::Accept() {
  sockaddr_storage from = {};
  socklen_t from_length = sizeof(from);
  int fd = -1;
  const int fault = options_.accept_fault
                        ? options_.accept_fault(connections_.size() + 1)
                        : 0;
  if (fault != 0) {
    errno = fault;
  } else {
    fd = accept4(listener_.get(), reinterpret_cast<sockaddr*>(&from),
                 &from_length, SOCK_CLOEXEC);
  }
  if (fd < 0) {
    if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) {
      return absl::OkStatus();
    }
    return Errno("accept");
  }
  owned_.emplace_back(fd);
  if (options_.rcvbuf > 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options_.rcvbuf,
               sizeof(options_.rcvbuf));
  }
  Add(fd, FormatAddress(from));
  if (connections_.size() == options_.connections) listener_.Reset();
  return absl::OkStatus();
}

absl::Status Receiver::Read(size_t i, absl::Span<unsigned char> buffer) {
  ReceivedConnection& c = connections_[i];
  const size_t ask = static_cast<size_t>(
      std::min<uint64_t>(buffer.size(), Limit(i) - c.bytes));
  const ssize_t n = recv(fds_[i], buffer.data(), ask, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
    readable_[i] = errno == EINTR;
    return absl::OkStatus();
  }
  if (n <= 0) {
    if (n == 0) {
      c.eof = true;
    } else {
      c.error = errno;
    }
    End(i);
    return absl::OkStatus();
  }
  const absl::Span<const unsigned char> got(buffer.data(),
                                            static_cast<size_t>(n));
  if (options_.check_pattern && c.mismatch_at < 0) {
    const Pattern pattern(
        i < options_.pattern_streams.size() ? options_.pattern_streams[i] : 0);
    const size_t at = pattern.FindMismatch(c.bytes, got);
    if (at < got.size()) {
      c.mismatch_at = static_cast<int64_t>(c.bytes + at);
      c.mismatch_got = got[at];
      c.mismatch_expected = pattern.ByteAt(c.bytes + at);
    }
  }
  if (options_.on_data) {
    if (absl::Status s = options_.on_data(i, got); !s.ok()) return s;
  }
  c.bytes += got.size();
  if (c.bytes == Limit(i)) End(i);
  if (options_.pause_after_read > absl::ZeroDuration()) {
    absl::SleepFor(options_.pause_after_read);
  }
  return absl::OkStatus();
}

absl::Status Receiver::Loop() {
  const absl::Time deadline = absl::Now() + options_.timeout;
  start_ = last_end_ = absl::Now();
  for (int fd : given_) Add(fd, "");
  // Until told otherwise by a recv that finds nothing, a socket is assumed
  // to have more: a busy connection is read without a poll per recv.
  for (size_t i = 0; i < connections_.size(); ++i) {
    readable_[i] = !connections_[i].ended;
  }
  std::vector<unsigned char> buffer(std::max<size_t>(options_.read_size, 1));
  std::vector<pollfd> polled;
  std::vector<size_t> which;  // per pollfd: the connection, or a marker
  constexpr size_t kListener = std::numeric_limits<size_t>::max();
  constexpr size_t kWake = kListener - 1;
  while (connections_.size() < options_.connections || open_ > 0) {
    if (stop_.load()) return absl::CancelledError("stopped");
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("receiver: not done within ",
                       absl::FormatDuration(options_.timeout)));
    }
    const bool accepting = connections_.size() < options_.connections;
    bool busy = false;
    bool waiting = false;  // a connection to poll before it is read again
    for (size_t i = 0; i < connections_.size(); ++i) {
      busy = busy || readable_[i];
      waiting = waiting || (!readable_[i] && !connections_[i].ended);
    }
    // Polled (without waiting while one is busy) whenever a connection is
    // not known to be readable: one that always has bytes must not starve
    // the others.
    if (!busy || accepting || waiting) {
      polled.clear();
      which.clear();
      polled.push_back({wake_.get(), POLLIN, 0});
      which.push_back(kWake);
      if (accepting) {
        polled.push_back({listener_.get(), POLLIN, 0});
        which.push_back(kListener);
      }
      for (size_t i = 0; i < connections_.size(); ++i) {
        if (connections_[i].ended || readable_[i]) continue;
        polled.push_back({fds_[i], POLLIN, 0});
        which.push_back(i);
      }
      int timeout_ms = -1;
      if (busy) {
        timeout_ms = 0;
      } else if (options_.timeout != absl::InfiniteDuration()) {
        // At least 0: a deadline that passed since the check above must
        // not become poll's -1 (wait forever).
        timeout_ms = static_cast<int>(std::clamp<int64_t>(
            absl::ToInt64Milliseconds(
                absl::Ceil(deadline - absl::Now(), absl::Milliseconds(1))),
            0, 60000));
      }
      if (poll(polled.data(), polled.size(), timeout_ms) < 0) {
        if (errno == EINTR) continue;
        return Errno("poll");
      }
      for (size_t k = 0; k < polled.size(); ++k) {
        if (polled[k].revents == 0 || which[k] == kWake) continue;
        if (which[k] == kListener) {
          if (absl::Status s = Accept(); !s.ok()) return s;
        } else {
          readable_[which[k]] = true;
        }
      }
    }
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (!readable_[i]) continue;
      if (absl::Status s = Read(i, absl::MakeSpan(buffer)); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace zcplan
