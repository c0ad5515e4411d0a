// SPDX-License-Identifier: Apache-2.0
// A message checked once and sent many times: the buffers of a response an
// HTTP server sends again and again, a benchmark's message.
//
// `Executor::EnqueueMessage(connection, message, token)` queues the whole
// message as one buffer with one token: it checks nothing per buffer, copies
// nothing per buffer, and releases `token` once, when the kernel no longer
// references any of its bytes. The executor reads the message's iovec array
// (the SQEs point into it) and plans it once per set of plan options, not
// once per send.
//
// Ownership: `Create` copies the iovec array, not the memory it points at.
// The message is immutable; share it (`std::shared_ptr<const
// PreparedMessage>`) between connections and executors. Each `Enqueue`
// keeps a reference until it releases that enqueue's token.
//
//   WARNING: the memory the buffers point at is the caller's, as with any
//   enqueued buffer: do not write to, free or unmap it while any enqueue of
//   the message is unreleased (see executor.h).
//
// Errors: `Create` refuses an empty message, a buffer with a null base or a
// length outside 1..SSIZE_MAX, more than `kMaxBuffers` buffers, and a total
// above SSIZE_MAX bytes, naming the buffer and the limit.
//
// Thread safety: immutable after `Create`; any thread may read it.

#ifndef ZCPLAN_URING_PREPARED_MESSAGE_H_
#define ZCPLAN_URING_PREPARED_MESSAGE_H_

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace zcplan {

class PreparedMessage {
 public:
  // The most buffers one message may have (an op's first buffer index is
  // 32 bits).
  static constexpr size_t kMaxBuffers = size_t{1} << 31;

  // Copies `buffers` (in order) into a new message, after checking them.
  static absl::StatusOr<std::shared_ptr<const PreparedMessage>> Create(
      absl::Span<const iovec> buffers);

  PreparedMessage(const PreparedMessage&) = delete;
  PreparedMessage& operator=(const PreparedMessage&) = delete;

  // The buffers, as given to Create.
  absl::Span<const iovec> buffers() const { return iovs_; }
  size_t size() const { return iovs_.size(); }
  // The total length of the buffers.
  uint64_t bytes() const { return ends_.back(); }
  // The bytes of buffers [0, i); 0 <= i <= size().
  uint64_t BytesBefore(size_t i) const { return i == 0 ? 0 : ends_[i - 1]; }

  // The buffer that holds byte `offset` of the message (offset < bytes()),
  // and the offset into it. O(log size()).
  struct Position {
    size_t buffer;
    uint64_t offset;
  };
  Position Locate(uint64_t offset) const;

  // Unique among all messages this process creates: a key for caches of
  // what is derived from a message.
  uint64_t id() const { return id_; }

 private:
  PreparedMessage(std::vector<iovec> iovs, std::vector<uint64_t> ends,
                  uint64_t id)
      : iovs_(std::move(iovs)), ends_(std::move(ends)), id_(id) {}

  const std::vector<iovec> iovs_;
  // ends_[i]: the bytes of buffers [0, i].
  const std::vector<uint64_t> ends_;
  const uint64_t id_;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_PREPARED_MESSAGE_H_
