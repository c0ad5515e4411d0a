// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "zcplan/tests/uring/test_util.h"

namespace zcplan {
namespace {

TEST(SplitHostPortTest, AcceptsNamesIpv4AndBracketedIpv6) {
  using HostPort = std::pair<std::string, std::string>;
  EXPECT_EQ(*SplitHostPort("localhost:9000"), HostPort("localhost", "9000"));
  EXPECT_EQ(*SplitHostPort("10.0.0.1:1"), HostPort("10.0.0.1", "1"));
  EXPECT_EQ(*SplitHostPort("[::1]:65535"), HostPort("::1", "65535"));
}

TEST(SplitHostPortTest, RejectsWhatIsNotHostColonPort) {
  for (const char* bad :
       {"", "localhost", ":9000", "host:", "host:0", "host:65536", "host:9x",
        "::1:9000", "[::1]9000", "[::1]:", "host:-1"}) {
    const absl::Status s = SplitHostPort(bad).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StrContains(s.message(), std::string("'") + bad + "'"))
        << s;
  }
}

TEST(ConnectTcpTest, ConnectsAndNamesTheAddressWhenRefused) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  sockaddr_storage addr = {};
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(pair->server, reinterpret_cast<sockaddr*>(&addr), &len),
            0);
  // A port nobody listens on: a refused connect.
  absl::StatusOr<uint16_t> closed = ClosedLoopbackPort();
  ASSERT_TRUE(closed.ok()) << closed.status();
  const std::string port = absl::StrCat(*closed);
  absl::StatusOr<UniqueFd> refused = ConnectTcp("127.0.0.1", port);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "cannot connect to 127.0.0.1:" + port))
      << refused.status();
  absl::StatusOr<UniqueFd> unresolved = ConnectTcp("no.such.host.invalid", "1");
  ASSERT_FALSE(unresolved.ok());
  EXPECT_TRUE(absl::StrContains(unresolved.status().message(),
                                "cannot resolve 'no.such.host.invalid'"))
      << unresolved.status();
}

// A listener on 127.0.0.1 with listen(0) whose accept queue is full, so
// that a further SYN gets no answer; sets `*port`. False when the kernel
// kept completing connects (the test then skips).
bool MakeFullListener(UniqueFd* listener, std::vector<UniqueFd>* fillers,
                      std::string* port) {
  listener->Reset(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener->get() < 0 ||
      bind(listener->get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
          0 ||
      listen(listener->get(), 0) != 0 ||
      getsockname(listener->get(), reinterpret_cast<sockaddr*>(&addr), &len) !=
          0) {
    return false;
  }
  *port = std::to_string(ntohs(addr.sin_port));
  for (int i = 0; i < 8; ++i) {
    UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) !=
            0 &&
        errno != EINPROGRESS) {
      return false;
    }
    pollfd p = {fd.get(), POLLOUT, 0};
    const int n = poll(&p, 1, 200);
    fillers->push_back(std::move(fd));
    if (n == 0) return true;  // this SYN went unanswered: the queue is full
  }
  return false;
}

class FullBacklogTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!MakeFullListener(&listener_, &fillers_, &port_)) {
      GTEST_SKIP() << "could not fill a listen(0) backlog on 127.0.0.1";
    }
  }
  UniqueFd listener_;
  std::vector<UniqueFd> fillers_;
  std::string port_;
};

TEST_F(FullBacklogTest, ConnectGivesUpAfterTheTimeout) {
  const std::string& port = port_;
  absl::StatusOr<UniqueFd> fd =
      ConnectTcp("127.0.0.1", port, absl::Milliseconds(300));
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kDeadlineExceeded)
      << fd.status();
  EXPECT_TRUE(absl::StrContains(
      fd.status().message(),
      "cannot connect to 127.0.0.1:" + port + ": no answer within 300ms"))
      << fd.status();
}

TEST_F(FullBacklogTest, StopEndsAConnectThatGetsNoAnswer) {
  const std::string& port = port_;
  int asked = 0;
  absl::StatusOr<UniqueFd> fd =
      ConnectTcp("127.0.0.1", port, absl::InfiniteDuration(),
                 [&asked] { return ++asked >= 3; });
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), absl::StatusCode::kCancelled) << fd.status();
  EXPECT_EQ(asked, 3);
}

TEST(ConnectTcpTest, WithATimeoutConnectsAndReturnsABlockingSocket) {
  UniqueFd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(
      bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)),
      0);
  ASSERT_EQ(listen(listener.get(), 4), 0);
  ASSERT_EQ(
      getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len), 0);
  absl::StatusOr<UniqueFd> fd = ConnectTcp(
      "127.0.0.1", std::to_string(ntohs(addr.sin_port)), absl::Seconds(10));
  ASSERT_TRUE(fd.ok()) << fd.status();
  EXPECT_EQ(fcntl(fd->get(), F_GETFL) & O_NONBLOCK, 0);
}

TEST(UniqueFdTest, ClosesOnceAndMovesOwnership) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  close(fds[1]);
  {
    UniqueFd a(fds[0]);
    UniqueFd b(std::move(a));
    EXPECT_EQ(a.get(), -1);
    EXPECT_EQ(b.get(), fds[0]);
  }
  EXPECT_EQ(fcntl(fds[0], F_GETFD), -1) << "closed by the destructor";
}

}  // namespace
}  // namespace zcplan
