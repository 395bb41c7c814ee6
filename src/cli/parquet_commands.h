// CLI commands over Parquet files, run locally (no server).
#pragma once

#include <string>

namespace nodata::cli {

// `nodata parquet inspect FILE`: the schema, row groups, column chunks and their statistics, as
// JSON on stdout. Returns the exit code.
int ParquetInspect(const std::string& path);

}  // namespace nodata::cli
