// posix_spawn for Node: glibc starts the child with clone(CLONE_VM|CLONE_VFORK), so the cost does not grow
// with the parent's memory as fork() in node:child_process does (~10 ms per spawn for a 90 MB daemon here).
// Children started here are not libuv's: the caller reaps them with wait() (waitpid WNOHANG).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <node_api.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[1024];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  const char *name = strerrorname_np(err);
  char fallback[32];
  if (name == NULL) {
    snprintf(fallback, sizeof fallback, "E%d", err);
    name = fallback;
  }
  napi_value code, text, error, errnoValue;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &error);
  napi_create_int32(env, -err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

static char *get_string(napi_env env, napi_value value) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return NULL;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *buf = malloc(len + 1);
  if (buf == NULL) return NULL;
  napi_get_value_string_utf8(env, value, buf, len + 1, &len);
  return buf;
}

static void free_strings(char **arr) {
  if (arr == NULL) return;
  for (char **p = arr; *p; p++) free(*p);
  free(arr);
}

// A JS array of strings as a NULL-terminated array; NULL for anything that is not an array.
static char **get_strings(napi_env env, napi_value value) {
  bool is_array = false;
  if (napi_is_array(env, value, &is_array) != napi_ok || !is_array) return NULL;
  uint32_t n = 0;
  napi_get_array_length(env, value, &n);
  char **out = calloc(n + 1, sizeof(char *));
  if (out == NULL) return NULL;
  for (uint32_t i = 0; i < n; i++) {
    napi_value item;
    napi_get_element(env, value, i, &item);
    out[i] = get_string(env, item);
    if (out[i] == NULL) {
      free_strings(out);
      return NULL;
    }
  }
  return out;
}

// spawn(file, argv, env | null, cwd | null, fds) -> pid. The child gets fds[i] as fd i: for 0..2 a -1 means
// /dev/null, beyond that a -1 leaves the fd closed. Every other fd of ours is FD_CLOEXEC (Node opens them so)
// and stays behind. The child gets default signal dispositions and an empty signal mask.
#define MAX_FDS 64
static napi_value spawn_process(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 5) return throw_errno(env, "spawn", EINVAL);
  uint32_t nfds = 0;
  if (napi_get_array_length(env, args[4], &nfds) != napi_ok) nfds = 0;
  if (nfds < 3) nfds = 3;
  if (nfds > MAX_FDS) return throw_errno(env, "spawn: too many fds", EINVAL);
  int fds[MAX_FDS];
  int base = (int)nfds;
  for (uint32_t i = 0; i < nfds; i++) {
    fds[i] = -1;
    napi_value item;
    if (napi_get_element(env, args[4], i, &item) == napi_ok) napi_get_value_int32(env, item, &fds[i]);
    if (fds[i] >= base) base = fds[i] + 1;
  }
  char *file = get_string(env, args[0]);
  char **argv = get_strings(env, args[1]);
  char **envp = get_strings(env, args[2]);
  char *cwd = get_string(env, args[3]);
  if (file == NULL || argv == NULL) {
    free(file);
    free_strings(argv);
    free_strings(envp);
    free(cwd);
    return throw_errno(env, "spawn: bad arguments", EINVAL);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // Through temporaries above every source, so that no dup2 overwrites a source still to be moved.
  for (uint32_t i = 0; i < nfds; i++)
    if (fds[i] >= 0) posix_spawn_file_actions_adddup2(&actions, fds[i], base + (int)i);
  for (uint32_t i = 0; i < nfds; i++) {
    if (fds[i] >= 0) {
      posix_spawn_file_actions_adddup2(&actions, base + (int)i, (int)i);
      posix_spawn_file_actions_addclose(&actions, base + (int)i);
    } else if (i < 3) {
      posix_spawn_file_actions_addopen(&actions, (int)i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  if (cwd != NULL) posix_spawn_file_actions_addchdir_np(&actions, cwd);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, file, &actions, &attr, argv, envp ? envp : environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  char what[600];
  snprintf(what, sizeof what, "spawn %s", file);
  free(file);
  free_strings(argv);
  free_strings(envp);
  free(cwd);
  if (rc != 0) return throw_errno(env, what, rc);
  napi_value result;
  napi_create_int32(env, pid, &result);
  return result;
}

// wait(pid) -> undefined while it runs, else { code, signal } (exit code or -1; signal number or 0).
static napi_value wait_process(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int32_t pid = 0;
  if (argc < 1 || napi_get_value_int32(env, args[0], &pid) != napi_ok || pid <= 0) return throw_errno(env, "wait", EINVAL);
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) return throw_errno(env, "waitpid", errno);
  napi_value result;
  if (r == 0) {
    napi_get_undefined(env, &result);
    return result;
  }
  napi_value code, sig;
  napi_create_int32(env, WIFEXITED(status) ? WEXITSTATUS(status) : -1, &code);
  napi_create_int32(env, WIFSIGNALED(status) ? WTERMSIG(status) : 0, &sig);
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "code", code);
  napi_set_named_property(env, result, "signal", sig);
  return result;
}

// pipe() -> [readFd, writeFd], both FD_CLOEXEC.
static napi_value make_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return throw_errno(env, "pipe", errno);
  napi_value result, r, w;
  napi_create_array_with_length(env, 2, &result);
  napi_create_int32(env, p[0], &r);
  napi_create_int32(env, p[1], &w);
  napi_set_element(env, result, 0, r);
  napi_set_element(env, result, 1, w);
  return result;
}

// mkfifo(path, mode): EEXIST is reported like any other error.
static napi_value make_fifo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  uint32_t mode = 0600;
  if (argc >= 2) napi_get_value_uint32(env, args[1], &mode);
  char *path = argc >= 1 ? get_string(env, args[0]) : NULL;
  if (path == NULL) return throw_errno(env, "mkfifo", EINVAL);
  if (mkfifo(path, (mode_t)mode) != 0) {
    int err = errno;
    char what[4200];
    snprintf(what, sizeof what, "mkfifo %s", path);
    free(path);
    return throw_errno(env, what, err);
  }
  free(path);
  return NULL;
}

// trimHeap() -> whether memory went back: malloc_trim(0). Freed malloc memory (Buffers, zlib and tar state
// of a large unpack) stays in the process until glibc is asked to give it back; V8 never asks.
static napi_value trim_heap(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  napi_get_boolean(env, malloc_trim(0) == 1, &result);
  return result;
}

// setMallocThresholds(mmapBytes, trimBytes) -> whether glibc took both: fixed M_MMAP_THRESHOLD and
// M_TRIM_THRESHOLD instead of glibc's dynamic ones, which only ever grow (with each large block freed, up to 32
// and 64 MiB), so that every thread's arena may keep that much free memory at its top.
static napi_value set_malloc_thresholds(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  napi_get_cb_info(env, info, &argc, args, NULL, NULL);
  int64_t mmap_bytes = 0, trim_bytes = 0;
  if (argc < 2 || napi_get_value_int64(env, args[0], &mmap_bytes) != napi_ok ||
      napi_get_value_int64(env, args[1], &trim_bytes) != napi_ok || mmap_bytes <= 0 || trim_bytes <= 0 ||
      mmap_bytes > INT32_MAX || trim_bytes > INT32_MAX) {
    return throw_errno(env, "mallopt", EINVAL);
  }
  int ok = mallopt(M_MMAP_THRESHOLD, (int)mmap_bytes) == 1 && mallopt(M_TRIM_THRESHOLD, (int)trim_bytes) == 1;
  napi_value result;
  napi_get_boolean(env, ok, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"spawn", NULL, spawn_process, NULL, NULL, NULL, napi_default, NULL},
      {"wait", NULL, wait_process, NULL, NULL, NULL, napi_default, NULL},
      {"pipe", NULL, make_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"mkfifo", NULL, make_fifo, NULL, NULL, NULL, napi_default, NULL},
      {"trimHeap", NULL, trim_heap, NULL, NULL, NULL, napi_default, NULL},
      {"setMallocThresholds", NULL, set_malloc_thresholds, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
