/* err.h — the one error type of the tally library.
 *
 * Every library call that can fail takes a `struct tly_err *` and returns a
 * `enum tly_code`; on failure the struct says what (code), where (field: a
 * path into the caller's input such as "questions[2].options") and why
 * (message). Nothing in the library prints. Front ends map the code to their
 * own vocabulary (HTTP status, exit code) with a table. */
#ifndef TLY_ERR_H
#define TLY_ERR_H

#include <stddef.h>

enum tly_code {
	TLY_OK = 0,
	TLY_EBADJSON,      /* input is not well-formed JSON (offset set) */
	TLY_EBADREQ,       /* well-formed, wrong shape */
	TLY_EUNAUTH,       /* no or invalid credentials */
	TLY_EFORBIDDEN,    /* role may not do this */
	TLY_ENOTFOUND,     /* absent, or not visible to the caller */
	TLY_ECONFLICT,     /* state forbids it */
	TLY_ETOOLARGE,     /* over a size limit */
	TLY_EINVALID,      /* breaks schema / answer rules */
	TLY_EINTERNAL,     /* storage or program failure */
	TLY_EBUSY,         /* at a limit for now: try again later */
	TLY_NCODES
};

struct tly_err {
	enum tly_code code;
	long offset;          /* byte offset for TLY_EBADJSON, else -1 */
	char field[256];      /* path of the fault, "" when none */
	char message[512];
};

void tly_err_clear(struct tly_err *e);
/* Sets e (when not NULL) and returns code, so callers can `return tly_err_set(...)`. */
enum tly_code tly_err_set(struct tly_err *e, enum tly_code code, const char *field,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Prefixes the field path: "data" + "text" -> "data.text", "[3]" kept tight. */
void tly_err_prefix_field(struct tly_err *e, const char *prefix);
/* Short stable name of a code ("invalid", "not_found", ...). */
const char *tly_code_name(enum tly_code code);

#endif
