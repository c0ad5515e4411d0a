// SPDX-License-Identifier: Apache-2.0
#include "zcplan/tools/cli_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "zcplan/planner/cost.h"
#include "zcplan/version.h"

namespace zcplan {
namespace {

absl::string_view FileKind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

absl::Status Refuse(absl::string_view what, const std::string& path,
                    absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " ", QuoteForMessage(path), ": ", why));
}

// The directory that holds `path`'s last component ("." for a bare name).
std::string ParentOf(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// OK when `path` does not exist and its parent is a directory this process
// may create entries in; `kind` is "file" or "directory".
absl::Status CheckCreatable(const std::string& path, absl::string_view what,
                            absl::string_view kind) {
  const std::string parent = ParentOf(path);
  struct stat st {};
  if (stat(parent.c_str(), &st) != 0) {
    return Refuse(
        what, path,
        absl::StrCat("cannot create ", kind, ": ", QuoteForMessage(parent),
                     ": ", std::strerror(errno)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Refuse(
        what, path,
        absl::StrCat("cannot create ", kind, ": ", QuoteForMessage(parent),
                     " is ", FileKind(st.st_mode)));
  }
  if (access(parent.c_str(), W_OK | X_OK) != 0) {
    return Refuse(
        what, path,
        absl::StrCat("cannot create ", kind, " in ", QuoteForMessage(parent),
                     ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status CheckOutput(const std::string& path, absl::string_view what,
                         bool directory) {
  if (path.empty()) return Refuse(what, path, "empty path");
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) {
      return Refuse(what, path,
                    absl::StrCat("cannot stat: ", std::strerror(errno)));
    }
    std::string name = path;
    if (directory) {
      while (name.size() > 1 && name.back() == '/') name.pop_back();
    } else if (name.back() == '/') {
      return Refuse(what, path, "names a directory; give a file");
    }
    return CheckCreatable(name, what, directory ? "directory" : "file");
  }
  if (directory ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Refuse(what, path,
                  absl::StrCat("is ", FileKind(st.st_mode),
                               directory ? "; give a directory"
                                         : "; give a regular file or a new "
                                           "name"));
  }
  if (access(path.c_str(), directory ? W_OK | X_OK : W_OK) != 0) {
    return Refuse(what, path,
                  absl::StrCat("cannot write", directory ? " into" : "", ": ",
                               std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckOutputFile(const std::string& path, absl::string_view what) {
  return CheckOutput(path, what, /*directory=*/false);
}

absl::Status CheckOutputDirectory(const std::string& path,
                                  absl::string_view what) {
  return CheckOutput(path, what, /*directory=*/true);
}

absl::StatusOr<RegularFile> OpenRegularFile(const std::string& path,
                                            absl::string_view what,
                                            uint64_t max_bytes) {
  const int fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    return Refuse(what, path,
                  absl::StrCat("cannot open: ", std::strerror(errno)));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return Refuse(what, path,
                  absl::StrCat("cannot stat: ", std::strerror(error)));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return Refuse(
        what, path,
        absl::StrCat("is ", FileKind(st.st_mode), "; give a regular file"));
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > max_bytes) {
    close(fd);
    return Refuse(what, path,
                  absl::StrCat("is ", size, " bytes, above the limit of ",
                               max_bytes, " bytes"));
  }
  // Regular files ignore O_NONBLOCK, but a caller that hands the descriptor
  // on should get a plain one.
  const int flags = fcntl(fd, F_GETFL);
  if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return RegularFile{fd, size};
}

absl::StatusOr<std::string> ReadRegularFile(const std::string& path,
                                            absl::string_view what,
                                            uint64_t max_bytes) {
  absl::StatusOr<RegularFile> file = OpenRegularFile(path, what, max_bytes);
  if (!file.ok()) return file.status();
  std::string text;
  text.reserve(file->size);
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = read(file->fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(file->fd);
      return Refuse(what, path,
                    absl::StrCat("cannot read: ", std::strerror(error)));
    }
    if (n == 0) break;
    if (text.size() + static_cast<size_t>(n) > max_bytes) {
      close(file->fd);
      return Refuse(what, path,
                    absl::StrCat("grew above the limit of ", max_bytes,
                                 " bytes while being read"));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  close(file->fd);
  return text;
}

absl::StatusOr<bool> LineReader::Next(absl::string_view* line) {
  constexpr size_t kChunk = 1 << 16;
  too_long_ = false;
  bool skipping = false;    // Past the limit: dropping bytes up to a '\n'.
  size_t scanned = begin_;  // Where to look for the next '\n'.
  for (;;) {
    const void* found =
        std::memchr(buffer_.data() + scanned, '\n', end_ - scanned);
    if (found != nullptr) {
      const size_t newline =
          static_cast<size_t>(static_cast<const char*>(found) - buffer_.data());
      if (skipping || newline - begin_ > max_line_bytes_) {
        if (!skip_long_lines_) break;
        begin_ = newline + 1;
        ++lines_;
        too_long_ = true;
        *line = absl::string_view();
        return true;
      }
      *line = absl::string_view(buffer_).substr(begin_, newline - begin_);
      begin_ = newline + 1;
      ++lines_;
      return true;
    }
    scanned = end_;
    if (skipping || end_ - begin_ > max_line_bytes_) {
      if (!skip_long_lines_) break;
      skipping = true;
      begin_ = end_;  // Drop what is held of the line.
    }
    if (eof_) {
      if (skipping) {
        ++lines_;
        too_long_ = true;
        *line = absl::string_view();
        return true;
      }
      if (begin_ == end_) return false;
      *line = absl::string_view(buffer_).substr(begin_, end_ - begin_);
      begin_ = end_;
      ++lines_;
      return true;
    }
    // Keep the unread part, then read behind it.
    if (begin_ > 0) {
      buffer_.erase(0, begin_);
      end_ -= begin_;
      scanned -= begin_;
      begin_ = 0;
    }
    if (buffer_.size() < end_ + kChunk) buffer_.resize(end_ + kChunk);
    ssize_t n;
    do {
      n = pread(fd_, &buffer_[end_], kChunk, static_cast<off_t>(offset_));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read: ", std::strerror(errno)));
    }
    if (n == 0) {
      eof_ = true;
      continue;
    }
    offset_ += static_cast<uint64_t>(n);
    if (offset_ > max_bytes_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "grew above the limit of ", max_bytes_, " bytes while being read"));
    }
    end_ += static_cast<size_t>(n);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("line ", lines_ + 1, " is longer than the limit of ",
                   max_line_bytes_, " bytes"));
}

std::string EscapeForMessage(absl::string_view text, size_t max_chars) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char ch = static_cast<unsigned char>(text[i]);
    std::string piece;
    switch (ch) {
      case '\n':
        piece = "\\n";
        break;
      case '\t':
        piece = "\\t";
        break;
      case '\r':
        piece = "\\r";
        break;
      case '\\':
        piece = "\\\\";
        break;
      default:
        if (ch < 0x20 || ch >= 0x7f) {
          piece = absl::StrFormat("\\x%02x", ch);
        } else {
          piece.assign(1, static_cast<char>(ch));
        }
    }
    if (out.size() + piece.size() > max_chars) {
      absl::StrAppend(&out, "...(", text.size(), " bytes)");
      return out;
    }
    out += piece;
  }
  return out;
}

std::string QuoteForMessage(absl::string_view text) {
  return absl::StrCat("'", EscapeForMessage(text), "'");
}

bool PrintVersionIfAsked(absl::Span<const std::string> args,
                         absl::string_view tool, std::ostream& out) {
  for (const std::string& arg : args) {
    if (arg == "--") return false;
    if (arg == "--version") {
      out << tool << " " << kVersion << "\n";
      return true;
    }
  }
  return false;
}

FirstAnswer AnswerVersionOrHelp(absl::Span<const std::string> args,
                                absl::string_view tool, std::string (*usage)(),
                                std::ostream& out) {
  if (PrintVersionIfAsked(args, tool, out)) {
    out.flush();
  } else {
    const auto end = std::find(args.begin(), args.end(), "--");
    if (std::find_if(args.begin(), end, [](const std::string& arg) {
          return arg == "--help" || arg == "-h";
        }) == end) {
      return FirstAnswer::kNone;
    }
    out << usage() << std::flush;
  }
  return out ? FirstAnswer::kAnswered : FirstAnswer::kOutputFailed;
}

absl::StatusOr<CostWeights> ReadCostWeightsFile(const std::string& path) {
  absl::StatusOr<std::string> text =
      ReadRegularFile(path, "weights file", kMaxWeightsFileBytes);
  if (!text.ok()) return text.status();
  const std::string name = absl::StrCat("weights file ", QuoteForMessage(path));
  absl::StatusOr<CostWeights> weights = ParseCostWeights(*text);
  if (!weights.ok()) {
    // The parser quotes the file's text as it is (control bytes, a whole
    // megabyte line): escaped and capped for a one-line message.
    return absl::InvalidArgumentError(absl::StrCat(
        name, ": ", EscapeForMessage(weights.status().message(), 300)));
  }
  // ParseCostWeights keeps the defaults for what a file does not name; a file
  // that names nothing is a mistake (an empty or truncated file), not a
  // request for the defaults.
  bool names_a_weight = false;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = line.substr(0, line.find('#'));
    names_a_weight |= !absl::StripAsciiWhitespace(line).empty();
  }
  if (!names_a_weight) {
    return absl::InvalidArgumentError(absl::StrCat(
        name,
        ": names no weight (it is empty or holds only comments); give "
        "'name value' lines, as zcsweep --calibrate writes them"));
  }
  return weights;
}

}  // namespace zcplan
