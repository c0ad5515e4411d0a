# -*- python -*-
# SPDX-License-Identifier: Apache-2.0

"""A repository rule that exposes libraries installed on the host as
`cc_library` targets, using the flags `pkg-config` reports for them.

Each target is a `cc_library` without sources: the headers stay where the
distribution put them (normally /usr/include, which the compiler already
searches and treats as system headers, so `-Werror` is not tripped by them),
and the library's `--libs` become `linkopts`, which Bazel carries to every
binary that depends on the target.

Example (see com_google_absl/repository.bzl for a real one):

    pkg_config_repository(
        name = "com_google_absl",
        targets = {
            "absl/status:statusor": ["absl_statusor"],
            "absl/strings": ["absl_strings"],
        },
    )

gives `@com_google_absl//absl/status:statusor` and
`@com_google_absl//absl/strings` (a label without ":" names the target after
the last path component, as Bazel does).

Cflags are translated as follows, because `copts` would not reach the code
that includes the headers:
  -I<dir> / -isystem <dir>  -> `includes` (through a symlink in this repo, so
                               the headers are still included as system ones);
                               dropped when <dir> is /usr/include.
  -D<macro>                 -> `defines`.
Any other cflag is an error, so that nothing is silently lost.

The rule runs pkg-config once per fetch; to pick up a changed installation
run `bazel sync --configure` (or `bazel clean --expunge`).
"""

def _split_label(label):
    """Returns (package, name) for "pkg:name", "pkg" (name = last component)
    or ":name" (root package)."""
    if ":" in label:
        package, name = label.split(":")
    else:
        package, name = label, label.split("/")[-1]
    if not name:
        fail("Bad target label '{}'".format(label))
    return package, name

def _pkg_config(repository_ctx, pkg_config, flag, modules):
    """Runs `pkg-config <flag> <modules...>` and returns its words."""
    result = repository_ctx.execute([pkg_config, flag] + modules)
    if result.return_code != 0:
        fail("pkg-config {} {} failed (exit {}): {}\n{}".format(
            flag,
            " ".join(modules),
            result.return_code,
            result.stderr.strip(),
            "Install the missing -dev package(s): run tools/setup.sh.",
        ))
    words = result.stdout.replace("\t", " ").replace("\n", " ").split(" ")
    return [w for w in words if w]

def _include_link(repository_ctx, package, directory):
    """Symlinks `directory` into `package` and returns the `includes` entry."""
    link = "_include/" + directory.strip("/").replace("/", "_")
    path = package + "/" + link if package else link
    if not repository_ctx.path(path).exists:
        repository_ctx.symlink(directory, path)
    return link

def _translate_cflags(repository_ctx, label, package, cflags):
    """Returns (includes, defines) for the cflags of one target."""
    includes = []
    defines = []
    expect_dir = False
    for flag in cflags:
        directory = None
        if expect_dir:
            directory = flag
            expect_dir = False
        elif flag == "-isystem" or flag == "-I":
            expect_dir = True
            continue
        elif flag.startswith("-isystem"):
            directory = flag[len("-isystem"):]
        elif flag.startswith("-I"):
            directory = flag[len("-I"):]
        elif flag.startswith("-D"):
            if flag[2:] not in defines:
                defines.append(flag[2:])
            continue
        else:
            fail("pkg-config cflag '{}' of {} has no Bazel equivalent".format(
                flag,
                label,
            ))
        if directory.rstrip("/") == "/usr/include":
            continue  # The compiler's own system include directory.
        link = _include_link(repository_ctx, package, directory)
        if link not in includes:
            includes.append(link)
    return includes, defines

def _starlark_list(items):
    return "[" + ", ".join(['"{}"'.format(x) for x in items]) + "]"

def _impl(repository_ctx):
    pkg_config = repository_ctx.which("pkg-config")
    if pkg_config == None:
        fail("pkg-config is not on PATH; run tools/setup.sh")

    # package -> list of BUILD stanzas.
    packages = {"": []}
    for label, modules in repository_ctx.attr.targets.items():
        package, name = _split_label(label)
        extra_linkopts = repository_ctx.attr.extra_linkopts.get(label, [])
        libs = _pkg_config(repository_ctx, pkg_config, "--libs", modules)
        cflags = _pkg_config(repository_ctx, pkg_config, "--cflags", modules)
        includes, defines = _translate_cflags(
            repository_ctx,
            label,
            package,
            cflags,
        )
        versions = _pkg_config(
            repository_ctx,
            pkg_config,
            "--modversion",
            modules,
        )
        attrs = ['    name = "{}",'.format(name)]
        if includes:
            # Declared as inputs, so that the sandbox has them.
            attrs.append("    hdrs = glob({}),".format(
                _starlark_list([d + "/**" for d in includes]),
            ))
            attrs.append("    includes = {},".format(_starlark_list(includes)))
        if defines:
            attrs.append("    defines = {},".format(_starlark_list(defines)))
        attrs.append("    linkopts = {},".format(
            _starlark_list(extra_linkopts + libs),
        ))
        packages.setdefault(package, []).append(
            "\n# pkg-config: {}\ncc_library(\n{}\n)\n".format(
                ", ".join([
                    "{} {}".format(m, v)
                    for m, v in zip(modules, versions)
                ]),
                "\n".join(attrs),
            ),
        )

    header = """# Generated for @{repo} by zcplan's
# tools/workspace/pkg_config.bzl; do not edit.

load("@rules_cc//cc:defs.bzl", "cc_library")

package(default_visibility = ["//visibility:public"])
""".format(repo = repository_ctx.name)
    for package, stanzas in packages.items():
        path = package + "/BUILD.bazel" if package else "BUILD.bazel"
        repository_ctx.file(path, header + "".join(stanzas))
    repository_ctx.file(
        "WORKSPACE",
        'workspace(name = "{}")\n'.format(repository_ctx.name),
    )

pkg_config_repository = repository_rule(
    doc = "Exposes host libraries found by pkg-config as cc_library targets.",
    implementation = _impl,
    attrs = {
        "targets": attr.string_list_dict(
            mandatory = True,
            doc = "Target label (\"pkg:name\", \"pkg\" or \":name\") -> " +
                  "pkg-config modules whose flags it carries.",
        ),
        "extra_linkopts": attr.string_list_dict(
            doc = "Target label -> link options placed before the " +
                  "pkg-config ones (for libraries that ship no .pc file).",
        ),
    },
    environ = ["PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"],
    configure = True,
)
