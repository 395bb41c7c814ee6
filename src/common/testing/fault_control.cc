#include "common/testing/fault_control.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

#include "common/strings.h"

namespace nodata::testing {
namespace {

// A count, or "off" for -1.
bool ParseCount(std::string_view word, int64_t* out) {
  if (word == "off") {
    *out = -1;
    return true;
  }
  return absl::SimpleAtoi(absl::string_view(word.data(), word.size()), out) && *out >= 0;
}

}  // namespace

FaultControl::FaultControl(FaultFs& fs, std::string path)
    : fs_(fs), path_(std::move(path)), thread_([this] { Run(); }) {}

FaultControl::~FaultControl() {
  stop_.store(true);
  thread_.join();
}

absl::Status FaultControl::Apply(FaultFs& fs, std::string_view text, uint64_t* generation) {
  *generation = 0;
  for (absl::string_view raw : absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    absl::string_view line = absl::StripAsciiWhitespace(raw);
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() != 2) {
      return absl::InvalidArgumentError(StrCat("not 'name value': ", ToStd(line)));
    }
    const std::string& name = words[0];
    const std::string& value = words[1];
    int64_t n = 0;
    if (name == "generation" && ParseCount(value, &n) && n >= 0) {
      *generation = static_cast<uint64_t>(n);
    } else if (name == "sync" && (value == "fail" || value == "ok")) {
      fs.SetFailSync(value == "fail");
    } else if (name == "sync-fail-every" && ParseCount(value, &n)) {
      fs.SetFailSyncEvery(n < 0 ? 0 : static_cast<uint64_t>(n));
    } else if (name == "write-budget" && ParseCount(value, &n)) {
      fs.SetWriteBudget(n);
    } else if (name == "disk-full" && (value == "on" || value == "off")) {
      fs.SetDiskFull(value == "on");
    } else if (name == "rename-fail-from" && ParseCount(value, &n)) {
      fs.FailRenamesFrom(n);
    } else {
      return absl::InvalidArgumentError(StrCat("unknown fault command: ", ToStd(line)));
    }
  }
  return absl::OkStatus();
}

void FaultControl::Run() {
  std::string applied;
  bool first = true;
  uint64_t generation = 0;
  uint64_t reported = UINT64_MAX;
  std::string error;
  while (!stop_.load()) {
    std::ifstream in(path_);
    if (in) {
      std::stringstream text;
      text << in.rdbuf();
      if (first || text.str() != applied) {
        applied = text.str();
        absl::Status s = Apply(fs_, applied, &generation);
        error = s.ok() ? "" : std::string(s.message());
        reported = UINT64_MAX;
      }
    }
    first = false;
    if (fs_.injected() != reported) {
      reported = fs_.injected();
      WriteStatus(generation, error);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void FaultControl::WriteStatus(uint64_t generation, const std::string& error) {
  // Not through fs_: the status must not fail with the faults it reports.
  const std::string tmp = path_ + ".status.tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "generation " << generation << "\ninjected " << fs_.injected() << "\nsyncs "
        << fs_.sync_count() << "\n";
    if (!error.empty()) out << "error " << error << "\n";
  }
  std::rename(tmp.c_str(), (path_ + ".status").c_str());
}

}  // namespace nodata::testing
