// SPDX-License-Identifier: Apache-2.0
// The send probe right after the ring probe, in a process charged for locked
// memory (no CAP_IPC_LOCK) whose RLIMIT_MEMLOCK holds one ring but not two:
// what `zcdoctor --probe` does under `ulimit -l`. The kernel unaccounts a
// closed ring only when its exit work has run, after close() returns, so a
// second ring made at once may fail with ENOMEM though one ring fits.
// Forks: the limit and the dropped capability stay in the child.

#include <linux/capability.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "zcplan/tune/doctor_sources.h"
#include "zcplan/uring/receiver.h"

namespace zcplan {
namespace {

// Drops CAP_IPC_LOCK from the effective set of this process.
bool DropIpcLock() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  data[CAP_IPC_LOCK / 32].effective &= ~(1u << (CAP_IPC_LOCK % 32));
  return syscall(SYS_capset, &header, data) == 0;
}

TEST(SendProbeTest, WorksRightAfterTheRingProbeUnderATightMemlock) {
  const RingProbe probe = ProbeRing();
  if (!probe.status.ok()) GTEST_SKIP() << "no io_uring: " << probe.status;
  if (!probe.features.send_zc) GTEST_SKIP() << "no IORING_OP_SEND_ZC";
  const uint64_t ring = probe.features.memlock_bytes;
  ASSERT_GT(ring, 0u);

  // A receiver that reads everything, on a thread of this (parent) process.
  absl::StatusOr<std::unique_ptr<Receiver>> receiver =
      Receiver::Listen(ReceiverOptions());
  ASSERT_TRUE(receiver.ok()) << receiver.status();

  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(report[0]);
    std::string message;
    // One ring and a half: the executor's fits once the probe's ring is gone.
    const rlimit limit{ring * 3 / 2, ring * 3 / 2};
    if (!DropIpcLock()) {
      message = "skip: cannot drop CAP_IPC_LOCK";
    } else if (setrlimit(RLIMIT_MEMLOCK, &limit) != 0) {
      message = "skip: cannot set RLIMIT_MEMLOCK";
    } else if (const RingProbe again = ProbeRing(); !again.status.ok()) {
      message = "skip: no ring under the limit: " + again.status.ToString();
    } else {
      SendProbeOptions options;
      options.bytes = 256 << 10;
      const SendProbeResult r =
          RunSendProbe("127.0.0.1", (*receiver)->port(), options);
      message = r.status.ok() ? "ok" : r.status.ToString();
    }
    (void)!write(report[1], message.data(), message.size());
    _exit(0);
  }
  close(report[1]);
  std::string message;
  char buf[512];
  for (ssize_t n; (n = read(report[0], buf, sizeof(buf))) > 0;) {
    message.append(buf, static_cast<size_t>(n));
  }
  close(report[0]);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  (void)(*receiver)->Stop();  // Bounded, also if the child never connected.
  if (message.rfind("skip: ", 0) == 0) GTEST_SKIP() << message;
  EXPECT_EQ(message, "ok");
}

}  // namespace
}  // namespace zcplan
