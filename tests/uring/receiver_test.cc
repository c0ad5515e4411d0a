// SPDX-License-Identifier: Apache-2.0
// The loopback receiver: counts, pattern checks, limits, callbacks and every
// way it ends (all closed, a failed accept, a callback's error, the timeout,
// Stop). Waits are bounded; nothing asserts on timing.

#include "zcplan/uring/receiver.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "zcplan/uring/net.h"
#include "zcplan/uring/pattern.h"

namespace zcplan {
namespace {

constexpr absl::Duration kHangGuard = absl::Seconds(60);

UniqueFd Connect(const Receiver& r) {
  absl::StatusOr<UniqueFd> fd = ConnectTcp("127.0.0.1", r.port(), kHangGuard);
  EXPECT_TRUE(fd.ok()) << fd.status();
  return fd.ok() ? *std::move(fd) : UniqueFd();
}

// An accept_fault that fails accept number `n` with `error`, once
// `*connected` is notified. A receiver that gives up closes its listener,
// which resets the connections still in the backlog; the accept can fail as
// soon as the kernel has finished the handshake, before the test's Connect
// has looked at its socket, and a Connect that runs late then sees the reset
// ("Connection reset by peer") instead of its connection. The test notifies
// `*connected` once its Connect has returned; `*connected` must outlive the
// receiver.
std::function<int(size_t)> FailAcceptOnceConnected(
    size_t n, int error, absl::Notification* connected) {
  return [n, error, connected](size_t accept) {
    if (accept != n) return 0;
    connected->WaitForNotificationWithTimeout(kHangGuard);
    return error;
  };
}

void SendAll(int fd, const std::vector<unsigned char>& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    ASSERT_GT(n, 0) << errno;
    done += static_cast<size_t>(n);
  }
}

std::vector<unsigned char> PatternBytes(uint64_t stream, size_t n) {
  std::vector<unsigned char> v(n);
  Pattern(stream).Fill(0, absl::MakeSpan(v));
  return v;
}

TEST(ReceiverTest, CountsEachConnectionAndChecksItsStream) {
  ReceiverOptions options;
  options.connections = 2;
  options.check_pattern = true;
  options.pattern_streams = {0, 7};
  options.timeout = kHangGuard;
  std::vector<std::string> ends;
  options.on_end = [&ends](size_t i, const ReceivedConnection& c) {
    ends.push_back(absl::StrCat(i, ":", c.bytes, c.eof ? " eof" : ""));
  };
  absl::StatusOr<std::unique_ptr<Receiver>> r = Receiver::Listen(options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->address(), absl::StrCat("127.0.0.1:", (*r)->port()));
  {
    UniqueFd a = Connect(**r);
    UniqueFd b = Connect(**r);
    SendAll(a.get(), PatternBytes(0, 3 << 20));
    std::vector<unsigned char> bad = PatternBytes(7, 100000);
    bad[76543] ^= 1;
    SendAll(b.get(), bad);
  }
  ASSERT_TRUE((*r)->Join().ok()) << (*r)->status();
  const auto& c = (*r)->connections();
  ASSERT_EQ(c.size(), 2u);
  // Accept order is connect order here: a listen backlog is FIFO.
  EXPECT_EQ(c[0].bytes, uint64_t{3} << 20);
  EXPECT_EQ(c[0].mismatch_at, -1);
  EXPECT_TRUE(c[0].eof);
  EXPECT_EQ(c[1].bytes, 100000u);
  EXPECT_EQ(c[1].mismatch_at, 76543);
  EXPECT_EQ(c[1].mismatch_expected, Pattern(7).ByteAt(76543));
  EXPECT_EQ(c[1].mismatch_got, Pattern(7).ByteAt(76543) ^ 1);
  EXPECT_EQ((*r)->total_bytes(), (uint64_t{3} << 20) + 100000);
  EXPECT_EQ(ends.size(), 2u);
  EXPECT_TRUE(absl::StartsWith(c[0].peer, "127.0.0.1:")) << c[0].peer;
}

TEST(ReceiverTest, SocketsWithByteLimitsNeedNotClose) {
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd mine(pair[0]), theirs(pair[1]);
  ReceiverOptions options;
  options.byte_limits = {5000};
  options.read_size = 333;  // reads never run past the limit
  options.check_pattern = true;
  options.timeout = kHangGuard;
  uint64_t seen = 0;
  options.on_data = [&seen](size_t, absl::Span<const unsigned char> d) {
    seen += d.size();
    return absl::OkStatus();
  };
  absl::StatusOr<std::unique_ptr<Receiver>> r =
      Receiver::OnSockets({theirs.get()}, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->port(), "");
  // More than the limit; the socket stays open.
  SendAll(mine.get(), PatternBytes(0, 9000));
  ASSERT_TRUE((*r)->Join().ok()) << (*r)->status();
  ASSERT_EQ((*r)->connections().size(), 1u);
  EXPECT_EQ((*r)->connections()[0].bytes, 5000u);
  EXPECT_FALSE((*r)->connections()[0].eof);
  EXPECT_EQ((*r)->connections()[0].mismatch_at, -1);
  EXPECT_EQ(seen, 5000u);
  // The rest is still in the socket.
  char rest[8192];
  EXPECT_EQ(recv(theirs.get(), rest, sizeof(rest), MSG_DONTWAIT), 4000);
}

TEST(ReceiverTest, StopEndsAWaitingReceiver) {
  absl::StatusOr<std::unique_ptr<Receiver>> r =
      Receiver::Listen(ReceiverOptions());
  ASSERT_TRUE(r.ok());
  UniqueFd a = Connect(**r);
  SendAll(a.get(), PatternBytes(0, 1000));
  EXPECT_FALSE((*r)->WaitFor(absl::Milliseconds(50)));
  EXPECT_FALSE((*r)->done());
  const absl::Status s = (*r)->Stop();
  EXPECT_TRUE(absl::IsCancelled(s)) << s;
  EXPECT_TRUE((*r)->done());
  // Its socket was closed: the sender sees the end.
  char byte;
  pollfd p = {a.get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 60000), 1);
  EXPECT_LE(recv(a.get(), &byte, 1, 0), 0);
}

TEST(ReceiverTest, TimeoutEndsItWithDeadlineExceeded) {
  ReceiverOptions options;
  options.timeout = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<Receiver>> r = Receiver::Listen(options);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded((*r)->Join())) << (*r)->status();
  EXPECT_TRUE((*r)->connections().empty());
}

TEST(ReceiverTest, AFailedAcceptEndsItWithTheError) {
  absl::Notification second_connected;
  ReceiverOptions options;
  options.connections = 3;
  options.accept_fault = FailAcceptOnceConnected(2, EMFILE, &second_connected);
  absl::StatusOr<std::unique_ptr<Receiver>> r = Receiver::Listen(options);
  ASSERT_TRUE(r.ok());
  UniqueFd a = Connect(**r);
  UniqueFd b = Connect(**r);
  second_connected.Notify();
  const absl::Status s = (*r)->Join();
  EXPECT_EQ(s.message(), "accept: Too many open files") << s;
  EXPECT_EQ((*r)->connections().size(), 1u);
  // The sender whose connection was never accepted sees the end.
  char byte;
  pollfd p = {b.get(), POLLIN, 0};
  ASSERT_EQ(poll(&p, 1, 60000), 1);
  EXPECT_EQ(recv(b.get(), &byte, 1, MSG_DONTWAIT), -1);
  EXPECT_EQ(errno, ECONNRESET);
}

TEST(ReceiverTest, ACallbackErrorEndsIt) {
  ReceiverOptions options;
  options.on_data = [](size_t, absl::Span<const unsigned char>) {
    return absl::DataLossError("disk full");
  };
  absl::StatusOr<std::unique_ptr<Receiver>> r = Receiver::Listen(options);
  ASSERT_TRUE(r.ok());
  UniqueFd a = Connect(**r);
  SendAll(a.get(), PatternBytes(0, 10));
  EXPECT_EQ((*r)->Join(), absl::DataLossError("disk full"));
  // Nothing counted: the callback refused the bytes.
  EXPECT_EQ((*r)->total_bytes(), 0u);
}

TEST(ReceiverTest, AResetIsTheConnectionsError) {
  absl::StatusOr<std::unique_ptr<Receiver>> r =
      Receiver::Listen(ReceiverOptions());
  ASSERT_TRUE(r.ok());
  {
    UniqueFd a = Connect(**r);
    SendAll(a.get(), PatternBytes(0, 10));
    // SO_LINGER 0: close resets.
    const linger l = {1, 0};
    ASSERT_EQ(setsockopt(a.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l)), 0);
  }
  EXPECT_TRUE((*r)->Join().ok());
  ASSERT_EQ((*r)->connections().size(), 1u);
  const ReceivedConnection& c = (*r)->connections()[0];
  EXPECT_TRUE(c.ended);
  // The reset may arrive before or after the 10 bytes were read.
  EXPECT_TRUE(c.error == ECONNRESET || c.eof) << c.error;
}

// A connection that always has bytes waiting must not starve one that had
// none when it was last read: the second one's data and EOF are seen while
// the first is still busy.
TEST(ReceiverTest, ABusyConnectionDoesNotStarveAnIdleOne) {
  int busy_pair[2], idle_pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, busy_pair), 0);
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, idle_pair), 0);
  UniqueFd busy_mine(busy_pair[0]), busy_theirs(busy_pair[1]);
  UniqueFd idle_mine(idle_pair[0]), idle_theirs(idle_pair[1]);
  ReceiverOptions options;
  // A slow reader: the busy connection's sender keeps its socket full.
  options.read_size = 1024;
  options.pause_after_read = absl::Microseconds(200);
  options.timeout = kHangGuard;
  absl::Notification busy_flowing, idle_ended;
  int busy_reads = 0;
  options.on_data = [&](size_t i, absl::Span<const unsigned char>) {
    if (i == 0 && ++busy_reads == 4) busy_flowing.Notify();
    return absl::OkStatus();
  };
  options.on_end = [&](size_t i, const ReceivedConnection&) {
    if (i == 1) idle_ended.Notify();
  };
  std::atomic<bool> stop_sending{false};
  std::thread sender([&] {
    std::vector<unsigned char> chunk(64 * 1024, 'b');
    while (!stop_sending.load()) {
      pollfd p = {busy_mine.get(), POLLOUT, 0};
      if (poll(&p, 1, 10) != 1) continue;
      (void)send(busy_mine.get(), chunk.data(), chunk.size(),
                 MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    shutdown(busy_mine.get(), SHUT_WR);
  });
  absl::StatusOr<std::unique_ptr<Receiver>> r =
      Receiver::OnSockets({busy_theirs.get(), idle_theirs.get()}, options);
  ASSERT_TRUE(r.ok());
  // By now the idle connection was read once and found empty.
  EXPECT_TRUE(busy_flowing.WaitForNotificationWithTimeout(kHangGuard));
  SendAll(idle_mine.get(), PatternBytes(0, 1));
  shutdown(idle_mine.get(), SHUT_WR);
  const bool seen = idle_ended.WaitForNotificationWithTimeout(
      absl::Seconds(20));  // hang guard: starved, it is never seen
  stop_sending.store(true);
  sender.join();
  EXPECT_TRUE(seen) << "the idle connection's EOF was not read while the "
                       "busy one had data";
  EXPECT_TRUE((*r)->Join().ok()) << (*r)->status();
  ASSERT_EQ((*r)->connections().size(), 2u);
  EXPECT_EQ((*r)->connections()[1].bytes, 1u);
  EXPECT_TRUE((*r)->connections()[1].eof);
}

int OpenFds() {
  int n = 0;
  if (DIR* d = opendir("/proc/self/fd")) {
    while (readdir(d) != nullptr) ++n;
    closedir(d);
  }
  return n;
}

// Every way a receiver ends closes what it opened (listener, eventfd,
// accepted sockets) and leaves a given socket open.
TEST(ReceiverTest, EveryEndingClosesItsDescriptors) {
  const int before = OpenFds();
  {  // done: all connections closed
    absl::StatusOr<std::unique_ptr<Receiver>> r =
        Receiver::Listen(ReceiverOptions());
    ASSERT_TRUE(r.ok());
    { UniqueFd a = Connect(**r); }
    EXPECT_TRUE((*r)->Join().ok());
  }
  {  // stopped before any accept
    absl::StatusOr<std::unique_ptr<Receiver>> r =
        Receiver::Listen(ReceiverOptions());
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(absl::IsCancelled((*r)->Stop()));
  }
  {  // destroyed mid-read without Stop or Join, the peer never closing
    absl::StatusOr<std::unique_ptr<Receiver>> r =
        Receiver::Listen(ReceiverOptions());
    ASSERT_TRUE(r.ok());
    UniqueFd a = Connect(**r);
    SendAll(a.get(), PatternBytes(0, 1000));
    r->reset();
  }
  {  // a failed accept
    absl::Notification connected;
    ReceiverOptions options;
    options.accept_fault = FailAcceptOnceConnected(1, EMFILE, &connected);
    absl::StatusOr<std::unique_ptr<Receiver>> r = Receiver::Listen(options);
    ASSERT_TRUE(r.ok());
    UniqueFd a = Connect(**r);
    connected.Notify();
    EXPECT_FALSE((*r)->Join().ok());
  }
  int pair[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd mine(pair[0]), theirs(pair[1]);
  {  // given sockets stay open
    absl::StatusOr<std::unique_ptr<Receiver>> r =
        Receiver::OnSockets({theirs.get()}, ReceiverOptions());
    ASSERT_TRUE(r.ok());
    EXPECT_TRUE(absl::IsCancelled((*r)->Stop()));
  }
  EXPECT_EQ(fcntl(theirs.get(), F_GETFD), FD_CLOEXEC);
  mine.Reset();
  theirs.Reset();
  EXPECT_EQ(OpenFds(), before);
}

}  // namespace
}  // namespace zcplan
