// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/notification_budget.h"

#include <sys/resource.h>

#include "absl/strings/str_cat.h"

namespace zcplan {
namespace {

constexpr uint64_t kUnlimitedCap = uint64_t{64} << 20;

std::string Kib(uint64_t bytes) { return absl::StrCat(bytes / 1024, " KiB"); }

uint64_t HalfInPages(uint64_t bytes) {
  return bytes / 2 / kPageBytes * kPageBytes;
}

}  // namespace

NotificationBudget::NoRoom NotificationBudget::Decide(
    const BudgetAccount& account) const {
  if (!zero_copy_possible()) return NoRoom::kCopyAlways;
  // own >= total / holders, without the overflow of own * holders.
  const uint64_t holders = std::max<uint32_t>(holders_, 1);
  const uint64_t share = total_ / holders + (total_ % holders != 0 ? 1 : 0);
  if (account.bytes > 0 && account.bytes >= share) return NoRoom::kWaitForOwn;
  if (total_ > 0) return NoRoom::kCopy;
  return NoRoom::kSmallerOps;
}

absl::string_view NoRoomName(NotificationBudget::NoRoom outcome) {
  switch (outcome) {
    case NotificationBudget::NoRoom::kWaitForOwn:
      return "wait_for_own";
    case NotificationBudget::NoRoom::kCopy:
      return "copy";
    case NotificationBudget::NoRoom::kSmallerOps:
      return "smaller_ops";
    case NotificationBudget::NoRoom::kCopyAlways:
      return "copy_always";
  }
  return "unknown";
}

CapChoice ChooseNotificationCap(uint64_t configured, uint64_t memlock_limit,
                                bool memlock_charged, uint64_t ring_bytes,
                                uint64_t registered_bytes) {
  CapChoice choice;
  if (configured != 0) {
    choice.cap = configured;
    choice.description =
        absl::StrCat(Kib(configured),
                     ": set by ExecutorOptions::max_bytes_awaiting_"
                     "notification");
    return choice;
  }
  if (memlock_limit == RLIM_INFINITY) {
    choice.cap = kUnlimitedCap;
    choice.description =
        absl::StrCat(Kib(kUnlimitedCap), ": RLIMIT_MEMLOCK is unlimited");
    return choice;
  }
  if (memlock_charged) {
    // Saturating: what the ring and the buffers take cannot wrap past the
    // limit.
    const uint64_t used = ring_bytes > UINT64_MAX - registered_bytes
                              ? UINT64_MAX
                              : ring_bytes + registered_bytes;
    choice.cap = HalfInPages(memlock_limit > used ? memlock_limit - used : 0);
    choice.description = absl::StrCat(
        Kib(choice.cap), ": half of what RLIMIT_MEMLOCK (", Kib(memlock_limit),
        ") leaves after the ring (", Kib(ring_bytes),
        ") and registered buffers (", Kib(registered_bytes), ")");
  } else {
    choice.cap = HalfInPages(memlock_limit);
    choice.description = absl::StrCat(
        Kib(choice.cap), ": half of RLIMIT_MEMLOCK (", Kib(memlock_limit),
        "); this process has CAP_IPC_LOCK, so the kernel charges it nothing "
        "and the cap only bounds what zero-copy sends pin");
  }
  if (choice.cap < 3 * kPageBytes) {
    absl::StrAppend(&choice.description,
                    "; under 3 pages, so zero-copy sends are not used (raise "
                    "ulimit -l, or set max_bytes_awaiting_notification)");
  }
  return choice;
}

uint64_t MemlockSoftLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return RLIM_INFINITY;
  return limit.rlim_cur;
}

}  // namespace zcplan
