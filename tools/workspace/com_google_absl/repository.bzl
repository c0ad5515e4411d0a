# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""Provides Abseil under its usual repository name, @com_google_absl, from
the host's copy (Debian's libabsl-dev, 20220623 on Debian 12), found with
pkg-config.

The labels are Abseil's own (`@com_google_absl//absl/status:statusor`, ...),
so the project's BUILD files work unchanged in a workspace that builds
Abseil from source. Each maps to the pkg-config module CMake installs for
that target, `absl_<name>`; pkg-config resolves the transitive libraries.

Only a curated subset is listed: add a line here when the project starts
using another Abseil target (check that
/usr/lib/x86_64-linux-gnu/pkgconfig/absl_<name>.pc exists). Note that
Abseil 20220623 has no absl/log (it arrived in 20230125).
"""

load("//tools/workspace:pkg_config.bzl", "pkg_config_repository")

# Abseil label -> pkg-config module.
_TARGETS = {
    "absl/algorithm": "absl_algorithm",
    "absl/algorithm:container": "absl_algorithm_container",
    "absl/base": "absl_base",
    "absl/base:config": "absl_config",
    "absl/base:core_headers": "absl_core_headers",
    "absl/base:dynamic_annotations": "absl_dynamic_annotations",
    "absl/base:endian": "absl_endian",
    "absl/base:log_severity": "absl_log_severity",
    "absl/cleanup": "absl_cleanup",
    "absl/container:btree": "absl_btree",
    "absl/container:fixed_array": "absl_fixed_array",
    "absl/container:flat_hash_map": "absl_flat_hash_map",
    "absl/container:flat_hash_set": "absl_flat_hash_set",
    "absl/container:inlined_vector": "absl_inlined_vector",
    "absl/container:node_hash_map": "absl_node_hash_map",
    "absl/container:node_hash_set": "absl_node_hash_set",
    "absl/debugging:failure_signal_handler": "absl_failure_signal_handler",
    "absl/debugging:leak_check": "absl_leak_check",
    "absl/debugging:stacktrace": "absl_stacktrace",
    "absl/debugging:symbolize": "absl_symbolize",
    "absl/flags:commandlineflag": "absl_flags_commandlineflag",
    "absl/flags:config": "absl_flags_config",
    "absl/flags:flag": "absl_flags",
    "absl/flags:marshalling": "absl_flags_marshalling",
    "absl/flags:parse": "absl_flags_parse",
    "absl/flags:reflection": "absl_flags_reflection",
    "absl/flags:usage": "absl_flags_usage",
    "absl/functional:any_invocable": "absl_any_invocable",
    "absl/functional:bind_front": "absl_bind_front",
    "absl/functional:function_ref": "absl_function_ref",
    "absl/hash": "absl_hash",
    "absl/memory": "absl_memory",
    "absl/meta:type_traits": "absl_type_traits",
    "absl/numeric:bits": "absl_bits",
    "absl/numeric:int128": "absl_int128",
    "absl/numeric:representation": "absl_numeric_representation",
    "absl/random": "absl_random_random",
    "absl/random:bit_gen_ref": "absl_random_bit_gen_ref",
    "absl/random:distributions": "absl_random_distributions",
    "absl/random:seed_sequences": "absl_random_seed_sequences",
    "absl/status": "absl_status",
    "absl/status:statusor": "absl_statusor",
    "absl/strings": "absl_strings",
    "absl/strings:cord": "absl_cord",
    "absl/strings:str_format": "absl_str_format",
    "absl/synchronization": "absl_synchronization",
    "absl/time": "absl_time",
    "absl/time:civil_time": "absl_civil_time",
    "absl/types:any": "absl_any",
    "absl/types:compare": "absl_compare",
    "absl/types:optional": "absl_optional",
    "absl/types:span": "absl_span",
    "absl/types:variant": "absl_variant",
    "absl/utility": "absl_utility",
}

def com_google_absl_repository(name = "com_google_absl"):
    pkg_config_repository(
        name = name,
        targets = {label: [module] for label, module in _TARGETS.items()},
    )
