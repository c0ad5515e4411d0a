// SPDX-License-Identifier: Apache-2.0
// SIGINT and SIGTERM as a request to stop, for tools that run until told to
// (a sender, a server): while a `ScopedStopSignals` lives, either signal sets
// a flag the tool's loop reads instead of killing the process.
//
// Thread safety: construction and destruction may happen on any thread
// (overlapping instances share one installation, counted under a mutex);
// `Pending` may be called from any thread. The handlers are process-wide.

#ifndef ZCPLAN_TOOLS_STOP_SIGNALS_H_
#define ZCPLAN_TOOLS_STOP_SIGNALS_H_

namespace zcplan {

// Installs handlers for SIGINT and SIGTERM (without SA_RESTART, so that a
// signal cuts a blocking wait short with EINTR) when the first instance is
// made, and restores the handlers found when the last one is destroyed. A
// signal the process ignores (started by nohup, or SIGINT in a shell's
// background job) stays ignored. The flag is cleared when the handlers are
// installed.
class ScopedStopSignals {
 public:
  ScopedStopSignals();
  ~ScopedStopSignals();
  ScopedStopSignals(const ScopedStopSignals&) = delete;
  ScopedStopSignals& operator=(const ScopedStopSignals&) = delete;

  // The number of the signal that arrived (SIGINT or SIGTERM), or 0.
  static int Pending();
};

}  // namespace zcplan

#endif  // ZCPLAN_TOOLS_STOP_SIGNALS_H_
