// Over 500 lines: every C call Crew makes that Swift cannot make directly (pidfds, robust process-shared mutexes,
// futexes, descriptors over sockets, a child's signal handlers), each a few lines; they are one C target so that
// a child links one small object, and the MARK comments divide it by concern.

#define _GNU_SOURCE
#include "CCrewShims.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

int crew_spawn(const char *path, char *const argv[], char *const envp[], const int *fds, int nfds, pid_t *pid) {
    // Every source descriptor is first copied above the target range, so that no dup2 overwrites a source
    // that a later dup2 still needs, and so that dup2 always changes the descriptor (which clears
    // FD_CLOEXEC on the target; dup2(fd, fd) would leave the flag set and exec would close it).
    int moved[nfds > 0 ? nfds : 1];
    int devnull = -1;
    int rc = 0;
    for (int i = 0; i < nfds; i++) moved[i] = -1;
    for (int i = 0; i < nfds; i++) {
        int source = fds[i];
        if (source < 0) {
            if (devnull < 0) {
                devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
                if (devnull < 0) { rc = errno; goto out; }
            }
            source = devnull;
        }
        moved[i] = fcntl(source, F_DUPFD_CLOEXEC, nfds);
        if (moved[i] < 0) { rc = errno; goto out; }
    }

    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    if ((rc = posix_spawn_file_actions_init(&actions)) != 0) goto out;
    if ((rc = posix_spawnattr_init(&attr)) != 0) { posix_spawn_file_actions_destroy(&actions); goto out; }
    for (int i = 0; i < nfds && rc == 0; i++) rc = posix_spawn_file_actions_adddup2(&actions, moved[i], i);
    if (rc == 0) rc = posix_spawn_file_actions_addclosefrom_np(&actions, nfds);

    sigset_t mask, all;
    sigemptyset(&mask);
    sigfillset(&all);
    if (rc == 0) rc = posix_spawnattr_setsigmask(&attr, &mask);
    if (rc == 0) rc = posix_spawnattr_setsigdefault(&attr, &all);
    if (rc == 0) rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (rc == 0) rc = posix_spawn(pid, path, &actions, &attr, argv, envp);

    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&actions);
out:
    for (int i = 0; i < nfds; i++) if (moved[i] >= 0) close(moved[i]);
    if (devnull >= 0) close(devnull);
    return rc;
}

int crew_set_parent_death_signal(int sig) {
    return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0UL, 0UL, 0UL);
}

int crew_pidfd_open(pid_t pid) {
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

int crew_pidfd_send_signal(int pidfd, int sig) {
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int crew_waitid_pidfd(int pidfd, int nohang, int nowait, int *code, int *status) {
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int options = WEXITED | (nohang ? WNOHANG : 0) | (nowait ? WNOWAIT : 0);
    int rc;
    do {
        rc = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, options);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return -1;
    if (info.si_pid == 0) return 0;
    *code = info.si_code;
    *status = info.si_status;
    return 1;
}

int crew_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t cookie) {
    struct epoll_event event;
    memset(&event, 0, sizeof event);
    event.events = events;
    event.data.u64 = cookie;
    return epoll_ctl(epfd, op, fd, &event);
}

int crew_epoll_wait(int epfd, uint64_t *cookies, uint32_t *events, int max, int timeout_ms) {
    struct epoll_event buffer[64];
    if (max > 64) max = 64;
    int n = epoll_wait(epfd, buffer, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        cookies[i] = buffer[i].data.u64;
        events[i] = buffer[i].events;
    }
    return n;
}


int crew_epoll_create(void) {
    return epoll_create1(EPOLL_CLOEXEC);
}

int crew_eventfd(void) {
    return eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
}

void crew_eventfd_signal(int fd) {
    uint64_t one = 1;
    ssize_t rc;
    do {
        rc = write(fd, &one, sizeof one);
    } while (rc < 0 && errno == EINTR);
}

void crew_eventfd_drain(int fd) {
    uint64_t value;
    ssize_t rc;
    do {
        rc = read(fd, &value, sizeof value);
    } while (rc < 0 && errno == EINTR);
}

int crew_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}

int crew_keep_freed_memory(unsigned long keep) {
#ifdef __GLIBC__
    // A fixed threshold also turns off glibc's sliding one, which otherwise moves after every large free.
    int ok = mallopt(M_MMAP_THRESHOLD, (int)(keep > 32ul << 20 ? 32ul << 20 : keep));
    return ok && mallopt(M_TRIM_THRESHOLD, (int)(keep > 1ul << 30 ? 1ul << 30 : keep)) ? 0 : -1;
#else
    (void)keep;
    return -1;
#endif
}

void crew_set_thread_name(const char *name) {
    char short_name[16];
    strncpy(short_name, name, 15);
    short_name[15] = 0;
    pthread_setname_np(pthread_self(), short_name);
}

int crew_mutex_init_adaptive(void *mutex) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_settype(&attributes, PTHREAD_MUTEX_ADAPTIVE_NP);
    int rc = pthread_mutex_init((pthread_mutex_t *)mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
    return rc;
}

long crew_send_with_fds(int sock, const void *data, unsigned long length, const int *fds, int nfds) {
    struct iovec iov = { .iov_base = (void *)data, .iov_len = length };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * 80)];
    } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    memset(&control, 0, sizeof control);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    if (nfds > 0) {
        if (nfds > 8) { errno = EINVAL; return -1; }
        message.msg_control = control.space;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(cmsg), fds, sizeof(int) * nfds);
    }
    ssize_t rc;
    do {
        rc = sendmsg(sock, &message, MSG_NOSIGNAL);
    } while (rc < 0 && errno == EINTR);
    return rc;
}

long crew_receive_with_fds(int sock, void *buffer, unsigned long capacity, int *fds, int max_fds, int *nfds) {
    struct iovec iov = { .iov_base = buffer, .iov_len = capacity };
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int) * 80)];
    } control;
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.space;
    message.msg_controllen = sizeof control.space;
    *nfds = 0;
    ssize_t rc;
    do {
        rc = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) return rc;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message); cmsg != NULL; cmsg = CMSG_NXTHDR(&message, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
        int count = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *received = (int *)CMSG_DATA(cmsg);
        for (int i = 0; i < count; i++) {
            if (*nfds < max_fds) fds[(*nfds)++] = received[i];
            else close(received[i]);
        }
    }
    return rc;
}

int crew_sigchld_fd(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) return -1;
    return signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
}

void crew_drain_signalfd(int fd) {
    struct signalfd_siginfo info;
    while (read(fd, &info, sizeof info) == (ssize_t)sizeof info) {}
}

int crew_forked_child_setup(int sock, int err, int progress, const int *inherited, int ninherited) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        signal(sig, SIG_DFL);
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0) return errno;
    // Move every source above the target range first, so that no dup2 overwrites a descriptor still needed.
    int floor = 5 + ninherited;
    int s = fcntl(sock, F_DUPFD_CLOEXEC, floor);
    int e = fcntl(err, F_DUPFD_CLOEXEC, floor);
    int n = fcntl(devnull, F_DUPFD_CLOEXEC, floor);
    int p = fcntl(progress >= 0 ? progress : devnull, F_DUPFD_CLOEXEC, floor);
    if (s < 0 || e < 0 || n < 0 || p < 0) return errno;
    int moved[ninherited > 0 ? ninherited : 1];
    for (int i = 0; i < ninherited; i++) {
        moved[i] = fcntl(inherited[i], F_DUPFD_CLOEXEC, floor);
        if (moved[i] < 0) return errno;
    }
    if (dup2(n, 0) < 0 || dup2(e, 2) < 0 || dup2(s, 3) < 0 || dup2(p, 4) < 0) return errno;
    // Descriptors handed to the child (queues, pipes, shared memory) are 5, 6, ... as with a spawned child.
    for (int i = 0; i < ninherited; i++) {
        if (dup2(moved[i], 5 + i) < 0) return errno;
    }
    syscall(SYS_close_range, floor, ~0U, 0);
    return 0;
}

int crew_fork(void) {
    return fork();
}

int crew_thread_count(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.') count++;
    }
    closedir(dir);
    return count;
}

int crew_shared_region(unsigned long size, void **address) {
    int fd = memfd_create("crew-progress", MFD_CLOEXEC);
    if (fd < 0) return -1;
    if (ftruncate(fd, (off_t)size) != 0) { close(fd); return -1; }
    void *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) { close(fd); return -1; }
    *address = mapped;
    return fd;
}

void *crew_map_shared(int fd, unsigned long size) {
    void *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    return mapped == MAP_FAILED ? NULL : mapped;
}

void crew_unmap(void *address, unsigned long size) {
    if (address) munmap(address, size);
}

// MARK: Shared memory and cross-process synchronization (Crew's IPC)

#include <linux/futex.h>
#include <semaphore.h>
#include <sys/stat.h>
#include <time.h>

int crew_shared_memory(const char *name, unsigned long size, void **address) {
    int fd = memfd_create(name, MFD_CLOEXEC);
    if (fd < 0) return -1;
    fchmod(fd, 0600);
    if (ftruncate(fd, (off_t)size) != 0) { int e = errno; close(fd); errno = e; return -1; }
    void *mapped = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) { int e = errno; close(fd); errno = e; return -1; }
    *address = mapped;
    return fd;
}

long crew_fd_size(int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    return (long)st.st_size;
}

static struct timespec crew_timespec(long long nanoseconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)(nanoseconds / 1000000000LL);
    ts.tv_nsec = (long)(nanoseconds % 1000000000LL);
    return ts;
}

int crew_futex_wait(uint32_t *address, uint32_t expected, long long timeout_ns) {
    struct timespec ts;
    if (timeout_ns >= 0) ts = crew_timespec(timeout_ns);
    long rc = syscall(SYS_futex, address, FUTEX_WAIT, expected, timeout_ns >= 0 ? &ts : NULL, NULL, 0);
    return rc == 0 ? 0 : errno;
}

int crew_futex_wake(uint32_t *address, int count) {
    long rc = syscall(SYS_futex, address, FUTEX_WAKE, count, NULL, NULL, 0);
    return rc < 0 ? -errno : (int)rc;
}

int crew_robust_mutex_init(void *mutex, int recursive) {
    pthread_mutexattr_t attributes;
    pthread_mutexattr_init(&attributes);
    pthread_mutexattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attributes, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&attributes, recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
    int rc = pthread_mutex_init((pthread_mutex_t *)mutex, &attributes);
    pthread_mutexattr_destroy(&attributes);
    return rc;
}

int crew_mutex_lock_until(void *mutex, long long deadline_ns) {
    if (deadline_ns < 0) return pthread_mutex_lock((pthread_mutex_t *)mutex);
    struct timespec ts = crew_timespec(deadline_ns);
    return pthread_mutex_clocklock((pthread_mutex_t *)mutex, CLOCK_MONOTONIC, &ts);
}

int crew_mutex_trylock(void *mutex) { return pthread_mutex_trylock((pthread_mutex_t *)mutex); }
int crew_mutex_unlock(void *mutex) { return pthread_mutex_unlock((pthread_mutex_t *)mutex); }
int crew_mutex_consistent(void *mutex) { return pthread_mutex_consistent((pthread_mutex_t *)mutex); }

int crew_shared_cond_init(void *cond) {
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setpshared(&attributes, PTHREAD_PROCESS_SHARED);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    int rc = pthread_cond_init((pthread_cond_t *)cond, &attributes);
    pthread_condattr_destroy(&attributes);
    return rc;
}

int crew_cond_wait_until(void *cond, void *mutex, long long deadline_ns) {
    if (deadline_ns < 0) return pthread_cond_wait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex);
    struct timespec ts = crew_timespec(deadline_ns);
    return pthread_cond_timedwait((pthread_cond_t *)cond, (pthread_mutex_t *)mutex, &ts);
}

int crew_cond_signal(void *cond, int all) {
    return all ? pthread_cond_broadcast((pthread_cond_t *)cond) : pthread_cond_signal((pthread_cond_t *)cond);
}

int crew_shared_semaphore_init(void *semaphore, unsigned int value) {
    return sem_init((sem_t *)semaphore, 1, value) == 0 ? 0 : errno;
}

int crew_semaphore_wait_until(void *semaphore, long long deadline_ns) {
    int rc;
    if (deadline_ns < 0) {
        do { rc = sem_wait((sem_t *)semaphore); } while (rc != 0 && errno == EINTR);
    } else {
        struct timespec ts = crew_timespec(deadline_ns);
        do { rc = sem_clockwait((sem_t *)semaphore, CLOCK_MONOTONIC, &ts); } while (rc != 0 && errno == EINTR);
    }
    return rc == 0 ? 0 : errno;
}

int crew_semaphore_trywait(void *semaphore) {
    return sem_trywait((sem_t *)semaphore) == 0 ? 0 : errno;
}

int crew_semaphore_post(void *semaphore) {
    return sem_post((sem_t *)semaphore) == 0 ? 0 : errno;
}

int crew_semaphore_value(void *semaphore) {
    int value = 0;
    sem_getvalue((sem_t *)semaphore, &value);
    return value;
}

unsigned long crew_mutex_size(void) { return sizeof(pthread_mutex_t); }
unsigned long crew_cond_size(void) { return sizeof(pthread_cond_t); }
unsigned long crew_semaphore_size(void) { return sizeof(sem_t); }

long crew_send_nosignal(int fd, const void *data, unsigned long length) {
    long rc;
    do { rc = send(fd, data, length, MSG_NOSIGNAL); } while (rc < 0 && errno == EINTR);
    return rc;
}

int crew_gettid(void) { return (int)syscall(SYS_gettid); }

static __thread int crew_flag;
void crew_set_thread_flag(int value) { crew_flag = value; }
int crew_thread_flag(void) { return crew_flag; }

long crew_random_bytes(void *buffer, unsigned long count) { return (long)syscall(SYS_getrandom, buffer, count, 0); }

#include <malloc.h>

long crew_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return (long)(info.uordblks + info.hblkhd);
}

// MARK: Crash note

static char crew_crash_name[128];
static volatile sig_atomic_t crew_crash_name_len = 0;

void crew_crash_note_function(const char *name, size_t len) {
    if (len >= sizeof crew_crash_name) len = sizeof crew_crash_name - 1;
    crew_crash_name_len = 0;
    if (len > 0) memcpy(crew_crash_name, name, len);
    crew_crash_name_len = (sig_atomic_t)len;
}

static size_t crew_append(char *buffer, size_t at, size_t size, const char *text, size_t len) {
    if (at + len > size) len = size - at;
    memcpy(buffer + at, text, len);
    return at + len;
}

static void crew_crash_handler(int sig) {
    const char *what = "SIGILL (a trap: a failed runtime check, fatalError or precondition)";
    if (sig == SIGTRAP) what = "SIGTRAP (a trap: a failed runtime check, fatalError or precondition)";
    if (sig == SIGSEGV) what = "SIGSEGV (a bad memory access)";
    if (sig == SIGBUS) what = "SIGBUS (a bad memory access)";
    if (sig == SIGFPE) what = "SIGFPE (an arithmetic fault)";
    char line[320];
    size_t at = 0;
    at = crew_append(line, at, sizeof line, "crew child: ", 12);
    at = crew_append(line, at, sizeof line, what, strlen(what));
    size_t len = (size_t)crew_crash_name_len;
    if (len > 0) {
        at = crew_append(line, at, sizeof line, " while running \"", 16);
        at = crew_append(line, at, sizeof line, crew_crash_name, len);
        at = crew_append(line, at, sizeof line, "\"", 1);
    }
    at = crew_append(line, at, sizeof line, "\n", 1);
    ssize_t ignored = write(2, line, at);
    (void)ignored;
    // SA_RESETHAND put the default action back: the signal, raised again (or the faulting instruction, run again
    // on return), ends the process with it.
    raise(sig);
}

void crew_crash_note_install(void) {
    static int installed = 0;
    if (installed) return;
    installed = 1;
    // An alternate stack, so that a stack overflow's SIGSEGV can still be reported.
    stack_t stack;
    stack.ss_size = 64 * 1024;
    stack.ss_sp = malloc(stack.ss_size);
    stack.ss_flags = 0;
    int onstack = stack.ss_sp != NULL && sigaltstack(&stack, NULL) == 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = crew_crash_handler;
    action.sa_flags = SA_RESETHAND | (onstack ? SA_ONSTACK : 0);
    sigemptyset(&action.sa_mask);
    int signals[] = {SIGILL, SIGTRAP, SIGSEGV, SIGBUS, SIGFPE};
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++) sigaction(signals[i], &action, NULL);
}

// MARK: Flushing on SIGTERM

#include <stdio.h>

static volatile int crew_term_notify_fd = -1;

void crew_term_notify(int fd) { crew_term_notify_fd = fd; }

static void *crew_term_thread(void *unused) {
    (void)unused;
    sigset_t waited;
    sigemptyset(&waited);
    sigaddset(&waited, SIGTERM);
    sigaddset(&waited, SIGQUIT);
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    for (;;) {
        int received = 0;
        while (sigwait(&waited, &received) != 0 || (received != SIGTERM && received != SIGQUIT)) {
        }
        int notify = crew_term_notify_fd;
        if (received == SIGQUIT) {
            fflush(NULL);
            if (notify >= 0) _exit(0);  // A supervised worker's quick stop.
            // Otherwise SIGQUIT's own end (the status says so), as if it had never been caught.
            sigset_t quit;
            sigemptyset(&quit);
            sigaddset(&quit, SIGQUIT);
            raise(SIGQUIT);
            pthread_sigmask(SIG_UNBLOCK, &quit, NULL);
            pthread_sigmask(SIG_BLOCK, &quit, NULL);
            continue;
        }
        if (notify >= 0) {
            // A supervised worker: the byte tells it to stop taking work and finish what it has.
            char byte = 'T';
            while (write(notify, &byte, 1) < 0 && errno == EINTR) {
            }
            continue;
        }
        alarm(2);
        fflush(NULL);
        // Raised by this thread and let through here only, the signal ends the process, whose status says SIGTERM.
        raise(SIGTERM);
        pthread_sigmask(SIG_UNBLOCK, &term, NULL);
        // Still here: the program handles SIGTERM itself, and its handler has run. Wait for the next one.
        alarm(0);
        pthread_sigmask(SIG_BLOCK, &term, NULL);
    }
    return NULL;
}

static volatile int crew_signal_pipe_fd = -1;

static void crew_signal_to_pipe(int signal) {
    int saved = errno;
    unsigned char byte = (unsigned char)signal;
    if (crew_signal_pipe_fd >= 0) (void)!write(crew_signal_pipe_fd, &byte, 1);
    errno = saved;
}

int crew_signal_pipe_install(int fd, const int *signals, int count) {
    crew_signal_pipe_fd = fd;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = crew_signal_to_pipe;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    for (int i = 0; i < count; i++) {
        if (sigaction(signals[i], &action, NULL) != 0) return -1;
    }
    return 0;
}

// A program started with fork (and exec) gets SIGTERM's default back, rather than this process's blocked mask.
static void crew_term_unblock_in_fork_child(void) {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGQUIT);
    pthread_sigmask(SIG_UNBLOCK, &term, NULL);
}

int crew_term_flush_install(void) {
    static int installed = 0;
    if (installed) return 0;
    // SIGTERM (and SIGQUIT) is blocked in this thread, and so in every thread started after it: none is interrupted
    // by it (a handler would cut a call's sleep or read short); the thread below waits for it instead.
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGQUIT);
    if (pthread_sigmask(SIG_BLOCK, &term, &old) != 0) return -1;
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    pthread_t thread;
    int failed = pthread_create(&thread, &attributes, crew_term_thread, NULL);
    pthread_attr_destroy(&attributes);
    if (failed) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = failed;
        return -1;
    }
    pthread_atfork(NULL, NULL, crew_term_unblock_in_fork_child);
    installed = 1;
    return 0;
}
