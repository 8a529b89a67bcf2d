// Thin C helpers for the Linux system calls Crew's process core needs and Swift cannot call directly
// (variadic prctl, unions in siginfo_t and epoll_event, posix_spawn file actions).
#ifndef CCREW_SHIMS_H
#define CCREW_SHIMS_H

#include <stdint.h>
#include <sys/types.h>

// epoll and eventfd constants, for Swift (the Glibc module does not export these headers).
#define CREW_EPOLLIN 0x001u
#define CREW_EPOLLOUT 0x004u
#define CREW_EPOLLERR 0x008u
#define CREW_EPOLLHUP 0x010u
#define CREW_EPOLLRDHUP 0x2000u
#define CREW_EPOLLONESHOT 0x40000000u
#define CREW_EPOLL_CTL_ADD 1
#define CREW_EPOLL_CTL_DEL 2
#define CREW_EPOLL_CTL_MOD 3

/// Starts `path` with `argv`/`envp`. The child's descriptor `i` becomes `fds[i]` for `i < nfds` (`-1` maps
/// `/dev/null`); every other descriptor is closed in the child. Signal mask and dispositions are reset.
/// Returns 0 and stores the pid, or returns an errno value.
int crew_spawn(const char *path, char *const argv[], char *const envp[], const int *fds, int nfds, pid_t *pid);

/// `prctl(PR_SET_PDEATHSIG, sig)`; returns 0 or -1 with errno set.
int crew_set_parent_death_signal(int sig);

/// Installs handlers (on an alternate stack) for the signals a trap or a bad access raises (SIGILL, SIGTRAP,
/// SIGSEGV, SIGBUS, SIGFPE): each writes one line to standard error naming the signal and the function set by
/// `crew_crash_note_function`, then lets the signal end the process as it would have. For children that run
/// without Swift's backtracer: in an optimized build the runtime's checks print nothing of their own.
void crew_crash_note_install(void);
/// The function the crash line names (`len` 0: none). Called by the serving thread around each call.
void crew_crash_note_function(const char *name, size_t len);

/// Makes SIGTERM write out what the process's stdio streams hold before it ends the process, as an exiting
/// program's would: SIGTERM is blocked in the calling thread (and so in the threads it starts later), and a thread
/// of its own waits for it, flushes every stream (at most 2 s: a stream nobody reads must not keep the process
/// alive; SIGALRM ends it then) and ends the process with SIGTERM. No other thread is interrupted by the signal.
/// Call it before the process starts other threads. A program started with fork gets SIGTERM unblocked; one started
/// with posix_spawn (as `system` and `popen` do) keeps the blocked mask unless the spawn resets it (Crew's own
/// launcher does). Returns 0, or -1 if the thread could not be made (then SIGTERM keeps
/// its default action).
int crew_term_flush_install(void);

/// From now on SIGTERM writes one byte to `fd` instead of ending the process (a supervised worker stops gracefully
/// when it reads it), and SIGQUIT flushes stdio and exits with status 0 at once (without it, SIGQUIT flushes, then
/// ends the process as its default action does).
void crew_term_notify(int fd);

/// Installs a handler for each of `signals` that writes the signal's number, as one byte, to `fd` (a non-blocking
/// pipe a thread reads): how a supervisor hears of its signals whatever its threads' masks. Returns 0 or -1.
int crew_signal_pipe_install(int fd, const int *signals, int count);

/// `pidfd_open(pid, 0)`; returns a descriptor (close-on-exec) or -1 with errno set.
int crew_pidfd_open(pid_t pid);

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`; returns 0 or -1 with errno set.
int crew_pidfd_send_signal(int pidfd, int sig);

/// `waitid(P_PIDFD, pidfd, ...)` with `WEXITED` plus `nohang`/`nowait` as asked.
/// Returns 1 and fills `code` (CLD_EXITED, CLD_KILLED, CLD_DUMPED) and `status` when the child has exited,
/// 0 when it is still running, -1 with errno set on error.
int crew_waitid_pidfd(int pidfd, int nohang, int nowait, int *code, int *status);

/// `epoll_ctl` with a 64-bit cookie as the event data.
int crew_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t cookie);

/// `epoll_wait` that unpacks events into two parallel arrays. Returns the count or -1 with errno set.
int crew_epoll_wait(int epfd, uint64_t *cookies, uint32_t *events, int max, int timeout_ms);

/// `epoll_create1(EPOLL_CLOEXEC)`.
int crew_epoll_create(void);

/// A non-blocking, close-on-exec eventfd.
int crew_eventfd(void);

/// Adds 1 to an eventfd's counter.
void crew_eventfd_signal(int fd);

/// Resets an eventfd's counter.
void crew_eventfd_drain(int fd);

/// `pipe2(fds, O_CLOEXEC)`.
int crew_pipe_cloexec(int fds[2]);

/// Makes malloc keep up to `keep` bytes of freed memory for reuse (allocations up to `keep`, at most 32 MiB,
/// come from the heap rather than a mapping of their own; the heap is returned to the system only when more
/// than `keep` bytes at its top are free). Without it, a process that allocates and frees buffers of a few
/// megabytes in turn pays a page fault for every 4 KiB of each. Returns 0, or -1 if malloc refused.
int crew_keep_freed_memory(unsigned long keep);

/// Names the calling thread (at most 15 bytes are kept).
void crew_set_thread_name(const char *name);

/// Initializes `mutex` as an adaptive mutex (it spins briefly before it sleeps, and does not use
/// priority-inheritance futexes, which cost a system call per contended lock).
int crew_mutex_init_adaptive(void *mutex);

/// Sends `data` with `nfds` descriptors attached (SCM_RIGHTS) in one message. Returns bytes sent or -1.
long crew_send_with_fds(int sock, const void *data, unsigned long length, const int *fds, int nfds);

/// Receives one message and up to `max_fds` descriptors (made close-on-exec). Returns bytes received (0 at end
/// of stream) or -1; `*nfds` is set to the number of descriptors received.
long crew_receive_with_fds(int sock, void *buffer, unsigned long capacity, int *fds, int max_fds, int *nfds);

/// Blocks SIGCHLD and returns a non-blocking, close-on-exec signalfd that reads it, or -1.
int crew_sigchld_fd(void);

/// Drains a signalfd of pending signals.
void crew_drain_signalfd(int fd);

/// In a child just forked from a single-threaded process: unblocks every signal, resets their handlers, makes
/// `sock` descriptor 3, `err` descriptor 2, `progress` descriptor 4 (/dev/null if -1), /dev/null descriptor 0 and
/// `inherited[i]` descriptor 5 + i, and closes every other descriptor above 2. Returns 0 or an errno value.
int crew_forked_child_setup(int sock, int err, int progress, const int *inherited, int ninherited);

/// A shared memory region of `size` bytes, mapped here: returns its descriptor (close-on-exec) and stores the
/// address, or returns -1.
int crew_shared_region(unsigned long size, void **address);

/// Maps the shared region behind `fd` (`size` bytes); returns the address or NULL.
void *crew_map_shared(int fd, unsigned long size);

/// Unmaps a region mapped by the two functions above.
void crew_unmap(void *address, unsigned long size);

/// `fork()`.
int crew_fork(void);

/// The number of threads of this process (from /proc/self/task), or -1.
int crew_thread_count(void);


// MARK: Shared memory and cross-process synchronization (Crew's IPC). Deadlines are CLOCK_MONOTONIC nanoseconds,
// -1 for none; functions return 0 or an errno value unless said otherwise.

/// A new owner-only memfd of `size` bytes, mapped shared at `*address`; returns the descriptor or -1 (errno set).
int crew_shared_memory(const char *name, unsigned long size, void **address);
/// The size of the file behind `fd`, or -1.
long crew_fd_size(int fd);
/// FUTEX_WAIT (shared between processes) for at most `timeout_ns` (relative; -1: no limit). 0, EAGAIN (the
/// word was not `expected`), ETIMEDOUT or EINTR.
int crew_futex_wait(uint32_t *address, uint32_t expected, long long timeout_ns);
/// FUTEX_WAKE of up to `count` waiters; the number woken, or -errno.
int crew_futex_wake(uint32_t *address, int count);
/// Initializes a robust, process-shared, error-checking (or recursive) pthread mutex in place.
int crew_robust_mutex_init(void *mutex, int recursive);
/// Locks until the deadline: 0, EOWNERDEAD (locked; the previous owner died holding it), ETIMEDOUT,
/// ENOTRECOVERABLE, EDEADLK.
int crew_mutex_lock_until(void *mutex, long long deadline_ns);
int crew_mutex_trylock(void *mutex);
int crew_mutex_unlock(void *mutex);
int crew_mutex_consistent(void *mutex);
/// Initializes a process-shared condition variable on CLOCK_MONOTONIC in place.
int crew_shared_cond_init(void *cond);
int crew_cond_wait_until(void *cond, void *mutex, long long deadline_ns);
int crew_cond_signal(void *cond, int all);
/// Initializes a process-shared semaphore in place.
int crew_shared_semaphore_init(void *semaphore, unsigned int value);
int crew_semaphore_wait_until(void *semaphore, long long deadline_ns);
int crew_semaphore_trywait(void *semaphore);
int crew_semaphore_post(void *semaphore);
int crew_semaphore_value(void *semaphore);
unsigned long crew_mutex_size(void);
unsigned long crew_cond_size(void);
unsigned long crew_semaphore_size(void);
/// send(2) with MSG_NOSIGNAL, retried on EINTR.
long crew_send_nosignal(int fd, const void *data, unsigned long length);

// Atomics on shared memory (Swift's `Atomic` cannot live at an address in a mapping). Sequentially consistent
// unless named otherwise; inlined into Swift by the importer.
static inline uint32_t crew_load32(const uint32_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void crew_store32(uint32_t *p, uint32_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline uint32_t crew_add32(uint32_t *p, uint32_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline uint32_t crew_sub32(uint32_t *p, uint32_t v) { return __atomic_fetch_sub(p, v, __ATOMIC_SEQ_CST); }
static inline int crew_cas32(uint32_t *p, uint32_t expected, uint32_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline uint64_t crew_load64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void crew_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
static inline int64_t crew_add64(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_SEQ_CST); }
static inline int64_t crew_loadi64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline int crew_casi64(int64_t *p, int64_t expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}
static inline void crew_fence(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

/// The calling thread's kernel id.
int crew_gettid(void);

/// A per-thread flag: set while this thread tries a write that must not wait for another process's lock.
void crew_set_thread_flag(int value);
int crew_thread_flag(void);

/// Fills `buffer` with `count` random bytes from the kernel (getrandom); returns how many were written, or -1.
long crew_random_bytes(void *buffer, unsigned long count);

/// Bytes the heap has handed out and not taken back (mallinfo2), for measurements.
long crew_heap_in_use(void);

#endif
