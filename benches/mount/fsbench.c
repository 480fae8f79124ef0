// Metadata micro-benchmarks for benches/mount/run.sh: prints microseconds per operation.
//   fsbench create DIR N     create (open O_CREAT|O_EXCL + close), stat, unlink N files
//   fsbench stat PATH N      stat PATH N times
//   fsbench readdir DIR N    list DIR (readdir to the end) N times; µs per listing
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: fsbench create|stat|readdir PATH N\n");
    return 2;
  }
  const char *mode = argv[1], *path = argv[2];
  long n = atol(argv[3]);
  char name[4096];
  struct stat st;
  double t0 = now();
  if (!strcmp(mode, "create")) {
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "%s/f%ld", path, i);
      int fd = open(name, O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) die("open");
      close(fd);
      if (stat(name, &st)) die("stat");
    }
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "%s/f%ld", path, i);
      if (unlink(name)) die("unlink");
    }
  } else if (!strcmp(mode, "stat")) {
    for (long i = 0; i < n; i++)
      if (stat(path, &st)) die("stat");
  } else if (!strcmp(mode, "readdir")) {
    long entries = 0;
    for (long i = 0; i < n; i++) {
      DIR *d = opendir(path);
      if (!d) die("opendir");
      while (readdir(d)) entries++;
      closedir(d);
    }
    if (entries == 0) die("readdir");
  } else {
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
  }
  printf("%.3f\n", (now() - t0) / n);
  return 0;
}
