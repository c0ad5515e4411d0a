// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/stop_signals.h"

#include <signal.h>

#include <csignal>
#include <mutex>

namespace zcplan {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void OnStopSignal(int signal_number) {
  g_stop_signal = signal_number;
}

std::mutex& Mu() {
  static std::mutex* const mu = new std::mutex;
  return *mu;
}

int users = 0;              // guarded by Mu()
struct sigaction saved[2];  // guarded by Mu()

}  // namespace

ScopedStopSignals::ScopedStopSignals() {
  std::lock_guard<std::mutex> lock(Mu());
  if (users++ > 0) return;
  g_stop_signal = 0;
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: the signal cuts a wait short
  const int signals[2] = {SIGINT, SIGTERM};
  for (int i = 0; i < 2; ++i) {
    sigaction(signals[i], &action, &saved[i]);
    // Ignored before (nohup, SIGINT in a background job): stays ignored.
    if (saved[i].sa_handler == SIG_IGN)
      sigaction(signals[i], &saved[i], nullptr);
  }
}

ScopedStopSignals::~ScopedStopSignals() {
  std::lock_guard<std::mutex> lock(Mu());
  if (--users > 0) return;
  sigaction(SIGINT, &saved[0], nullptr);
  sigaction(SIGTERM, &saved[1], nullptr);
}

int ScopedStopSignals::Pending() { return g_stop_signal; }

}  // namespace zcplan
