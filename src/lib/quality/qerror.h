/*
 * qerror.h - error codes of the quality library (src/lib/quality).
 *
 * Every fallible function of the library returns one of these codes and, when
 * the caller passes a buffer (err, errlen), writes a one-line reason into it
 * (NUL-terminated, truncated to errlen). Nothing is ever printed. err may be
 * NULL or errlen 0 when the caller does not want the text.
 *
 * Out-of-memory policy: every allocation is checked; a failure unwinds what the
 * call had built and returns TLY_Q_ENOMEM, leaving the caller's objects in a
 * state where their release function is still safe to call.
 */
#ifndef TLY_QUALITY_QERROR_H
#define TLY_QUALITY_QERROR_H

#include <stddef.h>

enum tly_qerr {
	TLY_Q_OK = 0,
	TLY_Q_EINVAL = -1,   /* bad input: malformed CSV, bad argument, wrong shape */
	TLY_Q_ENOMEM = -2,   /* allocation failed */
	TLY_Q_EIO = -3,      /* read error on the underlying stream */
	TLY_Q_ELIMIT = -4,   /* a size cap was hit (field, row, count) */
	TLY_Q_EUNDEF = -5    /* the statistic is undefined for this data (e.g. one category) */
};

/* Internal: printf-style write of a reason into (err, errlen); safe with NULL. */
void tly__qerr_set(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
