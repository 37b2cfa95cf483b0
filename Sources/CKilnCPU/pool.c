/*
 * A fork-join thread pool for dispatches (see kiln_cpu_runtime.h).
 *
 * One dispatch ("job") at a time. The dispatcher publishes the job under the mutex with a new
 * generation number, wakes as many workers as there are spare chunks, and works on the job itself.
 * Chunks are claimed from one 64-bit atomic that holds (generation << 32 | next chunk): a worker
 * that wakes late for an old job fails to claim and goes back to sleep, so a job never runs a chunk
 * of another. The dispatcher returns once `finished` reaches the chunk count.
 */
#define _GNU_SOURCE
#include "kiln_cpu_runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Without a hint, chunks shrink as the range empties (guided scheduling): each claim takes the
 * remaining workgroups over twice the participants, but never less than a sixteenth of an equal
 * share. Big first chunks keep claims few; small last ones leave no thread waiting long for
 * another's last chunk. */
#define KILN_CPU_GUIDED_DIVISOR 2
#define KILN_CPU_GUIDED_MIN_FRACTION 16
/* Busy-wait iterations before blocking (keeps back-to-back dispatches off the futex path). */
#define KILN_CPU_SPIN_ITERATIONS 2000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

/* What one job is; copied by each participant so that the pool's copy can change afterwards. */
typedef struct job {
  kiln_cpu_kernel kernel;
  kiln_cpu_dispatch dispatch; /* workgroup_begin/end: the whole range of the job */
  uint32_t total;             /* workgroups in the range */
  uint32_t chunk_size;        /* fixed chunks (a kernel's hint); 0: guided */
  uint32_t guided_divisor;    /* guided: a claim takes remaining / guided_divisor ... */
  uint32_t min_chunk;         /* ... and at least this many */
  uint32_t generation;
} job;

static inline uint32_t chunk_for(const job *work, uint32_t remaining) {
  uint32_t size = work->chunk_size;
  if (size == 0) {
    size = (remaining + work->guided_divisor - 1) / work->guided_divisor;
    if (size < work->min_chunk) size = work->min_chunk;
  }
  return size < remaining ? size : remaining;
}

struct kiln_cpu_pool {
  pthread_mutex_t mutex;
  pthread_cond_t work_ready;    /* workers wait here for a new generation */
  pthread_cond_t work_finished; /* the dispatcher waits here for `finished` */
  pthread_mutex_t dispatch_lock; /* serialises dispatchers */
  job current;                   /* guarded by mutex */
  bool stopping;                 /* guarded by mutex */
  _Atomic uint32_t generation;   /* written under mutex; read without it while spinning */
  _Atomic uint64_t claim;        /* generation << 32 | offset of the first unclaimed workgroup */
  _Atomic uint32_t finished;     /* workgroups of the current job that have run */
  uint32_t worker_count;
  pthread_t *threads;
};

/* Claims and runs chunks of `work` until none is left; used by workers and the dispatcher. */
static void run_chunks(kiln_cpu_pool *pool, const job *work) {
  for (;;) {
    uint64_t claim = atomic_load_explicit(&pool->claim, memory_order_acquire);
    if ((uint32_t)(claim >> 32) != work->generation) return;
    uint32_t next = (uint32_t)claim;
    if (next >= work->total) return;
    uint32_t size = chunk_for(work, work->total - next);
    if (!atomic_compare_exchange_weak_explicit(
          &pool->claim, &claim, claim + size, memory_order_acq_rel, memory_order_relaxed)) {
      continue;
    }
    kiln_cpu_dispatch dispatch = work->dispatch;
    dispatch.workgroup_begin = work->dispatch.workgroup_begin + next;
    dispatch.workgroup_end = dispatch.workgroup_begin + size;
    work->kernel(&dispatch);
    uint32_t done = atomic_fetch_add_explicit(&pool->finished, size, memory_order_acq_rel) + size;
    if (done == work->total) {
      pthread_mutex_lock(&pool->mutex);
      pthread_cond_broadcast(&pool->work_finished);
      pthread_mutex_unlock(&pool->mutex);
    }
  }
}

static void *worker_main(void *argument) {
  kiln_cpu_pool *pool = argument;
  uint32_t seen = 0;
  for (;;) {
    for (int i = 0; i < KILN_CPU_SPIN_ITERATIONS; i++) {
      if (atomic_load_explicit(&pool->generation, memory_order_relaxed) != seen) break;
      cpu_relax();
    }
    pthread_mutex_lock(&pool->mutex);
    while (!pool->stopping && atomic_load_explicit(&pool->generation, memory_order_relaxed) == seen) {
      pthread_cond_wait(&pool->work_ready, &pool->mutex);
    }
    if (pool->stopping) {
      pthread_mutex_unlock(&pool->mutex);
      return NULL;
    }
    job work = pool->current;
    seen = work.generation;
    pthread_mutex_unlock(&pool->mutex);
    run_chunks(pool, &work);
  }
}

static void set_error(char *error, size_t capacity, const char *what, int code) {
  if (error != NULL && capacity > 0) snprintf(error, capacity, "%s: %s", what, strerror(code));
}

static void stop_workers(kiln_cpu_pool *pool, uint32_t started) {
  pthread_mutex_lock(&pool->mutex);
  pool->stopping = true;
  pthread_cond_broadcast(&pool->work_ready);
  pthread_mutex_unlock(&pool->mutex);
  for (uint32_t i = 0; i < started; i++) pthread_join(pool->threads[i], NULL);
}

static void free_pool(kiln_cpu_pool *pool) {
  pthread_cond_destroy(&pool->work_ready);
  pthread_cond_destroy(&pool->work_finished);
  pthread_mutex_destroy(&pool->mutex);
  pthread_mutex_destroy(&pool->dispatch_lock);
  free(pool->threads);
  free(pool);
}

kiln_cpu_pool *kiln_cpu_pool_create(uint32_t worker_count, size_t stack_size, char *error, size_t error_capacity) {
  kiln_cpu_pool *pool = calloc(1, sizeof *pool);
  pthread_t *threads = calloc(worker_count > 0 ? worker_count : 1, sizeof(pthread_t));
  if (pool == NULL || threads == NULL) {
    free(pool);
    free(threads);
    set_error(error, error_capacity, "allocating the thread pool", ENOMEM);
    return NULL;
  }
  pool->threads = threads;
  pool->worker_count = worker_count;
  pthread_mutex_init(&pool->mutex, NULL);
  pthread_mutex_init(&pool->dispatch_lock, NULL);
  pthread_cond_init(&pool->work_ready, NULL);
  pthread_cond_init(&pool->work_finished, NULL);
  atomic_init(&pool->generation, 0);
  atomic_init(&pool->claim, 0);
  atomic_init(&pool->finished, 0);

  pthread_attr_t attributes;
  pthread_attr_init(&attributes);
  int status = pthread_attr_setstacksize(&attributes, stack_size != 0 ? stack_size : (size_t)8 << 20);
  if (status != 0) {
    pthread_attr_destroy(&attributes);
    set_error(error, error_capacity, "pthread_attr_setstacksize", status);
    free_pool(pool);
    return NULL;
  }
  for (uint32_t i = 0; i < worker_count; i++) {
    status = pthread_create(&pool->threads[i], &attributes, worker_main, pool);
    if (status != 0) {
      pthread_attr_destroy(&attributes);
      stop_workers(pool, i);
      set_error(error, error_capacity, "pthread_create", status);
      free_pool(pool);
      return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "kiln-cpu-%u", i + 1);
    pthread_setname_np(pool->threads[i], name);
  }
  pthread_attr_destroy(&attributes);
  return pool;
}

void kiln_cpu_pool_destroy(kiln_cpu_pool *pool) {
  if (pool == NULL) return;
  stop_workers(pool, pool->worker_count);
  free_pool(pool);
}

void kiln_cpu_pool_dispatch(kiln_cpu_pool *pool, kiln_cpu_kernel kernel, const kiln_cpu_dispatch *dispatch,
                            uint32_t chunks_per_thread) {
  if (kernel == NULL || dispatch == NULL || dispatch->workgroup_begin >= dispatch->workgroup_end) return;
  uint32_t total = dispatch->workgroup_end - dispatch->workgroup_begin;
  if (pool == NULL || pool->worker_count == 0 || total == 1) {
    kernel(dispatch);
    return;
  }
  uint64_t participants = (uint64_t)pool->worker_count + 1;
  uint32_t chunk_size = 0, min_chunk = 1, chunk_count = total;
  if (chunks_per_thread > 0) {
    uint64_t wanted = participants * chunks_per_thread;
    chunk_count = total < wanted ? total : (uint32_t)wanted;
    chunk_size = (uint32_t)(((uint64_t)total + chunk_count - 1) / chunk_count);
    chunk_count = (uint32_t)(((uint64_t)total + chunk_size - 1) / chunk_size);
  } else {
    uint64_t floor = (uint64_t)total / (participants * KILN_CPU_GUIDED_MIN_FRACTION);
    min_chunk = floor > 1 ? (uint32_t)floor : 1;
  }
  uint64_t divisor = participants * KILN_CPU_GUIDED_DIVISOR;

  pthread_mutex_lock(&pool->dispatch_lock);
  pthread_mutex_lock(&pool->mutex);
  uint32_t generation = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
  if (generation == 0) generation = 1; /* 0 is the workers' initial "seen" */
  job work = {kernel, *dispatch, total, chunk_size, divisor < UINT32_MAX ? (uint32_t)divisor : UINT32_MAX, min_chunk, generation};
  pool->current = work;
  atomic_store_explicit(&pool->finished, 0, memory_order_relaxed);
  atomic_store_explicit(&pool->claim, (uint64_t)generation << 32, memory_order_release);
  atomic_store_explicit(&pool->generation, generation, memory_order_release);
  uint32_t helpers = chunk_count - 1 < pool->worker_count ? chunk_count - 1 : pool->worker_count;
  if (helpers == pool->worker_count) {
    pthread_cond_broadcast(&pool->work_ready);
  } else {
    for (uint32_t i = 0; i < helpers; i++) pthread_cond_signal(&pool->work_ready);
  }
  pthread_mutex_unlock(&pool->mutex);

  run_chunks(pool, &work);

  for (int i = 0; i < KILN_CPU_SPIN_ITERATIONS; i++) {
    if (atomic_load_explicit(&pool->finished, memory_order_acquire) >= total) break;
    cpu_relax();
  }
  if (atomic_load_explicit(&pool->finished, memory_order_acquire) < total) {
    pthread_mutex_lock(&pool->mutex);
    while (atomic_load_explicit(&pool->finished, memory_order_acquire) < total) {
      pthread_cond_wait(&pool->work_finished, &pool->mutex);
    }
    pthread_mutex_unlock(&pool->mutex);
  }
  pthread_mutex_unlock(&pool->dispatch_lock);
}

size_t kiln_cpu_current_thread_stack_size(void) {
  pthread_attr_t attributes;
  if (pthread_getattr_np(pthread_self(), &attributes) != 0) return 0;
  size_t size = 0;
  pthread_attr_getstacksize(&attributes, &size);
  pthread_attr_destroy(&attributes);
  return size;
}
