// The hot tier's on-disk format: record frames, segment headers and index files.
// Persistent format, described in docs/formats/log.md: never renumber or reorder a field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/record.h"

namespace nodata::log {

// The record types are the shared model (common/record.h); the log frames them.
using nodata::DecodedRecord;
using nodata::kFlagServerAssignedId;
using nodata::Record;
using nodata::RecordView;

// Frame: crc32c(4, masked, over length and body) | length(4) | body(length). Little endian.
inline constexpr size_t kFrameHeaderBytes = 8;
// offset(8) ts(8) ingest(8) flags(4) id_len(4) key_len(4) data_len(4) header_count(4).
inline constexpr size_t kMinBodyBytes = 44;
// A frame longer than this is corrupt by definition (limits a damaged length field).
inline constexpr uint32_t kMaxBodyBytes = 256u << 20;

// Segment header, the first kSegmentHeaderBytes of every .log file.
inline constexpr char kSegmentMagic[8] = {'N', 'D', 'L', 'O', 'G', 'S', 'E', 'G'};
inline constexpr uint32_t kSegmentVersion = 1;
inline constexpr size_t kSegmentHeaderBytes = 32;

// Size of the frame EncodeFrame appends for `r`.
size_t FrameSize(const RecordView& r);
// Appends the frame of `r` with `offset` to `out`.
void EncodeFrame(uint64_t offset, const RecordView& r, std::string* out);

enum class FrameResult {
  kOk,          // *frame_bytes and *record are set
  kIncomplete,  // `buf` ends inside the frame
  kCorrupt,     // bad length, bad checksum or inconsistent body
};
// Decodes the frame at the start of `buf`.
FrameResult DecodeFrame(std::string_view buf, size_t* frame_bytes, DecodedRecord* record);

std::string EncodeSegmentHeader(uint64_t base_offset);
// OK when `header` is a valid segment header for `base_offset`.
bool CheckSegmentHeader(std::string_view header, uint64_t base_offset);

// Sparse index entry: the record with offset base+relative_offset starts at byte `position`.
struct IndexEntry {
  uint32_t relative_offset;
  uint32_t position;
};

// What a sealed segment's .index file holds.
struct SegmentIndex {
  uint64_t base_offset = 0;
  uint64_t end_offset = 0;  // one past the last record
  uint64_t log_bytes = 0;   // size of the .log file it describes
  int64_t min_ingest_us = 0;
  int64_t max_ingest_us = 0;
  std::vector<IndexEntry> entries;
};
std::string EncodeIndex(const SegmentIndex& index);
absl::StatusOr<SegmentIndex> DecodeIndex(std::string_view bytes);

// "<n, 20 digits zero-padded><suffix>": names that sort like their numbers (segments, indexes,
// journal files), and its parser (false for any other name).
std::string NumberedFileName(uint64_t n, std::string_view suffix);
bool ParseNumberedFileName(std::string_view name, std::string_view suffix, uint64_t* n);

// File names: 20-digit zero-padded base offset, so names sort like offsets.
std::string SegmentFileName(uint64_t base_offset);
std::string IndexFileName(uint64_t base_offset);
// Parses "<20 digits>.log"; false for any other name.
bool ParseSegmentFileName(std::string_view name, uint64_t* base_offset);
// Parses "<20 digits>.index"; false for any other name.
bool ParseIndexFileName(std::string_view name, uint64_t* base_offset);

}  // namespace nodata::log
