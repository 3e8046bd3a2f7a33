// berth_shim.node: the few system calls the shared shim server needs and Node does not offer.
// Child processes are started with @berth/spawn's posix_spawn and reaped here (waitpid(-1)), never through
// node:child_process, so that one reaper sees every exit: the server is a child subreaper and the
// containers' init and exec'd processes are re-parented to it when the OCI runtime exits.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <uv.h>


#define CHECK(call)                                                                                                    \
  do {                                                                                                                 \
    if ((call) != napi_ok) return NULL;                                                                                \
  } while (0)

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, text, error;
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &text);
  char codebuf[32];
  snprintf(codebuf, sizeof codebuf, "E%d", err);
  const char *name = NULL;
  switch (err) {
    case ENOENT: name = "ENOENT"; break;
    case EINVAL: name = "EINVAL"; break;
    case EAGAIN: name = "EAGAIN"; break;
    case ENXIO: name = "ENXIO"; break;
    case EBUSY: name = "EBUSY"; break;
    case EPERM: name = "EPERM"; break;
    case ESRCH: name = "ESRCH"; break;
    default: name = codebuf;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, text, &error);
  napi_value errnoValue;
  napi_create_int32(env, err, &errnoValue);
  napi_set_named_property(env, error, "errno", errnoValue);
  napi_throw(env, error);
  return NULL;
}

// Returns a malloc'd copy of a JS string argument (NULL for null/undefined).
static char *get_string(napi_env env, napi_value value) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_string) return NULL;
  size_t len = 0;
  if (napi_get_value_string_utf8(env, value, NULL, 0, &len) != napi_ok) return NULL;
  char *buf = malloc(len + 1);
  if (!buf) return NULL;
  napi_get_value_string_utf8(env, value, buf, len + 1, &len);
  return buf;
}



static napi_value set_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) return throw_errno(env, "prctl(PR_SET_CHILD_SUBREAPER)", errno);
  return NULL;
}

// oomEventFd(memoryCgroupDir) -> an eventfd (non-blocking, FD_CLOEXEC) that the kernel signals on each OOM of
// that cgroup v1 memory cgroup, and when the cgroup is removed (cgroup.event_control on memory.oom_control).
static napi_value oom_event_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *dir = get_string(env, args[0]);
  if (!dir) return throw_errno(env, "oomEventFd", EINVAL);
  char path[4096];
  snprintf(path, sizeof path, "%s/memory.oom_control", dir);
  int ofd = open(path, O_RDONLY | O_CLOEXEC);
  if (ofd < 0) {
    int err = errno;
    free(dir);
    return throw_errno(env, path, err);
  }
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) {
    int err = errno;
    close(ofd);
    free(dir);
    return throw_errno(env, "eventfd", err);
  }
  snprintf(path, sizeof path, "%s/cgroup.event_control", dir);
  free(dir);
  int cfd = open(path, O_WRONLY | O_CLOEXEC);
  char line[64];
  int len = snprintf(line, sizeof line, "%d %d", efd, ofd);
  int err = 0;
  if (cfd < 0 || write(cfd, line, (size_t)len) != len) err = errno;
  if (cfd >= 0) close(cfd);
  close(ofd);
  if (err != 0) {
    close(efd);
    return throw_errno(env, path, err);
  }
  napi_value result;
  CHECK(napi_create_int32(env, efd, &result));
  return result;
}

// A readable-fd watch on the server's own event loop (uv_poll: no thread). Each time the fd is readable, 8 bytes
// (an eventfd counter) are read and the callback gets the count.
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;
  int stopped;
  int closed;    // uv_close has completed
  int finalized; // the JS handle has been collected
} fd_watch;

// The watch is freed once both libuv and the JS handle are done with it.
static void on_watch_closed(uv_handle_t *handle) {
  fd_watch *w = handle->data;
  close(w->fd);
  w->closed = 1;
  if (w->finalized) free(w);
}

static void stop_watch(fd_watch *w) {
  if (w->stopped) return;
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(w->env, w->callback);
  napi_async_destroy(w->env, w->context);
  uv_close((uv_handle_t *)&w->poll, on_watch_closed);
}

static void on_watch_readable(uv_poll_t *handle, int status, int events) {
  fd_watch *w = handle->data;
  if (w->stopped) return;
  uint64_t count = 0;
  ssize_t n = read(w->fd, &count, sizeof count);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value callback, recv, arg, ignored;
  napi_get_reference_value(env, w->callback, &callback);
  napi_get_global(env, &recv); // napi_make_callback wants an object as `this`
  napi_create_double(env, n == (ssize_t)sizeof count ? (double)count : -1, &arg);
  if (callback != NULL &&
      napi_make_callback(env, w->context, recv, callback, 1, &arg, &ignored) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
  if (status < 0 || n <= 0) stop_watch(w); // the fd is broken: that was the last call (-1)
  napi_close_handle_scope(env, scope);
}

static void finalize_watch(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  fd_watch *w = data;
  w->finalized = 1;
  if (!w->stopped) stop_watch(w);
  else if (w->closed) free(w);
}

// watchFd(fd, callback) -> a watch handle; the fd becomes the watch's (closed by unwatchFd). The watch does not
// keep the server alive.
static napi_value watch_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int fd = -1;
  napi_get_value_int32(env, args[0], &fd);
  uv_loop_t *loop = NULL;
  if (fd < 0 || napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, "watchFd", EINVAL);
  fd_watch *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "watchFd", ENOMEM);
  w->env = env;
  w->fd = fd;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  w->poll.data = w;
  napi_value name, resource;
  napi_create_string_utf8(env, "berth:fdwatch", NAPI_AUTO_LENGTH, &name);
  napi_create_object(env, &resource);
  napi_create_reference(env, args[1], 1, &w->callback);
  napi_async_init(env, resource, name, &w->context);
  uv_poll_start(&w->poll, UV_READABLE, on_watch_readable);
  uv_unref((uv_handle_t *)&w->poll);
  napi_value result;
  CHECK(napi_create_external(env, w, finalize_watch, NULL, &result));
  return result;
}

// unwatchFd(handle): stops the watch and closes its fd (idempotent).
static napi_value unwatch_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  void *data = NULL;
  if (napi_get_value_external(env, args[0], &data) != napi_ok || data == NULL)
    return throw_errno(env, "unwatchFd", EINVAL);
  stop_watch((fd_watch *)data);
  return NULL;
}

// reap() -> [pid, status, pid, status, ...]: every child that has exited, status as a shell reports it
// (exit code, or 128 + signal).
static napi_value reap(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value result;
  CHECK(napi_create_array(env, &result));
  uint32_t n = 0;
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) break;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
    if (code < 0) continue;
    napi_value p, c;
    napi_create_int32(env, pid, &p);
    napi_create_int32(env, code, &c);
    napi_set_element(env, result, n++, p);
    napi_set_element(env, result, n++, c);
  }
  return result;
}

// openFifo(path, mode: "r"|"w"|"rw") -> fd in blocking mode with FD_CLOEXEC. The open itself never blocks:
// a write side without a reader yet falls back to O_RDWR (writes then wait for a reader, as with a pipe).
static napi_value open_fifo(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *path = get_string(env, args[0]);
  char *mode = get_string(env, args[1]);
  if (!path || !mode) {
    free(path);
    free(mode);
    return throw_errno(env, "openFifo", EINVAL);
  }
  int access = strcmp(mode, "rw") == 0 ? O_RDWR : mode[0] == 'w' ? O_WRONLY : O_RDONLY;
  int flags = access | O_NONBLOCK | O_CLOEXEC;
  int fd = open(path, flags);
  if (fd < 0 && errno == ENXIO && mode[0] == 'w') {
    // no reader yet: hold the fifo open read-write (never blocks), so writes wait for a reader
    fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  }
  int err = errno;
  free(mode);
  if (fd < 0) {
    char what[600];
    snprintf(what, sizeof what, "open %s", path);
    free(path);
    return throw_errno(env, what, err);
  }
  free(path);
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int fd = -1;
  napi_get_value_int32(env, args[0], &fd);
  if (fd >= 0) close(fd);
  return NULL;
}

static napi_value do_mount(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value args[5];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *source = get_string(env, args[0]);
  char *target = get_string(env, args[1]);
  char *fstype = get_string(env, args[2]);
  double flags = 0;
  napi_get_value_double(env, args[3], &flags);
  char *data = get_string(env, args[4]);
  int rc = mount(source, target, fstype, (unsigned long)flags, data);
  int err = errno;
  char what[600];
  snprintf(what, sizeof what, "mount %s on %s (%s)", source ? source : "", target ? target : "", fstype ? fstype : "");
  free(source);
  free(target);
  free(fstype);
  free(data);
  if (rc != 0) return throw_errno(env, what, err);
  return NULL;
}

// umount(target, flags) -> true when something was unmounted, false when nothing was mounted there.
static napi_value do_umount(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value args[2];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *target = get_string(env, args[0]);
  int flags = 0;
  napi_get_value_int32(env, args[1], &flags);
  int rc = umount2(target, flags);
  int err = errno;
  char what[600];
  snprintf(what, sizeof what, "umount %s", target ? target : "");
  free(target);
  napi_value result;
  if (rc != 0) {
    if (err == EINVAL || err == ENOENT) {
      napi_get_boolean(env, false, &result);
      return result;
    }
    return throw_errno(env, what, err);
  }
  napi_get_boolean(env, true, &result);
  return result;
}

// listenUnix(path) -> listening fd (non-blocking, FD_CLOEXEC): the console socket runc sends the pty master to.
static napi_value listen_unix(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  char *path = get_string(env, args[0]);
  struct sockaddr_un addr;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  if (!path || strlen(path) >= sizeof addr.sun_path) {
    free(path);
    return throw_errno(env, "console socket path", ENAMETOOLONG);
  }
  strcpy(addr.sun_path, path);
  free(path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return throw_errno(env, "socket", errno);
  unlink(addr.sun_path);
  if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 4) != 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "bind console socket", err);
  }
  napi_value result;
  CHECK(napi_create_int32(env, fd, &result));
  return result;
}

// recvFd(listenFd) -> the fd passed with SCM_RIGHTS by the first connection, or -1 if none has arrived yet.
static napi_value recv_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value args[1];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int lfd = -1;
  napi_get_value_int32(env, args[0], &lfd);
  int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
  napi_value result;
  if (conn < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      napi_create_int32(env, -1, &result);
      return result;
    }
    return throw_errno(env, "accept console socket", errno);
  }
  char buf[4096];
  char control[CMSG_SPACE(sizeof(int))];
  struct iovec iov = {.iov_base = buf, .iov_len = sizeof buf};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
  int err = errno;
  close(conn);
  if (n < 0) return throw_errno(env, "recvmsg console socket", err);
  int fd = -1;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) memcpy(&fd, CMSG_DATA(c), sizeof(int));
  }
  if (fd < 0) return throw_errno(env, "console socket: no fd received", EBADMSG);
  napi_create_int32(env, fd, &result);
  return result;
}

static napi_value set_winsize(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value args[3];
  CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
  int fd = -1;
  uint32_t cols = 0, rows = 0;
  napi_get_value_int32(env, args[0], &fd);
  napi_get_value_uint32(env, args[1], &cols);
  napi_get_value_uint32(env, args[2], &rows);
  struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
  if (ioctl(fd, TIOCSWINSZ, &ws) != 0) return throw_errno(env, "TIOCSWINSZ", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setSubreaper", NULL, set_subreaper, NULL, NULL, NULL, napi_default, NULL},
      {"oomEventFd", NULL, oom_event_fd, NULL, NULL, NULL, napi_default, NULL},
      {"watchFd", NULL, watch_fd, NULL, NULL, NULL, napi_default, NULL},
      {"unwatchFd", NULL, unwatch_fd, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL},
      {"openFifo", NULL, open_fifo, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, do_mount, NULL, NULL, NULL, napi_default, NULL},
      {"umount", NULL, do_umount, NULL, NULL, NULL, napi_default, NULL},
      {"listenUnix", NULL, listen_unix, NULL, NULL, NULL, napi_default, NULL},
      {"recvFd", NULL, recv_fd, NULL, NULL, NULL, napi_default, NULL},
      {"setWinsize", NULL, set_winsize, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
