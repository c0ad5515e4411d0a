#include "uring/net.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/uring/test_util.h"

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
  // The listening port is gone once the pair is made: a refused connect.
  absl::StatusOr<UniqueFd> refused = ConnectTcp("127.0.0.1", "1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "cannot connect to 127.0.0.1:1"))
      << refused.status();
  absl::StatusOr<UniqueFd> unresolved = ConnectTcp("no.such.host.invalid", "1");
  ASSERT_FALSE(unresolved.ok());
  EXPECT_TRUE(absl::StrContains(unresolved.status().message(),
                                "cannot resolve 'no.such.host.invalid'"))
      << unresolved.status();
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
