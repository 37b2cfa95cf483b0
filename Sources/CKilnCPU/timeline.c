/* Timelines: monotonic 64-bit counters with timed waits (see kiln_cpu_runtime.h). */
#define _GNU_SOURCE
#include "kiln_cpu_runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

struct kiln_cpu_timeline {
  pthread_mutex_t mutex;
  pthread_cond_t changed; /* uses CLOCK_MONOTONIC */
  _Atomic uint64_t value; /* written under mutex; read without it while spinning */
};

kiln_cpu_timeline *kiln_cpu_timeline_create(uint64_t initial_value) {
  kiln_cpu_timeline *timeline = malloc(sizeof *timeline);
  if (timeline == NULL) return NULL;
  pthread_condattr_t attributes;
  pthread_condattr_init(&attributes);
  pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
  pthread_cond_init(&timeline->changed, &attributes);
  pthread_condattr_destroy(&attributes);
  pthread_mutex_init(&timeline->mutex, NULL);
  atomic_init(&timeline->value, initial_value);
  return timeline;
}

void kiln_cpu_timeline_destroy(kiln_cpu_timeline *timeline) {
  if (timeline == NULL) return;
  pthread_cond_destroy(&timeline->changed);
  pthread_mutex_destroy(&timeline->mutex);
  free(timeline);
}

uint64_t kiln_cpu_timeline_value(kiln_cpu_timeline *timeline) {
  pthread_mutex_lock(&timeline->mutex);
  uint64_t value = timeline->value;
  pthread_mutex_unlock(&timeline->mutex);
  return value;
}

uint64_t kiln_cpu_timeline_signal(kiln_cpu_timeline *timeline, uint64_t value) {
  pthread_mutex_lock(&timeline->mutex);
  uint64_t previous = atomic_load_explicit(&timeline->value, memory_order_relaxed);
  if (value > previous) {
    atomic_store_explicit(&timeline->value, value, memory_order_release);
    pthread_cond_broadcast(&timeline->changed);
  }
  pthread_mutex_unlock(&timeline->mutex);
  return previous;
}

/* Busy-wait iterations before blocking: a short run's completion is then seen without a futex
 * wake-up (which dominated the latency of small models). */
#define KILN_CPU_TIMELINE_SPIN_ITERATIONS 2000

bool kiln_cpu_timeline_wait(kiln_cpu_timeline *timeline, uint64_t value, int64_t timeout_ns) {
  for (int i = 0; i < KILN_CPU_TIMELINE_SPIN_ITERATIONS; i++) {
    if (atomic_load_explicit(&timeline->value, memory_order_acquire) >= value) return true;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
  }
  const int64_t billion = 1000000000;
  const int64_t cap = (int64_t)100 * 365 * 24 * 3600 * billion; /* about 100 years */
  if (timeout_ns < 0) timeout_ns = 0;
  if (timeout_ns > cap) timeout_ns = cap;
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  int64_t nanoseconds = (int64_t)deadline.tv_nsec + timeout_ns % billion;
  deadline.tv_sec += (time_t)(timeout_ns / billion + nanoseconds / billion);
  deadline.tv_nsec = (long)(nanoseconds % billion);

  pthread_mutex_lock(&timeline->mutex);
  bool reached = timeline->value >= value;
  while (!reached) {
    int status = pthread_cond_timedwait(&timeline->changed, &timeline->mutex, &deadline);
    reached = timeline->value >= value;
    if (status == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&timeline->mutex);
  return reached;
}
