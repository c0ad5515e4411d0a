// SPDX-License-Identifier: Apache-2.0
// Buffers for Executor::Enqueue that are reused only after the executor
// released them: what every sender that refills its buffers needs.
//
// A pool is one anonymous mapping (page aligned, so it can be registered
// with Executor::RegisterBuffers) cut into `rings` equal rings, one per
// connection, say. Each ring hands out buffers in order, contiguous in its
// memory (a buffer that would cross the ring's end starts again at its
// beginning); a buffer's bytes are handed out again only once it and every
// buffer handed out before it on its ring were released, in any order.
// A buffer's token (the `user_data` of Enqueue) names its ring and its
// sequence number there: one encode/decode pair, MakeToken / TokenRing /
// TokenSeq.
//
// WARNING: a buffer released with KernelMayStillRead(status) may still be
// read by the kernel: call `KeepMapped()` so that the memory is never
// unmapped (and stop acquiring on that ring); unmapping it would let the next
// mapping's contents go out on the wire.
//
// Thread safety: none; use a pool from one thread (the executor's
// on_release runs on the thread that polls it).

#ifndef ZCPLAN_URING_BUFFER_POOL_H_
#define ZCPLAN_URING_BUFFER_POOL_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace zcplan {

class BufferPool {
 public:
  // A token: the ring in the bits above kSeqBits, the sequence number (mod
  // 2^kSeqBits) below.
  static constexpr int kSeqBits = 44;
  static constexpr uint64_t kSeqMask = (uint64_t{1} << kSeqBits) - 1;
  static constexpr uint32_t kMaxRings = uint32_t{1} << (64 - kSeqBits);

  // Requires ring < kMaxRings; `seq` is taken mod 2^kSeqBits.
  static constexpr uint64_t MakeToken(uint32_t ring, uint64_t seq) {
    return (uint64_t{ring} << kSeqBits) | (seq & kSeqMask);
  }
  static constexpr uint32_t TokenRing(uint64_t token) {
    return static_cast<uint32_t>(token >> kSeqBits);
  }
  static constexpr uint64_t TokenSeq(uint64_t token) {
    return token & kSeqMask;
  }

  // Maps `rings` rings of `ring_bytes` each (rounded up to whole pages).
  // Errors: InvalidArgument for 0 or more than kMaxRings rings or 0 bytes;
  // ResourceExhausted when the mapping fails.
  static absl::StatusOr<BufferPool> Create(uint32_t rings, uint64_t ring_bytes);

  BufferPool(BufferPool&& other) noexcept;
  BufferPool& operator=(BufferPool&& other) noexcept;
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  // Unmaps the memory unless `KeepMapped` was called.
  ~BufferPool();

  struct Buffer {
    unsigned char* data;
    uint64_t length;
    uint64_t token;
  };
  // The next `length` bytes (1 .. ring_bytes()) of `ring`, or nullopt when
  // they are not free yet (release some first) or `length` cannot fit.
  // The caller owns the bytes until it calls Release(token); a buffer whose
  // Enqueue failed is released at once.
  [[nodiscard]] std::optional<Buffer> Acquire(uint32_t ring, uint64_t length);

  struct Released {
    uint32_t ring;
    uint64_t length;
  };
  // Gives back the buffer of `token`. Errors (the pool is unchanged):
  // InvalidArgument for a token of a ring this pool does not have, NotFound
  // for one that is not held (never handed out, or released already).
  [[nodiscard]] absl::StatusOr<Released> Release(uint64_t token);

  uint32_t rings() const { return static_cast<uint32_t>(rings_.size()); }
  uint64_t ring_bytes() const { return ring_bytes_; }
  // Buffers of `ring` handed out and not yet reusable (released ones behind
  // an unreleased one count), and their unreleased bytes.
  size_t held(uint32_t ring) const { return rings_[ring].pieces.size(); }
  uint64_t unreleased_bytes(uint32_t ring) const {
    return rings_[ring].unreleased;
  }
  // True when no ring holds a buffer.
  bool empty() const;

  // The whole mapping, for Executor::RegisterBuffers.
  absl::Span<unsigned char> memory() const {
    return absl::MakeSpan(memory_, mapped_);
  }

  // Never unmaps the memory, not even on destruction (it stays mapped until
  // the process exits): for buffers the kernel may still read.
  void KeepMapped() { kept_ = true; }
  bool kept_mapped() const { return kept_; }

 private:
  struct Ring {
    unsigned char* base = nullptr;
    // Positions in the ring, counting laps: [tail, head) is held.
    uint64_t head = 0;
    uint64_t tail = 0;
    struct Piece {
      uint64_t start;
      uint64_t length;
      bool released;
    };
    std::deque<Piece> pieces;  // handed out, not yet reusable, in order
    uint64_t first_seq = 0;    // sequence number of pieces.front()
    uint64_t unreleased = 0;
  };

  BufferPool() = default;

  unsigned char* memory_ = nullptr;
  uint64_t mapped_ = 0;
  uint64_t ring_bytes_ = 0;
  bool kept_ = false;
  std::vector<Ring> rings_;
};

}  // namespace zcplan

#endif  // ZCPLAN_URING_BUFFER_POOL_H_
