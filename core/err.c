#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>

int sl_errf(sl_err *e, int code, const char *fmt, ...)
{
    if (e) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->msg, sizeof e->msg, fmt, ap);
        va_end(ap);
        e->code = code;
    }
    return code;
}

const char *sl_strerror(int code)
{
    switch (code) {
    case SL_OK:
        return "ok";
    case SL_EINVAL:
        return "invalid argument";
    case SL_ENOMEM:
        return "out of memory or bound reached";
    case SL_EIO:
        return "i/o error";
    case SL_EAGAIN:
        return "try again";
    case SL_ETIMEDOUT:
        return "timed out";
    case SL_ECLOSED:
        return "closed";
    case SL_EPARSE:
        return "parse error";
    case SL_EFULL:
        return "full";
    case SL_ENOSPC:
        return "no space left on device";
    case SL_ECORRUPT:
        return "corrupt data";
    case SL_ENOENT:
        return "not found";
    }
    return "unknown error";
}
