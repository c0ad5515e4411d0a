#include "uring/sweep.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "planner/trace.h"
#include "uring/net.h"

namespace zcplan {
namespace {

constexpr uint64_t kPage = 4096;

using Fd = UniqueFd;

double ThreadCpuSeconds() {
  struct rusage ru = {};
  getrusage(RUSAGE_THREAD, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

absl::Status Errno(absl::string_view what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A receiver thread on 127.0.0.1 that reads and discards one connection.
class LoopbackSink {
 public:
  absl::StatusOr<Fd> Start() {
    Fd listener(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr = {};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (listener.get() < 0 ||
        bind(listener.get(), reinterpret_cast<sockaddr*>(&addr),
             sizeof(addr)) != 0 ||
        listen(listener.get(), 1) != 0 ||
        getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) !=
            0) {
      return Errno("loopback receiver");
    }
    Fd client(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (client.get() < 0 ||
        connect(client.get(), reinterpret_cast<sockaddr*>(&addr),
                sizeof(addr)) != 0) {
      return Errno("connect to the loopback receiver");
    }
    Fd server(accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (server.get() < 0) return Errno("accept");
    thread_ = std::thread([this, fd = std::move(server)] {
      std::vector<char> buffer(1 << 20);
      for (;;) {
        const ssize_t n = recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        bytes_.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      }
    });
    return client;
  }

  // Call after the sending side is closed.
  uint64_t Join() {
    if (thread_.joinable()) thread_.join();
    return bytes_.load();
  }

  ~LoopbackSink() { Join(); }

 private:
  std::thread thread_;
  std::atomic<uint64_t> bytes_{0};
};

absl::StatusOr<Fd> ConnectTo(const std::string& peer) {
  absl::StatusOr<std::pair<std::string, std::string>> hp = SplitHostPort(peer);
  if (!hp.ok()) return hp.status();
  return ConnectTcp(hp->first, hp->second);
}

// The buffers of one message in flight: every piece starts on its own page
// with a free page after it, so no two pieces are contiguous in memory.
struct MessageBuffers {
  std::vector<std::unique_ptr<unsigned char[]>> storage;
  std::vector<std::vector<iovec>> pieces;  // per workload message
};

MessageBuffers MakeBuffers(const std::vector<std::vector<uint64_t>>& messages) {
  MessageBuffers b;
  for (const std::vector<uint64_t>& sizes : messages) {
    uint64_t span = kPage;
    for (uint64_t s : sizes) span += (s + kPage - 1) / kPage * kPage + kPage;
    b.storage.emplace_back(new unsigned char[span]);
    unsigned char* base = b.storage.back().get();
    std::memset(base, 0x5a, span);  // fault the pages in before timing
    unsigned char* p = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<uintptr_t>(base) + kPage - 1) / kPage * kPage);
    std::vector<iovec> message;
    for (uint64_t s : sizes) {
      message.push_back(iovec{p, s});
      p += (s + kPage - 1) / kPage * kPage + kPage;
    }
    b.pieces.push_back(std::move(message));
  }
  return b;
}

// What the release callback reports into, for the run in progress.
struct RunState {
  std::vector<uint32_t> remaining;  // per slot: buffers not yet released
  std::vector<uint32_t> finished;   // slots whose message completed
  absl::Status error;
};

absl::Status Validate(const SweepOptions& o) {
  if (o.messages.empty()) {
    return absl::InvalidArgumentError("the workload has no message");
  }
  for (size_t i = 0; i < o.messages.size(); ++i) {
    if (o.messages[i].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("workload message ", i + 1, " has no buffer"));
    }
    for (uint64_t s : o.messages[i]) {
      if (s == 0 || s > (uint64_t{1} << 30)) {
        return absl::InvalidArgumentError(
            absl::StrCat("workload message ", i + 1, " has a buffer of ", s,
                         " bytes; expected 1..1G"));
      }
    }
  }
  if (o.settings.empty()) {
    return absl::InvalidArgumentError("no setting to sweep");
  }
  for (const SweepSetting& s : o.settings) {
    if (absl::Status v = ValidatePlanOptions(s.plan); !v.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(DescribeSetting(s), ": ", v.message()));
    }
  }
  if (o.repetitions == 0 || o.repetitions > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("repetitions is ", o.repetitions, "; expected 1..1000"));
  }
  if (o.messages_in_flight == 0 || o.messages_in_flight > 1024) {
    return absl::InvalidArgumentError(absl::StrCat(
        "messages_in_flight is ", o.messages_in_flight, "; expected 1..1024"));
  }
  if (o.run_time <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("run_time must be positive");
  }
  return absl::OkStatus();
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

std::string DescribeSetting(const SweepSetting& s) {
  std::string out =
      absl::StrCat("threshold ", FormatThreshold(s.plan.zc_threshold), ", ",
                   CopyOpName(s.plan.copy_op));
  if (s.plan.zc_gap_bytes > 0) {
    absl::StrAppend(&out, ", gap ", FormatSize(s.plan.zc_gap_bytes));
  }
  if (s.adaptive) absl::StrAppend(&out, ", adaptive");
  return out;
}

absl::StatusOr<std::vector<SweepPoint>> RunSweep(
    const SweepOptions& options, const SweepProgress& progress) {
  if (absl::Status s = Validate(options); !s.ok()) return s;

  RunState state;
  ExecutorOptions eo;
  eo.sq_entries = options.sq_entries;
  eo.on_release = [&state](ConnectionId, uint64_t slot,
                           const absl::Status& status) {
    if (!status.ok() && state.error.ok()) state.error = status;
    if (--state.remaining[slot] == 0) state.finished.push_back(slot);
  };
  absl::StatusOr<std::unique_ptr<Executor>> executor = Executor::Create(eo);
  if (!executor.ok()) {
    return absl::UnavailableError(
        absl::StrCat("io_uring unavailable: ", executor.status().ToString()));
  }

  LoopbackSink sink;
  absl::StatusOr<Fd> fd =
      options.peer.empty() ? sink.Start() : ConnectTo(options.peer);
  if (!fd.ok()) return fd.status();
  const int one = 1;
  setsockopt(fd->get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

  const uint32_t slots = options.messages_in_flight;
  std::vector<MessageBuffers> buffers;
  for (uint32_t i = 0; i < slots; ++i) {
    buffers.push_back(MakeBuffers(options.messages));
  }
  std::vector<uint64_t> message_bytes;
  for (const std::vector<uint64_t>& m : options.messages) {
    uint64_t sum = 0;
    for (uint64_t s : m) sum += s;
    message_bytes.push_back(sum);
  }

  std::vector<SweepPoint> points(options.settings.size());
  for (size_t i = 0; i < points.size(); ++i) {
    points[i].setting = options.settings[i];
  }
  const size_t total = points.size() * options.repetitions;
  size_t done = 0;
  size_t next_message = 0;
  Executor& ex = **executor;

  for (uint32_t rep = 0; rep < options.repetitions; ++rep) {
    for (SweepPoint& point : points) {
      ConnectionOptions co;
      co.plan = point.setting.plan;
      co.adaptive_zero_copy = point.setting.adaptive;
      state.remaining.assign(slots, 0);
      state.finished.clear();
      std::vector<size_t> slot_message(slots, 0);
      ConnectionId id;
      auto enqueue = [&](uint32_t slot) -> absl::Status {
        const size_t m = next_message++ % options.messages.size();
        slot_message[slot] = m;
        const std::vector<iovec>& pieces = buffers[slot].pieces[m];
        state.remaining[slot] = static_cast<uint32_t>(pieces.size());
        for (const iovec& piece : pieces) {
          absl::Status s = ex.Enqueue(id, piece.iov_base, piece.iov_len, slot);
          if (!s.ok()) return s;
        }
        return absl::OkStatus();
      };
      auto poll_until_finished = [&]() -> absl::Status {
        while (state.finished.empty() && state.error.ok()) {
          absl::StatusOr<size_t> n = ex.Poll(absl::Milliseconds(100));
          if (!n.ok()) return n.status();
        }
        return state.error;
      };
      auto attach = [&]() -> absl::Status {
        absl::StatusOr<ConnectionId> attached = ex.Attach(fd->get(), co);
        if (!attached.ok()) return attached.status();
        id = *attached;
        return absl::OkStatus();
      };
      auto detach = [&]() -> absl::Status {
        if (absl::Status s = ex.Close(id); !s.ok()) return s;
        while (!ex.Idle(id)) {
          absl::StatusOr<size_t> n = ex.Poll(absl::Milliseconds(100));
          if (!n.ok()) return n.status();
        }
        return absl::OkStatus();
      };
      auto with_setting = [&](absl::Status s) {
        return s.ok()
                   ? s
                   : absl::Status(s.code(),
                                  absl::StrCat(DescribeSetting(point.setting),
                                               ": ", s.message()));
      };
      // Warm-up: one message on an attachment of its own, so that the run's
      // counters are the run's alone.
      if (absl::Status s = attach(); !s.ok()) return with_setting(s);
      if (absl::Status s = enqueue(0); !s.ok()) return with_setting(s);
      if (absl::Status s = poll_until_finished(); !s.ok()) {
        return with_setting(s);
      }
      if (absl::Status s = detach(); !s.ok()) return with_setting(s);
      state.finished.clear();

      if (absl::Status s = attach(); !s.ok()) return with_setting(s);
      SweepRun run;
      const absl::Time start = absl::Now();
      const absl::Time end = start + options.run_time;
      const double cpu_start = ThreadCpuSeconds();
      uint32_t in_flight = 0;
      for (uint32_t slot = 0; slot < slots; ++slot, ++in_flight) {
        if (absl::Status s = enqueue(slot); !s.ok()) return with_setting(s);
      }
      bool sending = true;
      while (in_flight > 0) {
        if (absl::Status s = poll_until_finished(); !s.ok()) {
          return with_setting(s);
        }
        if (sending && absl::Now() >= end) sending = false;
        std::vector<uint32_t> finished;
        finished.swap(state.finished);
        for (uint32_t slot : finished) {
          ++run.messages;
          run.bytes += message_bytes[slot_message[slot]];
          if (sending) {
            if (absl::Status s = enqueue(slot); !s.ok()) {
              return with_setting(s);
            }
          } else {
            --in_flight;
          }
        }
      }
      run.cpu_seconds = ThreadCpuSeconds() - cpu_start;
      run.seconds = absl::ToDoubleSeconds(absl::Now() - start);
      run.stats = *ex.connection_stats(id);
      if (absl::Status s = detach(); !s.ok()) return with_setting(s);
      point.runs.push_back(run);
      ++done;
      if (progress) progress(done, total, point);
    }
  }
  shutdown(fd->get(), SHUT_WR);
  fd->Reset();
  sink.Join();
  return points;
}

PointSummary Summarize(const SweepPoint& point) {
  PointSummary s;
  std::vector<double> mbps, cpu_gb, ns_msg;
  uint64_t ops = 0, messages = 0, zc = 0, sent = 0;
  for (const SweepRun& r : point.runs) {
    if (r.seconds <= 0 || r.bytes == 0) continue;
    mbps.push_back(static_cast<double>(r.bytes) / r.seconds / 1e6);
    cpu_gb.push_back(r.cpu_seconds / (static_cast<double>(r.bytes) / 1e9));
    ns_msg.push_back(r.cpu_seconds * 1e9 / static_cast<double>(r.messages));
    for (uint64_t n : r.stats.ops) ops += n;
    messages += r.messages;
    zc += r.stats.bytes_zero_copy;
    sent += r.stats.bytes_zero_copy + r.stats.bytes_copied;
    s.short_sends += r.stats.short_sends;
    s.notifications += r.stats.notifications;
    s.copied_notifications += r.stats.copied_notifications;
  }
  if (mbps.empty()) return s;
  s.mb_per_s = Median(mbps);
  s.mb_per_s_min = *std::min_element(mbps.begin(), mbps.end());
  s.mb_per_s_max = *std::max_element(mbps.begin(), mbps.end());
  s.cpu_s_per_gb = Median(cpu_gb);
  s.cpu_s_per_gb_min = *std::min_element(cpu_gb.begin(), cpu_gb.end());
  s.cpu_s_per_gb_max = *std::max_element(cpu_gb.begin(), cpu_gb.end());
  s.cpu_ns_per_message = Median(ns_msg);
  s.ops_per_message =
      messages == 0 ? 0
                    : static_cast<double>(ops) / static_cast<double>(messages);
  s.zero_copy_share =
      sent == 0 ? 0 : static_cast<double>(zc) / static_cast<double>(sent);
  s.copied_share = s.notifications == 0
                       ? -1
                       : static_cast<double>(s.copied_notifications) /
                             static_cast<double>(s.notifications);
  return s;
}

Recommendation Recommend(absl::Span<const SweepPoint> points,
                         absl::Span<const PointSummary> summaries) {
  Recommendation r;
  size_t best = 0;
  for (size_t i = 1; i < summaries.size(); ++i) {
    if (summaries[i].cpu_s_per_gb < summaries[best].cpu_s_per_gb) best = i;
  }
  const PointSummary& b = summaries[best];
  const double limit = std::max(b.cpu_s_per_gb_max, b.cpu_s_per_gb * 1.05);
  r.index = best;
  for (size_t i = 0; i < summaries.size(); ++i) {
    if (summaries[i].cpu_s_per_gb > limit) continue;
    r.within_noise.push_back(i);
    if (summaries[i].mb_per_s > summaries[r.index].mb_per_s) r.index = i;
  }
  const PointSummary& w = summaries[r.index];
  r.reason =
      absl::StrFormat("lowest CPU per GB: %.3f s/GB (%s)", b.cpu_s_per_gb,
                      DescribeSetting(points[best].setting));
  if (r.within_noise.size() > 1) {
    absl::StrAppend(
        &r.reason,
        absl::StrFormat("; %d settings are within its noise (up to %.3f s/GB)",
                        r.within_noise.size(), limit));
    if (r.index != best) {
      absl::StrAppend(&r.reason,
                      absl::StrFormat(", of which %s has the highest "
                                      "throughput (%.0f MB/s)",
                                      DescribeSetting(points[r.index].setting),
                                      w.mb_per_s));
    } else {
      absl::StrAppend(&r.reason,
                      ", and it also has the highest throughput of those");
    }
  }
  return r;
}

}  // namespace zcplan
