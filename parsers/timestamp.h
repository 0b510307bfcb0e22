/* Timestamps: RFC 3339, Unix numbers, strftime-style formats and time zones
 * read from the system zoneinfo. Everything parses (pointer, length) slices
 * and never reads past the end. Results are nanoseconds since the Unix epoch;
 * times outside int64 nanoseconds (before 1677 or after 2262) are parse
 * errors. */
#ifndef SLUICE_PARSERS_TIMESTAMP_H
#define SLUICE_PARSERS_TIMESTAMP_H

#include <stddef.h>
#include <stdint.h>

#include "core/batch.h"
#include "core/err.h"
#include "core/record.h"

/* A time zone (see sl_tz_load below). */
typedef struct sl_tz sl_tz;

/* Days from 1970-01-01 to a proleptic Gregorian date (month 1-12). */
int64_t sl_ts_days_from_civil(int64_t y, int m, int d);
int sl_ts_days_in_month(int64_t y, int m);
/* The proleptic Gregorian year holding day `days` (days since 1970-01-01). */
int64_t sl_ts_year_of_days(int64_t days);
/* The whole of p is `Z`, `+hh`, `+hh:mm` or `+hhmm` (or `-`): seconds east.
 * 0 or SL_EPARSE. */
int sl_ts_parse_offset(const char *p, size_t n, int32_t *off);

/* RFC 3339 at the start of p: `YYYY-MM-DD(T|t| )hh:mm:ss[(.|,)frac](Z|z|+hh:mm|+hhmm)`.
 * Fractions of any length are accepted (digits past nanoseconds are
 * ignored). Returns the bytes consumed, 0 when p does not start with one. */
size_t sl_ts_scan_rfc3339(const char *p, size_t n, int64_t *ns);
/* ISO 8601 as sl_ts_scan_rfc3339, but the offset may be missing: the time
 * is then a wall time in tz (NULL: UTC). Returns the bytes consumed or 0. */
size_t sl_ts_scan_iso(const char *p, size_t n, const sl_tz *tz, int64_t *ns);
/* The whole of p must be one RFC 3339 timestamp. 0 or SL_EPARSE. */
int sl_ts_parse_rfc3339(const char *p, size_t n, int64_t *ns);

enum sl_ts_unit {
    SL_TS_UNIX_AUTO, /* by magnitude: s, ms, us or ns (see decision 0004) */
    SL_TS_UNIX_S,
    SL_TS_UNIX_MS,
    SL_TS_UNIX_US,
    SL_TS_UNIX_NS,
};
/* `[-]digits[.digits]`: 0 or SL_EPARSE (also on overflow). */
int sl_ts_parse_unix(const char *p, size_t n, enum sl_ts_unit unit, int64_t *ns);

/* nginx/apache `$time_local`: `dd/Mon/YYYY:hh:mm:ss +zzzz`. 0 or SL_EPARSE. */
int sl_ts_parse_nginx(const char *p, size_t n, int64_t *ns);

/* A month name at p: English (`Jan`, `January`, any case) and the glibc
 * abbreviations and full names of French, German and Spanish (decision
 * 0004). The name must not be followed by a letter. Returns 1-12 and
 * *len, or 0. */
int sl_ts_month(const char *p, size_t n, size_t *len);

/* How far past now a time completed from a partial date may land: Loki's
 * default `creation_grace_period` (it refuses entries further ahead). */
#define SL_TS_FUTURE_GRACE_S 600

/* The year for a date that carries none (syslog `Mmm dd hh:mm:ss`): the
 * latest year in which the date is at most SL_TS_FUTURE_GRACE_S after now.
 * So a `Jan  6` line read on 6 December is from last January, December
 * lines read in January are last year's, and a `Jan  1 00:00:05` line read
 * at 23:59:59 on December 31st is next year's. local_now_s is now in the
 * same time zone as the date. */
int64_t sl_ts_infer_year(int mon, int day, int64_t sec_of_day, int64_t local_now_s);

/* A time zone: UTC, a fixed offset (`+02:00`), `Local` (/etc/localtime) or
 * an IANA name read from $TZDIR or /usr/share/zoneinfo (TZif v1-v3,
 * including the POSIX rule for times past the last transition). Immutable
 * once loaded: one may be shared by threads. Implemented in tzfile.c. */
int sl_tz_load(const char *name, sl_tz **out, sl_err *err);
void sl_tz_free(sl_tz *tz);
/* The UTC offset a zone abbreviation (`CET`, `PDT`, `IST`) stands for.
 * The abbreviations tz itself uses come first (the offset of their latest
 * use in its TZif data and POSIX rule), so the configured zone settles an
 * ambiguous one: `IST` is +01:00 with Europe/Dublin, +02:00 with
 * Asia/Jerusalem. Otherwise a fixed table of common abbreviations, where
 * the ambiguous ones take one reading (decision 0019: IST India +05:30,
 * CST US Central -06:00, AST Atlantic -04:00, BST British +01:00). tz may
 * be NULL. 0 or SL_ENOENT for an abbreviation neither knows. */
int sl_tz_abbr_offset(const sl_tz *tz, const char *abbr, size_t n, int32_t *off);
/* Seconds east of UTC at the instant utc_s. tz NULL means UTC. */
int32_t sl_tz_offset_at(const sl_tz *tz, int64_t utc_s);
/* A wall-clock time in tz to UTC. In a gap (spring forward) the time is
 * read with the offset before the gap; in an overlap the earlier instant
 * wins. */
int64_t sl_tz_local_to_utc(const sl_tz *tz, int64_t local_s);

/* A compiled timestamp format. fmt is one of `rfc3339`, `unix`, `unix_s`,
 * `unix_ms`, `unix_us`, `unix_ns`, `nginx`, or strftime-style:
 *   %Y %y %C %m %d %e %j %H %k %I %l %M %S %p %b %B %h %a %A %z %Z
 *   %f/%L (fraction digits) %s (Unix seconds) %T %F %D %R %n %t %%
 * A space in fmt matches any run of blanks (also none); %S also takes a
 * `.123`/`,123` fraction when fmt does not continue with one itself. tz
 * (NULL: UTC) applies when the text carries no offset. %Z reads a zone
 * abbreviation (sl_tz_abbr_offset), an IANA name (`Europe/Berlin`, read
 * from the zoneinfo) or a numeric one (`+03`); a name neither knows is a
 * parse error. A format
 * without a date (only a time of day, `%H:%M:%S,%f`) takes today's date
 * in tz, or yesterday's when today's would be more than
 * SL_TS_FUTURE_GRACE_S ahead of now. */
typedef struct sl_ts_format sl_ts_format;

int sl_ts_format_new(const char *fmt, const char *tz, sl_ts_format **out, sl_err *err);
void sl_ts_format_free(sl_ts_format *f);
/* Parses the whole of p (trailing blanks allowed). now_ns supplies the year
 * when fmt has none, and the date when it has only a time. 0 or SL_EPARSE.
 * Thread-safe (the cache of zones named by %Z has a lock). */
int sl_ts_format_parse(const sl_ts_format *f, const char *p, size_t n, int64_t now_ns, int64_t *ns);

/* Sets r->time_ns from field `field` of r (NULL or "line": the record's
 * text). r->time_ns holds the read time on entry and is the reference for
 * year inference. SL_ENOENT when the field is absent, SL_EPARSE when it
 * does not parse; r is left unchanged on error. b is unused today: it keeps
 * the signature of the other parse_record functions. */
int sl_ts_parse_record(sl_batch *b, sl_record *r, const sl_ts_format *f, const char *field,
                       sl_err *err);

#endif
