// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/socket_check.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "zcplan/tests/uring/test_util.h"

namespace zcplan {
namespace {

void ExpectRefused(const absl::StatusOr<SendSocket>& s,
                   const std::string& why) {
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument) << why;
  EXPECT_NE(s.status().message().find(why), std::string::npos) << s.status();
}

TEST(SocketCheckTest, ConnectedTcpIsTakenAndDupsShareItsKey) {
  absl::StatusOr<TcpPair> pair = MakeTcpPair();
  ASSERT_TRUE(pair.ok()) << pair.status();
  absl::StatusOr<SendSocket> client = CheckSendSocket(pair->client, false);
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_TRUE(client->tcp);
  const int dup_fd = dup(pair->client);
  ASSERT_GE(dup_fd, 0);
  absl::StatusOr<SendSocket> dup_socket = CheckSendSocket(dup_fd, false);
  ASSERT_TRUE(dup_socket.ok()) << dup_socket.status();
  EXPECT_EQ(dup_socket->key, client->key);
  absl::StatusOr<SendSocket> server = CheckSendSocket(pair->server, false);
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_NE(server->key, client->key);
  close(dup_fd);
}

TEST(SocketCheckTest, RefusesWhatItCannotSendOn) {
  ExpectRefused(CheckSendSocket(-1, false), "fd -1 is not a valid");
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  ExpectRefused(CheckSendSocket(pipe_fds[1], true), "is not a socket");
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  const int udp = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(udp, 0);
  ExpectRefused(CheckSendSocket(udp, true), "not a stream socket");
  close(udp);
  const int unconnected = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(unconnected, 0);
  ExpectRefused(CheckSendSocket(unconnected, false), "is not connected");
  close(unconnected);
}

TEST(SocketCheckTest, NonTcpStreamOnlyWhenAllowed) {
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  ExpectRefused(CheckSendSocket(fds[0], false), "allow_non_tcp");
  absl::StatusOr<SendSocket> allowed = CheckSendSocket(fds[0], true);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_FALSE(allowed->tcp);
  close(fds[0]);
  close(fds[1]);
}

}  // namespace
}  // namespace zcplan
