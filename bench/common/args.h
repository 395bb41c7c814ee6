// Command-line flags of the benchmark drivers: `--name value` pairs and bare `--name` switches.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace nodata::bench {

struct Args {
  std::vector<std::string> argv;
  bool Has(std::string_view name) const {
    return std::find(argv.begin(), argv.end(), name) != argv.end();
  }
  std::string Get(std::string_view name, std::string fallback) const {
    for (size_t i = 0; i + 1 < argv.size(); ++i) {
      if (argv[i] == name) return argv[i + 1];
    }
    return fallback;
  }
  // Decimal, or hexadecimal with 0x.
  uint64_t GetInt(std::string_view name, uint64_t fallback) const {
    std::string v = Get(name, "");
    return v.empty() ? fallback : std::strtoull(v.c_str(), nullptr, 0);
  }
};

}  // namespace nodata::bench
