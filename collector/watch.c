#include "collector/watch.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/log.h"

#define MAX_WATCHED_DIRS 4096

typedef struct watched_dir {
    int wd;
    char *path;
} watched_dir;

struct sl_watch {
    int fd; /* -1: inactive */
    watched_dir *dirs;
    size_t ndirs, cap;
};

sl_watch *sl_watch_new(void)
{
    sl_watch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (w->fd < 0)
        sl_log(SL_LOG_WARN, "inotify_unavailable", "error=\"%s\" fallback=polling",
               strerror(errno));
    return w;
}

void sl_watch_free(sl_watch *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    for (size_t i = 0; i < w->ndirs; i++) free(w->dirs[i].path);
    free(w->dirs);
    free(w);
}

bool sl_watch_active(const sl_watch *w)
{
    return w->fd >= 0;
}

static void deactivate(sl_watch *w, const char *why)
{
    sl_log(SL_LOG_WARN, "inotify_disabled", "reason=\"%s\" fallback=polling", why);
    close(w->fd);
    w->fd = -1;
}

void sl_watch_dir(sl_watch *w, const char *dir)
{
    if (w->fd < 0) return;
    for (size_t i = 0; i < w->ndirs; i++)
        if (strcmp(w->dirs[i].path, dir) == 0) return;
    if (w->ndirs == MAX_WATCHED_DIRS) {
        deactivate(w, "too many directories");
        return;
    }
    int wd = inotify_add_watch(w->fd, dir,
                               IN_MODIFY | IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE |
                                   IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (wd < 0) {
        if (errno == ENOENT || errno == ENOTDIR) return; /* not there yet: rescans find it */
        deactivate(w, strerror(errno));
        return;
    }
    if (w->ndirs == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        watched_dir *d = realloc(w->dirs, cap * sizeof *d);
        if (!d) return;
        w->dirs = d;
        w->cap = cap;
    }
    char *copy = strdup(dir);
    if (!copy) return;
    w->dirs[w->ndirs++] = (watched_dir){wd, copy};
}

static const char *dir_of(sl_watch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd) return w->dirs[i].path;
    return NULL;
}

static void forget(sl_watch *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd) {
            free(w->dirs[i].path);
            w->dirs[i] = w->dirs[--w->ndirs];
            return;
        }
}

void sl_watch_wait(sl_watch *w, int timeout_ms, sl_watch_fn fn, void *arg)
{
    if (w->fd < 0) {
        if (timeout_ms > 0) usleep((useconds_t)timeout_ms * 1000);
        return;
    }
    struct pollfd p = {.fd = w->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0) return;
    _Alignas(struct inotify_event) char buf[16384];
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n <= 0) return;
        for (char *p2 = buf; p2 < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p2;
            p2 += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                fn(arg, "", SL_WATCH_OVERFLOW);
                continue;
            }
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                /* The directory itself went away: rescans re-add it. */
                forget(w, ev->wd);
                fn(arg, "", SL_WATCH_OVERFLOW);
                continue;
            }
            const char *dir = dir_of(w, ev->wd);
            if (!dir || ev->len == 0) continue;
            char path[4096];
            if (snprintf(path, sizeof path, "%s/%s", dir, ev->name) >= (int)sizeof path) continue;
            int kind = SL_WATCH_MODIFIED;
            if (ev->mask & (IN_CREATE | IN_MOVED_TO))
                kind = SL_WATCH_CREATED;
            else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                kind = SL_WATCH_REMOVED;
            fn(arg, path, kind);
        }
    }
}
