// src/pty: pseudo-terminals for interactive exec. Mechanism only (what to run, sizes,
// limits and when to kill are decided in TypeScript):
//   ptyOpen(cols, rows)        a master/slave pair (tests, and whoever runs a program on a terminal)
//   ptySpawn(options)          a child in its own session with the slave as controlling
//                              terminal and stdio; returns { pid, master }
//   ptyResize(fd, cols, rows)  TIOCSWINSZ (the foreground group gets SIGWINCH)
//   ptyGetSize(fd)             TIOCGWINSZ
//   tcgetattr(fd)              the raw termios bytes (compare modes before/after)
//   tcsetattr(fd, modes)       sets those bytes back (edited or not), TCSADRAIN
//   termiosLayout              { size, oflagOffset, OPOST, ONLCR }: where c_oflag is in
//                              those bytes and its bits, so TypeScript can edit them
//   PidWatcher(pid, onExit)    reaps one child through a pidfd: pidfd_open + waitid(P_PIDFD),
//                              polled on the Node loop, so libuv's own SIGCHLD handling
//                              (which waits only for the pids it spawned) is not disturbed.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/errors.h"
#include "common/module.h"
#include "common/poll_watcher.h"
#include "common/unique_fd.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

namespace vmlink {
namespace {

// posix_spawn attributes and file actions, destroyed on every path.
struct SpawnAttr {
  posix_spawnattr_t attr;
  bool ok;
  SpawnAttr() : ok(posix_spawnattr_init(&attr) == 0) {}
  ~SpawnAttr() {
    if (ok) posix_spawnattr_destroy(&attr);
  }
};
struct SpawnActions {
  posix_spawn_file_actions_t actions;
  bool ok;
  SpawnActions() : ok(posix_spawn_file_actions_init(&actions) == 0) {}
  ~SpawnActions() {
    if (ok) posix_spawn_file_actions_destroy(&actions);
  }
};

uint16_t SizeArg(Napi::Env env, Napi::Value value, const char* name) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, std::string(name) + " must be a number");
  double n = value.As<Napi::Number>().DoubleValue();
  if (!(n >= 1 && n <= 65535) || n != static_cast<double>(static_cast<int>(n))) {
    throw Napi::RangeError::New(env, std::string(name) + " must be an integer in 1..65535, got " + std::to_string(n));
  }
  return static_cast<uint16_t>(n);
}

int FdArg(Napi::Env env, Napi::Value value) {
  if (!value.IsNumber()) throw Napi::TypeError::New(env, "fd must be a number");
  int fd = value.As<Napi::Number>().Int32Value();
  if (fd < 0) throw Napi::RangeError::New(env, "fd must be >= 0");
  return fd;
}

void SetSize(Napi::Env env, int fd, uint16_t cols, uint16_t rows) {
  struct winsize size = {};
  size.ws_col = cols;
  size.ws_row = rows;
  if (::ioctl(fd, TIOCSWINSZ, &size) < 0) ThrowErrno(env, errno, "ioctl(TIOCSWINSZ)");
}

// A new master (close-on-exec, not our controlling terminal) with its slave unlocked.
UniqueFd OpenMaster(Napi::Env env, std::string* slavePath) {
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) ThrowErrno(env, errno, "posix_openpt");
  if (::grantpt(master.get()) < 0) ThrowErrno(env, errno, "grantpt");
  if (::unlockpt(master.get()) < 0) ThrowErrno(env, errno, "unlockpt");
  char name[128];
  int err = ::ptsname_r(master.get(), name, sizeof name);
  if (err != 0) ThrowErrno(env, err, "ptsname_r");
  *slavePath = name;
  return master;
}

std::vector<std::string> StringArray(Napi::Env env, Napi::Value value, const char* name) {
  std::vector<std::string> out;
  if (value.IsUndefined()) return out;
  if (!value.IsArray()) throw Napi::TypeError::New(env, std::string(name) + " must be an array of strings");
  Napi::Array array = value.As<Napi::Array>();
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) throw Napi::TypeError::New(env, std::string(name) + "[" + std::to_string(i) + "] must be a string");
    std::string text = item.As<Napi::String>().Utf8Value();
    if (text.find('\0') != std::string::npos) {
      throw Napi::TypeError::New(env, std::string(name) + "[" + std::to_string(i) + "] contains a NUL byte");
    }
    out.push_back(std::move(text));
  }
  return out;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// ptyOpen(cols, rows) -> { master, slave, path }: both fds close-on-exec, neither our
// controlling terminal.
Napi::Value PtyOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint16_t cols = SizeArg(env, info[0], "cols");
  uint16_t rows = SizeArg(env, info[1], "rows");
  std::string path;
  UniqueFd master = OpenMaster(env, &path);
  UniqueFd slave(::open(path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) ThrowErrno(env, errno, "open", path);
  SetSize(env, master.get(), cols, rows);
  Napi::Object result = Napi::Object::New(env);
  result.Set("path", path);
  result.Set("slave", Napi::Number::New(env, slave.release()));
  result.Set("master", Napi::Number::New(env, master.release()));
  return result;
}

// ptySpawn({ file, args, env, cwd, cols, rows }) -> { pid, master }. `file` is run as is
// (no PATH search); args[0] is argv[0]. The child starts a session (setsid), so opening
// the slave by path makes it the controlling terminal and the child the foreground
// process group: the terminal's Ctrl-C reaches its whole group. Signal dispositions and
// mask are reset to the defaults (Node ignores SIGPIPE).
Napi::Value PtySpawn(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw Napi::TypeError::New(env, "ptySpawn: options must be an object");
  Napi::Object options = info[0].As<Napi::Object>();
  if (!options.Get("file").IsString()) throw Napi::TypeError::New(env, "ptySpawn: file must be a string");
  std::string file = options.Get("file").As<Napi::String>().Utf8Value();
  std::vector<std::string> args = StringArray(env, options.Get("args"), "args");
  if (args.empty()) args.push_back(file);
  std::vector<std::string> environment = StringArray(env, options.Get("env"), "env");
  std::string cwd = options.Get("cwd").IsString() ? options.Get("cwd").As<Napi::String>().Utf8Value() : "";
  uint16_t cols = SizeArg(env, options.Get("cols"), "cols");
  uint16_t rows = SizeArg(env, options.Get("rows"), "rows");

  std::string slavePath;
  UniqueFd master = OpenMaster(env, &slavePath);
  SetSize(env, master.get(), cols, rows);

  SpawnAttr attr;
  SpawnActions actions;
  if (!attr.ok || !actions.ok) ThrowErrno(env, ENOMEM, "posix_spawn");
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  int err = posix_spawnattr_setflags(&attr.attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  if (err == 0) err = posix_spawnattr_setsigdefault(&attr.attr, &all);
  if (err == 0) err = posix_spawnattr_setsigmask(&attr.attr, &none);
  if (err == 0) err = posix_spawn_file_actions_addopen(&actions.actions, 0, slavePath.c_str(), O_RDWR, 0);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.actions, 0, 1);
  if (err == 0) err = posix_spawn_file_actions_adddup2(&actions.actions, 0, 2);
  if (err == 0 && !cwd.empty()) err = posix_spawn_file_actions_addchdir_np(&actions.actions, cwd.c_str());
  if (err != 0) ThrowErrno(env, err, "posix_spawn");

  std::vector<char*> argv = CStrings(args);
  std::vector<char*> envp = CStrings(environment);
  pid_t pid = -1;
  err = ::posix_spawn(&pid, file.c_str(), &actions.actions, &attr.attr, argv.data(), envp.data());
  if (err != 0) ThrowErrno(env, err, "posix_spawn", file);

  Napi::Object result = Napi::Object::New(env);
  result.Set("pid", Napi::Number::New(env, pid));
  result.Set("master", Napi::Number::New(env, master.release()));
  return result;
}

Napi::Value PtyResize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  SetSize(env, fd, SizeArg(env, info[1], "cols"), SizeArg(env, info[2], "rows"));
  return env.Undefined();
}

Napi::Value PtyGetSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  struct winsize size = {};
  if (::ioctl(fd, TIOCGWINSZ, &size) < 0) ThrowErrno(env, errno, "ioctl(TIOCGWINSZ)");
  Napi::Object result = Napi::Object::New(env);
  result.Set("cols", Napi::Number::New(env, size.ws_col));
  result.Set("rows", Napi::Number::New(env, size.ws_row));
  return result;
}

Napi::Value TcGetAttr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  struct termios modes = {};
  if (::tcgetattr(fd, &modes) < 0) ThrowErrno(env, errno, "tcgetattr");
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<const uint8_t*>(&modes), sizeof modes);
}

// tcsetattr(fd, modes): the terminal takes `modes` (the bytes tcgetattr gave, edited or
// not) once what was already written has gone out (TCSADRAIN, as libuv and ssh do).
Napi::Value TcSetAttr(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = FdArg(env, info[0]);
  if (!info[1].IsBuffer()) throw Napi::TypeError::New(env, "tcsetattr: modes must be a Buffer (from tcgetattr)");
  Napi::Buffer<uint8_t> bytes = info[1].As<Napi::Buffer<uint8_t>>();
  struct termios modes = {};
  if (bytes.Length() != sizeof modes) {
    throw Napi::RangeError::New(env, "tcsetattr: modes must be " + std::to_string(sizeof modes) + " bytes (a struct termios from tcgetattr), got " +
                                         std::to_string(bytes.Length()));
  }
  std::memcpy(&modes, bytes.Data(), sizeof modes);
  int rc;
  do {
    rc = ::tcsetattr(fd, TCSADRAIN, &modes);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) ThrowErrno(env, errno, "tcsetattr");
  return env.Undefined();
}

// Where c_oflag sits in the bytes of tcgetattr, and the output-processing bits; tcflag_t
// is an unsigned int in the host's byte order.
Napi::Object TermiosLayout(Napi::Env env) {
  static_assert(sizeof(tcflag_t) == 4, "tcflag_t is read as 32 bits in TypeScript");
  Napi::Object layout = Napi::Object::New(env);
  layout.Set("size", Napi::Number::New(env, sizeof(struct termios)));
  layout.Set("oflagOffset", Napi::Number::New(env, offsetof(struct termios, c_oflag)));
  layout.Set("OPOST", Napi::Number::New(env, OPOST));
  layout.Set("ONLCR", Napi::Number::New(env, ONLCR));
  layout.Freeze();
  return layout;
}

// new PidWatcher(pid, onExit): onExit({ code, signal }) once, when the child ends (it is
// reaped then). close() stops watching (the child is then left to whoever else reaps it).
class PidWatcher : public Napi::ObjectWrap<PidWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PidWatcher",
                       {InstanceMethod<&PidWatcher::Close>("close"), InstanceMethod<&PidWatcher::RefMethod>("ref"),
                        InstanceMethod<&PidWatcher::UnrefMethod>("unref"),
                        InstanceAccessor<&PidWatcher::GetDone>("done")});
  }

  explicit PidWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PidWatcher>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsNumber()) throw Napi::TypeError::New(env, "PidWatcher: pid must be a number");
    int pid = info[0].As<Napi::Number>().Int32Value();
    if (pid <= 0) throw Napi::RangeError::New(env, "PidWatcher: pid must be > 0");
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "PidWatcher: onExit must be a function");
    fd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
    if (!fd_) ThrowErrno(env, errno, "pidfd_open", std::to_string(pid));
    onExit_ = Napi::Persistent(info[1].As<Napi::Function>());
    watcher_ = std::make_unique<PollWatcher>(env, fd_.get());
    int rc = watcher_->Start(UV_READABLE, [this](int status, int) { OnReady(status); });
    if (rc != 0) throw Napi::Error::New(env, std::string("uv_poll_start ") + uv_err_name(rc));
    // Keeps `this` alive while watching (released once done or closed).
    self_ = Napi::Persistent(info.This().As<Napi::Object>());
  }

 private:
  void OnReady(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    siginfo_t child = {};
    int rc;
    do {
      rc = ::waitid(static_cast<idtype_t>(P_PIDFD), static_cast<id_t>(fd_.get()), &child, WEXITED | WNOHANG);
    } while (rc < 0 && errno == EINTR);
    Napi::Object result = Napi::Object::New(env);
    if (rc < 0) {
      result.Set("error", ErrnoError(env, errno, "waitid").Value());
    } else if (child.si_pid == 0) {
      return;  // woken without an exit (cannot happen for a pidfd, but harmless)
    } else if (child.si_code == CLD_EXITED) {
      result.Set("code", Napi::Number::New(env, child.si_status));
      result.Set("signal", env.Null());
    } else {
      result.Set("code", env.Null());
      result.Set("signal", Napi::Number::New(env, child.si_status));
    }
    Napi::FunctionReference onExit = std::move(onExit_);
    Finish();
    // MakeCallback, not Call: from a libuv callback only MakeCallback runs the tick queue and
    // the microtasks afterwards, so a promise resolved in onExit settles now, not at the next
    // unrelated callback (Node 26 showed exits seen ~30 s late).
    Napi::AsyncContext context(env, "vmlink:PidWatcher", Value());
    onExit.MakeCallback(Value(), {result}, context);
  }

  void Finish() {
    if (done_) return;
    done_ = true;
    watcher_.reset();  // stops polling before the fd is closed
    fd_.reset();
    if (!self_.IsEmpty()) self_.Unref();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    Finish();
    return info.Env().Undefined();
  }
  Napi::Value RefMethod(const Napi::CallbackInfo& info) {
    if (watcher_) watcher_->Ref();
    return info.Env().Undefined();
  }
  Napi::Value UnrefMethod(const Napi::CallbackInfo& info) {
    if (watcher_) watcher_->Unref();
    return info.Env().Undefined();
  }
  Napi::Value GetDone(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), done_); }

  UniqueFd fd_;
  std::unique_ptr<PollWatcher> watcher_;
  Napi::FunctionReference onExit_;
  Napi::ObjectReference self_;
  bool done_ = false;
};

}  // namespace

void RegisterPty(Napi::Env env, Napi::Object exports) {
  exports.Set("ptyOpen", Napi::Function::New(env, PtyOpen, "ptyOpen"));
  exports.Set("ptySpawn", Napi::Function::New(env, PtySpawn, "ptySpawn"));
  exports.Set("ptyResize", Napi::Function::New(env, PtyResize, "ptyResize"));
  exports.Set("ptyGetSize", Napi::Function::New(env, PtyGetSize, "ptyGetSize"));
  exports.Set("tcgetattr", Napi::Function::New(env, TcGetAttr, "tcgetattr"));
  exports.Set("tcsetattr", Napi::Function::New(env, TcSetAttr, "tcsetattr"));
  exports.Set("termiosLayout", TermiosLayout(env));
  exports.Set("PidWatcher", PidWatcher::Define(env));
}

}  // namespace vmlink
