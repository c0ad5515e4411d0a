// SPDX-License-Identifier: Apache-2.0
// A stream buffer one thread writes (a tool run in-process on a thread) and
// another reads while it does: tests wait for a line to appear before they
// act (connect, send a signal).
//
// Thread safety: every member may be called from any thread.

#ifndef ZCPLAN_TESTS_TOOLS_SHARED_TEXT_H_
#define ZCPLAN_TESTS_TOOLS_SHARED_TEXT_H_

#include <streambuf>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace zcplan {

class SharedText : public std::streambuf {
 public:
  std::string text() const {
    absl::MutexLock lock(&mu_);
    return text_;
  }
  // The writer is finished: wakes every `WaitFor`.
  void MarkDone() {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  // Waits until the text contains `needle` or the writer is done or
  // `timeout` passes; returns whether the text contains `needle`.
  bool WaitFor(const std::string& needle, absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return done_ || absl::StrContains(text_, needle);
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), timeout);
    return absl::StrContains(text_, needle);
  }
  // Waits up to `timeout` for `MarkDone`; returns whether it came.
  bool WaitDone(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(&done_), timeout);
  }

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return 0;
    absl::MutexLock lock(&mu_);
    text_.push_back(traits_type::to_char_type(c));
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    absl::MutexLock lock(&mu_);
    text_.append(s, static_cast<size_t>(n));
    return n;
  }

 private:
  mutable absl::Mutex mu_;
  std::string text_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace zcplan

#endif  // ZCPLAN_TESTS_TOOLS_SHARED_TEXT_H_
