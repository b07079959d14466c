// The machine's floor for event-loop delay (bench/aio stall suite): one thread per CPU,
// pinned, that does nothing but read CLOCK_MONOTONIC for the given seconds. The longest gap
// between two reads is the longest time that CPU did not run a thread that always wanted
// to: interrupts, kernel threads and, on a VM, the host not running the vCPU. Any event
// loop on that CPU can be held up as long. Prints one JSON line.
// Build: cc -O2 -pthread -o hiccup hiccup.c    Run: ./hiccup SECONDS
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

struct meter {
  int cpu;
  double seconds;
  double max_gap_us;
  long gaps_over_1ms;
};

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void* spin(void* arg) {
  struct meter* m = arg;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(m->cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  double start = now_us();
  double last = start;
  for (;;) {
    double t = now_us();
    double gap = t - last;
    last = t;
    if (gap > m->max_gap_us) m->max_gap_us = gap;
    if (gap > 1000) m->gaps_over_1ms++;
    if (t - start > m->seconds * 1e6) break;
  }
  return NULL;
}

int main(int argc, char** argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 0;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (seconds <= 0 || cpus < 1 || cpus > 1024) {
    fprintf(stderr, "usage: hiccup SECONDS (> 0)\n");
    return 2;
  }
  struct meter* meters = calloc(cpus, sizeof *meters);
  pthread_t* threads = calloc(cpus, sizeof *threads);
  if (meters == NULL || threads == NULL) return 1;
  for (long i = 0; i < cpus; i++) {
    meters[i].cpu = (int)i;
    meters[i].seconds = seconds;
    if (pthread_create(&threads[i], NULL, spin, &meters[i]) != 0) return 1;
  }
  printf("{\"cpus\":[");
  for (long i = 0; i < cpus; i++) {
    pthread_join(threads[i], NULL);
    printf("%s{\"cpu\":%d,\"maxGapMs\":%.3f,\"gapsOver1ms\":%ld}", i > 0 ? "," : "", meters[i].cpu, meters[i].max_gap_us / 1000, meters[i].gaps_over_1ms);
  }
  printf("]}\n");
  return 0;
}
