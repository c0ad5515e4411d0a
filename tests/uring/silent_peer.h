// SPDX-License-Identifier: Apache-2.0
// A TCP peer for tests of stalled connections: a listener on 127.0.0.1 with a
// small receive buffer whose connections are accepted and never read, so a
// sender to it stalls after a few hundred KB.
//
// Thread safety: used from one thread (the optional accepting thread is
// internal).

#ifndef ZCPLAN_TESTS_URING_SILENT_PEER_H_
#define ZCPLAN_TESTS_URING_SILENT_PEER_H_

#include <string>
#include <thread>
#include <vector>

namespace zcplan {

class SilentPeer {
 public:
  // Listens on 127.0.0.1, an ephemeral port; `address()` is empty if that
  // failed. With `accept_in_background`, a thread accepts every connection
  // (and holds it, unread, until destruction); otherwise call `AcceptNow`.
  explicit SilentPeer(bool accept_in_background = false);
  ~SilentPeer();
  SilentPeer(const SilentPeer&) = delete;
  SilentPeer& operator=(const SilentPeer&) = delete;

  // "127.0.0.1:PORT".
  const std::string& address() const { return address_; }

  // Accepts a connection whose connect has already returned, without
  // waiting. Returns its fd (owned by this object) or -1.
  int AcceptNow();

  // Reads the connection `AcceptNow` returned until it ends, discarding the
  // data: 0 for an orderly end (FIN), else the errno (ECONNRESET for a
  // reset; ETIMEDOUT when nothing came for 10 s).
  int DrainAccepted();

 private:
  int listener_ = -1;
  std::string address_;
  std::thread thread_;
  std::vector<int> accepted_;
};

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_URING_SILENT_PEER_H_
