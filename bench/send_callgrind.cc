// SPDX-License-Identifier: Apache-2.0
// Sends a fixed number of the reference messages (bench/send_loops.h) with
// one sender, for callgrind to count the sending thread's instructions per
// buffer; bench/callgrind.sh runs it under valgrind and prints the counts.
//
//   send_callgrind --sender=raw|executor|shared|prepared|shared_prepared|all
//       --copy_op=writev|sendmsg
//       --n=1024 --messages=200 [--warmup=20]
//
// Senders (all size_aware, as bench/send_benchmark.cc): raw is BM_Raw,
// executor is BM_Send (own ring), shared is BM_SendShared (caller's ring),
// prepared and shared_prepared are BM_SendPrepared and BM_SendSharedPrepared
// (the message a PreparedMessage, EnqueueMessage per send); all runs each in
// turn (the smoke test), skipping those io_uring lacks.
// Collection (CALLGRIND_TOGGLE_COLLECT, per thread) is on only on this
// thread and only around the `--messages` sends after `--warmup` untimed
// ones; run valgrind with --collect-atstart=no so setup, teardown and the
// receiver thread are not counted. Outside valgrind the toggles do nothing.
// The receiver is this program again, exec'd (--receive_fd=FD), so under
// valgrind (without --trace-children) it runs natively in its own process:
// valgrind runs one thread of a process at a time and holds that lock while
// a thread waits in io_uring_enter (valgrind 3.19), so a receiver thread
// would never read and zero-copy notifications, which wait for the peer's
// ACKs, would stall once the receive buffer filled.
// Prints "buffers <messages * n>". Exit status 0, or 77 when io_uring or its
// zero-copy opcodes are unavailable, 1 on a failure, 2 on bad flags.

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/callgrind.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "zcplan/bench/send_loops.h"
#include "zcplan/planner/planner.h"

namespace zcplan {
namespace {

struct Flags {
  int receive_fd = -1;  // --receive_fd: be the receiver of that socket
  bool all = false;     // --sender=all: each sender in turn (the smoke test)
  bench::SenderConfig config;
  int n = 1024;
  int messages = 200;
  int warmup = 20;
};

bool ParseFlags(int argc, char** argv, Flags& flags) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* prefix) -> const char* {
      const size_t len = std::strlen(prefix);
      return arg.compare(0, len, prefix) == 0 ? arg.c_str() + len : nullptr;
    };
    if (const char* v = value("--receive_fd=")) {
      flags.receive_fd = std::atoi(v);
    } else if (const char* v = value("--sender=")) {
      const std::string s = v;
      if (s == "raw") {
        flags.config.kind = bench::SenderKind::kRaw;
      } else if (s == "executor") {
        flags.config.kind = bench::SenderKind::kExecutor;
      } else if (s == "shared") {
        flags.config.kind = bench::SenderKind::kShared;
      } else if (s == "prepared" || s == "shared_prepared") {
        flags.config.kind = s == "prepared" ? bench::SenderKind::kExecutor
                                            : bench::SenderKind::kShared;
        flags.config.prepared = true;
      } else if (s == "all") {
        flags.all = true;
      } else {
        return false;
      }
    } else if (const char* v = value("--copy_op=")) {
      const std::string s = v;
      if (s != "writev" && s != "sendmsg") return false;
      flags.config.copy_op = s == "writev" ? CopyOp::kWritev : CopyOp::kSendmsg;
    } else if (const char* v = value("--n=")) {
      flags.n = std::atoi(v);
    } else if (const char* v = value("--messages=")) {
      flags.messages = std::atoi(v);
    } else if (const char* v = value("--warmup=")) {
      flags.warmup = std::atoi(v);
    } else {
      return false;
    }
  }
  return (flags.n == 1 || flags.n >= 4) && flags.messages > 0 &&
         flags.warmup >= 0;
}

// Kept out of line so a profile shows the sends under one name.
__attribute__((noinline)) absl::Status SendMessages(bench::Sender& sender,
                                                    int messages) {
  for (int i = 0; i < messages; ++i) {
    if (absl::Status s = sender.SendMessage(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Reads `fd` until EOF, discarding.
int Receive(int fd) {
  static char scratch[256 * 1024];
  for (;;) {
    const ssize_t r = recv(fd, scratch, sizeof(scratch), 0);
    if (r == 0) return 0;
    if (r < 0 && errno != EINTR) return 1;
  }
}

// Runs `self --receive_fd=<receiving end>` as a child; returns its pid.
pid_t SpawnReceiver(const char* self, int fd) {
  const std::string flag = "--receive_fd=" + std::to_string(fd);
  const pid_t pid = fork();
  if (pid == 0) {
    fcntl(fd, F_SETFD, 0);  // keep it across exec
    execl(self, self, flag.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int Run(const char* self, const Flags& flags) {
  const bench::Message message(bench::MessageLengths(flags.n));
  bench::Loopback link;
  if (absl::Status s = link.Connect(512 * 1024); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  const int receiver_fd = link.ReleaseReceiver();
  const pid_t receiver = SpawnReceiver(self, receiver_fd);
  close(receiver_fd);
  if (receiver < 0) {
    std::perror("fork");
    return 1;
  }
  absl::StatusOr<std::unique_ptr<bench::Sender>> sender =
      bench::MakeSender(flags.config, message, link.sender());
  if (!sender.ok()) {
    std::fprintf(stderr, "%s\n", sender.status().ToString().c_str());
    return absl::IsUnavailable(sender.status()) ? 77 : 1;
  }
  absl::Status s = SendMessages(**sender, flags.warmup);
  if (s.ok()) {
    CALLGRIND_TOGGLE_COLLECT;
    s = SendMessages(**sender, flags.messages);
    CALLGRIND_TOGGLE_COLLECT;
  }
  sender->reset();
  link.Finish();
  int wstatus = 0;
  waitpid(receiver, &wstatus, 0);
  if (s.ok() && !(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0)) {
    s = absl::InternalError("the receiver process failed");
  }
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf(
      "buffers %llu\n",
      static_cast<unsigned long long>(flags.messages) * message.iovs().size());
  return 0;
}

}  // namespace
}  // namespace zcplan

int main(int argc, char** argv) {
  zcplan::Flags flags;
  if (!zcplan::ParseFlags(argc, argv, flags)) {
    std::fprintf(stderr,
                 "usage: send_callgrind "
                 "--sender=raw|executor|shared|prepared|shared_prepared|all "
                 "--copy_op=writev|sendmsg --n=N --messages=M [--warmup=W]\n");
    return 2;
  }
  if (flags.receive_fd >= 0) return zcplan::Receive(flags.receive_fd);
  if (!flags.all) return zcplan::Run(argv[0], flags);
  for (bool prepared : {false, true}) {
    for (zcplan::bench::SenderKind kind :
         {zcplan::bench::SenderKind::kRaw, zcplan::bench::SenderKind::kExecutor,
          zcplan::bench::SenderKind::kShared}) {
      if (prepared && kind == zcplan::bench::SenderKind::kRaw) continue;
      flags.config.kind = kind;
      flags.config.prepared = prepared;
      const int status = zcplan::Run(argv[0], flags);
      if (status != 0 && status != 77) return status;  // 77: skipped
    }
  }
  return 0;
}
