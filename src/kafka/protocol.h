// The Kafka protocol's API keys, error codes and request header, and the API versions nodata
// serves (what ApiVersions answers).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "kafka/wire.h"

namespace nodata::kafka {

enum ApiKey : int16_t {
  kProduce = 0,
  kFetch = 1,
  kListOffsets = 2,
  kMetadata = 3,
  kOffsetCommit = 8,
  kOffsetFetch = 9,
  kFindCoordinator = 10,
  kJoinGroup = 11,
  kHeartbeat = 12,
  kLeaveGroup = 13,
  kSyncGroup = 14,
  kApiVersions = 18,
  kCreateTopics = 19,
  kDeleteTopics = 20,
  kInitProducerId = 22,
  kDescribeConfigs = 32,
};

// Error codes (the protocol guide's "Error Codes").
enum ErrorCode : int16_t {
  kNone = 0,
  kOffsetOutOfRange = 1,
  kCorruptMessage = 2,
  kUnknownTopicOrPartition = 3,
  kMessageTooLarge = 10,
  kRequestTimedOut = 7,
  kCoordinatorNotAvailable = 15,
  kNotCoordinator = 16,
  kInvalidTopic = 17,
  kRecordListTooLarge = 18,
  kInvalidRequiredAcks = 21,
  kIllegalGeneration = 22,
  kInconsistentGroupProtocol = 23,
  kInvalidGroupId = 24,
  kUnknownMemberId = 25,
  kInvalidSessionTimeout = 26,
  kRebalanceInProgress = 27,
  kUnsupportedVersion = 35,
  kTopicAlreadyExists = 36,
  kInvalidPartitions = 37,
  kInvalidReplicationFactor = 38,
  kInvalidConfig = 40,
  kInvalidRequest = 42,
  kKafkaStorageError = 56,
  kTransactionalIdAuthorizationFailed = 53,
  kGroupIdNotFound = 69,
  kInvalidRecord = 87,
  kUnknownServerError = -1,
};

// A version range of one API, as ApiVersions lists it; `flexible_from` is the first version
// whose requests and responses use compact fields and tagged fields.
struct ApiRange {
  ApiKey key;
  int16_t min;
  int16_t max;
  int16_t flexible_from;
};

// Every API served, in key order.
std::span<const ApiRange> SupportedApis();
// The range of `key`, or null when it is not served.
const ApiRange* FindApi(int16_t key);

// A request's header: v1, or v2 (with tagged fields) in flexible versions.
struct RequestHeader {
  int16_t api_key = 0;
  int16_t api_version = 0;
  int32_t correlation_id = 0;
  std::optional<std::string_view> client_id;
  bool flexible = false;  // the request's body and its response use compact fields
};

// Reads a request's header from `r` (positioned at the frame's start). A key not served reads
// as not flexible.
RequestHeader ReadRequestHeader(Reader& r);

}  // namespace nodata::kafka
