// SPDX-License-Identifier: Apache-2.0
// Test helpers shared by the executor tests: loopback TCP pairs, a token
// ledger that checks every buffer is released exactly once, and patterned
// streams with a checker for what a receiver got.

#ifndef ZCPLAN_TESTS_URING_TEST_UTIL_H_
#define ZCPLAN_TESTS_URING_TEST_UTIL_H_

#include <netinet/in.h>
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zcplan/uring/executor.h"
#include "zcplan/uring/pattern.h"

namespace zcplan {

// What differs between the stream a (fake) socket of `connection` received
// and the one enqueued on it: "" when they are equal, else their sizes or
// the first wrong byte. `StreamPrefixDifference`: "" when `got` is a prefix
// of `want` (a connection that failed).
std::string StreamDifference(uint64_t connection, const std::string& got,
                             const std::string& want);
std::string StreamPrefixDifference(uint64_t connection, const std::string& got,
                                   const std::string& want);

// True when every connection of `connections` (their ids' values) is Idle.
bool ConnectionsIdle(const Executor& executor,
                     const std::map<uint64_t, int>& connections);

// Polls `executor` without waiting until every connection of `connections`
// (their ids' values) is Idle, at most `rounds` times: OK, or Poll's error.
absl::Status PollUntilIdle(Executor& executor,
                           const std::map<uint64_t, int>& connections,
                           int rounds);

// A connected loopback TCP pair. Closes both ends on destruction.
struct TcpPair {
  int client = -1;  // the end the executor sends on
  int server = -1;  // the accepted end a receiver reads
  TcpPair() = default;
  TcpPair(TcpPair&& other) noexcept;
  TcpPair& operator=(TcpPair&& other) noexcept;
  TcpPair(const TcpPair&) = delete;
  TcpPair& operator=(const TcpPair&) = delete;
  ~TcpPair();
};

// Makes a connected TCP pair on 127.0.0.1. `sndbuf` > 0 sets SO_SNDBUF on the
// client and `rcvbuf` > 0 SO_RCVBUF on the server before connecting.
absl::StatusOr<TcpPair> MakeTcpPair(int sndbuf = 0, int rcvbuf = 0);

// A TCP socket listening on 127.0.0.1 on a port of the kernel's choosing,
// written to `*addr` (for connect). The caller closes it.
absl::StatusOr<int> ListenLoopback(int backlog, struct sockaddr_in* addr);

// A port on 127.0.0.1 nobody listens on, for a connect that must be refused:
// one the kernel picked for a socket bound and closed at once (not a fixed
// one such as 1, which a machine may serve). Nothing holds it afterwards;
// only another program binding it in the meantime could make a connect
// succeed.
absl::StatusOr<uint16_t> ClosedLoopbackPort();

// Records releases; `callback()` is an `ExecutorOptions::on_release`.
// Each buffer is registered with `Expect` before it is enqueued; the release
// then overwrites ("poisons") the buffer's bytes when `poison` is set, as a
// caller reusing it would, so a zero-copy send that still reads it shows up
// as corrupted data. A release with `KernelMayStillRead(status)` is not
// poisoned: the caller must keep that memory.
class TokenLedger {
 public:
  struct Entry {
    ConnectionId connection;
    unsigned char* data = nullptr;
    size_t length = 0;
    int releases = 0;
    absl::Status status;
  };

  explicit TokenLedger(bool poison = true) : poison_(poison) {}

  // Registers a buffer that is about to be enqueued; returns its token.
  uint64_t Expect(ConnectionId connection, void* data, size_t length);
  // Forgets a token whose Enqueue failed (the executor did not take it).
  void Forget(uint64_t token);

  ReleaseCallback callback();
  // The same for ExecutorOptions::on_release_batch; also counts the calls.
  ReleaseBatchCallback batch_callback();
  size_t batches() const { return batches_; }

  // OK when every expected token was released exactly once and no unknown
  // token was released; otherwise a message naming the first few problems.
  absl::Status CheckAllReleasedOnce() const;
  // Tokens released so far (each counted once per release).
  size_t released() const { return released_; }
  size_t expected() const { return entries_.size(); }
  // Releases with a non-OK status.
  size_t failed() const { return failed_; }
  // Releases with `KernelMayStillRead(status)` (counted in `failed` too).
  size_t kernel_may_read() const { return kernel_may_read_; }
  const Entry* Find(uint64_t token) const;
  std::vector<std::string> problems() const { return problems_; }

 private:
  bool poison_;
  uint64_t next_token_ = 1;
  std::map<uint64_t, Entry> entries_;
  size_t released_ = 0;
  size_t failed_ = 0;
  size_t kernel_may_read_ = 0;
  size_t batches_ = 0;
  std::vector<std::string> problems_;
};

// The running kernel's release, e.g. "6.18.0"; "?" if unknown.
std::string KernelRelease();

// Why io_uring cannot be used here, for a GTEST_SKIP: the kernel release,
// the kernel.io_uring_disabled sysctl and `status` (the error that said so).
std::string IoUringSkipReason(const absl::Status& status);

// Byte `i` of stream `stream` of the pattern (uring/pattern.h).
inline unsigned char PatternByte(uint64_t stream, uint64_t i) {
  return Pattern(stream).ByteAt(i);
}

// Stream `id`: bytes PatternByte(id, 0..total) in one mmap'd arena (page
// aligned, so it can be registered), cut into consecutive buffers.
class Stream {
 public:
  Stream(uint64_t id, std::vector<size_t> sizes);
  ~Stream() { munmap(data_, mapped_); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  uint64_t id() const { return id_; }
  size_t total() const { return total_; }
  unsigned char* data() const { return data_; }
  size_t count() const { return sizes_.size(); }
  size_t size(size_t i) const { return sizes_[i]; }
  size_t enqueued() const { return next_; }
  bool done() const { return next_ == sizes_.size(); }
  // The token of buffer `i`, 0 until it is enqueued.
  uint64_t token(size_t i) const { return tokens_[i]; }

  // Enqueues the next buffer on `connection`, registered with `ledger`.
  absl::Status EnqueueNext(Executor& executor, TokenLedger& ledger,
                           ConnectionId connection);

 private:
  uint64_t id_;
  std::vector<size_t> sizes_;
  std::vector<size_t> offsets_;
  std::vector<uint64_t> tokens_;
  size_t total_ = 0;
  size_t mapped_ = 0;
  unsigned char* data_ = nullptr;
  size_t next_ = 0;
};

// Checks received bytes against stream `stream` of the pattern.
struct StreamCheck {
  uint64_t stream = 0;
  uint64_t expected = 0;  // the stream's length; reading stops there
  uint64_t received = 0;
  int64_t first_mismatch = -1;
  bool eof = false;
  int error = 0;

  void Feed(const unsigned char* p, size_t n);
  bool Finished() const { return received >= expected || eof || error != 0; }
  std::string Describe() const;
};

// A check for all of `s`.
StreamCheck CheckFor(const Stream& s);

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_URING_TEST_UTIL_H_
