// Runs the .wast corpus in testdata/spec (turned into JSON commands and modules by wabt's
// wast2json at build time) on both tiers: every assert_return, assert_trap, assert_invalid and
// assert_malformed.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "wasm/runtime.h"
#include "wasm/test_support.h"

namespace nodata::wasm {
namespace {

using nlohmann::json;

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

ValType ParseType(const std::string& t) {
  if (t == "i64") return ValType::kI64;
  if (t == "f32") return ValType::kF32;
  if (t == "f64") return ValType::kF64;
  return ValType::kI32;
}

Value ParseValue(const json& v) {
  Value out;
  out.type = ParseType(v["type"]);
  out.bits = std::stoull(v["value"].get<std::string>());
  return out;
}

TrapKind ExpectedTrap(const std::string& text) {
  auto has = [&](const char* s) { return text.find(s) != std::string::npos; };
  if (has("divide by zero")) return TrapKind::kIntegerDivideByZero;
  if (has("integer overflow")) return TrapKind::kIntegerOverflow;
  if (has("invalid conversion")) return TrapKind::kInvalidConversion;
  if (has("out of bounds")) return TrapKind::kOutOfBounds;
  if (has("element") || has("indirect call")) return TrapKind::kIndirectCall;
  if (has("stack")) return TrapKind::kCallStackExhausted;
  return TrapKind::kUnreachable;
}

// Whether `got` matches the expectation `want` (a value, or nan:canonical / nan:arithmetic).
bool Matches(const json& want, const Value& got, std::string* why) {
  ValType type = ParseType(want["type"]);
  std::string text = want["value"];
  bool is_f32 = type == ValType::kF32;
  uint64_t bits = got.bits;
  if (text == "nan:canonical" || text == "nan:arithmetic") {
    uint64_t exponent = is_f32 ? 0x7f800000ull : 0x7ff0000000000000ull;
    uint64_t quiet = is_f32 ? 0x00400000ull : 0x0008000000000000ull;
    uint64_t payload = is_f32 ? 0x007fffffull : 0x000fffffffffffffull;
    uint64_t magnitude = bits & (exponent | payload);
    bool ok = text == "nan:canonical" ? magnitude == (exponent | quiet)
                                      : (magnitude & (exponent | quiet)) == (exponent | quiet);
    if (!ok) *why = "expected " + text + ", got bits " + std::to_string(bits);
    return ok;
  }
  uint64_t want_bits = std::stoull(text);
  if (type == ValType::kI32 || type == ValType::kF32) bits &= 0xffffffffull;
  if (bits != want_bits) {
    *why = "expected bits " + text + ", got " + std::to_string(bits) + " (" + got.ToString() + ")";
    return false;
  }
  return true;
}

struct SpecCase {
  std::string file;
  Tier tier;
};

void PrintTo(const SpecCase& c, std::ostream* os) {
  *os << c.file << ".wast on the " << TierName(c.tier);
}

class SpecTest : public testing::TestWithParam<SpecCase> {};

TEST_P(SpecTest, Passes) {
  const SpecCase& c = GetParam();
  std::string dir = std::string(NODATA_WASM_TESTDATA) + "/spec";
  std::ifstream in(dir + "/" + c.file + ".json");
  ASSERT_TRUE(in.good()) << c.file;
  json script = json::parse(in);
  Runtime& runtime = test::SharedRuntime();
  Limits limits;
  std::unique_ptr<Instance> instance;
  int passed = 0;
  for (const json& cmd : script["commands"]) {
    std::string type = cmd["type"];
    int line = cmd["line"];
    SCOPED_TRACE(c.file + ".wast:" + std::to_string(line));
    if (type == "module") {
      auto bytes = ReadBytes(dir + "/" + cmd["filename"].get<std::string>());
      auto module = runtime.Load(bytes, limits, c.tier == Tier::kNative);
      ASSERT_TRUE(module.ok()) << module.status();
      if (c.tier == Tier::kNative) {
        NativeStatus status = (*module)->WaitNative(120'000);
        ASSERT_EQ(status.state, NativeStatus::State::kReady) << status.detail;
      }
      auto made = (*module)->Instantiate({}, c.tier);
      ASSERT_TRUE(made.ok()) << made.status();
      instance = std::move(made).value();
      ASSERT_EQ(instance->tier(), c.tier);
      continue;
    }
    if (type == "assert_invalid" || type == "assert_malformed") {
      std::string file = cmd["filename"];
      if (cmd.value("module_type", "binary") != "binary") continue;  // text-only malformations
      auto module = runtime.Load(ReadBytes(dir + "/" + file), limits, false);
      EXPECT_FALSE(module.ok()) << type << " module " << file << " was accepted";
      if (!module.ok()) {
        EXPECT_EQ(module.status().code(), absl::StatusCode::kInvalidArgument);
        ++passed;
      }
      continue;
    }
    if (type != "assert_return" && type != "assert_trap" && type != "action") {
      ADD_FAILURE() << "unsupported command " << type;
      continue;
    }
    ASSERT_NE(instance, nullptr);
    const json& action = cmd["action"];
    ASSERT_EQ(action["type"], "invoke");
    auto fn = instance->Function(action["field"].get<std::string>());
    ASSERT_TRUE(fn.ok()) << fn.status();
    std::vector<Value> args;
    for (const json& a : action["args"]) args.push_back(ParseValue(a));
    std::vector<Value> results(fn->results.size());
    Trap trap;
    absl::Status status = instance->Call(*fn, args, absl::MakeSpan(results), &trap);
    if (type == "assert_trap") {
      std::string text = cmd["text"];
      EXPECT_FALSE(status.ok()) << action["field"] << " should trap with " << text;
      EXPECT_EQ(trap.kind, ExpectedTrap(text))
          << action["field"] << ": expected " << text << ", got " << trap.message;
      if (!status.ok() && trap.kind == ExpectedTrap(text)) ++passed;
      continue;
    }
    ASSERT_TRUE(status.ok()) << action["field"] << ": " << status;
    if (type == "action") continue;
    const json& expected = cmd["expected"];
    ASSERT_EQ(expected.size(), results.size());
    bool all = true;
    for (size_t i = 0; i < results.size(); ++i) {
      std::string why;
      if (!Matches(expected[i], results[i], &why)) {
        ADD_FAILURE() << action["field"] << " result " << i << ": " << why;
        all = false;
      }
    }
    if (all) ++passed;
  }
  EXPECT_GT(passed, 0);
  RecordProperty("assertions_passed", passed);
}

std::vector<SpecCase> Cases() {
  std::vector<SpecCase> cases;
  for (const char* file : {"i32", "i64", "float", "memory", "table", "control", "invalid"}) {
    cases.push_back({file, Tier::kInterpreter});
    cases.push_back({file, Tier::kNative});
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Spec, SpecTest, testing::ValuesIn(Cases()),
                         [](const testing::TestParamInfo<SpecCase>& info) {
                           return info.param.file + "_" +
                                  (info.param.tier == Tier::kNative ? "native" : "interpreter");
                         });

}  // namespace
}  // namespace nodata::wasm
