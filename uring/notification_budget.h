// SPDX-License-Identifier: Apache-2.0
// The notification-bytes budget: how many bytes unregistered zero-copy sends
// may hold awaiting notification over one ring, and what a connection whose
// next zero-copy op does not fit should do.
//
// Each connection owns a `BudgetAccount`; the ring's `NotificationBudget`
// keeps the total over all accounts. Bytes are counted as the kernel charges
// them to RLIMIT_MEMLOCK (`MemlockCharge` in uring/memlock.h): `Charge` when
// an op is prepared, `Uncharge` with its notification. The per-connection
// figure lives only in the account and the total only in the budget.
//
// Ownership: the budget keeps no pointer to an account; the caller passes the
// same account to `Charge` and `Uncharge`. Uncharge every byte of an account
// before dropping it, or the total keeps them for ever.
//
// Fairness: a connection whose op finds no room waits for its own
// notifications only while it holds at least its share (the mean over the
// accounts holding any) of the total; below that, others hold the room
// (perhaps a peer that stopped reading, whose notifications may never come),
// and it sends by copy. So a stalled peer never slows the other connections.
//
// Thread safety: none; use a budget and its accounts from one thread.

#ifndef ZCPLAN_URING_NOTIFICATION_BUDGET_H_
#define ZCPLAN_URING_NOTIFICATION_BUDGET_H_

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "zcplan/uring/memlock.h"

namespace zcplan {

// One connection's bytes awaiting notification. Change it only through
// `NotificationBudget::Charge` and `Uncharge`.
struct BudgetAccount {
  uint64_t bytes = 0;  // now
  uint64_t peak = 0;   // highest seen
};

class NotificationBudget {
 public:
  // `cap` in bytes; under 3 pages zero-copy is not usable (0: never).
  explicit NotificationBudget(uint64_t cap = 0) : cap_(cap) {}

  // Changes the cap; bytes already charged stay (the total may then be over
  // it, and `room` is 0 until enough are uncharged).
  void set_cap(uint64_t cap) { cap_ = cap; }
  uint64_t cap() const { return cap_; }

  // True when one op can fit under the cap at all (cap of 3 pages or more).
  bool zero_copy_possible() const { return cap_ >= 3 * kPageBytes; }

  // Bytes charged now, over all accounts.
  uint64_t total() const { return total_; }
  // The highest total seen.
  uint64_t peak() const { return peak_; }
  // Accounts holding any bytes.
  uint32_t holders() const { return holders_; }
  // What may still be charged under the cap: cap - total, 0 when over.
  uint64_t room() const { return cap_ > total_ ? cap_ - total_ : 0; }

  // Adds `bytes` to `account` and to the total. It does not check the cap:
  // the caller charges what it has checked against `room`.
  void Charge(BudgetAccount& account, uint64_t bytes) {
    if (account.bytes == 0 && bytes > 0) ++holders_;
    account.bytes += bytes;
    account.peak = std::max(account.peak, account.bytes);
    total_ += bytes;
    peak_ = std::max(peak_, total_);
  }

  // Takes `bytes` back from `account` and the total. Requires
  // `bytes <= account.bytes` (checked in debug builds).
  void Uncharge(BudgetAccount& account, uint64_t bytes) {
    assert(bytes <= account.bytes && bytes <= total_);
    account.bytes -= bytes;
    total_ -= bytes;
    if (account.bytes == 0 && bytes > 0) --holders_;
  }

  // What a connection whose next zero-copy op does not fit in `room` should
  // do.
  enum class NoRoom {
    // It holds at least its share (the mean over the holders) of the total:
    // its own notifications will make the room, so wait for them.
    kWaitForOwn,
    // Others hold the room: send this chain by copy.
    kCopy,
    // Nothing is awaiting notification, so one op alone is over the cap:
    // plan ops of at most `largest_op_bytes()`.
    kSmallerOps,
    // The cap is under 3 pages: zero-copy is not usable at all, send by copy.
    kCopyAlways,
  };
  NoRoom Decide(const BudgetAccount& account) const;

  // The most bytes one op may carry for its charge to fit under the cap (0
  // when `!zero_copy_possible()`).
  uint64_t largest_op_bytes() const { return LargestOpUnder(cap_); }

 private:
  uint64_t cap_ = 0;
  uint64_t total_ = 0;
  uint64_t peak_ = 0;
  uint32_t holders_ = 0;
};

// "wait_for_own", "copy", "smaller_ops" or "copy_always", for messages.
absl::string_view NoRoomName(NotificationBudget::NoRoom outcome);

// How the default cap was chosen.
struct CapChoice {
  uint64_t cap = 0;
  // e.g. "2040 KiB: half of what RLIMIT_MEMLOCK (8192 KiB) leaves after the
  // ring (28 KiB) and registered buffers (4096 KiB)".
  std::string description;
};

// Chooses the notification cap. Pure: the caller passes RLIMIT_MEMLOCK's soft
// limit (`MemlockSoftLimit`), RLIM_INFINITY for unlimited.
//   - `configured` != 0: that value.
//   - unlimited: 64 MiB.
//   - `memlock_charged` (the kernel charges this process): half of what the
//     limit leaves after the ring's own `ring_bytes` and `registered_bytes`
//     of registered buffers (all charged against the same limit), in whole
//     pages; 0 when they take all of it.
//   - not charged (CAP_IPC_LOCK): half the limit, in whole pages; the cap
//     then only bounds what zero-copy sends pin.
// A default cap under 3 pages turns zero-copy off; the description says so
// and how to fix it.
CapChoice ChooseNotificationCap(uint64_t configured, uint64_t memlock_limit,
                                bool memlock_charged, uint64_t ring_bytes,
                                uint64_t registered_bytes);

// RLIMIT_MEMLOCK's soft limit now (getrlimit); RLIM_INFINITY when unlimited
// or when getrlimit fails.
uint64_t MemlockSoftLimit();

}  // namespace zcplan

#endif  // ZCPLAN_URING_NOTIFICATION_BUDGET_H_
