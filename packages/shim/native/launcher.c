// containerd-shim-berth-v2: the runtime v2 shim binary containerd (and berthd) exec.
//
// It is small on purpose. `start` does not become a shim: it connects to the shared Node shim server of this
// daemon and namespace (starting it once, in its own session, if none is listening), writes the bundle's
// `address` and `shim.pid` files and prints the server's address. `delete` (the clean-up containerd runs after
// every shim connection closes) is done here natively: force-delete the OCI container if the runtime still
// knows it, unmount the rootfs, print a DeleteResponse. So a container start costs one exec of this binary,
// not two of a Go program plus a fresh ttrpc server.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <sched.h>
#include <unistd.h>

#ifndef BERTH_NODE
#define BERTH_NODE "node"
#endif
#define VERSION "0.1.0"
#define DEFAULT_SOCKET_DIR "/run/containerd/s"
#define DEFAULT_RUNC_ROOT "/run/containerd/runc"
#define UNIFIED "/sys/fs/cgroup/unified"

static const char *flag_namespace = "";
static const char *flag_address = "";
static const char *flag_publish = "";
static const char *flag_id = "";
static const char *flag_bundle = "";
static int flag_debug = 0;

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "containerd-shim-berth-v2: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  exit(1);
}

// Directory of this executable (symlinks resolved), e.g. .../packages/shim/native/build.
static void self_dir(char *out, size_t len) {
  ssize_t n = readlink("/proc/self/exe", out, len - 1);
  if (n <= 0) die("readlink /proc/self/exe: %s", strerror(errno));
  out[n] = 0;
  char *slash = strrchr(out, '/');
  if (slash) *slash = 0;
}

// FNV-1a 64: names the shared server's socket from the daemon address and namespace (not a security boundary:
// the socket directory is root-only).
static uint64_t fnv1a(const char *a, const char *b) {
  uint64_t h = 1469598103934665603ULL;
  for (const char *p = a; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  h = (h ^ 0) * 1099511628211ULL;
  for (const char *p = b; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ULL;
  return h;
}

static int write_atomic(const char *name, const char *content) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, ".%s", name);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  size_t len = strlen(content);
  if (write(fd, content, len) != (ssize_t)len) {
    close(fd);
    return -1;
  }
  close(fd);
  return rename(tmp, name);
}

// Connects to the socket; returns the listener's pid (SO_PEERCRED) or -1.
static int probe(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  struct ucred cred;
  socklen_t len = sizeof cred;
  int pid = 0;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) pid = cred.pid;
  close(fd);
  return pid;
}

// Starts the shared server in its own session and waits (up to 20 s) until it reports that it listens.
static int spawn_server(const char *sock) {
  char dir[PATH_MAX], script[PATH_MAX + 64];
  self_dir(dir, sizeof dir);
  const char *override = getenv("BERTH_SHIM_SERVER");
  if (override && *override) {
    snprintf(script, sizeof script, "%s", override);
  } else {
    snprintf(script, sizeof script, "%s/../../bin/berth-shim-server.js", dir);
  }
  const char *node = getenv("BERTH_SHIM_NODE");
  if (!node || !*node) node = BERTH_NODE;
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    setsid();
    if (chdir("/") != 0) _exit(127);
    int null = open("/dev/null", O_RDWR);
    const char *logpath = getenv("BERTH_SHIM_LOG");
    int log = logpath && *logpath ? open(logpath, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
    if (log < 0) log = null;
    dup2(null, 0);
    dup2(log, 1);
    dup2(log, 2);
    dup2(ready[1], 3);  // dup2 clears FD_CLOEXEC on the copy
    // The server lives as long as its containers and does little per request, so memory counts, not peak
    // speed. Measured with 20 running containers: --lite-mode (no optimizing compilers, feedback allocated
    // lazily) holds ~4.5 MB less Pss with start and output-copy times unchanged; a 1 MiB young generation keeps
    // garbage from a burst of starts small.
    char *argv[] = {(char *)node,
                    "--lite-mode",
                    "--max-semi-space-size=1",
                    script,
                    "--socket",
                    (char *)sock,
                    "--namespace",
                    (char *)flag_namespace,
                    "--address",
                    (char *)flag_address,
                    "--publish-binary",
                    (char *)flag_publish,
                    "--ready-fd",
                    "3",
                    flag_debug ? "--debug" : NULL,
                    NULL};
    execvp(node, argv);
    _exit(127);
  }
  close(ready[1]);
  struct pollfd pfd = {.fd = ready[0], .events = POLLIN};
  char buf[256] = {0};
  int rc = poll(&pfd, 1, 20000);
  ssize_t n = rc > 0 ? read(ready[0], buf, sizeof buf - 1) : -1;
  close(ready[0]);
  if (n <= 0 || strncmp(buf, "ok", 2) != 0) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    fprintf(stderr, "containerd-shim-berth-v2: shim server %s did not start (%s)\n", script,
            n > 0 ? buf : "no readiness report");
    return -1;
  }
  return pid;
}

// mkdir -p: /run/containerd may not exist yet (nothing made ctr's fifo dir when every output is a log URI).
static int mkdir_parents(const char *dir) {
  char path[PATH_MAX];
  if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  for (char *p = path + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(path, 0711) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(path, 0711) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int cmd_start(void) {
  if (!*flag_namespace) die("%s", "-namespace is required");
  if (!*flag_id) die("%s", "-id is required");
  const char *dir = getenv("BERTH_SHIM_SOCKET_DIR");
  if (!dir || !*dir) dir = DEFAULT_SOCKET_DIR;
  if (mkdir_parents(dir) != 0) die("mkdir socket dir: %s", strerror(errno));
  char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
  int len = snprintf(sock, sizeof sock, "%s/berth-%016llx", dir,
                     (unsigned long long)fnv1a(flag_address, flag_namespace));
  if (len >= (int)sizeof sock) die("socket path too long in %s", dir);

  int pid = probe(sock);
  if (pid < 0) {
    // One launcher at a time may start the server; the others wait here and then find it listening.
    int lock = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (lock < 0 || flock(lock, LOCK_EX) != 0) die("lock socket dir: %s", strerror(errno));
    pid = probe(sock);
    if (pid < 0) {
      unlink(sock);
      pid = spawn_server(sock);
    }
    close(lock);
    if (pid < 0) return 1;
  }
  char address[sizeof sock + 16], pidtext[32];
  snprintf(address, sizeof address, "unix://%s", sock);
  snprintf(pidtext, sizeof pidtext, "%d", pid);
  if (write_atomic("address", address) != 0) die("write address: %s", strerror(errno));
  if (write_atomic("shim.pid", pidtext) != 0) die("write shim.pid: %s", strerror(errno));
  fputs(address, stdout);
  return 0;
}

// Reads a small file into buf; returns its length or -1.
static ssize_t read_small(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return n;
}

// The string value of "key" in a flat JSON object (no escapes: runtime paths do not contain any).
static int json_string(const char *json, const char *key, char *out, size_t size) {
  char pattern[64];
  snprintf(pattern, sizeof pattern, "\"%s\"", key);
  const char *p = strstr(json, pattern);
  if (!p) return -1;
  p += strlen(pattern);
  while (*p == ' ' || *p == ':') p++;
  if (*p != '"') return -1;
  p++;
  size_t n = 0;
  while (*p && *p != '"' && n + 1 < size) out[n++] = *p++;
  out[n] = 0;
  return n > 0 ? 0 : -1;
}

static int is_crun(const char *binary) {
  const char *base = strrchr(binary, '/');
  base = base ? base + 1 : binary;
  return strcmp(base, "crun") == 0;
}

// Runs the OCI runtime and waits for it; crun is run with the cgroup2 mount hidden (see run_without_cgroup2).
static int run_runtime(const char *binary, char *const args[]) {
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    if (is_crun(binary)) {
      char self[PATH_MAX];
      ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
      if (n > 0) {
        self[n] = 0;
        char *argv[32] = {self, "run-without-cgroup2", (char *)binary};
        int i = 3;
        for (int j = 1; args[j] && i < 31; j++) argv[i++] = args[j];
        argv[i] = NULL;
        execv(self, argv);
      }
      _exit(127);
    }
    execvp(binary, args);
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static size_t put_varint(unsigned char *out, uint64_t v) {
  size_t n = 0;
  do {
    unsigned char b = v & 0x7f;
    v >>= 7;
    if (v) b |= 0x80;
    out[n++] = b;
  } while (v);
  return n;
}

static int cmd_delete(void) {
  char cwd[PATH_MAX];
  const char *bundle = flag_bundle;
  if (!*bundle) {
    if (!getcwd(cwd, sizeof cwd)) die("getcwd: %s", strerror(errno));
    bundle = cwd;
  }
  if (!*flag_id) die("%s", "-id is required");
  if (!*flag_namespace) die("%s", "-namespace is required");
  char path[PATH_MAX], json[8192], root[PATH_MAX] = DEFAULT_RUNC_ROOT, binary[PATH_MAX] = "runc";
  snprintf(path, sizeof path, "%s/options.json", bundle);
  if (read_small(path, json, sizeof json) > 0) {
    json_string(json, "root", root, sizeof root);
    json_string(json, "binary_name", binary, sizeof binary);
  }
  char ns_root[PATH_MAX], state[PATH_MAX];
  snprintf(ns_root, sizeof ns_root, "%s/%s", root, flag_namespace);
  snprintf(state, sizeof state, "%s/%s", ns_root, flag_id);
  struct stat st;
  if (stat(state, &st) == 0) {
    // The runtime still has the container (the shim died under it): force-delete it.
    char *args[] = {binary, "--root", ns_root, "delete", "--force", (char *)flag_id, NULL};
    if (run_runtime(binary, args) != 0) fprintf(stderr, "%s delete --force %s failed\n", binary, flag_id);
  }
  snprintf(path, sizeof path, "%s/rootfs", bundle);
  for (int i = 0; i < 32 && umount2(path, MNT_DETACH) == 0; i++) {
  }
  unsigned int pid = 0;
  char pidtext[32];
  snprintf(path, sizeof path, "%s/init.pid", bundle);
  if (read_small(path, pidtext, sizeof pidtext) > 0) pid = (unsigned int)strtoul(pidtext, NULL, 10);

  // containerd.task.v2.DeleteResponse{pid=1, exit_status=2 (128+SIGKILL), exited_at=3 (now)}
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  unsigned char ts[32], out[64];
  size_t tn = 0, n = 0;
  ts[tn++] = 0x08;
  tn += put_varint(ts + tn, (uint64_t)now.tv_sec);
  if (now.tv_nsec) {
    ts[tn++] = 0x10;
    tn += put_varint(ts + tn, (uint64_t)now.tv_nsec);
  }
  if (pid) {
    out[n++] = 0x08;
    n += put_varint(out + n, pid);
  }
  out[n++] = 0x10;
  n += put_varint(out + n, 128 + 9);
  out[n++] = 0x1a;
  out[n++] = (unsigned char)tn;
  memcpy(out + n, ts, tn);
  n += tn;
  fwrite(out, 1, n, stdout);
  return 0;
}

// run-without-cgroup2 BINARY ARGS...: execs the OCI runtime in a private mount namespace where the hybrid
// hierarchy's cgroup2 mount (/sys/fs/cgroup/unified) is covered by an empty tmpfs. crun refuses hybrid mode;
// with the unified mount hidden it sees (and uses) the v1 controllers only, as runc does.
static int cmd_run_without_cgroup2(int argc, char **argv) {
  if (argc < 1) die("%s", "run-without-cgroup2: binary required");
  struct stat st;
  if (stat(UNIFIED, &st) == 0) {
    if (unshare(CLONE_NEWNS) != 0) die("unshare(CLONE_NEWNS): %s", strerror(errno));
    if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) != 0) die("make / rslave: %s", strerror(errno));
    if (mount("tmpfs", UNIFIED, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=555") != 0) {
      die("hide " UNIFIED ": %s", strerror(errno));
    }
  }
  execvp(argv[0], argv);
  die("exec %s", argv[0]);
  return 127;
}

int main(int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-') break;
    if (strcmp(a, "--") == 0) {
      i++;
      break;
    }
    const char *name = a[1] == '-' ? a + 2 : a + 1;
    const char *eq = strchr(name, '=');
    char key[64];
    size_t klen = eq ? (size_t)(eq - name) : strlen(name);
    if (klen >= sizeof key) die("bad flag %s", a);
    memcpy(key, name, klen);
    key[klen] = 0;
    if (strcmp(key, "debug") == 0) {
      flag_debug = 1;
      continue;
    }
    if (strcmp(key, "v") == 0 || strcmp(key, "version") == 0) {
      printf("containerd-shim-berth-v2:\n  Version:  %s\n  Runtime:  io.containerd.berth.v2\n", VERSION);
      return 0;
    }
    const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
    if (!value) die("flag needs an argument: %s", a);
    if (strcmp(key, "namespace") == 0) flag_namespace = value;
    else if (strcmp(key, "address") == 0) flag_address = value;
    else if (strcmp(key, "publish-binary") == 0) flag_publish = value;
    else if (strcmp(key, "id") == 0) flag_id = value;
    else if (strcmp(key, "bundle") == 0) flag_bundle = value;
    else if (strcmp(key, "socket") == 0) {
      // accepted for compatibility; the shared server picks its own socket
    } else die("flag provided but not defined: %s", a);
  }
  const char *action = i < argc ? argv[i] : "";
  if (strcmp(action, "start") == 0) return cmd_start();
  if (strcmp(action, "delete") == 0) return cmd_delete();
  if (strcmp(action, "run-without-cgroup2") == 0) return cmd_run_without_cgroup2(argc - i - 1, argv + i + 1);
  fprintf(stderr, "containerd-shim-berth-v2: unknown action %s (want start or delete)\n", *action ? action : "\"\"");
  return 1;
}
