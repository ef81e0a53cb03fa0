#ifndef C_SHOAL_SUPPORT_H
#define C_SHOAL_SUPPORT_H

#include <stddef.h>

/// Asks the kernel to send `signal` to this process when its parent thread exits (Linux); -1 with errno elsewhere.
/// `prctl` is variadic, which Swift cannot call, hence this wrapper.
int shoal_set_parent_death_signal(int signal);

/// A pipe whose two ends are close-on-exec from the start (`pipe2(O_CLOEXEC)`, which needs _GNU_SOURCE).
int shoal_pipe_cloexec(int fds[2]);

/// Names the calling thread (at most 15 bytes are kept), as `ps -L` and `top -H` show it.
void shoal_set_thread_name(const char *name);

/// Bytes the allocator holds free in all its arenas (glibc's `mallinfo2().fordblks`); 0 where unknown.
size_t shoal_heap_free_bytes(void);

/// Hands the free memory of every arena back to the system (glibc's `malloc_trim(0)`); 1 when some was released.
int shoal_heap_trim(void);

#endif
