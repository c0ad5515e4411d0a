// SPDX-License-Identifier: Apache-2.0
// zcdoctor's judges on recorded inputs: sysctl texts, limits, ring features,
// the kernel's feature strings of real interfaces, device facts, probe
// counters, and the verdicts over them.

#include "zcplan/tune/doctor.h"

#include <sys/resource.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "zcplan/uring/notification_budget.h"

namespace zcplan {
namespace {

using ::testing::HasSubstr;

// A copy of the check named `name` (a failure, and a default Check, when
// there is none).
Check Find(const std::vector<Check>& checks, const std::string& name) {
  for (const Check& c : checks) {
    if (c.name == name) return c;
  }
  ADD_FAILURE() << "no check " << name;
  return Check{};
}

// ETHTOOL_GSTRINGS(ETH_SS_FEATURES) on Linux 6.18, in bit order.
const std::vector<std::string>& KernelFeatureNames() {
  static const auto* names =
      new std::vector<std::string>{"tx-scatter-gather",
                                   "tx-checksum-ipv4",
                                   "",
                                   "tx-checksum-ip-generic",
                                   "tx-checksum-ipv6",
                                   "highdma",
                                   "tx-scatter-gather-fraglist",
                                   "tx-vlan-hw-insert",
                                   "rx-vlan-hw-parse",
                                   "rx-vlan-filter",
                                   "vlan-challenged",
                                   "tx-generic-segmentation",
                                   "",
                                   "",
                                   "rx-gro",
                                   "rx-lro",
                                   "tx-tcp-segmentation",
                                   "tx-gso-robust",
                                   "tx-tcp-ecn-segmentation",
                                   "tx-tcp-mangleid-segmentation",
                                   "tx-tcp6-segmentation",
                                   "tx-fcoe-segmentation",
                                   "tx-gre-segmentation",
                                   "tx-gre-csum-segmentation",
                                   "tx-ipxip4-segmentation",
                                   "tx-ipxip6-segmentation",
                                   "tx-udp_tnl-segmentation",
                                   "tx-udp_tnl-csum-segmentation",
                                   "tx-gso-partial",
                                   "tx-tunnel-remcsum-segmentation",
                                   "tx-sctp-segmentation",
                                   "tx-esp-segmentation",
                                   "",
                                   "tx-udp-segmentation",
                                   "tx-gso-list",
                                   "tx-tcp-accecn-segmentation",
                                   "tx-checksum-fcoe-crc",
                                   "tx-checksum-sctp",
                                   "rx-ntuple-filter",
                                   "rx-hashing",
                                   "rx-checksum",
                                   "tx-nocache-copy",
                                   "loopback",
                                   "rx-fcs",
                                   "rx-all",
                                   "tx-vlan-stag-hw-insert",
                                   "rx-vlan-stag-hw-parse",
                                   "rx-vlan-stag-filter",
                                   "l2-fwd-offload",
                                   "hw-tc-offload",
                                   "esp-hw-offload",
                                   "esp-tx-csum-hw-offload",
                                   "rx-udp_tunnel-port-offload",
                                   "tls-hw-tx-offload",
                                   "tls-hw-rx-offload",
                                   "rx-gro-hw",
                                   "tls-hw-record",
                                   "rx-gro-list",
                                   "macsec-hw-offload",
                                   "rx-udp-gro-forwarding",
                                   "hsr-tag-ins-offload",
                                   "hsr-tag-rm-offload",
                                   "hsr-fwd-offload",
                                   "hsr-dup-offload"};
  return *names;
}

// ETHTOOL_GFEATURES' active words, recorded on this project's test machine.
constexpr uint32_t kVirtioNetActive[] = {0x134829, 0x800100};  // eth0
constexpr uint32_t kLoopbackActive[] = {0x401d4c69, 0x52e};    // lo

TEST(CheckStatusTest, Names) {
  EXPECT_EQ(CheckStatusName(CheckStatus::kOk), "ok");
  EXPECT_EQ(CheckStatusName(CheckStatus::kWarning), "warning");
  EXPECT_EQ(CheckStatusName(CheckStatus::kBlocks), "blocks");
}

TEST(KernelReleaseTest, BeforeSixZeroBlocks) {
  const Check c = JudgeKernelRelease("5.15.0-91-generic");
  EXPECT_EQ(c.status, CheckStatus::kBlocks);
  EXPECT_EQ(c.value, "5.15.0-91-generic");
  EXPECT_THAT(c.advice, HasSubstr("6.0"));
}

TEST(KernelReleaseTest, SixOneWarnsForUsageReports) {
  const Check c = JudgeKernelRelease("6.1.0-13-amd64");
  EXPECT_EQ(c.status, CheckStatus::kWarning);
  EXPECT_THAT(c.advice, HasSubstr("IORING_SEND_ZC_REPORT_USAGE"));
  EXPECT_EQ(JudgeKernelRelease("6.0").status, CheckStatus::kWarning);
}

TEST(KernelReleaseTest, SixTwoAndLaterAreOk) {
  EXPECT_EQ(JudgeKernelRelease("6.2.0").status, CheckStatus::kOk);
  EXPECT_EQ(JudgeKernelRelease("6.18.44-fc-v973").status, CheckStatus::kOk);
  EXPECT_EQ(JudgeKernelRelease("10.0.1").status, CheckStatus::kOk);
  // Minor 10 is not minor 1.
  EXPECT_EQ(JudgeKernelRelease("6.10.3").status, CheckStatus::kOk);
}

TEST(KernelReleaseTest, UnparsableWarns) {
  EXPECT_EQ(JudgeKernelRelease("").status, CheckStatus::kWarning);
  EXPECT_EQ(JudgeKernelRelease("linux").status, CheckStatus::kWarning);
  EXPECT_EQ(JudgeKernelRelease("6").status, CheckStatus::kWarning);
  // Control characters never reach the value.
  EXPECT_FALSE(absl::StrContains(JudgeKernelRelease("x\ny").value, "\n"));
}

TEST(IoUringDisabledTest, EachValue) {
  EXPECT_EQ(JudgeIoUringDisabled(std::nullopt, false).status, CheckStatus::kOk);
  EXPECT_EQ(JudgeIoUringDisabled(std::string("0\n"), false).status,
            CheckStatus::kOk);
  const Check one_unprivileged =
      JudgeIoUringDisabled(std::string("1\n"), false);
  EXPECT_EQ(one_unprivileged.status, CheckStatus::kBlocks);
  EXPECT_THAT(one_unprivileged.advice, HasSubstr("io_uring_group"));
  EXPECT_EQ(JudgeIoUringDisabled(std::string("1\n"), true).status,
            CheckStatus::kWarning);
  const Check two = JudgeIoUringDisabled(std::string("2\n"), true);
  EXPECT_EQ(two.status, CheckStatus::kBlocks);
  EXPECT_THAT(two.value, HasSubstr("disabled for all"));
}

TEST(IoUringDisabledTest, UnknownValuesWarn) {
  EXPECT_EQ(JudgeIoUringDisabled(std::string("3\n"), false).status,
            CheckStatus::kWarning);
  EXPECT_EQ(JudgeIoUringDisabled(std::string("-1"), false).status,
            CheckStatus::kWarning);
  EXPECT_EQ(JudgeIoUringDisabled(std::string("yes"), false).status,
            CheckStatus::kWarning);
  EXPECT_EQ(JudgeIoUringDisabled(std::string(""), false).status,
            CheckStatus::kWarning);
}

RingFeatures FullFeatures() {
  RingFeatures f;
  f.send_zc = f.sendmsg_zc = f.zc_report_usage = f.sendmsg_zc_fixed = true;
  f.async_cancel_fd = true;
  f.sq_entries = 256;
  f.cq_entries = 2048;
  f.memlock_bytes = 52 << 10;
  f.setup_flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
                  IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  return f;
}

TEST(RingTest, EverythingPresentIsOk) {
  const std::vector<Check> checks =
      JudgeRing({absl::OkStatus(), FullFeatures()});
  ASSERT_EQ(checks.size(), 6u);
  for (const Check& c : checks) {
    EXPECT_EQ(c.status, CheckStatus::kOk) << c.name;
  }
  EXPECT_THAT(Find(checks, "io_uring_ring").value, HasSubstr("52 KiB"));
}

TEST(RingTest, NoRingIsOneBlockingCheck) {
  const std::vector<Check> checks = JudgeRing(
      {absl::PermissionDeniedError("io_uring_queue_init_params: denied"), {}});
  ASSERT_EQ(checks.size(), 1u);
  EXPECT_EQ(checks[0].name, "io_uring_ring");
  EXPECT_EQ(checks[0].status, CheckStatus::kBlocks);
  EXPECT_THAT(checks[0].advice, HasSubstr("io_uring_disabled"));
  EXPECT_THAT(
      JudgeRing({absl::ResourceExhaustedError("no memory"), {}})[0].advice,
      HasSubstr("RLIMIT_MEMLOCK"));
}

TEST(RingTest, MissingOpcodesAndFlags) {
  RingFeatures f = FullFeatures();
  f.send_zc = false;
  EXPECT_EQ(Find(JudgeRing({absl::OkStatus(), f}), "send_zc").status,
            CheckStatus::kBlocks);
  f = FullFeatures();
  f.sendmsg_zc = false;
  EXPECT_EQ(Find(JudgeRing({absl::OkStatus(), f}), "sendmsg_zc").status,
            CheckStatus::kWarning);
  f = FullFeatures();
  f.zc_report_usage = false;
  EXPECT_EQ(Find(JudgeRing({absl::OkStatus(), f}), "zc_report_usage").status,
            CheckStatus::kWarning);
  f = FullFeatures();
  f.sendmsg_zc_fixed = false;
  EXPECT_EQ(
      Find(JudgeRing({absl::OkStatus(), f}), "sendmsg_zc_fixed_buf").status,
      CheckStatus::kWarning);
  f = FullFeatures();
  f.setup_flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  EXPECT_EQ(Find(JudgeRing({absl::OkStatus(), f}), "single_issuer").status,
            CheckStatus::kWarning);
}

TEST(MemlockTest, Limits) {
  EXPECT_EQ(JudgeMemlock(RLIM_INFINITY, true).value, "unlimited");
  EXPECT_EQ(JudgeMemlock(RLIM_INFINITY, true).status, CheckStatus::kOk);
  EXPECT_EQ(JudgeMemlock(8 << 20, true).status, CheckStatus::kOk);
  const Check tight = JudgeMemlock(64 << 10, true);
  EXPECT_EQ(tight.status, CheckStatus::kWarning);
  EXPECT_EQ(tight.value, "64K");
  EXPECT_THAT(tight.advice, HasSubstr("ulimit -l"));
  // Not charged: the limit does not bind.
  const Check uncharged = JudgeMemlock(64 << 10, false);
  EXPECT_EQ(uncharged.status, CheckStatus::kOk);
  EXPECT_THAT(uncharged.value, HasSubstr("CAP_IPC_LOCK"));
}

constexpr char kRootStatus[] =
    "Name:\tzcdoctor\nUmask:\t0022\nState:\tR (running)\n"
    "CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\n"
    "CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n";
constexpr char kUserStatus[] =
    "Name:\tzcdoctor\nCapInh:\t0000000000000000\n"
    "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n";

TEST(CapEffTest, ParsesProcSelfStatus) {
  EXPECT_EQ(ParseCapEff(kRootStatus), uint64_t{0x000001fffeffffff});
  EXPECT_EQ(ParseCapEff(kUserStatus), uint64_t{0});
  EXPECT_EQ(ParseCapEff("Name:\tx\n"), std::nullopt);
  EXPECT_EQ(ParseCapEff("CapEff:\tzz\n"), std::nullopt);
  EXPECT_EQ(ParseCapEff("CapEff:\t\n"), std::nullopt);
  EXPECT_EQ(ParseCapEff("CapEff:\t00000000000000000001\n"), std::nullopt);
}

TEST(CapEffTest, IpcLockIsBitFourteen) {
  EXPECT_EQ(JudgeCapIpcLock(ParseCapEff(kRootStatus)).value, "yes");
  EXPECT_EQ(JudgeCapIpcLock(ParseCapEff(kUserStatus)).value, "no");
  EXPECT_EQ(JudgeCapIpcLock(uint64_t{1} << 14).value, "yes");
  EXPECT_EQ(JudgeCapIpcLock(~(uint64_t{1} << 14)).value, "no");
  EXPECT_EQ(JudgeCapIpcLock(std::nullopt).status, CheckStatus::kWarning);
}

TEST(NotificationCapTest, FromTheExecutorsChoice) {
  // 64 KiB of RLIMIT_MEMLOCK less the 52 KiB ring: under three pages.
  const Check off = JudgeNotificationCap(
      ChooseNotificationCap(0, 64 << 10, true, 52 << 10, 0));
  EXPECT_EQ(off.status, CheckStatus::kBlocks);
  EXPECT_THAT(off.value, HasSubstr("half of what RLIMIT_MEMLOCK"));
  EXPECT_EQ(JudgeNotificationCap(
                ChooseNotificationCap(0, 256 << 10, true, 52 << 10, 0))
                .status,
            CheckStatus::kWarning);
  EXPECT_EQ(
      JudgeNotificationCap(ChooseNotificationCap(0, 8 << 20, true, 52 << 10, 0))
          .status,
      CheckStatus::kOk);
  EXPECT_EQ(JudgeNotificationCap(
                ChooseNotificationCap(0, RLIM_INFINITY, true, 52 << 10, 0))
                .status,
            CheckStatus::kOk);
}

TEST(OptmemMaxTest, Values) {
  EXPECT_EQ(JudgeOptmemMax(std::string("131072\n")).status, CheckStatus::kOk);
  EXPECT_EQ(JudgeOptmemMax(std::string("131072\n")).value, "131072 bytes");
  EXPECT_EQ(JudgeOptmemMax(std::string("20480")).status, CheckStatus::kOk);
  EXPECT_EQ(JudgeOptmemMax(std::string("10240\n")).status,
            CheckStatus::kWarning);
  EXPECT_EQ(JudgeOptmemMax(std::nullopt).status, CheckStatus::kWarning);
  EXPECT_EQ(JudgeOptmemMax(std::string("lots")).status, CheckStatus::kWarning);
}

std::vector<InterfaceAddress> Addresses() {
  return {{"lo", "", true, true},
          {"eth0", "", false, true},
          {"lo", "127.0.0.1", true, true},
          {"eth0", "192.0.2.2", false, true},
          {"lo", "::1", true, true},
          {"eth0", "fd00::2", false, true},
          {"eth0", "fe80::fc:ff:fe00:1", false, true}};
}

TEST(RouteTest, LoopbackPeersGoOverLo) {
  EXPECT_EQ(*InterfaceForRoute("127.0.0.1", "127.0.0.1", Addresses()), "lo");
  EXPECT_EQ(*InterfaceForRoute("127.0.1.1", "127.0.0.1", Addresses()), "lo");
  EXPECT_EQ(*InterfaceForRoute("::1", "::1", Addresses()), "lo");
}

TEST(RouteTest, OwnAddressGoesOverLoWhateverSourceIsPicked) {
  // The kernel picks the NIC's address as the source, but the packets never
  // leave the machine.
  EXPECT_EQ(*InterfaceForRoute("192.0.2.2", "192.0.2.2", Addresses()), "lo");
}

TEST(RouteTest, RemotePeerUsesTheInterfaceOfTheSourceAddress) {
  EXPECT_EQ(*InterfaceForRoute("192.0.2.1", "192.0.2.2", Addresses()), "eth0");
  EXPECT_EQ(*InterfaceForRoute("2001:db8::9", "fd00::2", Addresses()), "eth0");
}

TEST(RouteTest, UnknownSourceOrNoLoopbackIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(
      InterfaceForRoute("198.51.100.1", "10.9.9.9", Addresses()).status()));
  const std::vector<InterfaceAddress> no_lo = {
      {"eth0", "192.0.2.2", false, true}};
  EXPECT_TRUE(absl::IsNotFound(
      InterfaceForRoute("127.0.0.1", "127.0.0.1", no_lo).status()));
}

TEST(OffloadsTest, RecordedVirtioNet) {
  const Offloads o =
      OffloadsFromFeatures(KernelFeatureNames(), kVirtioNetActive);
  EXPECT_EQ(o.scatter_gather, true);
  EXPECT_EQ(o.tx_checksum, true);  // tx-checksum-ip-generic
  EXPECT_EQ(o.tso, true);
  EXPECT_EQ(o.gso, true);
}

TEST(OffloadsTest, RecordedLoopback) {
  const Offloads o =
      OffloadsFromFeatures(KernelFeatureNames(), kLoopbackActive);
  EXPECT_EQ(o.scatter_gather, true);
  EXPECT_EQ(o.tx_checksum, true);
  EXPECT_EQ(o.tso, true);
  EXPECT_EQ(o.gso, true);
}

TEST(OffloadsTest, WithoutScatterGather) {
  const uint32_t active[] = {kVirtioNetActive[0] & ~uint32_t{1},
                             kVirtioNetActive[1]};
  const Offloads o = OffloadsFromFeatures(KernelFeatureNames(), active);
  EXPECT_EQ(o.scatter_gather, false);
  EXPECT_EQ(o.tx_checksum, true);
}

TEST(OffloadsTest, ChecksumIsAnyTcpChecksumAndNotFcoeOrSctp) {
  const std::vector<std::string> names = {
      "tx-checksum-ipv4", "tx-checksum-fcoe-crc", "tx-checksum-sctp"};
  EXPECT_EQ(OffloadsFromFeatures(names, {{0b110}}).tx_checksum, false);
  EXPECT_EQ(OffloadsFromFeatures(names, {{0b001}}).tx_checksum, true);
  // tso: either family.
  EXPECT_EQ(OffloadsFromFeatures(
                {"tx-tcp-segmentation", "tx-tcp6-segmentation"}, {{0b10}})
                .tso,
            true);
}

TEST(OffloadsTest, MissingNamesAndWordsAreUnknownOrOff) {
  const Offloads none = OffloadsFromFeatures({}, {});
  EXPECT_EQ(none.scatter_gather, std::nullopt);
  EXPECT_EQ(none.gso, std::nullopt);
  // A name past the words given is off.
  const Offloads short_words =
      OffloadsFromFeatures(KernelFeatureNames(), {{0xffffffffu}});
  EXPECT_EQ(short_words.scatter_gather, true);
}

InterfaceFacts Nic(const std::string& name) {
  InterfaceFacts f;
  f.name = name;
  f.up = true;
  f.arp_type = 1;
  f.has_device = true;
  f.uevent = "INTERFACE=" + name + "\nIFINDEX=4\n";
  f.driver = "virtio_net";
  f.offloads = OffloadsFromFeatures(KernelFeatureNames(), kVirtioNetActive);
  return f;
}

// An interface with no bus device behind it.
InterfaceFacts Soft(const std::string& name, int arp_type,
                    const std::string& driver, const std::string& uevent = "") {
  InterfaceFacts f;
  f.name = name;
  f.arp_type = arp_type;
  f.driver = driver;
  f.uevent = uevent;
  return f;
}

TEST(DeviceTest, Kinds) {
  InterfaceFacts lo = Soft("lo", 772, "");
  lo.loopback = true;
  EXPECT_EQ(ClassifyDevice(lo), DeviceKind::kLoopback);
  lo.loopback = false;  // the ARP type alone says so
  EXPECT_EQ(ClassifyDevice(lo), DeviceKind::kLoopback);
  EXPECT_EQ(ClassifyDevice(Soft("veth0", 1, "veth")), DeviceKind::kVeth);
  EXPECT_EQ(ClassifyDevice(Soft("tun0", 65534, "")), DeviceKind::kTun);
  EXPECT_EQ(ClassifyDevice(Soft("tap0", 1, "tun")), DeviceKind::kTun);
  EXPECT_EQ(ClassifyDevice(Soft("br0", 1, "",
                                "DEVTYPE=bridge\nINTERFACE=br0\nIFINDEX=5\n")),
            DeviceKind::kBridge);
  EXPECT_EQ(ClassifyDevice(Soft("eth0.7", 1, "802.1Q VLAN Support",
                                "DEVTYPE=vlan\nINTERFACE=eth0.7\n")),
            DeviceKind::kVirtual);
  EXPECT_EQ(ClassifyDevice(Nic("eth0")), DeviceKind::kNic);
}

TEST(InterfaceTest, NicWithOffloadsIsOk) {
  const std::vector<Check> checks = JudgeInterface(Nic("eth0"));
  ASSERT_EQ(checks.size(), 5u);
  for (const Check& c : checks) EXPECT_EQ(c.status, CheckStatus::kOk) << c.name;
  EXPECT_EQ(checks[0].value, "nic, driver virtio_net");
}

TEST(InterfaceTest, LoopbackBlocksBecauseTheReceiverCopies) {
  InterfaceFacts lo;
  lo.name = "lo";
  lo.loopback = true;
  lo.arp_type = 772;
  lo.offloads = OffloadsFromFeatures(KernelFeatureNames(), kLoopbackActive);
  const std::vector<Check> checks = JudgeInterface(lo);
  const Check device = Find(checks, "device");
  EXPECT_EQ(device.status, CheckStatus::kBlocks);
  EXPECT_EQ(device.value, "loopback");
  EXPECT_THAT(device.advice, HasSubstr("the receiving side copies"));
  EXPECT_THAT(device.advice, HasSubstr("cannot pay"));
  EXPECT_EQ(Find(checks, "scatter_gather").status, CheckStatus::kOk);
}

TEST(InterfaceTest, VethAndTunBlockBridgeWarns) {
  InterfaceFacts veth = Nic("veth0");
  veth.has_device = false;
  veth.driver = "veth";
  EXPECT_EQ(Find(JudgeInterface(veth), "device").status, CheckStatus::kBlocks);
  InterfaceFacts tun = Nic("tun0");
  tun.has_device = false;
  tun.arp_type = 65534;
  tun.driver = "tun";
  EXPECT_EQ(Find(JudgeInterface(tun), "device").status, CheckStatus::kBlocks);
  InterfaceFacts br = Nic("br0");
  br.has_device = false;
  br.driver = "bridge";
  EXPECT_EQ(Find(JudgeInterface(br), "device").status, CheckStatus::kWarning);
}

TEST(InterfaceTest, NoScatterGatherBlocks) {
  InterfaceFacts f = Nic("eth1");
  f.offloads->scatter_gather = false;
  const Check sg = Find(JudgeInterface(f), "scatter_gather");
  EXPECT_EQ(sg.status, CheckStatus::kBlocks);
  EXPECT_EQ(sg.value, "off");
  EXPECT_THAT(sg.advice, HasSubstr("silently copies"));
  EXPECT_THAT(sg.advice, HasSubstr("ethtool -K eth1 sg on"));
}

TEST(InterfaceTest, NoChecksumBlocksNoSegmentationWarns) {
  InterfaceFacts f = Nic("eth1");
  f.offloads->tx_checksum = false;
  f.offloads->tso = false;
  f.offloads->gso = std::nullopt;
  const std::vector<Check> checks = JudgeInterface(f);
  EXPECT_EQ(Find(checks, "tx_checksum").status, CheckStatus::kBlocks);
  EXPECT_EQ(Find(checks, "tso").status, CheckStatus::kWarning);
  EXPECT_EQ(Find(checks, "gso").status, CheckStatus::kWarning);
  EXPECT_EQ(Find(checks, "gso").value, "unknown");
}

TEST(InterfaceTest, UnreadableOffloadsWarn) {
  InterfaceFacts f = Nic("eth1");
  f.offloads = std::nullopt;
  f.offloads_error = "SIOCETHTOOL ETHTOOL_GFEATURES: Operation not supported";
  const std::vector<Check> checks = JudgeInterface(f);
  ASSERT_EQ(checks.size(), 2u);
  EXPECT_EQ(checks[1].name, "offloads");
  EXPECT_EQ(checks[1].status, CheckStatus::kWarning);
  EXPECT_THAT(checks[1].advice, HasSubstr("Operation not supported"));
}

SendProbeResult Probe(uint64_t notifications, uint64_t copied) {
  SendProbeResult r;
  r.peer = "127.0.0.1:9000";
  r.report_usage = true;
  r.bytes = 4 << 20;
  r.bytes_zero_copy = 4 << 20;
  r.notifications = notifications;
  r.copied_notifications = copied;
  return r;
}

TEST(SendProbeTest, Results) {
  const Check all = JudgeSendProbe(Probe(64, 64));
  EXPECT_EQ(all.status, CheckStatus::kBlocks);
  EXPECT_THAT(all.value, HasSubstr("64 of 64 notifications copied"));
  EXPECT_THAT(all.advice, HasSubstr("127.0.0.1:9000"));
  EXPECT_EQ(JudgeSendProbe(Probe(64, 3)).status, CheckStatus::kWarning);
  EXPECT_EQ(JudgeSendProbe(Probe(64, 0)).status, CheckStatus::kOk);
  SendProbeResult blind = Probe(64, 0);
  blind.report_usage = false;
  EXPECT_EQ(JudgeSendProbe(blind).status, CheckStatus::kWarning);
}

TEST(SendProbeTest, NothingZeroCopyBlocksWithTheReason) {
  SendProbeResult r = Probe(0, 0);
  r.bytes_zero_copy = 0;
  r.bytes_copied = 4 << 20;
  r.fallbacks_unsupported = 1;
  const Check c = JudgeSendProbe(r);
  EXPECT_EQ(c.status, CheckStatus::kBlocks);
  EXPECT_THAT(c.advice, HasSubstr("EOPNOTSUPP"));
  r.fallbacks_unsupported = 0;
  r.fallbacks_enomem = 2;
  EXPECT_THAT(JudgeSendProbe(r).advice, HasSubstr("RLIMIT_MEMLOCK"));
}

TEST(SendProbeTest, FailedSendWarns) {
  SendProbeResult r;
  r.peer = "192.0.2.7:9000";
  r.status =
      absl::UnavailableError("cannot connect to 192.0.2.7:9000: refused");
  const Check c = JudgeSendProbe(r);
  EXPECT_EQ(c.status, CheckStatus::kWarning);
  EXPECT_THAT(c.value, HasSubstr("refused"));
  EXPECT_THAT(c.advice, HasSubstr("zcsend --listen"));
}

DoctorReport HealthyHost() {
  DoctorReport r;
  r.host.push_back(JudgeKernelRelease("6.18.44"));
  for (Check& c : JudgeRing({absl::OkStatus(), FullFeatures()})) {
    r.host.push_back(c);
  }
  return r;
}

PathReport LoopbackPath(const std::string& target) {
  InterfaceFacts lo;
  lo.name = "lo";
  lo.loopback = true;
  lo.offloads = OffloadsFromFeatures(KernelFeatureNames(), kLoopbackActive);
  return PathReport{target, "lo", JudgeInterface(lo)};
}

TEST(VerdictTest, LoopbackPeerCannotPay) {
  DoctorReport r = HealthyHost();
  r.for_peer = true;
  r.paths.push_back(LoopbackPath("127.0.0.1"));
  const Verdict v = JudgeReport(r);
  EXPECT_FALSE(v.pays);
  EXPECT_EQ(v.text,
            "zero-copy cannot pay to 127.0.0.1 (lo, loopback): the receiving "
            "side copies");
}

TEST(VerdictTest, NicPeerPays) {
  DoctorReport r = HealthyHost();
  r.for_peer = true;
  r.paths.push_back(
      PathReport{"192.0.2.1", "eth0", JudgeInterface(Nic("eth0"))});
  const Verdict v = JudgeReport(r);
  EXPECT_TRUE(v.pays);
  EXPECT_THAT(v.text, HasSubstr("can pay to 192.0.2.1 (eth0"));
}

TEST(VerdictTest, AnyBlockedPeerBlocks) {
  DoctorReport r = HealthyHost();
  r.for_peer = true;
  r.paths.push_back(
      PathReport{"192.0.2.1", "eth0", JudgeInterface(Nic("eth0"))});
  r.paths.push_back(LoopbackPath("localhost"));
  EXPECT_FALSE(JudgeReport(r).pays);
}

TEST(VerdictTest, InterfacesPayWhenOneDoes) {
  DoctorReport r = HealthyHost();
  r.paths.push_back(LoopbackPath("lo"));
  r.paths.push_back(PathReport{"eth0", "eth0", JudgeInterface(Nic("eth0"))});
  const Verdict v = JudgeReport(r);
  EXPECT_TRUE(v.pays);
  EXPECT_THAT(v.text, HasSubstr("can pay on eth0"));
  EXPECT_THAT(v.text,
              HasSubstr("not on lo (loopback): the receiving side copies"));
  r.paths.pop_back();
  EXPECT_FALSE(JudgeReport(r).pays);
}

TEST(VerdictTest, HostBlockWins) {
  DoctorReport r = HealthyHost();
  r.host.push_back(JudgeIoUringDisabled(std::string("2\n"), true));
  r.paths.push_back(PathReport{"eth0", "eth0", JudgeInterface(Nic("eth0"))});
  const Verdict v = JudgeReport(r);
  EXPECT_FALSE(v.pays);
  EXPECT_EQ(v.text,
            "zero-copy cannot pay on this machine: io_uring is off on this "
            "machine (io_uring_disabled)");
}

TEST(VerdictTest, NoPathsCannotPay) {
  DoctorReport r = HealthyHost();
  EXPECT_FALSE(JudgeReport(r).pays);
  r.for_peer = true;
  EXPECT_FALSE(JudgeReport(r).pays);
}

TEST(VerdictTest, BlockingOffloadNamedByValue) {
  DoctorReport r = HealthyHost();
  r.for_peer = true;
  InterfaceFacts f = Nic("eth1");
  f.offloads->scatter_gather = false;
  r.paths.push_back(PathReport{"192.0.2.9", "eth1", JudgeInterface(f)});
  EXPECT_THAT(JudgeReport(r).text, HasSubstr("scatter_gather is off"));
}

}  // namespace
}  // namespace zcplan
