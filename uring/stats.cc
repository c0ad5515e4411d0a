// SPDX-License-Identifier: Apache-2.0
#include "zcplan/uring/stats.h"

#include <cstddef>

#include "absl/strings/str_cat.h"

namespace zcplan {
namespace {

using K = StatKind;

constexpr StatField kFields[] = {
    {"fixed_buffer_ops", &SendStats::fixed_buffer_ops, K::kCounter},
    {"chains", &SendStats::chains, K::kCounter},
    {"chains_resumed", &SendStats::chains_resumed, K::kCounter},
    {"short_sends", &SendStats::short_sends, K::kCounter},
    {"cancelled_ops", &SendStats::cancelled_ops, K::kCounter},
    {"retried_errors", &SendStats::retried_errors, K::kCounter},
    {"bytes_copied", &SendStats::bytes_copied, K::kCounter},
    {"bytes_zero_copy", &SendStats::bytes_zero_copy, K::kCounter},
    {"notifications", &SendStats::notifications, K::kCounter},
    {"copied_notifications", &SendStats::copied_notifications, K::kCounter},
    {"stray_notifications", &SendStats::stray_notifications, K::kCounter},
    {"fallbacks_enomem", &SendStats::fallbacks_enomem, K::kCounter},
    {"fallbacks_unsupported", &SendStats::fallbacks_unsupported, K::kCounter},
    {"cap_waits", &SendStats::cap_waits, K::kCounter},
    {"cap_copies", &SendStats::cap_copies, K::kCounter},
    {"enomem_pauses", &SendStats::enomem_pauses, K::kCounter},
    {"chains_zc_paused", &SendStats::chains_zc_paused, K::kCounter},
    {"buffers_enqueued", &SendStats::buffers_enqueued, K::kCounter},
    {"buffers_released", &SendStats::buffers_released, K::kCounter},
    {"buffers_released_failed", &SendStats::buffers_released_failed,
     K::kCounter},
    {"buffers_kernel_may_read", &SendStats::buffers_kernel_may_read,
     K::kCounter},
    {"connections_reset", &SendStats::connections_reset, K::kCounter},
    {"bytes_enqueued", &SendStats::bytes_enqueued, K::kCounter},
    {"bytes_awaiting_notification", &SendStats::bytes_awaiting_notification,
     K::kGauge},
    {"peak_bytes_awaiting_notification",
     &SendStats::peak_bytes_awaiting_notification, K::kPeak},
    {"adaptive_disabled", &SendStats::adaptive_disabled, K::kCounter},
    {"adaptive_retries", &SendStats::adaptive_retries, K::kCounter},
    {"gathered_ops", &SendStats::gathered_ops, K::kCounter},
    {"bytes_gathered", &SendStats::bytes_gathered, K::kCounter},
};

constexpr size_t kNumFields = sizeof(kFields) / sizeof(kFields[0]);

// A field added to SendStats without a row here (which FormatStats would then
// skip, as it once skipped buffers_enqueued and bytes_enqueued) fails this.
static_assert(sizeof(SendStats) ==
                  (kNumOpKinds + kNumFields) * sizeof(uint64_t),
              "every SendStats field but ops needs a row in kFields");

// So does a row listed twice in place of another's.
constexpr bool RowsDistinct() {
  for (size_t i = 0; i < kNumFields; ++i) {
    for (size_t j = i + 1; j < kNumFields; ++j) {
      if (kFields[i].field == kFields[j].field ||
          kFields[i].name == kFields[j].name) {
        return false;
      }
    }
  }
  return true;
}
static_assert(RowsDistinct(), "a SendStats field or name is in kFields twice");

}  // namespace

absl::Span<const StatField> SendStatsFields() { return kFields; }

void SendStats::Add(const SendStats& o) {
  for (int i = 0; i < kNumOpKinds; ++i) ops[i] += o.ops[i];
  // Counters and gauges add; so do peaks (sum of peaks: a bound, not the
  // peak of the sum).
  for (const StatField& f : kFields) this->*f.field += o.*f.field;
}

std::string FormatStats(const SendStats& s) {
  std::string out;
  auto add = [&out](absl::string_view name, uint64_t value) {
    if (value == 0) return;
    absl::StrAppend(&out, out.empty() ? "" : " ", name, "=", value);
  };
  for (int i = 0; i < kNumOpKinds; ++i) {
    add(OpKindName(static_cast<OpKind>(i)), s.ops[i]);
  }
  for (const StatField& f : kFields) add(f.name, s.*f.field);
  return out.empty() ? "(no activity)" : out;
}

}  // namespace zcplan
