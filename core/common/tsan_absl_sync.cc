// ThreadSanitizer builds only (SAMPLED_SANITIZE=thread links this into every executable): tells TSan about
// Abseil's synchronisation, which it cannot see on its own because Debian's libabsl is not built with
// -fsanitize=thread (its ABSL_TSAN_MUTEX_* annotations compile to nothing there).
//
// Each exported absl::Mutex, absl::CondVar and absl::Notification entry point is interposed: the definition
// here (in the executable) wins over libabsl_synchronization.so's for our code, gRPC's and Abseil's own calls
// through the PLT, annotates the operation with the __tsan_mutex_* interface (what an instrumented Abseil
// does), and calls the library's implementation found with dlsym(RTLD_NEXT). Conditions that Abseil evaluates
// inside Await or LockWhen, while TSan has not yet seen the lock taken, are wrapped to acquire the mutex's
// synchronisation first. A Notification releases at Notify and acquires when a wait returns.
#if defined(__SANITIZE_THREAD__)

#include <dlfcn.h>
#include <sanitizer/tsan_interface.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/base/options.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace {

#define SAMPLED_STR2(x) #x
#define SAMPLED_STR(x) SAMPLED_STR2(x)

// "_ZN4absl" (or "_ZNK4absl" for a const member) + the inline namespace + the rest of a mangled name, e.g.
// "5Mutex4LockEv".
std::string Mangled(const char* rest, bool is_const) {
  const std::string ns = SAMPLED_STR(ABSL_OPTION_INLINE_NAMESPACE_NAME);
  return std::string(is_const ? "_ZNK4absl" : "_ZN4absl") + std::to_string(ns.size()) + ns + rest;
}

template <typename F>
F Real(const char* rest, bool is_const = false) {
  const std::string name = Mangled(rest, is_const);
  void* f = dlsym(RTLD_NEXT, name.c_str());
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in libabsl (%s)\n", name.c_str(), dlerror());
    std::abort();
  }
  return reinterpret_cast<F>(f);
}

// An Abseil condition evaluated by the library (in the waiter, or in another thread as it unlocks) while TSan
// thinks the mutex is not held, though the library holds it: acquire its synchronisation before and release
// it after, as a critical section would. The wrapper and the caller's condition live on the waiter's stack and
// reach the other thread through the library's own (invisible) handoff: the waiter releases on the wrapper
// before the call, the evaluator acquires it first. The wrapper goes through Condition's void* constructor, so
// that the library's own code (not an instrumented template of ours) reads it.
struct Acquiring {
  const absl::Condition* user;
  absl::Mutex* mu;
  static bool Eval(void* p) {
    __tsan_acquire(p);
    auto* a = static_cast<Acquiring*>(p);
    __tsan_acquire(a->mu);
    const bool r = a->user->Eval();
    __tsan_release(a->mu);
    return r;
  }
};

// Abseil's entry points call one another through the PLT (AwaitWithTimeout calls AwaitWithDeadline,
// Notification::Notify locks its mutex): only the outermost interposed call of a thread annotates.
thread_local int depth = 0;
struct Outer {
  const bool outer = depth++ == 0;
  ~Outer() { --depth; }
};

void PreLock(const Outer& o, absl::Mutex* mu, unsigned flags = 0) {
  if (o.outer) __tsan_mutex_pre_lock(mu, flags);
}
void PostLock(const Outer& o, absl::Mutex* mu, unsigned flags = 0) {
  if (o.outer) __tsan_mutex_post_lock(mu, flags, 0);
}
void PreUnlock(const Outer& o, absl::Mutex* mu, unsigned flags = 0) {
  if (o.outer) __tsan_mutex_pre_unlock(mu, flags);
}
void PostUnlock(const Outer& o, absl::Mutex* mu, unsigned flags = 0) {
  if (o.outer) __tsan_mutex_post_unlock(mu, flags);
}

using MuFn = void (*)(absl::Mutex*);
using MuTryFn = bool (*)(absl::Mutex*);
using MuCondFn = void (*)(absl::Mutex*, const absl::Condition&);
using MuCondTimeoutFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Duration);
using MuCondDeadlineFn = bool (*)(absl::Mutex*, const absl::Condition&, absl::Time);

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

// Not interposed: Mutex's destructor. A mutex inside gRPC's objects is destroyed by whichever of its threads
// lets go last (a handoff TSan cannot see), and TSan drops a mutex's state when its memory is freed anyway.

void Mutex::Lock() {
  static const MuFn real = Real<MuFn>("5Mutex4LockEv");
  const Outer o;
  PreLock(o, this);
  real(this);
  PostLock(o, this);
}

void Mutex::Unlock() {
  static const MuFn real = Real<MuFn>("5Mutex6UnlockEv");
  const Outer o;
  PreUnlock(o, this);
  real(this);
  PostUnlock(o, this);
}

bool Mutex::TryLock() {
  static const MuTryFn real = Real<MuTryFn>("5Mutex7TryLockEv");
  const Outer o;
  PreLock(o, this, __tsan_mutex_try_lock);
  const bool got = real(this);
  PostLock(o, this, __tsan_mutex_try_lock | (got ? 0 : __tsan_mutex_try_lock_failed));
  return got;
}

void Mutex::ReaderLock() {
  static const MuFn real = Real<MuFn>("5Mutex10ReaderLockEv");
  const Outer o;
  PreLock(o, this, __tsan_mutex_read_lock);
  real(this);
  PostLock(o, this, __tsan_mutex_read_lock);
}

void Mutex::ReaderUnlock() {
  static const MuFn real = Real<MuFn>("5Mutex12ReaderUnlockEv");
  const Outer o;
  PreUnlock(o, this, __tsan_mutex_read_lock);
  real(this);
  PostUnlock(o, this, __tsan_mutex_read_lock);
}

bool Mutex::ReaderTryLock() {
  static const MuTryFn real = Real<MuTryFn>("5Mutex13ReaderTryLockEv");
  const Outer o;
  PreLock(o, this, __tsan_mutex_read_lock | __tsan_mutex_try_lock);
  const bool got = real(this);
  PostLock(o, this, __tsan_mutex_read_lock | __tsan_mutex_try_lock | (got ? 0 : __tsan_mutex_try_lock_failed));
  return got;
}

// A wait on `mu` for `cond` that returns holding it: `held` says whether the caller holds it before (Await:
// released while waiting) or not (LockWhen). `call` runs the library's wait with the condition to use.
template <typename Call>
bool Waiting(Mutex* mu, const Condition& cond, bool held, Call call) {
  const Outer o;
  Acquiring a{&cond, mu};
  __tsan_release(&a);
  const Condition wrapped(&Acquiring::Eval, static_cast<void*>(&a));
  if (held) {
    PreUnlock(o, mu);
    PostUnlock(o, mu);
  }
  PreLock(o, mu);
  const bool r = call(o.outer ? wrapped : cond);
  PostLock(o, mu);
  return r;
}

// A condition-variable wait: `mu` released while the library's `call` waits, held again after.
template <typename Call>
bool Released(Mutex* mu, Call call) {
  const Outer o;
  PreUnlock(o, mu);
  PostUnlock(o, mu);
  const bool r = call();
  PreLock(o, mu);
  PostLock(o, mu);
  return r;
}

void Mutex::LockWhen(const Condition& cond) {
  static const MuCondFn real = Real<MuCondFn>("5Mutex8LockWhenERKNS0_9ConditionE");
  Waiting(this, cond, /*held=*/false, [&](const Condition& c) { return real(this, c), true; });
}

bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const MuCondTimeoutFn real =
      Real<MuCondTimeoutFn>("5Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Waiting(this, cond, /*held=*/false, [&](const Condition& c) { return real(this, c, timeout); });
}

bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  static const MuCondDeadlineFn real =
      Real<MuCondDeadlineFn>("5Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Waiting(this, cond, /*held=*/false, [&](const Condition& c) { return real(this, c, deadline); });
}

void Mutex::Await(const Condition& cond) {
  static const MuCondFn real = Real<MuCondFn>("5Mutex5AwaitERKNS0_9ConditionE");
  Waiting(this, cond, /*held=*/true, [&](const Condition& c) { return real(this, c), true; });
}

bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  static const MuCondTimeoutFn real =
      Real<MuCondTimeoutFn>("5Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  return Waiting(this, cond, /*held=*/true, [&](const Condition& c) { return real(this, c, timeout); });
}

bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  static const MuCondDeadlineFn real =
      Real<MuCondDeadlineFn>("5Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  return Waiting(this, cond, /*held=*/true, [&](const Condition& c) { return real(this, c, deadline); });
}

void CondVar::Wait(Mutex* mu) {
  using Fn = void (*)(CondVar*, Mutex*);
  static const Fn real = Real<Fn>("7CondVar4WaitEPNS0_5MutexE");
  Released(mu, [&] { return real(this, mu), true; });
}

bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  using Fn = bool (*)(CondVar*, Mutex*, absl::Duration);
  static const Fn real = Real<Fn>("7CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  return Released(mu, [&] { return real(this, mu, timeout); });
}

bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  using Fn = bool (*)(CondVar*, Mutex*, absl::Time);
  static const Fn real = Real<Fn>("7CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  return Released(mu, [&] { return real(this, mu, deadline); });
}

// Notification: mutex_ then the atomic notified_yet_, which HasBeenNotified reads inline (instrumented) with
// acquire: Notify releases on both the object and that atomic.
static_assert(sizeof(Mutex) == sizeof(void*) && sizeof(Notification) == 2 * sizeof(void*),
              "absl::Notification's layout changed: update where notified_yet_ is annotated");

void Notification::Notify() {
  using Fn = void (*)(Notification*);
  static const Fn real = Real<Fn>("12Notification6NotifyEv");
  const Outer o;
  if (o.outer) {
    __tsan_release(this);
    __tsan_release(reinterpret_cast<char*>(this) + sizeof(Mutex));
  }
  real(this);
}

void Notification::WaitForNotification() const {
  using Fn = void (*)(const Notification*);
  static const Fn real = Real<Fn>("12Notification19WaitForNotificationEv", /*is_const=*/true);
  const Outer o;
  real(this);
  if (o.outer) __tsan_acquire(const_cast<Notification*>(this));
}

bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  using Fn = bool (*)(const Notification*, absl::Time);
  static const Fn real = Real<Fn>("12Notification31WaitForNotificationWithDeadlineENS0_4TimeE", /*is_const=*/true);
  const Outer o;
  const bool r = real(this, deadline);
  if (r && o.outer) __tsan_acquire(const_cast<Notification*>(this));
  return r;
}

bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  using Fn = bool (*)(const Notification*, absl::Duration);
  static const Fn real = Real<Fn>("12Notification30WaitForNotificationWithTimeoutENS0_8DurationE", /*is_const=*/true);
  const Outer o;
  const bool r = real(this, timeout);
  if (r && o.outer) __tsan_acquire(const_cast<Notification*>(this));
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl

#endif  // defined(__SANITIZE_THREAD__)
