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
    // A full counter (it cannot be: one write) would still wake the poll.
    (void)!write(wake_.get(), &one, sizeof(one));
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
  // A receiver that gave up closes what it holds, so that the senders see it.
  listener_.Reset();
  owned_.clear();
  finished_.Notify();
}

absl::Status Receiver::Loop() {
  const absl::Time deadline = absl::Now() + options_.timeout;
  const size_t want = given_.empty() ? options_.connections : given_.size();
  std::vector<int> fds;
  absl::Time start = absl::Now();
  absl::Time last_end = start;
  auto add = [&](int fd, std::string peer) {
    if (connections_.empty()) start = last_end = absl::Now();
    fds.push_back(fd);
    connections_.push_back(ReceivedConnection());
    connections_.back().peer = std::move(peer);
  };
  for (int fd : given_) add(fd, "");
  auto limit = [&](size_t i) {
    return i < options_.byte_limits.size() ? options_.byte_limits[i] : kNoLimit;
  };
  size_t open = 0;
  auto end = [&](size_t i) {
    ReceivedConnection& c = connections_[i];
    c.ended = true;
    --open;
    last_end = absl::Now();
    if (options_.on_end) options_.on_end(i, c);
  };
  open = connections_.size();
  for (size_t i = 0; i < connections_.size(); ++i) {
    if (limit(i) == 0) end(i);
  }
  auto finish = [&](absl::Status status) {
    elapsed_ = connections_.empty() ? absl::ZeroDuration() : last_end - start;
    return status;
  };

  std::vector<unsigned char> buffer(std::max<size_t>(options_.read_size, 1));
  std::vector<pollfd> polled;
  std::vector<size_t> which;  // per pollfd: the connection, or SIZE_MAX
  constexpr size_t kListener = std::numeric_limits<size_t>::max();
  constexpr size_t kWake = kListener - 1;
  while (connections_.size() < want || open > 0) {
    if (stop_.load()) return finish(absl::CancelledError("stopped"));
    polled.clear();
    which.clear();
    polled.push_back({wake_.get(), POLLIN, 0});
    which.push_back(kWake);
    if (connections_.size() < want) {
      polled.push_back({listener_.get(), POLLIN, 0});
      which.push_back(kListener);
    }
    for (size_t i = 0; i < connections_.size(); ++i) {
      if (connections_[i].ended) continue;
      polled.push_back({fds[i], POLLIN, 0});
      which.push_back(i);
    }
    int timeout_ms = -1;
    if (options_.timeout != absl::InfiniteDuration()) {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        return finish(absl::DeadlineExceededError(
            absl::StrCat("receiver: not done within ",
                         absl::FormatDuration(options_.timeout))));
      }
      timeout_ms = static_cast<int>(std::min<int64_t>(
          absl::ToInt64Milliseconds(absl::Ceil(left, absl::Milliseconds(1))),
          60000));
    }
    if (poll(polled.data(), polled.size(), timeout_ms) < 0) {
      if (errno == EINTR) continue;
      return finish(Errno("poll"));
    }
    for (size_t k = 0; k < polled.size(); ++k) {
      if (polled[k].revents == 0 || which[k] == kWake) continue;
      if (which[k] == kListener) {
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
            continue;
          }
          return finish(Errno("accept"));
        }
        owned_.emplace_back(fd);
        if (options_.rcvbuf > 0) {
          setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &options_.rcvbuf,
                     sizeof(options_.rcvbuf));
        }
        add(fd, FormatAddress(from));
        ++open;
        if (connections_.size() == want) listener_.Reset();
        if (limit(connections_.size() - 1) == 0) end(connections_.size() - 1);
        continue;
      }
      const size_t i = which[k];
      ReceivedConnection& c = connections_[i];
      const size_t ask = static_cast<size_t>(
          std::min<uint64_t>(buffer.size(), limit(i) - c.bytes));
      const ssize_t n = recv(fds[i], buffer.data(), ask, MSG_DONTWAIT);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        if (n == 0) {
          c.eof = true;
        } else {
          c.error = errno;
        }
        end(i);
        continue;
      }
      const absl::Span<const unsigned char> got(buffer.data(),
                                                static_cast<size_t>(n));
      if (options_.check_pattern && c.mismatch_at < 0) {
        const Pattern pattern(i < options_.pattern_streams.size()
                                  ? options_.pattern_streams[i]
                                  : 0);
        const size_t at = pattern.FindMismatch(c.bytes, got);
        if (at < got.size()) {
          c.mismatch_at = static_cast<int64_t>(c.bytes + at);
          c.mismatch_got = got[at];
          c.mismatch_expected = pattern.ByteAt(c.bytes + at);
        }
      }
      if (options_.on_data) {
        if (absl::Status s = options_.on_data(i, got); !s.ok()) {
          return finish(s);
        }
      }
      c.bytes += got.size();
      if (c.bytes == limit(i)) end(i);
      if (options_.pause_after_read > absl::ZeroDuration()) {
        absl::SleepFor(options_.pause_after_read);
      }
    }
  }
  return finish(absl::OkStatus());
}

}  // namespace zcplan
