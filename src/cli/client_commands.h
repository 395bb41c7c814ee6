// Client commands of the CLI: each talks to a running server over gRPC.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace nodata::cli {

struct ClientOptions {
  std::string server = "127.0.0.1:7070";
  bool json = false;
};

int TopicCreate(const ClientOptions& c, const std::string& name, uint32_t partitions);
int TopicList(const ClientOptions& c);
int TopicGet(const ClientOptions& c, const std::string& name);
int TopicDelete(const ClientOptions& c, const std::string& name);

struct PublishOptions {
  std::string topic;
  std::string key;
  std::string id;
  std::vector<std::string> headers;  // "k=v"
  std::string data;
  std::string file;  // JSONL; replaces data
  uint32_t batch = 1000;
};
int Publish(const ClientOptions& c, const PublishOptions& p);

}  // namespace nodata::cli
