#include "components/program.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <utility>

#include "common/strings.h"

extern char** environ;

namespace nodata::components {
namespace {

// A file descriptor the child keeps must not land on 0..3, which it overwrites.
int AboveStdio(int fd) {
  if (fd > 3) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 10);
  close(fd);
  return moved;
}

std::string DescribeExit(int status) {
  if (WIFSIGNALED(status)) return StrCat("killed by signal ", WTERMSIG(status));
  return StrCat("exited with status ", WEXITSTATUS(status));
}

// Splits what a pipe gives into lines for the log; keeps the unfinished tail.
class LineSplitter {
 public:
  LineSplitter(ComponentLog& log, std::string stream, int level)
      : log_(log), stream_(std::move(stream)), level_(level) {}
  void Add(std::string_view bytes) {
    pending_.append(bytes);
    size_t start = 0;
    for (size_t nl; (nl = pending_.find('\n', start)) != std::string::npos; start = nl + 1) {
      log_.Append(stream_, level_, std::string_view(pending_).substr(start, nl - start));
    }
    pending_.erase(0, start);
    if (pending_.size() > ComponentLog::kMaxLineBytes) {  // a line without end: cut it
      log_.Append(stream_, level_, pending_);
      pending_.clear();
    }
  }
  void Flush() {
    if (!pending_.empty()) log_.Append(stream_, level_, pending_);
    pending_.clear();
  }

 private:
  ComponentLog& log_;
  const std::string stream_;
  const int level_;
  std::string pending_;
};

}  // namespace

Program::Program(ProgramOptions options, std::shared_ptr<ComponentLog> log)
    : options_(std::move(options)), log_(std::move(log)) {}

Program::~Program() { Stop(); }

void Program::Start() {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { Supervise(); });
}

void Program::RequestStop() {
  absl::MutexLock lock(&mu_);
  stopping_ = true;
}

void Program::Join() {
  std::thread t;
  {
    absl::MutexLock lock(&mu_);
    t = std::move(thread_);
  }
  if (t.joinable()) t.join();
}

ProgramStatus Program::status() {
  absl::MutexLock lock(&mu_);
  return {pid_ != 0, pid_, starts_, last_exit_};
}

void Program::Supervise() {
  absl::Duration backoff = options_.min_backoff;
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
    }
    const absl::Time started = absl::Now();
    std::string ended = RunOnce();
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      last_exit_ = ended;
      pid_ = 0;
      stopping = stopping_;
    }
    if (stopping) {
      log_->Append("server", 1, StrCat("stopped: ", ended));
      return;
    }
    if (absl::Now() - started >= options_.healthy_after) backoff = options_.min_backoff;
    log_->Append("server", 2, StrCat(ended, "; starting again in ", absl::FormatDuration(backoff)));
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&stopping_), backoff);
    if (stopping_) return;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

std::string Program::RunOnce() {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> argv_s{options_.path};
  argv_s.insert(argv_s.end(), options_.args.begin(), options_.args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::set<std::string> overridden;
  std::vector<std::string> env_s;
  for (const auto& [k, v] : options_.env) {
    overridden.insert(k);
    env_s.push_back(StrCat(k, "=", v));
  }
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (!overridden.contains(std::string(entry.substr(0, entry.find('='))))) {
      env_s.emplace_back(entry);
    }
  }
  std::vector<char*> envp;
  for (std::string& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out[2], err[2], exec_err[2];
  if (pipe2(out, O_CLOEXEC) != 0) return StrCat("pipe: ", strerror(errno));
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(out[0]);
    close(out[1]);
    return StrCat("pipe: ", strerror(errno));
  }
  if (pipe2(exec_err, O_CLOEXEC) != 0) {
    for (int fd : {out[0], out[1], err[0], err[1]}) close(fd);
    return StrCat("pipe: ", strerror(errno));
  }
  out[1] = AboveStdio(out[1]);
  err[1] = AboveStdio(err[1]);
  exec_err[1] = AboveStdio(exec_err[1]);
  const int null_fd = AboveStdio(open("/dev/null", O_RDONLY | O_CLOEXEC));
  const pid_t parent = getpid();
  const char* work_dir = options_.work_dir.empty() ? nullptr : options_.work_dir.c_str();

  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // tied to this (supervising) thread, which outlives it
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    // An ignored signal stays ignored across exec (the server ignores SIGPIPE, and a server
    // started in the background SIGINT): the program starts with every default.
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig) sigaction(sig, &default_action, nullptr);
    dup2(null_fd, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    dup2(exec_err[1], 3);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    syscall(SYS_close_range, 4u, ~0u, 0u);
    int failed[2] = {0, 0};  // {0: chdir, 1: exec; errno}
    if (work_dir != nullptr && chdir(work_dir) != 0) {
      failed[1] = errno;
    } else {
      execve(argv[0], argv.data(), envp.data());
      failed[0] = 1;
      failed[1] = errno;
    }
    ssize_t ignored = write(3, failed, sizeof failed);
    (void)ignored;
    _exit(127);
  }
  const int fork_errno = errno;
  for (int fd : {out[1], err[1], exec_err[1], null_fd}) close(fd);
  if (pid < 0) {
    for (int fd : {out[0], err[0], exec_err[0]}) close(fd);
    return StrCat("fork: ", strerror(fork_errno));
  }
  // The exec pipe closes on a successful exec, or says which step failed and its errno.
  int failed[2] = {0, 0};
  ssize_t n;
  while ((n = read(exec_err[0], failed, sizeof failed)) < 0 && errno == EINTR) {
  }
  close(exec_err[0]);
  if (n == static_cast<ssize_t>(sizeof failed)) {
    for (int fd : {out[0], err[0]}) close(fd);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return failed[0] == 0 ? StrCat("chdir ", options_.work_dir, ": ", strerror(failed[1]))
                          : StrCat("exec ", options_.path, ": ", strerror(failed[1]));
  }
  {
    absl::MutexLock lock(&mu_);
    pid_ = pid;
    ++starts_;
  }
  log_->Append("server", 1, StrCat("started ", options_.path, " (pid ", pid, ")"));

  LineSplitter out_lines(*log_, "stdout", 1);
  LineSplitter err_lines(*log_, "stderr", 2);
  struct pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  LineSplitter* splitters[2] = {&out_lines, &err_lines};
  bool term_sent = false, kill_sent = false;
  absl::Time kill_at;
  int status = 0;
  bool exited = false;
  char buf[16384];
  while (!exited) {
    const int rc = poll(fds, 2, 50);
    if (rc < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        splitters[i]->Add(std::string_view(buf, static_cast<size_t>(got)));
      } else if (got == 0 || errno != EINTR) {
        close(fds[i].fd);
        fds[i].fd = -1;
      }
    }
    // The process may exit while something it started keeps the pipes open. It is reaped only
    // after its group is killed below, so the group id cannot have been reused by then.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited = true;
    }
    bool stopping;
    {
      absl::MutexLock lock(&mu_);
      stopping = stopping_;
    }
    if (stopping && !term_sent) {
      kill(-pid, SIGTERM);
      term_sent = true;
      kill_at = absl::Now() + options_.stop_grace;
    } else if (term_sent && !kill_sent && absl::Now() >= kill_at) {
      log_->Append("server", 2, StrCat("no exit ", absl::FormatDuration(options_.stop_grace),
                                       " after SIGTERM: SIGKILL"));
      kill(-pid, SIGKILL);
      kill_sent = true;
    }
  }
  // What is left in the pipes, then whatever the process left in its group.
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0) continue;
    fcntl(fds[i].fd, F_SETFL, O_NONBLOCK);
    ssize_t got;
    while ((got = read(fds[i].fd, buf, sizeof buf)) > 0) {
      splitters[i]->Add(std::string_view(buf, static_cast<size_t>(got)));
    }
    close(fds[i].fd);
  }
  out_lines.Flush();
  err_lines.Flush();
  kill(-pid, SIGKILL);
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return DescribeExit(status);
}

}  // namespace nodata::components
