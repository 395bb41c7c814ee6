// A program component that is a source: publishes {"n": i} for i = 0 .. COUNT-1 to output 0,
// where COUNT is the configuration (default 0), then idles until stopped. Event i has the id
// `<name>:<i>`, so a restarted source publishes the same ids again and the server drops them as
// duplicates: the topic holds each i once.
//
//   nodata component add numbers --exec build-sdk/examples/counter_source \
//       --source numbers --config 100000
#include <charconv>
#include <chrono>
#include <cstdint>
#include <string>

#include "nodata/component.h"

namespace {

class Counter : public nodata::component::Source {
 public:
  absl::Status Run(nodata::component::SourceContext& ctx) override {
    const std::string& config = ctx.config();
    uint64_t count = 0;
    const auto [end, error] = std::from_chars(config.data(), config.data() + config.size(), count);
    if (!config.empty() && (error != std::errc() || end != config.data() + config.size())) {
      return absl::InvalidArgumentError("the configuration must be a record count, not \"" +
                                        ctx.config() + "\"");
    }
    const std::string prefix = ctx.env().name + ":";
    for (uint64_t i = 0; i < count && !ctx.stopping(); ++i) {
      nodata::client::Event event;
      event.id = prefix + std::to_string(i);
      event.data = "{\"n\": " + std::to_string(i) + "}";
      ctx.Publish(0, std::move(event));  // failures end the run once Run returns
    }
    ctx.Flush();
    while (!ctx.WaitForStop(std::chrono::seconds(60))) {
    }
    return absl::OkStatus();
  }
};

}  // namespace

int main() {
  Counter counter;
  return nodata::component::RunComponent(counter);
}
