// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/buffer_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {

absl::StatusOr<BufferPool> BufferPool::Create(uint32_t rings,
                                              uint64_t ring_bytes) {
  if (rings == 0 || rings > kMaxRings || ring_bytes == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a buffer pool needs 1..", kMaxRings, " rings of at least 1 byte (got ",
        rings, " of ", ring_bytes, ")"));
  }
  const uint64_t rounded = RoundUpToPage(ring_bytes);
  if (rounded < ring_bytes || rounded > UINT64_MAX / rings) {
    return absl::InvalidArgumentError("buffer pool size overflows");
  }
  void* p = mmap(nullptr, rounded * rings, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot map ", rounded * rings,
                     " bytes of buffers: ", std::strerror(errno)));
  }
  BufferPool pool;
  pool.memory_ = static_cast<unsigned char*>(p);
  pool.mapped_ = rounded * rings;
  pool.ring_bytes_ = rounded;
  pool.rings_.resize(rings);
  for (uint32_t i = 0; i < rings; ++i) {
    pool.rings_[i].base = pool.memory_ + uint64_t{i} * rounded;
  }
  return pool;
}

BufferPool::BufferPool(BufferPool&& other) noexcept
    : memory_(std::exchange(other.memory_, nullptr)),
      mapped_(std::exchange(other.mapped_, 0)),
      ring_bytes_(other.ring_bytes_),
      kept_(other.kept_),
      rings_(std::move(other.rings_)) {}

BufferPool& BufferPool::operator=(BufferPool&& other) noexcept {
  if (this != &other) {
    BufferPool old(std::move(*this));
    memory_ = std::exchange(other.memory_, nullptr);
    mapped_ = std::exchange(other.mapped_, 0);
    ring_bytes_ = other.ring_bytes_;
    kept_ = other.kept_;
    rings_ = std::move(other.rings_);
  }
  return *this;
}

BufferPool::~BufferPool() {
  if (memory_ != nullptr && !kept_) munmap(memory_, mapped_);
}

std::optional<BufferPool::Buffer> BufferPool::Acquire(uint32_t ring,
                                                      uint64_t length) {
  if (ring >= rings_.size() || length == 0 || length > ring_bytes_) {
    return std::nullopt;
  }
  Ring& r = rings_[ring];
  if (r.pieces.empty()) r.head = r.tail = 0;
  uint64_t start = r.head;
  if (start % ring_bytes_ + length > ring_bytes_) {
    start += ring_bytes_ - start % ring_bytes_;  // wrap to the next lap
  }
  if (start + length - r.tail > ring_bytes_) return std::nullopt;
  const uint64_t token = MakeToken(ring, r.first_seq + r.pieces.size());
  r.pieces.push_back({start, length, false});
  r.head = start + length;
  r.unreleased += length;
  return Buffer{r.base + start % ring_bytes_, length, token};
}

absl::StatusOr<BufferPool::Released> BufferPool::Release(uint64_t token) {
  const uint32_t ring = TokenRing(token);
  if (ring >= rings_.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("token ", token, " names ring ", ring, " of a pool of ",
                     rings_.size()));
  }
  Ring& r = rings_[ring];
  const uint64_t index = (TokenSeq(token) - r.first_seq) & kSeqMask;
  if (index >= r.pieces.size() || r.pieces[index].released) {
    return absl::NotFoundError(
        absl::StrCat("token ", token, " is not held by ring ", ring,
                     " (never handed out, or released already)"));
  }
  Ring::Piece& piece = r.pieces[index];
  piece.released = true;
  r.unreleased -= piece.length;
  const Released released{ring, piece.length};
  while (!r.pieces.empty() && r.pieces.front().released) {
    r.tail = r.pieces.front().start + r.pieces.front().length;
    r.pieces.pop_front();
    r.first_seq = (r.first_seq + 1) & kSeqMask;
  }
  return released;
}

bool BufferPool::empty() const {
  for (const Ring& r : rings_) {
    if (!r.pieces.empty()) return false;
  }
  return true;
}

}  // namespace zcplan
