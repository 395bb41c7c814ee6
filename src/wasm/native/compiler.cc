#include "wasm/native/compiler.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "absl/types/span.h"
#include "common/fs.h"
#include "common/status.h"
#include "common/strings.h"
#include "fmt/format.h"
#include "wasm/native/translate.h"

namespace nodata::wasm::native {
namespace {

// AddressSanitizer reserves terabytes of address space for its shadow memory, so a sanitized
// build (`make sanitize`) runs its children without the address-space limit.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kLimitAddressSpace = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kLimitAddressSpace = false;
#else
constexpr bool kLimitAddressSpace = true;
#endif
#else
constexpr bool kLimitAddressSpace = true;
#endif

namespace fs = std::filesystem;

// Bumped whenever the glue ABI or rt.cc's behaviour that compiled code depends on changes.
constexpr char kRuntimeVersion[] = "nodata-wasm-rt 3";
constexpr char kRuntimeHeader[] = "/usr/include/wasm-rt.h";

FileSystem& Files() { return PosixFileSystem(); }

// A file's contents, or empty if it cannot be read (for logs and optional inputs).
std::string ReadOrEmpty(const std::string& path) { return Files().ReadFile(path).value_or(""); }

// Writes a new scratch file of a build directory: no fsync, the directory is thrown away.
absl::Status WriteScratch(const std::string& path, std::string_view data) {
  ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> file, Files().OpenAppendable(path));
  return file->Append(data);
}

std::string Tail(const std::string& text, size_t max) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

// Runs argv in a child process in its own process group, under an address-space limit and a
// wall-clock timeout; stdout and stderr go to `log_path`.
absl::Status RunChild(const std::vector<std::string>& argv, const CompileLimits& limits,
                      const std::string& log_path) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log_fd < 0) return absl::InternalError(fmt::format("cannot create {}", log_path));
  int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t pid = fork();
  if (pid < 0) {
    close(log_fd);
    close(null_fd);
    return absl::ResourceExhaustedError(fmt::format("fork: {}", strerror(errno)));
  }
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec.
    setpgid(0, 0);
    if (kLimitAddressSpace) {
      struct rlimit as_limit = {limits.memory_bytes, limits.memory_bytes};
      setrlimit(RLIMIT_AS, &as_limit);
    }
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(null_fd, 0);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(log_fd);
  close(null_fd);
  // Wait on a pidfd with the timeout. The child is reaped only after its process group has been
  // killed, so the group id cannot have been reused by then.
  const int timeout_ms = static_cast<int>(std::min<uint64_t>(limits.timeout_ms, INT_MAX));
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  bool timed_out = false;
  int status = 0;
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    int rc;
    do {
      rc = poll(&p, 1, timeout_ms);
    } while (rc < 0 && errno == EINTR);
    if (rc == 0) timed_out = true;
    close(pidfd);
  } else {
    // No pidfd (an old kernel, or out of descriptors): poll the child's state (without reaping
    // it) every 10 ms instead.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      siginfo_t info{};
      if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid == pid) {
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      usleep(10'000);
    }
  }
  kill(-pid, SIGKILL);  // on timeout the child, otherwise whatever it left in its group
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  std::string output = Tail(ReadOrEmpty(log_path), 2000);
  if (timed_out) {
    return absl::DeadlineExceededError(
        fmt::format("{} ran past {} ms and was killed", argv[0], limits.timeout_ms));
  }
  if (WIFSIGNALED(status)) {
    return absl::InternalError(
        fmt::format("{} died of signal {}: {}", argv[0], WTERMSIG(status), output));
  }
  if (WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        fmt::format("{} exited with status {}: {}", argv[0], WEXITSTATUS(status), output));
  }
  return absl::OkStatus();
}

std::string FindInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

const char* CType(ValType t) {
  switch (t) {
    case ValType::kI32: return "u32";
    case ValType::kI64: return "u64";
    case ValType::kF32: return "f32";
    case ValType::kF64: return "f64";
  }
  return "u32";
}

// Slot bits → C value, and back.
std::string FromSlot(ValType t, const std::string& slot) {
  switch (t) {
    case ValType::kI32: return fmt::format("(u32){}", slot);
    case ValType::kI64: return fmt::format("(u64){}", slot);
    case ValType::kF32: return fmt::format("nodata_f32({})", slot);
    case ValType::kF64: return fmt::format("nodata_f64({})", slot);
  }
  return slot;
}
std::string ToSlot(ValType t, const std::string& value) {
  switch (t) {
    case ValType::kI32: return fmt::format("(uint64_t)(u32)({})", value);
    case ValType::kI64: return fmt::format("(uint64_t)({})", value);
    case ValType::kF32: return fmt::format("nodata_f32_bits({})", value);
    case ValType::kF64: return fmt::format("nodata_f64_bits({})", value);
  }
  return value;
}

// The declaration that follows each "/* import: 'm' 'n' */" or "/* export: 'n' */" comment.
struct Declaration {
  std::string symbol;
  std::string first_param;  // the instance (exports) or import-context (imports) type
};

Declaration ParseDeclaration(const std::string& line) {
  Declaration d;
  size_t paren = line.find('(');
  if (paren == std::string::npos) return d;
  size_t start = paren;
  while (start > 0 && (std::isalnum(static_cast<unsigned char>(line[start - 1])) ||
                       line[start - 1] == '_')) {
    --start;
  }
  d.symbol = line.substr(start, paren - start);
  size_t end = line.find_first_of(",)", paren);
  d.first_param = line.substr(paren + 1, end - paren - 1);
  return d;
}

// Linear memory never overlaps an instance's own fields, but the C compiler cannot know that: a
// store into guest memory (through a u8 pointer) might change `instance->memory.data`, so the base
// is reloaded after every store. Declaring every function's instance parameter `restrict` tells
// it the truth. (Host functions reach the instance only through the runtime, never its fields.)
absl::StatusOr<std::string> RestrictInstances(std::string code) {
  const std::string from = fmt::format("(Z_{}_instance_t* instance", kTranslatedModuleName);
  const std::string to = fmt::format("(Z_{}_instance_t* restrict instance", kTranslatedModuleName);
  size_t count = 0;
  for (size_t at = code.find(from); at != std::string::npos; at = code.find(from, at + to.size())) {
    code.replace(at, from.size(), to);
    ++count;
  }
  if (count == 0) return absl::InternalError("translated module has no instance parameters");
  return code;
}

// Deletes the least recently used objects until the cache is under its size, never `keep`; and
// build directories an interrupted compilation left behind more than an hour ago.
void EvictCache(const Toolchain& toolchain, const std::string& keep) {
  struct Entry {
    fs::path path;
    fs::file_time_type used;
    uintmax_t bytes;
  };
  std::vector<Entry> objects;
  uintmax_t total = 0;
  std::error_code ec;
  const auto stale = fs::file_time_type::clock::now() - std::chrono::hours(1);
  for (const auto& entry : fs::directory_iterator(toolchain.cache_dir, ec)) {
    std::error_code entry_ec;
    const fs::path& p = entry.path();
    if (p.filename().string().rfind("build-", 0) == 0 && entry.is_directory(entry_ec) &&
        entry.last_write_time(entry_ec) < stale) {
      fs::remove_all(p, entry_ec);
      continue;
    }
    if (p.extension() != ".so") continue;
    Entry e{p, entry.last_write_time(entry_ec), entry.file_size(entry_ec)};
    if (entry_ec) continue;
    total += e.bytes;
    objects.push_back(std::move(e));
  }
  if (total <= toolchain.cache_max_bytes) return;
  std::sort(objects.begin(), objects.end(),
            [](const Entry& a, const Entry& b) { return a.used < b.used; });
  for (const Entry& e : objects) {
    if (total <= toolchain.cache_max_bytes) break;
    if (e.path == keep) continue;
    if (fs::remove(e.path, ec)) total -= e.bytes;
  }
}

}  // namespace

NativeCode::~NativeCode() {
  if (handle_ != nullptr) dlclose(handle_);
}

absl::StatusOr<std::unique_ptr<NativeCode>> LoadShared(const std::string& path,
                                                       uint32_t export_count) {
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return absl::InternalError(fmt::format("dlopen: {}", dlerror()));
  std::unique_ptr<NativeCode> code(new NativeCode());
  code->handle_ = handle;
  auto* size = static_cast<const size_t*>(dlsym(handle, "nodata_instance_size"));
  auto* count = static_cast<const uint32_t*>(dlsym(handle, "nodata_export_count"));
  auto init = reinterpret_cast<void (*)()>(dlsym(handle, "nodata_init_module"));
  code->instantiate =
      reinterpret_cast<void (*)(void*, void*)>(dlsym(handle, "nodata_instantiate"));
  code->free_instance = reinterpret_cast<void (*)(void*)>(dlsym(handle, "nodata_free"));
  code->exports = static_cast<void* const*>(dlsym(handle, "nodata_exports"));
  if (size == nullptr || count == nullptr || init == nullptr || code->instantiate == nullptr ||
      code->free_instance == nullptr || code->exports == nullptr || *count != export_count) {
    return absl::InternalError(fmt::format("{} is not a module compiled for this runtime", path));
  }
  code->instance_size = *size;
  code->export_count = *count;
  init();
  return code;
}

absl::StatusOr<Toolchain> ResolveToolchain(const RuntimeOptions& options) {
  if (options.cache_dir.empty()) return absl::FailedPreconditionError("no cache directory is set");
  Toolchain t;
  t.cache_dir = options.cache_dir;
  t.flags = options.compiler_flags;
  t.limits = options.compile_limits;
  t.cache_max_bytes = options.cache_max_bytes;
  t.translator = options.translator;
  if (t.translator.empty()) t.translator = {"/proc/self/exe", "wasm"};
  // Children are started with execv (no PATH search between fork and exec): resolve here. This
  // executable is named by its path, which tools that run it (valgrind) report faithfully.
  if (t.translator[0] == "/proc/self/exe") {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) t.translator[0] = self.string();
  }
  t.translator[0] = FindInPath(t.translator[0]);
  if (t.translator[0].empty()) {
    return absl::FailedPreconditionError(
        fmt::format("translator '{}' not found", options.translator.empty() ? "/proc/self/exe"
                                                                             : options.translator[0]));
  }
  t.compiler = FindInPath(options.compiler);
  if (t.compiler.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("C compiler '{}' not found in PATH; modules run on the interpreter",
                    options.compiler));
  }
  std::error_code ec;
  fs::path real = fs::canonical(t.compiler, ec);
  struct stat st {};
  if (ec || stat(real.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(fmt::format("cannot stat compiler {}", t.compiler));
  }
  std::string header = ReadOrEmpty(kRuntimeHeader);
  if (header.empty()) {
    return absl::FailedPreconditionError(
        fmt::format("{} not found (package wabt); modules run on the interpreter", kRuntimeHeader));
  }
  if (absl::Status s = Files().CreateDirs(t.cache_dir); !s.ok()) {
    return absl::FailedPreconditionError(
        fmt::format("cannot create cache directory {}: {}", t.cache_dir, ToStd(s.message())));
  }
  std::string identity = fmt::format("{}\n{}\ncompiler {} size {} mtime {}.{}\nflags", kRuntimeVersion,
                                     TranslatorVersion(), real.string(), st.st_size,
                                     st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  for (const std::string& f : t.flags) identity += " " + f;
  identity += "\nheader " + internal::Sha256Hex(absl::MakeConstSpan(
                                reinterpret_cast<const uint8_t*>(header.data()), header.size()));
  t.identity = identity;
  return t;
}

absl::StatusOr<std::string> Glue(const internal::PreparedModule& module, const std::string& header) {
  std::map<std::string, Declaration> exports;
  std::map<std::pair<std::string, std::string>, Declaration> imports;
  std::string instantiate_line;
  std::istringstream lines(header);
  std::string line;
  std::string pending_export;
  std::pair<std::string, std::string> pending_import;
  bool have_export = false, have_import = false;
  while (std::getline(lines, line)) {
    if (have_export) {
      exports[pending_export] = ParseDeclaration(line);
      have_export = false;
    } else if (have_import) {
      imports[pending_import] = ParseDeclaration(line);
      have_import = false;
    }
    if (line.rfind("/* export: '", 0) == 0) {
      size_t end = line.rfind("' */");
      pending_export = line.substr(12, end - 12);
      have_export = true;
    } else if (line.rfind("/* import: '", 0) == 0) {
      size_t mid = line.find("' '", 12);
      size_t end = line.rfind("' */");
      pending_import = {line.substr(12, mid - 12), line.substr(mid + 3, end - mid - 3)};
      have_import = true;
    } else if (line.find(fmt::format("Z_{}_instantiate(", kTranslatedModuleName)) !=
               std::string::npos) {
      instantiate_line = line;
    }
  }
  if (instantiate_line.empty()) return absl::InternalError("translated header has no instantiate");

  const std::string m = kTranslatedModuleName;
  std::string out = fmt::format(R"(
#define NODATA_API __attribute__((visibility("default")))
extern void nodata_wasm_host_call(void* context, uint32_t import_index, uint64_t* slots);
static inline f32 nodata_f32(uint64_t b) {{ uint32_t x = (uint32_t)b; f32 f; memcpy(&f, &x, 4); return f; }}
static inline f64 nodata_f64(uint64_t b) {{ f64 f; memcpy(&f, &b, 8); return f; }}
static inline uint64_t nodata_f32_bits(f32 f) {{ uint32_t x; memcpy(&x, &f, 4); return x; }}
static inline uint64_t nodata_f64_bits(f64 f) {{ uint64_t x; memcpy(&x, &f, 8); return x; }}

NODATA_API const size_t nodata_instance_size = sizeof(Z_{0}_instance_t);
NODATA_API void nodata_init_module(void) {{ Z_{0}_init_module(); }}
NODATA_API void nodata_free(void* instance) {{ Z_{0}_free((Z_{0}_instance_t*)instance); }}
)",
                                m);
  // Instantiate passes the host context for every imported module.
  {
    size_t open = instantiate_line.find('(');
    size_t close = instantiate_line.rfind(')');
    std::string params = instantiate_line.substr(open + 1, close - open - 1);
    std::vector<std::string> types;
    std::stringstream ss(params);
    std::string p;
    while (std::getline(ss, p, ',')) types.push_back(p);
    std::string call = fmt::format("Z_{}_instantiate((Z_{}_instance_t*)instance", m, m);
    for (size_t i = 1; i < types.size(); ++i) call += fmt::format(", ({})context", types[i]);
    out += fmt::format("NODATA_API void nodata_instantiate(void* instance, void* context) {{ {}); }}\n",
                       call);
  }
  // Import thunks: one per (module, name), as wasm2c declares one symbol per pair; a repeated
  // import binds to the same host function (Bind matches by name) so its first index serves.
  std::set<std::pair<std::string, std::string>> thunks;
  for (size_t i = 0; i < module.info.imports.size(); ++i) {
    const auto& import = module.info.imports[i];
    if (!thunks.insert({import.module, import.name}).second) continue;
    auto it = imports.find({import.module, import.name});
    if (it == imports.end()) {
      return absl::InternalError(fmt::format("import {}.{} missing from the translated header",
                                             import.module, import.name));
    }
    const FuncSignature& sig = import.signature;
    std::string ret = sig.results.empty() ? "void" : CType(sig.results[0]);
    std::string params = it->second.first_param + " context";
    for (size_t a = 0; a < sig.params.size(); ++a) {
      params += fmt::format(", {} a{}", CType(sig.params[a]), a);
    }
    size_t slots = std::max<size_t>({sig.params.size(), sig.results.size(), 1});
    out += fmt::format("{} {}({}) {{\n  uint64_t s[{}];\n", ret, it->second.symbol, params, slots);
    for (size_t a = 0; a < sig.params.size(); ++a) {
      out += fmt::format("  s[{}] = {};\n", a, ToSlot(sig.params[a], fmt::format("a{}", a)));
    }
    out += fmt::format("  nodata_wasm_host_call((void*)context, {}u, s);\n", i);
    if (!sig.results.empty()) out += fmt::format("  return {};\n", FromSlot(sig.results[0], "s[0]"));
    out += "}\n";
  }
  // Export trampolines and accessors.
  std::string table;
  for (size_t i = 0; i < module.exports.size(); ++i) {
    const internal::PreparedExport& e = module.exports[i];
    auto it = exports.find(e.name);
    if (it == exports.end()) {
      return absl::InternalError(fmt::format("export {} missing from the translated header", e.name));
    }
    const std::string& symbol = it->second.symbol;
    if (e.kind == ModuleInfo::Kind::kFunction) {
      std::string args = fmt::format("(Z_{}_instance_t*)instance", m);
      for (size_t a = 0; a < e.signature.params.size(); ++a) {
        args += ", " + FromSlot(e.signature.params[a], fmt::format("s[{}]", a));
      }
      std::string body = e.signature.results.empty()
                             ? fmt::format("{}({});", symbol, args)
                             : fmt::format("s[0] = {};",
                                           ToSlot(e.signature.results[0],
                                                  fmt::format("{}({})", symbol, args)));
      out += fmt::format("static void nodata_export_{}(void* instance, uint64_t* s) {{ {} }}\n", i,
                         body);
    } else {
      out += fmt::format(
          "static void* nodata_export_{}(void* instance) {{ return (void*){}((Z_{}_instance_t*)instance); }}\n",
          i, symbol, m);
    }
    table += fmt::format("  (void*)nodata_export_{},\n", i);
  }
  out += fmt::format("NODATA_API const uint32_t nodata_export_count = {}u;\n", module.exports.size());
  out += fmt::format("NODATA_API void* const nodata_exports[] = {{\n{}  0}};\n", table);
  return out;
}

namespace {

std::string CachePath(const Toolchain& toolchain, const internal::PreparedModule& module) {
  std::string key_text = toolchain.identity + "\nmodule " + module.info.hash;
  std::string key = internal::Sha256Hex(
      absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(key_text.data()), key_text.size()));
  return fmt::format("{}/{}.so", toolchain.cache_dir, key);
}

}  // namespace

absl::StatusOr<std::unique_ptr<NativeCode>> LoadCached(const Toolchain& toolchain,
                                                       const internal::PreparedModule& module) {
  const std::string path = CachePath(toolchain, module);
  if (access(path.c_str(), F_OK) != 0) return absl::NotFoundError("not in the cache");
  auto code = LoadShared(path, static_cast<uint32_t>(module.exports.size()));
  if (!code.ok()) {
    (void)Files().RemoveFile(path);  // damaged or foreign: rebuild it
    return absl::NotFoundError("damaged cache entry removed");
  }
  utimensat(AT_FDCWD, path.c_str(), nullptr, 0);  // recently used: last to be evicted
  return code;
}

absl::StatusOr<std::unique_ptr<NativeCode>> CompileOrLoad(const Toolchain& toolchain,
                                                          const internal::PreparedModule& module,
                                                          bool* cache_hit) {
  const std::string path = CachePath(toolchain, module);
  *cache_hit = false;
  if (auto cached = LoadCached(toolchain, module); cached.ok()) {
    *cache_hit = true;
    return cached;
  }

  std::string pattern = toolchain.cache_dir + "/build-XXXXXX";
  std::vector<char> dir_template(pattern.begin(), pattern.end());
  dir_template.push_back('\0');
  if (mkdtemp(dir_template.data()) == nullptr) {
    return absl::InternalError(fmt::format("mkdtemp in {}: {}", toolchain.cache_dir, strerror(errno)));
  }
  std::string dir = dir_template.data();
  struct Cleanup {
    std::string dir;
    ~Cleanup() { (void)Files().RemoveAll(dir); }
  } cleanup{dir};

  RETURN_IF_ERROR(WriteScratch(
      dir + "/module.wasm",
      std::string_view(reinterpret_cast<const char*>(module.native_bytes.data()),
                       module.native_bytes.size())));
  std::vector<std::string> translate = toolchain.translator;
  translate.insert(translate.end(), {"translate", dir + "/module.wasm", dir + "/module.c",
                                     dir + "/module.h"});
  if (absl::Status s = RunChild(translate, toolchain.limits, dir + "/translate.log"); !s.ok()) {
    return absl::Status(s.code(), "translating to C: " + std::string(s.message()));
  }
  // One translation unit: the translated module (instances marked restrict), then the glue.
  ASSIGN_OR_RETURN(std::string unit, RestrictInstances(ReadOrEmpty(dir + "/module.c")));
  ASSIGN_OR_RETURN(std::string glue, Glue(module, ReadOrEmpty(dir + "/module.h")));
  RETURN_IF_ERROR(WriteScratch(dir + "/unit.c", unit + glue));
  std::vector<std::string> compile = {toolchain.compiler};
  compile.insert(compile.end(), toolchain.flags.begin(), toolchain.flags.end());
  compile.insert(compile.end(), {"-fPIC", "-shared", "-fvisibility=hidden", "-fstack-clash-protection",
                                 "-DNDEBUG", "-w", "-o", dir + "/module.so", dir + "/unit.c", "-lm"});
  if (absl::Status s = RunChild(compile, toolchain.limits, dir + "/compile.log"); !s.ok()) {
    return absl::Status(s.code(), "compiling: " + std::string(s.message()));
  }
  // Durable before it becomes visible: a torn object in the cache would be loaded after a crash.
  // (Built in its own directory and renamed, so concurrent builds of one key never share a file.)
  {
    ASSIGN_OR_RETURN(std::unique_ptr<WritableFile> object, Files().OpenAppendable(dir + "/module.so"));
    RETURN_IF_ERROR(object->Sync());
  }
  RETURN_IF_ERROR(Files().Rename(dir + "/module.so", path));
  RETURN_IF_ERROR(Files().SyncDir(toolchain.cache_dir));
  EvictCache(toolchain, path);
  return LoadShared(path, static_cast<uint32_t>(module.exports.size()));
}

}  // namespace nodata::wasm::native
