// SPDX-License-Identifier: Apache-2.0
// The judges behind `zcdoctor`: will zero-copy send pay on this machine, to
// that peer?
//
// Each source the doctor looks at (a sysctl, a limit, what an io_uring ring
// supports, an interface's offloads, a live send) is read by
// tune/doctor_sources.h into a plain value, the recorded input; the functions
// here turn such values into `Check`s and the checks into a `Verdict`. They
// are pure (no syscalls, no files), so tests feed them recorded inputs.
//
// Thread safety: plain values and reentrant functions.

#ifndef ZCPLAN_TUNE_DOCTOR_H_
#define ZCPLAN_TUNE_DOCTOR_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "zcplan/uring/notification_budget.h"
#include "zcplan/uring/ring.h"

namespace zcplan {

enum class CheckStatus {
  kOk,       // nothing to do
  kWarning,  // zero-copy still works, but less well or unverified
  kBlocks,   // zero-copy cannot pay while this stays so
};

// "ok", "warning" or "blocks".
absl::string_view CheckStatusName(CheckStatus status);

// One finding.
struct Check {
  std::string name;  // a stable identifier: "kernel", "scatter_gather", ...
  CheckStatus status = CheckStatus::kOk;
  std::string value;   // what was found, for a reader
  std::string advice;  // what it means and what to do; empty when nothing
};

// --- The kernel and io_uring ------------------------------------------------

// `release` is uname's release ("6.18.44-fc-v973"). SEND_ZC came in 6.0,
// SENDMSG_ZC in 6.1, IORING_SEND_ZC_REPORT_USAGE in 6.2: before 6.0 it
// blocks, before 6.2 it warns. A release that does not start with
// MAJOR.MINOR warns.
Check JudgeKernelRelease(absl::string_view release);

// `text`: the contents of /proc/sys/kernel/io_uring_disabled, nullopt when
// the file does not exist (kernels before 6.6 have no such switch).
// 0: open to all; 1: only to processes with CAP_SYS_ADMIN or in the group
// kernel.io_uring_group (`privileged` says whether this process is one:
// warns if so, blocks if not); 2: disabled for all (blocks).
Check JudgeIoUringDisabled(const std::optional<std::string>& text,
                           bool privileged);

// What making a ring the way the executor does found: `status` is OK when a
// ring was made, and `features` then what it supports, with the flags that
// need SQEs probed (the ring was enabled).
struct RingProbe {
  absl::Status status;
  RingFeatures features;
};

// Checks "io_uring_ring", "send_zc", "sendmsg_zc", "zc_report_usage",
// "sendmsg_zc_fixed_buf" and "single_issuer" (only the first when no ring
// could be made). SEND_ZC missing blocks; SENDMSG_ZC missing warns (the
// executor sends multi-piece zero-copy ops by copy then); a kernel that
// cannot report copies warns, since nothing then tells a copied zero-copy
// send from a real one.
std::vector<Check> JudgeRing(const RingProbe& probe);

// --- Memory -----------------------------------------------------------------

// `soft_limit`: RLIMIT_MEMLOCK's soft limit (RLIM_INFINITY when unlimited);
// `charged`: whether the kernel charges this process's zero-copy pages to it
// (false with CAP_IPC_LOCK). Warns when charged and under 1 MiB.
Check JudgeMemlock(uint64_t soft_limit, bool charged);

// The effective capability mask from the text of /proc/self/status (its
// "CapEff:" line, hexadecimal); nullopt when there is none or it is not hex.
std::optional<uint64_t> ParseCapEff(absl::string_view proc_status);

// Whether `cap_eff` holds CAP_IPC_LOCK (bit 14). Always ok: it says which way
// the memory figures are read. nullopt ("unknown") warns.
Check JudgeCapIpcLock(std::optional<uint64_t> cap_eff);

// The executor's default notification cap, as `ChooseNotificationCap`
// (uring/notification_budget.h) computes it: under 3 pages zero-copy is never
// used (blocks); under 256 KiB few 64 KiB sends can be awaiting notification
// at once (warns).
Check JudgeNotificationCap(const CapChoice& choice);

// `text`: the contents of /proc/sys/net/core/optmem_max, nullopt when
// unreadable. It bounds a socket's option memory, which MSG_ZEROCOPY's
// notifications (the socket API) are charged to; io_uring's zero-copy
// notifications are not. Warns under 20 KiB (the old kernel default) or when
// unreadable.
Check JudgeOptmemMax(const std::optional<std::string>& text);

// --- The path to a peer -----------------------------------------------------

// An address of an interface, as getifaddrs gives it (numeric text).
struct InterfaceAddress {
  std::string interface;
  std::string address;    // "192.0.2.2", "fe80::1"
  bool loopback = false;  // IFF_LOOPBACK
  bool up = false;        // IFF_UP
};

// The interface a route to `peer` leaves by, given the local address the
// kernel chose for it (`local`, from connect + getsockname on a UDP socket)
// and the machine's addresses. A peer that is a loopback address (127/8,
// ::1) or one of the machine's own addresses goes over the loopback
// interface, whatever address the kernel picked. Errors: NotFound when no
// interface has `local` (or, for a local peer, none is a loopback).
[[nodiscard]] absl::StatusOr<std::string> InterfaceForRoute(
    absl::string_view peer, absl::string_view local,
    absl::Span<const InterfaceAddress> addresses);

// The offloads that matter to zero-copy; nullopt: the kernel did not say.
struct Offloads {
  std::optional<bool> scatter_gather;  // tx-scatter-gather
  std::optional<bool> tx_checksum;     // any tx-checksum-*
  std::optional<bool> tso;             // tx-tcp-segmentation (or -tcp6-)
  std::optional<bool> gso;             // tx-generic-segmentation
};

// From the kernel's feature names (ETHTOOL_GSTRINGS of ETH_SS_FEATURES, in
// bit order) and the active words of ETHTOOL_GFEATURES (bit i of the
// feature list is bit i % 32 of word i / 32). A name past the words given
// counts as off.
Offloads OffloadsFromFeatures(absl::Span<const std::string> names,
                              absl::Span<const uint32_t> active);

// What the kernel says of an interface.
struct InterfaceFacts {
  std::string name;
  bool up = false;
  bool loopback = false;        // IFF_LOOPBACK
  std::optional<int> arp_type;  // /sys/class/net/IF/type (ARPHRD_*)
  bool has_device = false;      // /sys/class/net/IF/device exists: on a bus
  std::string uevent;           // /sys/class/net/IF/uevent ("DEVTYPE=...")
  std::string driver;           // ETHTOOL_GDRVINFO's driver, "" if unknown
  std::optional<Offloads> offloads;  // nullopt: ethtool could not read them
  std::string offloads_error;        // why, when nullopt
};

enum class DeviceKind {
  kLoopback,  // lo: the receiving side copies
  kVeth,      // veth: frames cross to the peer namespace and are copied
  kTun,       // tun/tap: frames go to a user-space reader
  kBridge,    // a bridge: depends on the port the frames leave by
  kNic,       // a device on a bus (PCI, virtio, ...)
  kVirtual,   // another software device (vlan, bond, macvlan, wireguard, ...)
};

// "loopback", "veth", "tun", "bridge", "nic" or "virtual".
absl::string_view DeviceKindName(DeviceKind kind);

// The kind, from the ARP type (772 loopback, 65534 tun), the uevent's
// DEVTYPE (bridge, ...), the driver (veth, tun, bridge) and whether a bus
// device is behind it.
DeviceKind ClassifyDevice(const InterfaceFacts& facts);

// Checks "device" (loopback, veth and tun block: their receive path copies;
// a bridge and other virtual devices warn; a NIC is ok), then
// "scatter_gather" (off blocks: the kernel copies every zero-copy send),
// "tx_checksum" (off blocks: the kernel turns scatter-gather off without
// it), "tso" and "gso" (off warns: every segment is then built by the
// CPU). Unknown offloads warn.
std::vector<Check> JudgeInterface(const InterfaceFacts& facts);

// --- A live send ------------------------------------------------------------

// What `RunSendProbe` (tune/doctor_sources.h) saw sending to a receiver.
struct SendProbeResult {
  std::string peer;           // "HOST:PORT" as given
  absl::Status status;        // OK when the send completed
  bool report_usage = false;  // the ring had IORING_SEND_ZC_REPORT_USAGE
  uint64_t bytes = 0;         // asked to send
  uint64_t bytes_zero_copy = 0;
  uint64_t bytes_copied = 0;
  uint64_t notifications = 0;
  uint64_t copied_notifications = 0;
  uint64_t fallbacks_unsupported = 0;  // zero-copy refused by the socket
  uint64_t fallbacks_enomem = 0;       // zero-copy refused for memory
};

// Check "probe": a failed send warns (nothing learnt); every notification
// copied blocks; some copied warns; none copied is ok; no notification at
// all blocks (nothing went zero-copy); a kernel without usage reports warns.
Check JudgeSendProbe(const SendProbeResult& result);

// --- The verdict ------------------------------------------------------------

// The checks of one path: to a peer, or out of one interface.
struct PathReport {
  std::string target;     // "127.0.0.1", or the interface for the default
  std::string interface;  // the interface the route uses
  std::vector<Check> checks;
};

struct DoctorReport {
  std::vector<Check> host;  // the kernel, io_uring and memory
  std::vector<PathReport> paths;
  bool for_peer = false;  // paths are routes to peers (--peer or --probe),
                          // not every interface that is up
};

struct Verdict {
  bool pays = false;
  std::string text;  // one line, e.g. "zero-copy cannot pay to 127.0.0.1 ..."
};

// Zero-copy can pay when no host check blocks and, for peers, no check of
// any peer's path blocks, or, for interfaces, at least one interface's path
// has nothing that blocks. The text gives the cause of the first blocking
// check (its advice up to the first ": ") of the host or of each path that
// fails, and the paths where it can pay, e.g. "zero-copy cannot pay to
// 127.0.0.1 (lo, loopback): the receiving side copies".
Verdict JudgeReport(const DoctorReport& report);

}  // namespace zcplan

#endif  // ZCPLAN_TUNE_DOCTOR_H_
