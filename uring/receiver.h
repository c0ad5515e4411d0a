// SPDX-License-Identifier: Apache-2.0
// A plain TCP receiver on a thread of its own, for the tools, benchmarks and
// tests that need the other end of a connection in the same process: it
// accepts connections on a listener (its own on 127.0.0.1, or one given) or
// reads sockets already connected, with plain recv, counts the bytes of each
// connection and can check them against the pattern (uring/pattern.h) or
// hand them to a callback. No io_uring: what it measures is the sender's.
//
// Thread safety: a `Receiver` is made, stopped and joined from one thread;
// `done()` and `WaitFor()` may be called from any. The callbacks in
// `ReceiverOptions` run on the receiver's thread, one at a time.

#ifndef ZCPLAN_URING_RECEIVER_H_
#define ZCPLAN_URING_RECEIVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "zcplan/uring/net.h"

namespace zcplan {

// What one connection carried, as far as the receiver read it.
struct ReceivedConnection {
  std::string peer;    // "HOST:PORT" of an accepted connection; "" for a socket
                       // given to `Receiver::OnSockets`
  uint64_t bytes = 0;  // bytes read
  bool eof = false;    // the peer closed it (recv returned 0)
  int error = 0;       // errno of the recv that failed, or 0
  bool ended = false;  // EOF, error or its byte limit reached
  // With `check_pattern`: the stream offset of the first byte that differs
  // from the pattern, or -1; then the byte read and the byte expected.
  int64_t mismatch_at = -1;
  unsigned char mismatch_got = 0;
  unsigned char mismatch_expected = 0;
};

struct ReceiverOptions {
  // Connections to accept from a listener; when all of them have ended the
  // receiver is done. (For `OnSockets`, the sockets given.)
  uint32_t connections = 1;
  // The most bytes one recv asks for.
  size_t read_size = 256 * 1024;
  // Check connection i (in accept order) against Pattern(pattern_streams[i]),
  // stream 0 where i is past the end (every connection of zcsend carries
  // stream 0 from its first byte). A mismatch is reported, not an error: the
  // connection is still read and counted.
  bool check_pattern = false;
  std::vector<uint64_t> pattern_streams;
  // Connection i has ended after byte_limits[i] bytes (it is not read
  // further and need not be closed); where i is past the end, at EOF.
  std::vector<uint64_t> byte_limits;
  // SO_RCVBUF of each accepted socket; 0 leaves the kernel's.
  int rcvbuf = 0;
  // The receiver gives up with DeadlineExceeded when not done by then.
  absl::Duration timeout = absl::InfiniteDuration();
  // Sleeps this long after each read: a slow reader, for tests.
  absl::Duration pause_after_read = absl::ZeroDuration();
  // Runs first on the receiver's thread (to pin it to a CPU, say).
  std::function<void()> on_start;
  // Each piece read, before it is counted; an error ends the receiver with
  // that status.
  std::function<absl::Status(size_t connection,
                             absl::Span<const unsigned char> data)>
      on_data;
  // Each connection's end (EOF, a recv error or its byte limit), in the
  // order they happen.
  std::function<void(size_t connection, const ReceivedConnection&)> on_end;
  // Test hook: when it returns an errno for accept number n (1-based), that
  // accept fails with it instead of being made (the connection stays in the
  // backlog, as with EMFILE).
  std::function<int(size_t n)> accept_fault;
};

class Receiver {
 public:
  // Listens on 127.0.0.1 on a port the kernel picks (see `port()`) and
  // starts the thread. Errors: Unavailable naming the call that failed.
  static absl::StatusOr<std::unique_ptr<Receiver>> Listen(
      ReceiverOptions options);
  // Accepts on `listener`, a listening TCP socket, which it owns from now.
  static absl::StatusOr<std::unique_ptr<Receiver>> OnListener(
      UniqueFd listener, ReceiverOptions options);
  // Reads `sockets`, connected and still owned by the caller: they must stay
  // open until the receiver is joined. `options.connections` is ignored.
  static absl::StatusOr<std::unique_ptr<Receiver>> OnSockets(
      std::vector<int> sockets, ReceiverOptions options);

  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;
  // Stops and joins the thread.
  ~Receiver();

  // The listener's port ("" for `OnSockets`) and "127.0.0.1:PORT"-style
  // address, valid from the start.
  const std::string& port() const { return port_; }
  const std::string& address() const { return address_; }

  // True once the thread has ended (every connection ended, a failure,
  // the timeout or `Stop`); from then on the results below may be read
  // from any thread, even before the join.
  bool done() const { return finished_.HasBeenNotified(); }
  // Waits up to `timeout` for the thread to end on its own.
  bool WaitFor(absl::Duration timeout) const {
    return finished_.WaitForNotificationWithTimeout(timeout);
  }

  // Waits for the thread to end on its own (no bound but `timeout` in the
  // options) and returns `status()`.
  absl::Status Join();
  // Asks the thread to stop now and joins it: bounded, because the thread
  // waits only in poll, which the request wakes (plus one callback or
  // `pause_after_read`). A receiver stopped before it was done has status
  // Cancelled "stopped".
  absl::Status Stop();

  // After the thread ended: OK, or what ended the receiver early: a failed
  // accept ("accept: Too many open files") or poll, an `on_data` error, the
  // timeout (DeadlineExceeded), `Stop` (Cancelled). Connection errors and
  // pattern mismatches are the connections' own (below).
  const absl::Status& status() const { return status_; }
  // The connections in accept (or given) order; only those accepted.
  const std::vector<ReceivedConnection>& connections() const {
    return connections_;
  }
  uint64_t total_bytes() const;
  // From the first accept (the start, for `OnSockets`) to the last end.
  absl::Duration elapsed() const { return elapsed_; }

 private:
  Receiver(UniqueFd listener, std::vector<int> sockets,
           ReceiverOptions options);
  absl::Status Start();
  void Run();
  absl::Status Loop();
  // The parts of `Loop`, on the thread.
  uint64_t Limit(size_t i) const;
  void Add(int fd, std::string peer);
  void End(size_t i);
  absl::Status Accept();
  absl::Status Read(size_t i, absl::Span<unsigned char> buffer);

  const ReceiverOptions options_;
  UniqueFd listener_;
  UniqueFd wake_;  // an eventfd that `Stop` writes
  std::vector<int> given_;
  std::vector<UniqueFd> owned_;  // the accepted sockets
  std::string port_;
  std::string address_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  absl::Notification finished_;
  // The thread's; read by others after `finished_`.
  absl::Status status_;
  std::vector<ReceivedConnection> connections_;
  absl::Duration elapsed_;
  std::vector<int> fds_;        // per connection
  std::vector<bool> readable_;  // per connection: may have bytes to read
  size_t open_ = 0;             // connections not ended
  absl::Time start_;
  absl::Time last_end_;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_RECEIVER_H_
