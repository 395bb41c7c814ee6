// A program component that filters: keeps the records whose data contains the configuration
// text (all records when it is empty) and forwards them unchanged to output 0. The same logic as
// sdk/component/c/examples/filter.c, as a program instead of a WebAssembly module.
//
//   nodata component add errors --exec build-sdk/examples/filter_component \
//       --transform logs:errors --config ERROR
#include <string>

#include "nodata/component.h"

namespace {

class Filter : public nodata::component::Transform {
 public:
  absl::Status Open(const nodata::component::ComponentEnv& env) override {
    needle_ = env.config;
    return absl::OkStatus();
  }

  absl::Status Process(const nodata::client::Record& in,
                       nodata::component::Emitter& out) override {
    if (in.event.data.find(needle_) == std::string::npos) return absl::OkStatus();
    return out.Emit(0, in.event);
  }

 private:
  std::string needle_;
};

}  // namespace

int main() {
  Filter filter;
  return nodata::component::RunComponent(filter);
}
