// A transform for tests: copies each record to every output (so output i of a record goes to
// output topic i and gets index i), and fails on a record whose data contains the configuration
// text (never when it is empty).
#include <string>

#include "nodata/component.h"

namespace {

class FanoutFail : public nodata::component::Transform {
 public:
  absl::Status Open(const nodata::component::ComponentEnv& env) override {
    poison_ = env.config;
    outputs_ = env.outputs.size();
    return absl::OkStatus();
  }

  absl::Status Process(const nodata::client::Record& in,
                       nodata::component::Emitter& out) override {
    for (size_t o = 0; o < outputs_; ++o) {
      // The poison check comes after the first output: a failing record's partial outputs
      // must not count as done.
      if (o == 1 && !poison_.empty() && in.event.data.find(poison_) != std::string::npos) {
        return absl::InternalError("poison record");
      }
      if (absl::Status s = out.Emit(o, in.event); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

 private:
  std::string poison_;
  size_t outputs_ = 0;
};

}  // namespace

int main() {
  FanoutFail transform;
  return nodata::component::RunComponent(transform);
}
